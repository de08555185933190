"""One digest of the code that turns inputs into outputs.

Every cache and every page key is salted with this, so a change to any module,
template, schema or bundled text of the installed package (or to a library
that shapes output bytes) invalidates all derived state at once. One list
instead of one per cache: per-cache lists drifted (a read-path module missing
from one of them could serve stale parsed data).
"""

from __future__ import annotations

import hashlib
import sqlite3
from functools import cache
from importlib import metadata, resources
from pathlib import Path

from sitegen import __version__

# Libraries whose version can change the bytes sitegen writes.
_LIBRARIES = (
    "polars",
    "jinja2",
    "markdown-it-py",
    "altair",
    "vl-convert-python",
    "jsonschema",
    "fastjsonschema",
    "nh3",
    "pyyaml",
)


def package_root() -> Path:
    return Path(str(resources.files("sitegen")))


def theme_root() -> Path:
    """The default theme inside the installed package, else the repository's ``templates/``."""
    packaged = package_root() / "templates"
    if packaged.is_dir():
        return packaged
    return package_root().parent / "templates"


def methodology_default() -> Path:
    """The default methodology inside the installed package, else the repository's."""
    packaged = package_root() / "default_methodology.md"
    if packaged.is_file():
        return packaged
    return package_root().parent / "methodology.md"


def code_files() -> list[Path]:
    """Every file the code version digests: the package, its theme and default methodology."""
    root = package_root()
    files = [
        p
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    ]
    theme = theme_root()
    if not theme.is_relative_to(root):
        files += [p for p in theme.rglob("*") if p.is_file()]
    methodology = methodology_default()
    if not methodology.is_relative_to(root):
        files.append(methodology)
    return sorted(files)


def _library_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


@cache
def code_version() -> str:
    """sha256 over every file of the package (by relative name and bytes) and the
    versions of the libraries that shape its output."""
    h = hashlib.sha256(f"sitegen {__version__}\0sqlite {sqlite3.sqlite_version}\0".encode())
    for name in _LIBRARIES:
        h.update(f"{name} {_library_version(name)}\0".encode())
    root = package_root()
    for path in code_files():
        rel = path.relative_to(root) if path.is_relative_to(root) else Path("..", path.name)
        data = path.read_bytes()
        h.update(f"{rel.as_posix()}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()
