"""A content-addressed cache of gate results, so a rebuild only scans what changed.

Keyed by the sha256 of (scan kind, file bytes) and by a fingerprint of the
gate's own rules, so a change to either rescans. Stored as JSON beside the
build's other caches; safe to delete.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any

from sitegen.fsutil import write_atomic


def _rules_version() -> str:
    digest = hashlib.sha256()
    package = resources.files("sitegen.gate")
    for name in ("rules.py", "scan.py", "views.py"):
        digest.update(package.joinpath(name).read_bytes())
    return digest.hexdigest()[:16]


class ScanCache:
    """Findings per file content; entries not used by a build are dropped on save."""

    def __init__(self, path: Path | None):
        self.path = path
        self.version = _rules_version()
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
    def key(kind: str, data: bytes) -> str:
        return hashlib.sha256(kind.encode() + b"\0" + data).hexdigest()

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
        if self.path is None:
            return
        text = json.dumps({"version": self.version, "entries": self.used}, sort_keys=True)
        write_atomic(self.path, text)
