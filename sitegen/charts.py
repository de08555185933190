"""Charts: Altair specs rendered to static SVG by vl-convert, inlined in pages.

Rendering costs about 0.1 s a chart (and ~1 s to warm up a process), so SVGs
are cached on disk keyed by the spec and the renderer version; the cache lives
outside the output folder and is safe to delete. Inside a ``ChartBatch``, a
chart that is not cached yet becomes a placeholder, and the batch renders all
missing charts at once in a pool of worker processes, then fills them in.
Each SVG gets a title and a description for screen readers, and its ids are
prefixed with the chart's own id so several charts can share one page.
"""

from __future__ import annotations

import contextvars
import copy
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import altair as alt
import vl_convert as vlc

from sitegen.fsutil import write_atomic
from sitegen.workers import spawned_map, worker_count

# vl_convert's stub file leaves out the module's __version__ (present at run time).
RENDERER = f"vl-convert-{vlc.__version__}/altair-{alt.__version__}"  # type: ignore[attr-defined]

_ID_ATTR = re.compile(r'\bid="([^"]+)"')
_SVG_OPEN = re.compile(r"<svg\b([^>]*)>")


def _spec_key(spec: dict[str, Any]) -> str:
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{RENDERER}\n{text}".encode()).hexdigest()


def _cache_path(cache: Path, key: str) -> Path:
    return cache / key[:2] / f"{key}.svg"


def _render(spec: dict[str, Any], cache: Path | None) -> str:
    key = _spec_key(spec)
    cached = _cache_path(cache, key) if cache else None
    if cached and cached.is_file():
        return cached.read_text(encoding="utf-8")
    svg = vlc.vegalite_to_svg(spec)
    if cached:
        write_atomic(cached, svg, durable=False)
    return svg


def _render_in_worker(spec: dict[str, Any]) -> str:
    return vlc.vegalite_to_svg(spec)


SPAWN_ABOVE = 24  # pending charts above which rendering uses a pool of processes
# A chart not drawn yet stands in a page as this comment, with its number, until
# ChartBatch.fill puts the SVG there; a page without one is left as rendered.
PLACEHOLDER = b"<!--sitegen-chart-"


@dataclass
class ChartBatch:
    """Charts requested while rendering pages, rendered together at the end."""

    cache: Path
    workers: int = field(default_factory=worker_count)
    pending: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> spec
    placements: list[tuple[str, str, str, str]] = field(default_factory=list)
    hits: int = 0
    rendered: int = 0

    def placeholder(self, spec: dict[str, Any], chart_id: str, title: str, description: str) -> str:
        key = _spec_key(spec)
        self.pending[key] = spec
        self.placements.append((key, chart_id, title, description))
        return f"{PLACEHOLDER.decode()}{len(self.placements) - 1}-->"

    def render_pending(self, progress: Callable[[str], Any] | None = None) -> None:
        """Render every missing chart once, in parallel, into the cache."""
        keys = sorted(self.pending)
        if not keys:
            return
        # A worker process costs about 1.5 s to start and 0.9 s to warm vl-convert up,
        # some 20 charts' worth: a few charts (a new run) render here, many in a pool.
        workers = 1 if len(keys) < SPAWN_ABOVE else min(self.workers, len(keys) // 8 + 1)
        specs = [self.pending[k] for k in keys]
        step = max(1, len(keys) // 10)
        with spawned_map(_render_in_worker, specs, workers, chunksize=4) as svgs:
            for done, (key, svg) in enumerate(zip(keys, svgs, strict=True), start=1):
                write_atomic(_cache_path(self.cache, key), svg, durable=False)
                if progress and (done % step == 0 or done == len(keys)):
                    progress(f"charts: rendered {done}/{len(keys)} ({workers} worker(s))")
        self.rendered += len(keys)
        self.pending.clear()

    def fill(self, html: bytes) -> bytes:
        """Replace the placeholders in one page with their accessible SVGs."""
        if PLACEHOLDER not in html:
            return html

        def sub(match: re.Match[bytes]) -> bytes:
            key, chart_id, title, description = self.placements[int(match.group(1))]
            svg = _cache_path(self.cache, key).read_text(encoding="utf-8")
            return _inline(svg, chart_id, title, description).encode("utf-8")

        return re.sub(re.escape(PLACEHOLDER) + rb"(\d+)-->", sub, html)


_BATCH: contextvars.ContextVar[ChartBatch | None] = contextvars.ContextVar(
    "chart_batch", default=None
)


def current_batch() -> ChartBatch | None:
    """The batch charts are being collected in, if any."""
    return _BATCH.get()


@contextmanager
def batch(cache: Path) -> Iterator[ChartBatch]:
    """Collect uncached charts requested inside this block (see ChartBatch)."""
    current = ChartBatch(cache)
    token = _BATCH.set(current)
    try:
        yield current
    finally:
        _BATCH.reset(token)


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


def _inline(svg: str, chart_id: str, title: str, description: str) -> str:
    """A cached chart as a page shows it: accessible, then compacted (once per chart,
    where the page is rendered, not by a second pass over every finished page)."""
    return compact(_accessible(svg, chart_id, title, description))


_VEGA_BASE = 'xlink:href="https://vega.github.io/vega-datasets/'
_GEOMETRY = re.compile(r'\b(d|transform|x2|y2)="([^"]*)"')
_LONG_NUMBER = re.compile(r"(\d+\.\d)\d+")
# Markup that draws nothing: default attributes, labels Vega hid to avoid overlap,
# empty foreground paths.
_NOISE = (
    re.compile(r' opacity="1"'),
    re.compile(r' pointer-events="none"'),
    re.compile(r'<text [^>]*opacity="0"[^>]*>[^<]*</text>'),
    re.compile(r'<path class="foreground" aria-hidden="true" d="" display="none"/>'),
    # A group's background with neither fill nor stroke (the chart sets none).
    re.compile(r'<path class="background" aria-hidden="true" d="[^"]*"/>'),
)


def compact(svg: str) -> str:
    """Make point links relative again, and trim coordinates to 0.1 px.

    vl-convert resolves hrefs against its data URL; ``xlink:href`` becomes
    plain ``href`` (SVG 2), which the build's link check reads. Rounding the
    geometry halves the size of a chart with hundreds of points.
    """
    svg = svg.replace(_VEGA_BASE, 'href="').replace("xlink:href=", "href=")
    if "<a href=" in svg:
        # An image's children are presentational: with links inside, the chart
        # is a labelled group instead, so each point stays a reachable link.
        svg = svg.replace(' role="img" ', ' role="group" ', 1)
    for pattern in _NOISE:
        svg = pattern.sub("", svg)

    def trim(match: re.Match[str]) -> str:
        return f'{match.group(1)}="{_LONG_NUMBER.sub(_first_group, match.group(2))}"'

    return _GEOMETRY.sub(trim, svg)


def _first_group(match: re.Match[str]) -> str:
    return match.group(1)


def _esc(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def svg_chart(
    chart: alt.TopLevelMixin | dict[str, Any],
    chart_id: str,
    title: str,
    description: str,
    cache: Path | None,
) -> str:
    """Render ``chart`` (an Altair chart or its Vega-Lite spec) to an inline,
    accessible SVG string (trusted markup).

    Inside a ``batch``, an uncached chart returns a placeholder instead.
    """
    spec = chart if isinstance(chart, dict) else chart.to_dict(validate=False)
    current = _BATCH.get()
    if current is not None:
        cached = _cache_path(current.cache, _spec_key(spec))
        if cached.is_file():
            current.hits += 1
            return _inline(cached.read_text(encoding="utf-8"), chart_id, title, description)
        return current.placeholder(spec, chart_id, title, description)
    return _inline(_render(spec, cache), chart_id, title, description)


# Series colours: each has at least 3.8:1 contrast against both the light (#fff) and the
# dark (#0d1117) page background, so one SVG serves both colour schemes.
PALETTE = ("#2f7fd1", "#c2620b", "#1f8a4c", "#9b59d0", "#d1406b", "#17869a", "#a0762a")
# Text at its drawn size: charts are drawn no wider than a phone's column (about 350 px),
# so this is the size a reader sees on a 390 px screen too.
FONT_SIZE = 12


def readable(chart: Any) -> Any:
    """Configure a chart to be read anywhere: a transparent background, text, axes and
    gridlines in ``currentColor`` (the page's text colour, light or dark), 12 px text,
    and the palette above."""
    ink = "currentColor"
    return (
        chart.configure(font="sans-serif", background="transparent")
        .configure_view(stroke=None)
        .configure_range(category=list(PALETTE))
        .configure_axis(
            labelFontSize=FONT_SIZE,
            titleFontSize=FONT_SIZE,
            titleFontWeight="normal",
            labelColor=ink,
            titleColor=ink,
            domainColor=ink,
            tickColor=ink,
            gridColor=ink,
            gridOpacity=0.18,
        )
        .configure_header(
            labelFontSize=FONT_SIZE, titleFontSize=FONT_SIZE, labelColor=ink, titleColor=ink
        )
        .configure_legend(
            labelFontSize=FONT_SIZE, titleFontSize=FONT_SIZE, labelColor=ink, titleColor=ink
        )
        .configure_title(fontSize=FONT_SIZE + 1, color=ink, subtitleColor=ink, anchor="start")
    )


def _theme(chart: alt.Chart) -> alt.Chart:
    themed: alt.Chart = readable(chart)
    return themed


def with_data(template: dict[str, Any], values: list[dict[str, Any]], title: str) -> dict[str, Any]:
    """A copy of a validated template spec with its inline data and title replaced.

    Building and validating an Altair chart costs ~35 ms; copying a spec
    costs ~0.05 ms, which is what makes thousands of per-run charts affordable.
    """
    spec = copy.deepcopy(template)
    spec["data"] = {"values": values}
    spec["title"] = title
    return spec


_TEMPLATES: dict[Any, dict[str, Any]] = {}


def cached_template(key: Any, factory: Callable[[], Any], *, theme: bool = True) -> dict[str, Any]:
    """The validated spec of ``factory()`` (themed unless ``theme`` is False, for charts
    that configure themselves), built once per process and key.

    Use with ``with_data`` to make many charts of one shape cheaply.
    """
    if key not in _TEMPLATES:
        chart = factory()
        _TEMPLATES[key] = (_theme(chart) if theme else chart).to_dict()  # validated, once
    return _TEMPLATES[key]


def _bar_template(axis_title: str, spread: bool) -> dict[str, Any]:
    def make() -> alt.FacetChart:
        # One row per cell, its name above its bars (cell ids are long: beside the bars
        # they would leave no room on a phone), one bar per prompt.
        # alt.Data has no annotations (altair generates it untyped).
        base = alt.Chart().encode(y=alt.Y("prompt:N", title=None, sort=None))
        bars = base.mark_bar().encode(
            x=alt.X("value:Q", title=axis_title),
            color=alt.Color("prompt:N", sort=None, legend=None),
        )
        layers: list[Any] = [bars]
        if spread:
            # The interquartile range of the calls behind each bar: its uncertainty.
            layers.append(
                base.mark_rule(color="currentColor", strokeWidth=1.5).encode(x="lo:Q", x2="hi:Q")
            )
        chart: alt.FacetChart = (
            alt.layer(*layers, data=alt.Data(values=[]))  # type: ignore[no-untyped-call]
            .properties(width=250)
            .facet(
                row=alt.Row(
                    "cell:N",
                    title=None,
                    header=alt.Header(
                        labelAngle=0,
                        labelOrient="top",
                        labelAnchor="start",
                        labelAlign="left",
                        labelLimit=330,
                    ),
                ),
                spacing=6,
            )
            .properties(title="")
        )
        return chart

    return cached_template(("bar_by_cell", axis_title, spread), make)


def bar_by_cell(
    rows: list[dict[str, Any]], value: str, axis_title: str, title: str
) -> dict[str, Any] | None:
    """Spec of warm ``value`` per cell, one bar per prompt, with an error bar from ``lo`` to
    ``hi`` where the rows give them; None when there is nothing to draw."""
    data = [
        {"cell": r["cell_id"], "prompt": r["prompt_id"], "value": r[value]}
        | ({"lo": r["lo"], "hi": r["hi"]} if "lo" in r else {})
        for r in rows
        if r["phase"] == "warm" and r.get(value) is not None
    ]
    if not data:
        return None
    data.sort(key=lambda d: (d["cell"], d["prompt"]))
    spread = all("lo" in d for d in data)
    return with_data(_bar_template(axis_title, spread), data, title)
