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


def test_a_change_to_sitegen_itself_restarts_serve(tmp_path, write_run, monkeypatch):
    """The process holds sitegen's old code: it must not rebuild with it."""
    write_run()
    module = tmp_path / "fake_module.py"
    module.write_text("# version 1\n")
    monkeypatch.setattr("sitegen.serve.code_files", lambda: [module])
    messages: list[str] = []
    result: list[bool] = []
    ready: list[int] = []

    def run() -> None:
        result.append(
            serve(tmp_path, port=0, echo=messages.append, poll_seconds=0.1, on_ready=ready.append)
        )

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not ready and time.time() < deadline:
        time.sleep(0.05)
    assert ready, messages
    module.write_text("# version 2, longer\n")
    thread.join(timeout=30)
    assert result == [True]
    assert "sitegen's own code changed; restarting to build with it" in messages
    assert not any("rebuilding" in m for m in messages)  # no build with the old code


def test_the_cli_restarts_itself_with_the_same_arguments(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from sitegen.cli import main

    monkeypatch.setattr("sitegen.serve.serve", lambda *a, **k: True)
    execs: list[list[str]] = []
    monkeypatch.setattr("os.execv", lambda exe, argv: execs.append(argv))
    monkeypatch.setattr("sys.argv", ["sitegen", "serve", str(tmp_path), "--port", "8123"])
    result = CliRunner().invoke(main, ["serve", str(tmp_path), "--port", "8123"])
    assert result.exit_code == 0, result.output
    assert execs and execs[0][1:] == ["-m", "sitegen", "serve", str(tmp_path), "--port", "8123"]
