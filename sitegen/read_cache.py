"""The read steps' derived data, in the build state (sitegen.buildstate):

- file hashes, keyed by path and checked against (size, mtime, ctime): a
  rebuild does not re-read unchanged files just to hash them;
- ledger pre-pass summaries and validated metadata, keyed by the file's
  sha256: a rebuild parses and validates only new or changed ledgers;
- one store of every call row (a Parquet blob beside the database) that knows
  which ledger versions it holds.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

from sitegen.buildstate import BuildState
from sitegen.codeversion import code_version
from sitegen.fsutil import read_hashed, sha256_file, stat_stamp, write_atomic
from sitegen.ledger import CALL_SCHEMA, LedgerSummary, read_calls, sort_calls


class ReadCache:
    """File hashes, ledger summaries and call frames; ``None`` root disables it."""

    def __init__(self, root: Path | None, *, max_line_bytes: int, state: BuildState | None = None):
        self.root = root
        self.state = state if state is not None else BuildState(root)
        # The line limit changes what the pre-pass accepts, so it is part of the keys.
        self.version = f"{code_version()}-{max_line_bytes}"
        self._limit = str(max_line_bytes)
        self.hashes = self.state.memo("file-sha256")
        self.summaries = self.state.memo("ledger-summary")
        self.metadata_files = self.state.memo("metadata")
        # The store folder and the (run id, ledger sha256) pairs of the last calls()
        self._held: tuple[Path, list[tuple[str, str]]] | None = None
        # Call rows this build's ledger check already read (``_file`` first, with
        # the paths it counts), and the ledgers they cover: calls() takes them
        # instead of reading again.
        self._offered: list[tuple[pl.DataFrame, list[str]]] = []
        self._covered: set[str] = set()

    def sha256(self, path: Path) -> str:
        """sha256 of a file, reusing the last result while its stat is unchanged."""
        stamp, digest = self._lookup(path)
        if digest is None:
            digest = sha256_file(path)
            self.note_sha256(path, stamp, digest)
        return digest

    def known_sha256(self, path: Path) -> str | None:
        """The file's sha256 from the last build while its stat is unchanged; None
        when the file must be read to know it."""
        return self._lookup(path)[1]

    def _lookup(self, path: Path) -> tuple[list[int], str | None]:
        """The file's stamp, and its sha256 when the last build saw the same stamp.

        The stamp includes the inode change time, so an edit that restores the
        modification time is still seen.
        """
        stamp = stat_stamp(path.stat())
        key = str(path)
        known = self.hashes.peek(key)
        if not (isinstance(known, list) and len(known) == 4 and known[:3] == stamp):
            return stamp, None
        self.hashes.keep(key, known, plain=True)
        return stamp, str(known[3])

    def read_hashed(self, path: Path) -> tuple[str, bytes]:
        """Read a file and note its sha256: the caller parses the same bytes."""
        stamp, digest, data = read_hashed(path)
        self.note_sha256(path, stamp, digest)
        return digest, data

    def note_sha256(self, path: Path, stamp: list[int], digest: str) -> None:
        """Remember the sha256 of the file whose stat was ``stamp`` (size, mtime, ctime)."""
        self.hashes.keep(str(path), [*stamp, digest], plain=True)

    def summary_known(self) -> Callable[[str], bool]:
        """Whether the summary of a ledger (by sha256) is stored: a test safe to run
        in another thread (it reads a set taken now)."""
        stored = self.summaries.stored_keys()
        prefix = f"{self._limit}:"
        return lambda sha: prefix + sha in stored

    def summary(self, sha: str) -> LedgerSummary | None:
        """The pre-pass summary of the ledger with this sha256, when stored."""
        data = self.summaries.get(f"{self._limit}:{sha}")
        if not isinstance(data, dict):
            return None
        try:
            return LedgerSummary(**data)
        except TypeError:
            return None

    def store_summary(self, sha: str, summary: LedgerSummary) -> None:
        # The summary holds records parsed from JSON and counts: plain already.
        fields = {f.name: getattr(summary, f.name) for f in dataclasses.fields(summary)}
        self.summaries.put(f"{self._limit}:{sha}", fields, plain=True)

    def metadata(self, sha: str) -> dict[str, Any] | None:
        """A metadata.json (by sha256) that parsed and validated before.

        Shared with the stored row: the build never changes metadata (a deep
        copy per run cost seconds on large archives).
        """
        data = self.metadata_files.get(sha)
        return data if isinstance(data, dict) else None

    def store_metadata(self, sha: str, data: dict[str, Any]) -> None:
        # parsed from JSON, and encoded at once: later changes to ``data`` do not reach it
        self.metadata_files.put(sha, data, plain=True)

    def offer_calls(self, frame: pl.DataFrame | None, files: list[str], paths: list[str]) -> None:
        """Call rows the ledger check read for ``paths``: a ``_file`` column first,
        which indexes ``files``."""
        if frame is not None:
            self._offered.append((frame, files))
        self._covered.update(paths)

    def _read(self, ledgers: dict[str, Path]) -> pl.DataFrame:
        """The call rows of ``ledgers`` (run id -> path): those the ledger check read
        in this build, the others read now. What was offered serves one read."""
        by_path = {str(path): rid for rid, path in ledgers.items()}
        rest = {rid: path for rid, path in ledgers.items() if str(path) not in self._covered}
        frames = [read_calls(rest)]
        for offered, files in self._offered:
            ids = [by_path.get(file) for file in files]  # None: a run not asked for
            run_id = pl.Series("run_id", ids, dtype=pl.String).gather(offered["_file"])
            frame = offered.select(*CALL_SCHEMA).insert_column(0, run_id)
            frames.append(frame.filter(run_id.is_not_null()) if None in ids else frame)
        self._offered, self._covered = [], set()
        return sort_calls(pl.concat(frames, how="vertical"))

    def calls(self, ledgers: dict[str, tuple[Path, str]]) -> pl.DataFrame:
        """Every call row of ``ledgers`` (run id -> (path, sha256)), via one store.

        The store is a single Parquet file of all call rows plus the list of
        (run id, ledger sha256) it holds. A rebuild reads it whole (about 0.3 s
        for a million rows); when runs were added, changed or removed, the
        rows still valid are kept and only the other ledgers are parsed.
        """
        wanted = sorted((rid, sha) for rid, (_path, sha) in ledgers.items())
        if self.root is None:
            return self._read({rid: path for rid, (path, _sha) in ledgers.items()})
        folder = self.root / "calls" / self.version
        self._held = (folder, wanted)
        frame = _merged(
            folder / "calls.parquet",
            folder / "index.json",
            wanted,
            lambda keep: self._read({r: p for r, (p, _s) in ledgers.items() if r not in keep}),
            sort_calls,
        )
        # the stores of other sitegen versions (or line limits) are never read again
        for other in os.scandir(folder.parent):
            if other.name != folder.name and other.is_dir(follow_symlinks=False):
                shutil.rmtree(other.path, ignore_errors=True)
        return frame

    def per_run(
        self, name: str, make: Callable[[pl.DataFrame], pl.DataFrame], calls: pl.DataFrame
    ) -> pl.DataFrame:
        """``make(calls)``, computed only for the runs whose ledger is new since the last build.

        ``make`` must work run by run (a run's rows depend on its calls alone)
        and return the rows of each run together, ``run_id`` first in its sort.
        Its result is kept beside the call store, for the same ledger versions:
        at 10,000 runs, grouping every call again for the four frames cost about 2 s a build.
        """
        if self.root is None or self._held is None:
            return make(calls)
        folder, wanted = self._held
        return _merged(
            folder / f"{name}.parquet",
            folder / f"{name}.json",
            wanted,
            lambda keep: make(calls.filter(~pl.col("run_id").is_in(keep))),
            # one run's rows stay in make's order; runs are ordered by id
            lambda merged: merged.sort("run_id", maintain_order=True),
        )


def _merged(
    store: Path,
    index: Path,
    wanted: list[tuple[str, str]],
    rest: Callable[[set[str]], pl.DataFrame],
    order: Callable[[pl.DataFrame], pl.DataFrame],
) -> pl.DataFrame:
    """A store of rows for the (run id, ledger sha256) pairs ``wanted``: read whole
    when it holds exactly those; else its rows of runs whose ledger is unchanged,
    with ``rest(those run ids)`` for the others, put in ``order`` and written back."""
    held = _store_index(index, store)
    if held == wanted:
        return pl.read_parquet(store)
    pairs = set(held or ())
    keep = {rid for rid, sha in wanted if (rid, sha) in pairs}
    frame = rest(keep)
    if keep:
        kept = pl.scan_parquet(store).filter(pl.col("run_id").is_in(keep)).collect()
        frame = order(pl.concat([kept, frame], how="vertical"))
    store.parent.mkdir(parents=True, exist_ok=True)
    _write_store(frame, store, index, wanted)
    return frame


def _store_index(index_path: Path, store_path: Path) -> list[tuple[str, str]] | None:
    """What the store holds, or None when it is missing or does not match its index."""
    try:
        data = json.loads(index_path.read_text(encoding="utf-8"))
        rows = pl.scan_parquet(store_path).select(pl.len()).collect().item()
    except (OSError, ValueError, pl.exceptions.PolarsError):
        return None
    if not isinstance(data, dict) or data.get("rows") != rows:
        return None
    return [(str(rid), str(sha)) for rid, sha in data.get("runs", [])]


def _write_store(
    frame: pl.DataFrame, store: Path, index: Path, runs: list[tuple[str, str]]
) -> None:
    """Put a new store file in place, then its index. The old index goes first: a
    build stopped in between leaves a store without an index, read as missing,
    never an index that describes other rows."""
    tmp = store.with_suffix(f".{os.getpid()}.tmp")
    frame.write_parquet(tmp, compression="lz4", statistics=False)
    index.unlink(missing_ok=True)
    os.replace(tmp, store)
    write_atomic(index, json.dumps({"runs": runs, "rows": frame.height}), durable=False)


def no_cache(max_line_bytes: int) -> ReadCache:
    return ReadCache(None, max_line_bytes=max_line_bytes)
