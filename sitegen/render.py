"""Rendering: catalogue data -> HTML pages and copied files (an ``Outputs`` set).

Templates come from the publisher's ``templates/`` first, then the default
theme shipped in the package, one file at a time. Autoescape is on for every
template; the only markup passed through unescaped is what this module builds
itself (sanitised Markdown, chart SVG).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import nh3
from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateError,
    TemplateSyntaxError,
)
from markdown_it import MarkdownIt
from markupsafe import Markup

from sitegen import __version__, charts, cite, feeds, scores, vocabulary
from sitegen.archive import Run
from sitegen.catalogue import comparison_json, nodes_of, targets_of
from sitegen.codeversion import code_version, methodology_default, theme_root
from sitegen.compare import RunComparison
from sitegen.config import Config, defaults, site_path
from sitegen.discover import published_names
from sitegen.downloads import COLUMNS, Download
from sitegen.exceptions import BuildError
from sitegen.fsutil import sha256_file
from sitegen.groups import (
    KINDS,
    Group,
    build_groups,
    group_links,
    paginate,
    trend_points,
    trend_svg,
)
from sitegen.jsonio import dumps
from sitegen.output import Outputs
from sitegen.reuse import Previous, digest, files_digest
from sitegen.verdicts import METRICS, MIXED, REGRESSION, WIN, Settings

ASSETS = (
    "assets/style.css",
    "assets/table.js",
    "assets/search.js",
    "assets/copy.js",
    "assets/favicon.svg",
)
CHANGES_PER_PAGE = 25  # runs with a regression or a win, per page of changes/
PROGRESS_EVERY = 1000  # runs between progress lines while rendering
SAFE_SCHEMES = {"http", "https", "mailto"}
RESULT_FIELDS = ("name", "metric", "value", "unit", "stderr", "higher_is_better", "model")


def environment(archive: Path) -> Environment:
    loaders = []
    own = archive / "templates"
    if own.is_dir() and own.resolve() != theme_root().resolve():
        loaders.append(FileSystemLoader(own))
    loaders.append(FileSystemLoader(theme_root()))
    env = Environment(
        loader=ChoiceLoader(loaders),
        autoescape=True,
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["version"] = __version__
    env.globals["vocab"] = vocabulary  # headers' labels, units and anchors (_macros.stat_head)
    env.globals["column_docs"] = COLUMNS  # what each download column holds (data page)
    return env


def asset_source(archive: Path, rel: str) -> Path:
    own = archive / "templates" / rel
    return own if own.is_file() and not own.is_symlink() else theme_root() / rel


_MD = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable(
    "table"
)


_HEADING = re.compile(r"<(/?)h([1-6])\b")


def markdown(text: str, demote: int = 0) -> Markup:
    """Markdown with raw HTML off, then sanitised: links only http, https, mailto.

    ``demote`` lowers every heading by that many levels, so notes shown under a
    section heading keep the page's outline (and its single h1).
    """
    html = _MD.render(text)
    clean = nh3.clean(html, url_schemes=SAFE_SCHEMES, link_rel="noopener noreferrer nofollow")
    if demote:
        clean = _HEADING.sub(lambda m: f"<{m.group(1)}h{min(6, int(m.group(2)) + demote)}", clean)
    return Markup(clean)


_ANCHORED = re.compile(
    r"<(h[1-6]|strong)>(.*?)(?:</\1> \{#([a-z0-9][a-z0-9-]*)\}|"
    r" \{#([a-z0-9][a-z0-9-]*)\}</\1>)"
)


def anchored(html: Markup) -> Markup:
    """``## Title {#anchor}`` and ``**term** {#anchor}`` get ``id="anchor"``: the stable
    targets the changes and run pages link their table headers to ([a-z0-9-] only)."""

    def put(m: re.Match[str]) -> str:
        return f'<{m.group(1)} id="{m.group(3) or m.group(4)}">{m.group(2)}</{m.group(1)}>'

    return Markup(_ANCHORED.sub(put, str(html)))


@dataclass(frozen=True)
class SiteData:
    """Everything the renderer needs, as plain data computed earlier in the pipeline."""

    archive: Path
    catalogue: dict[str, Any]
    runs: dict[str, Run]
    checks: dict[str, dict[str, Any]]
    rows: dict[str, list[dict[str, Any]]]
    chart_cache: Path | None
    config: Config = field(default_factory=defaults)
    files: tuple[Download, ...] = ()  # everything under data/ (sitegen.downloads)
    catalogue_json: bytes = b""  # the catalogue in its canonical form, when already made
    progress: Callable[[str], Any] | None = None  # told how rendering goes, on long builds
    previous: Previous | None = None  # the live build, whose unchanged files are reused
    comparisons: dict[str, RunComparison] = field(default_factory=dict)  # sitegen.compare


@dataclass(frozen=True)
class Context:
    """What several pages share, computed once per build."""

    entries: list[dict[str, Any]]  # catalogue runs, newest first
    by_id: dict[str, dict[str, Any]]
    groups: dict[str, list[Group]]
    links: dict[str, dict[str, str]]  # kind -> name -> group URL from the site root
    comparisons: dict[str, RunComparison]
    thresholds: Settings
    per_page: int
    charted: set[str]  # runs whose pages get charts (the newest site.run_charts)
    # Digests of each run's catalogue entry and comparison, computed once: the
    # keys of every page that shows a run are made from these.
    entry_keys: dict[str, str]
    comparison_keys: dict[str, str]
    # Each run's aggregate rows indexed once (run -> cell -> warm rows by
    # prompt), so a group page looks its cells up instead of rescanning every
    # run's rows per cell, which was quadratic on large groups.
    warm_by_cell: dict[str, dict[str, dict[str, dict[str, Any]]]]


def context(data: SiteData) -> Context:
    entries = data.catalogue["runs"]
    groups = build_groups(entries, data.runs)
    thresholds = Settings.from_config(data.config)
    comparisons = data.comparisons
    entry_keys = {e["id"]: digest(e) for e in entries}
    return Context(
        entries=entries,
        by_id={e["id"]: e for e in entries},
        groups=groups,
        links=group_links(groups),
        comparisons=comparisons,
        thresholds=thresholds,
        per_page=int(data.config.get("site.runs_per_page")),
        charted={e["id"] for e in entries[: int(data.config.get("site.run_charts"))]},
        entry_keys=entry_keys,
        comparison_keys={rid: comparison_key(c, entry_keys) for rid, c in comparisons.items()},
        warm_by_cell=_index_rows(data.rows),
    )


def comparison_key(comparison: RunComparison, entry_keys: dict[str, str]) -> str:
    """What a comparison is computed from: its run's entry (whose digest covers the run's
    files, so its calls), the entries of the baselines it chose, and the cells without
    one; the settings and code are in every page's salt. Hashing these instead of the
    comparison's rows saves encoding every row of every run on every build."""
    baselines = sorted({r.baseline_id for r in comparison.rows})
    return digest(
        [
            entry_keys.get(comparison.run_id),
            [[b, entry_keys.get(b)] for b in baselines],
            comparison.without_baseline,
        ]
    )


def _index_rows(
    rows: dict[str, list[dict[str, Any]]],
) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """run -> cell -> prompt -> warm row; a measured cell without warm rows maps to {}."""
    out: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    for run_id, run_rows in rows.items():
        cells: dict[str, dict[str, dict[str, Any]]] = {}
        for r in run_rows:
            warm = cells.setdefault(r["cell_id"], {})
            if r["phase"] == "warm":
                warm[r["prompt_id"]] = r
        out[run_id] = cells
    return out


def _describe_harness(run: Run) -> str:
    h = run.metadata.get("harness") or {}
    name = h.get("name") or run.meta.get("harness_name") or "harness"
    version = h.get("version") or run.meta.get("harness_version")
    return f"{name} {version}" if version is not None else f"{name} (version not recorded)"


def _describe_git(run: Run) -> str:
    g = run.metadata.get("git") or {}
    sha = g.get("sha") or run.meta.get("git_sha")
    if not sha:
        return "not recorded"
    dirty = g.get("dirty", run.meta.get("git_dirty"))
    files = g.get("dirty_files") or run.meta.get("git_dirty_files") or []
    state = (
        "clean"
        if dirty is False
        else f"dirty ({len(files)} file(s) documented)"
        if dirty
        else "state unknown"
    )
    return f"{sha}, {state}"


def _cells(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    cells: dict[str, dict[str, Any]] = {}
    for row in rows:
        cell = cells.setdefault(row["cell_id"], {"cell_id": row["cell_id"], "cold": [], "warm": []})
        cell[row["phase"]].append(row)
    return [cells[k] for k in sorted(cells)]


def _run_charts(
    run_id: str,
    rows: list[dict[str, Any]],
    cache: Path | None,
    comparison: RunComparison | None = None,
) -> list[dict[str, Any]]:
    """Bar charts of the warm p50s, each bar with its interquartile range as an error bar."""
    specs = [
        (
            "ttft",
            "warm first_delta_ms p50 (ms)",
            "Warm time to first delta, p50 with interquartile range, per cell and prompt",
        ),
        (
            "tps",  # the chart's id; its values are the decode metric's
            "decode tokens/s p50",
            "Decode tokens per second, p50 with interquartile range, per cell and prompt",
        ),
    ]
    spreads = comparison.spreads if comparison is not None else {}
    out = []
    for key, axis, title in specs:
        bars = [
            {
                "cell_id": cell,
                "prompt_id": prompt,
                "phase": "warm",
                "value": s.p50,
                "lo": s.p25,
                "hi": s.p75,
            }
            for cell, prompts in spreads.items()
            for prompt, metrics in prompts.items()
            if (s := metrics.get("decode" if key == "tps" else key)) is not None
        ]
        chart = charts.bar_by_cell(bars, "value", axis, title)
        if chart is None:
            continue
        values = [
            f"{b['cell_id']} {b['prompt_id']}: {b['value']:,.1f} "
            f"(IQR {b['lo']:,.1f} to {b['hi']:,.1f})"
            for b in bars
        ]
        description = f"{title}. " + "; ".join(values) + "."
        svg = charts.svg_chart(chart, f"chart-{key}", title, description, cache)
        out.append(
            {"svg": Markup(svg), "caption": f"{title}. The same values are in the tables below."}
        )
    return out


def run_links(run: Run, links: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """The group URLs a run page links to (its targets' nodes, engines and models)."""
    wanted: dict[str, set[str]] = {kind: set() for kind in links}
    for target in targets_of(run) if run.metadata.get("targets") else []:
        for kind in wanted:
            if target.get(kind):
                wanted[kind].add(target[kind])
    return {kind: {n: links[kind][n] for n in sorted(names)} for kind, names in wanted.items()}


def render_run(
    env: Environment,
    data: SiteData,
    ctx: Context,
    entry: dict[str, Any],
    citation: cite.Citation,
    links: dict[str, dict[str, str]],
    with_charts: bool = True,
) -> str:
    run = data.runs[entry["id"]]
    rows = data.rows.get(run.run_id, [])
    matrix = entry["headline"]["warm_first_delta_ms_p50"]
    prompt_ids = sorted({p for values in matrix.values() for p in values})
    notes = None
    if any(f.rel == "run.md" for f in run.source.files):
        text = (run.source.path / "run.md").read_text(encoding="utf-8", errors="replace")
        notes = markdown(text, demote=2)
    end = run.ledger.end if run.ledger and run.ledger.end else {}
    names = published_names(run.source.path, run.source.files)
    # hrefs percent-encoded ("a?b#c d.txt" is a file name, not a query and a fragment)
    published_files = [
        dict(
            m,
            href="files/" + quote(names[m["path"]], safe="/"),
            as_text=names[m["path"]] != m["path"],
        )
        for m in entry["files"]
    ]
    return env.get_template("run.html").render(
        root="../../",
        archive=data.catalogue["archive"],
        run=entry,
        checks=data.checks[run.run_id]["checks"],
        harness=_describe_harness(run),
        git=_describe_git(run),
        targets=targets_of(run) if run.metadata.get("targets") else [],
        nodes=nodes_of(run),
        matrix=sorted(matrix.items()),
        prompt_ids=prompt_ids,
        cells=_cells(rows),
        charts=_run_charts(run.run_id, rows, data.chart_cache, ctx.comparisons.get(run.run_id))
        if with_charts
        else [],
        charts_omitted=bool(rows) and not with_charts,
        skips=run.ledger.skips if run.ledger else [],
        # Optional fields of result records may be absent: give every one a value.
        results=[dict.fromkeys(RESULT_FIELDS) | r for r in run.ledger.results]
        if run.ledger
        else [],
        notes=notes,
        published_files=published_files,
        interrupted_reason=end.get("interrupted_reason"),
        links=links,
        comparison=ctx.comparisons.get(run.run_id),
        spreads=ctx.comparisons[run.run_id].spreads if run.run_id in ctx.comparisons else {},
        metrics=METRICS,
        thresholds=ctx.thresholds,
        citation=citation,
    )


def render_site(data: SiteData) -> Outputs:
    """Every page and file of the site; a broken template is a BuildError naming it."""
    try:
        return _render_site(data)
    except TemplateSyntaxError as exc:
        where = _template_display(data.archive, exc.filename or exc.name or "?")
        raise BuildError(f"{where}:{exc.lineno}: template error: {exc.message}") from None
    except TemplateError as exc:
        raise BuildError(f"template error: {exc}") from None


def _template_display(archive: Path, filename: str) -> str:
    try:
        return str(Path(filename).resolve().relative_to(archive.resolve()))
    except ValueError:
        return filename


def code_digest(archive: Path) -> str:
    """sitegen's code version and the publisher's own templates: every page depends on both."""
    own = archive / "templates"
    files = sorted(p for p in own.rglob("*") if p.is_file()) if own.is_dir() else []
    return digest([code_version(), files_digest(own, files)])


def _render_site(data: SiteData) -> Outputs:
    env = environment(data.archive)
    outputs = Outputs(previous=data.previous)
    ctx = context(data)
    archive_info = data.catalogue["archive"]
    methodology = data.archive / "methodology.md"
    if not methodology.is_file():
        methodology = methodology_default()
    methodology_text = methodology.read_text(encoding="utf-8")
    # Every key starts from this: code, theme, settings and the archive's own texts.
    salt = digest([code_digest(data.archive), archive_info, data.config.values, methodology_text])
    # The catalogue names every run with its content digest, so together with
    # the salt it determines every page that depends on the whole archive.
    catalogue_bytes = data.catalogue_json or dumps(data.catalogue).encode("utf-8")
    whole = digest([salt, hashlib.sha256(catalogue_bytes).hexdigest()])
    files = list(data.files)
    _index_pages(env, outputs, ctx, archive_info, files, salt, whole)
    step = max(PROGRESS_EVERY, len(ctx.entries) // 10)
    for done, entry in enumerate(ctx.entries, start=1):
        _run_outputs(env, outputs, data, ctx, entry, salt)
        if data.progress is not None and done % step == 0:
            reused = outputs.previous.reused if outputs.previous is not None else 0
            data.progress(f"pages: {done}/{len(ctx.entries)} runs done ({reused} files reused)")
    _group_pages(env, outputs, data, ctx, archive_info, salt, whole)
    _changes_pages(env, outputs, ctx, archive_info, salt, whole)

    def page(rel: str, template: str, key: str, **values: Any) -> None:
        outputs.cached(
            rel,
            digest([key, rel, template]),
            lambda: env.get_template(template).render(archive=archive_info, **values),
        )

    # Methodology and 404 depend on the salt only; the data page on the downloads.
    page(
        "methodology/index.html",
        "page.html",
        salt,
        root="../",
        page_title="Methodology",
        body=anchored(markdown(methodology_text)),
    )
    for item in files:
        outputs.copy(item.rel, item.path, item.sha256)
    # The data page shows each file's sha256, which also depends on library versions.
    files_key = digest([whole, [(f.rel, f.sha256) for f in files]])
    page("data/index.html", "data.html", files_key, root="../", files=files)
    # Static hosts serve 404.html's bytes at any missing address, however deep:
    # its links start from the base URL's path, so they resolve from anywhere.
    page("404.html", "404.html", salt, root=site_path(archive_info.get("base_url") or ""))
    outputs.add("catalogue.json", catalogue_bytes)
    cff = cite.archive_cff(archive_info, ctx.entries, data.config.get("archive.repository"))
    outputs.add("CITATION.cff", cite.cff_yaml(cff))
    outputs.add(feeds.RUNS_FEED, feeds.runs_feed(archive_info, ctx.entries))
    outputs.add(
        feeds.REGRESSIONS_FEED,
        feeds.regressions_feed(archive_info, ctx.entries, ctx.comparisons),
    )
    pages = [rel for rel in outputs.data if rel.endswith(".html") and rel != "404.html"]
    lastmod = {
        f"{e['url']}index.html": feeds._time(e)
        for e in ctx.entries
        if e.get("finished_at_utc") or e.get("started_at_utc")
    }
    outputs.add("sitemap.xml", feeds.sitemap(archive_info, pages, lastmod))
    outputs.add("robots.txt", feeds.robots(archive_info))
    for rel in ASSETS:
        source = asset_source(data.archive, rel)
        outputs.copy(rel, source, sha256_file(source))
    return outputs


def _run_outputs(
    env: Environment,
    outputs: Outputs,
    data: SiteData,
    ctx: Context,
    entry: dict[str, Any],
    salt: str,
) -> None:
    """A run's page, its citation files and its published files.

    Keyed by the run's catalogue entry (which carries the digest of all its
    files), its checks, the group URLs and the comparison it shows: a new run
    elsewhere in the archive leaves this run's outputs as they were.
    """
    run = data.runs[entry["id"]]
    base = f"runs/{run.run_id}/"
    links = run_links(run, ctx.links)
    with_charts = run.run_id in ctx.charted
    rid = run.run_id
    key = digest(
        [
            salt,
            ctx.entry_keys[rid],
            data.checks[rid],
            links,
            ctx.comparison_keys.get(rid),
            with_charts,
        ]
    )
    made: list[cite.Citation] = []

    def citation() -> cite.Citation:
        if not made:
            made.append(cite.run_citation(entry, data.catalogue["archive"]))
        return made[0]

    outputs.cached(
        base + "index.html",
        key,
        lambda: render_run(env, data, ctx, entry, citation(), links, with_charts),
    )
    entry_key = ctx.entry_keys[rid]
    comparison = ctx.comparisons.get(rid)
    if entry.get("comparison") and comparison is not None:
        outputs.cached(
            base + "comparison.json",
            digest([salt, "comparison", ctx.comparison_keys.get(rid)]),
            lambda: dumps(comparison_json(comparison)),
        )
    outputs.cached(base + "cite.bib", digest([salt, "bib", entry_key]), lambda: citation().bibtex)
    outputs.cached(base + "CITATION.cff", digest([salt, "cff", entry_key]), lambda: citation().cff)
    shas = {m["path"]: m["sha256"] for m in run.manifest}
    for rel, name in published_names(run.source.path, run.source.files).items():
        outputs.copy(base + "files/" + name, run.source.path / rel, shas.get(rel))


def _changes_pages(
    env: Environment,
    outputs: Outputs,
    ctx: Context,
    archive_info: dict[str, Any],
    salt: str,
    whole: str,
) -> None:
    changed = [(ctx.by_id[rid], c) for rid, c in _newest_first(ctx) if c.changes]
    counts = _change_counts(ctx)
    for page in paginate("changes/", changed, CHANGES_PER_PAGE):
        values = {
            "root": page.root,
            "archive": archive_info,
            "comparisons": page.items,
            "page": page,
            "counts": counts if page.number == 0 else None,
            "thresholds": ctx.thresholds,
            "metrics": METRICS,
        }
        ids = [e["id"] for e, _c in page.items]
        key = whole if page.number == 0 else _block_key(salt, ctx, values, "comparisons", ids)

        def render(values: dict[str, Any] = values) -> str:
            return env.get_template("changes.html").render(**values)

        outputs.cached(page.rel, digest([key, page.rel]), render)


def _block_key(salt: str, ctx: Context, values: dict[str, Any], listed: str, ids: list[str]) -> str:
    """The key of a block page: its values, with the runs it lists (``values[listed]``)
    stood in for by their entries' and comparisons' digests."""
    runs = [(ctx.entry_keys[i], ctx.comparison_keys.get(i)) for i in ids]
    rest = {k: v for k, v in values.items() if k not in (listed, "page")}
    page = dataclasses.replace(values["page"], items=ids)  # the page, less its items
    return digest([salt, rest, page, runs])


def _newest_first(ctx: Context) -> list[tuple[str, RunComparison]]:
    return [(e["id"], ctx.comparisons[e["id"]]) for e in ctx.entries if e["id"] in ctx.comparisons]


def _change_counts(ctx: Context) -> dict[str, int]:
    rows = [r for c in ctx.comparisons.values() for r in c.rows]
    return {
        "compared": len(rows),
        "regressions": sum(1 for r in rows if r.verdict == REGRESSION),
        "wins": sum(1 for r in rows if r.verdict == WIN),
        "mixed": sum(1 for r in rows if r.verdict == MIXED),
        "unflagged": sum(1 for r in rows if r.comparable and r.beyond_threshold and not r.flagged),
        "not_comparable": sum(1 for r in rows if not r.comparable),
        "runs": sum(1 for c in ctx.comparisons.values() if c.rows),
    }


def _index_pages(
    env: Environment,
    outputs: Outputs,
    ctx: Context,
    archive_info: dict[str, Any],
    files: list[Download],
    salt: str,
    whole: str,
) -> None:
    """The front page (newest runs and the overview) and the blocks of older runs."""
    entries = ctx.entries
    counts = _change_counts(ctx)
    template = env.get_template("index.html")
    for page in paginate("", entries, ctx.per_page):
        front = page.number == 0
        values = {
            "root": page.root,
            "archive": archive_info,
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
        key = whole if front else _block_key(salt, ctx, values, "runs", ids)

        def render(values: dict[str, Any] = values) -> str:
            return template.render(**values)

        outputs.cached(page.rel, digest([key, page.rel]), render)


def _group_pages(
    env: Environment,
    outputs: Outputs,
    data: SiteData,
    ctx: Context,
    archive_info: dict[str, Any],
    salt: str,
    whole: str,
) -> None:
    group_template = env.get_template("group.html")
    for kind, groups in ctx.groups.items():
        folder = KINDS[kind]["folder"]

        def render_index(kind: str = kind, groups: list[Group] = groups) -> str:
            return env.get_template("groups.html").render(
                root="../",
                archive=archive_info,
                kind=kind,
                info=KINDS[kind],
                groups=groups,
                by_id=ctx.by_id,
            )

        outputs.cached(f"{folder}/index.html", digest([whole, folder]), render_index)
        for group in groups:
            runs = [ctx.by_id[rid] for rid in group.run_ids]
            for page in paginate(group.url, runs, ctx.per_page):
                if page.number == 0:
                    _group_front(group_template, outputs, data, ctx, group, page, salt)
                    continue
                values = {
                    "root": page.root,
                    "archive": archive_info,
                    "group": {"kind": group.kind, "name": group.name, "url": group.url},
                    "info": KINDS[kind],
                    "cells": [],
                    "runs": page.items,
                    "total": None,
                    "page": page,
                    "chart": None,
                    "links": {},
                    "series": [],
                    "score_charts": [],
                }
                ids = [e["id"] for e in page.items]

                def render_page(values: dict[str, Any] = values) -> str:
                    return group_template.render(**values)

                outputs.cached(
                    page.rel,
                    digest([page.rel, _block_key(salt, ctx, values, "runs", ids)]),
                    render_page,
                )


def _group_front(
    template: Template,
    outputs: Outputs,
    data: SiteData,
    ctx: Context,
    group: Group,
    page: Any,
    salt: str,
) -> None:
    """A group's own page: its cells, trend chart, scores and newest runs.

    The key holds the chart's data points, not its SVG, so the charts are only
    looked up (or rendered) when the page itself has to be rendered.
    """
    runs = [ctx.by_id[rid] for rid in group.run_ids]
    points = _with_bands(trend_points(group, ctx.by_id, data.rows, page.root), group, ctx)
    group_runs = [data.runs[rid] for rid in group.run_ids]
    series = scores.model_series(group.name, group_runs, ctx.by_id) if group.kind == "model" else []
    values = {
        "root": page.root,
        "archive": data.catalogue["archive"],
        "group": group,
        "info": KINDS[group.kind],
        "cells": _group_cells(group, runs, ctx),
        "runs": page.items,
        "total": len(runs),
        "page": page,
        "links": ctx.links,
        "series": series,
    }

    def render() -> str:
        chart = None
        svg = trend_svg(group, points, data.chart_cache)
        if svg is not None:
            chart = {"svg": Markup(svg), "runs": len({p["run"] for p in points})}
        score_charts = scores.series_charts(series, data.chart_cache)
        for c in score_charts:
            c["svg"] = Markup(c["svg"])
        return template.render(chart=chart, score_charts=score_charts, **values)

    outputs.cached(page.rel, digest([salt, page.rel, values, points]), render)


def _with_bands(points: list[dict[str, Any]], group: Group, ctx: Context) -> list[dict[str, Any]]:
    """The trend points, the TTFT p50 and tokens/s ones with the interquartile range of
    their run's calls (``lo``, ``hi``), which the trend chart draws as a band."""
    wanted = {("ttft", "p50"): "ttft", ("tps", "mean"): "tps"}
    cells = {group.label(c): c for c in group.cells}
    out = []
    for p in points:
        key = wanted.get((p["metric"], p["series"]))
        comparison = ctx.comparisons.get(p["run"])
        if key and comparison is not None and p["cell"] in cells:
            s = comparison.spreads.get(cells[p["cell"]], {}).get(p["prompt"], {}).get(key)
            if s is not None:
                p = p | {"lo": s.p25, "hi": s.p75}
        out.append(p)
    return out


def _group_cells(
    group: Group,
    runs: list[dict[str, Any]],
    ctx: Context,
) -> list[dict[str, Any]]:
    """Per cell: its target, how many runs measured it, and its latest warm values."""
    out = []
    indexed = [(e, ctx.warm_by_cell.get(e["id"], {})) for e in runs]
    for cell_id in sorted(group.cells):
        measured = [(e, cells[cell_id]) for e, cells in indexed if cell_id in cells]
        latest, warm = measured[0] if measured else (None, {})
        comparison = ctx.comparisons.get(latest["id"]) if latest else None
        out.append(
            {
                "cell_id": cell_id,
                "target": group.cells[cell_id],
                "runs": sum(1 for e in runs if cell_id in e["cells"]),
                "measured": len(measured),
                "latest": latest,
                "warm": [warm[p] for p in sorted(warm)],
                "spreads": comparison.spreads.get(cell_id, {}) if comparison else {},
            }
        )
    return out
