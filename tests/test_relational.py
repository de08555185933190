"""The SQLite export: complete, referentially sound, equal to its sources,
byte-reproducible, and the example queries of docs/relational.md answer
what the source files say."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    PROMPT_SHA,
    ROOT,
    call_record,
    end_record,
    generate_archive,
    meta_record,
    metadata,
)

from sitegen import relational
from sitegen.build import load
from sitegen.catalogue import split_cell
from sitegen.domain import Loaded
from sitegen.exceptions import BuildError
from sitegen.importers import import_files
from sitegen.relational import CALL_COLUMNS, write_sqlite

DATA = ROOT / "tests" / "data" / "import"
LM_EVAL = "results_2026-01-20T09-14-55.812345.json"
SAMPLES = (
    "mlx-throughput.json",
    "nexus-record.json",
    "bench-output-ok.json",
    "bench-output-error.json",
    "vllm-serve-detailed.json",
    "vllm-serve-summary.json",
    "llama-bench-rtx4070.json",
    "llama-bench-cpu.jsonl",
    LM_EVAL,
)
RETRACTED = "synthetic-00004"


def _queries() -> dict[str, str]:
    text = (ROOT / "docs" / "relational.md").read_text(encoding="utf-8")
    return dict(re.findall(r"^### (Q\d)\..*?```sql\n(.*?)```", text, re.S | re.M))


QUERIES = _queries()


@dataclass
class Built:
    archive: Path
    loaded: Loaded
    db: Path
    imported: dict[str, str]  # sample file -> run id

    def query(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        con = sqlite3.connect(self.db)
        con.row_factory = sqlite3.Row
        try:
            return con.execute(sql, args).fetchall()
        finally:
            con.close()


def _records(archive: Path, run_id: str) -> Iterator[tuple[int, dict[str, Any]]]:
    path = archive / "runs" / run_id / "run.jsonl"
    if path.is_file():
        for number, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
            yield number, json.loads(line)


def _source(name: str) -> Any:
    if name.endswith(".jsonl"):
        return [json.loads(line) for line in (DATA / name).read_text("utf-8").splitlines()]
    return json.loads((DATA / name).read_text("utf-8"))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The generator's archive plus every realistic import sample, exported once."""
    archive = tmp_path_factory.mktemp("archive")
    generate_archive.generate(archive, 13, warm=2, cells=2, prompts=2, seed=3)
    report = import_files([DATA / n for n in SAMPLES], runs_dir=archive / "runs", refresh=False)
    imported = {Path(r.source).name: r.run_id for r in report.runs}
    (archive / "retractions.toml").write_text(
        f'[{RETRACTED}]\nreason = "test retraction"\ndate = "2026-02-01"\n', encoding="utf-8"
    )
    loaded = load(archive, use_cache=False)
    db = tmp_path_factory.mktemp("out") / "archive.sqlite"
    write_sqlite(db, loaded)
    return Built(archive, loaded, db, imported)


def test_references_are_sound_and_the_schema_is_versioned(built: Built) -> None:
    con = sqlite3.connect(built.db)
    try:
        assert con.execute("PRAGMA foreign_key_check").fetchall() == []
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert con.execute("PRAGMA page_size").fetchone() == (relational.PAGE_SIZE,)
        assert con.execute("PRAGMA user_version").fetchone() == (relational.SCHEMA_VERSION,)
        assert dict(con.execute("SELECT key, value FROM meta")) == {
            "format": "sitegen.relational",
            "schema_version": "1",
            "calls_table": "complete",
        }
        # Declared, not just implied: calls reference runs, cells, models and prompts.
        targets = {row[2] for row in con.execute("PRAGMA foreign_key_list(calls)")}
        assert targets == {"runs", "cells", "models", "prompts"}
    finally:
        con.close()


def test_row_counts_equal_the_ledgers(built: Built) -> None:
    runs = {r.run_id: r for r in built.loaded.runs}
    assert [r["run_id"] for r in built.query("SELECT run_id FROM runs ORDER BY run_id")] == sorted(
        runs
    )
    counts = {
        table: {
            row[0]: row[1]
            for row in built.query(f"SELECT run_id, COUNT(*) FROM {table} GROUP BY run_id")
        }
        for table in ("calls", "skips", "run_model_metrics")
    }
    for rid, run in runs.items():
        ledger = run.ledger
        assert counts["calls"].get(rid, 0) == (ledger.calls if ledger else 0), rid
        assert counts["skips"].get(rid, 0) == (len(ledger.skips) if ledger else 0), rid
        assert counts["run_model_metrics"].get(rid, 0) == (len(ledger.results) if ledger else 0)
    total = built.query("SELECT COUNT(*) FROM calls")[0][0]
    assert total == built.loaded.calls.height > 100
    assert sum(counts["run_model_metrics"].values()) == 122


def test_call_timings_equal_the_ledger_values(built: Built) -> None:
    rows = {
        (r["run_id"], r["line"]): r
        for r in built.query(
            "SELECT c.*, cells.cell_id, p.prompt_id, m.name AS model FROM calls c "
            "JOIN cells USING (cell_key) JOIN prompts p USING (prompt_key) "
            "LEFT JOIN models m ON m.model_key = c.model_key"
        )
    }
    seen = 0
    for run in built.loaded.runs:
        for line, rec in _records(built.archive, run.run_id):
            if rec["type"] != "call":
                continue
            row = rows[(run.run_id, line)]
            for column in CALL_COLUMNS:
                expected = rec.get(column)
                if isinstance(expected, bool):
                    expected = int(expected)
                assert row[column] == expected, (run.run_id, line, column)
            assert row["cell_id"] == rec["cell_id"]
            assert row["prompt_id"] == rec["prompt_id"]
            assert row["model"] == split_cell(rec["cell_id"])["model"]
            seen += 1
    assert seen == len(rows) == built.loaded.calls.height


def test_imported_scores_equal_the_source_files(built: Built) -> None:
    def metric(sample: str, name: str, metric: str) -> sqlite3.Row:
        (row,) = built.query(
            "SELECT x.value, x.stderr, x.unit, x.higher_is_better FROM run_model_metrics x "
            "JOIN tasks t USING (task_key) WHERE x.run_id = ? AND t.name = ? AND x.metric = ?",
            built.imported[sample],
            name,
            metric,
        )
        return row

    lm = _source(LM_EVAL)["results"]
    arc = metric(LM_EVAL, "arc_easy", "acc")
    assert (arc["value"], arc["stderr"]) == (
        lm["arc_easy"]["acc,none"],
        lm["arc_easy"]["acc_stderr,none"],
    )
    gsm = metric(LM_EVAL, "gsm8k", "exact_match,strict-match")
    assert gsm["value"] == lm["gsm8k"]["exact_match,strict-match"]
    lambada = metric(LM_EVAL, "lambada_openai", "acc")  # stderr "N/A" in the source
    assert (lambada["value"], lambada["stderr"]) == (lm["lambada_openai"]["acc,none"], None)

    for sample, rows in (
        ("llama-bench-rtx4070.json", _source("llama-bench-rtx4070.json")),
        ("llama-bench-cpu.jsonl", _source("llama-bench-cpu.jsonl")),
    ):
        tg = next(r for r in rows if r["n_gen"] == 128 and r["n_depth"] == 0)
        got = metric(sample, "tg128", "tokens_per_sec")
        assert (got["value"], got["unit"], got["higher_is_better"]) == (tg["avg_ts"], "tok/s", 1)

    for sample in ("vllm-serve-detailed.json", "vllm-serve-summary.json"):
        source = _source(sample)
        name = source.get("label") or "bench-serve"
        got = metric(sample, name, "median_ttft_ms")
        assert (got["value"], got["unit"], got["higher_is_better"]) == (
            source["median_ttft_ms"],
            "ms",
            0,
        )


def test_vllm_per_request_timings_become_calls(built: Built) -> None:
    source = _source("vllm-serve-detailed.json")
    rows = built.query(
        "SELECT run_idx, ttft_ms, total_duration_ms, prompt_tokens, completion_tokens, error "
        "FROM calls WHERE run_id = ? ORDER BY run_idx",
        built.imported["vllm-serve-detailed.json"],
    )
    assert len(rows) == len(source["ttfts"]) == 6
    for row, ttft, latency, n_in, error in zip(
        rows,
        source["ttfts"],
        source["latencies"],
        source["input_lens"],
        source["errors"],
        strict=True,
    ):
        assert row["prompt_tokens"] == n_in
        if error:
            assert row["error"] and row["ttft_ms"] is None
        else:
            assert row["ttft_ms"] == pytest.approx(ttft * 1000, rel=1e-12)
            assert row["total_duration_ms"] == pytest.approx(latency * 1000, rel=1e-12)


def test_entities_are_deduplicated_by_their_natural_keys(built: Built) -> None:
    # The synthetic runs share two nodes, however many runs used them.
    nodes = built.query("SELECT name, COUNT(*) AS n FROM nodes GROUP BY name")
    assert all(r["n"] == 1 for r in nodes)
    assert {"synth-a", "synth-b", "nvidia-l4", "apple-m4-max"} <= {r["name"] for r in nodes}
    # Unknown parts of imported cell ids are NULL keys, not nodes called "unknown-node".
    assert not built.query("SELECT 1 FROM nodes WHERE name LIKE 'unknown-%'")
    assert not built.query("SELECT 1 FROM engines WHERE name LIKE 'unknown-%'")
    # A model whose digest one run did not record is a second row, never merged.
    demo = built.query(
        "SELECT version FROM models WHERE name = 'demo-0.5b-q4_k_m' ORDER BY version"
    )
    assert demo[0]["version"] is None and demo[1]["version"].startswith("sha256:")
    (pythia,) = built.query("SELECT * FROM models WHERE name = 'pythia-410m-deduped'")
    lm = _source(LM_EVAL)["config"]
    assert pythia["parameter_count"] == lm["model_num_parameters"]
    (qwen,) = built.query("SELECT DISTINCT provider FROM models WHERE name LIKE 'Qwen/%'")
    assert qwen["provider"] == "Qwen"
    # One prompt row per (id, text), shared by all runs; canonical texts are verified.
    easy = built.query("SELECT * FROM prompts WHERE prompt_id = 'P-EASY'")
    assert len(easy) == 1
    assert easy[0]["text"] == "hi\n" and easy[0]["id_conflict"] == 0
    assert easy[0]["first_run_id"] == "synthetic-00000"
    (task,) = built.query("SELECT description FROM tasks WHERE name = 'P-EASY'")
    assert task["description"].startswith("trivial")  # the canonical prompt's intent
    (serve,) = built.query("SELECT sha256, text FROM prompts WHERE prompt_id = 'bench-serve'")
    assert tuple(serve) == (None, None)


def test_runs_carry_provenance_and_verdicts(built: Built) -> None:
    runs = {r["run_id"]: r for r in built.query("SELECT * FROM runs")}
    for run in built.loaded.runs:
        row = runs[run.run_id]
        assert row["digest"] == run.digest
        assert row["status"] == run.status
        assert row["verdict"] == built.loaded.checks[run.run_id]["verdict"]
        assert row["started_at_utc"] == run.started_at
        assert row["synthetic"] == int(run.synthetic)
    lm = runs[built.imported[LM_EVAL]]
    assert (lm["source_format"], lm["runner_name"], lm["runner_version"]) == (
        "lm-eval",
        "lm-evaluation-harness",
        _source(LM_EVAL)["lm_eval_version"],
    )
    synth = runs["synthetic-00000"]
    assert synth["submitter"] == "sitegen synthetic generator"
    assert (synth["runner_name"], synth["runner_version"], synth["source_format"]) == (
        "synthetic-generator",
        "1",
        None,
    )
    assert runs[RETRACTED]["retracted"] == 1
    assert runs[RETRACTED]["retraction_reason"] == "test retraction"
    assert sum(r["retracted"] for r in runs.values()) == 1
    assert runs["synthetic-00005"]["status"] == "meta-only"
    failed = built.query(
        "SELECT run_id, detail FROM run_checks WHERE ok = 0 AND check_id = 'load_avg'"
    )
    assert "synthetic-00003" in {r["run_id"] for r in failed}


def test_the_file_is_byte_identical_across_writes_and_locations(
    built: Built, tmp_path: Path
) -> None:
    again = tmp_path / "again.sqlite"
    write_sqlite(again, built.loaded)
    assert again.read_bytes() == built.db.read_bytes()
    # The same archive copied elsewhere and read afresh: still the same bytes.
    copy = tmp_path / "copy"
    shutil.copytree(built.archive / "runs", copy / "runs")
    shutil.copy(built.archive / "retractions.toml", copy / "retractions.toml")
    elsewhere = tmp_path / "elsewhere.sqlite"
    write_sqlite(elsewhere, load(copy, use_cache=False))
    assert (
        hashlib.sha256(elsewhere.read_bytes()).digest()
        == hashlib.sha256(built.db.read_bytes()).digest()
    )


def test_a_failed_write_leaves_the_old_file(
    built: Built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "archive.sqlite"
    target.write_bytes(b"previous export")

    def broken(con: sqlite3.Connection, sql: str, rows: Any) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(relational, "_insert", broken)
    with pytest.raises(BuildError, match="SQLite export failed: disk I/O error"):
        write_sqlite(target, built.loaded)
    assert target.read_bytes() == b"previous export"
    assert [p.name for p in tmp_path.iterdir()] == ["archive.sqlite"]


# --- the documented example queries --------------------------------------------


def test_the_docs_hold_six_tested_queries() -> None:
    assert sorted(QUERIES) == ["Q1", "Q2", "Q3", "Q4", "Q5", "Q6"]


def test_q1_warm_ttft_p50_per_model(built: Built) -> None:
    samples: dict[str, list[float]] = {}
    for run in built.loaded.runs:
        if run.run_id == RETRACTED:
            continue
        models = {t["cell_id"]: t["model"] for t in run.metadata.get("targets") or []}
        for _, rec in _records(built.archive, run.run_id):
            if (
                rec["type"] == "call"
                and rec["phase"] == "warm"
                and rec["error"] is None
                and rec.get("ttft_ms") is not None
            ):
                samples.setdefault(models[rec["cell_id"]], []).append(rec["ttft_ms"])
    got = {r["model"]: (r["warm_ttft_p50_ms"], r["calls"]) for r in built.query(QUERIES["Q1"])}
    assert set(got) == set(samples) >= {"demo-0.5b-q4_k_m", "Qwen/Qwen2.5-1.5B-Instruct"}
    for model, values in samples.items():
        assert got[model][0] == pytest.approx(statistics.median(values), rel=1e-12)
        assert got[model][1] == len(values)


def test_q2_best_score_per_task(built: Built) -> None:
    groups: dict[tuple[str, str], list[tuple[float, bool]]] = {}
    for run in built.loaded.runs:
        for rec in run.ledger.results if run.ledger else []:
            if rec.get("higher_is_better") is not None and rec["value"] is not None:
                groups.setdefault((rec["name"], rec["metric"]), []).append(
                    (rec["value"], rec["higher_is_better"])
                )
    expected = {
        key: (max if values[0][1] else min)(v for v, _ in values) for key, values in groups.items()
    }
    got = {(r["task"], r["metric"]): r for r in built.query(QUERIES["Q2"])}
    assert {k: r["value"] for k, r in got.items()} == expected
    # Spot checks against the source files themselves.
    lm = _source(LM_EVAL)["results"]
    assert got[("hellaswag", "acc_norm")]["value"] == lm["hellaswag"]["acc_norm,none"]
    assert got[("hellaswag", "acc_norm")]["model"] == "pythia-410m-deduped"
    rows = _source("llama-bench-rtx4070.json") + _source("llama-bench-cpu.jsonl")
    pp = [r["avg_ts"] for r in rows if (r["n_prompt"], r["n_gen"], r["n_depth"]) == (512, 0, 0)]
    assert got[("pp512", "tokens_per_sec")]["value"] == max(pp)


def test_q3_runs_per_node(built: Built) -> None:
    expected: dict[str, set[str]] = {}
    for run in built.loaded.runs:
        for target in run.metadata.get("targets") or []:
            node = target.get("node") or split_cell(target["cell_id"])["node"]
            if node != "unknown-node":
                expected.setdefault(node, set()).add(run.run_id)
    got = [(r["node"], r["runs"]) for r in built.query(QUERIES["Q3"])]
    assert dict(got) == {node: len(ids) for node, ids in expected.items()}
    assert got[0][0] in ("synth-a", "synth-b")  # busiest first
    assert dict(got)["synth-a"] == 13  # every synthetic run, meta-only ones included


def test_q4_scores_of_one_model_with_stderr(built: Built) -> None:
    source = _source(LM_EVAL)
    expected = set()
    for task, values in source["results"].items():
        for key, value in values.items():
            if "," not in key or "_stderr," in key:
                continue
            name, filt = key.split(",", 1)
            stderr = values.get(f"{name}_stderr,{filt}")
            expected.add(
                (
                    task,
                    name if filt == "none" else key,
                    value,
                    None if stderr == "N/A" else stderr,
                    source["n-shot"][task],
                )
            )
    got = {tuple(r) for r in built.query(QUERIES["Q4"])}
    assert got == expected
    assert len(got) == 8


def test_q5_reported_median_ttft_next_to_the_calls(built: Built) -> None:
    got = {r["run_id"]: r for r in built.query(QUERIES["Q5"])}
    detailed = _source("vllm-serve-detailed.json")
    summary = _source("vllm-serve-summary.json")
    d = got[built.imported["vllm-serve-detailed.json"]]
    s = got[built.imported["vllm-serve-summary.json"]]
    assert len(got) == 2
    assert d["reported_median_ms"] == detailed["median_ttft_ms"]
    assert s["reported_median_ms"] == summary["median_ttft_ms"]
    ok = [t * 1000 for t, e in zip(detailed["ttfts"], detailed["errors"], strict=True) if not e]
    assert d["calls_median_ms"] == pytest.approx(statistics.median(ok), rel=1e-12)
    assert d["calls_median_ms"] == pytest.approx(d["reported_median_ms"], rel=1e-9)
    assert s["calls_median_ms"] is None  # the summary file has no per-request data
    assert d["model"] == detailed["model_id"]


# --- a small hand-written archive: skips, extra fields, corrections -------------


@pytest.fixture
def small(write_run: Any, tmp_path: Path) -> Built:
    """b-orig with rich call records and skips; a-fix corrects it with an edited prompt."""
    extra_call = call_record(
        run_idx=1,
        ttft_ms=95.5,
        itl_p50_ms=12.25,
        itl_p95_ms=20.0,
        itl_max_ms=31.0,
        request_offset_ms=0,
        worker=0,
        cache_prompt=True,
        http_status=200,
        server_timings={"prompt_ms": 3.5, "predicted_n": 5},
        gpu_temp_c=61,
    )
    write_run(
        "b-orig",
        [
            meta_record("b-orig"),
            call_record(),
            extra_call,
            {"type": "skip", "cell_id": "node-a:ollama:m2", "reason": "probe failed"},
            {
                "type": "call",
                "cell_id": "node-a:llamacpp:m1",
                "prompt_id": "P-EASY",
                "phase": "skipped",
                "error": "ConnectError: refused",
            },
            end_record(calls=2),
        ],
    )
    edited = hashlib.sha256(b"hello\n").hexdigest()
    prompts = {"P-EASY": {"sha256": edited, "max_tokens": 64}}
    write_run(
        "a-fix",
        [
            meta_record("a-fix", started_at_utc="2026-05-02T10:00:00Z", prompts=prompts),
            call_record(),
            end_record(finished_at_utc="2026-05-02T10:05:00Z"),
        ],
        md=metadata(
            "a-fix",
            supersedes="b-orig",
            started_at_utc="2026-05-02T10:00:00Z",
            finished_at_utc="2026-05-02T10:05:00Z",
            prompts=prompts,
        ),
    )
    (tmp_path / "retractions.toml").write_text(
        '[b-orig]\nreason = "wrong engine build"\ndate = "2026-05-03"\n', encoding="utf-8"
    )
    loaded = load(tmp_path, use_cache=False)
    db = tmp_path / "out" / "archive.sqlite"
    write_sqlite(db, loaded)
    return Built(tmp_path, loaded, db, {})


def test_skips_extra_fields_and_corrections(small: Built) -> None:
    con = sqlite3.connect(small.db)
    try:
        assert con.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        con.close()
    skips = small.query(
        "SELECT s.run_id, s.line, c.cell_id, s.reason FROM skips s JOIN cells c USING (cell_key) "
        "ORDER BY s.line"
    )
    assert [tuple(r) for r in skips] == [
        ("b-orig", 4, "node-a:ollama:m2", "probe failed"),
        ("b-orig", 5, "node-a:llamacpp:m1", "ConnectError: refused"),
    ]
    # A cell only a skip names is still a cell, with what its id says.
    (m2,) = small.query(
        "SELECT rc.declared, m.name, e.name AS engine FROM run_cells rc "
        "JOIN cells c USING (cell_key) JOIN models m USING (model_key) "
        "JOIN engines e USING (engine_key) WHERE c.cell_id = 'node-a:ollama:m2'"
    )
    assert tuple(m2) == (0, "m2", "ollama")
    (rich,) = small.query("SELECT * FROM calls WHERE run_id = 'b-orig' AND line = 3")
    assert (rich["ttft_ms"], rich["itl_p50_ms"], rich["itl_max_ms"]) == (95.5, 12.25, 31.0)
    assert (rich["cache_prompt"], rich["http_status"], rich["worker"]) == (1, 200, 0)
    assert json.loads(rich["server_timings_json"]) == {"prompt_ms": 3.5, "predicted_n": 5}
    assert json.loads(rich["extra_json"]) == {"gpu_temp_c": 61}
    runs = {r["run_id"]: r for r in small.query("SELECT * FROM runs")}
    assert runs["a-fix"]["supersedes"] == "b-orig"
    assert (runs["b-orig"]["retracted"], runs["b-orig"]["retraction_date"]) == (1, "2026-05-03")
    assert runs["a-fix"]["verdict"] == "unreliable"


def test_q6_prompt_ids_whose_text_changed(small: Built) -> None:
    got = [tuple(r) for r in small.query(QUERIES["Q6"])]
    edited = hashlib.sha256(b"hello\n").hexdigest()
    # b-orig started first, so its text is the original; a-fix's is the edit.
    assert sorted(got, key=lambda r: r[2]) == [
        ("P-EASY", edited, "a-fix", 1),
        ("P-EASY", PROMPT_SHA, "b-orig", 1),
    ]
    texts = {
        r[0]: r[1] for r in small.query("SELECT sha256, text FROM prompts WHERE id_conflict = 1")
    }
    assert texts == {PROMPT_SHA: "hi\n", edited: None}  # only the canonical text is verified
    (check,) = small.query(
        "SELECT ok, detail FROM run_checks WHERE run_id = 'a-fix' AND check_id = 'prompts_frozen'"
    )
    assert check["ok"] == 0 and "P-EASY" in check["detail"]


# --- exports without calls, and exports that reuse a previous one ---------------------


def _tables(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    con = sqlite3.connect(db)
    try:
        names = [r[0] for r in con.execute("SELECT name FROM sqlite_schema WHERE type='table'")]
        return {name: con.execute(f"SELECT * FROM {name}").fetchall() for name in names}
    finally:
        con.close()


def test_without_calls_every_other_table_is_complete(built: Built, tmp_path: Path) -> None:
    db = tmp_path / "nocalls.sqlite"
    write_sqlite(db, built.loaded, calls=False)
    without, full = _tables(db), _tables(built.db)
    assert without["calls"] == [] and len(full["calls"]) == built.loaded.calls.height
    assert ("calls_table", "omitted") in without["meta"]
    for table in set(full) - {"calls", "meta"}:
        assert without[table] == full[table], table


@pytest.mark.parametrize("calls", [True, False])
def test_an_export_from_a_previous_one_is_the_same_file(
    built: Built, tmp_path: Path, calls: bool
) -> None:
    loaded = built.loaded
    fresh = tmp_path / "fresh.sqlite"
    write_sqlite(fresh, loaded, calls=calls)
    ids = sorted(r.run_id for r in loaded.runs)
    # The previous export lacks runs (imported ones bring their own models,
    # cells and tasks, so the keys of the others shift) and holds one whose
    # check has changed since.
    gone = {built.imported[LM_EVAL], built.imported["vllm-serve-detailed.json"], ids[0]}
    changed = ids[3]
    flipped = {"reliable": "unreliable", "unreliable": "reliable"}[
        loaded.checks[changed]["verdict"]
    ]
    checks = {**loaded.checks, changed: {**loaded.checks[changed], "verdict": flipped}}
    before = dataclasses.replace(
        loaded, runs=[r for r in loaded.runs if r.run_id not in gone], checks=checks
    )
    previous = tmp_path / "previous.sqlite"
    write_sqlite(previous, before, calls=calls)
    base = relational.Base(previous, relational.run_keys(before))
    assert relational.run_keys(before)[changed] != relational.run_keys(loaded)[changed]
    merged = tmp_path / "merged.sqlite"
    write_sqlite(merged, loaded, calls=calls, base=base)
    assert merged.read_bytes() == fresh.read_bytes()
    # And the other way: runs removed since the previous export.
    smaller = dataclasses.replace(loaded, runs=[r for r in loaded.runs if r.run_id not in gone])
    write_sqlite(
        merged, smaller, calls=calls, base=relational.Base(fresh, relational.run_keys(loaded))
    )
    write_sqlite(fresh, smaller, calls=calls)
    assert merged.read_bytes() == fresh.read_bytes()


def test_without_calls_no_skip_result_or_inferred_cell_is_missed(
    write_run: Any, tmp_path: Path
) -> None:
    # A skip whose type is written with an escape, and a call naming a cell
    # and a prompt the run does not declare: the call-less export must still
    # list them, exactly as the full export does.
    escaped = '{"type": "\\u0073kip", "cell_id": "node-a:ollama:m2", "reason": "escaped"}'
    undeclared = call_record(cell_id="node-b:vllm:m3", prompt_id="P-NEW")
    write_run(
        "r1",
        [meta_record("r1"), call_record(), escaped, undeclared, end_record(calls=2)],
    )
    loaded = load(tmp_path, use_cache=False)
    full, without = tmp_path / "full.sqlite", tmp_path / "without.sqlite"
    write_sqlite(full, loaded)
    write_sqlite(without, loaded, calls=False)
    a, b = _tables(full), _tables(without)
    assert len(a["calls"]) == 2 and b["calls"] == []
    for table in set(a) - {"calls", "meta"}:
        assert a[table] == b[table], table
    assert [r[-1] for r in b["skips"]] == ["escaped"]
    cells = {r[1] for r in b["cells"]}
    assert "node-b:vllm:m3" in cells
    assert "P-NEW" in {r[1] for r in b["prompts"]}


def test_an_alias_added_later_renames_the_node_in_the_export_as_a_cold_build_does(
    tmp_path: Path,
) -> None:
    """The export reuses the rows of unchanged runs from the previous one; an alias
    changes the canonical names of runs whose files did not change, so after the
    publisher adds one the file equals a cold build's."""
    archive = tmp_path / "archive"
    generate_archive.generate(archive, 4, warm=2, cells=2, prompts=2, seed=3)

    def build(folder: Path) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "sitegen", "build"], cwd=folder, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout + done.stderr

    build(archive)
    (archive / "sitegen.toml").write_text('[aliases.node]\n"synth-b" = "bench-b"\n')
    build(archive)
    cold = tmp_path / "cold"
    shutil.copytree(
        archive, cold, ignore=shutil.ignore_patterns(".sitegen-cache", "site", ".site*")
    )
    build(cold)
    exported = archive / "site" / "data" / "archive.sqlite"
    with sqlite3.connect(exported) as con:
        nodes = {name for (name,) in con.execute("SELECT name FROM nodes")}
    con.close()
    assert nodes == {"synth-a", "bench-b"}
    assert exported.read_bytes() == (cold / "site" / "data" / "archive.sqlite").read_bytes()
