"""Content-addressed caches of the expensive read steps, kept out of the site.

- file hashes, keyed by (path, size, mtime, inode): a rebuild does not re-read
  unchanged files just to hash them;
- ledger pre-pass summaries, keyed by the ledger's sha256, and one store of
  every call row (Parquet) that knows which ledger versions it holds: a
  rebuild parses and validates only new or changed ledgers.

Every key includes a version of the code that produced the entry, so an
upgrade never serves stale results. The whole folder is safe to delete.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import polars as pl

from sitegen.codeversion import code_version
from sitegen.fsutil import sha256_file, write_atomic
from sitegen.ledger import LedgerSummary, read_calls, sort_calls


class ReadCache:
    """File hashes, ledger summaries and call frames; ``None`` root disables it."""

    def __init__(self, root: Path | None, *, max_line_bytes: int):
        self.root = root
        self.version = f"{code_version()}-{max_line_bytes}"
        self.hashes: dict[str, list[Any]] = {}
        self.hashes_used: dict[str, list[Any]] = {}
        self.summary_hits = 0
        self.calls_reused = 0
        self._summaries: dict[str, dict[str, Any]] | None = None
        self._summaries_used: dict[str, dict[str, Any]] = {}
        if root is not None:
            try:
                data = json.loads((root / "hashes.json").read_text(encoding="utf-8"))
                self.hashes = data if isinstance(data, dict) else {}
            except (OSError, ValueError):
                self.hashes = {}

    def sha256(self, path: Path) -> str:
        """sha256 of a file, reusing the last result while its stat is unchanged.

        The stamp includes the inode change time, which no user-level tool can
        set back, so an edit that restores the modification time is still seen.
        """
        st = path.stat()
        stamp = [st.st_size, st.st_mtime_ns, st.st_ctime_ns]
        key = str(path)
        known = self.hashes.get(key)
        fresh = known is not None and known[:3] == stamp
        digest = known[3] if fresh else sha256_file(path)
        self.hashes_used[key] = [*stamp, digest]
        return digest

    def _summaries_path(self) -> Path | None:
        return None if self.root is None else self.root / "ledgers" / f"{self.version}.json"

    def _load_summaries(self) -> dict[str, dict[str, Any]]:
        if self._summaries is None:
            self._summaries = {}
            path = self._summaries_path()
            if path is not None:
                try:
                    data = json.loads(path.read_text(encoding="utf-8"))
                    self._summaries = data if isinstance(data, dict) else {}
                except (OSError, ValueError):
                    pass
        return self._summaries

    def summary(self, sha: str) -> LedgerSummary | None:
        """The pre-pass summary of the ledger with this sha256, when cached.

        All summaries, and the validated metadata files, live in one file,
        read once: a file per entry costs a read (and, when written, an fsync)
        per run.
        """
        data = self._load_summaries().get(sha)
        if not isinstance(data, dict):
            return None
        try:
            summary = LedgerSummary(**data)
        except TypeError:
            return None
        self.summary_hits += 1
        self._summaries_used[sha] = data
        return summary

    def store_summary(self, sha: str, summary: LedgerSummary) -> None:
        self._summaries_used[sha] = dataclasses.asdict(summary)

    def metadata(self, sha: str) -> dict[str, Any] | None:
        """A metadata.json (by sha256) that parsed and validated before."""
        data = self._load_summaries().get("metadata:" + sha)
        if isinstance(data, dict):
            # Shared with the entry to save: the build never changes metadata
            # (a deep copy per run cost seconds on large archives).
            self._summaries_used["metadata:" + sha] = data
            return data
        return None

    def store_metadata(self, sha: str, data: dict[str, Any]) -> None:
        self._summaries_used["metadata:" + sha] = copy.deepcopy(data)

    def calls(self, ledgers: dict[str, tuple[Path, str]]) -> pl.DataFrame:
        """Every call row of ``ledgers`` (run id -> (path, sha256)), via one store.

        The store is a single Parquet file of all call rows plus the list of
        (run id, ledger sha256) it holds. A rebuild reads it whole (about 0.3 s
        for a million rows); when runs were added, changed or removed, the
        rows still valid are kept and only the other ledgers are parsed.
        """
        wanted = sorted((rid, sha) for rid, (_path, sha) in ledgers.items())
        if self.root is None:
            return read_calls({rid: path for rid, (path, _sha) in ledgers.items()})
        folder = self.root / "calls" / self.version
        index_path, store_path = folder / "index.json", folder / "calls.parquet"
        held = self._store_index(index_path, store_path)
        if held == wanted:
            self.calls_reused = len(wanted)
            return pl.read_parquet(store_path)
        held_pairs = set(held or ())
        keep = {rid for rid, sha in wanted if (rid, sha) in held_pairs}
        parts = []
        if keep:
            parts.append(pl.scan_parquet(store_path).filter(pl.col("run_id").is_in(keep)).collect())
        parts.append(read_calls({rid: p for rid, (p, _s) in ledgers.items() if rid not in keep}))
        frame = sort_calls(pl.concat(parts, how="vertical"))
        self.calls_reused = len(keep)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = store_path.with_suffix(f".{os.getpid()}.tmp")
        frame.write_parquet(tmp, compression="lz4", statistics=False)
        os.replace(tmp, store_path)
        write_atomic(index_path, json.dumps({"runs": wanted, "rows": frame.height}), durable=False)
        return frame

    @staticmethod
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

    def save(self) -> None:
        """Write what this build used (entries it did not use are dropped)."""
        if self.root is None:
            return
        write_atomic(
            self.root / "hashes.json", json.dumps(self.hashes_used, sort_keys=True), durable=False
        )
        path = self._summaries_path()
        if path is not None and self._summaries_used != self._load_summaries():
            text = json.dumps(self._summaries_used, sort_keys=True, ensure_ascii=False)
            write_atomic(path, text, durable=False)


def no_cache(max_line_bytes: int) -> ReadCache:
    return ReadCache(None, max_line_bytes=max_line_bytes)
