"""Feeds and crawling: Atom feeds of runs and of regressions, sitemap.xml, robots.txt.

Everything here is dated by the runs themselves, never by the build, so two
builds of the same archive give the same bytes. Absolute URLs come from
``archive.base_url``; without it the files say so in a comment and use URLs
relative to their own location (Atom resolves them against the feed's URL;
the sitemap protocol wants absolute URLs, so set a base URL before
submitting it to a search engine).
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from sitegen import __version__
from sitegen.compare import Comparisons
from sitegen.groups import slugify
from sitegen.verdicts import MIXED, REGRESSION, fmt_ci, fmt_p, fmt_pct

FEED_ENTRIES = 50
EPOCH = "1970-01-01T00:00:00Z"
RUNS_FEED = "feeds/runs.atom"
REGRESSIONS_FEED = "feeds/regressions.atom"
NO_BASE_URL_NOTE = (
    "archive.base_url is not set: links here are relative to this file's location "
    "and ids are URNs. Set [archive] base_url in sitegen.toml for permanent URLs."
)


def href(base_url: str, rel: str, here: str) -> str:
    """``rel`` (from the site root) as an absolute URL, or relative to the file ``here``."""
    if base_url:
        return base_url + rel
    return posixpath.relpath(rel, posixpath.dirname(here) or ".")


def _id(base_url: str, archive_title: str, rel: str) -> str:
    if base_url:
        return base_url + rel
    return f"urn:sitegen:{slugify(archive_title)}:{rel}"


def _time(entry: dict[str, Any]) -> str:
    return entry.get("finished_at_utc") or entry.get("started_at_utc") or EPOCH


def _authors(archive: dict[str, Any]) -> str:
    names = archive.get("authors") or [archive["title"]]
    return "".join(f"<author><name>{escape(n)}</name></author>" for n in names)


def _feed(
    archive: dict[str, Any], here: str, title: str, subtitle: str, entries: list[str], updated: str
) -> str:
    base = archive.get("base_url") or ""
    self_link, home = href(base, here, here), href(base, "index.html", here)
    lines = ['<?xml version="1.0" encoding="utf-8"?>']
    if not base:
        lines.append(f"<!-- {NO_BASE_URL_NOTE} -->")
    lines += [
        '<feed xmlns="http://www.w3.org/2005/Atom">',
        f"<title>{escape(title)}</title>",
        f"<subtitle>{escape(subtitle)}</subtitle>",
        f"<id>{escape(_id(base, archive['title'], here))}</id>",
        f'<link rel="self" type="application/atom+xml" href={quoteattr(self_link)}/>',
        f'<link rel="alternate" type="text/html" href={quoteattr(home)}/>',
        f"<updated>{updated}</updated>",
        _authors(archive),
        f'<generator version="{__version__}">sitegen</generator>',
        *entries,
        "</feed>",
    ]
    return "\n".join(lines) + "\n"


def _entry(
    archive: dict[str, Any],
    here: str,
    entry: dict[str, Any],
    title: str,
    summary: str,
    fragment: str = "",
    categories: Iterable[str] = (),
) -> str:
    base = archive.get("base_url") or ""
    page = f"{entry['url']}index.html"
    link = href(base, page, here) + fragment
    published = entry.get("started_at_utc") or _time(entry)
    cats = "".join(f"<category term={quoteattr(c)}/>" for c in categories)
    return (
        "<entry>"
        f"<title>{escape(title)}</title>"
        f"<id>{escape(_id(base, archive['title'], entry['url']) + fragment)}</id>"
        f'<link rel="alternate" type="text/html" href={quoteattr(link)}/>'
        f"<published>{published}</published>"
        f"<updated>{_time(entry)}</updated>"
        f"{cats}"
        f'<summary type="text">{escape(summary)}</summary>'
        "</entry>"
    )


def _newest(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(entries, key=lambda e: (_time(e), e["id"]), reverse=True)


def _run_summary(entry: dict[str, Any]) -> str:
    parts = [entry.get("description") or ""]
    parts.append(f"Run {entry['id']}: {entry['status']}, {entry['counts']['calls']} call(s)")
    if entry["cells"]:
        parts.append("cells: " + ", ".join(entry["cells"]))
    if entry["synthetic"]:
        parts.append("synthetic demo data, not a measurement")
    if entry["reproducibility"]["verdict"] == "unreliable":
        parts.append("unreliable: " + "; ".join(entry["reproducibility"]["reasons"]))
    return ". ".join(p for p in parts if p) + "."


def runs_feed(archive: dict[str, Any], entries: list[dict[str, Any]]) -> str:
    """The newest runs first (by finish, else start time)."""
    newest = _newest(entries)[:FEED_ENTRIES]
    items = []
    for e in newest:
        cats = [*e["models"], *e["engines"], *e["nodes"]]
        cats += ["baseline"] if e["baseline"] else []
        cats += ["synthetic"] if e["synthetic"] else []
        items.append(_entry(archive, RUNS_FEED, e, e["title"], _run_summary(e), categories=cats))
    updated = _time(newest[0]) if newest else EPOCH
    return _feed(
        archive,
        RUNS_FEED,
        f"{archive['title']}: runs",
        "Benchmark runs published in this archive, newest first.",
        items,
        updated,
    )


def regressions_feed(
    archive: dict[str, Any],
    entries: list[dict[str, Any]],
    comparisons: Comparisons,
) -> str:
    """One entry per run with at least one regression against its baseline, newest first."""
    flagged = [e for e in _newest(entries) if (o := comparisons.outline(e["id"])) and o.regressions]
    items = []
    for e in flagged[:FEED_ENTRIES]:
        rows = sorted(comparisons[e["id"]].regressions, key=lambda r: r.evidence_key())
        lines = []
        for r in rows:
            evidence = [
                f"{m.metric.label} {fmt_pct(m.change)} ({fmt_ci(m.shift)}, {fmt_p(m.shift.p)}, "
                f"n = {m.base.n if m.base else 0} vs {m.now.n if m.now else 0}"
                f"{'; ' + m.note if m.note else ''})"
                for m in r.metrics
                if m.status == REGRESSION and m.shift is not None
            ]
            if r.success_flag and r.success_now is not None:
                evidence.append(f"warm success {r.success_now:.0%} (red flag)")
            mixed = (
                " (mixed: " + r.reason.removeprefix("mixed: ") + ")" if r.verdict == MIXED else ""
            )
            lines.append(
                f"{r.cell_id} {r.prompt_id} against {r.baseline_id}: {', '.join(evidence)}{mixed}"
            )
        title = f"{len(rows)} regression(s) in {e['title']}"
        summary = "; ".join(lines) + "."
        if e["synthetic"]:
            summary += " Synthetic demo data, not a measurement."
        items.append(_entry(archive, REGRESSIONS_FEED, e, title, summary, fragment="#changes"))
    updated = _time(flagged[0]) if flagged else EPOCH
    return _feed(
        archive,
        REGRESSIONS_FEED,
        f"{archive['title']}: regressions",
        "Runs slower (or less reliable) than their baseline: significant (Mann-Whitney) and "
        "beyond the archive's thresholds.",
        items,
        updated,
    )


def sitemap(archive: dict[str, Any], pages: Iterable[str], lastmod: dict[str, str]) -> str:
    """Every page, sorted; ``lastmod`` (page -> ISO time) where a run dates it."""
    base = archive.get("base_url") or ""
    lines = ['<?xml version="1.0" encoding="utf-8"?>']
    if not base:
        lines.append(
            "<!-- archive.base_url is not set: these locations are relative to this file, "
            "which the sitemap protocol does not allow. Set [archive] base_url in "
            "sitegen.toml before submitting this sitemap. -->"
        )
    lines.append('<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">')
    for page in sorted(pages):
        loc = base + page if base else page
        mod = f"<lastmod>{lastmod[page]}</lastmod>" if page in lastmod else ""
        lines.append(f"<url><loc>{escape(loc)}</loc>{mod}</url>")
    lines.append("</urlset>")
    return "\n".join(lines) + "\n"


def robots(archive: dict[str, Any]) -> str:
    base = archive.get("base_url") or ""
    text = "User-agent: *\nAllow: /\n"
    return text + (f"Sitemap: {base}sitemap.xml\n" if base else "")
