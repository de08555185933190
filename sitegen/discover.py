"""Find the run folders of an archive and check their shape before anything is read.

Nothing here follows a symlink: a run folder that is one, or holds one, is
refused, so the build never reads outside ``runs/``.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from sitegen.exceptions import Problem
from sitegen.layout import RUNS, Layout

RUN_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")
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


def hidden(rel: str) -> bool:
    """True when any component of ``rel`` starts with "." (``.git/config``, ``.env``).

    Discovery refuses such files and the publication gate uses the same test,
    so nothing hidden is ever published unscanned.
    """
    return any(part.startswith(".") for part in rel.split("/"))


def name_problem(name: str) -> str | None:
    """Why a file name cannot be published, or None.

    Control characters (newline, tab, DEL, C1) would break every listing that
    prints the name (the manifest lines, error messages); bytes that are not
    UTF-8 cannot be put in a URL or a page at all.
    """
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "file name is not valid UTF-8; rename it"
    bad = next((ch for ch in name if ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0), None)
    if bad is not None:
        return f"file name holds the control character U+{ord(bad):04X}; rename it"
    return None


def _walk(folder: Path, display: str, max_bytes: int) -> tuple[list[RunFile], list[Problem]]:
    """Every regular file below ``folder``, refusing links, hidden names, special files,
    oversize files and over-deep folders. Judged by ``lstat``: nothing refused here is
    ever opened."""
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
            problem = _entry_problem(entry, rel, display)
            if problem is not None:
                problems.append(problem)
                continue
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                stack.append((Path(entry.path), rel + "/"))
            elif st.st_size > max_bytes:
                problems.append(
                    Problem(
                        f"{display}/{rel}",
                        message=f"file is {st.st_size} bytes, over the cap of {max_bytes}",
                    )
                )
            else:
                files.append(RunFile(rel, st.st_size))
    files.sort(key=lambda f: f.rel)
    return files, problems


def _entry_problem(entry: os.DirEntry[str], rel: str, display: str) -> Problem | None:
    """Why an entry of a run folder cannot be published, or None for a regular file or
    a folder within the depth cap."""
    bad_name = name_problem(entry.name)
    if bad_name is not None:
        shown = repr(rel.encode("utf-8", "surrogateescape"))[2:-1]
        return Problem(f"{display}/{shown}", message=bad_name)
    where = f"{display}/{rel}"
    if entry.name.startswith("."):
        kind = "folder" if entry.is_dir(follow_symlinks=False) else "file"
        return Problem(
            where,
            message=f"hidden {kind}: run folders may not hold names starting "
            f"with '.', which are never published; remove it "
            f"(rm -r '{where}') or move it out of runs/",
        )
    mode = entry.stat(follow_symlinks=False).st_mode
    if stat.S_ISLNK(mode):
        return Problem(where, message="is a symlink; run folders may not hold links")
    if stat.S_ISDIR(mode):
        if rel.count("/") + 1 > MAX_FOLDER_DEPTH:
            return Problem(where, message=f"folders nested deeper than {MAX_FOLDER_DEPTH} levels")
        return None
    if not stat.S_ISREG(mode):
        return Problem(
            where,
            message=f"is a {_special_kind(mode)}, not a regular file; "
            "only regular files are published (it was not opened)",
        )
    return None


def _special_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "special file"


def discover(layout: Layout, *, max_file_bytes: int) -> tuple[list[RunSource], list[Problem]]:
    """All well-shaped run folders under the archive's ``runs/``, and the problems of the rest.

    Names starting with "." are staging folders of the runner and importers and
    are ignored.
    """
    runs_dir = layout.runs
    problems: list[Problem] = []
    if runs_dir.is_symlink():
        return [], [Problem(RUNS, message="is a symlink; runs/ must be a real folder")]
    if not runs_dir.is_dir():
        return [], []
    sources: list[RunSource] = []
    for entry in sorted(os.scandir(runs_dir), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        display = f"{RUNS}/{entry.name}"
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


# Formats a browser runs script in when it opens them. Published as text.
ACTIVE_SUFFIXES = frozenset(
    {".html", ".htm", ".xhtml", ".xht", ".shtml", ".svg", ".svgz", ".xml", ".xsl", ".xslt",
     ".mht", ".mhtml", ".rdf", ".hta"}
)  # fmt: skip
# What a browser's content sniffing takes for HTML or XML (after whitespace or
# a byte-order mark): a host that sends no type, or an unknown one, lets it.
_MARKUP_HEAD = re.compile(
    rb"^(?:\xef\xbb\xbf)?[\t\n\x0c\r ]*<(?:!doctype\s+html|html|head|body|script|iframe|h1|div|"
    rb"font|table|a|style|title|b|br|p|svg|math|object|embed|\?xml|!--)(?=[\s>/])",
    re.IGNORECASE,
)
TEXT_SUFFIX = ".txt"
# Suffixes every static host maps to a type browsers never sniff as HTML
# (text/plain, application/json, text/markdown, text/csv, images, archives):
# their content is not read to decide (reading every file's head costs about
# 40 µs a file, seconds on a large archive).
TYPED_SUFFIXES = frozenset(
    {".txt", ".json", ".jsonl", ".ndjson", ".md", ".markdown", ".csv", ".tsv", ".yaml", ".yml",
     ".toml", ".cff", ".bib", ".parquet", ".png", ".jpg", ".jpeg", ".gif", ".webp", ".pdf",
     ".gz", ".zip", ".tar", ".tgz", ".xz", ".zst", ".bz2"}
)  # fmt: skip


def is_active(rel: str, head: bytes) -> bool:
    """True when a browser could run script in this file if the site served it as is.

    By name (HTML, SVG, XML and their kin) and, for a name without a standard
    type (``README``, ``x.log``, ``x.dat``), by content: a head that sniffs as
    markup. A ``.txt``, ``.json``, ``.md`` … is served with a type browsers
    never render as HTML, so it stays as it is.
    """
    suffix = PurePosixPath(rel.lower()).suffix
    if suffix in TYPED_SUFFIXES:
        return False
    return suffix in ACTIVE_SUFFIXES or _MARKUP_HEAD.match(head) is not None


def published_names(folder: Path, files: tuple[RunFile, ...]) -> dict[str, str]:
    """Run-relative path -> the name it is published under in ``files/``.

    Every file keeps its name except those a browser would execute, which get
    ``.txt`` appended (``notes.html`` -> ``notes.html.txt``): every static host
    serves that as text/plain, so their script never runs on the site's
    origin. The manifest and digest keep the original names.
    """
    taken = {f.rel for f in files}
    out = {}
    for f in files:
        suffix = PurePosixPath(f.rel.lower()).suffix
        head = b""
        if suffix not in TYPED_SUFFIXES and suffix not in ACTIVE_SUFFIXES:
            with open(folder / f.rel, "rb") as fh:
                head = fh.read(512)
        name = f.rel
        if is_active(f.rel, head):
            name += TEXT_SUFFIX
            while name in taken:  # "a.html" beside a real "a.html.txt"
                name += TEXT_SUFFIX
            taken.add(name)
        out[f.rel] = name
    return out
