"""The compare page's data and its script, without a browser.

``runs/<id>/samples.json`` must hold exactly what the build's verdicts are computed
from (the verdicts recomputed from two of them equal every row of every run's
comparison.json), ``compare/index.json`` the runs that can be compared and the
archive's settings; both validate against their schemas and are byte-identical on a
rebuild. ``assets/compare.js``, run under Node, must give ``sitegen compare``'s
verdicts, reasons and rounded numbers on pairs with known answers and on generated
ones with ties, large samples, errors and unlike facts. ``sitegen compare --cell-a
--cell-b`` compares two cells, guarded by their facts, not their names.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import ROOT, call_record, end_record, meta_record, metadata

from sitegen import schema
from sitegen.build import build
from sitegen.cli import main
from sitegen.compare import compare_cells, compare_row, facts_from_samples
from sitegen.verdicts import METRICS, Settings, fmt_ci, fmt_p, fmt_pct, row_json

SCRIPT = ROOT / "templates" / "assets" / "compare.js"
NODE = shutil.which("node")
CELL = "node-a:llamacpp:m1"
CELL_Q8 = "node-a:llamacpp:m1-q8"


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


# ---------------------------------------------------------------- the data files


def test_samples_reproduce_every_verdict_of_the_build(synthetic_archive: Path) -> None:
    build(synthetic_archive)
    site = synthetic_archive / "site"
    catalogue = _json(synthetic_archive / "catalogue.json")
    index = _json(site / "compare" / "index.json")
    assert schema.errors("compare-index.v1.json", index) == []
    settings = Settings(**{k: v for k, v in index["settings"].items() if k != "exact_max_n"})
    assert settings == Settings()  # the archive's settings (here the defaults)
    listed = {r["id"]: r for r in index["runs"]}
    docs = {}
    for rid, run in listed.items():
        doc = _json(site / run["samples"])
        assert schema.errors("samples.v1.json", doc) == [], rid
        assert sorted(doc["warm"]) == [c["id"] for c in run["cells"]]
        docs[rid] = doc
    # Every run with warm calls is listed, in the catalogue's order; no other has samples.
    with_warm = [e["id"] for e in catalogue["runs"] if e["comparison"] and e["cells"]]
    assert [r["id"] for r in index["runs"]] == [i for i in with_warm if i in listed]
    for entry in catalogue["runs"]:
        assert (site / "runs" / entry["id"] / "samples.json").is_file() == (entry["id"] in listed)
    checked = 0
    for entry in catalogue["runs"]:
        if not entry["comparison"] or not entry["comparison"]["baselines"]:
            continue
        rows = _json(site / entry["comparison"]["url"])["rows"]
        now = facts_from_samples(docs[entry["id"]], entry["title"])
        for row in rows:
            base = facts_from_samples(docs[row["baseline_id"]], row["baseline_id"])
            again = compare_row(now, base, row["cell_id"], row["prompt_id"], settings)
            assert again is not None and row_json(again) == row
            checked += 1
    assert checked > 20


def test_samples_hold_the_ledgers_warm_calls_and_guarded_facts(tmp_path: Path, write_run) -> None:
    calls = [
        call_record(run_idx=0, first_delta_ms=101.5, total_duration_ms=900.25, decode_tps=40.5),
        call_record(run_idx=1, first_delta_ms=99.125, total_duration_ms=880.0),
        call_record(run_idx=2, error="timeout", first_delta_ms=None, total_duration_ms=None),
        call_record(run_idx=3, phase="cold", first_delta_ms=500.0, total_duration_ms=1500.0),
    ]
    target = metadata()["targets"][0] | {"engine_version": "b0-unknown"}
    write_run(
        "r1",
        ledger=[meta_record("r1", concurrency=2), *calls, end_record(calls=4)],
        md=metadata("r1", targets=[target], concurrency=2),
    )
    build(tmp_path)
    doc = _json(tmp_path / "site" / "runs" / "r1" / "samples.json")
    sample = doc["warm"][CELL]["P-EASY"]
    assert sample["calls"] == 3 and sample["errors"] == 1  # the cold call is not a warm one
    # The calls recorded no ttft_ms: TTFT has no values, the first event has them.
    assert sample["ttft"] == [] and sample["first_event"] == [101.5, 99.125]
    assert sample["total"] == [900.25, 880.0]
    assert sample["decode_tps"] == [40.5] and sample["tokens_per_sec"] == [50.0, 50.0]
    assert sample["completion_tokens"] == [5, 5]
    assert doc["concurrency"] == 2
    # A placeholder engine version identifies no build: null, as the guard reads it.
    assert doc["targets"][CELL] == {
        "model_digest": "sha256:" + "0" * 64,
        "engine_version": None,
    }
    assert doc["prompts"] == {"P-EASY": hashlib.sha256(b"hi\n").hexdigest()}


def test_data_files_are_byte_identical_on_a_rebuild_from_scratch(
    synthetic_archive: Path, tmp_path: Path
) -> None:
    build(synthetic_archive)
    first = {
        p.relative_to(synthetic_archive / "site"): p.read_bytes()
        for p in (synthetic_archive / "site").rglob("*.json")
        if p.name in ("samples.json", "index.json")
    }
    shutil.rmtree(synthetic_archive / ".sitegen-cache")
    out = tmp_path / "again"
    build(synthetic_archive, out=out)
    again = {p: (out / p).read_bytes() for p in first}
    assert first == again and len(first) > 5


# ---------------------------------------------------------------- sitegen compare --cell-a/--cell-b


def _write(write_run, run_id: str, start: str, cells: dict[str, tuple[float, str]]) -> None:
    """A run measuring each cell (id -> (ttft of its calls, model digest)) on P-EASY."""
    jitter = (0.97, 1.0, 1.03, 0.99, 1.02, 1.01)
    calls = [
        call_record(
            cell_id=cell,
            run_idx=i,
            first_delta_ms=ttft * j,
            ttft_ms=ttft * j,
            total_duration_ms=ttft * j + 1000.0,
        )
        for cell, (ttft, _digest) in cells.items()
        for i, j in enumerate(jitter)
    ]
    targets = [
        metadata()["targets"][0] | {"cell_id": cell, "model": cell.split(":")[2], "model_digest": d}
        for cell, (_t, d) in cells.items()
    ]
    end = start.replace("T00:00:00Z", "T00:05:00Z")
    write_run(
        run_id,
        ledger=[
            meta_record(run_id, started_at_utc=start, cells_planned=list(cells)),
            *calls,
            end_record(finished_at_utc=end, calls=len(calls)),
        ],
        md=metadata(run_id, started_at_utc=start, finished_at_utc=end, targets=targets),
    )


@pytest.fixture
def two_cells(tmp_path: Path, write_run) -> Path:
    """One run with two cells: m1-q8 twice as slow; its digest differs from m1's. A second
    run with the same two cells recorded under the same digest (a node rename, say)."""
    _write(
        write_run,
        "quant",
        "2026-05-01T00:00:00Z",
        {CELL: (100.0, "sha256:" + "0" * 64), CELL_Q8: (200.0, "sha256:" + "8" * 64)},
    )
    _write(
        write_run,
        "same",
        "2026-05-02T00:00:00Z",
        {CELL: (100.0, "sha256:" + "0" * 64), CELL_Q8: (150.0, "sha256:" + "0" * 64)},
    )
    return tmp_path


def _compare(archive: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["compare", *args, "--archive", str(archive)])
    assert result.exit_code == 0, result.output
    return result.output


def test_two_cells_of_one_run_are_guarded_by_their_facts(two_cells: Path) -> None:
    out = _compare(two_cells, "quant", "quant", "--cell-a", CELL, "--cell-b", CELL_Q8)
    lines = out.splitlines()
    assert lines[0] == f"quant cell {CELL_Q8} against quant cell {CELL}"
    (row,) = [line for line in lines if line.startswith(CELL)]
    assert row.startswith(f"{CELL} → {CELL_Q8}")
    assert "+100.0%" in row  # the change is measured and shown...
    assert row.rstrip().endswith(  # ...but the models differ: not like-for-like, and only that
        "not like-for-like: model digest differs (sha256:"
        + "0" * 64
        + " vs sha256:"
        + "8" * 64
        + ")"
    )
    assert "0 regression(s), 0 win(s), 0 mixed, 1 not like-for-like" in out
    # Same recorded facts under another cell name: compared, and flagged.
    same = _compare(two_cells, "same", "same", "--cell-a", CELL, "--cell-b", CELL_Q8)
    (row,) = [line for line in same.splitlines() if line.startswith(CELL)]
    assert row.rstrip().endswith("regression: warm TTFT +50.0%")


def test_one_cell_option_compares_that_cell_of_both_runs(two_cells: Path) -> None:
    out = _compare(two_cells, "quant", "same", "--cell-b", CELL_Q8)
    assert out.splitlines()[0] == f"same cell {CELL_Q8} against quant cell {CELL_Q8}"
    rows = [line for line in out.splitlines() if line.startswith("node-a")]
    assert len(rows) == 1 and "model digest differs" in rows[0]
    whole = _compare(two_cells, "quant", "same")
    assert len([line for line in whole.splitlines() if line.startswith("node-a")]) == 2


def test_an_unknown_cell_is_a_clear_error(two_cells: Path) -> None:
    result = CliRunner().invoke(
        main, ["compare", "quant", "same", "--cell-a", "nope", "--archive", str(two_cells)]
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "runs/quant: no warm calls of cell 'nope'" in result.output


# ---------------------------------------------------------------- compare.js under Node

HARNESS = """
const api = require(process.argv[2]);
const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const shift = (m) => m.shift ? [m.shift.ratio, m.shift.low, m.shift.high, m.shift.p] : null;
const out = {
  cases: input.cases.map(c => api.compare(c.base, c.now, input.settings, input.metrics,
                                         c.ca || null, c.cb || null).rows.map(r => ({
    cell: r.cell, prompt: r.prompt, verdict: r.verdict, reason: r.reason,
    metrics: r.metrics.map(m => [m.status, m.reason, api.fmtPct(api.change(m)),
                                 api.fmtCi(m.shift), m.shift ? api.fmtP(m.shift.p) : null]),
    numbers: r.metrics.map(shift)}))),
  fixed: input.fixed.map(([x, d, plus, comma]) => api.fixed(x, d, plus, comma)),
  general: input.general.map(([x, p]) => api.general(x, p)),
  erfc: input.erfc.map(api.erfc),
  round: input.round.map((x) => api.roundTo(x, 6)),
};
process.stdout.write(JSON.stringify(out));
"""


def _node(tmp_path: Path, payload: dict[str, Any]) -> dict[str, Any]:
    if NODE is None:
        pytest.skip("node is not installed")
    harness = tmp_path / "harness.js"
    harness.write_text(HARNESS, encoding="utf-8")
    done = subprocess.run(
        [NODE, str(harness), str(SCRIPT)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def _settings_json(settings: Settings) -> dict[str, Any]:
    from sitegen.compare import compare_index

    return compare_index([], {}, settings)


def _doc(run_id: str, cells: dict[str, dict[str, dict[str, Any]]], **facts: Any) -> dict[str, Any]:
    digest = facts.get("digest", "sha256:" + "0" * 64)
    return {
        "format": "sitegen.samples/1",
        "id": run_id,
        "concurrency": facts.get("concurrency", 1),
        "prompts": facts.get("prompts", {"P-EASY": "a" * 64, "P-HARD": "b" * 64}),
        "targets": {
            c: {"model_digest": digest, "engine_version": facts.get("version", "b1")} for c in cells
        },
        "warm": cells,
    }


def _sample(rng: random.Random, n: int, scale: float, *, ties: bool, errors: int = 0) -> dict:
    def values(mean: float) -> list[float]:
        out = [mean * scale * rng.lognormvariate(0, 0.15) for _ in range(n)]
        return [round(v) if ties else round(v, 3) for v in out]

    tokens = [float(rng.choice((64, 64, 63))) if ties else 64.0 for _ in range(n)]
    decode = [round(50 / scale * rng.lognormvariate(0, 0.1), 3) for _ in range(n)]
    first = values(95.0)
    # Some runs recorded no ttft_ms (older ledgers): TTFT is then read as the first event.
    ttft = [] if rng.random() < 0.15 else values(100.0)
    return {
        "calls": n + errors,
        "errors": errors,
        "ttft": ttft,
        "first_event": first,
        "total": values(1000.0),
        "decode_tps": decode if rng.random() < 0.5 else decode[: n // 2],
        "tokens_per_sec": [round(v * 0.9, 3) for v in decode],
        "completion_tokens": tokens,
    }


def _cases(rng: random.Random) -> list[dict[str, Any]]:
    """Pairs with known answers, then generated ones of every size and kind."""
    cases = []
    sizes = (3, 4, 5, 6, 8, 12, 20, 21, 33, 50, 51, 64)
    for i in range(90):
        m, n = rng.choice(sizes), rng.choice(sizes)
        ties = rng.random() < 0.4
        scale = rng.choice((1.0, 1.0, 1.05, 1.15, 1.25, 1.3, 1.45, 2.0, 0.75, 0.6))
        base = {
            "P-EASY": _sample(rng, m, 1.0, ties=ties),
            "P-HARD": _sample(rng, m, 1.0, ties=ties),
        }
        now = {
            "P-EASY": _sample(rng, n, scale, ties=ties, errors=rng.choice((0, 0, 0, 1))),
            "P-HARD": _sample(rng, n, 1 / scale, ties=ties),
        }
        kind = i % 9
        facts: dict[str, Any] = {}
        if kind == 1:
            facts = {"digest": "sha256:" + "1" * 64}
        elif kind == 2:
            facts = {"version": None, "concurrency": 4}
        elif kind == 3:
            facts = {"prompts": {"P-EASY": "c" * 64}}
        b = _doc("a", {CELL: base, CELL_Q8: now})
        a = _doc("b", {CELL: now, "other:cell:x": base}, **facts)
        case: dict[str, Any] = {"base": b, "now": a}
        if kind == 4:
            case |= {"ca": CELL, "cb": CELL_Q8}
            case["now"] = b  # two cells of one run
        elif kind == 5:
            case |= {"cb": CELL}
        cases.append(case)
    return cases


def _python(case: dict[str, Any], settings: Settings) -> list[dict[str, Any]]:
    base = facts_from_samples(case["base"], "a")
    now = facts_from_samples(case["now"], "b")
    comparison = compare_cells(base, now, settings, case.get("ca"), case.get("cb"))
    return [
        {
            "cell": r.cell_id,
            "prompt": r.prompt_id,
            "verdict": r.verdict,
            "reason": r.reason,
            "metrics": [
                [
                    m.status,
                    m.reason,
                    fmt_pct(m.change),
                    fmt_ci(m.shift),
                    m.shift and fmt_p(m.shift.p),
                ]
                for m in r.metrics
            ],
            "numbers": [
                [m.shift.ratio, m.shift.low, m.shift.high, m.shift.p] if m.shift else None
                for m in r.metrics
            ],
        }
        for r in comparison.rows
    ]


def _p(shift: Any) -> str | None:
    return fmt_p(shift.p) if shift else None


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15)


@pytest.mark.parametrize(
    "settings",
    [Settings(), Settings(alpha=0.05, min_calls=3, tighten_at=10, ttft_regression=0.1)],
    ids=["defaults", "archive settings"],
)
def test_the_script_gives_the_verdicts_of_sitegen_compare(tmp_path: Path, settings) -> None:
    rng = random.Random(7)
    cases = _cases(rng)
    special = [0.25, 2.5, 0.125, -0.125, 1234567.5, 0.0025, 0.05, 99.95, -0.0, 1e-5, 123456789.0]
    values = special + [rng.uniform(-2000, 2000) for _ in range(300)]
    values += [round(rng.uniform(0, 100), rng.choice((1, 2, 3))) for _ in range(300)]
    payload = {
        "settings": _settings_json(settings)["settings"],
        "metrics": _settings_json(settings)["metrics"],
        "cases": cases,
        "fixed": [
            [x, d, plus, comma]
            for x in values
            for d, plus, comma in (
                (0, False, False),
                (1, True, False),
                (1, False, True),
                (2, False, False),
            )
        ],
        "general": [[x, p] for x in values for p in (2, 6)],
        "erfc": [i / 100 for i in range(0, 600)],
        "round": values,
    }
    got = _node(tmp_path, payload)
    expected_fixed = [
        format(x, ("+" if plus else "") + ("," if comma else "") + f".{d}f")
        for x, d, plus, comma in payload["fixed"]
    ]
    assert got["fixed"] == expected_fixed
    assert got["general"] == [format(x, f".{p}g") for x, p in payload["general"]]
    assert got["round"] == [round(x, 6) for x in values]
    for x, e in zip(payload["erfc"], got["erfc"], strict=True):
        assert math.isclose(e, math.erfc(x), rel_tol=1e-13), x
    verdicts: dict[str, int] = {}
    for case, js in zip(cases, got["cases"], strict=True):
        py = _python(case, settings)
        assert [{k: v for k, v in r.items() if k != "numbers"} for r in js] == [
            {k: v for k, v in r.items() if k != "numbers"} for r in py
        ]
        for rj, rp in zip(js, py, strict=True):
            verdicts[rp["verdict"]] = verdicts.get(rp["verdict"], 0) + 1
            for nj, np in zip(rj["numbers"], rp["numbers"], strict=True):
                assert (nj is None) == (np is None)
                if np is not None:
                    assert all(_close(a, b) for a, b in zip(nj, np, strict=True)), (nj, np)
    # The generated pairs reach every verdict the build gives.
    assert {"regression", "win", "within noise", "too few calls", "not like-for-like"} <= set(
        verdicts
    ), verdicts
    assert len(METRICS) == len(payload["metrics"])
