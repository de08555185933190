"""Score results on the site: per run, and per model across runs, equal to the source."""

from __future__ import annotations

import json
from pathlib import Path

from bs4 import BeautifulSoup
from conftest import ROOT

from sitegen.build import build
from sitegen.importers import import_files
from sitegen.numfmt import readable

SAMPLES = ROOT / "tests" / "data" / "import"


def imported_archive(tmp_path: Path, *sources: Path) -> list[str]:
    """Import source files into tmp_path/runs; return the run ids."""
    import_files(list(sources), runs_dir=tmp_path / "runs", refresh=False)
    return sorted(p.name for p in (tmp_path / "runs").iterdir() if not p.name.startswith("."))


def page(path: Path) -> BeautifulSoup:
    return BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


def test_lm_eval_scores_on_the_run_page_equal_the_source(tmp_path):
    (run_id,) = imported_archive(tmp_path, SAMPLES / "results_2026-01-20T09-14-55.812345.json")
    build(tmp_path)
    source = json.loads((SAMPLES / "results_2026-01-20T09-14-55.812345.json").read_text())
    rows = page(tmp_path / "site" / "runs" / run_id / "index.html").select("table.results tbody tr")
    shown = {
        (cells[0].get_text(), cells[1].get_text()): cells[2]
        for cells in (r.select("td") for r in rows)
    }
    expected = source["results"]["arc_easy"]["acc,none"]
    # the page rounds for reading; the published ledger keeps the exact value
    assert shown[("arc_easy", "acc")].get_text() == readable(expected) == "0.617"
    ledger = (tmp_path / "site" / "runs" / run_id / "files" / "run.jsonl").read_text()
    records = [json.loads(line) for line in ledger.splitlines()]
    exact = {(r.get("name"), r.get("metric")): r.get("value") for r in records}
    assert exact[("arc_easy", "acc")] == expected


def test_model_page_compares_runs_of_the_same_task_and_metric_with_a_chart(tmp_path):
    # A second llama-bench run of the same model: the sample with other speeds.
    text = (SAMPLES / "llama-bench-cpu.jsonl").read_text().replace('"avg_ts": ', '"avg_ts": 1')
    edited = tmp_path / "src" / "llama-bench-later.jsonl"
    edited.parent.mkdir(parents=True)
    edited.write_text(text)
    ids = imported_archive(tmp_path, SAMPLES / "llama-bench-cpu.jsonl", edited)
    assert len(ids) == 2
    build(tmp_path)
    models = sorted((tmp_path / "site" / "models").glob("*/index.html"))
    scored = [p for p in models if page(p).select_one("table.scores")]
    assert scored, "a model page shows score results"
    model_page = page(scored[0])
    rows = model_page.select("table.scores tbody tr")
    runs_shown = {a.get_text() for a in model_page.select("table.scores a code")}
    assert len(runs_shown) == 2 and len(rows) >= 2
    svg = model_page.select_one("section#scores svg, section svg[id^=chart-score]")
    assert model_page.select("svg[id^=chart-score-]"), "a chart compares the two runs"
    assert svg is not None
    first = json.loads((SAMPLES / "llama-bench-cpu.jsonl").read_text().splitlines()[0])
    cells = model_page.select("table.scores td.num[data-value]")
    assert readable(first["avg_ts"], 4) in {td.get_text() for td in cells}
    assert first["avg_ts"] in {float(td["data-value"]) for td in cells}


def test_the_site_ships_the_sqlite_export_with_the_source_values(tmp_path):
    import sqlite3

    imported_archive(tmp_path, SAMPLES / "results_2026-01-20T09-14-55.812345.json")
    build(tmp_path)
    db = tmp_path / "site" / "data" / "archive.sqlite"
    data_page = page(tmp_path / "site" / "data" / "index.html")
    assert "data/archive.sqlite" in {a.get_text() for a in data_page.select("table.files a")}
    source = json.loads((SAMPLES / "results_2026-01-20T09-14-55.812345.json").read_text())
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA foreign_key_check").fetchall() == []
        (value,) = con.execute(
            "SELECT m.value FROM run_model_metrics m JOIN tasks t ON t.task_key = m.task_key "
            "WHERE t.name = 'arc_easy' AND m.metric = 'acc'"
        ).fetchone()
    assert value == source["results"]["arc_easy"]["acc,none"]
