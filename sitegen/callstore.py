"""Every call row of the archive, kept on disk in parts and read by run.

A build asks for the rows of the runs it works on (new ledgers, a month's
download being made again), never for every call of a large archive at once:
at 10,000 runs the whole frame and the copies sorting and merging it made were
about 700 MiB of every build's memory, and a run added rewrote all of it.

A part is one Parquet file of whole runs, written once and never changed,
with one file beside it per frame derived from it run by run (aggregates,
warm samples, key figures). ``index.json`` lists the parts and the
(run id, ledger sha256, rows) each holds; it is written after the files it
names, and files it does not name are removed, so a build stopped at any
point leaves a store that the next build reads or repairs.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from sitegen.fsutil import write_atomic
from sitegen.ledger import CALL_SCHEMA, sort_calls

INDEX = "index.json"
# A cold read writes a part each time this many rows have come in: large enough
# that a first build makes a few parts, small enough that it never holds two
# copies of every call.
PART_ROWS = 250_000
# Each build that adds runs adds a small part; once there are more than this
# many, they are merged into one.
MAX_SMALL = 8
SMALL_ROWS = PART_ROWS // 4

Pair = tuple[str, str]  # (run id, ledger sha256)
Make = Callable[[pl.DataFrame], pl.DataFrame]


def empty_calls() -> pl.DataFrame:
    return pl.DataFrame(schema={"run_id": pl.String(), **CALL_SCHEMA})


@dataclass(frozen=True)
class Part:
    """Call rows of whole runs: in a file of the store, or in memory (no store)."""

    name: str
    runs: tuple[tuple[str, str, int], ...]  # (run id, ledger sha256, rows), by run id
    frame: pl.DataFrame | None = field(default=None, compare=False)  # in memory only

    @property
    def rows(self) -> int:
        return sum(n for _rid, _sha, n in self.runs)

    def held(self, wanted: set[Pair]) -> set[str]:
        """The run ids whose rows here are the ones wanted."""
        return {rid for rid, sha, _n in self.runs if (rid, sha) in wanted}


class Calls:
    """The call rows of the runs a build reads, by run (``of``), and the frames
    derived from them run by run (``per_run``), from the parts that hold them.

    ``folder`` is the store, or None when the parts are in memory (a build
    without a cache).
    """

    def __init__(self, folder: Path | None, parts: list[Part], wanted: Iterable[Pair]):
        self.folder = folder
        want = set(wanted)
        # each part with the run ids it answers for (a ledger held twice, by the first);
        # parts answering for none are left out
        self._parts: list[tuple[Part, set[str]]] = []
        claimed: set[str] = set()
        self.height = 0
        for part in parts:
            ids = part.held(want) - claimed
            if ids:
                claimed |= ids
                self._parts.append((part, ids))
                self.height += sum(n for rid, _sha, n in part.runs if rid in ids)

    def of(self, run_ids: Iterable[str]) -> pl.DataFrame:
        """The call rows of these runs, in the one order of call rows (``sort_calls``)."""
        frames = list(self.each(run_ids))
        return sort_calls(pl.concat(frames, how="vertical")) if frames else empty_calls()

    def each(self, run_ids: Iterable[str]) -> Iterator[pl.DataFrame]:
        """The call rows of these runs, a part at a time (each part's rows in order)."""
        asked = set(run_ids)
        for part, ids in self._parts:
            if ids & asked:
                yield _rows(self.folder, part, ids & asked)

    def frame(self) -> pl.DataFrame:
        """Every call row: for small archives and tests; a build asks by run."""
        return self.of({rid for _p, ids in self._parts for rid in ids})

    def per_run(self, makers: dict[str, Make]) -> dict[str, pl.DataFrame]:
        """Each ``make`` over every run's calls (by name), the runs in id order.

        A ``make`` must work run by run (a run's rows depend on its calls alone)
        and keep each run's rows together. What it gives for a part is kept
        beside it, so a build computes it only for the parts it wrote, reading
        each such part once for all of them.
        """
        frames: dict[str, list[pl.DataFrame]] = {name: [] for name in makers}
        for part, ids in self._parts:
            for name, derived in self._derived(part, makers).items():
                if len(ids) < len(part.runs):
                    derived = derived.filter(pl.col("run_id").is_in(sorted(ids)))
                frames[name].append(derived)
        # one run's rows stay in make's order; runs are ordered by id
        return {
            name: pl.concat(got, how="vertical").sort("run_id", maintain_order=True)
            if got
            else makers[name](empty_calls())
            for name, got in frames.items()
        }

    def _derived(self, part: Part, makers: dict[str, Make]) -> dict[str, pl.DataFrame]:
        if part.frame is not None:
            return {name: make(part.frame) for name, make in makers.items()}
        assert self.folder is not None
        out: dict[str, pl.DataFrame] = {}
        rows: pl.DataFrame | None = None
        for name, make in makers.items():
            path = self.folder / f"{part.name}.{name}.parquet"
            try:
                out[name] = pl.read_parquet(path)
                continue
            except (OSError, pl.exceptions.PolarsError):
                pass  # not made yet, or damaged: made again from the part
            if rows is None:
                rows = pl.read_parquet(_file(self.folder, part))
            out[name] = make(rows)
            _write_frame(out[name], path)
        return out


def _file(folder: Path, part: Part) -> Path:
    return folder / f"{part.name}.parquet"


def _rows(folder: Path | None, part: Part, ids: set[str]) -> pl.DataFrame:
    """The rows of these runs of one part (all of them without a filter)."""
    if part.frame is not None:
        source = part.frame.lazy()
    else:
        assert folder is not None
        source = pl.scan_parquet(_file(folder, part))
    if len(ids) < len(part.runs):
        source = source.filter(pl.col("run_id").is_in(sorted(ids)))
    return source.collect()


def in_memory(frames: Iterator[tuple[pl.DataFrame, list[Pair]]], wanted: list[Pair]) -> Calls:
    """Calls held in memory, for a build without a store."""
    return Calls(None, [_part(frame, pairs, keep=True)[0] for frame, pairs in frames], wanted)


def open_store(
    folder: Path,
    wanted: list[Pair],
    read: Callable[[list[Pair]], Iterator[tuple[pl.DataFrame, list[Pair]]]],
) -> Calls:
    """The store in ``folder`` brought to hold exactly the ``wanted`` ledgers' rows.

    ``read(pairs)`` gives the rows of the ledgers the store does not hold, in
    frames of some runs each (with the pairs each covers). Parts left holding
    less than half their rows for wanted ledgers are written again with only
    those; small parts are merged once there are many. Then the index is
    written, and every file it does not name removed.
    """
    want = set(wanted)
    listed, complete = _index(folder)
    parts = [p for p in listed if p.held(want)]
    held = {(rid, sha) for p in parts for rid, sha, _n in p.runs}
    missing = [pair for pair in wanted if pair not in held]
    new: list[Part] = []
    if missing:
        new = list(_write_parts(folder, read(missing)))
    kept: list[Part] = []
    for part in parts:
        ids = part.held(want)
        live = sum(n for rid, _sha, n in part.runs if rid in ids)
        if 2 * live < part.rows:
            new.append(_rewrite(folder, part, ids))
        else:
            kept.append(part)
    small = [p for p in kept + new if p.rows < SMALL_ROWS]
    if len(small) > MAX_SMALL:
        merged = Calls(folder, small, want)
        pairs = sorted({(rid, sha) for p in small for rid, sha, _n in p.runs if (rid, sha) in want})
        names = {p.name for p in small}
        kept = [p for p in kept if p.name not in names]
        new = [p for p in new if p.name not in names]
        new.append(_write_part(folder, merged.frame(), pairs))
    final = sorted({p.name: p for p in kept + new}.values(), key=lambda p: p.name)
    if not complete or final != listed:
        _write_index(folder, final)
    _sweep(folder, {p.name for p in final})
    return Calls(folder, final, want)


def _write_parts(folder: Path, frames: Iterator[tuple[pl.DataFrame, list[Pair]]]) -> Iterator[Part]:
    """Parts of about PART_ROWS rows from the frames read, each written when full."""
    pending: list[pl.DataFrame] = []
    pairs: list[Pair] = []
    rows = 0
    for frame, covered in frames:
        pending.append(frame)
        pairs += covered
        rows += frame.height
        if rows >= PART_ROWS:
            yield _write_part(folder, pl.concat(pending, how="vertical"), pairs)
            pending, pairs, rows = [], [], 0
    if pairs:
        yield _write_part(folder, pl.concat(pending, how="vertical"), pairs)


def _rewrite(folder: Path, part: Part, ids: set[str]) -> Part:
    pairs = [(rid, sha) for rid, sha, _n in part.runs if rid in ids]
    return _write_part(folder, _rows(folder, part, ids), pairs)


def _part(frame: pl.DataFrame, pairs: list[Pair], *, keep: bool) -> tuple[Part, pl.DataFrame]:
    """A part of these ledgers' rows, sorted, with each run's count (0 for a run
    without calls); the rows go with it when ``keep``."""
    frame = sort_calls(frame)
    counts = dict(frame.group_by("run_id").len().iter_rows())
    runs = tuple(sorted((rid, sha, int(counts.get(rid, 0))) for rid, sha in pairs))
    name = hashlib.sha256(json.dumps(runs).encode()).hexdigest()[:24]
    return Part(name, runs, frame if keep else None), frame


def _write_part(folder: Path, frame: pl.DataFrame, pairs: list[Pair]) -> Part:
    part, rows = _part(frame, pairs, keep=False)
    _write_frame(rows, _file(folder, part))
    return part


def _write_frame(frame: pl.DataFrame, path: Path) -> None:
    """Written whole, then put in place (a reader never sees half a file; what a stopped
    build leaves is a hidden temporary file, which ``_sweep`` removes)."""
    data = io.BytesIO()
    frame.write_parquet(data, compression="lz4", statistics=False)
    write_atomic(path, data.getvalue(), durable=False)


def _index(folder: Path) -> tuple[list[Part], bool]:
    """The parts the index names whose file is there with the rows it says, by name,
    and whether that is every part it names (none, and False, when the index is
    missing or not one this code wrote)."""
    try:
        data = json.loads((folder / INDEX).read_text(encoding="utf-8"))
        listed = [
            Part(str(name), tuple((str(r), str(s), int(n)) for r, s, n in runs))
            for name, runs in sorted(data["parts"].items())
        ]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return [], False
    found = []
    for part in listed:
        try:
            rows = pl.scan_parquet(_file(folder, part)).select(pl.len()).collect().item()
        except (OSError, pl.exceptions.PolarsError):
            continue  # missing or damaged: its runs are read again
        if rows == part.rows:
            found.append(part)
    return found, len(found) == len(listed)


def _write_index(folder: Path, parts: list[Part]) -> None:
    listed = {p.name: [list(r) for r in p.runs] for p in parts}
    write_atomic(folder / INDEX, json.dumps({"parts": listed}, sort_keys=True), durable=False)


def _sweep(folder: Path, names: set[str]) -> None:
    """Remove every file of the store that is not a named part or derived from one
    (replaced parts, and what a stopped build left)."""
    for entry in os.scandir(folder):
        if entry.name == INDEX:
            continue
        if entry.name.split(".", 1)[0] not in names:
            Path(entry.path).unlink(missing_ok=True)
