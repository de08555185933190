"""Data downloads: every call archive-wide as Parquet and CSV, the aggregates,
linked from the index, identical bytes on rebuild."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
from bs4 import BeautifulSoup
from conftest import generate_archive

from sitegen.build import build


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
