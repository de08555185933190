"""Cross-run views: a page per model, per node and per engine, and the trend charts.

A group is every cell whose target names that model (node, engine), and every
run that measured or planned one of those cells. Its page lists the runs and
the cells, and draws one faceted chart: per cell (rows) and prompt (columns),
warm TTFT p50/p95 and tokens/s over time, each point a link to its run.

Pages that can grow with the archive (the index, a group's run list) are cut
into pages of ``site.runs_per_page`` runs: ``index.html`` then
``pages/2/index.html``, and so on.
"""

from __future__ import annotations

import copy
import hashlib
import posixpath
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import altair as alt

from sitegen import charts
from sitegen.archive import Run
from sitegen.catalogue import NODE_FIELDS, nodes_of, targets_of
from sitegen.entities import short_count, short_digest

KINDS: dict[str, dict[str, str]] = {
    "model": {"folder": "models", "title": "Models", "one": "Model"},
    "node": {"folder": "nodes", "title": "Nodes", "one": "Node"},
    "engine": {"folder": "engines", "title": "Engines", "one": "Engine"},
}
# What a cell is called on a group page: the parts the group does not fix.
_LABEL_PARTS = {
    "model": ("node", "engine"),
    "node": ("engine", "model"),
    "engine": ("node", "model"),
}

_UNSAFE = re.compile(r"[^a-z0-9._-]+")
_CLEAN = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
RESERVED_SLUGS = {"index.html", "pages"}
MAX_SLUG = 80
TREND_RUNS = 60  # at most this many recent runs are drawn per group; the tables list all
TREND_LINKS = 240  # linked points per chart (~250 bytes with their lines), to keep pages light
TREND_PANELS = 18  # cell x prompt panels per chart (~4 KB each, both metrics)


def slugify(name: str) -> str:
    """Lowercase ``[a-z0-9._-]``, other characters folded to ``-``; never empty."""
    slug = _UNSAFE.sub("-", name.lower()).strip("-.")[:MAX_SLUG].strip("-.")
    return slug or "x"


def _hashed(slug: str, name: str, length: int = 8) -> str:
    return f"{slug[: MAX_SLUG - length - 1]}-{hashlib.sha256(name.encode()).hexdigest()[:length]}"


def slugs(names: Iterable[str]) -> dict[str, str]:
    """name -> slug, deterministic and collision-proof.

    A name that already is a clean slug keeps it (stable URLs). Others use
    their folded form unless that is taken or reserved, in which case a short
    hash of the exact name is appended.
    """
    ordered = sorted(set(names))
    taken = {
        n for n in ordered if _CLEAN.match(n) and n not in RESERVED_SLUGS and len(n) <= MAX_SLUG
    }
    out = {n: n for n in taken}
    folded: dict[str, list[str]] = {}
    for n in ordered:
        if n not in out:
            folded.setdefault(slugify(n), []).append(n)
    for slug, group in sorted(folded.items()):
        for n in group:
            candidate = slug
            if len(group) > 1 or candidate in taken or candidate in RESERVED_SLUGS:
                length = 8
                candidate = _hashed(slug, n, length)
                while candidate in taken:
                    length += 4
                    candidate = _hashed(slug, n, length)
            taken.add(candidate)
            out[n] = candidate
    return out


@dataclass
class Group:
    """One model, node or engine, with its cells and runs (newest first).

    Models with one canonical name but different files (digests or parameter
    counts) are different groups: ``variant`` says what tells each apart.
    """

    kind: str
    name: str
    slug: str
    cells: dict[str, dict[str, Any]] = field(default_factory=dict)  # cell id -> target
    run_ids: list[str] = field(default_factory=list)
    variant: str | None = None  # e.g. "3.58M parameters, digest 2b1f95fa"; None: the only one
    # What the runs recorded about it (sitegen.entities facts): label -> values seen.
    facts: list[dict[str, Any]] = field(default_factory=list)
    planned: list[str] = field(default_factory=list)  # runs that only planned its cells
    members: set[tuple[str, str]] = field(default_factory=set, repr=False)  # (run, cell)

    @property
    def url(self) -> str:
        return f"{KINDS[self.kind]['folder']}/{self.slug}/"

    @property
    def title(self) -> str:
        """The name, with what tells it apart from same-named models."""
        return f"{self.name} ({self.variant})" if self.variant else self.name

    def label(self, cell_id: str) -> str:
        target = self.cells[cell_id]
        parts = [str(target.get(p) or "?") for p in _LABEL_PARTS[self.kind]]
        return " · ".join(parts)


def _fingerprint(target: dict[str, Any]) -> str | None:
    """What identifies a model's file: its digest, else its parameter count."""
    if target.get("model_digest"):
        return f"digest:{target['model_digest']}"
    if target.get("parameters"):
        return f"parameters:{target['parameters']}"
    return None


def _variant_keys(targets: list[dict[str, Any]]) -> dict[str | None, str | None]:
    """One model name's fingerprints -> the variant each belongs to (None: the only one).

    A parameter count without a digest joins the one digest recorded with that count;
    targets that record neither join the only variant there is, if there is one.
    """
    params: dict[str, set[Any]] = {}
    for t in targets:
        fp = _fingerprint(t)
        if fp is not None and fp.startswith("digest:"):
            params.setdefault(fp, set()).add(t.get("parameters"))
    out: dict[str | None, str | None] = {}
    for fp in sorted({f for f in map(_fingerprint, targets) if f is not None}):
        if fp.startswith("digest:"):
            out[fp] = fp
            continue
        count = int(fp.split(":", 1)[1])
        matches = [d for d in sorted(params) if count in params[d]]
        out[fp] = matches[0] if len(matches) == 1 else fp
    variants = set(out.values())
    if any(_fingerprint(t) is None for t in targets):
        out[None] = next(iter(variants)) if len(variants) == 1 else "unrecorded"
    if len(set(out.values())) <= 1:
        return dict.fromkeys(out)
    return out


def _variant_names(
    name: str, members: dict[str, list[dict[str, Any]]]
) -> dict[str, tuple[str, str]]:
    """variant key -> (slug stem, label saying what differs from its namesakes)."""
    out = {}
    for key, targets in members.items():
        counts = sorted({t["parameters"] for t in targets if t.get("parameters")})
        digests = sorted({t["model_digest"] for t in targets if t.get("model_digest")})
        size = (
            ", ".join(f"{short_count(c)} parameters" for c in counts)
            if counts
            else "parameters not recorded"
        )
        digest = (
            "digest " + ", ".join(str(short_digest(d)) for d in digests)
            if digests
            else "digest not recorded"
        )
        if key.startswith("digest:"):
            suffix = str(short_digest(key.split(":", 1)[1]))
        elif key.startswith("parameters:"):
            suffix = short_count(int(key.split(":", 1)[1])).lower() + "-params"
        else:
            suffix = "unidentified"
        out[key] = (f"{name}-{suffix}", f"{size}, {digest}")
    return out


def build_groups(entries: Sequence[dict[str, Any]], runs: dict[str, Run]) -> dict[str, list[Group]]:
    """kind -> its groups sorted by name; runs in catalogue order (newest first).

    Names are canonical (sitegen.entities): ``llama.cpp`` and ``llamacpp`` are one
    engine page, ``x.gguf`` and ``x`` one model page unless their files differ.
    """
    seen = [(entry, target) for entry in entries for target in targets_of(runs[entry["id"]])]
    by_model: dict[str, list[dict[str, Any]]] = {}
    for _entry, target in seen:
        if target.get("model"):
            by_model.setdefault(target["model"], []).append(target)
    variant_of = {name: _variant_keys(ts) for name, ts in by_model.items()}
    found: dict[str, dict[tuple[str, str | None], Group]] = {kind: {} for kind in KINDS}
    members: dict[tuple[str, str | None], list[dict[str, Any]]] = {}
    for entry, target in seen:
        for kind in KINDS:
            name = target.get(kind)
            if not name:
                continue
            variant = variant_of[name][_fingerprint(target)] if kind == "model" else None
            group = found[kind].setdefault((name, variant), Group(kind, name, ""))
            group.cells.setdefault(target["cell_id"], target)
            group.members.add((entry["id"], target["cell_id"]))
            if kind == "model":
                members.setdefault((name, variant), []).append(target)
            if not group.run_ids or group.run_ids[-1] != entry["id"]:
                group.run_ids.append(entry["id"])
                if entry.get("status") == "meta-only":
                    group.planned.append(entry["id"])
    stems: dict[tuple[str, str | None], str] = {}
    for name in sorted(by_model):
        keys = sorted({k for k in variant_of[name].values() if k is not None})
        keyed = {k: members[(name, k)] for k in keys}
        for key, (stem, label) in _variant_names(name, keyed).items():
            stems[(name, key)] = stem
            found["model"][(name, key)].variant = label
    out: dict[str, list[Group]] = {}
    for kind, groups in found.items():
        names = slugs(stems.get(k, k[0]) for k in groups)
        for k, group in groups.items():
            group.slug = names[stems.get(k, k[0])]
            group.facts = describe(group, [runs[rid] for rid in group.run_ids])
        out[kind] = [groups[k] for k in sorted(groups, key=lambda k: (k[0], k[1] or ""))]
    return out


class Locator:
    """Which group page each (run, cell) belongs to, per kind: exact even where one
    model name stands for different files."""

    def __init__(self, groups: dict[str, list[Group]]):
        self.pages = {
            kind: {(rid, cell): g.url for g in gs for rid, cell in g.members}
            for kind, gs in groups.items()
        }

    def url(self, kind: str, run_id: str, cell_id: str) -> str | None:
        """The URL (from the site root) of the page of a cell's node, engine or model."""
        return self.pages.get(kind, {}).get((run_id, cell_id))


def group_links(groups: dict[str, list[Group]]) -> dict[str, dict[str, str]]:
    """kind -> name -> a group page's URL relative to the site root (the first
    variant, for a model name shared by different files; see ``Locator``)."""
    out: dict[str, dict[str, str]] = {}
    for kind, gs in groups.items():
        for g in gs:
            out.setdefault(kind, {}).setdefault(g.name, g.url)
    return out


# ---------------------------------------------------------------- what a group is

_FIELD_LABELS = {
    "cpu": "CPU",
    "cores": "Cores",
    "memory_gb": "Memory (GB)",
    "gpu": "GPU",
    "vram_gb": "GPU memory (GB)",
    "os": "Operating system",
    "kernel": "Kernel",
    "arch": "Architecture",
    "backends": "Backends",
    "python_version": "Python",
    "runner": "CI runner",
}
_PLACEHOLDER = re.compile(r"(^|[^a-z])(unknown|none|null|n/?a)([^a-z]|$)", re.IGNORECASE)


def recorded(value: Any) -> Any:
    """``value``, or None when it says nothing: missing, empty, zero, or a placeholder
    such as ``unknown`` or llama.cpp's ``b0-unknown``."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value if value > 0 else None
    if isinstance(value, str):
        text = value.strip()
        return None if not text or _PLACEHOLDER.search(text) else text
    if isinstance(value, list):
        return ", ".join(map(str, value)) or None
    return str(value)


def _fact(label: str, seen: dict[Any, list[str]], order: dict[str, int]) -> dict[str, Any]:
    """One fact: each value recorded (None: not recorded) with the runs that recorded it."""
    values = [
        {"value": v, "runs": sorted(set(rids), key=lambda r: order[r])} for v, rids in seen.items()
    ]
    values.sort(key=lambda x: (x["value"] is None, str(x["value"])))
    return {"label": label, "values": values}


def describe(group: Group, runs: list[Run]) -> list[dict[str, Any]]:
    """What the runs recorded about a node (hardware), an engine (versions) or a model
    (parameters, quantizations, digests, files, recorded names), with the runs."""
    order = {r.run_id: i for i, r in enumerate(runs)}
    fields: dict[str, dict[Any, list[str]]] = {}

    def note(label: str, value: Any, run_id: str) -> None:
        fields.setdefault(label, {}).setdefault(recorded(value), []).append(run_id)

    for run in runs:
        if group.kind == "node":
            hardware = dict(nodes_of(run)).get(group.name)
            if hardware is None:
                for key in NODE_FIELDS:
                    note(key, None, run.run_id)
                continue
            keys = [*NODE_FIELDS, *sorted(k for k in hardware if k not in NODE_FIELDS)]
            for key in keys:
                note(key, hardware.get(key), run.run_id)
            continue
        for target in targets_of(run):
            if target["cell_id"] not in group.cells or target.get(group.kind) != group.name:
                continue
            if group.kind == "engine":
                note("engine_version", target.get("engine_version"), run.run_id)
                note("engine_recorded", (target.get("recorded") or {}).get("engine"), run.run_id)
            else:
                note("parameters", target.get("parameters"), run.run_id)
                note("quantization", target.get("quantization"), run.run_id)
                note("model_digest", target.get("model_digest"), run.run_id)
                note("model_file", target.get("model_file"), run.run_id)
                note("model_recorded", (target.get("recorded") or {}).get("model"), run.run_id)
    labels = _FIELD_LABELS | {
        "engine_version": "Version",
        "engine_recorded": "Also recorded as",
        "parameters": "Parameters",
        "quantization": "Quantization",
        "model_digest": "Digest",
        "model_file": "File",
        "model_recorded": "Also recorded as",
    }
    out = []
    for key, seen in fields.items():
        if key.endswith("_recorded"):
            seen.pop(None, None)
            if not seen:
                continue
        out.append(_fact(labels.get(key, key.replace("_", " ").capitalize()), seen, order))
    return out


# ---------------------------------------------------------------- pagination


@dataclass(frozen=True)
class Page:
    """One page of a long list.

    The front page (``number`` 0) shows the newest items. The rest of the list
    lives in fixed blocks counted from the oldest item (``pages/1/`` holds the
    oldest ``per_page``), so a new item changes the front page and the newest
    block only: older block pages keep their content and their URLs, which
    makes them citable and lets a rebuild reuse them unchanged.
    """

    rel: str  # output path of this page
    root: str  # relative path back to the site root
    items: list[Any]  # newest first
    number: int  # 0: the front page; 1..count: blocks, 1 the oldest
    # Number of blocks, on the front page; None on a block, whose content must not
    # depend on how many blocks follow it.
    count: int | None
    nav: list[tuple[str, str, bool]]  # (label, href relative to this page, is this page)
    first: int  # position of the oldest item shown, counted from the oldest (1-based)
    last: int  # position of the newest item shown


def page_path(base: str, number: int) -> str:
    return f"{base}index.html" if number == 0 else f"{base}pages/{number}/index.html"


def paginate(base: str, items: Sequence[Any], per_page: int) -> list[Page]:
    """The front page and the blocks of ``items`` (given newest first) under ``base``."""
    total = len(items)
    oldest_first = list(reversed(items))
    blocks = (
        [oldest_first[i : i + per_page] for i in range(0, total, per_page)]
        if total > per_page
        else []
    )
    count = len(blocks)

    def href(here: str, number: int) -> str:
        return posixpath.relpath(page_path(base, number), posixpath.dirname(here) or ".")

    front_rel = page_path(base, 0)
    front_nav = [("Newest", href(front_rel, 0), True)] if count else []
    front_nav += [(str(n), href(front_rel, n), False) for n in range(count, 0, -1)]
    shown = list(items[:per_page])
    pages = [
        Page(
            front_rel,
            "../" * front_rel.count("/"),
            shown,
            0,
            count,
            front_nav,
            total - len(shown) + 1,
            total,
        )
    ]
    for number, block in enumerate(blocks, start=1):
        rel = page_path(base, number)
        # Only neighbours: a new block changes the nav of the block before it, no other.
        nav = [("Newest", href(rel, 0), False)]
        nav += [(str(n), href(rel, n), n == number) for n in (number + 1, number, number - 1)]
        nav = [item for item in nav if item[0] == "Newest" or 1 <= int(item[0]) <= count]
        first = (number - 1) * per_page + 1
        last = first + len(block) - 1
        root = "../" * rel.count("/")
        pages.append(Page(rel, root, block[::-1], number, None, nav, first, last))
    return pages


# ---------------------------------------------------------------- trend charts


def trend_points(
    group: Group,
    entries: dict[str, dict[str, Any]],
    rows: dict[str, list[dict[str, Any]]],
    root: str,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """One point per run x cell x prompt x metric, for the newest dated runs.

    At most ``TREND_PANELS`` cell x prompt panels (those measured most often),
    and by default as many runs as keep the chart under ``TREND_LINKS`` linked
    points (two per run and panel: TTFT p50 and tokens/s), between 5 and
    ``TREND_RUNS``.
    """
    dated = [rid for rid in group.run_ids if entries[rid].get("started_at_utc")]
    warm = {
        rid: [r for r in rows.get(rid, []) if r["phase"] == "warm" and r["cell_id"] in group.cells]
        for rid in dated
    }
    dated = [rid for rid in dated if warm[rid]]
    counts: dict[tuple[str, str], int] = {}
    for rs in warm.values():
        for r in rs:
            counts[(r["cell_id"], r["prompt_id"])] = (
                counts.get((r["cell_id"], r["prompt_id"]), 0) + 1
            )
    panels = set(sorted(counts, key=lambda k: (-counts[k], k))[:TREND_PANELS])
    if limit is None:
        limit = max(5, min(TREND_RUNS, TREND_LINKS // (2 * max(1, len(panels)))))
    points = []
    for rid in dated[:limit]:
        entry = entries[rid]
        for row in warm[rid]:
            if (row["cell_id"], row["prompt_id"]) not in panels:
                continue
            base = {
                "time": entry["started_at_utc"],
                "run": rid,
                "cell": group.label(row["cell_id"]),
                "prompt": row["prompt_id"],
                "href": f"{root}{entry['url']}index.html",
            }
            for metric, series, column in (
                ("ttft", "p50", "ttft_ms_p50"),
                ("ttft", "p95", "ttft_ms_p95"),
                ("tps", "mean", "tokens_per_sec_mean"),
            ):
                if row.get(column) is not None:
                    points.append(base | {"metric": metric, "series": series, "value": row[column]})
    points.sort(
        key=lambda p: (p["metric"], p["cell"], p["prompt"], p["series"], p["time"], p["run"])
    )
    return points


def time_format(points: list[dict[str, Any]]) -> str:
    """Dates for runs days apart; day and time when they all fall within two days."""
    stamps = sorted(p["time"] for p in points)
    first = datetime.fromisoformat(stamps[0].replace("Z", "+00:00"))
    last = datetime.fromisoformat(stamps[-1].replace("Z", "+00:00"))
    return "%Y-%m-%d" if (last - first).total_seconds() >= 2 * 86400 else "%m-%d %H:%M"


def _facet(data: list[dict[str, Any]], fmt: str, metric: str) -> alt.FacetChart:
    linked = alt.datum.series != "p95"  # one link per run and metric keeps the page light
    # alt.Data has no annotations (altair generates it untyped).
    base = alt.Chart(alt.Data(values=data)).encode(  # type: ignore[no-untyped-call]
        x=alt.X(
            "time:T",
            title=None,
            # UTC, like every time on the site (and independent of the build machine)
            scale=alt.Scale(type="utc"),
            axis=alt.Axis(
                format=fmt,
                labelAngle=-30,
                tickCount=3,
                grid=False,
            ),
        ),
        y=alt.Y(
            "value:Q",
            title=None,
            scale=alt.Scale(zero=False, nice=True),
            axis=alt.Axis(tickCount=3, domain=False, ticks=False),
        ),
        color=alt.Color("series:N", title="series", sort=["p50", "p95", "mean"]),
    )
    line = base.mark_line(strokeWidth=1.5)
    # The interquartile range of each run's calls, where the page supplies it (lo, hi).
    band = (
        base.mark_area(opacity=0.2)
        .encode(y="lo:Q", y2="hi:Q")
        .transform_filter("isValid(datum.lo) && isValid(datum.hi)")
    )
    dots = (
        base.mark_point(filled=True, size=30)
        .encode(href="href:N", description="label:N")
        .transform_filter(linked)
        .transform_calculate(
            label=alt.datum.run
            + " "
            + alt.datum.series
            + " "
            + alt.expr.format(alt.datum.value, ",.1f")
        )
    )
    # facet() makes a FacetChart, and resolve_scale returns its chart (untyped in altair).
    chart: alt.FacetChart = (
        alt.layer(band, line, dots)
        .properties(width=170, height=90)
        .facet(
            row=alt.Row("cell:N", title=None, header=alt.Header(labelAngle=0, labelAlign="left")),
            column=alt.Column("prompt:N", title=None),
        )
        .resolve_scale(y="independent")
    )
    return chart


def _trend_layout(fmt: str) -> alt.VConcatChart:
    # configure and configure_view return their chart (untyped in altair).
    layout: alt.VConcatChart = (
        alt.vconcat(
            _facet([], fmt, "ttft").properties(
                title="Warm TTFT (time to first token), p50 with its interquartile band, "
                "and p95 (ms)"
            ),
            _facet([], fmt, "tps").properties(
                title="Warm tokens/s (reference), mean, with the interquartile band of the calls"
            ),
        )
        .configure(font="sans-serif", background="white")
        .configure_view(stroke=None)
    )
    return layout


def trend_chart(points: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The trend chart's spec: a template built once per time format, with the points
    put in (building the Altair chart for each page costs a third of a second)."""
    if not points:
        return None
    fmt = time_format(points)
    template = charts.cached_template(("trend", fmt), lambda: _trend_layout(fmt), theme=False)
    spec = copy.deepcopy(template)
    for panel, metric in zip(spec["vconcat"], ("ttft", "tps"), strict=True):
        panel["data"] = {"values": [p for p in points if p["metric"] == metric]}
    return spec


_VEGA_BASE = 'xlink:href="https://vega.github.io/vega-datasets/'
_GEOMETRY = re.compile(r'\b(d|transform)="([^"]*)"')
_LONG_NUMBER = re.compile(r"(\d+\.\d)\d+")
# Markup that draws nothing: default attributes, labels Vega hid to avoid overlap,
# empty foreground paths.
_NOISE = (
    re.compile(r' opacity="1"'),
    re.compile(r' pointer-events="none"'),
    re.compile(r'<text [^>]*opacity="0"[^>]*>[^<]*</text>'),
    re.compile(r'<path class="foreground" aria-hidden="true" d="" display="none"/>'),
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


def trend_svg(group: Group, points: list[dict[str, Any]], cache: Path | None) -> str | None:
    chart = trend_chart(points)
    if chart is None:
        return None
    runs = len({p["run"] for p in points})
    title = f"Trends for {KINDS[group.kind]['one'].lower()} {group.name}"
    description = (
        "Warm TTFT p50 and p95 (ms) and warm tokens/s (reference) mean over time for the "
        f"{runs} most recent dated run(s) of {len(group.cells)} cell(s), one panel per cell "
        "and prompt. Each point links to its run; the tables on this page list every run."
    )
    # Inside a chart batch this is a placeholder; the build fills and compacts it.
    return charts.svg_chart(chart, "chart-trend", title, description, cache)


_SVG_BLOCK = re.compile(r"<svg\b.*?</svg>", re.DOTALL)


def compact_page(html: str) -> str:
    """``compact`` every inline SVG of a page."""
    return _SVG_BLOCK.sub(lambda m: compact(m.group(0)), html)
