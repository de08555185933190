"""A run's page, its citation files, its comparison rows and its published files."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

from markupsafe import Markup

from sitegen import charts, cite, imported, vocabulary
from sitegen.archive import Run
from sitegen.catalogue import comparison_json, nodes_of, targets_of
from sitegen.compare import RunComparison
from sitegen.discover import published_names
from sitegen.groups import KINDS, Locator
from sitegen.jsonio import dumps_compact
from sitegen.numfmt import readable
from sitegen.pages.context import Context
from sitegen.pages.markup import labelled_headers
from sitegen.pages.notes import Note, publisher_note
from sitegen.reuse import digest
from sitegen.verdicts import METRICS

# What a run page job makes, in runs/<id>/ (see RunPage).
PAGE_FILE, BIB_FILE, CFF_FILE, COMPARISON_FILE = (
    "index.html",
    "cite.bib",
    "CITATION.cff",
    "comparison.json",
)
RESULT_FIELDS = ("name", "metric", "value", "unit", "stderr", "higher_is_better", "model")


@dataclass(frozen=True)
class RunPage:
    """Those of a run's page, citation files and ``comparison.json`` to make (``files``:
    path and key), for ``render_run_page``; made by the build or a worker. The page
    shows the citation and the comparison, so each is made once for all of them."""

    files: tuple[tuple[str, str], ...]
    entry: dict[str, Any]
    links: dict[str, dict[str, str]]
    with_charts: bool


def run_outputs(ctx: Context, entry: dict[str, Any], pages: list[RunPage]) -> None:
    """A run's citation files and published files, and its page and comparison: reused,
    or added to ``pages`` for the caller to render (many at once: ``sitegen.pages.pool``).

    Keyed by the run's catalogue entry (which carries the digest of all its
    files), its checks, the group URLs and the comparison it shows: a new run
    elsewhere in the archive leaves this run's outputs as they were.
    """
    data, outputs, salt = ctx.data, ctx.outputs, ctx.salt
    run = data.runs[entry["id"]]
    rid = run.run_id
    base = f"runs/{rid}/"
    links = run_links(run, ctx.locator)
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
    entry_key = ctx.entry_keys[rid]
    wanted = [
        (base + PAGE_FILE, key),
        (base + BIB_FILE, digest([salt, "bib", entry_key])),
        (base + CFF_FILE, digest([salt, "cff", entry_key])),
    ]
    if entry.get("comparison") and rid in ctx.comparisons:
        wanted.append(
            (base + COMPARISON_FILE, digest([salt, "comparison", ctx.comparison_keys.get(rid)]))
        )
    ctx.run_texts.hold(ctx.run_texts_key(rid))  # kept for the next build that shows them
    files = tuple((rel, k) for rel, k in wanted if not outputs.reuse(rel, k))
    if files:
        pages.append(RunPage(files, entry, links, with_charts))
    shas = {m["path"]: m["sha256"] for m in run.manifest}
    for rel, name in published_names(run.source.path, run.source.files).items():
        outputs.publish(base + "files/" + name, run.source.path / rel, shas.get(rel))


def render_run_page(ctx: Context, page: RunPage) -> tuple[tuple[str, ...], StoredTexts | None]:
    """The texts of ``page.files``, in their order: the citation and note (``run_texts``)
    and the comparison (read from the build state) taken once for all of them. With
    them, the run texts' stored form when they were made here, for the build process
    to keep (a worker's build state is a copy)."""
    entry = page.entry
    names = [rel.rsplit("/", 1)[1] for rel, _key in page.files]
    comparison = None
    if PAGE_FILE in names or COMPARISON_FILE in names:
        comparison = ctx.comparisons.get(entry["id"])
    texts: dict[str, str] = {}
    if COMPARISON_FILE in names:
        # Compact, like the site's other per-run data files: a quarter of the time of the
        # indented form and 40 % smaller (24 -> 14 KiB a run), about 5 s of CPU less
        # when every page of a 10,000-run site is built.
        texts[COMPARISON_FILE] = dumps_compact(comparison_json(comparison))
    made = None
    if set(names) - {COMPARISON_FILE}:
        citation, note, made = run_texts(ctx, entry)
        texts[BIB_FILE], texts[CFF_FILE] = citation.bibtex, citation.cff
        if PAGE_FILE in names:
            texts[PAGE_FILE] = render_run(
                ctx, entry, citation, note, page.links, comparison, page.with_charts
            )
    return tuple(texts[name] for name in names), made


# A run's citation fields (text, BibTeX, CFF, permalink), then its note's HTML and
# whether run.md is the runner's report (both None without a run.md).
StoredTexts = list[str | bool | None]


def run_texts(
    ctx: Context, entry: dict[str, Any]
) -> tuple[cite.Citation, Note | None, StoredTexts | None]:
    """A run's citation and publisher's note, from the build state when they are there
    (then with None), else made, with the form to store them in."""
    stored = ctx.run_texts.peek(ctx.run_texts_key(entry["id"]))
    if stored is not None:
        text, bibtex, cff, url, html, report = stored
        note = None if report is None else Note(None if html is None else Markup(html), report)
        return cite.Citation(text, bibtex, cff, url), note, None
    citation = cite.run_citation(entry, ctx.archive_info)
    note = _note(ctx.data.runs[entry["id"]], entry["title"])
    html = None if note is None or note.html is None else str(note.html)
    report = None if note is None else note.report
    made = [citation.text, citation.bibtex, citation.cff, citation.url, html, report]
    return citation, note, made


def _note(run: Run, title: str) -> Note | None:
    """The publisher's note from the run's ``run.md`` (None without one)."""
    if not any(f.rel == "run.md" for f in run.source.files):
        return None
    text = (run.source.path / "run.md").read_text(encoding="utf-8", errors="replace")
    note = publisher_note(text, run.run_id, title)
    if note.html is not None:  # raw field names in its tables read as the site's labels
        note = replace(note, html=labelled_headers(note.html, "../../"))
    return note


def render_run(
    ctx: Context,
    entry: dict[str, Any],
    citation: cite.Citation,
    note: Note | None,
    links: dict[str, dict[str, str]],
    comparison: RunComparison | None,
    with_charts: bool = True,
) -> str:
    data = ctx.data
    run = data.runs[entry["id"]]
    rows = data.rows.get(run.run_id, [])
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
    results = run.ledger.results if run.ledger else []
    source_context = imported.context(run.metadata, results, entry["files"], ctx.archive_info)
    if source_context and source_context["file"]:
        kept = source_context["file"]
        kept["href"] = next((f["href"] for f in published_files if f["path"] == kept["path"]), None)
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
        results=[dict.fromkeys(RESULT_FIELDS) | r for r in results],
        source_context=source_context,
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


def run_links(run: Run, locator: Locator) -> dict[str, dict[str, str]]:
    """The group URLs a run page links to (its targets' nodes, engines and models),
    by canonical name."""
    out: dict[str, dict[str, str]] = {kind: {} for kind in KINDS}
    for target in targets_of(run) if run.metadata.get("targets") else []:
        for kind in KINDS:
            url = locator.url(kind, run.run_id, target["cell_id"])
            if target.get(kind) and url:
                out[kind].setdefault(target[kind], url)
    return {kind: dict(sorted(names.items())) for kind, names in out.items()}


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
        vocabulary.header_words("ttft_ms", "p50", lead="Warm"),
        "Warm TTFT (time to first token), p50 with interquartile range, per cell and prompt",
    ),
    (
        "tps",  # the chart's id; its values are the decode metric's
        vocabulary.compared_words("decode", "p50", lead="Warm"),
        "Warm decode tokens/s, p50 with interquartile range, per cell and prompt",
    ),
)


def _run_charts(cache: Path | None, comparison: RunComparison | None) -> list[dict[str, Any]]:
    """Bar charts of the warm p50s, each bar with its interquartile range as an error bar."""
    spreads = comparison.spreads if comparison is not None else {}
    out = []
    for key, axis, title in _CHARTS:
        bars: list[dict[str, Any]] = [
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
        # The title is the figure's caption (a title in the SVG would widen it).
        chart = charts.bar_by_cell(bars, "value", axis, "")
        if chart is None:
            continue
        values = [
            f"{b['cell_id']} {b['prompt_id']}: {readable(b['value'])} "
            f"(IQR {readable(b['lo'])} to {readable(b['hi'])})"
            for b in bars
        ]
        description = f"{title}. " + "; ".join(values) + "."
        svg = charts.svg_chart(chart, f"chart-{key}", title, description, cache)
        out.append(
            {"svg": Markup(svg), "caption": f"{title}. The same values are in the tables below."}
        )
    return out
