"""The files of a built site folder, listed once and each hashed at most once.

The steps that check a staged site (search indexing, the link check, the
publication gate) all keep content-addressed caches: they need the sha256 of
every page, and the page itself only when its cached result is missing.
Reading and hashing a 10,000-run site (about a gigabyte) takes seconds, so the
steps share one :class:`SiteFiles`: the folder is walked once, each file is
read for its digest at most once, and digests the caller already knows (the
build hashes what it writes while it still holds the bytes) are never
recomputed. A step that adds files (the search index) records them with
:meth:`SiteFiles.add`, so the steps after it see them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from sitegen.discover import MAX_WALK_DEPTH
from sitegen.exceptions import BuildError


class SiteFiles:
    """Site-relative POSIX paths of the files under ``root``, with memoised sha256.

    ``known`` maps paths to the sha256 (hex) of their bytes, as the caller
    wrote them; a wrong digest makes the caches answer for other bytes, so
    pass only digests of exactly what is on disk. Symbolic links are listed
    apart (``links``): the gate never reads through them, the link check counts
    them as targets that exist.
    """

    def __init__(self, root: Path, known: Mapping[str, str] | None = None, *, walk: bool = True):
        self.root = Path(root)
        self.files: set[str] = set()
        self.links: set[str] = set()
        self._digests: dict[str, str] = {}
        # path -> where its writer's pieces end: the gate may cut it there (gate.scan.chunk_ends)
        self.cuts: dict[str, Sequence[int]] = {}
        if walk:
            self._walk(self.root, "")
        if known:
            self._digests.update((rel, sha) for rel, sha in known.items() if rel in self.files)

    @classmethod
    def written(cls, root: Path, written: Mapping[str, str | None]) -> SiteFiles:
        """The listing of a folder holding exactly ``written``, without walking it.

        ``written`` maps each path to the sha256 of its bytes, or None when
        not known (then hashed when asked). For a staging folder the build
        has just filled (walking the 70,000 files of a 10,000-run site takes
        about half a second): every path must be a regular file, with exactly
        those bytes, and nothing else may be there.
        """
        files = cls(root, walk=False)
        files.files = set(written)
        files._digests = {rel: sha for rel, sha in written.items() if sha is not None}
        return files

    def _walk(self, folder: Path, rel: str) -> None:
        if rel.count("/") > MAX_WALK_DEPTH:
            return  # deeper trees are refused by discovery; not walked
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            raise BuildError(
                f"{folder}: cannot list the built site: {exc.strerror or exc}"
            ) from exc
        for entry in entries:
            child = f"{rel}/{entry.name}" if rel else entry.name
            if entry.is_symlink():
                self.links.add(child)
            elif entry.is_dir(follow_symlinks=False):
                self._walk(Path(entry.path), child)
            else:
                self.files.add(child)

    def __contains__(self, rel: object) -> bool:
        return rel in self.files or rel in self.links

    def sorted(self, suffix: str = "") -> list[str]:
        """The regular files whose path ends with ``suffix``, sorted."""
        return sorted(rel for rel in self.files if rel.endswith(suffix))

    def path(self, rel: str) -> Path:
        return self.root / rel

    def read(self, rel: str) -> bytes:
        """The file's bytes; its digest is kept, so hashing it later is free."""
        data = self.path(rel).read_bytes()
        if rel not in self._digests:
            self._digests[rel] = hashlib.sha256(data).hexdigest()
        return data

    def digest(self, rel: str) -> str:
        """sha256 (hex) of the file's bytes, read only when not known yet."""
        found = self._digests.get(rel)
        if found is None:
            found = hashlib.sha256(self.path(rel).read_bytes()).hexdigest()
            self._digests[rel] = found
        return found

    def add(self, rel: str, sha256: str | None = None) -> None:
        """Record a file written under ``root`` after the listing (digest optional)."""
        self.files.add(rel)
        if sha256 is not None:
            self._digests[rel] = sha256
        else:
            self._digests.pop(rel, None)

    def add_all(self, entries: Iterable[tuple[str, str]]) -> None:
        for rel, sha in entries:
            self.add(rel, sha)

    def forget(self, folder: str) -> None:
        """Drop the files under ``folder`` (a step is about to replace them)."""
        prefix = folder.rstrip("/") + "/"
        self.files = {rel for rel in self.files if not rel.startswith(prefix)}
        self.links = {rel for rel in self.links if not rel.startswith(prefix)}
