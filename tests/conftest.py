"""Shared fixtures: small archives built on the fly in tmp folders."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import generate_archive  # noqa: E402

PROMPT_SHA = hashlib.sha256(b"hi\n").hexdigest()


def sitegen_process(
    cwd: Path, *args: str, fault: str | None = None, code: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    """``python -m sitegen ARGS`` from ``cwd``, as a user types it, running the sitegen
    at ``code`` (this checkout by default; ``fault``: a ``SITEGEN_FAULT`` point that
    kills the build there)."""
    env = dict(os.environ, PYTHONPATH=str(code))
    env.pop("SITEGEN_FAULT", None)
    if fault:
        env["SITEGEN_FAULT"] = fault
    return subprocess.run(
        [sys.executable, "-m", "sitegen", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def add_run(root: Path, run_id: str, **files: str | bytes) -> Path:
    """A valid one-call run folder ``root/runs/<run_id>`` plus extra ``files``
    (relative paths inside the run folder, text or bytes)."""
    folder = root / "runs" / run_id
    folder.mkdir(parents=True, exist_ok=True)
    ledger = lines(meta_record(run_id), call_record(), end_record())
    (folder / "run.jsonl").write_text(ledger, encoding="utf-8")
    (folder / "metadata.json").write_text(json.dumps(metadata(run_id), indent=2), encoding="utf-8")
    for rel, data in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data, encoding="utf-8")
    return folder


@dataclass
class Serving:
    """A ``sitegen serve`` running in a thread: its port, what it said, what it returned."""

    port: int
    messages: list[str]
    result: list[bool]
    thread: threading.Thread


@contextmanager
def serving(archive: Path, timeout: float = 60) -> Iterator[Serving]:
    """Serve ``archive`` on a free port, polling for changes every 0.1 s, until the block ends."""
    from sitegen.serve import serve

    stop = threading.Event()
    ready: list[int] = []
    messages: list[str] = []
    result: list[bool] = []

    def run() -> None:
        result.append(
            serve(
                archive,
                port=0,
                echo=messages.append,
                stop=stop,
                poll_seconds=0.1,
                on_ready=ready.append,
            )
        )

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.time() + timeout
    while not ready and thread.is_alive() and time.time() < deadline:
        time.sleep(0.05)
    assert ready, messages
    try:
        yield Serving(ready[0], messages, result, thread)
    finally:
        stop.set()
        thread.join(30)


def cli_in(folder: Path, *args: str) -> Result:
    """``sitegen ARGS`` in-process with ``folder`` as the working folder, so default
    arguments and relative paths mean what they mean to a user standing there."""
    cwd = Path.cwd()
    os.chdir(folder)
    try:
        return CliRunner().invoke(_cli(), list(args), catch_exceptions=True)
    finally:
        os.chdir(cwd)


def _cli() -> Any:
    from sitegen.cli import main

    return main


def meta_record(run_id: str = "r1", **extra: Any) -> dict[str, Any]:
    rec = {
        "type": "meta",
        "benchmark_run_id": run_id,
        "git_sha": "abc1234",
        "git_dirty": False,
        "harness_version": "1",
        "started_at_utc": "2026-05-01T10:00:00Z",
        "host": "node-a",
        "load_avg_start": [0.5, 0.4, 0.3],
        "cells_planned": ["node-a:llamacpp:m1"],
        "prompts": {"P-EASY": {"sha256": PROMPT_SHA, "max_tokens": 64}},
    }
    rec.update(extra)
    return rec


def call_record(**extra: Any) -> dict[str, Any]:
    rec = {
        "type": "call",
        "cell_id": "node-a:llamacpp:m1",
        "prompt_id": "P-EASY",
        "phase": "warm",
        "run_idx": 0,
        "first_delta_ms": 100.0,
        "total_duration_ms": 200.0,
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "tokens_per_sec": 50.0,
        "finish_reason": "stop",
        "backend": "llamacpp",
        "error": None,
    }
    rec.update(extra)
    return rec


def end_record(**extra: Any) -> dict[str, Any]:
    rec = {
        "type": "end",
        "finished_at_utc": "2026-05-01T10:05:00Z",
        "load_avg_end": [0.6],
        "calls": 1,
    }
    rec.update(extra)
    return rec


def metadata(run_id: str = "r1", **extra: Any) -> dict[str, Any]:
    md = {
        "format": "sitegen.metadata/1",
        "id": run_id,
        "title": f"Run {run_id}",
        "status": "complete",
        "started_at_utc": "2026-05-01T10:00:00Z",
        "finished_at_utc": "2026-05-01T10:05:00Z",
        "harness": {"name": "test-harness", "version": "1"},
        "git": {"sha": "abc1234", "dirty": False},
        "load_avg_start": [0.5, 0.4, 0.3],
        "targets": [
            {
                "cell_id": "node-a:llamacpp:m1",
                "node": "node-a",
                "engine": "llamacpp",
                "engine_version": "b1234",
                "model": "m1",
                "model_digest": "sha256:" + "0" * 64,
                "quantization": "F32",
            }
        ],
        "prompts": {"P-EASY": {"sha256": PROMPT_SHA, "max_tokens": 64}},
        "license": "CC-BY-4.0",
        "authors": ["Test Author"],
    }
    md.update(extra)
    return md


def lines(*records: Any) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)


WriteRun = Callable[..., Path]


@pytest.fixture
def write_run(tmp_path: Path) -> WriteRun:
    """Write ``runs/<id>/`` under tmp_path; ledger given as text or records."""

    def write(
        run_id: str = "r1",
        ledger: str | list[Any] | bytes | None = None,
        md: dict[str, Any] | None = None,
        **files: str,
    ) -> Path:
        folder = tmp_path / "runs" / run_id
        folder.mkdir(parents=True, exist_ok=True)
        if ledger is None:
            ledger = [meta_record(run_id), call_record(), end_record()]
        if isinstance(ledger, list):
            ledger = lines(*ledger)
        if isinstance(ledger, str):
            ledger = ledger.encode("utf-8")
        if ledger != b"-":
            (folder / "run.jsonl").write_bytes(ledger)
        (folder / "metadata.json").write_text(
            json.dumps(md if md is not None else metadata(run_id), indent=2), encoding="utf-8"
        )
        for name, text in files.items():
            (folder / name.replace("__", ".")).write_text(text, encoding="utf-8")
        return folder

    return write


@pytest.fixture
def synthetic_archive(tmp_path: Path) -> Path:
    """A small generated archive: every badge and verdict appears."""
    generate_archive.generate(tmp_path, 13, warm=2, cells=2, prompts=2, seed=3)
    return tmp_path
