"""The call store (sitegen.callstore): call rows kept in parts, read by run, so a build
holds the rows of the runs it works on and never rewrites what it already holds."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import polars as pl
import pytest
from conftest import cli_in, end_record, generate_archive, lines, meta_record, metadata

from sitegen import callstore
from sitegen.build import load

FIRST = 6  # runs of the archive before anything is added (one of them meta-only)


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    root = tmp_path / "archive"
    generate_archive.generate(root, FIRST, warm=2, cells=2, prompts=2, seed=5)
    # calls split by month, as in a large archive; no search, for speed
    (root / "sitegen.toml").write_text("[site]\nsearch = false\n\n[data]\nsplit_calls_above = 1\n")
    return root


def store(archive: Path) -> Path:
    (folder,) = (archive / ".sitegen-cache" / "calls").iterdir()
    return folder


def parts(archive: Path) -> dict[str, list[list[object]]]:
    listed: dict[str, list[list[object]]] = json.loads(
        (store(archive) / callstore.INDEX).read_text()
    )["parts"]
    return listed


def stamps(archive: Path) -> dict[str, tuple[int, int]]:
    """The parts and their derived frames (not the index), by inode and time."""
    files = [p for p in store(archive).iterdir() if p.name != callstore.INDEX]
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in files}


def with_ledger(archive: Path) -> list[str]:
    return sorted(p.parent.name for p in (archive / "runs").glob("*/run.jsonl"))


def add_run(archive: Path, index: int, seed: int | None = None) -> str:
    rng = random.Random(index if seed is None else seed)
    return generate_archive.write_run(
        archive, index, rng=rng, warm=2, n_cells=2, n_prompts=2, kind="complete"
    )


def build(archive: Path, *args: str) -> str:
    done = cli_in(archive, "build", *args)  # from inside the archive, default arguments
    assert done.exit_code == 0, done.output
    return done.output


def ledgers_parsed(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The run ids of the ledgers each later build parses for the store (filled in)."""
    parsed: list[list[str]] = []
    read = callstore.open_store
    monkeypatch.setattr(
        "sitegen.read_cache.open_store",
        lambda folder, wanted, reader: read(
            folder, wanted, lambda pairs: (parsed.append([r for r, _ in pairs]), reader(pairs))[1]
        ),
    )
    return parsed


def same_as_cold(archive: Path) -> None:
    """What the store serves equals reading every ledger again, row for row."""
    warm, cold = load(archive), load(archive, use_cache=False)
    assert warm.calls.height == cold.calls.height == cold.calls.frame().height > 0
    assert warm.calls.frame().equals(cold.calls.frame())
    assert warm.rows == cold.rows


def test_a_run_added_is_read_alone_and_nothing_held_is_rewritten(archive: Path, monkeypatch):
    """The build after adding a run (in a month of its own) parses only its ledger,
    writes one small part, leaves every file it held untouched, and reads back from
    the store only that run's rows (for its month's download)."""
    build(archive)
    before = stamps(archive)
    (first,) = parts(archive).values()
    assert [r[0] for r in first] == with_ledger(archive)
    added = add_run(archive, 400)  # 100 days later: another month
    asked: list[set[str]] = []
    real = callstore._rows
    monkeypatch.setattr(
        callstore,
        "_rows",
        lambda folder, part, ids: (asked.append(set(ids)), real(folder, part, ids))[1],
    )
    parsed = ledgers_parsed(monkeypatch)
    build(archive)
    assert parsed == [[added]]
    # its month's call files and the SQLite export's new rows ask for it alone
    assert len(asked) == 2 and all(ids == {added} for ids in asked)
    after = stamps(archive)
    assert {name: after[name] for name in before} == before  # nothing held was written again
    listed = parts(archive)
    assert sorted(len(runs) for runs in listed.values()) == [1, len(first)]
    site = archive / "site" / "data" / "calls"
    month = pl.read_parquet(site / "2026-04.parquet")
    assert month["run_id"].unique().to_list() == [added]
    same_as_cold(archive)


def test_withdrawn_and_changed_runs_are_not_served_and_their_part_is_rewritten(archive: Path):
    build(archive)
    runs = with_ledger(archive)
    shutil.rmtree(archive / "runs" / runs[0])
    (archive / "runs.lock").unlink()
    build(archive)
    (part,) = parts(archive).values()  # four of five runs still wanted: kept as it is
    assert [r[0] for r in part] == runs
    same_as_cold(archive)
    for gone in runs[1:3]:
        shutil.rmtree(archive / "runs" / gone)
    changed = add_run(archive, int(runs[3].rsplit("-", 1)[1]), seed=99)  # other calls
    (archive / "runs.lock").unlink()
    build(archive)
    listed = parts(archive)
    # the first part held one of five runs as it is now: written again with it alone,
    # the changed run in a part of its own
    held = sorted(r[0] for runs in listed.values() for r in runs)
    assert held == with_ledger(archive) and changed in held
    assert part not in listed.values()
    assert {p.name.split(".")[0] for p in store(archive).iterdir()} - {"index"} == set(listed)
    same_as_cold(archive)


def test_small_parts_are_merged_once_there_are_many(archive: Path, monkeypatch):
    monkeypatch.setattr(callstore, "MAX_SMALL", 2)
    build(archive)
    for index in (100, 101, 102):
        add_run(archive, index)
        build(archive)
    listed = parts(archive)
    assert len(listed) <= 3
    assert sum(len(runs) for runs in listed.values()) == len(with_ledger(archive))
    same_as_cold(archive)


def test_a_damaged_or_missing_part_is_read_again_from_the_ledgers(archive: Path):
    build(archive)
    site = (archive / "site" / "data" / "aggregates.csv").read_bytes()
    add_run(archive, 100)
    build(archive)
    small, big = sorted(parts(archive), key=lambda name: len(parts(archive)[name]))
    (store(archive) / f"{big}.parquet").write_bytes(b"not parquet")
    (store(archive) / f"{small}.parquet").unlink()
    out = build(archive, "--force")  # the cache is not an input: without it, nothing changed
    assert "Traceback" not in out
    listed = parts(archive)
    assert big not in listed and small not in listed
    assert sum(len(runs) for runs in listed.values()) == len(with_ledger(archive))
    assert (archive / "site" / "data" / "aggregates.csv").read_bytes() != site  # one run more
    same_as_cold(archive)


def test_files_a_stopped_build_left_are_removed(archive: Path):
    build(archive)
    folder = store(archive)
    (folder / ".0123.parquet.999.tmp").write_bytes(b"half a part")
    (folder / "0123abcd.parquet").write_bytes(b"a part no index names")
    (folder / callstore.INDEX).unlink()  # stopped between a part and the index
    build(archive, "--force")
    assert not (folder / ".0123.parquet.999.tmp").exists()
    assert not (folder / "0123abcd.parquet").exists()
    assert len(parts(archive)) == 1
    same_as_cold(archive)


def test_a_build_without_a_cache_reads_the_same_rows_in_memory(archive: Path):
    cold = load(archive, use_cache=False)
    assert not (archive / ".sitegen-cache" / "calls").exists()
    ids = [r.run_id for r in cold.runs][:2]
    rows = cold.calls.of(ids)
    assert sorted(rows["run_id"].unique()) == sorted(ids)
    assert rows.height == sum(cold.calls.of([i]).height for i in ids)
    assert cold.calls.of([]).height == 0 and cold.calls.of(["no-such-run"]).height == 0


def test_a_ledger_without_a_call_is_held_and_not_read_again(archive: Path, monkeypatch):
    """A run whose ledger records no call (its one cell skipped) is held by a part with
    no rows for it, so the builds after it do not parse its ledger again."""
    build(archive)
    folder = archive / "runs" / "no-calls"
    folder.mkdir()
    skipped = {"type": "skip", "cell_id": "node-a:llamacpp:m1", "reason": "probe failed"}
    (folder / "run.jsonl").write_text(lines(meta_record("no-calls"), skipped, end_record(calls=0)))
    (folder / "metadata.json").write_text(json.dumps(metadata("no-calls", status="interrupted")))
    build(archive)
    held = {r[0]: r[2] for runs in parts(archive).values() for r in runs}
    assert held["no-calls"] == 0
    parsed = ledgers_parsed(monkeypatch)
    added = add_run(archive, 100)
    build(archive)
    assert parsed == [[added]]
    same_as_cold(archive)
