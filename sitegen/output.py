"""The set of files a build produces, and putting it in place atomically.

Pages are collected in memory (``Outputs``) so that two pages claiming the
same path is an error, then written to a staging folder beside the output
and swapped in only when everything succeeded. The output path is a symlink
to the current build folder, so the swap is one ``os.replace``: a failure or
a kill at any moment leaves the previous site as it was.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sitegen.exceptions import BuildError
from sitegen.fsutil import safe_join


@dataclass
class Outputs:
    """Relative output path -> bytes to write, or a source file to copy."""

    data: dict[str, bytes | Path] = field(default_factory=dict)

    def _claim(self, rel: str) -> None:
        if rel in self.data:
            raise BuildError(f"two outputs claim the same path {rel!r}")

    def add(self, rel: str, content: bytes | str) -> None:
        self._claim(rel)
        self.data[rel] = content.encode("utf-8") if isinstance(content, str) else content

    def transform(self, func: Callable[[bytes], bytes]) -> None:
        """Apply ``func`` to every generated (not copied) output."""
        for rel, content in self.data.items():
            if not isinstance(content, Path):
                self.data[rel] = func(content)

    def copy(self, rel: str, source: Path) -> None:
        self._claim(rel)
        self.data[rel] = source

    def write_to(self, root: Path) -> None:
        for rel in sorted(self.data):
            target = safe_join(root, rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            content = self.data[rel]
            if isinstance(content, Path):
                shutil.copyfile(content, target)
            else:
                target.write_bytes(content)


def _builds_dir(out: Path) -> Path:
    return out.parent / f".{out.name}.builds"


def stage(outputs: Outputs, out: Path) -> Path:
    """Write every output into a fresh staging folder beside ``out``."""
    builds = _builds_dir(out)
    builds.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="build-", dir=builds))
    staging.chmod(0o755)  # mkdtemp makes 0700; the site is served to everyone
    try:
        outputs.write_to(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return staging


def swap_in(staging: Path, out: Path) -> None:
    """Make ``out`` point at ``staging`` in one atomic step, then drop old builds.

    ``out`` becomes a relative symlink into ``.<name>.builds/``. If ``out`` is a
    real folder (made by something else), it is moved aside first; that is the
    only case with a moment where ``out`` does not exist.
    """
    link_tmp = out.parent / f".{out.name}.link-{os.getpid()}"
    link_tmp.unlink(missing_ok=True)
    os.symlink(os.path.relpath(staging, out.parent), link_tmp)
    if out.exists() and not out.is_symlink():
        aside = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, aside)
        os.replace(link_tmp, out)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(link_tmp, out)
    current = staging.resolve()
    for old in _builds_dir(out).iterdir():
        if old.resolve() != current:
            shutil.rmtree(old, ignore_errors=True)


def discard(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)
