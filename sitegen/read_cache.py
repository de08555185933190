"""The read steps' derived data, in the build state (sitegen.buildstate):

- file hashes, keyed by path and checked against (size, mtime, ctime): a
  rebuild does not re-read unchanged files just to hash them;
- ledger pre-pass summaries and validated metadata, keyed by the file's
  sha256: a rebuild parses and validates only new or changed ledgers;
- the call store (sitegen.callstore): every call row in parts beside the
  database, which knows which ledger versions it holds.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import polars as pl

from sitegen.buildstate import BuildState
from sitegen.callstore import Calls, Pair, empty_calls, in_memory, open_store
from sitegen.codeversion import code_version
from sitegen.fsutil import read_hashed, sha256_file, stat_stamp
from sitegen.ledger import CALL_SCHEMA, LedgerSummary, read_calls

# Ledgers read in one Polars scan when the check did not read them (the store was
# deleted, but the summaries are known): one batch's rows at a time, not all.
READ_BATCH = 256


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
        # Call rows this build's ledger check already read (``_file`` first, with
        # the paths it counts), and the ledgers they cover: calls() takes them
        # instead of reading again.
        self._offered: list[tuple[pl.DataFrame | None, list[str], list[str]]] = []
        self._covered: set[str] = set()

    def release(self) -> None:
        """Let go of the stored values read (``Memo.release``): only reading uses them."""
        for memo in (self.hashes, self.summaries, self.metadata_files):
            memo.release()

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
        self._offered.append((frame, files, paths))
        self._covered.update(paths)

    def _read(
        self, ledgers: dict[str, Path], sha: dict[str, str]
    ) -> Iterator[tuple[pl.DataFrame, list[Pair]]]:
        """The call rows of ``ledgers`` (run id -> path), some runs at a time, with the
        (run id, sha256) pairs each frame covers: those the ledger check read in this
        build first, then the others read now. What was offered serves one read."""
        by_path = {str(path): rid for rid, path in ledgers.items()}
        offered, self._offered = self._offered, []
        rest = {rid: path for rid, path in ledgers.items() if str(path) not in self._covered}
        self._covered = set()
        offered.reverse()
        while offered:
            frame, files, read = offered.pop()  # each batch let go of once it is a part
            covered = [(rid, sha[rid]) for path in read if (rid := by_path.get(path))]
            if frame is None:
                yield empty_calls(), covered  # valid ledgers without a call
                continue
            ids = [by_path.get(file) for file in files]  # None: a run not asked for
            run_id = pl.Series("run_id", ids, dtype=pl.String).gather(frame["_file"])
            rows = frame.select(*CALL_SCHEMA).insert_column(0, run_id)
            yield rows.filter(run_id.is_not_null()) if None in ids else rows, covered
        names = sorted(rest)
        for at in range(0, len(names), READ_BATCH):
            batch = {rid: rest[rid] for rid in names[at : at + READ_BATCH]}
            yield read_calls(batch), [(rid, sha[rid]) for rid in batch]

    def calls(self, ledgers: dict[str, tuple[Path, str]]) -> Calls:
        """Every call row of ``ledgers`` (run id -> (path, sha256)), read by run.

        With a cache, the rows are kept in the call store (sitegen.callstore),
        which knows which ledger versions it holds: only the other ledgers are
        parsed, and a build never holds every row at once.
        """
        wanted = sorted((rid, sha) for rid, (_path, sha) in ledgers.items())
        sha = dict(wanted)
        paths = {rid: path for rid, (path, _sha) in ledgers.items()}
        if self.root is None:
            return in_memory(self._read(paths, sha), wanted)
        folder = self.root / "calls" / self.version
        calls = open_store(
            folder, wanted, lambda pairs: self._read({r: paths[r] for r, _s in pairs}, sha)
        )
        self._offered, self._covered = [], set()
        # the stores of other sitegen versions (or line limits) are never read again
        for other in os.scandir(folder.parent):
            if other.name != folder.name and other.is_dir(follow_symlinks=False):
                shutil.rmtree(other.path, ignore_errors=True)
        return calls


def no_cache(max_line_bytes: int) -> ReadCache:
    return ReadCache(None, max_line_bytes=max_line_bytes)
