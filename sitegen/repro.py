"""The reproducibility check: section 8 of the harness methodology, per run.

Every entry of the reference checklist is a named check with the evidence it
was judged on (the recorded value, not just a tick), so a reader can see why a
run passed. A run that fails an item is still published, marked
``unreliable: <reasons>`` wherever it appears; ``--strict`` turns that into a
build failure. Meta-only and imported runs are checked on what they hold: an
item whose evidence was never recorded fails as "not recorded", because the
checklist says every entry must hold.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from sitegen import reuse
from sitegen.config import defaults

if TYPE_CHECKING:
    from sitegen.archive import Run
    from sitegen.buildstate import BuildState

CHECKS: tuple[tuple[str, str], ...] = (
    ("git_clean", "Git working tree clean, or every dirty file documented"),
    ("git_sha", "Git commit of the harness recorded"),
    ("harness_version", "Harness version recorded"),
    ("engine_versions", "Engine version recorded for every target"),
    ("model_digests", "Model digest (sha256) recorded for every target"),
    ("times", "Wall-clock window recorded (start and finish)"),
    ("exclusive", "No other heavy job on the machine (measured per call)"),
    ("prime_time", "Prime time avoided, or the run explicitly authorized"),
    ("load_avg", "Harness guard: load average at start at most {max_load}"),
    ("health_checks", "Harness guard: every cell passed its health check"),
    ("prompts_frozen", "Prompt texts identical to earlier runs' (frozen prompts)"),
)


_PLACEHOLDER_WORDS = {
    "",
    "?",
    "-",
    "0",
    "n/a",
    "na",
    "none",
    "null",
    "unknown",
    "unset",
    "dev",
    "devel",
    "development",
    "latest",
    "local",
    "todo",
    "tbd",
    "version",
    "x",
}
# b0 / b0-unknown (llama.cpp built without git: build 0, commit unknown),
# 0.0.0 and friends (Ollama built from source), anything saying "unknown".
_PLACEHOLDER_RE = re.compile(r"^(v?0+(\.0+)*|b0+)([-+_ ].*)?$|unknown|placeholder|<.*>")
_SHA256_RE = re.compile(r"^(sha256:)?([0-9a-f]{64})$")
_GIT_SHA_RE = re.compile(r"^[0-9a-f]{7,64}$")


def is_placeholder_version(value: Any) -> bool:
    """True when ``value`` identifies no build: missing, ``unknown``, ``b0-unknown``, ``dev``..."""
    if value is None:
        return True
    text = str(value).strip().lower()
    return text in _PLACEHOLDER_WORDS or bool(_PLACEHOLDER_RE.search(text))


def is_real_digest(value: Any) -> bool:
    """A sha256 hex digest that is not a filler such as 64 zeros."""
    m = _SHA256_RE.match(str(value or "").strip().lower())
    return m is not None and len(set(m.group(2))) > 1


def _first(*values: Any) -> Any:
    for value in values:
        if value not in (None, "", []):
            return value
    return None


def _utc(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h} h {m} min" if h else f"{m} min {s} s"


def _statement(obj: Any) -> str | None:
    """``"statement" (by who)`` from a publisher's {statement, by} object, or None."""
    if isinstance(obj, str) and obj.strip():
        return f"“{obj.strip()}”"
    if isinstance(obj, dict) and str(obj.get("statement") or "").strip():
        by = str(obj.get("by") or "").strip()
        return f"“{str(obj['statement']).strip()}”" + (f" (by {by})" if by else "")
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


def machine_summary(run: Run) -> dict[str, Any] | None:
    """The per-call contention summary: from metadata, else the ledger's end record."""
    found = run.metadata.get("machine")
    if not isinstance(found, dict) and run.ledger and run.ledger.end:
        found = run.ledger.end.get("machine")
    return found if isinstance(found, dict) and found.get("calls_sampled") else None


def _check_exclusive(run: Run, s: dict[str, Any]) -> tuple[bool, str]:
    """Machine exclusivity: other processes' CPU and the load, per core, over the calls."""
    stated = _statement(run.metadata.get("exclusive"))
    said = f"; publisher states {stated}" if stated else ""
    summary = machine_summary(run)
    if summary is None:
        if run.meta.get("machine_sampling") is False:
            why = "the runner could not read /proc on this platform"
        elif run.imported:
            why = "imported run: the source tool records no per-call machine samples"
        else:
            why = (
                "the ledger has no per-call machine samples (recorded before the runner took them)"
            )
        return False, f"machine exclusivity not measured: {why}{said}"
    cores = summary.get("cores") or 1
    other = float(summary.get("other_cores_p50") or 0.0)
    n = summary.get("calls_sampled")
    share = other / cores
    parts = [
        f"other processes used {other:.2f} of {cores} cores (median over {n} calls; "
        f"p90 {float(summary.get('other_cores_p90') or 0):.2f}, "
        f"mean {float(summary.get('other_cores_mean') or 0):.2f}), "
        f"{share:.0%} of the machine, limit {s['max_other_cpu']:.0%}"
    ]
    ok = share <= s["max_other_cpu"]
    load = summary.get("load_1m_p50")
    if load is not None:
        per_core = float(load) / cores
        ok_load = per_core <= s["max_load_per_core"]
        parts.append(
            f"1-minute load {float(load):g} ({per_core:.2f} per core, median; "
            f"limit {s['max_load_per_core']:g})"
        )
        ok = ok and ok_load
    if summary.get("engine") == "remote":
        parts.append("engine on another machine: only the harness host was measured")
    elif summary.get("engine") == "unresolved":
        parts.append("engine process not identified: its CPU counts as other processes'")
    return ok, "; ".join(parts) + said


def _in_quiet_hours(start: datetime, finish: datetime, spec: str) -> bool | None:
    """True when the run lies inside the daily UTC window ``HH:MM-HH:MM``; None if unset."""
    m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", spec or "")
    if not m:
        return None
    lo = int(m.group(1)) * 60 + int(m.group(2))
    hi = int(m.group(3)) * 60 + int(m.group(4))
    if (finish - start).total_seconds() >= 86400:
        return False

    def inside(t: datetime) -> bool:
        minute = t.hour * 60 + t.minute + t.second / 60
        return lo <= minute <= hi if lo <= hi else (minute >= lo or minute <= hi)

    # A window crossing midnight is allowed; both ends and the span must fit it.
    span_min = (finish - start).total_seconds() / 60
    width = (hi - lo) % 1440
    return inside(start) and inside(finish) and span_min <= width


def _check_prime_time(run: Run, s: dict[str, Any]) -> tuple[bool, str]:
    md = run.metadata
    authorized = _statement(md.get("authorization"))
    if authorized:
        return True, f"authorized: {authorized}"
    quiet = s.get("quiet_hours_utc") or ""
    start, finish = _utc(run.started_at), _utc(run.finished_at)
    if quiet and start and finish:
        fits = _in_quiet_hours(start, finish, quiet)
        if fits is not None:
            when = f"ran {start:%H:%M}Z to {finish:%H:%M}Z"
            if fits:
                return True, f"{when}, inside the quiet hours {quiet} UTC"
            return False, f"{when}, outside the quiet hours {quiet} UTC, and no authorization"
    window = _statement(md.get("window"))
    if window:
        return True, f"publisher states the window avoided prime time: {window}"
    return False, "prime-time avoidance or authorization not recorded"


def _check_health(run: Run) -> tuple[bool, str]:
    if run.ledger is None:
        return False, "no ledger: health checks not recorded"
    if run.imported:
        return False, "imported run: the source tool's health checks are not recorded"
    planned = run.meta.get("cells_planned") or []
    skips = run.ledger.skips
    flag = " (recorded with --for-publication)" if run.meta.get("for_publication") else ""
    if skips:
        listed = "; ".join(f"{k.get('cell_id')}: {k.get('reason')}" for k in skips[:5])
        more = f" and {len(skips) - 5} more" if len(skips) > 5 else ""
        return False, f"health check failed for {listed}{more}"
    return True, f"all {len(planned)} planned cell(s) passed their health check{flag}"


@cache
def _defaults() -> dict[str, Any]:
    """The [reproducibility] settings' defaults, from the one settings table."""
    return defaults().section("reproducibility")


def check_run(
    run: Run,
    *,
    max_load: float | None = None,
    prompt_conflicts: list[str],
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The checklist for one run, item by item, with a verdict and its reasons."""
    s = _defaults() | (settings or {})
    if max_load is not None:
        s["max_load_avg"] = max_load
    md, meta = run.metadata, run.meta
    git = md.get("git") or {}
    items: list[dict[str, Any]] = []

    def item(key: str, ok: bool, detail: str) -> None:
        label = dict(CHECKS)[key].format(max_load=f"{s['max_load_avg']:g}")
        items.append({"id": key, "label": label, "ok": ok, "detail": detail})

    dirty = _first(git.get("dirty"), meta.get("git_dirty"))
    files = _first(git.get("dirty_files"), meta.get("git_dirty_files")) or []
    note = _first(git.get("dirty_note"), meta.get("git_dirty_note"))
    if dirty is None:
        item("git_clean", False, "tree state (clean or dirty) not recorded")
    elif not dirty:
        item("git_clean", True, "git status clean")
    elif files or note:
        listed = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
        item(
            "git_clean",
            True,
            f"tree dirty, documented: {len(files)} file(s) listed"
            + (f" ({listed})" if listed else "")
            + (f"; note: {note}" if note else ""),
        )
    else:
        item("git_clean", False, "tree dirty and the dirty files are not documented")

    sha = _first(git.get("sha"), meta.get("git_sha"))
    if not sha:
        item("git_sha", False, "git sha not recorded")
    elif not _GIT_SHA_RE.match(str(sha).lower()):
        item("git_sha", False, f"git sha {sha!r} is not a commit id")
    else:
        item("git_sha", True, f"commit {sha}")

    harness = md.get("harness") or {}
    version = _first(harness.get("version"), meta.get("harness_version"))
    name = _first(harness.get("name"), meta.get("harness_name")) or "harness"
    item(
        "harness_version",
        version is not None,
        f"{name} {version}" if version is not None else "harness version not recorded",
    )

    targets = md.get("targets") or []
    if not targets:
        item("engine_versions", False, "no targets recorded")
        item("model_digests", False, "no targets recorded")
    else:
        cells = sorted(targets, key=lambda t: t["cell_id"])
        missing = [t["cell_id"] for t in cells if not t.get("engine_version")]
        fake = [
            f"{t['engine_version']!r} for {t['cell_id']}"
            for t in cells
            if t.get("engine_version") and is_placeholder_version(t["engine_version"])
        ]
        problems = []
        if missing:
            problems.append("engine version missing for " + ", ".join(missing))
        if fake:
            problems.append("placeholder engine version " + ", ".join(fake))
        shown = [
            f"{t['cell_id']}: {t.get('engine_version')}"
            + (" (operator-supplied)" if t.get("engine_version_source") == "operator" else "")
            for t in cells
        ]
        item("engine_versions", not problems, "; ".join(problems) or "; ".join(shown))

        no_digest = [t["cell_id"] for t in cells if not t.get("model_digest")]
        bad = [
            f"{t['model_digest']!r} for {t['cell_id']}"
            for t in cells
            if t.get("model_digest") and not is_real_digest(t["model_digest"])
        ]
        problems = []
        if no_digest:
            problems.append("model digest missing for " + ", ".join(no_digest))
        if bad:
            problems.append("not a real sha256: " + ", ".join(bad))
        shown = [f"{t['cell_id']}: {str(t.get('model_digest'))[:19]}…" for t in cells]
        item("model_digests", not problems, "; ".join(problems) or "; ".join(shown))

    start, finish = run.started_at, run.finished_at
    missing_t = [n for n, v in (("start", start), ("finish", finish)) if not v]
    t0, t1 = _utc(start), _utc(finish)
    if missing_t:
        item("times", False, " and ".join(missing_t) + " time not recorded")
    elif t0 is None or t1 is None:
        item("times", False, f"unreadable time: {start} to {finish}")
    elif t1 <= t0:
        item("times", False, f"finish {finish} is not after start {start}")
    else:
        item("times", True, f"{start} to {finish} ({_duration((t1 - t0).total_seconds())})")

    item("exclusive", *_check_exclusive(run, s))
    item("prime_time", *_check_prime_time(run, s))

    load = _first(md.get("load_avg_start"), meta.get("load_avg_start"))
    limit = s["max_load_avg"]
    if not load:
        item("load_avg", False, "load average at start not recorded")
    else:
        one_minute = float(load[0])
        item(
            "load_avg",
            one_minute <= limit,
            f"1-minute load average {one_minute:g}"
            + ("" if one_minute <= limit else f" is above {limit:g}"),
        )

    item("health_checks", *_check_health(run))

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


def check_all(
    runs: list[Run],
    *,
    max_load: float | None = None,
    settings: dict[str, Any] | None = None,
    state: BuildState | None = None,
) -> dict[str, dict[str, Any]]:
    """Run id -> checklist result, for every run (the prompt check spans the archive).

    With ``state``, each result is kept under a key of what it reads: the run's
    files (its digest), its id, the settings and the prompt conflicts found
    for it. A build that adds one run checks that run only.
    """
    conflicts = frozen_prompt_conflicts(runs)
    memo = state.memo("checks") if state is not None else None
    out: dict[str, dict[str, Any]] = {}
    for run in runs:
        found = conflicts.get(run.run_id, [])
        key = ""
        if memo is not None:
            key = reuse.digest([settings, max_load, run.run_id, run.digest, found])
            stored = memo.get(key)
            if isinstance(stored, dict):
                out[run.run_id] = stored
                continue
        result = out[run.run_id] = check_run(
            run, max_load=max_load, prompt_conflicts=found, settings=settings
        )
        if memo is not None:
            memo.put(key, result)
    if memo is not None:
        memo.release()  # read by this step only
    return out
