"""Link check of a built site: every internal href and src must name a file,
and every absolute URL must use a safe scheme (http, https or mailto)."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

_URL_ATTRS = {"href", "src", "action", "formaction", "poster", "data", "xlink:href"}
SAFE_SCHEMES = {"http", "https", "mailto"}


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[tuple[int, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in _URL_ATTRS and value is not None:
                self.urls.append((self.getpos()[0], value))


def internal_target(page: Path, url: str) -> Path | None:
    """The file an internal URL points at, or None for external/fragment-only URLs."""
    parts = urlsplit(url)
    if parts.scheme or parts.netloc or not parts.path:
        return None
    target = page.parent / unquote(parts.path)
    if parts.path.endswith("/"):
        target = target / "index.html"
    return target


def check_links(root: Path) -> list[str]:
    """``path:line: broken link URL`` for every internal link that resolves to no file."""
    broken = []
    base = root.resolve()
    for page in sorted(root.rglob("*.html")):
        collector = _Collector()
        collector.feed(page.read_text(encoding="utf-8", errors="replace"))
        for line, url in collector.urls:
            scheme = urlsplit(url.strip()).scheme.lower()
            if scheme and scheme not in SAFE_SCHEMES:
                broken.append(f"{page.relative_to(root)}:{line}: unsafe URL scheme in {url!r}")
                continue
            target = internal_target(page, url)
            if target is None:
                continue
            resolved = target.resolve()
            if not resolved.is_relative_to(base) or not resolved.is_file():
                broken.append(f"{page.relative_to(root)}:{line}: broken link {url!r}")
    return broken
