"""Cited runs never change silently, and no build leaves a broken site."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, call_record, end_record, meta_record, metadata
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sitegen.build import build, build_lock
from sitegen.exceptions import BuildError, ValidationFailed
from sitegen.layout import Layout
from sitegen.ledger import prepass


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_first_build_locks_every_run(tmp_path, write_run):
    write_run("r1")
    build(tmp_path)
    lock = json.loads((tmp_path / "runs.lock").read_text())
    assert lock["format"] == "sitegen.runs-lock/1"
    assert set(lock["runs"]) == {"r1"}
    catalogue = json.loads((tmp_path / "catalogue.json").read_text())
    assert lock["runs"]["r1"]["digest"] == catalogue["runs"][0]["digest"]


def test_flipping_one_byte_of_a_published_run_fails_and_names_it(tmp_path, write_run):
    folder = write_run("r1")
    build(tmp_path)
    before = tree(tmp_path / "site")
    ledger = folder / "run.jsonl"
    data = bytearray(ledger.read_bytes())
    data[data.index(b"100.0") + 1] = ord("5")  # 100.0 -> 150.0: still valid
    ledger.write_bytes(bytes(data))
    with pytest.raises(ValidationFailed) as info:
        build(tmp_path)
    message = str(info.value)
    assert "runs/r1: published run differs from runs.lock: changed run.jsonl" in message
    assert tree(tmp_path / "site") == before


def test_adding_or_removing_files_of_a_published_run_is_named(tmp_path, write_run):
    folder = write_run("r1", run__log="hello\n")
    build(tmp_path)
    (folder / "run.log").unlink()
    (folder / "run.md").write_text("late notes\n")
    with pytest.raises(ValidationFailed, match=r"added run\.md; removed run\.log"):
        build(tmp_path)


def test_deleting_a_published_run_fails(tmp_path, write_run):
    folder = write_run("r1")
    write_run("r2", md=metadata("r2"), ledger=[meta_record("r2"), call_record(), end_record()])
    build(tmp_path)
    for f in folder.iterdir():
        f.unlink()
    folder.rmdir()
    with pytest.raises(ValidationFailed, match="runs/r1: published run is missing"):
        build(tmp_path)


def test_integrity_failures_are_not_skipped_by_skip_invalid(tmp_path, write_run):
    folder = write_run("r1")
    build(tmp_path)
    (folder / "metadata.json").write_text(json.dumps(metadata("r1", title="Edited title")))
    with pytest.raises(ValidationFailed, match=r"differs from runs\.lock: changed metadata\.json"):
        build(tmp_path, skip_invalid=True)


def test_superseding_run_links_both_ways_in_the_catalogue(tmp_path, write_run):
    write_run("r1")
    build(tmp_path)
    write_run(
        "r2",
        md=metadata(
            "r2",
            supersedes="r1",
            started_at_utc="2026-06-01T00:00:00Z",
            finished_at_utc="2026-06-01T00:05:00Z",
        ),
        ledger=[meta_record("r2"), call_record(), end_record()],
    )
    build(tmp_path)
    runs = {r["id"]: r for r in json.loads((tmp_path / "catalogue.json").read_text())["runs"]}
    assert runs["r1"]["superseded_by"] == ["r2"]
    assert runs["r2"]["supersedes"] == "r1"


def test_supersedes_must_name_a_run(tmp_path, write_run):
    write_run("r1", md=metadata("r1", supersedes="ghost"))
    with pytest.raises(ValidationFailed, match=r"\$.supersedes: no run 'ghost'"):
        build(tmp_path)


def test_retraction_lives_outside_the_digest(tmp_path, write_run):
    write_run("r1")
    build(tmp_path)
    (tmp_path / "retractions.toml").write_text(
        '[r1]\nreason = "Wrong engine flags"\ndate = "2026-11-23"\n'
    )
    build(tmp_path)  # the run's bytes did not change, so the lock still holds
    (entry,) = json.loads((tmp_path / "catalogue.json").read_text())["runs"]
    assert entry["retracted"] == {"reason": "Wrong engine flags", "date": "2026-11-23"}


def test_a_second_build_at_the_same_time_is_refused(tmp_path, write_run):
    write_run("r1")
    with (
        build_lock(Layout.of(tmp_path)),
        pytest.raises(BuildError, match="another build of this archive is running"),
    ):
        build(tmp_path)


@pytest.mark.slow
def test_killing_the_build_at_any_moment_leaves_the_previous_site(tmp_path):
    """SIGKILL a real build at several delays; the previous site is byte-identical."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from generate_archive import generate

    generate(tmp_path, 8, warm=2, cells=2, prompts=2)
    build(tmp_path)
    before = tree(tmp_path / "site")
    catalogue = (tmp_path / "catalogue.json").read_bytes()
    # New runs make the next build do real work (pages, charts, catalogue).
    generate(tmp_path / "more", 12, warm=2, cells=2, prompts=2, seed=9)
    for folder in sorted((tmp_path / "more" / "runs").iterdir())[8:]:
        folder.rename(tmp_path / "runs" / folder.name)
    for delay in (0.3, 0.8, 1.3, 1.8, 2.5):
        proc = subprocess.Popen(
            [sys.executable, "-m", "sitegen", "build", str(tmp_path), "--quiet"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        if proc.poll() is not None:
            break  # finished before the kill: nothing more to learn from longer delays
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        site = tree(tmp_path / "site")
        if site != before:
            # The only other acceptable state is the complete new site.
            assert (tmp_path / "site" / "catalogue.json").read_bytes() != catalogue
            assert len(json.loads((tmp_path / "site" / "catalogue.json").read_text())["runs"]) == 12
            before = site
            catalogue = (tmp_path / "site" / "catalogue.json").read_bytes()
    # A build after the kills still succeeds and cleans up the staging folders:
    # what stays is the live build and the one before it (the next build's spare).
    build(tmp_path)
    folders = list((tmp_path / ".site.builds").iterdir())
    assert len(folders) <= 2 and (tmp_path / "site").resolve() in folders


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=400) | st.text(max_size=300).map(str.encode))
def test_ledger_reader_never_crashes_on_arbitrary_bytes(tmp_path, data):
    path = tmp_path / "run.jsonl"
    path.write_bytes(data)
    summary, problems = prepass(path, "runs/x/run.jsonl", max_line_bytes=256)
    for problem in problems:
        text = str(problem)
        assert text.startswith("runs/x/run.jsonl")
        if problem.line is not None:
            assert text.startswith(f"runs/x/run.jsonl:{problem.line}")
    if not problems:
        assert summary.meta is not None  # a clean parse always has its meta record


def test_rebuild_reuses_cached_ledger_reads_and_still_sees_an_edit(tmp_path, write_run):
    """The read cache is keyed by content: an edit with the old mtime is still caught."""
    folder = write_run("r1")
    build(tmp_path)
    loaded = build(tmp_path)
    assert loaded.calls.height == 1
    ledger = folder / "run.jsonl"
    stat = ledger.stat()
    data = ledger.read_bytes().replace(b"100.0", b"150.0")
    ledger.write_bytes(data)
    os.utime(ledger, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # hide the edit's mtime
    with pytest.raises(ValidationFailed, match=r"changed run\.jsonl"):
        build(tmp_path)


def test_superseding_and_retracted_runs_show_banners_that_link_both_ways(tmp_path, write_run):
    from bs4 import BeautifulSoup

    write_run("r1")
    write_run(
        "r2",
        md=metadata(
            "r2",
            supersedes="r1",
            started_at_utc="2026-06-01T00:00:00Z",
            finished_at_utc="2026-06-01T00:05:00Z",
        ),
        ledger=[meta_record("r2"), call_record(), end_record()],
    )
    retraction = '[r1]\nreason = "Wrong flags."\ndate = "2026-11-23"\n'
    (tmp_path / "retractions.toml").write_text(retraction)
    build(tmp_path)
    old = BeautifulSoup((tmp_path / "site/runs/r1/index.html").read_text(), "html.parser")
    new = BeautifulSoup((tmp_path / "site/runs/r2/index.html").read_text(), "html.parser")
    assert old.select_one(".notice.superseded a")["href"] == "../r2/index.html"
    assert "Wrong flags." in old.select_one(".notice.retracted").get_text()
    assert old.select_one(".badge.retracted") and old.select_one(".badge.superseded")
    assert new.select_one(".notice.supersedes a")["href"] == "../r1/index.html"
    index = BeautifulSoup((tmp_path / "site/index.html").read_text(), "html.parser")
    assert index.select_one(".badge.retracted")
