"""Reusing the previous build's files, so a rebuild costs what changed.

Every output gets a key: a digest of everything that determines its bytes
(the page's template context, the code and theme, the settings), or for a
copied file the source's sha256. After a build, the key, sha256 and stat of
each file written are saved beside the caches. The next build computes the
keys first; an output whose key matches, and whose file in the live site is
untouched since (same size, mtime and inode), is hardlinked into the new
build instead of being rendered and written again. Anything else is rendered.

The record lives in the cache folder and is safe to delete: the next build
then renders everything, as a cold build does.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sitegen.fsutil import out_key, same_file, write_atomic

VERSION = 2


def _plain(value: Any) -> Any:
    """JSON stand-ins for what page contexts hold besides plain data."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # Shallow: json encodes the fields (asdict would deep-copy them first).
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return {"__dc__": type(value).__name__, **fields}
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    if isinstance(value, bytes):
        return hashlib.sha256(value).hexdigest()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return str(value)  # Markup and other str-like values


def digest(value: Any) -> str:
    """sha256 of a canonical JSON form of ``value`` (dict order does not matter)."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=_plain)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def files_digest(root: Path, paths: list[Path]) -> str:
    """sha256 over the paths (relative to ``root``) and bytes of files (the templates a
    page depends on). The path counts, not only the name: where a template sits decides
    what it overrides (``templates/run.html`` does, ``templates/old/run.html`` does not)."""
    h = hashlib.sha256()
    for path in paths:
        h.update(f"{path.relative_to(root).as_posix()}\0{path.stat().st_size}\0".encode())
        h.update(path.read_bytes())
    return h.hexdigest()


@dataclass(frozen=True)
class Spare:
    """A finished earlier build that is no longer live, and what it holds."""

    folder: Path
    files: dict[str, list[Any]]  # rel -> [key, sha256, size, mtime_ns, inode], as recorded
    # rel of each folder holding a recorded file ("" the top) -> [mtime_ns, inode]
    folders: dict[str, list[int]] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class Kept:
    """An output identical to a file of the live build: linked, never rewritten."""

    source: str  # path of the live file
    sha256: str
    stamp: tuple[int, int, int]  # its size, mtime_ns, inode, which a link to it shares


def _read(record: Path, folder: Path) -> dict[str, Any] | None:
    """The record of the build in ``folder``: its ``files`` and ``folders``."""
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (
        isinstance(data, dict)
        and data.get("version") == VERSION
        and data.get("build") == str(folder.resolve())
        and isinstance(data.get("files"), dict)
        and isinstance(data.get("folders"), dict)
    ):
        return data
    return None


class Previous:
    """What the live build wrote, and the means to reuse a file of it."""

    def __init__(self, records: Path, out: Path):
        self.entries: dict[str, list[Any]] = {}
        self.folder: Path | None = None
        self.reused = 0
        if not out.is_symlink():
            return  # not a build of ours (or none yet): nothing to reuse
        live = out.resolve()
        data = _read(records / f"{live.name}.json", live)
        if data is not None:
            self.folder, self.entries = live, data["files"]

    def find(self, rel: str, key: str) -> Kept | None:
        """The live file for ``rel`` when it was made from the same key and is untouched."""
        entry = self.entries.get(rel)
        if self.folder is None or entry is None or entry[0] != key:
            return None
        path = f"{self.folder}/{rel}"  # a str: Path objects cost seconds at 60,000 files
        try:
            st = os.lstat(path)
        except OSError:
            return None
        stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
        if list(stamp) != entry[2:5]:
            return None
        self.reused += 1
        return Kept(path, entry[1], stamp)


def take_spare(records: Path, out: Path) -> Spare | None:
    """The finished build before the live one, to be updated in place into the next.

    Its record is removed first: from then on it is a work in progress, and
    if the build fails it is deleted rather than trusted. Folders without a
    record (left by a killed build; the caller holds the build lock) are
    removed here.
    """
    builds = out.parent / f".{out.name}.builds"
    if not builds.is_dir():
        return None
    spare = None
    for folder in sorted(builds.iterdir()):
        # The live folder is told apart by inode: path text differs with every
        # spelling of the output (relative, absolute, through a symlink).
        if not folder.name.startswith("build-") or not folder.is_dir() or same_file(folder, out):
            continue
        record = records / f"{folder.name}.json"
        data = _read(record, folder) if spare is None else None
        if data is not None:
            record.unlink()
            spare = Spare(folder, data["files"], data["folders"])
        elif not record.exists():
            shutil.rmtree(folder, ignore_errors=True)
    return spare


def save(
    records: Path,
    build: Path,
    files: dict[str, tuple[str, str]],
    stamps: dict[str, tuple[int, int, int]] | None = None,
) -> None:
    """Remember key, sha256 (``files``: rel -> (key, sha256)) and stat of each file, and
    the mtime and inode of each folder holding one.

    ``stamps`` holds the (size, mtime_ns, inode) of files the build already knows
    (linked from the live build, or left unchanged in the spare), so only the
    files it wrote are looked up again. A folder's mtime changes whenever an
    entry is added to it, removed or renamed, so when this build is the spare
    again, folders that kept theirs hold exactly the files recorded here, and
    only the others need listing (``output._update``). Records of build folders
    that no longer exist are dropped.
    """
    stamps = stamps or {}
    entries = {}
    folders: dict[str, list[int]] = {}
    root = str(build)
    for rel, (key, sha) in sorted(files.items()):
        stamp = stamps.get(rel)
        if stamp is None:
            st = os.lstat(f"{root}/{rel}")  # a string, not a Path: called for many files
            stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
        entries[rel] = [key, sha, *stamp]
        parent = rel.rpartition("/")[0]
        while parent not in folders:
            st = os.lstat(f"{root}/{parent}" if parent else root)
            folders[parent] = [st.st_mtime_ns, st.st_ino]
            if not parent:
                break
            parent = parent.rpartition("/")[0]
    data = {"version": VERSION, "build": str(build.resolve()), "files": entries, "folders": folders}
    text = json.dumps(data, separators=(",", ":"))
    write_atomic(records / f"{build.name}.json", text, durable=False)
    for old in records.glob("build-*.json"):
        if not (build.parent / old.stem).is_dir():
            old.unlink(missing_ok=True)


def records_dir(cache_dir: Path, out: Path) -> Path:
    """Records of the builds of one output folder (``--out`` can differ between builds)."""
    name = hashlib.sha256(str(out_key(out)).encode()).hexdigest()[:16]
    return cache_dir / "outputs" / name
