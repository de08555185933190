"""File-system helpers: atomic writes and output paths that cannot escape."""

from __future__ import annotations

import hashlib
import os
import signal
import tempfile
from pathlib import Path

from sitegen.exceptions import BuildError


def write_atomic(path: Path, data: bytes | str, *, durable: bool = True) -> None:
    """Write ``path`` via a temp file in the same folder and ``os.replace``.

    A reader (or a crash) sees either the old file or the whole new one.
    ``durable=False`` skips the fsync, for cache entries: losing one costs a
    recomputation, and an fsync per chart or summary costs milliseconds each.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; published files are world-readable
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def safe_path(root: str, rel: str) -> str:
    """``root/rel``, refusing any ``rel`` that would land outside ``root``. Strings,
    not ``Path``s: staging a site joins one per output, and at tens of thousands of
    outputs a ``Path`` per file costs seconds."""
    if not rel or rel[0] in "/~" or "\\" in rel or ".." in rel.split("/") or "\0" in rel:
        raise BuildError(f"refusing output path {rel!r}: it would escape the output folder")
    return f"{root}/{rel}"


def stat_stamp(st: os.stat_result) -> list[int]:
    """What says a file is unchanged since it was hashed: size, modification and
    inode change time (which no user-level tool can set back)."""
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def read_hashed(path: Path | str) -> tuple[list[int], str, bytes]:
    """A file's stat stamp (from the handle read), sha256 and bytes: one read serves
    hashing and parsing."""
    with open(path, "rb") as fh:
        stamp = stat_stamp(os.fstat(fh.fileno()))
        data = fh.read()
    return stamp, hashlib.sha256(data).hexdigest(), data


def sha256_file(path: Path | str) -> str:
    with open(path, "rb", buffering=0) as fh:  # file_digest reads into its own buffer
        return hashlib.file_digest(fh, "sha256").hexdigest()


def same_file(a: Path | str, b: Path | str) -> bool:
    """Whether two paths name the same file or folder (symlinks followed).

    Compared by (device, inode), never by path text: ``site``, ``./site/`` and
    ``/abs/archive/site`` are one folder, and only the inode says so for sure.
    """
    try:
        sa, sb = Path(a).stat(), Path(b).stat()
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def fault(point: str) -> None:
    """Test hook: with ``SITEGEN_FAULT=<point>`` the process kills itself here.

    ``<point>`` alone sends SIGKILL; ``<point>:INT`` or ``<point>:TERM`` send that
    signal instead. The build calls this at named stage boundaries (see
    docs/deploying.md) so tests can die at each one; unset, it is one lookup.
    """
    wanted = os.environ.get("SITEGEN_FAULT")
    if not wanted:
        return
    name, _, sig = wanted.partition(":")
    if name == point:
        os.kill(os.getpid(), getattr(signal, f"SIG{sig or 'KILL'}"))


def out_key(out: Path) -> Path:
    """One name for an output however it is spelled (``output.out_target``)."""
    out = Path(out)
    if out.name in ("", ".", ".."):
        return out.resolve()
    return out.parent.resolve() / out.name
