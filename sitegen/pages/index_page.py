"""The front page (the latest results, the latest changes, the newest runs) and the
fixed blocks of older runs."""

from __future__ import annotations

from typing import Any

from sitegen.catalogue import targets_of
from sitegen.figures import prompt_order
from sitegen.groups import KINDS, paginate
from sitegen.pages.context import Context
from sitegen.reuse import digest
from sitegen.verdicts import FLAGGED, REGRESSION, SMALL, WIN

LATEST_CHANGES = 10  # flagged rows on the front page; the changes page lists them all
COMBINATION_RUNS = 1  # runs named per combination without a reliable measurement

Combination = tuple[str, str, str]  # (model, node, engine)


def _combination(row: dict[str, Any]) -> Combination:
    return (row.get("model") or "", row.get("node") or "", row.get("engine") or "")


def latest_results(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The newest reliable measurement of each model x node x engine, per concurrency and
    prompt (``entries`` newest first): the row of the catalogue's ``key_figures``, its run."""
    best: dict[tuple[str, str, str, int, str], dict[str, Any]] = {}
    for entry in entries:
        figures = entry["key_figures"]
        if not figures["reliable"]:
            continue
        for row in figures["rows"]:
            if not row["n"]:
                continue
            # Unrecorded concurrency is one request at a time, as the verdicts read it.
            key = (*_combination(row), figures["concurrency"] or 1, row["prompt_id"])
            best.setdefault(
                key, {"entry": entry, "row": row, "concurrency": figures["concurrency"]}
            )
    return [
        best[k] for k in sorted(best, key=lambda k: (k[0], k[1], k[2], k[3], prompt_order(k[4])))
    ]


def without_reliable(
    entries: list[dict[str, Any]], ctx: Context, measured: set[Combination]
) -> list[dict[str, Any]]:
    """Every model x node x engine some run names but none measured reliably, with the
    newest runs that name it and why each does not count."""
    named: dict[Combination, list[dict[str, Any]]] = {}
    for entry in entries:
        run = ctx.data.runs.get(entry["id"])
        targets = targets_of(run) if run is not None else []
        combos = {_combination(t) for t in targets}
        combos |= {_combination(r) for r in entry["key_figures"]["rows"]}
        figures = entry["key_figures"]
        warm = {_combination(r) for r in figures["rows"] if r["n"]}
        skipped = set(entry.get("cells_skipped") or [])
        for combo in sorted(combos - measured):
            why = list(figures["not_reliable_because"])
            if not why and combo not in warm:
                cells = {t["cell_id"] for t in targets if _combination(t) == combo}
                why = ["skipped: failed its health check" if cells & skipped else "no warm calls"]
            named.setdefault(combo, []).append({"entry": entry, "why": why})
    return [
        {
            "model": combo[0],
            "node": combo[1],
            "engine": combo[2],
            "runs": runs[:COMBINATION_RUNS],
            "more": max(0, len(runs) - COMBINATION_RUNS),
        }
        for combo, runs in sorted(named.items())
    ]


def latest_changes(ctx: Context, limit: int = LATEST_CHANGES) -> dict[str, Any]:
    """The newest flagged rows (regression, win, mixed) of runs whose numbers stand (not
    retracted or superseded), newest run first, strongest evidence first within a run."""
    rows: list[dict[str, Any]] = []
    left_out = total = 0
    for rid, outline in ctx.newest_first():
        entry = ctx.by_id[rid]
        count = sum(outline.verdicts.get(v, 0) for v in FLAGGED)
        if entry.get("retracted") or entry.get("superseded_by"):
            left_out += count
            continue
        total += count
        if count and len(rows) < limit:  # the rows of the few runs shown are decoded
            rows_of = ctx.comparisons[rid].rows
            flagged = sorted((r for r in rows_of if r.verdict in FLAGGED), key=_evidence)
            for row in flagged:
                shown = [m for m in row.metrics if m.status in (REGRESSION, WIN, SMALL)]
                rows.append({"entry": entry, "row": row, "metrics": shown})
    return {"rows": rows[:limit], "total": total, "left_out": left_out}


def _evidence(row: Any) -> Any:
    return row.evidence_key()


def index_pages(ctx: Context) -> None:
    entries = ctx.entries
    counts = ctx.change_counts()
    files = list(ctx.data.files)
    template = ctx.env.get_template("index.html")
    latest = latest_results(entries)
    for item in latest:  # the exact entity pages (one model name may be several files)
        rid, cell = item["entry"]["id"], item["row"]["cell_id"]
        item["pages"] = {k: ctx.locator.url(k, rid, cell) for k in ("model", "node", "engine")}
    measured = {_combination(item["row"]) for item in latest}
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
            "latest": latest if front else [],
            "unmeasured": without_reliable(entries, ctx, measured) if front else [],
            "changes": latest_changes(ctx) if front else None,
        }
        # A block's content is its own runs: key it by them, not by the archive.
        ids = [e["id"] for e in page.items]
        key = ctx.whole if front else ctx.block_key(values, "runs", ids)

        def render(values: dict[str, Any] = values) -> str:
            return template.render(**values)

        ctx.outputs.cached(page.rel, digest([key, page.rel]), render)
