"""Gate findings per file content, in the build state, so a rebuild only scans what changed.

Keyed by the scan kind and the sha256 of the file's bytes; the store is salted
with the digest of sitegen's code (its rules included), so a change to either
rescans.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sitegen.buildstate import BuildState


class ScanCache:
    """Findings per file content; rows not used by a build are dropped on save."""

    def __init__(self, folder: Path | None = None, *, state: BuildState | None = None):
        self._memo = (state if state is not None else BuildState(folder)).memo("gate-findings")

    @staticmethod
    def key(kind: str, sha256: str) -> str:
        """The entry for a file of scan ``kind`` whose bytes have this sha256 (hex).

        Keyed by the digest, not the bytes, so a caller that knows a file's
        digest (see sitegen.sitefiles) finds its entry without reading it.
        """
        return f"{kind}:{sha256}"  # no hash of it: one is computed for every file of the site

    @property
    def hits(self) -> int:
        return self._memo.hits

    @property
    def misses(self) -> int:
        return self._memo.misses

    def get(self, key: str) -> list[list[Any]] | None:
        found = self._memo.get(key)
        return found if isinstance(found, list) else None

    def put(self, key: str, rows: list[list[Any]]) -> None:
        self._memo.put(key, rows)

    def save(self) -> None:
        self._memo.save()
