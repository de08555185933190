"""The theme: the Jinja environment and asset lookup, publisher files first.

Templates come from the publisher's ``templates/`` first, then the default
theme shipped in the package, one file at a time. Autoescape is on for every
template; the only markup passed through unescaped is what sitegen builds
itself (sanitised Markdown, chart SVG).
"""

from __future__ import annotations

from pathlib import Path

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined

from sitegen import __version__, numfmt, vocabulary
from sitegen.codeversion import code_version, theme_root
from sitegen.downloads import COLUMNS
from sitegen.pages.filters import FILTERS, Memo
from sitegen.reuse import digest, files_digest

ASSETS = (
    "assets/style.css",
    "assets/table.js",
    "assets/search.js",
    "assets/copy.js",
    "assets/compare.js",
    "assets/favicon.svg",
)


def environment(own: Path) -> Environment:
    """Templates from the publisher's folder ``own`` first, then the default theme."""
    loaders = []
    if own.is_dir() and own.resolve() != theme_root().resolve():
        loaders.append(FileSystemLoader(own))
    loaders.append(FileSystemLoader(theme_root()))
    env = Environment(
        loader=ChoiceLoader(loaders),
        autoescape=True,
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["version"] = __version__
    env.globals["vocab"] = vocabulary  # headers' labels, units and anchors (_macros.stat_head)
    env.globals["search"] = True  # the header's search box; off with site.search = false
    env.globals["column_docs"] = COLUMNS  # what each download column holds (data page)
    env.filters["readable"] = numfmt.readable  # rounded for reading; downloads keep exact values
    env.filters.update(FILTERS)  # the big tables' values (sitegen.pages.filters)
    env.globals["memo"] = Memo()  # a header macro's output, made once per build
    return env


def asset_source(own: Path, rel: str) -> Path:
    """The publisher's copy of asset ``rel`` in ``own`` when there is one, else the theme's."""
    mine = own / rel
    return mine if mine.is_file() and not mine.is_symlink() else theme_root() / rel


def template_display(archive: Path, filename: str) -> str:
    """A template's path as the publisher knows it (relative to the archive when inside)."""
    try:
        return str(Path(filename).resolve().relative_to(archive.resolve()))
    except ValueError:
        return filename


def code_digest(own: Path) -> str:
    """sitegen's code version and the publisher's templates ``own``: every page depends on both."""
    files = sorted(p for p in own.rglob("*") if p.is_file()) if own.is_dir() else []
    return digest([code_version(), files_digest(own, files)])
