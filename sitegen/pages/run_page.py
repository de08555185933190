"""A run's page, its citation files, its comparison rows and its published files."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from markupsafe import Markup

from sitegen import charts, cite
from sitegen.archive import Run
from sitegen.catalogue import comparison_json, nodes_of, targets_of
from sitegen.compare import RunComparison
from sitegen.discover import published_names
from sitegen.jsonio import dumps
from sitegen.pages.context import Context
from sitegen.pages.notes import publisher_note
from sitegen.reuse import digest
from sitegen.verdicts import METRICS

RESULT_FIELDS = ("name", "metric", "value", "unit", "stderr", "higher_is_better", "model")


def run_outputs(ctx: Context, entry: dict[str, Any]) -> None:
    """A run's page, its citation files and its published files.

    Keyed by the run's catalogue entry (which carries the digest of all its
    files), its checks, the group URLs and the comparison it shows: a new run
    elsewhere in the archive leaves this run's outputs as they were.
    """
    data, outputs, salt = ctx.data, ctx.outputs, ctx.salt
    run = data.runs[entry["id"]]
    rid = run.run_id
    base = f"runs/{rid}/"
    links = run_links(run, ctx.links)
    with_charts = rid in ctx.charted
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
            made.append(cite.run_citation(entry, ctx.archive_info))
        return made[0]

    outputs.cached(
        base + "index.html",
        key,
        lambda: render_run(ctx, entry, citation(), links, with_charts),
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


def render_run(
    ctx: Context,
    entry: dict[str, Any],
    citation: cite.Citation,
    links: dict[str, dict[str, str]],
    with_charts: bool = True,
) -> str:
    data = ctx.data
    run = data.runs[entry["id"]]
    rows = data.rows.get(run.run_id, [])
    note = None
    if any(f.rel == "run.md" for f in run.source.files):
        text = (run.source.path / "run.md").read_text(encoding="utf-8", errors="replace")
        note = publisher_note(text, run.run_id, entry["title"])
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
    comparison = ctx.comparisons.get(run.run_id)
    return ctx.env.get_template("run.html").render(
        root="../../",
        archive=ctx.archive_info,
        run=entry,
        checks=data.checks[run.run_id]["checks"],
        harness=_describe_harness(run),
        git=_describe_git(run),
        targets=targets_of(run) if run.metadata.get("targets") else [],
        nodes=nodes_of(run),
        cells=_cells(rows),
        charts=_run_charts(data.chart_cache, comparison) if with_charts else [],
        charts_omitted=bool(rows) and not with_charts,
        skips=run.ledger.skips if run.ledger else [],
        # Optional fields of result records may be absent: give every one a value.
        results=[dict.fromkeys(RESULT_FIELDS) | r for r in run.ledger.results]
        if run.ledger
        else [],
        note=note,
        note_href=next((f["href"] for f in published_files if f["path"] == "run.md"), None),
        published_files=published_files,
        interrupted_reason=end.get("interrupted_reason"),
        links=links,
        comparison=comparison,
        spreads=comparison.spreads if comparison is not None else {},
        metrics=METRICS,
        thresholds=ctx.thresholds,
        citation=citation,
    )


def run_links(run: Run, links: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """The group URLs a run page links to (its targets' nodes, engines and models)."""
    wanted: dict[str, set[str]] = {kind: set() for kind in links}
    for target in targets_of(run) if run.metadata.get("targets") else []:
        for kind in wanted:
            if target.get(kind):
                wanted[kind].add(target[kind])
    return {kind: {n: links[kind][n] for n in sorted(names)} for kind, names in wanted.items()}


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


_CHARTS = (
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
)


def _run_charts(cache: Path | None, comparison: RunComparison | None) -> list[dict[str, Any]]:
    """Bar charts of the warm p50s, each bar with its interquartile range as an error bar."""
    spreads = comparison.spreads if comparison is not None else {}
    out = []
    for key, axis, title in _CHARTS:
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
