"""Refusals before a run starts (section 8 of the harness methodology).

Numbers recorded from an unknown code state or on a machine already busy are
not comparable with anything, so the runner refuses unless the operator says
otherwise: ``--allow-dirty`` for uncommitted changes (which are then listed in
the ledger), ``--force-load`` for a 1-minute load average above 4.0.
``--for-publication`` additionally refuses when any cell fails its probe or
has no real engine version (``b0-unknown`` identifies no build).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from sitegen.exceptions import RunnerError

LOAD_LIMIT = 4.0


@dataclass(frozen=True)
class GitState:
    """The harness repository's commit and uncommitted changes."""

    sha: str | None
    dirty: bool | None
    dirty_files: list[str] = field(default_factory=list)


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=20, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None


def git_state(cwd: Path | None = None) -> GitState:
    """Read ``git rev-parse HEAD`` and ``git status --porcelain`` in ``cwd``.

    Outside a repository (or without git) the sha and dirty flag are None; a
    repository without commits has a null sha but a real dirty list.
    """
    cwd = cwd or Path.cwd()
    inside = _git(cwd, "rev-parse", "--is-inside-work-tree")
    if inside is None or inside.returncode != 0 or inside.stdout.strip() != "true":
        return GitState(None, None, [])
    head = _git(cwd, "rev-parse", "HEAD")
    sha = head.stdout.strip() if head and head.returncode == 0 and head.stdout.strip() else None
    status = _git(cwd, "status", "--porcelain", "--untracked-files=normal")
    if status is None or status.returncode != 0:
        return GitState(sha, None, [])
    files = [line.rstrip() for line in status.stdout.splitlines() if line.strip()]
    files = [" ".join(line.split(None, 1)) for line in files]
    return GitState(sha, bool(files), files)


def git_author(cwd: Path | None = None) -> str | None:
    """``git config user.name``, the default author of a published run."""
    result = _git(cwd or Path.cwd(), "config", "user.name")
    name = result.stdout.strip() if result and result.returncode == 0 else ""
    return name or None


def load_average() -> list[float] | None:
    """``os.getloadavg()`` rounded, or None where the platform has none."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def check_dirty(state: GitState, allow_dirty: bool) -> None:
    """Refuse a dirty tree unless the operator acknowledged it."""
    if state.dirty and not allow_dirty:
        shown = state.dirty_files[:10]
        more = len(state.dirty_files) - len(shown)
        listing = "\n".join(f"  {f}" for f in shown) + (f"\n  ... and {more} more" if more else "")
        raise RunnerError(
            "the git tree has uncommitted changes; commit them, or pass --allow-dirty "
            "to record them in the run metadata:\n" + listing
        )


def check_load(load: list[float] | None, force_load: bool, limit: float = LOAD_LIMIT) -> None:
    """Refuse to start on a busy machine unless forced."""
    if load and load[0] > limit and not force_load:
        raise RunnerError(
            f"1-minute load average is {load[0]:.2f} (> {limit:.1f}); numbers would be noisy. "
            "Wait, or pass --force-load."
        )


def check_publication(failed: list[tuple[str, str]], for_publication: bool) -> None:
    """With --for-publication, every cell must pass its probe."""
    if for_publication and failed:
        listing = "\n".join(f"  {cell}: {reason}" for cell, reason in failed)
        raise RunnerError(
            "--for-publication: refusing because some cells failed their probe:\n" + listing
        )


def check_versions(targets: list[dict[str, object]], for_publication: bool) -> None:
    """With --for-publication, every cell needs a version that identifies its build."""
    from sitegen.repro import is_placeholder_version

    if not for_publication:
        return
    lacking = [
        (str(t.get("cell_id")), t.get("engine_version"))
        for t in targets
        if is_placeholder_version(t.get("engine_version"))
    ]
    if lacking:
        listing = "\n".join(
            f"  {cell}: "
            + ("no version reported" if v is None else f"engine reports placeholder {v!r}")
            for cell, v in lacking
        )
        raise RunnerError(
            "--for-publication: refusing because these cells have no real engine version:\n"
            + listing
            + "\nAdd engine_version to each cell in cells.yaml from the operator's records "
            '(e.g. engine_version: "b6123").'
        )
