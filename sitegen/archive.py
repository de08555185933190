"""Reading an archive: run folders -> validated ``Run`` records.

Every file is read once, every problem of every run is collected, and the
caller decides whether to stop (the default) or to build the valid rest
(``--skip-invalid``).
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
from collections.abc import Callable, Collection
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sitegen import schema
from sitegen.config import Config
from sitegen.discover import LEDGER, METADATA, RunSource, discover
from sitegen.entities import NO_ALIASES, Aliases
from sitegen.exceptions import Problem
from sitegen.jsonio import decode_utf8, key_line, loads_strict
from sitegen.layout import Layout
from sitegen.ledger import LedgerSummary, prepass
from sitegen.ledger_columns import BATCH_FILES, Checked, check_batch
from sitegen.read_cache import ReadCache, no_cache


@dataclass
class Run:
    """One valid run: its metadata, what its ledger holds, and its file manifest."""

    source: RunSource
    metadata: dict[str, Any]
    ledger: LedgerSummary | None
    manifest: list[dict[str, Any]]  # [{"path", "sha256", "bytes"}], sorted by path
    digest: str
    # The publisher's aliases, which sitegen.catalogue.targets_of applies when the
    # run's names are read (the files keep what they recorded).
    aliases: Aliases = field(default=NO_ALIASES, compare=False)
    # Values derived from the fields above, computed once per build (the run is
    # read-only once loaded): sitegen.catalogue.targets_of is asked ~18 times a run.
    derived: dict[str, Any] = field(default_factory=dict, init=False, compare=False, repr=False)

    @property
    def source_format(self) -> str | None:
        source = self.metadata.get("source")
        return source.get("format") if isinstance(source, dict) else None

    @property
    def ledger_sha256(self) -> str | None:
        return next((m["sha256"] for m in self.manifest if m["path"] == LEDGER), None)

    @property
    def run_id(self) -> str:
        return self.source.run_id

    @property
    def status(self) -> str:
        if self.ledger is None:
            return "meta-only"
        return "interrupted" if self.ledger.interrupted else "complete"

    @property
    def meta(self) -> dict[str, Any]:
        return self.ledger.meta or {} if self.ledger else {}

    @property
    def imported(self) -> bool:
        return bool(self.metadata.get("source"))

    @property
    def started_at(self) -> str | None:
        # An imported run's ledger times are stand-ins written by the importer;
        # only what the source said (in metadata.json) counts.
        if self.imported:
            return self.metadata.get("started_at_utc")
        return self.metadata.get("started_at_utc") or self.meta.get("started_at_utc")

    @property
    def finished_at(self) -> str | None:
        if self.imported:
            return self.metadata.get("finished_at_utc")
        end = self.ledger.end if self.ledger and self.ledger.end else {}
        return self.metadata.get("finished_at_utc") or end.get("finished_at_utc")

    @property
    def concurrency(self) -> int | None:
        """Requests kept in flight while measuring (None when not recorded)."""
        value = self.metadata.get("concurrency")
        return self.meta.get("concurrency") if value is None else value

    @property
    def synthetic(self) -> bool:
        return bool(self.metadata.get("synthetic") or self.meta.get("synthetic"))


def manifest_digest(manifest: list[dict[str, Any]]) -> str:
    """sha256 over the manifest lines ``<sha256>  <bytes>  <path>``, sorted by path.

    Anyone can recompute it from the published files with sha256sum.
    """
    text = "".join(f"{m['sha256']}  {m['bytes']}  {m['path']}\n" for m in manifest)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def _read_metadata(
    source: RunSource,
    cache: ReadCache | None = None,
    sha: str | None = None,
    data: bytes | None = None,
) -> tuple[dict[str, Any] | None, list[Problem]]:
    """Parse and validate metadata.json (``data``: its bytes, when read already); a
    file whose bytes passed before (same sha256) comes from the cache instead."""
    display = source.file_display(METADATA)
    known = cache.metadata(sha) if cache is not None and sha else None
    text = ""
    document: Any
    problems: list[Problem]
    if known is not None:
        document, problems = known, []
    else:
        if data is None:
            data = (source.path / METADATA).read_bytes()
        decoded, problems = decode_utf8(data, display)
        if decoded is None:
            return None, problems
        text = decoded
        document, problems = loads_strict(text, display)
        if problems:
            return None, problems
        if not isinstance(document, dict):
            return None, [Problem(display, 1, None, "metadata is not a JSON object")]
        problems = [
            Problem(display, key_line(text, path), None, message)
            for path, message in schema.located_errors("metadata.v1.json", document)
        ]
        if not problems:
            problems = [
                Problem(display, key_line(text, [key]), None, message)
                for key, message in _time_problems(document)
            ]
        if not problems and cache is not None and sha:
            cache.store_metadata(sha, document)
    identity = _identity_problems(document, source.run_id)
    if identity and not text:  # cached: the text again, to give the same lines
        text = (data or (source.path / METADATA).read_bytes()).decode("utf-8")
    problems += [Problem(display, key_line(text, [key]), None, m) for key, m in identity]
    return (None if problems else document), problems


def _identity_problems(data: dict[str, Any], run_id: str) -> list[tuple[str, str]]:
    """The id must be the folder's name, and a run cannot supersede itself."""
    out = []
    if data.get("id") != run_id and isinstance(data.get("id"), str):
        out.append(("id", f"$.id: {data['id']!r} differs from its folder name {run_id!r}"))
    if data.get("supersedes") == run_id:
        out.append(("supersedes", "$.supersedes: a run cannot supersede itself"))
    return out


def _time_problems(data: dict[str, Any]) -> list[tuple[str, str]]:
    """A run cannot finish before it started (the schema has checked both stamps)."""
    start, end = data.get("started_at_utc"), data.get("finished_at_utc")
    if not (isinstance(start, str) and isinstance(end, str)):
        return []
    if schema.parse_time(end) >= schema.parse_time(start):
        return []
    return [("finished_at_utc", f"$.finished_at_utc: {end!r} is before started_at_utc {start!r}")]


def _consistency(
    source: RunSource, metadata: dict[str, Any], ledger: LedgerSummary | None
) -> list[Problem]:
    display = source.file_display(METADATA)
    status = metadata.get("status")
    if ledger is None and status != "meta-only":
        return [
            Problem(display, None, None, f"$.status: is {status!r} but the run has no {LEDGER}")
        ]
    if ledger is not None and status == "meta-only":
        return [
            Problem(display, None, None, f"$.status: is 'meta-only' but the run has a {LEDGER}")
        ]
    return []


def read_run(
    source: RunSource, config: Config, cache: ReadCache | None = None
) -> tuple[Run | None, list[Problem]]:
    """Validate one run folder completely; ``None`` when anything is wrong.

    A ledger whose bytes passed the pre-pass before is not parsed again: its
    summary comes from the cache, keyed by its sha256.
    """
    return read_runs([source], config, cache)[0]


# Below this many ledger bytes to check, a pool of processes costs more than it saves.
PARALLEL_BYTES = 32 << 20


def read_runs(
    sources: list[RunSource], config: Config, cache: ReadCache | None = None
) -> list[tuple[Run | None, list[Problem]]]:
    """``read_run`` for many runs: each file read once, to hash and to check it;
    ledgers not in the cache are checked by column beside the rest."""
    max_line = config.get("limits.max_line_bytes")
    cache = cache or no_cache(max_line)
    started: list[_Started] = []
    checks = _LedgerChecks(max_line, cache.summary_known())
    try:
        for source in sources:
            run = _start(source, cache)
            if run.ledger is not None and run.summary is None:
                checks.add(str(run.ledger), source.file_display(LEDGER))
            started.append(run)
        checked = checks.verdicts(cache)
    finally:  # after Ctrl-C, no queued batch is started or waited for
        checks.cancel()
    out: list[tuple[Run | None, list[Problem]]] = []
    aliases = config.aliases
    for run in started:
        source, metadata, problems, summary = run.source, run.metadata, run.problems, run.summary
        if run.ledger is not None and summary is None:
            summary, problems = _ledger_verdict(run, checked, cache, max_line)
        if metadata is not None:
            problems += _consistency(source, metadata, summary)
        if problems or metadata is None:
            out.append((None, problems))
        else:
            manifest = run.manifest
            out.append(
                (Run(source, metadata, summary, manifest, manifest_digest(manifest), aliases), [])
            )
    return out


@dataclass
class _Started:
    """A run whose files are hashed (but maybe its ledger) and metadata read."""

    source: RunSource
    metadata: dict[str, Any] | None
    problems: list[Problem]
    manifest: list[dict[str, Any]]  # the ledger's sha256 is None until it is read
    ledger: Path | None  # the run's ledger, if it has one
    summary: LedgerSummary | None  # the ledger's stored summary, when known already


def _start(source: RunSource, cache: ReadCache) -> _Started:
    """Hash a run's files and read its metadata, each file read once; its ledger is
    hashed here only when the cache knows it by its stat (else the check reads it)."""
    manifest: list[dict[str, Any]] = []
    metadata_sha: str | None = None
    metadata_bytes: bytes | None = None
    ledger: Path | None = None
    ledger_sha: str | None = None
    for f in source.files:
        path = source.path / f.rel
        if f.rel == LEDGER:
            ledger = path
            sha = ledger_sha = cache.known_sha256(path)
        elif f.rel == METADATA:
            sha = cache.known_sha256(path)
            if sha is None:
                sha, metadata_bytes = cache.read_hashed(path)
            metadata_sha = sha
        else:
            sha = cache.sha256(path)
        manifest.append({"path": f.rel, "sha256": sha, "bytes": f.size})
    metadata, problems = _read_metadata(source, cache, metadata_sha, metadata_bytes)
    summary = cache.summary(ledger_sha) if ledger_sha else None
    return _Started(source, metadata, problems, manifest, ledger, summary)


class _LedgerChecks:
    """Ledgers to check, column by column in batches (sitegen.ledger_columns), in a
    thread beside the reading of each run's other files: the check is mostly
    Polars work, which lets go of the interpreter lock, so the two overlap."""

    def __init__(self, max_line: int, known: Callable[[str], bool]):
        self.max_line = max_line
        self.known = known  # ledgers (by sha256) whose summary is stored: hashed only
        self._pending: list[tuple[str, str]] = []
        self._pool: ThreadPoolExecutor | None = None
        self._batches: list[Future[Checked]] = []

    def add(self, path: str, display: str) -> None:
        self._pending.append((path, display))
        if len(self._pending) >= BATCH_FILES:
            self._submit()

    def _submit(self) -> None:
        if not self._pending:
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="sitegen-ledgers")
        self._batches.append(
            self._pool.submit(check_batch, self._pending, self.max_line, self.known)
        )
        self._pending = []

    def verdicts(self, cache: ReadCache) -> _Verdicts:
        """The verdict on each ledger checked (by path) and the sha256 of each ledger
        read; the valid ones' call rows go to ``cache``. A ledger the column check
        cannot read cleanly (not UTF-8, a blank line, a line Polars refuses) is
        given to the line-by-line pre-pass."""
        out = _Verdicts({}, {})
        whole: list[tuple[str, str]] = []
        self._submit()
        for batch in self._batches:
            checked = batch.result()
            out.results.update(checked.results)
            out.hashed.update(checked.hashed)
            whole += checked.whole
            cache.offer_calls(checked.calls, checked.files, checked.read)
        out.results.update(_prepass_all(whole, self.max_line))
        return out

    def cancel(self) -> None:
        """Start no batch that has not started (the one running ends on its own)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


@dataclass
class _Verdicts:
    results: dict[str, tuple[LedgerSummary, list[Problem]]]  # path -> verdict
    hashed: dict[str, tuple[list[int], str]]  # path -> (stat stamp, sha256) of those read


def _ledger_verdict(
    run: _Started, checked: _Verdicts, cache: ReadCache, max_line: int
) -> tuple[LedgerSummary | None, list[Problem]]:
    """The summary of a run's ledger once the checks are done (None when it is not
    valid) and every problem of the run; its sha256 goes into the manifest."""
    assert run.ledger is not None
    path = str(run.ledger)
    entry = next(m for m in run.manifest if m["path"] == LEDGER)
    if path in checked.hashed:
        # the digest of the bytes checked, even where the stat gave one: a file
        # changed in between is then filed under what it now holds
        stamp, sha = checked.hashed[path]
        cache.note_sha256(run.ledger, stamp, sha)
    elif entry["sha256"] is None:  # the check could not open it: hashing says why
        sha = cache.sha256(run.ledger)
    else:
        sha = entry["sha256"]
    entry["sha256"] = sha
    if path not in checked.results:  # hashed only: its summary is stored
        summary = cache.summary(sha)
        if summary is not None:
            return summary, run.problems
        # a stored row that does not decode: check the ledger after all
        display = run.source.file_display(LEDGER)
        checked.results.update(_prepass_all([(path, display)], max_line))
    summary, problems = checked.results[path]
    if not problems:
        cache.store_summary(sha, summary)
    return summary, run.problems + problems


def _prepass_one(job: tuple[str, str, int]) -> tuple[str, LedgerSummary, list[Problem]]:
    path, display, max_line = job
    summary, problems = prepass(Path(path), display, max_line_bytes=max_line)
    return path, summary, problems


def _prepass_all(
    todo: list[tuple[str, str]], max_line: int
) -> dict[str, tuple[LedgerSummary, list[Problem]]]:
    """The pre-pass of each ledger (path, display path), in a process per core when
    there is enough to do (about 9 µs of CPython a line)."""
    jobs = [(path, display, max_line) for path, display in todo]
    total = sum(Path(path).stat().st_size for path, _display in todo)
    workers = min(os.cpu_count() or 1, len(jobs))
    if workers > 1 and total >= PARALLEL_BYTES:
        # spawn, not fork: forking a process that runs Polars' thread pool can deadlock.
        context = mp.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            results = list(pool.map(_prepass_one, jobs, chunksize=max(1, len(jobs) // 64)))
    else:
        results = [_prepass_one(job) for job in jobs]
    return {path: (summary, problems) for path, summary, problems in results}


def _duplicate_ids(runs: list[Run], locked: Collection[str] = ()) -> list[Problem]:
    """Two runs may not share an id, in their folders or in their ledgers.

    Published (locked) runs claim their ids first, so in a clash the newcomer
    is refused, never the run readers already cite.
    """
    seen: dict[str, str] = {}
    problems = []
    ordered = sorted(runs, key=lambda r: (r.run_id not in locked, r.run_id))
    for run in ordered:
        names = {run.run_id}
        if run.meta.get("benchmark_run_id"):
            names.add(str(run.meta["benchmark_run_id"]))
        for name in sorted(names):
            where = run.source.file_display(LEDGER if name != run.run_id else METADATA)
            if name in seen and seen[name] != run.run_id:
                published = " (a published run)" if seen[name] in locked else ""
                problems.append(
                    Problem(
                        where,
                        1 if where.endswith(LEDGER) else None,
                        None,
                        f"duplicate run id {name!r}: also used by runs/{seen[name]}{published}",
                    )
                )
            else:
                seen[name] = run.run_id
    return problems


def read_archive(
    layout: Layout, config: Config, cache: ReadCache | None = None, locked: Collection[str] = ()
) -> tuple[list[Run], list[Problem], set[str]]:
    """All valid runs, every problem found, and the ids of the runs left out."""
    runs, problems, invalid, _sources = read_archive_sources(layout, config, cache, locked)
    return runs, problems, invalid


def read_archive_sources(
    layout: Layout, config: Config, cache: ReadCache | None = None, locked: Collection[str] = ()
) -> tuple[list[Run], list[Problem], set[str], list[RunSource]]:
    """``read_archive``, plus every run folder discovery accepted (valid or not): the
    list of files that would be published, which the publication gate scans."""
    sources, problems = discover(layout, max_file_bytes=config.get("limits.max_file_bytes"))
    runs: list[Run] = []
    invalid: set[str] = set()
    for problem in problems:
        parts = problem.path.split("/")
        if len(parts) > 1:
            invalid.add(parts[1])
    for source, (run, run_problems) in zip(sources, read_runs(sources, config, cache), strict=True):
        problems += run_problems
        if run is None:
            invalid.add(source.run_id)
        else:
            runs.append(run)
    dup = _duplicate_ids(runs, locked)
    if dup:
        problems += dup
        bad = {p.path.split("/")[1] for p in dup}
        invalid |= bad
        runs = [r for r in runs if r.run_id not in bad]
    return runs, sorted(problems), invalid, sources
