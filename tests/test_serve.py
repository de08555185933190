"""`sitegen serve` serves on loopback and rebuilds when a run changes."""

from __future__ import annotations

import threading
import time
import urllib.request

from conftest import metadata

from sitegen.serve import serve


def fetch(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/{path}", timeout=5) as response:
        return response.read().decode()


def test_serve_rebuilds_on_change_and_survives_a_bad_edit(tmp_path, write_run):
    write_run()
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

        write_run("r2", md=metadata("r2", title="A new run"))
        deadline = time.time() + 30
        while "A new run" not in fetch(port, "index.html") and time.time() < deadline:
            time.sleep(0.1)
        assert "A new run" in fetch(port, "index.html")

        write_run("r3", ledger="not json\n", md=metadata("r3", title="Broken run"))
        deadline = time.time() + 30
        while not any("rebuild failed" in m for m in messages) and time.time() < deadline:
            time.sleep(0.1)
        assert any("runs/r3/run.jsonl:1:1: malformed JSON" in m for m in messages)
        index = fetch(port, "index.html")
        assert "A new run" in index and "Broken run" not in index  # previous site still served
    finally:
        stop.set()
        thread.join(10)
