"""A content-addressed cache of gate results, so a rebuild only scans what changed.

Keyed by the scan kind and the sha256 of the file's bytes, and by the digest
of sitegen's code (its rules included), so a change to either rescans. Stored
as JSON beside the build's other caches; safe to delete.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from sitegen.codeversion import code_version
from sitegen.fsutil import write_atomic


class ScanCache:
    """Findings per file content; entries not used by a build are dropped on save."""

    def __init__(self, path: Path | None):
        self.path = path
        self.version = code_version()
        self.entries: dict[str, list[list[Any]]] = {}
        self.used: dict[str, list[list[Any]]] = {}
        self.hits = 0
        self.misses = 0
        if path is not None and path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                data = {}
            if isinstance(data, dict) and data.get("version") == self.version:
                self.entries = data.get("entries", {})

    @staticmethod
    def key(kind: str, sha256: str) -> str:
        """The entry for a file of scan ``kind`` whose bytes have this sha256 (hex).

        Keyed by the digest, not the bytes, so a caller that knows a file's
        digest (see sitegen.sitefiles) finds its entry without reading it.
        """
        return hashlib.sha256(f"{kind}\0{sha256}".encode()).hexdigest()

    def get(self, key: str) -> list[list[Any]] | None:
        found = self.used.get(key)
        if found is None:
            found = self.entries.get(key)
        if found is not None:
            self.hits += 1
            self.used[key] = found
        return found

    def put(self, key: str, rows: list[list[Any]]) -> None:
        self.misses += 1
        self.used[key] = rows

    def save(self) -> None:
        """Write the entries this build used, unless they are exactly the ones read.

        Not synced to disk: a cache lost in a crash is only rescanned.
        """
        if self.path is None or (self.misses == 0 and len(self.used) == len(self.entries)):
            return
        text = json.dumps({"version": self.version, "entries": self.used}, sort_keys=True)
        write_atomic(self.path, text, durable=False)
