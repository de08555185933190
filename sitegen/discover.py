"""Find the run folders of an archive and check their shape before anything is read.

Nothing here follows a symlink: a run folder that is one, or holds one, is
refused, so the build never reads outside ``runs/``.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from sitegen.exceptions import Problem

RUN_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")
RUNS_DIR = "runs"
LEDGER = "run.jsonl"
METADATA = "metadata.json"
# Folders below a run folder, at most. Deeper trees are refused, and every walk
# of the archive stops there, so none of them can exhaust the stack or PATH_MAX.
MAX_FOLDER_DEPTH = 32
# The other walks (gate, site listing, change detection) stop here: deep enough
# for a refused run's tree seen from the archive or the site's runs/<id>/files/.
MAX_WALK_DEPTH = MAX_FOLDER_DEPTH + 8


@dataclass(frozen=True)
class RunFile:
    rel: str  # posix path inside the run folder, e.g. "run.jsonl" or "source/x.json"
    size: int


@dataclass(frozen=True)
class RunSource:
    """A run folder that passed the shape checks."""

    run_id: str
    path: Path
    display: str  # "runs/<id>", for messages
    files: tuple[RunFile, ...]

    @property
    def has_ledger(self) -> bool:
        return any(f.rel == LEDGER for f in self.files)

    def file_display(self, rel: str) -> str:
        return f"{self.display}/{rel}"


def _walk(folder: Path, display: str, max_bytes: int) -> tuple[list[RunFile], list[Problem]]:
    """Every regular file below ``folder``, refusing links and oversize files."""
    files: list[RunFile] = []
    problems: list[Problem] = []
    stack = [(folder, "")]
    while stack:
        current, prefix = stack.pop()
        try:
            with os.scandir(current) as entries:
                listed = sorted(entries, key=lambda e: e.name)
        except OSError as exc:
            where = f"{display}/{prefix.rstrip('/')}" if prefix else display
            problems.append(Problem(where, message=f"cannot list: {exc.strerror or exc}"))
            continue
        for entry in listed:
            rel = f"{prefix}{entry.name}"
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                problems.append(
                    Problem(
                        f"{display}/{rel}",
                        message="is a symlink; run folders may not hold links",
                    )
                )
            elif stat.S_ISDIR(st.st_mode):
                if rel.count("/") + 1 > MAX_FOLDER_DEPTH:
                    problems.append(
                        Problem(
                            f"{display}/{rel}",
                            message=f"folders nested deeper than {MAX_FOLDER_DEPTH} levels",
                        )
                    )
                else:
                    stack.append((Path(entry.path), rel + "/"))
            elif stat.S_ISREG(st.st_mode):
                if st.st_size > max_bytes:
                    problems.append(
                        Problem(
                            f"{display}/{rel}",
                            message=f"file is {st.st_size} bytes, over the cap of {max_bytes}",
                        )
                    )
                else:
                    files.append(RunFile(rel, st.st_size))
            else:
                problems.append(Problem(f"{display}/{rel}", message="is not a regular file"))
    files.sort(key=lambda f: f.rel)
    return files, problems


def discover(archive: Path, *, max_file_bytes: int) -> tuple[list[RunSource], list[Problem]]:
    """All well-shaped run folders under ``archive/runs``, and the problems of the rest.

    Names starting with "." are staging folders of the runner and importers and
    are ignored.
    """
    runs_dir = archive / RUNS_DIR
    problems: list[Problem] = []
    if runs_dir.is_symlink():
        return [], [Problem(RUNS_DIR, message="is a symlink; runs/ must be a real folder")]
    if not runs_dir.is_dir():
        return [], []
    sources: list[RunSource] = []
    for entry in sorted(os.scandir(runs_dir), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        display = f"{RUNS_DIR}/{entry.name}"
        if entry.is_symlink():
            problems.append(
                Problem(display, message="run folder is a symlink; refusing to follow it")
            )
            continue
        if not entry.is_dir(follow_symlinks=False):
            problems.append(Problem(display, message="not a run folder (runs/ holds only folders)"))
            continue
        if not RUN_ID_RE.match(entry.name):
            problems.append(
                Problem(
                    display,
                    message=f"run id {entry.name!r} does not match [a-z0-9][a-z0-9._-]{{0,127}}",
                )
            )
            continue
        files, file_problems = _walk(Path(entry.path), display, max_file_bytes)
        problems.extend(file_problems)
        if file_problems:
            continue
        if not files:
            problems.append(Problem(display, message="run folder is empty"))
            continue
        if not any(f.rel == METADATA for f in files):
            problems.append(Problem(display, message=f"run folder has no {METADATA}"))
            continue
        sources.append(RunSource(entry.name, Path(entry.path), display, tuple(files)))
    return sources, problems
