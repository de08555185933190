"""``catalogue.json``: the archive's machine-readable index.

Byte-identical on rebuild: keys sorted, runs in a fixed order, no build
timestamp, floats rounded where they are computed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from sitegen.aggregate import cell_matrix
from sitegen.archive import Run
from sitegen.config import Config
from sitegen.entities import canonical, canonical_target
from sitegen.figures import Key, key_figures
from sitegen.reuse import digest
from sitegen.verdicts import row_json

if TYPE_CHECKING:
    from sitegen.buildstate import BuildState
    from sitegen.compare import Comparisons, Outline, RunComparison

SCHEMA_VERSION = "1.0"


def split_cell(cell_id: str) -> dict[str, str]:
    """``node:engine:model`` (the model may itself hold colons)."""
    parts = cell_id.split(":", 2)
    if len(parts) < 3:
        return {"node": "", "engine": "", "model": cell_id}
    return {"node": parts[0], "engine": parts[1], "model": parts[2]}


TARGET_FIELDS = ("node", "engine", "engine_version", "model", "model_digest", "quantization")
NODE_FIELDS = ("cpu", "cores", "gpu", "memory_gb", "os")


def targets_of(run: Run) -> list[dict[str, Any]]:
    """The run's targets, every field present (None when unknown).

    From metadata when it declares them, else inferred from the planned cells.
    Node, engine and model carry their canonical names (sitegen.entities), with
    the names as recorded under ``recorded`` where they differ.
    """
    cached = run.derived.get("targets")
    if cached is None:
        cached = run.derived["targets"] = _targets(run)
    return [dict(t) for t in cached]  # callers may add keys; the cache stays as read


def _targets(run: Run) -> list[dict[str, Any]]:
    declared = run.metadata.get("targets") or [
        {"cell_id": c} for c in sorted(set(run.meta.get("cells_planned") or []))
    ]
    out = []
    for t in declared:
        target = dict.fromkeys(TARGET_FIELDS) | split_cell(t["cell_id"])
        target |= {k: v for k, v in t.items() if v is not None}
        out.append(canonical_target(target, run.aliases, run.source_format))
    return sorted(out, key=lambda t: t["cell_id"])


def nodes_of(run: Run) -> list[tuple[str, dict[str, Any]]]:
    """(canonical name, hardware) pairs, every field present (None when unknown);
    a node whose name was not recorded is left out (it describes nothing to link)."""
    nodes = run.metadata.get("nodes") or {}
    out: dict[str, dict[str, Any]] = {}
    for raw in sorted(nodes):
        name = canonical("node", raw, run.aliases)
        if name is not None and isinstance(nodes[raw], dict):
            out[name] = out.get(name, dict.fromkeys(NODE_FIELDS)) | {
                k: v for k, v in nodes[raw].items() if v is not None
            }
    return sorted(out.items())


def names_recorded(run: Run, targets: list[dict[str, Any]]) -> dict[str, Any]:
    """``{"names_recorded": kind -> recorded name -> canonical name}`` for the names the
    run recorded differently from their canonical form (None: a placeholder for a
    name not recorded); empty when every name is canonical."""
    found: dict[str, dict[str, str | None]] = {}
    for target in targets:
        for kind, raw in (target.get("recorded") or {}).items():
            found.setdefault(kind + "s", {})[raw] = target.get(kind)
    for raw in run.metadata.get("nodes") or {}:
        name = canonical("node", raw, run.aliases)
        if name != raw:
            found.setdefault("nodes", {})[raw] = name
    if not found:
        return {}
    return {"names_recorded": {k: dict(sorted(v.items())) for k, v in sorted(found.items())}}


def run_url(run_id: str) -> str:
    return f"runs/{run_id}/"


def sort_key(run: Run) -> tuple[str, str]:
    return (run.started_at or "", run.run_id)


def entry(
    run: Run,
    check: dict[str, Any],
    rows: list[dict[str, Any]],
    superseded_by: list[str],
    retraction: dict[str, str] | None,
    comparison: Outline | None = None,
    figures: dict[Key, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    md = run.metadata
    targets = targets_of(run)
    ledger = run.ledger
    skipped = sorted({s["cell_id"] for s in ledger.skips}) if ledger else []
    prompt_ids = sorted({r["prompt_id"] for r in rows} | set((md.get("prompts") or {}).keys()))
    out = {
        "id": run.run_id,
        "title": md["title"],
        "description": md.get("description") or "",
        "started_at_utc": run.started_at,
        "finished_at_utc": run.finished_at,
        "status": run.status,
        "synthetic": run.synthetic,
        "baseline": bool(md.get("baseline")),
        "supersedes": md.get("supersedes"),
        "superseded_by": superseded_by,
        "retracted": retraction,
        "source": md.get("source"),
        "tags": sorted(md.get("tags") or []),
        "authors": list(md.get("authors") or []),
        "license": md.get("license"),
        "reproducibility": {"verdict": check["verdict"], "reasons": check["reasons"]},
        "cells": [t["cell_id"] for t in targets],
        "cells_skipped": skipped,
        "models": sorted({t["model"] for t in targets if t.get("model")}),
        "engines": sorted({t["engine"] for t in targets if t.get("engine")}),
        "nodes": sorted({t["node"] for t in targets if t.get("node")}),
        **names_recorded(run, targets),
        "prompt_ids": prompt_ids,
        "counts": {
            "calls": ledger.calls if ledger else 0,
            "errors": ledger.errors if ledger else 0,
            "skipped": len(ledger.skips) if ledger else 0,
            "results": len(ledger.results) if ledger else 0,
        },
        "headline": {
            "warm_ttft_ms_p50": cell_matrix(rows),
            "warm_first_delta_ms_p50": cell_matrix(rows, "first_delta_ms_p50"),
        },
        "comparison": comparison_summary(run.run_id, comparison),
        "files": run.manifest,
        "digest": run.digest,
        "url": run_url(run.run_id),
    }
    by_cell = {t["cell_id"]: t for t in targets}
    for cell, _prompt in figures or {}:
        by_cell.setdefault(cell, split_cell(cell))
    prompts = md.get("prompts") or run.meta.get("prompts") or {}
    out["key_figures"] = key_figures(out, by_cell, prompts, run.concurrency, figures or {})
    return out


def comparison_json(comparison: RunComparison | None) -> dict[str, Any] | None:
    """The run's verdicts against its baselines, row by row, as shown on its page
    (published as ``runs/<id>/comparison.json``; None: no warm calls)."""
    if comparison is None or not (comparison.rows or comparison.without_baseline):
        return None
    return {
        "rows": [row_json(r) for r in comparison.rows],
        "without_baseline": list(comparison.without_baseline),
    }


def comparison_url(run_id: str) -> str:
    return run_url(run_id) + "comparison.json"


def comparison_summary(run_id: str, outline: Outline | None) -> dict[str, Any] | None:
    """What the catalogue says of a run's comparison: how many rows got each verdict,
    against which baselines, and where the rows are. The rows themselves (tens of
    kilobytes a run) live in their own file, so the catalogue stays an index."""
    if outline is None or not (outline.rows or outline.without_baseline):
        return None
    return {
        "verdicts": dict(outline.verdicts),
        "baselines": list(outline.baselines),
        "without_baseline": list(outline.without_baseline),
        "url": comparison_url(run_id),
    }


def build_catalogue(
    runs: list[Run],
    checks: dict[str, dict[str, Any]],
    rows: Mapping[str, list[dict[str, Any]]],
    config: Config,
    retractions: dict[str, dict[str, str]] | None = None,
    comparisons: Comparisons | None = None,
    figures: Callable[[set[str]], dict[str, dict[Key, dict[str, Any]]]] | None = None,
    state: BuildState | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """The whole catalogue as plain data (runs newest first, ties by id), and the
    key of each run's entry in that order (empty without ``state``).

    ``figures(run_ids)``: those runs' key figures per cell and prompt (sitegen.figures).
    With ``state``, each entry is kept under a key of all it is made from (the
    run's files and id, the publisher's aliases, its checklist, the runs that
    supersede it, its retraction and its comparison's key): a build that adds a
    run makes that run's entry, and the entries whose inputs it changed.
    """
    ordered = sorted(runs, key=sort_key, reverse=True)
    retractions = retractions or {}
    successors: dict[str, list[str]] = {}
    for run in sorted(runs, key=sort_key):
        if run.metadata.get("supersedes"):
            successors.setdefault(run.metadata["supersedes"], []).append(run.run_id)
    memo = state.memo("catalogue-entry") if state is not None else None
    keys: list[str] = []
    entries: dict[str, dict[str, Any]] = {}
    if memo is not None:
        for r in ordered:
            rid = r.run_id
            key = digest(
                [
                    rid,
                    r.digest,
                    r.aliases.key,
                    checks[rid],
                    successors.get(rid, []),
                    retractions.get(rid),
                    comparisons.key(rid) if comparisons is not None else None,
                ]
            )
            keys.append(key)
            stored = memo.get(key)
            if isinstance(stored, dict):
                entries[rid] = stored
    missing = {r.run_id for r in ordered} - set(entries)
    made = figures(missing) if figures is not None and missing else {}
    for i, r in enumerate(ordered):
        if r.run_id not in missing:
            continue
        entries[r.run_id] = entry(
            r,
            checks[r.run_id],
            rows.get(r.run_id, []),
            successors.get(r.run_id, []),
            retractions.get(r.run_id),
            comparisons.outline(r.run_id) if comparisons is not None else None,
            made.get(r.run_id),
        )
        if memo is not None:
            memo.put(keys[i], entries[r.run_id])
    if memo is not None:
        memo.release()  # read by this step only
    catalogue = {
        "schema_version": SCHEMA_VERSION,
        "archive": {
            "title": config.get("archive.title"),
            "description": config.get("archive.description"),
            "base_url": config.get("archive.base_url"),
            "license": config.get("archive.license"),
            "authors": config.get("archive.authors"),
        },
        "runs": [entries[r.run_id] for r in ordered],
    }
    return catalogue, keys
