"""Integrity of published runs: ``runs.lock`` keeps the manifest of every run
ever published, so a cited run can never change silently.

A build compares each run's files with its lock entry; any difference (a
changed, added or removed file, or a run removed from ``runs/``) fails the
build and names the run and the files. New runs are added to the lock when
the build succeeds. Corrections are new runs that declare ``supersedes``;
retractions live in ``retractions.toml``, outside every run's digest.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from sitegen.archive import Run
from sitegen.exceptions import ConfigError, Problem
from sitegen.jsonio import dumps, load_strict

LOCK_NAME = "runs.lock"
RETRACTIONS_NAME = "retractions.toml"
LOCK_FORMAT = "sitegen.runs-lock/1"


def read_lock(archive: Path) -> tuple[dict[str, Any], list[Problem]]:
    """run id -> {"digest", "files": {path: sha256}}; a missing lock is empty."""
    path = archive / LOCK_NAME
    if not path.is_file():
        return {}, []
    data, problems = load_strict(path, LOCK_NAME)
    if problems:
        return {}, problems
    if not isinstance(data, dict) or data.get("format") != LOCK_FORMAT:
        return {}, [Problem(LOCK_NAME, message=f"not a runs lock (expected format {LOCK_FORMAT})")]
    return data.get("runs", {}), []


def lock_entry(run: Run) -> dict[str, Any]:
    return {"digest": run.digest, "files": {m["path"]: m["sha256"] for m in run.manifest}}


def verify(runs: list[Run], lock: dict[str, Any], invalid: set[str]) -> list[Problem]:
    """Problems for every locked run whose bytes differ from its lock entry, or that is gone."""
    problems: list[Problem] = []
    present = {r.run_id: r for r in runs}
    for run_id, entry in sorted(lock.items()):
        run = present.get(run_id)
        if run is None:
            if run_id not in invalid:
                problems.append(
                    Problem(
                        f"runs/{run_id}",
                        message="published run is missing: published runs are never deleted "
                        f"(retract it in {RETRACTIONS_NAME} instead)",
                    )
                )
            continue
        if run.digest == entry.get("digest"):
            continue
        now = {m["path"]: m["sha256"] for m in run.manifest}
        before = entry.get("files", {})
        changed = sorted(p for p in now.keys() & before.keys() if now[p] != before[p])
        added = sorted(now.keys() - before.keys())
        removed = sorted(before.keys() - now.keys())
        parts = [f"changed {', '.join(changed)}" if changed else ""]
        parts += [f"added {', '.join(added)}" if added else ""]
        parts += [f"removed {', '.join(removed)}" if removed else ""]
        detail = "; ".join(p for p in parts if p)
        problems.append(
            Problem(
                f"runs/{run_id}",
                message=f"published run differs from {LOCK_NAME}: {detail}. Published runs never "
                "change; publish a correction as a new run with `supersedes`",
            )
        )
    return problems


def updated_lock(runs: list[Run], lock: dict[str, Any]) -> dict[str, Any]:
    """The lock with every current run in it (existing entries are never rewritten)."""
    entries = dict(lock)
    for run in runs:
        entries.setdefault(run.run_id, lock_entry(run))
    return {"format": LOCK_FORMAT, "runs": dict(sorted(entries.items()))}


def lock_text(lock: dict[str, Any]) -> str:
    return dumps(lock)


def read_retractions(archive: Path) -> dict[str, dict[str, str]]:
    """run id -> {"reason", "date"} from ``retractions.toml`` (a table per run id)."""
    path = archive / RETRACTIONS_NAME
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem(RETRACTIONS_NAME, message=f"invalid TOML: {exc}")]) from None
    problems = []
    out = {}
    for run_id, entry in sorted(data.items()):
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("reason"), str)
            or not entry["reason"]
        ):
            problems.append(
                Problem(RETRACTIONS_NAME, message=f"[{run_id}] needs a non-empty reason")
            )
            continue
        out[run_id] = {"reason": entry["reason"], "date": str(entry.get("date", ""))}
    if problems:
        raise ConfigError(problems)
    return out
