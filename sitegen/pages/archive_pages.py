"""The archive-wide pages and files: methodology, data, 404, the catalogue, the archive's
citation, the feeds, the sitemap and the theme's assets."""

from __future__ import annotations

from sitegen import cite, feeds
from sitegen.config import site_path
from sitegen.fsutil import sha256_file
from sitegen.pages.context import Context
from sitegen.pages.markup import anchored, markdown
from sitegen.pages.theme import ASSETS, asset_source
from sitegen.reuse import digest


def archive_pages(ctx: Context) -> None:
    """Methodology and 404 depend on the salt only; the data page on the downloads."""
    outputs, info = ctx.outputs, ctx.archive_info
    ctx.page(
        "methodology/index.html",
        "page.html",
        ctx.salt,
        root="../",
        page_title="Methodology",
        body=anchored(markdown(ctx.methodology_text)),
    )
    files = list(ctx.data.files)
    for item in files:
        outputs.copy(item.rel, item.path, item.sha256)
    # The data page shows each file's sha256, which also depends on library versions.
    files_key = digest([ctx.whole, [(f.rel, f.sha256) for f in files]])
    ctx.page("data/index.html", "data.html", files_key, root="../", files=files)
    # Static hosts serve 404.html's bytes at any missing address, however deep:
    # its links start from the base URL's path, so they resolve from anywhere.
    ctx.page("404.html", "404.html", ctx.salt, root=site_path(info.get("base_url") or ""))
    outputs.add("catalogue.json", ctx.catalogue_bytes)
    cff = cite.archive_cff(info, ctx.entries, ctx.data.config.get("archive.repository"))
    outputs.add("CITATION.cff", cite.cff_yaml(cff))
    outputs.add(feeds.RUNS_FEED, feeds.runs_feed(info, ctx.entries))
    outputs.add(feeds.REGRESSIONS_FEED, feeds.regressions_feed(info, ctx.entries, ctx.comparisons))
    # The sitemap lists every page made so far: archive_pages runs last.
    pages = [rel for rel in outputs.data if rel.endswith(".html") and rel != "404.html"]
    lastmod = {
        f"{e['url']}index.html": feeds._time(e)
        for e in ctx.entries
        if e.get("finished_at_utc") or e.get("started_at_utc")
    }
    outputs.add("sitemap.xml", feeds.sitemap(info, pages, lastmod))
    outputs.add("robots.txt", feeds.robots(info))
    for rel in ASSETS:
        source = asset_source(ctx.data.layout.templates, rel)
        outputs.copy(rel, source, sha256_file(source))
