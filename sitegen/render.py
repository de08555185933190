"""Rendering: catalogue data -> HTML pages and copied files (an ``Outputs`` set).

Templates come from the publisher's ``templates/`` first, then the default
theme shipped in the package, one file at a time. Autoescape is on for every
template; the only markup passed through unescaped is what this module builds
itself (sanitised Markdown, chart SVG).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import nh3
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

from sitegen import __version__, charts
from sitegen.archive import Run
from sitegen.catalogue import nodes_of, targets_of
from sitegen.exceptions import BuildError
from sitegen.jsonio import dumps
from sitegen.output import Outputs

ASSETS = ("assets/style.css", "assets/table.js")
SAFE_SCHEMES = {"http", "https", "mailto"}


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


def markdown(text: str) -> Markup:
    """Markdown with raw HTML off, then sanitised: links only http, https, mailto."""
    html = _MD.render(text)
    clean = nh3.clean(html, url_schemes=SAFE_SCHEMES, link_rel="noopener noreferrer nofollow")
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


def render_run(env: Environment, data: SiteData, entry: dict[str, Any]) -> str:
    run = data.runs[entry["id"]]
    rows = data.rows.get(run.run_id, [])
    matrix = entry["headline"]["warm_first_delta_ms_p50"]
    prompt_ids = sorted({p for values in matrix.values() for p in values})
    notes = None
    if any(f.rel == "run.md" for f in run.source.files):
        notes = markdown((run.source.path / "run.md").read_text(encoding="utf-8", errors="replace"))
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
        results=run.ledger.results if run.ledger else [],
        notes=notes,
        interrupted_reason=end.get("interrupted_reason"),
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
    archive_info = data.catalogue["archive"]
    entries = data.catalogue["runs"]
    outputs.add(
        "index.html",
        env.get_template("index.html").render(
            root="",
            archive=archive_info,
            runs=entries,
            synthetic_count=sum(1 for e in entries if e["synthetic"]),
        ),
    )
    for entry in entries:
        run = data.runs[entry["id"]]
        base = f"runs/{run.run_id}/"
        outputs.add(base + "index.html", render_run(env, data, entry))
        for f in run.source.files:
            outputs.copy(base + "files/" + f.rel, run.source.path / f.rel)
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
    outputs.add("catalogue.json", dumps(data.catalogue))
    for rel in ASSETS:
        outputs.copy(rel, asset_source(data.archive, rel))
    return outputs
