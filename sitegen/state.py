"""Is the last build still current? A stdlib-only answer, so that a rebuild
with nothing changed costs a directory walk instead of a full build.

The fingerprint covers every input that can change the output: the run
folders, the archive's settings, allowlist, retractions, lock, methodology
and templates, the build options, and sitegen's own code and default theme.
Each file counts by (path, size, mtime, ctime), never by content, so nothing
is read; anything that touches a file makes the next build run for real.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

from sitegen.codeversion import methodology_default, package_root, theme_root
from sitegen.discover import MAX_WALK_DEPTH
from sitegen.fsutil import out_key
from sitegen.layout import Layout


def _walk(top: Path, digest: hashlib._Hash) -> None:
    # absolute, so the archive typed as `.` from inside or as a path from outside
    # stamps the same lines: only a change to the files makes the next build run.
    # Not resolve(): that would follow the `site` link instead of stamping it.
    top = Path(os.path.abspath(top))  # noqa: PTH100
    if not top.exists() and not top.is_symlink():
        digest.update(f"absent {top}\n".encode())
        return
    if top.is_dir() and not top.is_symlink():
        lines: list[str] = []
        _walk_dir(str(top), 0, lines)
        # one update for the whole tree: 30,000 run files cost a tenth of a second
        digest.update("".join(lines).encode("utf-8", "surrogateescape"))
    else:
        _stamp(top, digest)


def _walk_dir(path: str, depth: int, lines: list[str]) -> None:
    """What ``os.walk`` (top-down, sorted) would stamp, with one ``scandir`` a folder
    and no Path objects: a link to a folder is neither followed nor stamped, a folder
    that cannot be listed is passed over, and one ``MAX_WALK_DEPTH`` down is not
    entered (discovery refuses such trees)."""
    lines.append(f"dir {path}\n")
    try:
        with os.scandir(path) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError:
        return
    folders = []
    for entry in entries:
        try:
            is_dir = entry.is_dir()
        except OSError:
            is_dir = False
        if is_dir:
            if entry.name != "__pycache__" and not entry.is_symlink():
                folders.append(entry.path)
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            lines.append(f"gone {entry.path}\n")  # removed while we looked: not current
            continue
        lines.append(_stamp_line(entry.path, st))
    if depth >= MAX_WALK_DEPTH:
        return
    for folder in folders:
        _walk_dir(folder, depth + 1, lines)


def _stamp(path: Path, digest: hashlib._Hash) -> None:
    # surrogateescape: a file name that is not UTF-8 is reported later, not here
    digest.update(_stamp_line(str(path), path.lstat()).encode("utf-8", "surrogateescape"))


def _stamp_line(path: str, st: os.stat_result) -> str:
    """What the fingerprint holds of one file: its type, size and times (not its bytes)."""
    return f"{path} {st.st_mode} {st.st_size} {st.st_mtime_ns} {st.st_ctime_ns}\n"


def fingerprint(layout: Layout, options: Mapping[str, object]) -> str:
    digest = hashlib.sha256(json.dumps(options, sort_keys=True, default=str).encode())
    digest.update(f"out {out_key(layout.site)}\n".encode())
    for path in layout.inputs():
        _walk(path, digest)
    # sitegen itself: the package, and the default theme and methodology also when they
    # sit beside it (a checkout), not in it: every file the code version digests.
    code = package_root().resolve()
    _walk(code, digest)
    for default in (theme_root(), methodology_default()):
        if not default.resolve().is_relative_to(code):
            _walk(default, digest)
    return digest.hexdigest()


def outputs_stamp(layout: Layout) -> str:
    """The build's own files beside the inputs: their state after the build is what counts."""
    digest = hashlib.sha256()
    for path in layout.outputs():
        _walk(path, digest)
    return digest.hexdigest()


def up_to_date(layout: Layout, options: Mapping[str, object], current: str | None = None) -> bool:
    """True when the last successful build had exactly these inputs and its output is intact.

    ``current`` is the inputs' fingerprint when the caller has taken it already.
    """
    try:
        last = json.loads(layout.last_build.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(last, dict) or last.get("fingerprint") != (
        current or fingerprint(layout, options)
    ):
        return False
    if last.get("outputs") != outputs_stamp(layout):
        return False
    target = last.get("build")
    out = layout.site
    return isinstance(target, str) and out.is_symlink() and str(out.resolve()) == target


def last_out(layout: Layout) -> Path | None:
    """The output folder of the last successful build, when recorded."""
    try:
        out = json.loads(layout.last_build.read_text(encoding="utf-8")).get("out")
    except (OSError, ValueError, AttributeError):
        return None
    return Path(out) if isinstance(out, str) else None


def record(layout: Layout, options: Mapping[str, object], fingerprint_at_start: str) -> None:
    """Remember the inputs of a build that just succeeded (taken when it started)."""
    path, out = layout.last_build, layout.site
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    state = {
        "fingerprint": fingerprint_at_start,
        "outputs": outputs_stamp(layout),
        "build": str(out.resolve()),
        "out": str(out_key(out)),  # where `sitegen gate` finds the site
    }
    tmp.write_text(json.dumps(state), encoding="utf-8")
    os.replace(tmp, path)
