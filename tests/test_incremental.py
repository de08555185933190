"""Rebuilds cost what changed: unchanged outputs are reused from the live build,
and the result is always the site a cold build would make."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest
from conftest import generate_archive, sitegen_process

from sitegen import build as build_module
from sitegen import state
from sitegen.build import build
from sitegen.discover import MAX_WALK_DEPTH


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


def test_what_is_not_an_output_leaves_the_spare_a_build_updates(archive: Path):
    build(archive)
    build(archive)  # two builds: the older one is the spare the next build updates
    live = (archive / "site").resolve()
    spare = next(p for p in live.parent.iterdir() if p.is_dir() and p != live)
    (spare / "runs" / "stray.html").write_text("left by hand")
    (spare / "junk" / "deep").mkdir(parents=True)
    (spare / "junk" / "deep" / "x.txt").write_text("x")
    (spare / "linked").symlink_to(archive / "runs")  # a link is removed, never followed
    # deep in a folder of the site, and a folder of the site swapped for a link
    (spare / "runs" / "synthetic-00002" / "stray.txt").write_text("x")
    shutil.rmtree(spare / "runs" / "synthetic-00003")
    (spare / "runs" / "synthetic-00003").symlink_to(archive / "runs" / "synthetic-00003")
    add_run(archive, 24)
    build(archive)
    assert (archive / "site").resolve() == spare  # it was updated in place
    assert not (spare / "runs" / "stray.html").exists() and not (spare / "junk").exists()
    assert not (spare / "linked").is_symlink() and (archive / "runs" / "synthetic-00001").is_dir()
    assert not (spare / "runs" / "synthetic-00002" / "stray.txt").exists()
    assert not (spare / "runs" / "synthetic-00003").is_symlink()
    assert (archive / "runs" / "synthetic-00003" / "metadata.json").is_file()
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


def test_the_no_op_check_stamps_exactly_what_a_walk_of_the_inputs_reaches(tmp_path: Path):
    """The fingerprint's walk (one scandir a folder, for speed at 30,000 run files)
    stamps what ``os.walk`` reaches: no link to a folder followed, no __pycache__,
    nothing below the depth discovery refuses; links to files and broken links
    count by their own stat."""
    root = tmp_path / "runs"
    (root / "a" / "notes").mkdir(parents=True)
    (root / "a" / "run.jsonl").write_text("x", encoding="utf-8")
    (root / "a" / "notes" / "n.md").write_text("y", encoding="utf-8")
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "c.pyc").write_text("z", encoding="utf-8")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "o.txt").write_text("o", encoding="utf-8")
    (root / "link").symlink_to(outside, target_is_directory=True)
    (root / "file-link").symlink_to(root / "a" / "run.jsonl")
    (root / "broken").symlink_to(tmp_path / "missing")
    deep = root
    for i in range(MAX_WALK_DEPTH + 3):
        deep = deep / f"d{i}"
        deep.mkdir()
        (deep / "x").write_text(str(i), encoding="utf-8")

    reference = []  # what the walk stamped when it was os.walk
    base = str(root).count(os.sep)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        if dirpath.count(os.sep) - base >= MAX_WALK_DEPTH:
            dirnames.clear()
        reference += [str(Path(dirpath) / name) for name in sorted(filenames)]
    lines: list[str] = []
    state._walk_dir(str(root), 0, lines)
    stamped = [line.split(" ")[0] for line in lines if not line.startswith("dir ")]
    assert stamped == reference
    assert str(root / "broken") in stamped and str(root / "file-link") in stamped
    assert not any("outside" in p or "__pycache__" in p or "/link/" in p for p in stamped)


def test_nothing_changed_whether_the_archive_is_typed_from_inside_or_outside(archive: Path):
    """`sitegen build` inside the archive, then `sitegen build <archive>` from its
    parent folder: the same files, so the second is a no-op, not a new build."""

    def sitegen(cwd: Path, *args: str) -> str:
        done = sitegen_process(cwd, "build", *args)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout + done.stderr

    sitegen(archive)
    assert "nothing changed" in sitegen(archive.parent, archive.name)
    assert "nothing changed" in sitegen(archive)
