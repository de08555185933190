"""Charts: Altair specs rendered to static SVG by vl-convert, inlined in pages.

Rendering costs about 0.1 s a chart (and ~1 s to warm up a process), so SVGs
are cached on disk keyed by the spec and the renderer version; the cache lives
outside the output folder and is safe to delete. Each SVG gets a title and a
description for screen readers, and its ids are prefixed with the chart's own
id so several charts can share one page.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import altair as alt
import vl_convert as vlc

from sitegen.fsutil import write_atomic

RENDERER = f"vl-convert-{vlc.__version__}/altair-{alt.__version__}"

_ID_ATTR = re.compile(r'\bid="([^"]+)"')
_SVG_OPEN = re.compile(r"<svg\b([^>]*)>")


def _spec_key(spec: dict[str, Any]) -> str:
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{RENDERER}\n{text}".encode()).hexdigest()


def _render(spec: dict[str, Any], cache: Path | None) -> str:
    key = _spec_key(spec)
    cached = cache / key[:2] / f"{key}.svg" if cache else None
    if cached and cached.is_file():
        return cached.read_text(encoding="utf-8")
    svg = vlc.vegalite_to_svg(spec)
    if cached:
        write_atomic(cached, svg)
    return svg


def _accessible(svg: str, chart_id: str, title: str, description: str) -> str:
    """Prefix ids, and give the SVG a role, a <title> and a <desc>."""
    ids = set(_ID_ATTR.findall(svg))
    for old in sorted(ids, key=len, reverse=True):
        new = f"{chart_id}-{old}"
        svg = svg.replace(f'id="{old}"', f'id="{new}"').replace(f"url(#{old})", f"url(#{new})")
        svg = svg.replace(f'href="#{old}"', f'href="#{new}"')

    def opening(match: re.Match[str]) -> str:
        attrs = match.group(1)
        return (
            f'<svg{attrs} id="{chart_id}" role="img" '
            f'aria-labelledby="{chart_id}-title {chart_id}-desc">'
            f'<title id="{chart_id}-title">{_esc(title)}</title>'
            f'<desc id="{chart_id}-desc">{_esc(description)}</desc>'
        )

    return _SVG_OPEN.sub(opening, svg, count=1)


def _esc(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def svg_chart(
    chart: alt.TopLevelMixin, chart_id: str, title: str, description: str, cache: Path | None
) -> str:
    """Render ``chart`` to an inline, accessible SVG string (trusted markup)."""
    spec = chart.to_dict()
    return _accessible(_render(spec, cache), chart_id, title, description)


def _theme(chart: alt.Chart) -> alt.Chart:
    return chart.configure(font="sans-serif", background="white").configure_view(stroke=None)


def bar_by_cell(
    rows: list[dict[str, Any]], value: str, axis_title: str, title: str
) -> alt.Chart | None:
    """Warm ``value`` per cell, one bar per prompt; None when there is nothing to draw."""
    data = [
        {"cell": r["cell_id"], "prompt": r["prompt_id"], "value": r[value]}
        for r in rows
        if r["phase"] == "warm" and r.get(value) is not None
    ]
    if not data:
        return None
    data.sort(key=lambda d: (d["cell"], d["prompt"]))
    chart = (
        alt.Chart(alt.Data(values=data))
        .mark_bar()
        .encode(
            y=alt.Y("cell:N", title=None, sort=None),
            yOffset=alt.YOffset("prompt:N", sort=None),
            x=alt.X("value:Q", title=axis_title),
            color=alt.Color("prompt:N", title="prompt", sort=None),
        )
        .properties(title=title, width=460)
    )
    return _theme(chart)
