"""Content-addressed caches of the expensive read steps, kept out of the site.

- file hashes, keyed by (path, size, mtime, inode): a rebuild does not re-read
  unchanged files just to hash them;
- ledger pre-pass summaries and each ledger's call rows (as Parquet), keyed by
  the ledger's sha256: a rebuild parses and validates only new or changed
  ledgers.

Every key includes a version of the code that produced the entry, so an
upgrade never serves stale results. The whole folder is safe to delete.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any

from sitegen import __version__
from sitegen.fsutil import sha256_file, write_atomic
from sitegen.ledger import LedgerSummary


def _code_version() -> str:
    digest = hashlib.sha256(__version__.encode())
    package = resources.files("sitegen")
    for name in ("ledger.py", "schema.py"):
        digest.update(package.joinpath(name).read_bytes())
    for schema in sorted(
        p.name for p in package.joinpath("schemas").iterdir() if p.name.endswith(".json")
    ):
        digest.update(package.joinpath("schemas", schema).read_bytes())
    return digest.hexdigest()[:16]


class ReadCache:
    """File hashes, ledger summaries and call frames; ``None`` root disables it."""

    def __init__(self, root: Path | None, *, max_line_bytes: int):
        self.root = root
        self.version = f"{_code_version()}-{max_line_bytes}"
        self.hashes: dict[str, list[Any]] = {}
        self.hashes_used: dict[str, list[Any]] = {}
        self.summary_hits = 0
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

    def _ledger_dir(self, sha: str) -> Path | None:
        if self.root is None:
            return None
        return self.root / "ledgers" / self.version / sha[:2]

    def summary(self, sha: str) -> LedgerSummary | None:
        folder = self._ledger_dir(sha)
        if folder is None:
            return None
        try:
            data = json.loads((folder / f"{sha}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        self.summary_hits += 1
        return LedgerSummary(**data)

    def store_summary(self, sha: str, summary: LedgerSummary) -> None:
        folder = self._ledger_dir(sha)
        if folder is not None:
            text = json.dumps(dataclasses.asdict(summary), sort_keys=True, ensure_ascii=False)
            write_atomic(folder / f"{sha}.json", text)

    def calls_path(self, sha: str) -> Path | None:
        folder = self._ledger_dir(sha)
        return folder / f"{sha}.parquet" if folder is not None else None

    def save(self) -> None:
        if self.root is not None:
            write_atomic(self.root / "hashes.json", json.dumps(self.hashes_used, sort_keys=True))


def no_cache(max_line_bytes: int) -> ReadCache:
    return ReadCache(None, max_line_bytes=max_line_bytes)
