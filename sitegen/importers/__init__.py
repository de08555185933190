"""``sitegen import``: package published benchmark results as archive runs.

Each source file is read, its format detected (or taken from ``--format``),
checked against sitegen's schema for that format, checked for private data,
mapped to a ledger and metadata.json, and written as ``runs/<id>/`` with the
untouched original under ``source/``. Every file of one command is checked
before anything is written: one bad file means nothing is written, and every
problem of every file is reported at once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from sitegen.discover import RUN_ID_RE
from sitegen.exceptions import ImportFailed, Problem
from sitegen.layout import RUNS
from sitegen.runfolder import refresh_catalogue

from . import benchmark_output, llama_bench, lm_eval, mlx, nexus, vllm_serve
from .assemble import (
    build_ledger,
    build_metadata,
    check_generated,
    derive_run_id,
    write_run,
)
from .base import Document, Mapped, SourceUnreadable, read_document, scrub
from .privacy import privacy_problems

FORMATS: dict[str, ModuleType] = {
    module.NAME: module
    for module in (mlx, nexus, benchmark_output, vllm_serve, llama_bench, lm_eval)
}


@dataclass(frozen=True)
class ImportedRun:
    """One packaged run, for the command's report."""

    source: str
    run_id: str
    path: Path
    format: str
    results: int
    calls: int


@dataclass
class ImportReport:
    runs: list[ImportedRun] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class _Prepared:
    display: str
    source_name: str
    raw: bytes
    format: str
    run_id: str
    mapped: Mapped
    ledger: list[dict[str, Any]]
    metadata: dict[str, Any]


def fail(problems: list[Problem]) -> ImportFailed:
    """An ImportFailed listing every problem, one per line, with ``problems`` attached."""
    error = ImportFailed("\n".join(str(p) for p in problems))
    error.problems = list(problems)  # type: ignore[attr-defined]
    return error


def refuse(where: str, message: str) -> ImportFailed:
    """An ImportFailed with a single problem."""
    return fail([Problem(where, message=message)])


def detect_format(doc: Document) -> str:
    """The one format whose signature the document has; refuses none or several."""
    matches = [name for name, module in FORMATS.items() if module.sniff(doc)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise refuse(
            doc.display,
            f"not a format sitegen can import; known formats: {', '.join(FORMATS)} "
            "(see docs/importing.md); pass --format to check the file against one of them",
        )
    raise refuse(
        doc.display,
        f"matches several formats ({', '.join(matches)}); pass --format to choose one",
    )


# A source file is stored as source/<its name> and listed in the run's manifest
# (one "<sha256>  <bytes>  <path>" line per file): a line break in the name would
# forge a manifest line, a separator would leave source/. Such names are refused,
# not rewritten, so the stored name is always the one given.
_BAD_NAME = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029/\\]")


def _safe_display(path: Path) -> str:
    """The path for messages, control characters escaped (one message, one line)."""
    text = str(path)
    return json.dumps(text, ensure_ascii=False)[1:-1] if _BAD_NAME.search(text) else text


def _check_name(path: Path, display: str) -> None:
    if _BAD_NAME.search(path.name) or path.name in ("", ".", ".."):
        raise refuse(
            display,
            "file name holds a control character, line break or path separator;"
            " rename the file and import it again",
        )


def _read(path: Path) -> bytes:
    display = _safe_display(path)
    _check_name(path, display)
    if path.is_dir():
        raise refuse(display, "is a folder; give the result file itself")
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise refuse(display, "no such file") from None
    except OSError as exc:
        raise refuse(display, f"cannot read: {exc.strerror or exc}") from None


def _prepare(
    path: Path,
    fmt: str | None,
    run_id: str | None,
    origin: str | None,
    tags: Sequence[str],
    archive_root: Path,
    authors: Sequence[str] = (),
) -> _Prepared:
    """Everything short of writing: parse, detect, validate, privacy, map, check."""
    display = _safe_display(path)
    raw = _read(path)
    try:
        doc = read_document(display, raw)
    except SourceUnreadable as exc:
        raise fail(exc.problems) from None
    name = fmt or detect_format(doc)
    module = FORMATS[name]
    problems = module.validate(doc)
    if problems:
        count = f"{len(problems)} problem" + ("" if len(problems) == 1 else "s")
        problems.insert(0, Problem(display, message=f"does not validate as {name} ({count}):"))
    problems += privacy_problems(doc, archive_root)
    if problems:
        raise fail(problems)
    mapped: Mapped = module.convert(doc)
    rid = run_id or derive_run_id(name, mapped, raw)
    if not RUN_ID_RE.match(rid):
        raise refuse(
            display,
            f"run id {rid!r} is not allowed: use 1-128 of a-z 0-9 . _ - "
            "starting with a letter or digit",
        )
    source_name = path.name
    origin_text = origin or f"Imported from {source_name} ({module.TOOL}) with sitegen import"
    ledger = scrub(build_ledger(rid, name, mapped, source_name))
    metadata = scrub(build_metadata(rid, name, mapped, source_name, origin_text, tags, authors))
    problems = check_generated(display, ledger, metadata)
    if problems:
        raise fail(problems)
    return _Prepared(display, source_name, raw, name, rid, mapped, ledger, metadata)


def _clashes(prepared: list[_Prepared], runs_dir: Path) -> list[Problem]:
    """Runs that already exist, or two inputs that would become the same run."""
    problems: list[Problem] = []
    seen: dict[str, str] = {}
    for item in prepared:
        if item.run_id in seen:
            problems.append(
                Problem(
                    item.display,
                    message=(
                        f"would become run {item.run_id}, like {seen[item.run_id]} "
                        "(the same file twice?)"
                    ),
                )
            )
        seen[item.run_id] = item.display
        existing = runs_dir / item.run_id
        if existing.exists() or existing.is_symlink():
            problems.append(
                Problem(
                    item.display,
                    message=(
                        f"run {item.run_id} already exists in {runs_dir}; published runs are never "
                        "overwritten. Import a corrected file under a new --id (its metadata.json "
                        'can name the old run in "supersedes")'
                    ),
                )
            )
    return problems


def import_files(
    files: Sequence[Path],
    *,
    runs_dir: Path = Path(RUNS),
    fmt: str | None = None,
    run_id: str | None = None,
    origin: str | None = None,
    tags: Sequence[str] = (),
    refresh: bool = True,
    authors: Sequence[str] = (),
) -> ImportReport:
    """Import every file as a run under ``runs_dir``, or none of them.

    ``fmt`` skips detection; ``run_id`` names the run (one file only);
    ``origin`` says where the file came from; ``tags`` are added to each run;
    ``authors`` name who made the results (cited as their authors; kept as
    metadata ``source.authors`` after any the format records);
    ``refresh`` rebuilds the catalogue of the archive holding ``runs_dir``
    (its parent folder) once the runs are written.
    Raises ``ImportFailed`` listing every problem; nothing is written then.
    """
    if not files:
        raise refuse("sitegen import", "no files given")
    if fmt is not None and fmt not in FORMATS:
        raise refuse("--format", f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    if run_id is not None and len(files) > 1:
        raise refuse("--id", "names one run; import one file at a time with --id")
    if any(not t.strip() for t in tags):
        raise refuse("--tag", "tags may not be empty")
    if any(not a.strip() for a in authors):
        raise refuse("--author", "an author's name may not be empty")
    if any(len(a) > 300 or not a.isprintable() for a in authors):
        raise refuse("--author", "an author's name is one line of at most 300 characters")

    archive_root = runs_dir.resolve().parent
    prepared: list[_Prepared] = []
    problems: list[Problem] = []
    for path in files:
        try:
            prepared.append(_prepare(Path(path), fmt, run_id, origin, tags, archive_root, authors))
        except ImportFailed as exc:
            problems.extend(getattr(exc, "problems", [Problem(str(path), message=str(exc))]))
    problems.extend(_clashes(prepared, runs_dir))
    if problems:
        raise fail(problems)

    report = ImportReport()
    for item in prepared:
        target = runs_dir / item.run_id
        try:
            path = write_run(
                runs_dir, item.run_id, item.ledger, item.metadata, item.source_name, item.raw
            )
        except FileExistsError:
            raise refuse(
                item.display, f"{target} appeared while importing; not overwritten"
            ) from None
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise refuse(
                item.display, f"could not write {target}: {reason}; nothing kept"
            ) from None
        report.runs.append(
            ImportedRun(
                item.display,
                item.run_id,
                path,
                item.format,
                len(item.mapped.results),
                len(item.mapped.calls),
            )
        )
    if refresh:
        note = refresh_catalogue(archive_root)
        if note:
            report.notes.append(note)
    return report


__all__ = ["FORMATS", "ImportReport", "ImportedRun", "detect_format", "import_files"]
