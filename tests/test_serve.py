"""`sitegen serve` serves on loopback and rebuilds when a run changes."""

from __future__ import annotations

import time
import urllib.request

from conftest import metadata, serving


def fetch(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/{path}", timeout=5) as response:
        return response.read().decode()


def test_serve_rebuilds_on_change_and_survives_a_bad_edit(tmp_path, write_run):
    write_run()
    with serving(tmp_path) as server:
        port = server.port
        assert "Run r1" in fetch(port, "runs/r1/index.html")

        write_run("r2", md=metadata("r2", title="A new run"))
        deadline = time.time() + 30
        while "A new run" not in fetch(port, "index.html") and time.time() < deadline:
            time.sleep(0.1)
        assert "A new run" in fetch(port, "index.html")

        write_run("r3", ledger="not json\n", md=metadata("r3", title="Broken run"))
        deadline = time.time() + 30
        while not any("rebuild failed" in m for m in server.messages) and time.time() < deadline:
            time.sleep(0.1)
        assert any("runs/r3/run.jsonl:1:1: malformed JSON" in m for m in server.messages)
        index = fetch(port, "index.html")
        assert "A new run" in index and "Broken run" not in index  # previous site still served


def test_a_change_to_sitegen_itself_restarts_serve(tmp_path, write_run, monkeypatch):
    """The process holds sitegen's old code: it must not rebuild with it."""
    write_run()
    module = tmp_path / "fake_module.py"
    module.write_text("# version 1\n")
    monkeypatch.setattr("sitegen.serve.code_files", lambda: [module])
    with serving(tmp_path) as server:
        module.write_text("# version 2, longer\n")
        server.thread.join(timeout=30)
        assert server.result == [True]
        assert "sitegen's own code changed; restarting to build with it" in server.messages
        assert not any("rebuilding" in m for m in server.messages)  # no build with old code


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
