"""Integrity of published runs: ``runs.lock`` keeps the manifest of every run
ever published, so a cited run can never change silently.

A build compares each run's files with its lock entry; any difference (a
changed, added or removed file, or a run removed from ``runs/``) fails the
build and names the run and the files. New runs are added to the lock when
the build succeeds. Corrections are new runs that declare ``supersedes``;
retractions live in ``retractions.toml``, outside every run's digest.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Sequence
from typing import Any

from sitegen.archive import Run
from sitegen.exceptions import ConfigError, Problem
from sitegen.jsonio import dumps, load_strict
from sitegen.layout import CATALOGUE, Layout
from sitegen.layout import LOCK as LOCK_NAME
from sitegen.layout import RETRACTIONS as RETRACTIONS_NAME

LOCK_FORMAT = "sitegen.runs-lock/1"


_HEX64 = re.compile(r"[0-9a-f]{64}")


def _line_of(text: str, needle: str) -> int | None:
    at = text.find(needle)
    return None if at < 0 else text.count("\n", 0, at) + 1


def read_lock(layout: Layout) -> tuple[dict[str, Any], list[Problem]]:
    """run id -> {"digest", "files": {path: sha256}}; a missing lock is empty.

    A damaged lock is a located problem, never a traceback: it is what keeps
    published runs from changing, so the build stops until it is repaired
    (``git checkout runs.lock``).
    """
    path = layout.lock
    if path.is_symlink() or (path.exists() and not path.is_file()):
        return {}, [Problem(LOCK_NAME, message="is not a regular file")]
    if not path.is_file():
        return {}, []
    # The strict reader bounds nesting and locates every problem (runs.lock:1:65: ...).
    data, problems = load_strict(path, LOCK_NAME)
    if problems:
        return {}, problems
    text = path.read_text(encoding="utf-8")
    if not isinstance(data, dict) or data.get("format") != LOCK_FORMAT:
        line = _line_of(text, '"format"') or 1
        return {}, [
            Problem(LOCK_NAME, line, None, f"not a runs lock (expected format {LOCK_FORMAT})")
        ]
    runs = data.get("runs", {})
    if not isinstance(runs, dict):
        line = _line_of(text, '"runs"') or 1
        return {}, [Problem(LOCK_NAME, line, None, "$.runs: must be an object of run ids")]
    problems = []
    for run_id, entry in runs.items():
        bad = _entry_problem(entry)
        if bad:
            # Located only for a bad entry: a search per entry of a large lock is quadratic.
            entry_line = _line_of(text, json.dumps(run_id) + ":")
            problems.append(Problem(LOCK_NAME, entry_line, None, f"$.runs[{run_id!r}]: {bad}"))
    return ({} if problems else runs), problems


def _entry_problem(entry: Any) -> str | None:
    """What is wrong with one lock entry, or None."""
    if not isinstance(entry, dict):
        return "must be an object with digest and files"
    digest = entry.get("digest")
    if not isinstance(digest, str) or not _HEX64.fullmatch(digest.removeprefix("sha256:")):
        return "digest must be 'sha256:' and 64 hex digits"
    files = entry.get("files")
    if not isinstance(files, dict) or not all(
        isinstance(v, str) and _HEX64.fullmatch(v) for v in files.values()
    ):
        return "files must map each path to a sha256 (64 hex digits)"
    return None


def unlocked_published(layout: Layout, lock: dict[str, Any]) -> list[str]:
    """Warnings for runs the committed catalogue.json publishes that runs.lock lacks.

    A lock edited by hand (or replaced) would otherwise let those runs change
    or vanish without a word.
    """
    path = layout.catalogue
    try:
        data, problems = load_strict(path, CATALOGUE)
    except OSError:
        return []
    if problems:
        return []
    runs = data.get("runs") if isinstance(data, dict) else None
    ids = [r.get("id") for r in runs if isinstance(r, dict)] if isinstance(runs, list) else []
    missing = sorted(i for i in ids if isinstance(i, str) and i not in lock)
    return [
        f"warning: {LOCK_NAME}: runs/{i} is published in catalogue.json but missing from "
        f"{LOCK_NAME} (restore the lock from version control)"
        for i in missing
    ]


def lock_entry(run: Run) -> dict[str, Any]:
    return {"digest": run.digest, "files": {m["path"]: m["sha256"] for m in run.manifest}}


def verify(
    runs: list[Run], lock: dict[str, Any], invalid: set[str], problems: Sequence[Problem] = ()
) -> list[Problem]:
    """Problems for every locked run whose bytes differ from its lock entry, that is
    gone, or that is now invalid. ``problems`` are the archive's validation
    problems: a published run's own are repeated here, as they can never be
    skipped (``--skip-invalid`` would silently unpublish it)."""
    out: list[Problem] = []
    present = {r.run_id: r for r in runs}
    for run_id, entry in sorted(lock.items()):
        run = present.get(run_id)
        if run is None:
            if run_id in invalid:
                own = [p for p in problems if p.path.split("/")[1:2] == [run_id]]
                out += own
                out.append(
                    Problem(
                        f"runs/{run_id}",
                        message="published run is now invalid (see above): published runs "
                        "are never left out; restore its files from version control",
                    )
                )
            else:
                out.append(
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
        out.append(
            Problem(
                f"runs/{run_id}",
                message=f"published run differs from {LOCK_NAME}: {detail}. Published runs never "
                "change; publish a correction as a new run with `supersedes`",
            )
        )
    return out


def updated_lock(runs: list[Run], lock: dict[str, Any]) -> dict[str, Any]:
    """The lock with every current run in it (existing entries are never rewritten)."""
    entries = dict(lock)
    for run in runs:
        entries.setdefault(run.run_id, lock_entry(run))
    return {"format": LOCK_FORMAT, "runs": dict(sorted(entries.items()))}


def lock_text(lock: dict[str, Any]) -> str:
    return dumps(lock)


def read_retractions(layout: Layout) -> dict[str, dict[str, str]]:
    """run id -> {"reason", "date"} from ``retractions.toml`` (a table per run id)."""
    path = layout.retractions
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
