"""`sitegen serve` serves on loopback and rebuilds when a run changes."""

from __future__ import annotations

import json
import threading
import time
import urllib.request

from sitegen.serve import serve


def fetch(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/{path}", timeout=5) as response:
        return response.read().decode()


def test_serve_rebuilds_on_change_and_survives_a_bad_edit(tmp_path, write_run):
    folder = write_run()
    stop = threading.Event()
    ready: list[int] = []
    messages: list[str] = []
    thread = threading.Thread(
        target=serve,
        args=(tmp_path,),
        kwargs={
            "port": 0,
            "echo": messages.append,
            "stop": stop,
            "poll_seconds": 0.1,
            "on_ready": ready.append,
        },
        daemon=True,
    )
    thread.start()
    try:
        deadline = time.time() + 30
        while not ready and time.time() < deadline:
            time.sleep(0.05)
        port = ready[0]
        assert "Run r1" in fetch(port, "runs/r1/index.html")

        md = json.loads((folder / "metadata.json").read_text())
        md["title"] = "Renamed run"
        (folder / "metadata.json").write_text(json.dumps(md))
        deadline = time.time() + 30
        while "Renamed run" not in fetch(port, "index.html") and time.time() < deadline:
            time.sleep(0.1)
        assert "Renamed run" in fetch(port, "index.html")

        (folder / "run.jsonl").write_text("not json\n")
        deadline = time.time() + 30
        while not any("rebuild failed" in m for m in messages) and time.time() < deadline:
            time.sleep(0.1)
        assert any("runs/r1/run.jsonl:1:1: malformed JSON" in m for m in messages)
        assert "Renamed run" in fetch(port, "index.html")  # previous site still served
    finally:
        stop.set()
        thread.join(10)
