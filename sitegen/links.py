"""Link check of a built site: every internal href and src must name a file,
and every absolute URL must use a safe scheme (http, https or mailto).

The site is sitegen's own output, so attributes are found with regular
expressions rather than a full HTML parse (which cost seconds on large sites),
and targets are looked up in the set of files written instead of on disk.

What a page links to depends only on its bytes and its place in the site, so
in the build state (sitegen.buildstate) the result of reading a page (its unsafe URLs and the set
of files it links to) is kept under the sha256 of its path and bytes. A
rebuild then reads only the pages that changed; the existence check against
the current set of files runs for every page on every build, so a cached page
whose target disappeared is still reported (the page is then read again, to
give each broken link with its line).
"""

from __future__ import annotations

import hashlib
import html
import json
import posixpath
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from sitegen.buildstate import BuildState
from sitegen.config import site_path
from sitegen.exceptions import BuildError
from sitegen.layout import CATALOGUE
from sitegen.sitefiles import SiteFiles
from sitegen.workers import spawned_map, workers_for

SAFE_SCHEMES = {"http", "https", "mailto"}
_TAG = re.compile(r"<[A-Za-z][^<>]*>")
_TAG_NAME = re.compile(r"[A-Za-z][^\s/>]*")
# Every attribute of a tag, consumed left to right, so text inside a quoted
# value (an escaped "href=..." in a title, say) is never read as an attribute.
_ATTR = re.compile(r"""([^\s"'<>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?""")
_URL_ATTRS = {"href", "src", "action", "formaction", "poster", "data", "xlink:href"}
# Where a URL attribute with a value may be: only tags holding one of these are
# parsed (most tags of a page, table cells and SVG shapes, hold none). A match
# inside text or inside another attribute's value only costs a parse. Matched
# on the lower-cased page: a case-insensitive pattern is five times slower.
_CANDIDATE = re.compile(r"(?:href|src|action|poster|data)\s*=")


def _target(page_rel: str, url: str, base_path: str = "") -> str | None:
    """The site-relative file an internal URL points at; None for external or fragment-only.

    A root-absolute URL (the 404 page's, see config.site_path) is inside the
    site when it starts with ``base_path``; any other one stays absolute and
    so counts as broken.
    """
    parts = urlsplit(url)
    if parts.scheme or parts.netloc or not parts.path:
        return None
    path = unquote(parts.path)
    if path.endswith("/"):
        path += "index.html"
    if base_path and path.startswith(base_path):
        return posixpath.normpath(path[len(base_path) :])
    return posixpath.normpath(posixpath.join(posixpath.dirname(page_rel), path))


def internal_target(page: Path, url: str) -> Path | None:
    """The file an internal URL on ``page`` points at, or None for external URLs."""
    target = _target(page.name, url)
    return None if target is None else page.parent / target


def page_urls(text: str) -> list[tuple[int, str]]:
    """(line, URL) of every URL attribute with a value, in page order, entities decoded."""
    out: list[tuple[int, str]] = []
    line, counted, last_tag = 1, 0, -1
    lowered = text.lower()
    if len(lowered) != len(text):  # a few characters lower-case to two: offsets would shift
        lowered = "".join(ch.lower() if len(ch.lower()) == 1 else ch for ch in text)
    for candidate in _CANDIDATE.finditer(lowered):
        start = text.rfind("<", 0, candidate.start())
        if start <= last_tag:
            continue  # a tag already read, or no tag at all
        tag = _TAG.match(text, start)
        if tag is None or tag.end() <= candidate.start():
            continue  # the match is in text, not inside a tag
        last_tag = start
        body = tag.group(0)[1:-1]
        name_end = _TAG_NAME.match(body)
        for match in _ATTR.finditer(body, name_end.end() if name_end else len(body)):
            if match.group(1).lower() not in _URL_ATTRS:
                continue
            raw = next((g for g in match.groups()[1:] if g is not None), None)
            if raw is None:
                continue  # no value: nothing to follow, nothing to check
            line += text.count("\n", counted, start)
            counted = start
            out.append((line, html.unescape(raw)))
    return out


def _unsafe(page_rel: str, line: int, url: str) -> str | None:
    scheme = urlsplit(url.strip()).scheme.lower()
    if scheme and scheme not in SAFE_SCHEMES:
        return f"{page_rel}:{line}: unsafe URL scheme in {url!r}"
    return None


def _missing(target: str, files: SiteFiles) -> bool:
    return target.startswith(("..", "/")) or target not in files


def _page_problems(page_rel: str, text: str, files: SiteFiles, base_path: str = "") -> list[str]:
    """Every problem of one page, in page order (what the report lists)."""
    problems = []
    for line, url in page_urls(text):
        problem = _unsafe(page_rel, line, url)
        if problem is None:
            target = _target(page_rel, url, base_path)
            if target is not None and _missing(target, files):
                problem = f"{page_rel}:{line}: broken link {url!r}"
        if problem:
            problems.append(problem)
    return problems


def _summary(page_rel: str, text: str, base_path: str = "") -> list[Any]:
    """What the cache keeps of a page: [unsafe-URL problems, sorted internal targets]."""
    unsafe: list[str] = []
    targets: set[str] = set()
    seen: set[str] = set()
    for line, url in page_urls(text):
        # without a colon there is no scheme; with one, every occurrence is checked
        problem = _unsafe(page_rel, line, url) if ":" in url else None
        if problem:
            unsafe.append(problem)
        elif url not in seen:  # pages repeat their links (navigation, tables)
            seen.add(url)
            target = _target(page_rel, url, base_path)
            if target is not None:
                targets.add(target)
    return [unsafe, sorted(targets)]


def _key(page_rel: str, sha256: str) -> str:
    return hashlib.sha256(f"{page_rel}\0{sha256}".encode()).hexdigest()


def check_links(
    root: Path,
    cache: Path | None = None,
    files: SiteFiles | None = None,
    base_path: str | None = None,
    *,
    state: BuildState | None = None,
) -> list[str]:
    """``path:line: problem`` for every broken internal link or unsafe URL scheme.

    Each page's summary (its unsafe URLs and the files it links to) is kept
    in the build state ``state``, else in one under the folder ``cache``;
    ``files`` the listing of ``root`` when the caller has one (see SiteFiles);
    ``base_path`` the path the site is published under ("/bench/"), against
    which root-absolute links resolve; by default the one of the site's own
    catalogue.json.
    """
    files = files if files is not None else SiteFiles(root)
    if base_path is None:
        base_path = _catalogue_base_path(Path(root))
    store = (state if state is not None else BuildState(cache)).memo("link-summary")
    pages = files.sorted(".html")
    # The base path is part of the key: it decides where absolute links point.
    keys = [_key(page_rel, files.digest(page_rel) + base_path) for page_rel in pages]
    summaries: list[Any] = [store.get(key) for key in keys]  # None: not read before
    unread = [i for i, summary in enumerate(summaries) if summary is None]
    jobs = [(str(files.path(pages[i])), pages[i], base_path) for i in unread]
    workers = workers_for(len(jobs), POOL_ABOVE, POOL_CHUNK)
    with spawned_map(_summary_of_file, jobs, workers, chunksize=POOL_CHUNK) as made:
        for i, fresh in zip(unread, made, strict=True):
            summaries[i] = fresh
            store.put(keys[i], fresh)
    problems: list[str] = []
    for page_rel, summary in zip(pages, summaries, strict=True):
        unsafe, targets = summary
        if any(_missing(t, files) for t in targets):
            problems += _page_problems(page_rel, _read(files, page_rel), files, base_path)
        else:
            problems += unsafe
    store.save()
    return problems


# Pages not read before (a first build, a changed template) above which their
# summaries are made in worker processes, and how many a worker is sent at a time.
POOL_ABOVE = 256
POOL_CHUNK = 16


def _summary_of_file(job: tuple[str, str, str]) -> list[Any]:
    """:func:`_summary` of a page on disk (in a worker: it is sent the path)."""
    path, page_rel, base_path = job
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise BuildError(f"{path}: cannot read for the link check: {exc.strerror or exc}") from exc
    return _summary(page_rel, data.decode("utf-8", errors="replace"), base_path)


def _catalogue_base_path(root: Path) -> str:
    """The path of the base URL in ``root/catalogue.json``; "" when it has none."""
    try:
        archive = json.loads((root / CATALOGUE).read_text(encoding="utf-8"))["archive"]
        return site_path(archive.get("base_url") or "")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return ""


def _read(files: SiteFiles, page_rel: str) -> str:
    return files.read(page_rel).decode("utf-8", errors="replace")
