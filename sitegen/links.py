"""Link check of a built site: every internal href and src must name a file,
and every absolute URL must use a safe scheme (http, https or mailto).

The site is sitegen's own output, so attributes are found with one regular
expression rather than a full HTML parse (which cost seconds on large sites),
and targets are looked up in the set of files written instead of on disk.
"""

from __future__ import annotations

import html
import os
import posixpath
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

SAFE_SCHEMES = {"http", "https", "mailto"}
_TAG = re.compile(r"<[A-Za-z][^<>]*>")
_TAG_NAME = re.compile(r"[A-Za-z][^\s/>]*")
# Every attribute of a tag, consumed left to right, so text inside a quoted
# value (an escaped "href=..." in a title, say) is never read as an attribute.
_ATTR = re.compile(r"""([^\s"'<>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?""")
_URL_ATTRS = {"href", "src", "action", "formaction", "poster", "data", "xlink:href"}


def _files(root: Path) -> set[str]:
    out = set()
    for dirpath, _dirs, names in os.walk(root):
        rel = Path(dirpath).relative_to(root).as_posix()
        for name in names:
            out.add(posixpath.normpath(posixpath.join(rel, name)))
    return out


def _target(page_rel: str, url: str) -> str | None:
    """The site-relative file an internal URL points at; None for external or fragment-only."""
    parts = urlsplit(url)
    if parts.scheme or parts.netloc or not parts.path:
        return None
    path = unquote(parts.path)
    if path.endswith("/"):
        path += "index.html"
    return posixpath.normpath(posixpath.join(posixpath.dirname(page_rel), path))


def internal_target(page: Path, url: str) -> Path | None:
    """The file an internal URL on ``page`` points at, or None for external URLs."""
    target = _target(page.name, url)
    return None if target is None else page.parent / target


def check_links(root: Path) -> list[str]:
    """``path:line: problem`` for every broken internal link or unsafe URL scheme."""
    files = _files(root)
    problems = []
    for page_rel in sorted(f for f in files if f.endswith(".html")):
        text = (root / page_rel).read_text(encoding="utf-8", errors="replace")
        for tag in _TAG.finditer(text):
            body = tag.group(0)[1:-1]
            name_end = _TAG_NAME.match(body)
            for match in _ATTR.finditer(body, name_end.end() if name_end else len(body)):
                if match.group(1).lower() not in _URL_ATTRS:
                    continue
                raw = next((g for g in match.groups()[1:] if g is not None), "")
                line = text.count("\n", 0, tag.start()) + 1
                problem = _check(page_rel, line, html.unescape(raw), files)
                if problem:
                    problems.append(problem)
    return problems


def _check(page_rel: str, line: int, url: str, files: set[str]) -> str | None:
    scheme = urlsplit(url.strip()).scheme.lower()
    if scheme and scheme not in SAFE_SCHEMES:
        return f"{page_rel}:{line}: unsafe URL scheme in {url!r}"
    target = _target(page_rel, url)
    if target is not None and (target.startswith("..") or target not in files):
        return f"{page_rel}:{line}: broken link {url!r}"
    return None
