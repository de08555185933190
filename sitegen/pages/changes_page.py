"""The changes pages: runs with a flagged row against their baseline, newest first."""

from __future__ import annotations

from typing import Any

from sitegen.groups import paginate
from sitegen.pages.context import Context
from sitegen.reuse import digest
from sitegen.verdicts import METRICS

CHANGES_PER_PAGE = 25  # runs with a regression or a win, per page of changes/


def changes_pages(ctx: Context) -> None:
    changed = [ctx.by_id[rid] for rid, o in ctx.newest_first() if o.changes]
    counts = ctx.change_counts()
    template = ctx.env.get_template("changes.html")
    for page in paginate("changes/", changed, CHANGES_PER_PAGE):
        values = {
            "root": page.root,
            "archive": ctx.archive_info,
            "comparisons": page.items,  # entries here; with their comparisons to render
            "page": page,
            "counts": counts if page.number == 0 else None,
            "thresholds": ctx.thresholds,
            "metrics": METRICS,
        }
        ids = [e["id"] for e in page.items]
        key = ctx.whole if page.number == 0 else ctx.block_key(values, "comparisons", ids)

        def render(values: dict[str, Any] = values) -> str:
            shown = [(e, ctx.comparisons[e["id"]]) for e in values["comparisons"]]
            return template.render(**(values | {"comparisons": shown}))

        ctx.outputs.cached(page.rel, digest([key, page.rel]), render)
