"""Markdown for untrusted text: raw HTML off, then sanitised; anchors for definitions."""

from __future__ import annotations

import re

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup, escape

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


_NOTE_HEADER = re.compile(r"<(th|td)([^>]*)>([^<]*)</\1>")
_FIELD_WORDS = re.compile(r"^([a-z][a-z0-9_]*)(?: (p50|p95|mean))?$")


def labelled_headers(html: Markup, root: str) -> Markup:
    """A notes table header that is a raw field name (``first_delta_ms p50``, as the
    runner writes run.md) reads as the site's label, statistic and unit, linked to its
    definition, the raw name kept as its tooltip; a prompt id gets its description.
    A prompt id in a data cell gets its description too. Other cells are left as the
    publisher wrote them."""
    from sitegen import vocabulary

    page = root + "methodology/index.html#"

    def link(anchor: str, title: str, text: str) -> str:
        return f'<a href="{page}{anchor}" title="{escape(title)}">{escape(text)}</a>'

    def put(m: re.Match[str]) -> str:
        tag, attrs, text = m.group(1), m.group(2), m.group(3).strip()
        if text in vocabulary.PROMPTS:
            desc = vocabulary.PROMPT_DESCRIPTIONS.get(text, "")
            return f"<{tag}{attrs}>{link(vocabulary.PROMPTS[text], desc, text)}</{tag}>"
        if tag == "td":
            return m.group(0)
        words = _FIELD_WORDS.match(text)
        term = vocabulary.BY_FIELD.get(words.group(1)) if words else None
        if words is None or term is None or ("_" not in text and term.field != "n"):
            return m.group(0)
        out = link(term.anchor, term.definition, term.label)
        if words.group(2):
            s = vocabulary.STATS[words.group(2)]
            out += " " + link(s.anchor, s.definition, s.label)
        unit = term.column_unit
        return f'<th{attrs} title="{escape(text)}">{out}{f" ({unit})" if unit else ""}</th>'

    return Markup(_NOTE_HEADER.sub(put, str(html)))
