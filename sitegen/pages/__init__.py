"""Rendering: the loaded archive -> every page and copied file of the site (an ``Outputs``).

One module per page type, each a function of the one page-context object
(:class:`~sitegen.pages.context.Context`): ``index_page``, ``run_page``,
``group_page``, ``changes_page``, ``compare_page``, ``archive_pages``. ``theme`` finds templates
and assets (the publisher's first), ``markup`` makes untrusted Markdown safe.
"""

from __future__ import annotations

from jinja2 import TemplateError, TemplateSyntaxError

from sitegen import charts, cite
from sitegen.copies import Copies
from sitegen.exceptions import BuildError
from sitegen.output import Deferred, Outputs, Spooled
from sitegen.pages.archive_pages import archive_pages
from sitegen.pages.changes_page import changes_pages
from sitegen.pages.compare_page import compare_pages
from sitegen.pages.context import Context, SiteData, make_context
from sitegen.pages.group_page import group_pages
from sitegen.pages.index_page import index_pages
from sitegen.pages.pool import render_all
from sitegen.pages.run_page import RunPage, StoredTexts, render_run_page, run_outputs
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
    outputs = Outputs(
        previous=data.previous,
        spool=data.spool,
        mark=charts.PLACEHOLDER,
        deferred=[],
        copies=Copies(data.layout.copies_cache, data.state) if data.state.path else None,
    )
    ctx = make_context(data, environment(data.layout.templates), outputs)
    index_pages(ctx)
    pages: list[RunPage] = []
    for entry in ctx.entries:
        run_outputs(ctx, entry, pages)
    group_pages(ctx)
    changes_pages(ctx)
    compare_pages(ctx)
    _render_new(ctx, pages)
    archive_pages(ctx)  # its sitemap lists every page above
    return ctx.outputs


def _render_new(ctx: Context, pages: list[RunPage]) -> None:
    """The run pages whose keys are new, and every other page whose key is new (deferred
    by ``Outputs.cached``), rendered many at a time and added in order. Pages asked
    for after this (the archive pages) are rendered as they are asked for.

    Rendering them together keeps both cores busy for all of them: on a build of
    every page, the list pages (index, models, nodes, engines, changes) and each
    run's ``samples.json`` were a serial tail of some ten seconds at 10,000 runs.
    """
    progress = ctx.data.progress
    outputs, comparisons = ctx.outputs, ctx.comparisons
    others, outputs.deferred = outputs.deferred or [], None
    jobs: list[RunPage | Deferred] = [*pages, *others]
    step = max(PROGRESS_EVERY, len(pages) // 10)

    def render(
        job: RunPage | Deferred,
    ) -> tuple[tuple[bytes | Spooled, ...], StoredTexts | None]:
        # Spooled where it is made: a worker writes and hashes its own pages and sends
        # back their records, not their text for the build to write.
        if isinstance(job, Deferred):
            return (outputs.hold(job.produce()),), None
        texts, made = render_run_page(ctx, job)
        return tuple(outputs.hold(text) for text in texts), made

    def count(n: int) -> None:
        comparisons.decoded += n

    if pages:
        # Read before the workers fork, so they share it; the citations not stored yet
        # are made, each with its CFF checked.
        stored = ctx.run_texts.known
        cite.expect(sum(ctx.run_texts_key(p.entry["id"]) not in stored for p in pages))
    made = render_all(jobs, render, lambda: comparisons.decoded, count)
    try:
        for done, (job, (texts, run_texts)) in enumerate(made, start=1):
            if isinstance(job, Deferred):
                outputs.fill(job, texts[0])
                continue
            if run_texts is not None:  # made by a worker, which cannot store it
                ctx.run_texts.put(ctx.run_texts_key(job.entry["id"]), run_texts, plain=True)
            for (rel, key), text in zip(job.files, texts, strict=True):
                outputs.add(rel, text, key)
            if progress is not None and done % step == 0:
                progress(f"pages: {done}/{len(pages)} run pages rendered")
    finally:
        # A failure here (a path claimed twice, Ctrl-C) stops the workers now, before
        # the spool they write into is removed; the traceback would keep them alive.
        made.close()
