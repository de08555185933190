"""Rebuilds cost what changed: unchanged outputs are reused from the live build,
and the result is always the site a cold build would make."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from conftest import generate_archive

from sitegen import build as build_module
from sitegen.build import build


def inodes(site: Path) -> dict[str, int]:
    out = {}
    for dirpath, _dirs, names in os.walk(site):
        for name in names:
            path = Path(dirpath) / name
            out[path.relative_to(site).as_posix()] = path.stat().st_ino
    return out


def contents(site: Path) -> dict[str, bytes]:
    return {rel: (site / rel).read_bytes() for rel in inodes(site)}


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    generate_archive.generate(tmp_path, 24, warm=2, cells=3, prompts=3, seed=5)
    (tmp_path / "sitegen.toml").write_text("[site]\nruns_per_page = 10\nsearch = false\n")
    return tmp_path


def add_run(archive: Path, index: int) -> str:
    return generate_archive.write_run(
        archive, index, rng=random.Random(index), warm=2, n_cells=3, n_prompts=3, kind="complete"
    )


def test_a_rebuild_with_nothing_changed_rewrites_no_file(archive: Path):
    build(archive)
    before = inodes(archive / "site")
    messages: list[str] = []
    build(archive, echo=messages.append)
    assert inodes(archive / "site") == before
    assert any(m.startswith("pages: 0 rendered") for m in messages), messages


def test_adding_a_run_rewrites_only_what_it_touches(archive: Path):
    build(archive)
    build(archive)  # from here on, each build updates the spare folder in place
    before = inodes(archive / "site")
    new = add_run(archive, 24)
    build(archive)
    after = inodes(archive / "site")
    changed = {rel for rel, ino in after.items() if before.get(rel) != ino}
    assert {f"runs/{new}/index.html", f"runs/{new}/files/run.jsonl"} <= changed
    assert not any(rel.startswith("runs/synthetic-000") and new not in rel for rel in changed)
    # The front page and the newest block change; older blocks keep their bytes.
    assert {"index.html", "pages/3/index.html"} <= changed
    assert not {"pages/1/index.html", "pages/2/index.html"} & changed
    assert not {"methodology/index.html", "404.html", "assets/style.css"} & changed
    # Far fewer files than the site holds are written.
    assert len(changed) < len(after) / 4


def test_incremental_result_equals_a_cold_build(archive: Path):
    build(archive)
    build(archive)
    add_run(archive, 24)
    build(archive)
    # A settings change touches every page.
    (archive / "sitegen.toml").write_text(
        '[archive]\ndescription = "Now described."\n[site]\nruns_per_page = 10\nsearch = false\n'
    )
    build(archive)
    add_run(archive, 25)
    build(archive)
    build(archive, out=archive / "cold")
    assert contents(archive / "site") == contents(archive / "cold")


def test_a_live_file_edited_in_place_is_not_reused(archive: Path):
    build(archive)
    page = archive / "site" / "runs" / "synthetic-00001" / "index.html"
    good = page.read_bytes()
    with page.open("ab") as fh:  # same inode, new size and mtime
        fh.write(b"<!-- edited by hand -->")
    add_run(archive, 24)
    build(archive)
    assert (archive / "site" / "runs" / "synthetic-00001" / "index.html").read_bytes() == good


def test_a_failed_incremental_build_leaves_the_live_site_as_it_was(archive: Path, monkeypatch):
    build(archive)
    build(archive)
    live = contents(archive / "site")
    add_run(archive, 24)

    def fail(staging: Path, loaded: object, *rest: object) -> None:
        raise build_module.BuildError("failing on purpose after staging")

    monkeypatch.setattr(build_module, "finish_staging", fail)
    with pytest.raises(build_module.BuildError):
        build(archive)
    assert contents(archive / "site") == live
    monkeypatch.undo()
    build(archive)
    build(archive, out=archive / "cold")
    assert contents(archive / "site") == contents(archive / "cold")
