"""Rendering: the loaded archive -> every page and copied file of the site (an ``Outputs``).

One module per page type, each a function of the one page-context object
(:class:`~sitegen.pages.context.Context`): ``index_page``, ``run_page``,
``group_page``, ``changes_page``, ``compare_page``, ``archive_pages``. ``theme`` finds templates
and assets (the publisher's first), ``markup`` makes untrusted Markdown safe.
"""

from __future__ import annotations

from jinja2 import TemplateError, TemplateSyntaxError

from sitegen.exceptions import BuildError
from sitegen.output import Outputs
from sitegen.pages.archive_pages import archive_pages
from sitegen.pages.changes_page import changes_pages
from sitegen.pages.compare_page import compare_pages
from sitegen.pages.context import Context, SiteData, make_context
from sitegen.pages.group_page import group_pages
from sitegen.pages.index_page import index_pages
from sitegen.pages.pool import render_all
from sitegen.pages.run_page import RunPage, render_run_page, run_outputs
from sitegen.pages.theme import environment, template_display

__all__ = ["SiteData", "render_site"]

PROGRESS_EVERY = 1000  # runs between progress lines while rendering


def render_site(data: SiteData) -> Outputs:
    """Every page and file of the site; a broken template is a BuildError naming it."""
    try:
        return _render_site(data)
    except TemplateSyntaxError as exc:
        where = template_display(data.archive, exc.filename or exc.name or "?")
        raise BuildError(f"{where}:{exc.lineno}: template error: {exc.message}") from None
    except TemplateError as exc:
        raise BuildError(f"template error: {exc}") from None


def _render_site(data: SiteData) -> Outputs:
    ctx = make_context(
        data, environment(data.layout.templates), Outputs(previous=data.previous, spool=data.spool)
    )
    index_pages(ctx)
    pages: list[RunPage] = []
    for entry in ctx.entries:
        run_outputs(ctx, entry, pages)
    _render_run_pages(ctx, pages)
    group_pages(ctx)
    changes_pages(ctx)
    compare_pages(ctx)
    archive_pages(ctx)
    return ctx.outputs


def _render_run_pages(ctx: Context, pages: list[RunPage]) -> None:
    """The run pages whose keys are new, rendered many at a time, added in order."""
    progress = ctx.data.progress
    step = max(PROGRESS_EVERY, len(pages) // 10)
    comparisons = ctx.comparisons

    def count(n: int) -> None:
        comparisons.decoded += n

    made = render_all(
        pages, lambda page: render_run_page(ctx, page), lambda: comparisons.decoded, count
    )
    for done, (page, texts) in enumerate(made, start=1):
        for (rel, key), text in zip(page.files, texts, strict=True):
            ctx.outputs.add(rel, text, key)
        if progress is not None and done % step == 0:
            progress(f"pages: {done}/{len(pages)} run pages rendered")
