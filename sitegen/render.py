"""Rendering: catalogue data -> HTML pages and copied files (an ``Outputs`` set).

Templates come from the publisher's ``templates/`` first, then the default
theme shipped in the package, one file at a time. Autoescape is on for every
template; the only markup passed through unescaped is what this module builds
itself (sanitised Markdown, chart SVG).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import nh3
import polars as pl
from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateError,
    TemplateSyntaxError,
)
from markdown_it import MarkdownIt
from markupsafe import Markup

from sitegen import __version__, charts, cite, feeds, scores
from sitegen.archive import Run
from sitegen.catalogue import nodes_of, targets_of
from sitegen.compare import METRICS, RunComparison, Thresholds, all_comparisons
from sitegen.config import Config, defaults
from sitegen.downloads import Download, downloads
from sitegen.exceptions import BuildError
from sitegen.jsonio import dumps
from sitegen.output import Outputs
from sitegen.views import KINDS, Group, build_groups, group_links, paginate, trend_points, trend_svg

ASSETS = ("assets/style.css", "assets/table.js", "assets/search.js")
CHANGES_PER_PAGE = 25  # runs with a regression or a win, per page of changes/
SAFE_SCHEMES = {"http", "https", "mailto"}
RESULT_FIELDS = ("name", "metric", "value", "unit", "stderr", "higher_is_better", "model")


def default_theme() -> Path:
    """The theme inside the installed package, else the repository's ``templates/``."""
    packaged = Path(str(resources.files("sitegen"))) / "templates"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "templates"


def default_methodology() -> Path:
    packaged = Path(str(resources.files("sitegen"))) / "default_methodology.md"
    if packaged.is_file():
        return packaged
    return Path(__file__).resolve().parent.parent / "methodology.md"


def environment(archive: Path) -> Environment:
    loaders = []
    own = archive / "templates"
    if own.is_dir() and own.resolve() != default_theme().resolve():
        loaders.append(FileSystemLoader(own))
    loaders.append(FileSystemLoader(default_theme()))
    env = Environment(
        loader=ChoiceLoader(loaders),
        autoescape=True,
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["version"] = __version__
    return env


def asset_source(archive: Path, rel: str) -> Path:
    own = archive / "templates" / rel
    return own if own.is_file() and not own.is_symlink() else default_theme() / rel


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


@dataclass(frozen=True)
class SiteData:
    """Everything the renderer needs, as plain data computed earlier in the pipeline."""

    archive: Path
    catalogue: dict[str, Any]
    runs: dict[str, Run]
    checks: dict[str, dict[str, Any]]
    rows: dict[str, list[dict[str, Any]]]
    chart_cache: Path | None
    calls: pl.DataFrame | None = None  # every call record, for the downloads
    config: Config = field(default_factory=defaults)
    extra_downloads: tuple[Download, ...] = ()  # e.g. the SQLite export


@dataclass(frozen=True)
class Context:
    """What several pages share, computed once per build."""

    entries: list[dict[str, Any]]  # catalogue runs, newest first
    by_id: dict[str, dict[str, Any]]
    groups: dict[str, list[Group]]
    links: dict[str, dict[str, str]]  # kind -> name -> group URL from the site root
    comparisons: dict[str, RunComparison]
    thresholds: Thresholds
    per_page: int


def context(data: SiteData) -> Context:
    entries = data.catalogue["runs"]
    groups = build_groups(entries, data.runs)
    thresholds = Thresholds.from_config(data.config)
    return Context(
        entries=entries,
        by_id={e["id"]: e for e in entries},
        groups=groups,
        links=group_links(groups),
        comparisons=all_comparisons(list(data.runs.values()), data.rows, thresholds),
        thresholds=thresholds,
        per_page=int(data.config.get("site.runs_per_page")),
    )


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
    run_id: str, rows: list[dict[str, Any]], cache: Path | None
) -> list[dict[str, Any]]:
    specs = [
        (
            "ttft",
            "first_delta_ms_p50",
            "warm first_delta_ms p50 (ms)",
            "Warm time to first delta, p50, per cell and prompt",
        ),
        (
            "tps",
            "tokens_per_sec_mean",
            "warm tokens/s (mean)",
            "Warm decode throughput, mean tokens per second, per cell and prompt",
        ),
    ]
    out = []
    for key, column, axis, title in specs:
        chart = charts.bar_by_cell(rows, column, axis, title)
        if chart is None:
            continue
        values = [
            f"{r['cell_id']} {r['prompt_id']}: {r[column]:,.1f}"
            for r in rows
            if r["phase"] == "warm" and r.get(column) is not None
        ]
        description = f"{title}. " + "; ".join(values) + "."
        svg = charts.svg_chart(chart, f"chart-{key}", title, description, cache)
        out.append(
            {"svg": Markup(svg), "caption": f"{title}. The same values are in the tables below."}
        )
    return out


def render_run(
    env: Environment, data: SiteData, ctx: Context, entry: dict[str, Any], citation: cite.Citation
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
        charts=_run_charts(run.run_id, rows, data.chart_cache),
        skips=run.ledger.skips if run.ledger else [],
        # Optional fields of result records may be absent: give every one a value.
        results=[dict.fromkeys(RESULT_FIELDS) | r for r in run.ledger.results]
        if run.ledger
        else [],
        notes=notes,
        interrupted_reason=end.get("interrupted_reason"),
        links=ctx.links,
        comparison=ctx.comparisons.get(run.run_id),
        by_id=ctx.by_id,
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


def _render_site(data: SiteData) -> Outputs:
    env = environment(data.archive)
    outputs = Outputs()
    ctx = context(data)
    archive_info = data.catalogue["archive"]
    files = downloads(data.calls) if data.calls is not None else []
    files += list(data.extra_downloads)
    _index_pages(env, outputs, ctx, archive_info, files)
    for entry in ctx.entries:
        run = data.runs[entry["id"]]
        base = f"runs/{run.run_id}/"
        citation = cite.run_citation(entry, archive_info)
        outputs.add(base + "index.html", render_run(env, data, ctx, entry, citation))
        outputs.add(base + "cite.bib", citation.bibtex)
        outputs.add(base + "CITATION.cff", citation.cff)
        for f in run.source.files:
            outputs.copy(base + "files/" + f.rel, run.source.path / f.rel)
    _group_pages(env, outputs, data, ctx, archive_info)
    changed = [(ctx.by_id[rid], c) for rid, c in _newest_first(ctx) if c.regressions or c.wins]
    for page in paginate("changes/", changed, CHANGES_PER_PAGE):
        outputs.add(
            page.rel,
            env.get_template("changes.html").render(
                root=page.root,
                archive=archive_info,
                comparisons=page.items,
                page=page,
                counts=_change_counts(ctx),
                thresholds=ctx.thresholds,
                metrics=METRICS,
            ),
        )
    methodology = data.archive / "methodology.md"
    if not methodology.is_file():
        methodology = default_methodology()
    outputs.add(
        "methodology/index.html",
        env.get_template("page.html").render(
            root="../",
            archive=archive_info,
            page_title="Methodology",
            body=markdown(methodology.read_text(encoding="utf-8")),
        ),
    )
    for item in files:
        outputs.add(item.rel, item.content)
    outputs.add(
        "data/index.html",
        env.get_template("data.html").render(root="../", archive=archive_info, files=files),
    )
    outputs.add("404.html", env.get_template("404.html").render(root="", archive=archive_info))
    outputs.add("catalogue.json", dumps(data.catalogue))
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
        outputs.copy(rel, asset_source(data.archive, rel))
    return outputs


def _newest_first(ctx: Context) -> list[tuple[str, RunComparison]]:
    return [(e["id"], ctx.comparisons[e["id"]]) for e in ctx.entries if e["id"] in ctx.comparisons]


def _change_counts(ctx: Context) -> dict[str, int]:
    rows = [r for c in ctx.comparisons.values() for r in c.rows]
    return {
        "compared": len(rows),
        "regressions": sum(1 for r in rows if r.regressions),
        "wins": sum(1 for r in rows if r.wins),
        "not_comparable": sum(1 for r in rows if not r.comparable),
        "runs": sum(1 for c in ctx.comparisons.values() if c.rows),
    }


def _index_pages(
    env: Environment,
    outputs: Outputs,
    ctx: Context,
    archive_info: dict[str, Any],
    files: list[Download],
) -> None:
    entries = ctx.entries
    synthetic = sum(1 for e in entries if e["synthetic"])
    for page in paginate("", entries, ctx.per_page):
        outputs.add(
            page.rel,
            env.get_template("index.html").render(
                root=page.root,
                archive=archive_info,
                runs=page.items,
                page=page,
                total=len(entries),
                synthetic_count=synthetic,
                files=files,
                groups=ctx.groups,
                kinds=KINDS,
                counts=_change_counts(ctx),
            ),
        )


def _group_pages(
    env: Environment,
    outputs: Outputs,
    data: SiteData,
    ctx: Context,
    archive_info: dict[str, Any],
) -> None:
    for kind, groups in ctx.groups.items():
        folder = KINDS[kind]["folder"]
        outputs.add(
            f"{folder}/index.html",
            env.get_template("groups.html").render(
                root="../",
                archive=archive_info,
                kind=kind,
                info=KINDS[kind],
                groups=groups,
                by_id=ctx.by_id,
            ),
        )
        for group in groups:
            runs = [ctx.by_id[rid] for rid in group.run_ids]
            for page in paginate(group.url, runs, ctx.per_page):
                chart = None
                series: list[scores.Series] = []
                score_charts: list[dict[str, Any]] = []
                if page.number == 1:
                    points = trend_points(group, ctx.by_id, data.rows, page.root)
                    svg = trend_svg(group, points, data.chart_cache)
                    if svg is not None:
                        drawn = len({p["run"] for p in points})
                        chart = {"svg": Markup(svg), "runs": drawn}
                    if kind == "model":
                        series, score_charts = scores.model_scores(
                            group.name,
                            [data.runs[rid] for rid in group.run_ids],
                            ctx.by_id,
                            data.chart_cache,
                        )
                        for c in score_charts:
                            c["svg"] = Markup(c["svg"])
                outputs.add(
                    page.rel,
                    env.get_template("group.html").render(
                        root=page.root,
                        archive=archive_info,
                        group=group,
                        info=KINDS[kind],
                        cells=_group_cells(group, runs, data.rows),
                        runs=page.items,
                        total=len(runs),
                        page=page,
                        chart=chart,
                        links=ctx.links,
                        series=series,
                        score_charts=score_charts,
                    ),
                )


def _group_cells(
    group: Group, runs: list[dict[str, Any]], rows: dict[str, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """Per cell: its target, how many runs measured it, and its latest warm values."""
    out = []
    for cell_id in sorted(group.cells):
        measured = [e for e in runs if any(r["cell_id"] == cell_id for r in rows.get(e["id"], []))]
        latest = measured[0] if measured else None
        warm = (
            {
                r["prompt_id"]: r
                for r in rows.get(latest["id"], [])
                if r["cell_id"] == cell_id and r["phase"] == "warm"
            }
            if latest
            else {}
        )
        out.append(
            {
                "cell_id": cell_id,
                "target": group.cells[cell_id],
                "runs": sum(1 for e in runs if cell_id in e["cells"]),
                "measured": len(measured),
                "latest": latest,
                "warm": [warm[p] for p in sorted(warm)],
            }
        )
    return out
