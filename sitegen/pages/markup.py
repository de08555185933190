"""Markdown for untrusted text: raw HTML off, then sanitised; anchors for definitions."""

from __future__ import annotations

import re

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup

SAFE_SCHEMES = {"http", "https", "mailto"}

_MD = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable(
    "table"
)
_HEADING = re.compile(r"<(/?)h([1-6])\b")


def markdown(text: str, demote: int = 0) -> Markup:
    """Markdown with raw HTML off, then sanitised: links only http, https, mailto.

    ``demote`` lowers every heading by that many levels, so notes shown under a
    section heading keep the page's outline (and its single h1).
    """
    html = _MD.render(text)
    clean = nh3.clean(html, url_schemes=SAFE_SCHEMES, link_rel="noopener noreferrer nofollow")
    if demote:
        clean = _HEADING.sub(lambda m: f"<{m.group(1)}h{min(6, int(m.group(2)) + demote)}", clean)
    # A wide table scrolls in its own box instead of widening the page (and is
    # focusable, so a keyboard can scroll it). Added after cleaning: nh3 would drop it.
    clean = clean.replace("<table>", '<div class="scroll" tabindex="0"><table>')
    clean = clean.replace("</table>", "</table></div>")
    return Markup(clean)


_ANCHORED = re.compile(
    r"<(h[1-6]|strong)>(.*?)(?:</\1> \{#([a-z0-9][a-z0-9-]*)\}|"
    r" \{#([a-z0-9][a-z0-9-]*)\}</\1>)"
)


def anchored(html: Markup) -> Markup:
    """``## Title {#anchor}`` and ``**term** {#anchor}`` get ``id="anchor"``: the stable
    targets the changes and run pages link their table headers to ([a-z0-9-] only)."""

    def put(m: re.Match[str]) -> str:
        return f'<{m.group(1)} id="{m.group(3) or m.group(4)}">{m.group(2)}</{m.group(1)}>'

    return Markup(_ANCHORED.sub(put, str(html)))
