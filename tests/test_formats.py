"""The formats are documented for users and the documentation stays current."""

from __future__ import annotations

import json
import re

import pytest
from conftest import ROOT

from sitegen import schema
from sitegen.build import build
from sitegen.config import settings_markdown

DOC = (ROOT / "docs" / "formats.md").read_text(encoding="utf-8")
SCHEMAS = sorted(p.name for p in (ROOT / "sitegen" / "schemas").glob("*.json"))


@pytest.mark.parametrize("name", SCHEMAS)
def test_every_schema_field_is_documented(name):
    properties = schema.load(name).get("properties", {})
    missing = [key for key in properties if not re.search(rf"`{re.escape(key)}`", DOC)]
    assert not missing, f"{name}: fields missing from docs/formats.md: {missing}"


def test_settings_table_in_docs_is_current():
    assert settings_markdown() in DOC


def test_built_catalogue_validates_against_its_schema(synthetic_archive):
    build(synthetic_archive)
    catalogue = json.loads((synthetic_archive / "catalogue.json").read_text())
    assert schema.errors("catalogue.v1.json", catalogue) == []


def test_committed_bundled_catalogue_validates():
    catalogue = json.loads((ROOT / "catalogue.json").read_text())
    assert schema.errors("catalogue.v1.json", catalogue) == []
    assert catalogue["runs"], "the bundled archive has runs"


def test_each_runs_comparison_file_validates_and_matches_its_summary(synthetic_archive):
    """The catalogue says how many rows got each verdict; the file it points to has them."""
    build(synthetic_archive)
    catalogue = json.loads((synthetic_archive / "catalogue.json").read_text())
    compared = [r for r in catalogue["runs"] if r["comparison"]]
    assert compared, "the synthetic archive has runs with warm calls"
    for run in compared:
        summary = run["comparison"]
        path = synthetic_archive / "site" / summary["url"]
        full = json.loads(path.read_text())
        assert schema.errors("comparison.v1.json", full) == [], path
        counts: dict[str, int] = {}
        for row in full["rows"]:
            counts[row["verdict"]] = counts.get(row["verdict"], 0) + 1
        assert counts == summary["verdicts"]
        assert sorted({row["baseline_id"] for row in full["rows"]}) == summary["baselines"]
        assert full["without_baseline"] == summary["without_baseline"]
