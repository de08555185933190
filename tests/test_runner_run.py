"""``sitegen run`` / ``sitegen package`` end to end against fake engines on loopback.

Covers cold/warm per engine, probes and skips, the guards, concurrency,
scrubbing of addresses and paths, packaging, and interruption safety (a
killed runner leaves a valid ledger that packages as interrupted).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner
from fake_engine import FakeEngine, Script, Step

from sitegen.cli import main as cli
from sitegen.exceptions import RunnerError
from sitegen.runner import RunOptions, package_ledger, run
from sitegen.runner import guards as guards_mod
from sitegen.runner.recorder import read_ledger

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "sitegen" / "schemas"
KINDS = {k: f"ledger-{k}.v1.json" for k in ("meta", "call", "skip", "result", "end")}


def schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / name).read_text(encoding="utf-8"))


def assert_valid_ledger(path: Path) -> list[dict[str, Any]]:
    """Every line parses and validates against its JSON Schema."""
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    for rec in records:
        jsonschema.Draft7Validator(schema(KINDS[rec["type"]])).validate(rec)
    assert records[0]["type"] == "meta"
    return records


@pytest.fixture(autouse=True)
def no_catalogue(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Packaging's catalogue refresh is recorded instead of run (tested separately)."""
    seen: list[Path] = []
    monkeypatch.setattr(
        "sitegen.runner.packaging.refresh_catalogue", lambda archive: seen.append(archive)
    )
    return seen


@pytest.fixture
def gguf(tmp_path: Path) -> Path:
    path = tmp_path / "models" / "tiny-256x4.gguf"
    path.parent.mkdir()
    path.write_bytes(b"GGUF" + bytes(range(256)) * 64)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cells_file(tmp_path: Path, cells: list[dict[str, Any]]) -> Path:
    import yaml

    path = tmp_path / "cells.yaml"
    path.write_text(yaml.safe_dump({"cells": cells}), encoding="utf-8")
    return path


def options(tmp_path: Path, cells: Path, **kw: Any) -> RunOptions:
    defaults: dict[str, Any] = {
        "runs_dir": tmp_path / "archive" / "runs",
        "warm": 2,
        "force_load": True,
        "progress": False,
        "git_dir": tmp_path,
        "prompt_ids": ("P-EASY", "P-MEDIUM"),
        "stall_timeout_s": 5.0,
    }
    defaults.update(kw)
    return RunOptions(cells_path=cells, **defaults)


def quiet_run(opts: RunOptions) -> tuple[Any, str]:
    out = io.StringIO()
    outcome = run(opts, echo=lambda s: out.write(s + "\n"))
    return outcome, out.getvalue()


def test_llamacpp_run_records_cold_warm_and_packages(
    tmp_path: Path, gguf: Path, no_catalogue: list[Path]
) -> None:
    with FakeEngine("llamacpp", model_path=str(gguf), tokens=4, token_delay_ms=5) as eng:
        cells = cells_file(
            tmp_path,
            [{"node": "devbox", "engine": "llamacpp", "model": "tiny", "endpoint": eng.url}],
        )
        outcome, printed = quiet_run(options(tmp_path, cells))
        bodies = eng.completions()
    records = assert_valid_ledger(outcome.ledger)
    meta, calls, end = records[0], [r for r in records if r["type"] == "call"], records[-1]
    assert end["type"] == "end" and end["interrupted"] is False and end["calls"] == 6
    assert meta["cells_planned"] == ["devbox:llamacpp:tiny"]
    assert meta["prompts"]["P-EASY"]["sha256"] == hashlib.sha256(b"hi\n").hexdigest()
    assert meta["git_sha"] is None and meta["host"] == "local"
    assert [(c["prompt_id"], c["phase"], c["run_idx"]) for c in calls] == [
        ("P-EASY", "cold", 0),
        ("P-EASY", "warm", 0),
        ("P-EASY", "warm", 1),
        ("P-MEDIUM", "cold", 0),
        ("P-MEDIUM", "warm", 0),
        ("P-MEDIUM", "warm", 1),
    ]
    # First call after server start is the true cold; later colds are process_warm.
    assert [c.get("cold_kind") for c in calls if c["phase"] == "cold"] == [
        "process_start",
        "process_warm",
    ]
    # cache_prompt: false is sent and recorded, and usage is requested.
    assert all(b["cache_prompt"] is False for b in bodies)
    assert all(b["stream_options"] == {"include_usage": True} for b in bodies)
    assert [b["max_tokens"] for b in bodies] == [64, 64, 64, 512, 512, 512]
    assert bodies[0]["messages"] == [{"role": "user", "content": "hi\n"}]
    assert all(c["cache_prompt"] is False and c["backend"] == "llamacpp" for c in calls)
    assert all(c["error"] is None and c["completion_tokens"] == 4 for c in calls)
    assert all(c["ttft_ms"] >= c["first_delta_ms"] for c in calls)
    assert calls[0]["server_timings"]["predicted_n"] == 4
    assert calls[0]["system_fingerprint"] == "b9999-fake0000"

    folder = outcome.package
    assert folder == tmp_path / "archive" / "runs" / outcome.run_id
    assert sorted(p.name for p in folder.iterdir()) == [
        "metadata.json",
        "probes.json",
        "responses.jsonl",
        "run.jsonl",
        "run.log",
        "run.md",
    ]
    assert (folder / "run.jsonl").read_bytes() == outcome.ledger.read_bytes()
    # What the model answered is kept beside the ledger, one line per call, in call order.
    answers = [json.loads(x) for x in (folder / "responses.jsonl").read_text().splitlines()]
    assert [(a["prompt_id"], a["phase"], a["run_idx"]) for a in answers] == [
        (c["prompt_id"], c["phase"], c["run_idx"]) for c in calls
    ]
    assert all(a["text"] == "t0 t1 t2 t3 " and "reasoning" not in a for a in answers)
    md = json.loads((folder / "metadata.json").read_text())
    jsonschema.Draft7Validator(schema("metadata.v1.json")).validate(md)
    assert md["id"] == outcome.run_id and md["status"] == "complete"
    assert md["title"] == "llama.cpp on devbox: 1 cell x 2 prompts"
    (target,) = md["targets"]
    assert target["engine_version"] == "b9999-fake0000"
    assert target["model_digest"] == "sha256:" + hashlib.sha256(gguf.read_bytes()).hexdigest()
    assert target["model_file"] == "tiny-256x4.gguf"
    assert target["quantization"] == "all F32" and target["context_length"] == 2048
    assert target["settings"]["cache_prompt"] is False
    assert md["harness"] == {"name": "sitegen-runner", "version": meta["harness_version"]}
    assert md["license"] == "CC-BY-4.0" and md["baseline"] is False
    run_md = (folder / "run.md").read_text()
    assert "## devbox:llamacpp:tiny" in run_md and "### Cold" in run_md and "### Warm" in run_md
    assert "process_start" in run_md
    assert "P-EASY" in printed and "warm ttft p50" in printed
    assert no_catalogue == [tmp_path / "archive"]
    assert not list((tmp_path / "archive" / "runs").glob(".tmp-*"))


def test_nothing_identifying_reaches_the_package(tmp_path: Path, gguf: Path) -> None:
    with FakeEngine("llamacpp", model_path=str(gguf), tokens=2) as eng:
        leak = f"failed at {eng.url}/v1/chat/completions loading {gguf}"
        # The server echoes its own address and the model's path in an error body.
        eng.queue(Script([Step(0, json.dumps({"error": leak}).encode())], status=500))
        cells = cells_file(
            tmp_path,
            [
                {
                    "node": "devbox",
                    "engine": "llamacpp",
                    "model": "tiny",
                    "endpoint": eng.url + "/v1",
                }
            ],
        )
        outcome, _ = quiet_run(options(tmp_path, cells, warm=1))
        port = eng.port
    calls = [r for r in assert_valid_ledger(outcome.ledger) if r["type"] == "call"]
    assert calls[0]["http_status"] == 500 and "<devbox>/v1/chat/completions" in calls[0]["error"]
    files = [*outcome.package.iterdir(), outcome.ledger]
    for path in files:
        text = path.read_text(encoding="utf-8")
        for secret in (
            "127.0.0.1",
            f"localhost:{port}",
            f":{port}/",
            str(tmp_path),
            str(gguf.parent),
        ):
            assert secret not in text, (path.name, secret)


def test_ollama_cold_unloads_and_confirms(tmp_path: Path) -> None:
    with FakeEngine("ollama", model="qwen3.5:0.8b", tokens=3) as eng:
        cells = cells_file(
            tmp_path,
            [
                {
                    "node": "pavilion",
                    "engine": "ollama",
                    "model": "qwen3.5:0.8b",
                    "endpoint": eng.url,
                }
            ],
        )
        outcome, _ = quiet_run(options(tmp_path, cells, warm=1))
        requests = [(r["method"], r["path"], r["body"]) for r in eng.requests]
    calls = [r for r in assert_valid_ledger(outcome.ledger) if r["type"] == "call"]
    assert [c.get("cold_kind") for c in calls] == ["unloaded", None, "unloaded", None]
    chats = [i for i, r in enumerate(requests) if r[1] == "/api/chat"]
    for cold_index in (chats[0], chats[2]):
        before = requests[:cold_index]
        unload = max(i for i, r in enumerate(before) if r[1] == "/api/generate")
        assert before[unload][2] == {"model": "qwen3.5:0.8b", "keep_alive": 0}
        assert any(r[1] == "/api/ps" for r in before[unload:])
    assert requests[chats[0]][2]["options"] == {"num_predict": 64}
    assert all(c["tokens_source"] == "ollama_native" and c["completion_tokens"] == 3 for c in calls)
    assert calls[0]["server_timings"]["load_duration"] == 1234567
    md = json.loads((outcome.package / "metadata.json").read_text())
    (target,) = md["targets"]
    assert target["model_digest"] == "sha256:" + "ab" * 32
    assert target["engine_version"] == "0.12.3"
    assert (target["quantization"], target["context_length"]) == ("Q4_K_M", 40960)
    probes = (outcome.package / "probes.json").read_text()
    assert "/home/someone" not in probes and "modelfile" not in probes


def test_openai_engine_is_process_warm_and_unserved_model_is_skipped(tmp_path: Path) -> None:
    with FakeEngine("openai", model="Qwen/Qwen3-0.6B", tokens=2) as eng:
        cells = cells_file(
            tmp_path,
            [
                {
                    "node": "predator",
                    "engine": "openai",
                    "model": "Qwen/Qwen3-0.6B",
                    "endpoint": eng.url + "/v1",
                },
                {"node": "predator", "engine": "openai", "model": "other", "endpoint": eng.url},
            ],
        )
        outcome, printed = quiet_run(options(tmp_path, cells, warm=1, prompt_ids=("P-EASY",)))
    records = assert_valid_ledger(outcome.ledger)
    (skip,) = [r for r in records if r["type"] == "skip"]
    assert skip["cell_id"] == "predator:openai:other" and "not served" in skip["reason"]
    calls = [r for r in records if r["type"] == "call"]
    assert calls[0]["cold_kind"] == "process_warm" and calls[0]["cache_prompt"] is None
    assert records[0]["cells_planned"] == ["predator:openai:Qwen/Qwen3-0.6B"]
    assert "skipped predator:openai:other" in printed
    md = json.loads((outcome.package / "metadata.json").read_text())
    assert md["targets"][0]["engine_version"] == "0.11.0"
    assert md["targets"][0]["context_length"] == 4096


def test_unavailable_cells_get_skip_records_and_publication_refuses(tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    with FakeEngine("llamacpp", tokens=2) as eng, FakeEngine("llamacpp") as loading:
        loading.health_status = 503
        cells = cells_file(
            tmp_path,
            [
                {"node": "devbox", "engine": "llamacpp", "model": "up", "endpoint": eng.url},
                {"node": "devbox", "engine": "llamacpp", "model": "down", "endpoint": down},
                {"node": "devbox", "engine": "llamacpp", "model": "busy", "endpoint": loading.url},
            ],
        )
        with pytest.raises(RunnerError, match="--for-publication") as err:
            quiet_run(options(tmp_path, cells, for_publication=True))
        assert "devbox:llamacpp:down: unreachable" in str(err.value)
        assert not (tmp_path / "archive" / "ledgers").exists()
        outcome, _ = quiet_run(options(tmp_path, cells, warm=0, prompt_ids=("P-EASY",)))
    skips = {
        r["cell_id"]: r["reason"]
        for r in assert_valid_ledger(outcome.ledger)
        if r["type"] == "skip"
    }
    assert skips == {
        "devbox:llamacpp:down": "unreachable (ConnectError)",
        "devbox:llamacpp:busy": "server is loading the model (HTTP 503)",
    }
    assert "Skipped cells" in (outcome.package / "run.md").read_text()


def test_probe_timeout_is_one_second(tmp_path: Path) -> None:
    with FakeEngine("llamacpp") as slow:
        slow.health_delay_ms = 1500
        cells = cells_file(
            tmp_path, [{"node": "n", "engine": "llamacpp", "model": "m", "endpoint": slow.url}]
        )
        started = time.monotonic()
        outcome, _ = quiet_run(options(tmp_path, cells, probe_only=True))
        assert time.monotonic() - started < 1.45
    assert outcome.probes[0].reason == "no answer within 1 s"


def test_probe_prints_a_table_and_writes_nothing(tmp_path: Path) -> None:
    with FakeEngine("llamacpp") as eng:
        cells = cells_file(
            tmp_path,
            [
                {"node": "devbox", "engine": "llamacpp", "model": "m", "endpoint": eng.url},
                {
                    "node": "devbox",
                    "engine": "llamacpp",
                    "model": "gone",
                    "endpoint": f"http://127.0.0.1:{free_port()}",
                },
            ],
        )
        outcome, printed = quiet_run(options(tmp_path, cells, probe_only=True))
        assert eng.completions() == []
    assert outcome.run_id is None
    assert "devbox:llamacpp:m" in printed and "b9999-fake0000" in printed
    assert "SKIP" in printed and "unreachable" in printed
    assert not (tmp_path / "archive").exists()


def test_smoke_is_one_call(tmp_path: Path) -> None:
    with FakeEngine("llamacpp", tokens=2) as eng:
        cells = cells_file(
            tmp_path,
            [
                {"node": "a", "engine": "llamacpp", "model": "m1", "endpoint": eng.url},
                {"node": "a", "engine": "llamacpp", "model": "m2", "endpoint": eng.url},
            ],
        )
        outcome, _ = quiet_run(options(tmp_path, cells, smoke=True, prompt_ids=()))
        assert len(eng.completions()) == 1
    records = assert_valid_ledger(outcome.ledger)
    assert [r["type"] for r in records] == ["meta", "call", "end"]
    assert records[0]["smoke"] is True and records[0]["cells_planned"] == ["a:llamacpp:m1"]
    assert list(records[0]["prompts"]) == ["P-EASY"]


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_dirty_tree_is_refused_unless_allowed(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "harness.py").write_text("x = 1\n")
    with FakeEngine("llamacpp", tokens=1) as eng:
        cells = cells_file(
            tmp_path, [{"node": "n", "engine": "llamacpp", "model": "m", "endpoint": eng.url}]
        )
        with pytest.raises(RunnerError, match="--allow-dirty") as err:
            quiet_run(options(tmp_path, cells, git_dir=repo))
        assert "?? harness.py" in str(err.value)
        assert eng.completions() == []
        outcome, _ = quiet_run(
            options(
                tmp_path, cells, git_dir=repo, allow_dirty=True, warm=0, dirty_note="scratch file"
            )
        )
    meta = read_ledger(outcome.ledger).meta
    assert meta["git_dirty"] is True and meta["git_dirty_files"] == ["?? harness.py"]
    md = json.loads((outcome.package / "metadata.json").read_text())
    assert md["git"]["dirty_files"] == ["?? harness.py"]
    assert md["git"]["dirty_note"] == "scratch file"


def test_high_load_is_refused_unless_forced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(guards_mod, "load_average", lambda: [6.5, 3.0, 2.0])
    with FakeEngine("llamacpp", tokens=1) as eng:
        cells = cells_file(
            tmp_path, [{"node": "n", "engine": "llamacpp", "model": "m", "endpoint": eng.url}]
        )
        with pytest.raises(RunnerError, match=r"load average is 6.50 \(> 4.0\)"):
            quiet_run(options(tmp_path, cells, force_load=False))
        outcome, _ = quiet_run(options(tmp_path, cells, force_load=True, warm=0))
    assert read_ledger(outcome.ledger).meta["load_avg_start"] == [6.5, 3.0, 2.0]


def test_concurrency_keeps_n_requests_in_flight(tmp_path: Path) -> None:
    with FakeEngine("llamacpp", tokens=4, token_delay_ms=40) as eng:
        cells = cells_file(
            tmp_path, [{"node": "n", "engine": "llamacpp", "model": "m", "endpoint": eng.url}]
        )
        outcome, printed = quiet_run(
            options(tmp_path, cells, warm=8, concurrency=4, prompt_ids=("P-EASY",))
        )
        log = list(eng.in_flight_log)
    assert log[0] == 1  # the cold call runs alone
    assert max(log) == 4
    records = assert_valid_ledger(outcome.ledger)
    calls = [r for r in records if r["type"] == "call"]
    assert sorted(c["run_idx"] for c in calls if c["phase"] == "warm") == list(range(8))
    assert {c["worker"] for c in calls if c["phase"] == "warm"} == {0, 1, 2, 3}
    end = records[-1]
    # 8 warm calls of ~160 ms, 4 at a time: about 2 rounds -> ~25 req/s, 100 tok/s.
    assert 12 < end["request_throughput"] < 27
    assert end["output_tokens_per_sec"] == pytest.approx(4 * end["request_throughput"], rel=0.01)
    assert read_ledger(outcome.ledger).meta["concurrency"] == 4
    assert "warm capacity" in printed
    md = json.loads((outcome.package / "metadata.json").read_text())
    assert md["concurrency"] == 4 and "concurrency" in md["tags"]


def _spawn_run(tmp_path: Path, cells: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sitegen",
            "run",
            "--cells",
            str(cells),
            "--runs-dir",
            str(tmp_path / "archive" / "runs"),
            "--warm",
            "20",
            "--force-load",
            "-q",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_lines(ledgers: Path, n: int, proc: subprocess.Popen[str]) -> Path:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = list(ledgers.glob("*.jsonl")) if ledgers.exists() else []
        if found and len(found[0].read_text().splitlines()) >= n:
            return found[0]
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("runner did not record calls in time")


def test_killed_runner_leaves_a_ledger_that_packages_as_interrupted(tmp_path: Path) -> None:
    with FakeEngine("llamacpp", tokens=3, token_delay_ms=30) as eng:
        cells = cells_file(
            tmp_path, [{"node": "n", "engine": "llamacpp", "model": "m", "endpoint": eng.url}]
        )
        proc = _spawn_run(tmp_path, cells)
        ledger = _wait_for_lines(tmp_path / "archive" / "ledgers", 5, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    records = assert_valid_ledger(ledger)
    assert records[-1]["type"] == "call" and len(records) >= 5
    assert not (tmp_path / "archive" / "runs").exists()
    folder = package_ledger(ledger, runs_dir=tmp_path / "archive" / "runs")
    md = json.loads((folder / "metadata.json").read_text())
    assert md["status"] == "interrupted" and md["finished_at_utc"] is None
    assert "interrupted" in md["tags"]
    assert len((folder / "run.jsonl").read_text().splitlines()) == len(records)
    assert "no end record" in (folder / "run.log").read_text()


def test_sigint_writes_an_interrupted_end_record_and_packages(tmp_path: Path) -> None:
    with FakeEngine("llamacpp", tokens=3, token_delay_ms=30) as eng:
        cells = cells_file(
            tmp_path, [{"node": "n", "engine": "llamacpp", "model": "m", "endpoint": eng.url}]
        )
        proc = _spawn_run(tmp_path, cells)
        ledger = _wait_for_lines(tmp_path / "archive" / "ledgers", 4, proc)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    records = assert_valid_ledger(ledger)
    end = records[-1]
    assert end["type"] == "end" and end["interrupted"] is True
    assert end["interrupted_reason"] == "SIGINT"
    assert end["calls"] == sum(1 for r in records if r["type"] == "call")
    (folder,) = (tmp_path / "archive" / "runs").iterdir()
    md = json.loads((folder / "metadata.json").read_text())
    assert md["status"] == "interrupted" and md["finished_at_utc"] == end["finished_at_utc"]


def test_torn_last_line_is_dropped_and_noted(tmp_path: Path) -> None:
    with FakeEngine("llamacpp", tokens=1) as eng:
        cells = cells_file(
            tmp_path, [{"node": "n", "engine": "llamacpp", "model": "m", "endpoint": eng.url}]
        )
        outcome, _ = quiet_run(options(tmp_path, cells, warm=1, package=False))
    lines = outcome.ledger.read_text().splitlines()
    torn = tmp_path / "torn.jsonl"
    torn.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:25])
    folder = package_ledger(torn, runs_dir=tmp_path / "other" / "runs")
    assert json.loads((folder / "metadata.json").read_text())["status"] == "interrupted"
    assert "torn final ledger line" in (folder / "run.log").read_text()
    with pytest.raises(RunnerError, match="already exists"):
        package_ledger(torn, runs_dir=tmp_path / "other" / "runs")


def test_package_rejects_an_invalid_ledger(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"type":"meta","benchmark_run_id":"x","started_at_utc":"t",'
        '"cells_planned":[]}\n{"type":"call","cell_id":"c"}\n'
    )
    result = CliRunner().invoke(cli, ["package", str(bad), "--runs-dir", str(tmp_path / "r")])
    assert result.exit_code == 1
    assert "bad.jsonl:2: call record" in result.output
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


def test_cli_reports_config_errors_cleanly(tmp_path: Path) -> None:
    cells = tmp_path / "cells.yaml"
    cells.write_text(
        "cells:\n  - node: a\n    engine: nope\n    model: m\n    endpoint: http://127.0.0.1:1\n"
    )
    result = CliRunner().invoke(cli, ["run", "--cells", str(cells), "--force-load"])
    assert result.exit_code == 1
    assert f"error: {cells}:3:5: unknown engine 'nope'" in result.output
    assert "Traceback" not in result.output


def test_packaged_run_is_accepted_by_the_build(tmp_path: Path) -> None:
    build = pytest.importorskip("sitegen.build")
    with FakeEngine("llamacpp", tokens=3, token_delay_ms=2) as eng:
        cells = cells_file(
            tmp_path, [{"node": "devbox", "engine": "llamacpp", "model": "m", "endpoint": eng.url}]
        )
        outcome, _ = quiet_run(options(tmp_path, cells, warm=2))
    loaded = build.load(tmp_path / "archive")
    (run_,) = loaded.runs
    assert run_.run_id == outcome.run_id and run_.status == "complete"
    verdict = loaded.checks[outcome.run_id]
    # No git repository here: the build must say so rather than trust the run.
    assert verdict["verdict"] == "unreliable"
    assert any("git sha" in r for r in verdict["reasons"])


def test_non_finite_server_numbers_become_null(tmp_path: Path) -> None:
    from fake_engine import DONE, chunk, sse, usage_chunk

    timings = {"predicted_n": 1, "predicted_per_second": float("inf"), "prompt_ms": float("nan")}
    script = Script(
        [
            Step(5, sse(chunk({"content": "x"}))),
            Step(5, sse(chunk({}, "stop", timings=timings))),
            Step(5, sse(usage_chunk(3, 1))),
            Step(5, DONE),
        ]
    )
    with FakeEngine("llamacpp", tokens=1) as eng:
        eng.queue(script)
        cells = cells_file(
            tmp_path, [{"node": "n", "engine": "llamacpp", "model": "m", "endpoint": eng.url}]
        )
        outcome, _ = quiet_run(options(tmp_path, cells, warm=0, prompt_ids=("P-EASY",)))
    text = outcome.ledger.read_text()
    assert "NaN" not in text and "Infinity" not in text
    (call,) = [r for r in assert_valid_ledger(outcome.ledger) if r["type"] == "call"]
    assert call["server_timings"] == {
        "predicted_n": 1,
        "predicted_per_second": None,
        "prompt_ms": None,
    }
