"""Model, node and engine pages: the list of each kind, and one page per group."""

from __future__ import annotations

from typing import Any

from jinja2 import Template
from markupsafe import Markup

from sitegen import scores
from sitegen.archive import Run
from sitegen.compare import Facts, facts_of
from sitegen.entities import cell_name
from sitegen.groups import KINDS, Group, Page, paginate, trend_panels, trend_svgs
from sitegen.pages.context import Context
from sitegen.reuse import digest

# A recorded value names at most this many runs (the newest), then how many more:
# a node's CPU recorded by 1,000 runs would otherwise list all 1,000 (a megabyte).
FACTS_RUNS_SHOWN = 10


def group_pages(ctx: Context) -> None:
    group_template = ctx.env.get_template("group.html")
    for kind, groups in ctx.groups.items():
        folder = KINDS[kind]["folder"]

        def render_index(kind: str = kind, groups: list[Group] = groups) -> str:
            return ctx.env.get_template("groups.html").render(
                root="../",
                archive=ctx.archive_info,
                kind=kind,
                info=KINDS[kind],
                groups=groups,
                by_id=ctx.by_id,
            )

        ctx.outputs.cached(f"{folder}/index.html", digest([ctx.whole, folder]), render_index)
        for group in groups:
            runs = [ctx.by_id[rid] for rid in group.run_ids]
            for page in paginate(group.url, runs, ctx.per_page):
                if page.number == 0:
                    _group_front(ctx, group_template, group, page)
                    continue
                values = {
                    "root": page.root,
                    "archive": ctx.archive_info,
                    "group": {
                        "kind": group.kind,
                        "name": group.name,
                        "title": group.title,
                        "variant": group.variant,
                        "url": group.url,
                    },
                    "info": KINDS[kind],
                    "cells": [],
                    "runs": page.items,
                    "total": None,
                    "page": page,
                    "trend": None,
                    "series": [],
                    "score_charts": [],
                }
                ids = [e["id"] for e in page.items]

                def render_page(values: dict[str, Any] = values) -> str:
                    return group_template.render(**values)

                ctx.outputs.cached(
                    page.rel,
                    digest([page.rel, ctx.block_key(values, "runs", ids)]),
                    render_page,
                )


class _RunFacts(dict[str, Facts]):
    """run id -> its facts, made when first looked up: a trend chart draws the newest
    few runs of a group that may hold thousands."""

    def __init__(self, runs: dict[str, Run]):
        super().__init__()
        self._runs = runs

    def __missing__(self, run_id: str) -> Facts:
        made = self[run_id] = facts_of(self._runs[run_id], {})
        return made


def _group_front(ctx: Context, template: Template, group: Group, page: Page) -> None:
    """A group's own page: its cells, trend chart, scores and newest runs.

    The key holds the chart's data points, not its SVG, so the charts are only
    looked up (or rendered) when the page itself has to be rendered.
    """
    data = ctx.data
    runs = [ctx.by_id[rid] for rid in group.run_ids]
    outline = ctx.comparisons.outline
    spreads = {rid: o.spreads for rid in group.run_ids if (o := outline(rid)) is not None}
    trend = trend_panels(group, ctx.by_id, spreads, _RunFacts(data.runs), page.root)
    group_runs = [data.runs[rid] for rid in group.run_ids]
    series = scores.model_series(group.name, group_runs, ctx.by_id) if group.kind == "model" else []
    values = {
        "root": page.root,
        "archive": ctx.archive_info,
        "group": group,
        "info": KINDS[group.kind],
        "cells": _group_cells(group, runs, ctx),
        "runs": page.items,
        "total": len(runs),
        "page": page,
        "series": series,
        # the runs the recorded facts name (the newest few per value): their addresses,
        # and which only planned cells
        "by_id": {
            rid: {"url": ctx.by_id[rid]["url"], "status": ctx.by_id[rid]["status"]}
            for f in group.facts
            for v in f["values"]
            for rid in v["runs"][:FACTS_RUNS_SHOWN]
        },
        "facts_runs_shown": FACTS_RUNS_SHOWN,
    }

    def render() -> str:
        shown = None
        if trend is not None:
            panels = trend_svgs(group, trend, data.chart_cache)
            for panel in panels:
                panel["svg"] = Markup(panel["svg"])
            shown = trend | {"panels": panels}
        score_charts = scores.series_charts(series, data.chart_cache)
        for c in score_charts:
            c["svg"] = Markup(c["svg"])
        return template.render(trend=shown, score_charts=score_charts, **values)

    # The key holds what the charts draw, not their SVG.
    ctx.outputs.cached(page.rel, digest([ctx.salt, page.rel, values, trend]), render)


def _group_cells(group: Group, runs: list[dict[str, Any]], ctx: Context) -> list[dict[str, Any]]:
    """Per cell: its target, how many runs measured it, and its latest warm values."""
    out = []
    rows = ctx.data.rows
    # which cells each run measured (looked up, not rescanned per cell: that was
    # quadratic on large groups); the rows only of each cell's latest run
    measured_by = [(e, rows.cells(e["id"])) for e in runs]
    warm_of: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    titles = {g.url: g.title for gs in ctx.groups.values() for g in gs}
    for cell_id in sorted(group.cells):
        run_id = next(e["id"] for e in runs if (e["id"], cell_id) in group.members)
        pages = {}
        for kind in KINDS:
            url = ctx.locator.url(kind, run_id, cell_id)
            if url is not None:
                pages[kind] = {"url": url, "title": titles[url]}
        measured = [e for e, cells in measured_by if cell_id in cells]
        latest = measured[0] if measured else None
        warm: dict[str, dict[str, Any]] = {}
        if latest is not None:
            if latest["id"] not in warm_of:
                warm_of[latest["id"]] = rows.warm(latest["id"])
            warm = warm_of[latest["id"]].get(cell_id, {})
        comparison = ctx.comparisons.outline(latest["id"]) if latest else None
        out.append(
            {
                "cell_id": cell_id,
                "target": group.cells[cell_id],
                "runs": sum(1 for e in runs if cell_id in e["cells"]),
                "measured": len(measured),
                "latest": latest,
                "warm": [warm[p] for p in sorted(warm)],
                "spreads": comparison.spreads.get(cell_id, {}) if comparison else {},
                "pages": pages,
                "name": cell_name(group.cells[cell_id]),
                "planned_only": all(
                    ctx.by_id[e["id"]]["status"] == "meta-only"
                    for e in runs
                    if (e["id"], cell_id) in group.members
                ),
            }
        )
    return out
