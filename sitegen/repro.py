"""The reproducibility check: section 8 of the harness methodology, per run.

A run that fails an item is still published, marked ``unreliable: <reasons>``
wherever it appears; ``--strict`` turns that into a build failure. Meta-only
runs are checked on what they hold.
"""

from __future__ import annotations

from typing import Any

from sitegen.archive import Run

CHECKS: tuple[tuple[str, str], ...] = (
    ("git_sha", "Git commit of the harness recorded"),
    ("git_clean", "Working tree clean, or every dirty file documented"),
    ("harness_version", "Harness version recorded"),
    ("engine_versions", "Engine version recorded for every target"),
    ("model_digests", "Model digest recorded for every target"),
    ("times", "Start and finish times recorded"),
    ("load_avg", "Load average at start at most {max_load}"),
    ("prompts_frozen", "Prompt texts identical to earlier runs' (frozen prompts)"),
)


def _first(*values: Any) -> Any:
    for value in values:
        if value not in (None, "", []):
            return value
    return None


def prompt_hashes(run: Run) -> dict[str, str]:
    """prompt id -> sha256 of its text, from metadata, else from the ledger meta."""
    declared = run.metadata.get("prompts") or run.meta.get("prompts") or {}
    return {
        pid: p["sha256"] for pid, p in declared.items() if isinstance(p, dict) and p.get("sha256")
    }


def frozen_prompt_conflicts(runs: list[Run]) -> dict[str, list[str]]:
    """Per run id, the prompt ids whose text differs from the earliest run that used them.

    Frozen prompts are never edited; a new text needs a new id. The earliest
    run (by start time, then id) defines each prompt id's text.
    """
    ordered = sorted(runs, key=lambda r: (r.started_at or "", r.run_id))
    first: dict[str, tuple[str, str]] = {}
    conflicts: dict[str, list[str]] = {}
    for run in ordered:
        for pid, digest in sorted(prompt_hashes(run).items()):
            if pid not in first:
                first[pid] = (digest, run.run_id)
            elif first[pid][0] != digest:
                conflicts.setdefault(run.run_id, []).append(
                    f"{pid} differs from its text in run {first[pid][1]}"
                )
    return conflicts


def check_run(run: Run, *, max_load: float, prompt_conflicts: list[str]) -> dict[str, Any]:
    """The checklist for one run, item by item, with a verdict and its reasons."""
    md, meta = run.metadata, run.meta
    git = md.get("git") or {}
    items: list[dict[str, Any]] = []

    def item(key: str, ok: bool, detail: str) -> None:
        label = dict(CHECKS)[key].format(max_load=f"{max_load:g}")
        items.append({"id": key, "label": label, "ok": ok, "detail": detail})

    sha = _first(git.get("sha"), meta.get("git_sha"))
    item("git_sha", bool(sha), f"commit {sha}" if sha else "git sha not recorded")

    dirty = _first(git.get("dirty"), meta.get("git_dirty"))
    files = _first(git.get("dirty_files"), meta.get("git_dirty_files")) or []
    note = _first(git.get("dirty_note"), meta.get("git_dirty_note"))
    if dirty is None:
        item("git_clean", False, "tree state (clean or dirty) not recorded")
    elif not dirty:
        item("git_clean", True, "tree clean")
    elif files or note:
        item("git_clean", True, f"tree dirty, documented ({len(files)} file(s) listed)")
    else:
        item("git_clean", False, "tree dirty and the dirty files are not documented")

    harness = md.get("harness") or {}
    version = _first(harness.get("version"), meta.get("harness_version"))
    item(
        "harness_version",
        version is not None,
        f"{harness.get('name') or 'harness'} {version}"
        if version is not None
        else "harness version not recorded",
    )

    targets = md.get("targets") or []
    if not targets:
        item("engine_versions", False, "no targets recorded")
        item("model_digests", False, "no targets recorded")
    else:
        no_engine = sorted(t["cell_id"] for t in targets if not t.get("engine_version"))
        no_digest = sorted(t["cell_id"] for t in targets if not t.get("model_digest"))
        item(
            "engine_versions",
            not no_engine,
            "engine version missing for " + ", ".join(no_engine)
            if no_engine
            else f"{len(targets)} target(s)",
        )
        item(
            "model_digests",
            not no_digest,
            "model digest missing for " + ", ".join(no_digest)
            if no_digest
            else f"{len(targets)} target(s)",
        )

    start, finish = run.started_at, run.finished_at
    missing = [name for name, value in (("start", start), ("finish", finish)) if not value]
    item(
        "times",
        not missing,
        f"{start} to {finish}" if not missing else " and ".join(missing) + " time not recorded",
    )

    load = _first(md.get("load_avg_start"), meta.get("load_avg_start"))
    if not load:
        item("load_avg", False, "load average at start not recorded")
    else:
        one_minute = float(load[0])
        item(
            "load_avg",
            one_minute <= max_load,
            f"1-minute load average {one_minute:g}"
            + ("" if one_minute <= max_load else f" is above {max_load:g}"),
        )

    if prompt_conflicts:
        item("prompts_frozen", False, "prompt text changed: " + "; ".join(prompt_conflicts))
    else:
        n = len(prompt_hashes(run))
        item(
            "prompts_frozen",
            True,
            f"{n} prompt hash(es) consistent" if n else "no prompt texts recorded",
        )

    reasons = [i["detail"] for i in items if not i["ok"]]
    return {"verdict": "unreliable" if reasons else "reliable", "reasons": reasons, "checks": items}


def check_all(runs: list[Run], *, max_load: float) -> dict[str, dict[str, Any]]:
    """Run id -> checklist result, for every run (the prompt check spans the archive)."""
    conflicts = frozen_prompt_conflicts(runs)
    return {
        run.run_id: check_run(
            run, max_load=max_load, prompt_conflicts=conflicts.get(run.run_id, [])
        )
        for run in runs
    }
