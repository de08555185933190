"""Data downloads: every call as Parquet and CSV (whole, or split by month in
large archives), the aggregates and the SQLite export; linked from the index,
identical bytes on rebuild, and cached so that an unchanged archive writes
nothing and a new run rewrites only its own month's files."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
import sqlite3
import statistics
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from bs4 import BeautifulSoup
from conftest import ROOT, generate_archive

from sitegen import downloads as dl
from sitegen import relational
from sitegen.build import build, load
from sitegen.config import Config
from sitegen.domain import Loaded
from sitegen.importers import import_files
from sitegen.ledger import sort_calls
from sitegen.pages.theme import environment

IMPORTS = ROOT / "tests" / "data" / "import"
WHOLE = [
    "data/calls.parquet",
    "data/calls.csv",
    "data/aggregates.parquet",
    "data/aggregates.csv",
    "data/archive.sqlite",
    "data/datapackage.json",  # describes the files above (tests/test_datapackage.py)
]


def test_calls_and_aggregates_are_downloadable_and_match_the_archive(tmp_path: Path):
    generate_archive.generate(tmp_path, 6, warm=2, cells=2, prompts=2, seed=7)
    build(tmp_path)
    data = tmp_path / "site" / "data"
    calls = pl.read_parquet(data / "calls.parquet")
    catalogue = json.loads((tmp_path / "catalogue.json").read_text())
    assert calls.columns[0] == "run_id" and "first_delta_ms" in calls.columns
    per_run = dict(calls.group_by("run_id").len().iter_rows())
    for entry in catalogue["runs"]:
        if entry["status"] == "complete":
            assert per_run[entry["id"]] == entry["counts"]["calls"]
    # The same rows as CSV (empty fields for nulls).
    csv = pl.read_csv(data / "calls.csv", schema=calls.schema)
    assert csv.equals(calls)
    # Aggregates hold the numbers the pages show.
    aggregates = pl.read_parquet(data / "aggregates.parquet")
    entry = next(e for e in catalogue["runs"] if e["status"] == "complete")
    cell, prompts = next(iter(entry["headline"]["warm_first_delta_ms_p50"].items()))
    prompt, value = next(iter(prompts.items()))
    row = aggregates.filter(
        (pl.col("run_id") == entry["id"])
        & (pl.col("cell_id") == cell)
        & (pl.col("prompt_id") == prompt)
        & (pl.col("phase") == "warm")
    )
    assert row["first_delta_ms_p50"].item() == value
    # Linked from the index and described on the data page.
    index = BeautifulSoup((tmp_path / "site" / "index.html").read_text(), "html.parser")
    hrefs = {a["href"] for a in index.select("a[download]")}
    assert {"data/calls.parquet", "data/calls.csv", "data/aggregates.parquet"} <= hrefs
    page = (data / "index.html").read_text()
    assert "read_parquet" in page and "FROM 'calls.parquet'" in page


def test_downloads_are_byte_identical_on_rebuild(tmp_path: Path):
    generate_archive.generate(tmp_path, 3, warm=2, cells=1, prompts=2, seed=2)
    build(tmp_path)
    first = {p.name: p.read_bytes() for p in (tmp_path / "site" / "data").iterdir()}
    build(tmp_path)
    second = {p.name: p.read_bytes() for p in (tmp_path / "site" / "data").iterdir()}
    assert first == second and "calls.parquet" in first


# --- the cached downloads, whole and split by month ------------------------------------


def _archive(root: Path, *, without: str | None = None) -> Path:
    """Generated runs in January and February 2026, and an imported run with no start."""
    generate_archive.generate(root, 13, warm=2, cells=2, prompts=2, seed=3)
    for i in range(8, 13):
        path = root / "runs" / f"synthetic-{i:05d}" / "metadata.json"
        md = json.loads(path.read_text(encoding="utf-8"))
        md["started_at_utc"] = f"2026-02-{i:02d}T10:00:00Z"
        md["finished_at_utc"] = f"2026-02-{i:02d}T11:00:00Z"
        path.write_text(json.dumps(md), encoding="utf-8")
    samples = [IMPORTS / "vllm-serve-detailed.json", IMPORTS / "llama-bench-cpu.jsonl"]
    import_files(samples, runs_dir=root / "runs", refresh=False)
    if without:
        shutil.rmtree(root / "runs" / without)
    return root


def _load(archive: Path, split_above: int) -> Loaded:
    loaded = load(archive, use_cache=False)
    values = {**loaded.config.values, dl.SPLIT_SETTING: split_above}
    return dataclasses.replace(loaded, config=Config(values, None))


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _archive(tmp_path_factory.mktemp("archive"))


def _by_rel(files: list[dl.Download]) -> dict[str, dl.Download]:
    return {f.rel: f for f in files}


def _sqlite(path: Path, sql: str) -> list[tuple]:
    con = sqlite3.connect(path)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_ino, st.st_mtime_ns


def test_a_small_archive_gets_whole_archive_files(archive: Path, tmp_path: Path):
    loaded = _load(archive, 1_000_000)
    files = dl.data_downloads(loaded, tmp_path)
    assert [f.rel for f in files] == WHOLE
    got = _by_rel(files)
    calls = pl.read_parquet(got["data/calls.parquet"].path)
    assert calls.height == got["data/calls.csv"].rows == loaded.calls.height > 100
    for f in files:
        assert f.sha256 == hashlib.sha256(f.path.read_bytes()).hexdigest()
        assert f.size == f.path.stat().st_size and f.month is None
    db = got["data/archive.sqlite"].path
    assert _sqlite(db, "SELECT COUNT(*) FROM calls") == [(loaded.calls.height,)]
    assert ("calls_table", "complete") in _sqlite(db, "SELECT key, value FROM meta")


def test_a_large_archive_splits_the_calls_by_month(archive: Path, tmp_path: Path):
    loaded = _load(archive, 0)
    files = dl.data_downloads(loaded, tmp_path / "split")
    got = _by_rel(files)
    months = ["2026-01", "2026-02", "undated"]
    assert [f.rel for f in files] == WHOLE[2:] + [
        f"data/calls/{m}.{ext}" for m in months for ext in ("parquet", "csv")
    ]
    # Each month's files hold exactly the calls of the runs started in it.
    runs = {r.run_id: r for r in loaded.runs}
    for month in months:
        frame = pl.read_parquet(got[f"data/calls/{month}.parquet"].path)
        assert pl.read_csv(got[f"data/calls/{month}.csv"].path, schema=frame.schema).equals(frame)
        expected = {
            rid: r.ledger.calls
            for rid, r in runs.items()
            if r.ledger and r.ledger.calls and dl.month_of(r) == month
        }
        assert dict(frame.group_by("run_id").len().iter_rows()) == expected
        assert got[f"data/calls/{month}.parquet"].month == month
    # Together they are the whole-archive file, and the aggregates are the same bytes.
    whole = _by_rel(dl.data_downloads(_load(archive, 1_000_000), tmp_path / "whole"))
    parts = [pl.read_parquet(got[f"data/calls/{m}.parquet"].path) for m in months]
    joined = sort_calls(pl.concat(parts))
    assert joined.equals(pl.read_parquet(whole["data/calls.parquet"].path))
    for rel in ("data/aggregates.parquet", "data/aggregates.csv"):
        assert got[rel].sha256 == whole[rel].sha256
    # The SQLite export leaves the calls out, and holds everything else.
    db, full = got["data/archive.sqlite"].path, whole["data/archive.sqlite"].path
    assert _sqlite(db, "SELECT COUNT(*) FROM calls") == [(0,)]
    assert ("calls_table", "omitted") in _sqlite(db, "SELECT key, value FROM meta")
    for table in ("runs", "run_checks", "skips", "run_model_metrics", "prompts", "models"):
        rows = _sqlite(db, f"SELECT * FROM {table}")
        assert rows == _sqlite(full, f"SELECT * FROM {table}"), table
    assert len(_sqlite(db, "SELECT * FROM runs")) == len(loaded.runs)
    assert _sqlite(db, "SELECT COUNT(*) FROM run_model_metrics")[0][0] > 0


@pytest.mark.parametrize("split_above", [0, 1_000_000])
def test_unchanged_inputs_reuse_the_cached_files(archive: Path, tmp_path: Path, split_above: int):
    loaded = _load(archive, split_above)
    first = dl.data_downloads(loaded, tmp_path / "cache")
    stamps = {f.rel: _stamp(f.path) for f in first}
    again = dl.data_downloads(_load(archive, split_above), tmp_path / "cache")
    assert [(f.rel, f.path, f.sha256) for f in again] == [(f.rel, f.path, f.sha256) for f in first]
    assert {f.rel: _stamp(f.path) for f in again} == stamps  # nothing was written
    # The cache is safe to delete: the same bytes come back.
    shutil.rmtree(tmp_path / "cache")
    fresh = dl.data_downloads(loaded, tmp_path / "cache")
    assert [(f.rel, f.sha256) for f in fresh] == [(f.rel, f.sha256) for f in first]


def test_a_new_run_rewrites_only_its_months_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    added = "synthetic-00011"  # a February run
    before = _archive(tmp_path / "before", without=added)
    cache = tmp_path / "cache"
    old = _by_rel(dl.data_downloads(_load(before, 0), cache))
    stamps = {rel: _stamp(f.path) for rel, f in old.items()}
    old_february = set(pl.read_parquet(old["data/calls/2026-02.parquet"].path)["run_id"])
    after = _archive(tmp_path / "after")
    loaded = _load(after, 0)
    read = _count_runs_read(monkeypatch)
    new = _by_rel(dl.data_downloads(loaded, cache))
    assert read == [added]  # the SQLite export copied every other run's rows
    unchanged = {rel for rel in new if rel in old and _stamp(new[rel].path) == stamps[rel]}
    months = ("2026-01", "undated")
    assert unchanged == {f"data/calls/{m}.{ext}" for m in months for ext in ("parquet", "csv")}
    february = set(pl.read_parquet(new["data/calls/2026-02.parquet"].path)["run_id"])
    assert february == old_february | {added}
    # Every file is what a build from an empty cache makes (the SQLite export
    # reused the previous one's rows), and the old entries are gone.
    monkeypatch.undo()
    scratch = _by_rel(dl.data_downloads(loaded, tmp_path / "scratch"))
    assert {rel: f.sha256 for rel, f in new.items()} == {
        rel: f.sha256 for rel, f in scratch.items()
    }
    store = sorted(p.name for p in (cache / dl.STORE).iterdir())
    assert store == sorted(p.name for p in (tmp_path / "scratch" / dl.STORE).iterdir())


def _count_runs_read(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids of the runs the SQLite export reads from their files, from now on."""
    read: list[str] = []
    real = relational._run_rows

    def counting(run: Any, *args: Any, **kwargs: Any) -> Any:
        read.append(run.run_id)
        return real(run, *args, **kwargs)

    monkeypatch.setattr(relational, "_run_rows", counting)
    return read


def test_a_file_without_its_record_is_written_again(archive: Path, tmp_path: Path):
    loaded = _load(archive, 0)
    first = _by_rel(dl.data_downloads(loaded, tmp_path))
    target = first["data/calls/2026-02.csv"]
    # As if the build was killed after writing the file, before its sidecar.
    Path(f"{target.path}.json").unlink()
    target.path.write_bytes(b"partial")
    again = _by_rel(dl.data_downloads(loaded, tmp_path))
    assert again["data/calls/2026-02.csv"].path.read_bytes() == (
        pl.read_parquet(first["data/calls/2026-02.parquet"].path)
        .write_csv(line_terminator="\n", null_value="")
        .encode()
    )
    assert again["data/calls/2026-02.csv"].sha256 == target.sha256


def test_the_data_page_lists_the_months_and_reads_them_with_a_glob(archive: Path, tmp_path: Path):
    loaded = _load(archive, 0)
    files = dl.data_downloads(loaded, tmp_path)
    html = (
        environment(loaded.layout.templates)
        .get_template("data.html")
        .render(root="../", archive=loaded.catalogue["archive"], files=files)
    )
    soup = BeautifulSoup(html, "html.parser")
    tables = soup.select("table.files")
    whole = [a["href"] for a in tables[0].select("a[download]")]
    months = [a["href"] for a in tables[1].select("a[download]")]
    assert whole == ["../" + rel for rel in WHOLE[2:]]
    assert months[:2] == ["../data/calls/2026-01.parquet", "../data/calls/2026-01.csv"]
    assert len(months) == 6
    assert "FROM 'calls/*.parquet'" in html and 'scan_parquet("calls/*.parquet")' in html
    assert "leaves its <code>calls</code> table empty" in html


def test_month_of_a_run() -> None:
    def run(started: str | None) -> Any:
        return dataclasses.make_dataclass("R", [("started_at", str | None)])(started)

    assert dl.month_of(run("2026-11-30T23:59:59Z")) == "2026-11"
    assert dl.month_of(run(None)) == dl.UNDATED
    assert dl.month_of(run("late 2026")) == dl.UNDATED


class _Median:
    """SQLite aggregate standing in for DuckDB's ``median`` (linear interpolation)."""

    def __init__(self) -> None:
        self.values: list[float] = []

    def step(self, value: float | None) -> None:
        if value is not None:
            self.values.append(value)

    def finalize(self) -> float | None:
        return statistics.median(self.values) if self.values else None


def test_the_documented_join_of_month_files_and_tables_matches_the_full_export(
    archive: Path, tmp_path: Path
):
    """docs/data.md's DuckDB query, run in SQLite on the same rows, equals Q1 of relational.md."""
    docs = (ROOT / "docs" / "data.md").read_text(encoding="utf-8")
    (query,) = [q for q in re.findall(r"```sql\n(.*?)```", docs, re.S) if "ATTACH" in q]
    relational_docs = (ROOT / "docs" / "relational.md").read_text(encoding="utf-8")
    q1 = re.search(r"^### Q1\..*?```sql\n(.*?)```", relational_docs, re.S | re.M).group(1)
    split = _by_rel(dl.data_downloads(_load(archive, 0), tmp_path / "split"))
    whole = _by_rel(dl.data_downloads(_load(archive, 1_000_000), tmp_path / "whole"))
    calls = pl.concat(
        [
            pl.read_parquet(f.path)
            for rel, f in split.items()
            if rel.endswith(".parquet") and f.month
        ]
    )
    con = sqlite3.connect(split["data/archive.sqlite"].path)
    try:
        con.create_aggregate("median", 1, _Median)
        con.execute(f"CREATE TEMP TABLE parquet_calls ({', '.join(calls.columns)})")
        marks = ", ".join("?" * calls.width)
        con.executemany(f"INSERT INTO parquet_calls VALUES ({marks})", calls.iter_rows())
        body = "\n".join(line for line in query.splitlines() if not line.startswith("ATTACH"))
        body = body.replace("'calls/*.parquet'", "parquet_calls").replace("db.", "")
        got = con.execute(body).fetchall()
    finally:
        con.close()
    expected = _sqlite(whole["data/archive.sqlite"].path, q1)
    assert got == expected and len(got) >= 2


def test_a_damaged_previous_export_is_not_reused(archive: Path, tmp_path: Path):
    loaded = _load(archive, 0)
    first = _by_rel(dl.data_downloads(loaded, tmp_path / "cache"))
    db = first["data/archive.sqlite"].path
    db.write_bytes(b"\0" * db.stat().st_size)  # same size: its record still matches
    gone = sorted(r.run_id for r in loaded.runs)[-1]
    fewer = dataclasses.replace(loaded, runs=[r for r in loaded.runs if r.run_id != gone])
    got = _by_rel(dl.data_downloads(fewer, tmp_path / "cache"))
    scratch = _by_rel(dl.data_downloads(fewer, tmp_path / "scratch"))
    assert got["data/archive.sqlite"].sha256 == scratch["data/archive.sqlite"].sha256
