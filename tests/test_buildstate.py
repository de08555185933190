"""The build state: one store of derived data, safe to lose, never stale."""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import generate_archive

from sitegen import ledger_columns
from sitegen.archive import read_archive
from sitegen.build import load
from sitegen.buildstate import STATE_FILE, BuildState
from sitegen.config import load_config
from sitegen.jsonio import dumps
from sitegen.layout import Layout
from sitegen.read_cache import ReadCache

STORE = Path(".sitegen-cache") / STATE_FILE


def sitegen(archive: Path, *args: str) -> str:
    """``sitegen build`` as a user types it: from inside the archive, default paths."""
    done = subprocess.run(
        [sys.executable, "-m", "sitegen", "build", *args],
        cwd=archive,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def tree(site: Path) -> dict[str, bytes]:
    out = {}
    for dirpath, _dirs, names in os.walk(site):
        for name in names:
            path = Path(dirpath) / name
            out[path.relative_to(site).as_posix()] = path.read_bytes()
    return out


def kinds(archive: Path) -> dict[str, int]:
    with sqlite3.connect(archive / STORE) as db:
        rows = db.execute("SELECT kind, count(*) FROM artefacts GROUP BY kind").fetchall()
    db.close()
    return dict(rows)


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    generate_archive.generate(tmp_path, 4, warm=2, cells=2, prompts=2, seed=3)
    return tmp_path


def test_one_store_holds_every_kind_of_derived_data(archive: Path):
    sitegen(archive)
    held = kinds(archive)
    for kind in (
        "file-sha256",
        "ledger-summary",
        "metadata",
        "gate-findings",
        "link-summary",
        "search-document",
        "comparisons",
    ):
        assert held.get(kind, 0) > 0, held
    # the separate JSON caches these replaced are gone
    cache = archive / ".sitegen-cache"
    for old in ("hashes.json", "gate.json", "links/pages.json", "search/documents.json"):
        assert not (cache / old).exists(), old
    assert not (cache / "ledgers").exists()


def test_deleting_or_damaging_the_store_gives_the_same_site(archive: Path):
    sitegen(archive)
    warm = tree(archive / "site")
    catalogue = (archive / "catalogue.json").read_bytes()
    (archive / STORE).unlink()
    sitegen(archive, "--force")
    assert tree(archive / "site") == warm
    (archive / STORE).write_bytes(b"not a database, e.g. a disk error")
    sitegen(archive, "--force")
    assert tree(archive / "site") == warm
    assert (archive / "catalogue.json").read_bytes() == catalogue
    assert kinds(archive)  # a new store was made in place of the damaged one


def test_rows_of_a_removed_run_are_dropped(archive: Path):
    sitegen(archive)
    before = kinds(archive)
    victim = sorted((archive / "runs").iterdir())[0]
    for path in sorted(victim.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    victim.rmdir()
    (archive / "runs.lock").unlink()  # the run was never published elsewhere
    sitegen(archive)
    after = kinds(archive)
    assert after["ledger-summary"] == before["ledger-summary"] - 1
    assert after["metadata"] == before["metadata"] - 1


def test_another_sitegen_version_finds_an_empty_store(archive: Path):
    sitegen(archive)
    with sqlite3.connect(archive / STORE) as db:
        db.execute("UPDATE meta SET value = 'another version' WHERE name = 'code'")
    db.close()
    state = BuildState(archive / ".sitegen-cache")
    assert state.memo("ledger-summary").known == {}


def test_memo_keeps_rows_until_the_build_ends(tmp_path: Path):
    state = BuildState(tmp_path)
    early, late = state.memo("a"), state.memo("b")
    early.put("x", 1)
    late.put("y", [2])
    state.save()
    again = BuildState(tmp_path)
    assert again.memo("a").get("x") == 1
    again.flush()  # mid-build: "b" not used yet, and must survive
    assert BuildState(tmp_path).memo("b").get("y") == [2]
    again.save()  # end of a build that used only "a": "b" was never opened, so it stays
    assert BuildState(tmp_path).memo("b").get("y") == [2]


def test_released_values_are_read_again_when_asked_and_saved_as_used(tmp_path: Path):
    """A kind whose values a build let go of still answers, and its save keeps the
    rows the build used and drops the others; a state in memory keeps its values."""
    state = BuildState(tmp_path)
    for key in ("kept", "unused", "late"):
        state.memo("entries").put(key, {"k": key})
    state.save()
    build = BuildState(tmp_path)
    memo = build.memo("entries")
    assert memo.get("kept") == {"k": "kept"}
    memo.put("new", [1])
    memo.release()
    assert memo.get("late") == {"k": "late"}  # asked for again: read again
    memo.release()
    build.save()
    assert BuildState(tmp_path).keys("entries") == {"kept", "late", "new"}
    alone = BuildState(None).memo("entries")
    alone.put("x", 1)
    assert alone.get("x") == 1
    alone.release()
    assert alone.get("x") == 1


def test_a_few_values_are_read_one_by_one_and_many_all_at_once(tmp_path: Path, monkeypatch):
    """A build that asks for a few of a kind's values does not read every row of it
    (at 10,000 runs the comparisons alone are 167 MiB); one that asks for many reads
    them in one go. The values are the same either way."""
    from sitegen import buildstate

    state = BuildState(tmp_path)
    values = {f"run-{i:03d}": {"rows": [i, str(i)]} for i in range(40)}
    for key, value in values.items():
        state.memo("comparisons").put(key, value)
    state.save()
    monkeypatch.setattr(buildstate, "SINGLE_READS", 5)
    whole: list[str] = []
    real = BuildState.read
    monkeypatch.setattr(
        BuildState, "read", lambda self, kind: (whole.append(kind), real(self, kind))[1]
    )
    build = BuildState(tmp_path)
    memo = build.memo("comparisons")
    assert [memo.get(k) for k in ("run-003", "run-017", "absent")] == [
        values["run-003"],
        values["run-017"],
        None,
    ]
    assert whole == []
    assert {k: memo.get(k) for k in values} == values
    assert whole == ["comparisons"]
    build.save()
    assert BuildState(tmp_path).keys("comparisons") == set(values)


def test_rows_a_build_replaced_without_reading_them_are_dropped(tmp_path: Path):
    """A kind a build only wrote to (every lookup missed, as after a changed setting)
    still drops the rows it did not use: the store holds what the archive needs now."""
    state = BuildState(tmp_path)
    for key in ("old-1", "old-2"):
        state.memo("comparisons").put(key, {"k": key})
    state.save()
    again = BuildState(tmp_path)
    again.memo("comparisons").put("new", {"k": "new"})
    again.save()
    assert BuildState(tmp_path).keys("comparisons") == {"new"}


def test_each_comparison_is_computed_once_and_read_back_unchanged(archive: Path):
    """Verdicts come from the store after the first build, equal to computing them again,
    and a run added later is the only one compared again."""
    sitegen(archive)
    warm = load(archive)
    memo = warm.state.memo("comparisons")
    assert (memo.hits, memo.misses) == (len(warm.comparisons), 0)
    cold = load(archive, use_cache=False)
    assert any(c.rows for c in cold.comparisons.values())  # run 0 is a baseline
    assert warm.comparisons == cold.comparisons
    assert warm.catalogue_json == cold.catalogue_json

    generate_archive.write_run(
        archive, 4, rng=random.Random(4), warm=2, n_cells=2, n_prompts=2, kind="complete"
    )
    added = load(archive)
    memo = added.state.memo("comparisons")
    assert (memo.hits, memo.misses) == (len(warm.comparisons), 1)
    assert added.comparisons["synthetic-00004"].rows
    assert added.comparisons == load(archive, use_cache=False).comparisons


def test_a_first_build_reads_back_the_comparisons_it_computed_equal(archive: Path):
    """A first build keeps what it computed encoded in the store, not as objects; the
    pages read them back, equal to computing them without a store, and the report
    does not count those reads as comparisons taken from the store."""
    first = load(archive)
    assert first.comparisons.computed == len(first.comparisons) == 4
    assert dict(first.comparisons) == dict(load(archive, use_cache=False).comparisons)
    assert first.comparisons.decoded == 0
    shutil.rmtree(archive / ".sitegen-cache")
    out = sitegen(archive)
    assert "comparisons: 4 computed, 0 from the build state (0 read in full" in out, out


def test_adding_a_run_reads_in_full_only_the_comparisons_its_pages_show(archive: Path):
    """The others are known by their outlines (verdict counts, baselines, spreads): the
    build says how many it computed, took from the store, and decoded whole."""
    sitegen(archive)
    generate_archive.write_run(
        archive, 4, rng=random.Random(4), warm=2, n_cells=2, n_prompts=2, kind="complete"
    )
    out = sitegen(archive)
    line = next(x for x in out.splitlines() if x.startswith("comparisons: "))
    assert line.startswith("comparisons: 1 computed, 4 from the build state ("), line
    decoded = int(line.split("(")[1].split()[0])
    assert decoded < 4, line  # the front page's latest changes and the feed, at most
    again = sitegen(archive, "--force")
    assert "comparisons: 0 computed, 5 from the build state" in again


def test_each_runs_checklist_is_kept_and_equals_checking_it_again(archive: Path):
    """The reproducibility checklist comes from the store while the run and the
    settings are the same; a changed setting checks every run again, a new run
    checks that run only, and each time the result is what a cold build says."""
    sitegen(archive)
    warm = load(archive)
    memo = warm.state.memo("checks")
    assert (memo.hits, memo.misses) == (4, 0)
    assert warm.checks == load(archive, use_cache=False).checks

    (archive / "sitegen.toml").write_text("[reproducibility]\nmax_load_avg = 0.01\n")
    strict = load(archive)
    memo = strict.state.memo("checks")
    assert (memo.hits, memo.misses) == (0, 4)
    assert strict.checks == load(archive, use_cache=False).checks
    assert strict.checks != warm.checks  # every generated run records a load above 0.01
    strict.state.save()

    generate_archive.write_run(
        archive, 4, rng=random.Random(4), warm=2, n_cells=2, n_prompts=2, kind="complete"
    )
    added = load(archive)
    memo = added.state.memo("checks")
    assert (memo.hits, memo.misses) == (4, 1)
    assert added.checks == load(archive, use_cache=False).checks


def test_catalogue_entries_are_kept_and_remade_when_what_they_show_changes(archive: Path):
    """Each run's catalogue entry comes from the store while all it is made of is
    unchanged; a retraction, a run superseding it, a new baseline or a new run
    remakes exactly the entries they show in, equal to a cold build's."""

    def check(expected_misses: int) -> None:
        warm = load(archive)
        memo = warm.state.memo("catalogue-entry")
        assert (memo.hits + memo.misses, memo.misses) == (len(warm.runs), expected_misses)
        cold = load(archive, use_cache=False)
        assert warm.catalogue == cold.catalogue
        assert warm.catalogue_json == cold.catalogue_json
        warm.state.save()

    sitegen(archive)
    check(0)
    (archive / "retractions.toml").write_text(
        '[synthetic-00002]\ndate = "2026-02-01"\nreason = "wrong model file"\n'
    )
    check(1)
    (archive / "runs.lock").unlink()  # as if runs 1 and 3 were not published yet
    meta = archive / "runs" / "synthetic-00003" / "metadata.json"
    meta.write_text(meta.read_text().replace("{", '{"supersedes": "synthetic-00000", ', 1))
    check(2)  # run 3's files changed, and run 0 is superseded by it
    meta = archive / "runs" / "synthetic-00001" / "metadata.json"
    meta.write_text(meta.read_text().replace('"baseline": false', '"baseline": true'))
    check(3)  # run 1, and runs 2 and 3, which now compare with it
    generate_archive.write_run(
        archive, 4, rng=random.Random(4), warm=2, n_cells=2, n_prompts=2, kind="complete"
    )
    check(1)


def test_a_new_baseline_compares_again_only_the_runs_after_it(archive: Path):
    sitegen(archive)
    before = load(archive).comparisons
    # Run 1 becomes a baseline in a corrected copy: runs 2 and 3 now meet it.
    meta = archive / "runs" / "synthetic-00001" / "metadata.json"
    meta.write_text(meta.read_text().replace('"baseline": false', '"baseline": true'))
    (archive / "runs.lock").unlink()  # as if it had not been published yet
    after = load(archive)
    memo = after.state.memo("comparisons")
    assert memo.misses == 3  # runs 1, 2 and 3; run 0 is unchanged
    assert {r.baseline_id for r in after.comparisons["synthetic-00003"].rows} == {"synthetic-00001"}
    assert after.comparisons["synthetic-00000"] == before["synthetic-00000"]


def test_catalogue_entries_are_encoded_once_and_the_file_is_byte_identical(archive: Path):
    """catalogue.json is assembled from each run's stored entry text: the same bytes as
    encoding it whole, and adding a run encodes that run's entry only."""
    sitegen(archive)
    warm = load(archive)
    assert warm.catalogue_json == (archive / "catalogue.json").read_bytes()
    assert warm.catalogue_json == dumps(warm.catalogue).encode("utf-8")
    memo = warm.state.memo("catalogue-entries")
    assert (memo.hits, memo.misses) == (4, 0)

    generate_archive.write_run(
        archive, 4, rng=random.Random(4), warm=2, n_cells=2, n_prompts=2, kind="complete"
    )
    added = load(archive)
    assert added.catalogue_json == dumps(added.catalogue).encode("utf-8")
    memo = added.state.memo("catalogue-entries")
    assert (memo.hits, memo.misses) == (4, 1)
    assert added.catalogue_json == load(archive, use_cache=False).catalogue_json


def test_a_damaged_row_is_computed_again(archive: Path, tmp_path: Path):
    """A row that cannot be decoded any more (a disk error, a hand edit) is a miss:
    an outline at once, a comparison's rows when a page that shows them is made."""
    sitegen(archive)
    site = tree(archive / "site")

    def damage(kind: str) -> None:
        # text where a stored value belongs, and a stored value cut short
        with sqlite3.connect(archive / STORE) as db:
            keys = [k for (k,) in db.execute("SELECT key FROM artefacts WHERE kind = ?", (kind,))]
            db.execute("UPDATE artefacts SET value = '{not json' WHERE key = ?", (keys[0],))
            db.execute(
                "UPDATE artefacts SET value = substr(value, 1, length(value) / 2)"
                " WHERE kind = ? AND key != ?",
                (kind, keys[0]),
            )
        db.close()

    def sound(kind: str) -> bool:
        memo = BuildState(archive / ".sitegen-cache").memo(kind)
        return len(memo.known) == 4 and all(isinstance(memo.peek(k), dict) for k in memo.known)

    damage("comparisons")
    out = sitegen(archive, "--force")
    assert "Traceback" not in out
    assert tree(archive / "site") == site
    # every page made anew: each comparison's rows are read, and the damaged ones redone
    fresh = tmp_path / "fresh"
    out = sitegen(archive, "--out", str(fresh))
    assert "Traceback" not in out
    assert tree(fresh) == site
    assert sound("comparisons")

    damage("comparison-outlines")
    out = sitegen(archive, "--force")
    assert "Traceback" not in out
    assert tree(archive / "site") == site
    assert sound("comparison-outlines")


def test_per_run_frames_kept_between_builds_equal_a_fresh_computation(archive: Path):
    """Aggregates and warm samples are kept per ledger version; after runs are
    added and removed, what a build reads back is what computing everything
    again gives (rows, every sample value, and the order of both)."""

    def derived(use_cache: bool) -> tuple[object, object, object]:
        loaded = load(archive, use_cache=use_cache)
        samples = {rid: list(s.items()) for rid, s in loaded.samples.items()}
        figures = {e["id"]: e.get("key_figures") for e in loaded.catalogue["runs"]}
        return loaded.rows, samples, figures

    first = derived(True)
    assert derived(True) == first == derived(False)  # read back whole, unchanged
    # one part of the call store, and the four frames derived from it beside it
    frames = sorted(p.name for p in (archive / ".sitegen-cache" / "calls").rglob("*.parquet"))
    (part,) = {name.split(".")[0] for name in frames}
    made = ["aggregates", "figures-cold", "figures-warm", "warm-samples"]
    assert frames == sorted([f"{part}.parquet", *(f"{part}.{k}.parquet" for k in made)])
    victim = sorted((archive / "runs").iterdir())[1]
    for path in sorted(victim.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    victim.rmdir()
    (archive / "runs.lock").unlink(missing_ok=True)  # load() alone writes no lock
    rows, samples, figures = derived(True)
    assert (rows, samples, figures) == derived(False)
    assert victim.name not in rows and victim.name not in samples
    # the same run id again with other calls (between kept runs), and a new run
    for index, seed in ((1, 99), (7, 7)):
        generate_archive.write_run(
            archive,
            index,
            rng=random.Random(seed),
            warm=2,
            n_cells=2,
            n_prompts=2,
            kind="complete",
        )
    rows, samples, figures = derived(True)
    assert (rows, samples, figures) == derived(False)
    assert list(rows) == sorted(rows) and len(rows) == len(first[0]) + 1
    assert rows[victim.name] != first[0][victim.name]


def test_the_call_stores_of_other_sitegen_versions_are_removed(archive: Path):
    """Each sitegen version keeps its own call store; after an upgrade the old one is
    never read again, so the first build that writes the new one removes it."""
    sitegen(archive)
    calls = archive / ".sitegen-cache" / "calls"
    (current,) = list(calls.iterdir())
    old = calls / "0123abcd-1048576"
    old.mkdir()
    (old / "0123.parquet").write_bytes(b"rows of an older sitegen")
    (current / "index.json").unlink()  # as after an upgrade: the store must be written
    sitegen(archive, "--force")
    assert sorted(p.name for p in calls.iterdir()) == [current.name]
    assert (current / "index.json").is_file()


def test_touched_ledgers_are_hashed_again_not_checked_again(archive: Path, monkeypatch):
    """A copy or checkout that only touches the files (new times, same bytes) costs
    hashing them: each ledger's stored summary is found by its sha256, and what
    the build reads equals a cold read."""
    sitegen(archive)
    ledgers = sorted((archive / "runs").glob("*/run.jsonl"))
    assert ledgers
    for path in ledgers:
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    checked: list[str] = []
    real = ledger_columns._decodable
    monkeypatch.setattr(
        ledger_columns,
        "_decodable",
        lambda ledgers, *a: (checked.extend(x.path for x in ledgers), real(ledgers, *a))[1],
    )
    warm = load(archive)
    assert checked == []
    cold = load(archive, use_cache=False)
    assert len(checked) == len(ledgers)  # the cold read checks every ledger
    assert [(r.run_id, r.ledger, r.manifest) for r in warm.runs] == [
        (r.run_id, r.ledger, r.manifest) for r in cold.runs
    ]
    assert warm.calls.frame().equals(cold.calls.frame())


def test_a_cold_read_opens_each_run_file_once(archive: Path):
    """Hashing a file and parsing it share one read: at 10,000 runs a second open
    and read of every ledger and metadata file cost about half a second."""
    opened: list[str] = []
    listening = [False]

    def hook(event: str, args: tuple) -> None:
        if listening[0] and event == "open" and isinstance(args[0], str | Path):
            opened.append(str(args[0]))

    sys.addaudithook(hook)
    layout = Layout.of(archive)
    config = load_config(layout)
    cache = ReadCache(None, max_line_bytes=config.get("limits.max_line_bytes"))
    listening[0] = True
    try:
        runs, problems, _invalid = read_archive(layout, config, cache)
    finally:
        listening[0] = False
    assert runs and not problems
    files = [str(p) for p in sorted((archive / "runs").glob("*/*")) if p.is_file()]
    assert sorted(p for p in opened if p in files) == files
