"""The front page (newest runs and the overview) and the fixed blocks of older runs."""

from __future__ import annotations

from typing import Any

from sitegen.groups import KINDS, paginate
from sitegen.pages.context import Context
from sitegen.reuse import digest


def index_pages(ctx: Context) -> None:
    entries = ctx.entries
    counts = ctx.change_counts()
    files = list(ctx.data.files)
    template = ctx.env.get_template("index.html")
    for page in paginate("", entries, ctx.per_page):
        front = page.number == 0
        values = {
            "root": page.root,
            "archive": ctx.archive_info,
            "runs": page.items,
            "page": page,
            "total": len(entries) if front else None,
            "synthetic_count": sum(1 for e in (entries if front else page.items) if e["synthetic"]),
            "files": files if front else [],
            "groups": ctx.groups if front else {},
            "kinds": KINDS,
            "counts": counts if front else None,
        }
        # A block's content is its own runs: key it by them, not by the archive.
        ids = [e["id"] for e in page.items]
        key = ctx.whole if front else ctx.block_key(values, "runs", ids)

        def render(values: dict[str, Any] = values) -> str:
            return template.render(**values)

        ctx.outputs.cached(page.rel, digest([key, page.rel]), render)
