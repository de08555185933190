"""The runner against a real llama-server (skipped unless one is named).

    SITEGEN_LLAMA_SERVER=~/.cache/llama-server/build/bin/llama-server \
    SITEGEN_TINY_GGUF=/tmp/tiny.gguf pytest -m live tests/test_runner_live.py

Without ``SITEGEN_TINY_GGUF`` a random-weight model is written with
``../shared/tools/make_tiny_gguf.py`` (needs the ``gguf`` package).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sitegen.runner import RunOptions, run

pytestmark = pytest.mark.live
ROOT = Path(__file__).resolve().parent.parent
SERVER = os.environ.get("SITEGEN_LLAMA_SERVER")
MAKER = ROOT.parent / "shared" / "tools" / "make_tiny_gguf.py"


def _model(tmp_path: Path) -> Path:
    named = os.environ.get("SITEGEN_TINY_GGUF")
    if named:
        return Path(named)
    pytest.importorskip("gguf")
    if not MAKER.is_file():
        pytest.skip("no SITEGEN_TINY_GGUF and no make_tiny_gguf.py to write one")
    out = tmp_path / "tiny-128x2.gguf"
    subprocess.run(
        [
            sys.executable,
            str(MAKER),
            str(out),
            "--embd",
            "128",
            "--layers",
            "2",
            "--ff",
            "256",
            "--heads",
            "2",
        ],
        check=True,
        capture_output=True,
    )
    return out


@pytest.fixture
def llama_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    binary = Path(SERVER).expanduser() if SERVER else None
    if binary is None or not os.access(binary, os.X_OK):
        pytest.skip("set SITEGEN_LLAMA_SERVER to a llama-server binary")
    model = _model(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            str(binary),
            "-m",
            str(model),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "-t",
            "2",
            "-c",
            "2048",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, "llama-server exited"
            time.sleep(0.2)
        else:
            pytest.fail("llama-server did not become healthy")
        yield url, model
    finally:
        proc.terminate()
        proc.wait(10)


def test_real_llama_server_run(
    tmp_path: Path, llama_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sitegen.runner.packaging.refresh_catalogue", lambda archive: None)
    url, model = llama_server
    cells = tmp_path / "cells.yaml"
    cells.write_text(
        f"cells:\n  - {{node: devbox, engine: llamacpp, model: tiny, endpoint: '{url}'}}\n"
    )
    outcome = run(
        RunOptions(
            cells_path=cells,
            runs_dir=tmp_path / "archive" / "runs",
            warm=2,
            prompt_ids=("P-EASY",),
            force_load=True,
            progress=False,
            git_dir=tmp_path,
        ),
        echo=io.StringIO().write,
    )
    records = [json.loads(x) for x in outcome.ledger.read_text().splitlines()]
    calls = [r for r in records if r["type"] == "call"]
    assert [c.get("cold_kind") for c in calls] == ["process_start", None, None]
    for c in calls:
        assert c["error"] is None, c
        assert c["tokens_source"] == "usage" and 0 < c["completion_tokens"] <= 64
        assert c["server_timings"]["predicted_n"] == c["completion_tokens"]
        assert c["first_delta_ms"] <= c["ttft_ms"] <= c["total_duration_ms"] <= c["wall_ms"]
    md = json.loads((outcome.package / "metadata.json").read_text())
    (target,) = md["targets"]
    assert target["model_digest"] == "sha256:" + hashlib.sha256(model.read_bytes()).hexdigest()
    assert target["engine_version"] and target["context_length"] == 2048
    port = url.rsplit(":", 1)[1]
    for path in outcome.package.iterdir():
        text = path.read_text()
        assert "127.0.0.1" not in text and f":{port}/" not in text
        assert str(model.parent) not in text
