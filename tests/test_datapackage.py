"""data/datapackage.json: a machine-readable description of every download.

Checked with the frictionless library (the Data Package reference
implementation) where it is installed, and against the files themselves:
every column of every Parquet and CSV file is described, with a type that
the data holds, and nothing described is missing from the files.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from conftest import ROOT, generate_archive

from sitegen.build import build
from sitegen.downloads import COLUMNS, columns_markdown

LICENSE = "ODbL-1.0"


def _archive(root: Path, split: bool = False) -> Path:
    generate_archive.generate(root, 6, warm=3, cells=2, prompts=2, seed=9)
    toml = f'[archive]\ntitle = "Datapackage test"\nlicense = "{LICENSE}"\n'
    if split:
        toml += "[data]\nsplit_calls_above = 10\n"
    (root / "sitegen.toml").write_text(toml)
    build(root)
    return root


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    return _archive(tmp_path_factory.mktemp("archive"))


@pytest.fixture(scope="module")
def split_archive(tmp_path_factory) -> Path:
    return _archive(tmp_path_factory.mktemp("split"), split=True)


def _package(root: Path) -> dict[str, Any]:
    return json.loads((root / "site" / "data" / "datapackage.json").read_text(encoding="utf-8"))


def _columns(path: Path) -> list[str]:
    if path.suffix == ".parquet":
        return list(pl.read_parquet_schema(path))
    return path.read_text(encoding="utf-8").splitlines()[0].split(",")


@pytest.mark.parametrize("which", ["archive", "split_archive"])
def test_every_download_and_column_is_described(which: str, request):
    root = request.getfixturevalue(which)
    data = root / "site" / "data"
    package = _package(root)
    published = sorted(
        p.relative_to(data).as_posix()
        for p in data.rglob("*")
        if p.is_file() and p.suffix in (".parquet", ".csv", ".sqlite")
    )
    resources = {r["path"]: r for r in package["resources"]}
    assert sorted(resources) == published
    if which == "split_archive":
        assert any(path.startswith("calls/") for path in published)
    assert package["licenses"] == [{"name": LICENSE}]
    for path, resource in resources.items():
        body = (data / path).read_bytes()
        assert resource["bytes"] == len(body), path
        assert resource["hash"] == "sha256:" + hashlib.sha256(body).hexdigest(), path
        assert resource["format"] == path.rsplit(".", 1)[1]
        if path.endswith(".sqlite"):
            assert "schema" not in resource
            continue
        fields = resource["schema"]["fields"]
        assert [f["name"] for f in fields] == _columns(data / path), path
        for field in fields:
            assert field["type"] in {"string", "integer", "number"}, field
            assert field["description"], field
        units = {f["name"]: f.get("unit") for f in fields}
        if "first_delta_ms" in units:
            assert units["first_delta_ms"] == "ms" and units["tokens_per_sec"] == "tokens/s"
        if "first_delta_ms_p50" in units:
            assert units["first_delta_ms_p50"] == "ms"


def test_frictionless_finds_the_descriptor_valid_and_the_csv_data_matching(archive: Path):
    frictionless = pytest.importorskip("frictionless")
    descriptor = _package(archive)
    assert list(frictionless.Package.metadata_validate(descriptor)) == []
    # The check has teeth: a resource without a path is reported.
    broken = json.loads(json.dumps(descriptor))
    del broken["resources"][0]["path"]
    assert list(frictionless.Package.metadata_validate(broken)) != []
    package = frictionless.Package(str(archive / "site" / "data" / "datapackage.json"))
    checked = 0
    for resource in package.resources:
        if resource.format == "csv":
            report = resource.validate()
            assert report.valid, report.flatten(["rowNumber", "fieldName", "message"])[:5]
            checked += 1
    assert checked == 2


def test_same_archive_same_bytes(tmp_path: Path, archive: Path):
    first = (archive / "site" / "data" / "datapackage.json").read_bytes()
    copy = tmp_path / "copy"
    shutil.copytree(archive / "runs", copy / "runs")
    shutil.copy(archive / "sitegen.toml", copy / "sitegen.toml")
    build(copy)  # a fresh cache, another folder
    assert (copy / "site" / "data" / "datapackage.json").read_bytes() == first


def test_docs_column_tables_come_from_the_same_column_table(archive: Path):
    doc = (ROOT / "docs" / "data.md").read_text(encoding="utf-8")
    data = archive / "site" / "data"
    for name in ("calls.parquet", "aggregates.parquet"):
        assert columns_markdown(_columns(data / name)) in doc, name
    assert set(COLUMNS) == set(_columns(data / "calls.parquet")) | set(
        _columns(data / "aggregates.parquet")
    )
