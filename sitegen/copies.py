"""One copy of each published run file, kept by content under the cache and linked
into every staging folder instead of copied.

A site publishes every run file; a build into a new folder copied all of them
(28,000 files, 430 MB at 10,000 runs: about 5 s, and the page cache's write-back
after it). A hardlink is one system call. The site never links to the archive's
own file: an edit in place there would change the published copy behind the
build's back. It links to a copy made by the build, named by the sha256 of its
bytes and checked against the digest when made.

Each copy's size, modification time and inode are kept in the build state
(kind ``copies``). A copy whose stat differs was written through one of its
links (a site file edited in place), so it is made again, under a new inode,
never written into. A build marks the copy of every file it publishes as used
(also when the file itself is kept from the live site), and when it saves its
state the copies of files no longer published are deleted with their rows. A
build state without rows of this kind (deleted, or made by another version of
sitegen) starts the folder afresh.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from pathlib import Path

from sitegen.buildstate import BuildState

KIND = "copies"
CHUNK = 1 << 20


class Copies:
    """Copies of run files under ``folder``, indexed in ``state``."""

    def __init__(self, folder: Path, state: BuildState):
        self.folder = str(folder)
        self._memo = state.memo(KIND)
        self._memo.on_drop = self._remove
        if not self._memo.stored_keys():
            # A new build state (deleted, or salted by another sitegen) indexes none of
            # the copies left here: they could never be dropped, so they go now.
            shutil.rmtree(self.folder, ignore_errors=True)
        # Copies being made wait here; one left by a killed build goes (the caller holds
        # the build lock, so no other build is making one).
        self._tmp = f"{self.folder}/tmp"
        shutil.rmtree(self._tmp, ignore_errors=True)
        self.linking = True  # False once a link failed: the site is on another file system

    def _path(self, sha256: str) -> str:
        return f"{self.folder}/{sha256[:2]}/{sha256}"

    def keep(self, sha256: str) -> None:
        """This build publishes a file with these bytes: its copy stays."""
        self._memo.hold(sha256)

    def link(self, source: Path, sha256: str, target: str) -> tuple[int, int, int] | None:
        """Make ``target`` a link to the copy of ``source`` (whose bytes have ``sha256``),
        making the copy first when there is none or it was touched; the stat the two
        share (size, mtime_ns, inode). None when no link was made: the caller copies.
        """
        if not self.linking:
            return None
        path = self._path(sha256)
        stamp = self._memo.peek(sha256)
        try:
            st = os.lstat(path)
            found = [st.st_size, st.st_mtime_ns, st.st_ino]
        except FileNotFoundError:
            found = None
        if found is None or found != stamp:
            found = self._make(source, sha256, path)
            if found is None:
                return None
            self._memo.put(sha256, found, plain=True)
        try:
            os.link(path, target)
        except OSError:  # another file system, or links not allowed there
            self.linking = False
            return None
        return (found[0], found[1], found[2])

    def _make(self, source: Path, sha256: str, path: str) -> list[int] | None:
        """Copy ``source`` to ``path`` through a new file; None when its bytes are no
        longer those of ``sha256`` (it changed since it was read: copied as it is)."""
        os.makedirs(os.path.dirname(path), exist_ok=True)  # noqa: PTH103, PTH120
        os.makedirs(self._tmp, exist_ok=True)  # noqa: PTH103
        tmp = f"{self._tmp}/{sha256}"
        digest = hashlib.sha256()
        try:
            with open(source, "rb") as src, open(tmp, "xb") as dst:
                while chunk := src.read(CHUNK):
                    digest.update(chunk)
                    dst.write(chunk)
            if digest.hexdigest() != sha256:
                return None
            os.replace(tmp, path)  # a touched copy is replaced, never written into
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)  # noqa: PTH108
        st = os.lstat(path)
        return [st.st_size, st.st_mtime_ns, st.st_ino]

    def _remove(self, dropped: list[str]) -> None:
        for sha256 in dropped:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path(sha256))  # noqa: PTH108
