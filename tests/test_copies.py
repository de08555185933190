"""Run files are published as links to one copy of each content kept under the cache
(sitegen.copies), never to the archive's own files, and never to a copy that was
touched; run citations are kept in the build state between builds."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from pathlib import Path

import pytest
from conftest import generate_archive, sitegen_process

from sitegen import cite, copies
from sitegen.build import build
from sitegen.buildstate import BuildState
from sitegen.pages import run_page

RUN = "synthetic-00003"


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    root = tmp_path / "archive"
    generate_archive.generate(root, 8, warm=2, cells=2, prompts=2, seed=11)
    (root / "sitegen.toml").write_text("[site]\nsearch = false\n")
    return root


def published(site: Path) -> dict[str, Path]:
    """Every published run file of a site: 'run/name' -> its path."""
    return {f"{p.parent.parent.name}/{p.name}": p for p in sorted(site.glob("runs/*/files/*"))}


def archive_file(archive: Path, key: str) -> Path:
    run_id, name = key.split("/")
    return archive / "runs" / run_id / name


def kept_copies(archive: Path) -> list[Path]:
    return sorted(p for p in (archive / ".sitegen-cache" / "copies").rglob("*") if p.is_file())


def test_a_new_out_folder_links_run_files_to_kept_copies_not_to_the_archive(archive: Path):
    assert sitegen_process(archive, "build").returncode == 0
    done = sitegen_process(archive, "build", "--out", "fresh")  # relative, as typed
    assert done.returncode == 0, done.stderr
    site, fresh = published(archive / "site"), published(archive / "fresh")
    assert fresh.keys() == site.keys() and len(fresh) >= 16
    for key, path in fresh.items():
        source = archive_file(archive, key)
        assert path.read_bytes() == source.read_bytes()
        # one copy, shared by both sites, that is not the archive's own file
        assert path.stat().st_ino == site[key].stat().st_ino != source.stat().st_ino
        assert path.stat().st_nlink >= 3
    digests = {hashlib.sha256(p.read_bytes()).hexdigest() for p in fresh.values()}
    assert sorted(p.name for p in kept_copies(archive)) == sorted(digests)


def test_a_published_file_edited_in_place_does_not_reach_the_next_site(archive: Path):
    assert sitegen_process(archive, "build").returncode == 0
    page = archive / "site" / "runs" / RUN / "files" / "run.jsonl"
    good = archive_file(archive, f"{RUN}/run.jsonl").read_bytes()
    with page.open("ab") as fh:  # in place: the kept copy shares this inode
        fh.write(b"edited on the server\n")
    done = sitegen_process(archive, "build", "--force", "--out", "fresh")
    assert done.returncode == 0, done.stderr
    assert (archive / "fresh" / "runs" / RUN / "files" / "run.jsonl").read_bytes() == good
    # the live site is mended by its next build too
    generate_archive.write_run(
        archive, 8, rng=random.Random(8), warm=2, n_cells=2, n_prompts=2, kind="complete"
    )
    assert sitegen_process(archive, "build").returncode == 0
    assert page.read_bytes() == good
    copy = archive / ".sitegen-cache" / "copies" / hashlib.sha256(good).hexdigest()[:2]
    assert (copy / hashlib.sha256(good).hexdigest()).read_bytes() == good


def test_the_copies_of_a_removed_run_go_with_it(archive: Path):
    assert sitegen_process(archive, "build").returncode == 0
    gone = {
        hashlib.sha256(p.read_bytes()).hexdigest()
        for p in (archive / "runs" / RUN).iterdir()
        if p.is_file()
    }
    others = {
        hashlib.sha256(p.read_bytes()).hexdigest()
        for p in (archive / "runs").glob("*/*")
        if p.is_file() and p.parent.name != RUN
    }
    assert gone - others, "the run shares every file with another: nothing to see"
    before = {p.name for p in kept_copies(archive)}
    assert gone <= before
    shutil.rmtree(archive / "runs" / RUN)
    lock = json.loads((archive / "runs.lock").read_text())
    del lock["runs"][RUN]  # the publisher withdraws it on purpose
    (archive / "runs.lock").write_text(json.dumps(lock))
    done = sitegen_process(archive, "build")
    assert done.returncode == 0, done.stderr
    assert {p.name for p in kept_copies(archive)} == before - (gone - others)


def test_a_failed_build_leaves_copies_that_the_next_build_finds(archive: Path):
    done = sitegen_process(archive, "build", fault="checked")  # killed after staging
    assert done.returncode != 0
    made = {p.name: p.stat().st_ino for p in kept_copies(archive)}
    assert made
    left = archive / ".sitegen-cache" / "copies" / "tmp"
    left.mkdir(exist_ok=True)
    (left / ("0" * 64)).write_bytes(b"half a copy, from a build killed while copying")
    assert sitegen_process(archive, "build").returncode == 0
    assert {p.name: p.stat().st_ino for p in kept_copies(archive)} == made  # not made again


def test_a_file_that_changed_since_it_was_hashed_is_not_kept_under_the_old_digest(
    tmp_path: Path,
):
    source = tmp_path / "run.jsonl"
    source.write_bytes(b"new bytes\n")
    store = copies.Copies(tmp_path / "copies", BuildState(tmp_path / "state"))
    stale = hashlib.sha256(b"old bytes\n").hexdigest()
    assert store.link(source, stale, str(tmp_path / "site-file")) is None
    assert not (tmp_path / "site-file").exists()
    assert [p for p in (tmp_path / "copies").rglob("*") if p.is_file()] == []


def test_without_links_the_run_files_are_copied(archive: Path, monkeypatch):
    real_link = os.link

    def no_links(src: str, dst: str) -> None:
        if "/copies/" in str(src):
            raise OSError(18, "Invalid cross-device link")
        real_link(src, dst)

    monkeypatch.setattr(copies.os, "link", no_links)
    build(archive, out=archive / "fresh")
    for key, path in published(archive / "fresh").items():
        assert path.read_bytes() == archive_file(archive, key).read_bytes()
        assert path.stat().st_nlink == 1


def test_run_citations_and_notes_are_made_once_and_follow_the_archive_settings(
    archive: Path, monkeypatch
):
    build(archive)
    generate_archive.write_run(
        archive, 8, rng=random.Random(8), warm=2, n_cells=2, n_prompts=2, kind="complete"
    )
    build(archive)  # made the new run's citation and note only; the others stay kept

    def refuse(*_args: object) -> None:
        raise AssertionError("a citation or note was made again")

    with monkeypatch.context() as patched:
        patched.setattr(cite, "run_citation", refuse)
        patched.setattr(run_page, "publisher_note", refuse)
        build(archive, out=archive / "fresh")
    site, fresh = archive / "site", archive / "fresh"
    assert any("note-source" in p.read_text() for p in site.glob("runs/*/index.html"))
    for run in sorted(site.glob("runs/*/cite.bib")):
        rel = run.relative_to(site)
        assert (fresh / rel).read_bytes() == run.read_bytes()
        assert (fresh / rel.parent / "index.html").read_bytes() == (
            site / rel.parent / "index.html"
        ).read_bytes()
    settings = archive / "sitegen.toml"
    settings.write_text('[archive]\ntitle = "Renamed bench"\n' + settings.read_text())
    build(archive)
    assert "Renamed bench" in (site / "runs" / RUN / "cite.bib").read_text()
    assert "Renamed bench" in (site / "runs" / RUN / "CITATION.cff").read_text()


def test_a_new_build_state_starts_the_copies_afresh(archive: Path):
    assert sitegen_process(archive, "build").returncode == 0
    assert sitegen_process(archive, "build", "--out", "fresh").returncode == 0
    assert kept_copies(archive)
    (archive / ".sitegen-cache" / "state.sqlite").unlink()  # as an upgrade of sitegen does
    assert sitegen_process(archive, "build", "--force").returncode == 0
    assert kept_copies(archive) == []  # nothing indexes them any more
    for key, path in published(archive / "site").items():  # the sites keep their files
        assert path.read_bytes() == archive_file(archive, key).read_bytes()
    assert sitegen_process(archive, "build", "--out", "other").returncode == 0
    assert len(kept_copies(archive)) == len(
        {hashlib.sha256(p.read_bytes()).hexdigest() for p in published(archive / "other").values()}
    )
