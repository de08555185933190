"""The build pipeline: discover -> read -> validate -> aggregate -> catalogue -> render -> write.

Each step is a small function over plain data (see the modules named after
them); this module only wires them together, decides what counts as failure,
and reports progress.
"""

from __future__ import annotations

import fcntl
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from sitegen import aggregate as agg
from sitegen import reuse, state
from sitegen.archive import Run, read_archive
from sitegen.cache import ReadCache
from sitegen.catalogue import build_catalogue
from sitegen.compare import comparisons_of
from sitegen.config import Config, load_config
from sitegen.discover import LEDGER
from sitegen.exceptions import BuildError, Problem, ValidationFailed
from sitegen.fsutil import write_atomic
from sitegen.gate import Allowlist, format_report, load_allowlist, scan_tree
from sitegen.gate.cache import ScanCache
from sitegen.integrity import (
    LOCK_NAME,
    RETRACTIONS_NAME,
    lock_text,
    read_lock,
    read_retractions,
    updated_lock,
    verify,
)
from sitegen.jsonio import dumps
from sitegen.links import check_links
from sitegen.output import discard, stage, swap_in
from sitegen.repro import check_all
from sitegen.sitefiles import SiteFiles

Echo = Callable[[str], Any] | None
CATALOGUE = "catalogue.json"
CACHE_DIR = ".sitegen-cache"
# Written into the staging folder by finish_staging, which keeps them current itself.
FINISHED_LATER = ("pagefind/",)
REPORT_LIMIT = 10  # unreliable runs named by a build; `sitegen check` names them all


@dataclass
class Loaded:
    """The archive after reading, validation, the reproducibility check and aggregation."""

    archive: Path
    config: Config
    runs: list[Run]
    left_out: dict[str, list[Problem]]
    checks: dict[str, dict[str, Any]]
    calls: pl.DataFrame
    rows: dict[str, list[dict[str, Any]]]
    catalogue: dict[str, Any]
    lock: dict[str, Any]
    allowlist: Allowlist
    gate_cache: ScanCache
    # run id -> its verdicts against its baselines (sitegen.compare), from the calls.
    comparisons: dict[str, Any] = field(default_factory=dict)


def _say(echo: Echo, message: str) -> None:
    if echo is not None:
        echo(message)


def load(
    archive: Path, *, strict: bool = False, skip_invalid: bool = False, use_cache: bool = True
) -> Loaded:
    """Read, validate, check and aggregate the whole archive.

    Raises ValidationFailed with every problem of the archive, unless
    ``skip_invalid`` is set, in which case the invalid runs are left out and
    listed in ``left_out``.
    """
    archive = Path(archive)
    if not archive.is_dir():
        raise BuildError(f"{archive}: archive folder does not exist")
    config = load_config(archive)
    cache = ReadCache(
        archive / CACHE_DIR if use_cache else None,
        max_line_bytes=config.get("limits.max_line_bytes"),
    )
    runs, problems, invalid = read_archive(archive, config, cache)
    lock, lock_problems = read_lock(archive)
    allowlist = load_allowlist(archive)
    gate_cache = ScanCache(archive / CACHE_DIR / "gate.json")
    # The run files' digests are known from their manifests: the gate reads
    # only files whose findings it has not cached yet.
    known = {f"{r.run_id}/{m['path']}": m["sha256"] for r in runs for m in r.manifest}
    run_files = SiteFiles(archive / "runs", known) if (archive / "runs").is_dir() else None
    findings = scan_tree(archive / "runs", "runs", allowlist, gate_cache, run_files)
    # Integrity and publication-gate failures are never skipped: leaving a run
    # out of the site would hide the problem instead of reporting it.
    fatal = lock_problems + verify(runs, lock, invalid) + _link_problems(runs)
    fatal += [f.to_problem() for f in findings]
    if fatal:
        raise ValidationFailed(fatal + (problems if not skip_invalid else []))
    left_out: dict[str, list[Problem]] = {}
    if problems:
        if not skip_invalid:
            raise ValidationFailed(problems)
        for p in problems:
            parts = p.path.split("/")
            key = parts[1] if len(parts) > 1 and parts[0] == "runs" else p.path
            left_out.setdefault(key, []).append(p)
    checks = check_all(runs, max_load=config.get("reproducibility.max_load_avg"))
    if strict:
        unreliable = [
            Problem(f"runs/{rid}", message="unreliable: " + "; ".join(c["reasons"]))
            for rid, c in sorted(checks.items())
            if c["verdict"] == "unreliable"
        ]
        if unreliable:
            raise ValidationFailed(unreliable)
    with_ledger = [r for r in runs if r.ledger is not None]
    calls = cache.calls(
        {r.run_id: (r.source.path / LEDGER, r.ledger_sha256 or "") for r in with_ledger}
    )
    cache.save()
    rows = agg.rows_by_run(agg.aggregate(calls))
    retractions = read_retractions(archive)
    unknown = sorted(set(retractions) - {r.run_id for r in runs} - invalid)
    if unknown:
        raise ValidationFailed(
            [
                Problem(RETRACTIONS_NAME, message=f"[{rid}]: no such run in the archive")
                for rid in unknown
            ]
        )
    comparisons = comparisons_of(runs, calls, config)
    catalogue = build_catalogue(runs, checks, rows, config, retractions, comparisons)
    new_lock = updated_lock(runs, lock)
    return Loaded(
        archive,
        config,
        runs,
        left_out,
        checks,
        calls,
        rows,
        catalogue,
        new_lock,
        allowlist,
        gate_cache,
        comparisons,
    )


def _link_problems(runs: list[Run]) -> list[Problem]:
    """``supersedes`` must name another run of the archive."""
    ids = {r.run_id for r in runs}
    return [
        Problem(
            f"runs/{r.run_id}/metadata.json",
            message=f"$.supersedes: no run {r.metadata['supersedes']!r} in the archive",
        )
        for r in runs
        if r.metadata.get("supersedes") and r.metadata["supersedes"] not in ids
    ]


def _report(loaded: Loaded, echo: Echo, limit: int | None = None) -> None:
    """Counts, the unreliable runs (the first ``limit`` of them) and the runs left out."""
    n = len(loaded.runs)
    unreliable = sorted(rid for rid, c in loaded.checks.items() if c["verdict"] == "unreliable")
    _say(echo, f"{n} run(s), {loaded.calls.height} call(s); {len(unreliable)} unreliable")
    for rid in unreliable[:limit]:
        _say(echo, f"  runs/{rid}: unreliable: {'; '.join(loaded.checks[rid]['reasons'])}")
    if limit is not None and len(unreliable) > limit:
        _say(echo, f"  ... and {len(unreliable) - limit} more (`sitegen check` lists them all)")
    for key, problems in sorted(loaded.left_out.items()):
        _say(echo, f"left out {key}:")
        for p in problems:
            _say(echo, f"  {p}")


def check(archive: Path, *, strict: bool = False, echo: Echo = None) -> Loaded:
    """Validate only: report every problem, write nothing."""
    loaded = load(archive, strict=strict)
    _report(loaded, echo)
    _say(echo, "ok: archive is valid")
    return loaded


@contextmanager
def build_lock(archive: Path) -> Iterator[None]:
    """Only one build of an archive at a time (a second one fails at once)."""
    path = archive / ".sitegen-build.lock"
    with path.open("a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BuildError(f"{path}: another build of this archive is running") from None
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def build(
    archive: Path,
    *,
    out: Path | None = None,
    strict: bool = False,
    skip_invalid: bool = False,
    echo: Echo = None,
    inputs: str | None = None,
) -> Loaded:
    """Build ``catalogue.json`` and the site; on any failure both stay as they were.

    ``inputs`` is the fingerprint of the inputs (``state.fingerprint``) when the
    caller took it just before; otherwise the build takes it.
    """
    archive = Path(archive)
    out = Path(out) if out is not None else archive / "site"
    started = time.perf_counter()
    options = {"strict": strict, "skip_invalid": skip_invalid}
    with build_lock(archive) if archive.is_dir() else _no_lock():
        if inputs is None:
            inputs = state.fingerprint(archive, out, options) if archive.is_dir() else ""
        loaded = load(archive, strict=strict, skip_invalid=skip_invalid)
        _report(loaded, echo, limit=REPORT_LIMIT)
        # Imported here: Altair and Jinja take most of a second to import, and
        # the catalogue-only path (runner, importers) never needs them.
        from sitegen import charts
        from sitegen.downloads import data_downloads
        from sitegen.render import SiteData, render_site
        from sitegen.views import compact_page

        records = reuse.records_dir(archive / CACHE_DIR, out)
        catalogue_json = dumps(loaded.catalogue).encode("utf-8")

        data = SiteData(
            archive=archive,
            catalogue=loaded.catalogue,
            runs={r.run_id: r for r in loaded.runs},
            checks=loaded.checks,
            rows=loaded.rows,
            chart_cache=archive / CACHE_DIR / "charts",
            config=loaded.config,
            comparisons=loaded.comparisons,
            files=tuple(data_downloads(loaded, archive / CACHE_DIR)),
            catalogue_json=catalogue_json,
            progress=echo,
            previous=reuse.Previous(records, out),
        )
        with charts.batch(data.chart_cache) as chart_batch:
            outputs = render_site(data)
        fresh = len(outputs.fresh())
        _say(echo, f"pages: {fresh} rendered, {data.previous.reused} unchanged and reused")
        charts_started = time.perf_counter()
        chart_batch.render_pending(progress=echo)
        outputs.transform(lambda html: _finish_page(html, chart_batch.fill, compact_page), ".html")
        chart_seconds = time.perf_counter() - charts_started
        _say(
            echo,
            f"charts: {chart_batch.hits} from cache, {chart_batch.rendered} rendered"
            f" in {chart_seconds:.1f} s",
        )
        staging = stage(outputs, out, reuse.take_spare(records, out), keep=FINISHED_LATER)
        try:
            written = {rel: outputs.sha256(rel) for rel in outputs.data}
            finish_staging(staging, loaded, written, echo)
            swap_in(staging, out)
        except BaseException:
            discard(staging)
            raise
        reuse.save(records, staging, outputs.reuse_record())
        _write_if_changed(archive / CATALOGUE, catalogue_json)
        loaded.gate_cache.save()
        lock_path = archive / LOCK_NAME
        text = lock_text(loaded.lock)
        _write_if_changed(lock_path, text.encode("utf-8"))
        state.record(archive, out, options, inputs)
    elapsed = time.perf_counter() - started
    _say(echo, f"wrote {len(outputs.data)} file(s) to {out} and {CATALOGUE} in {elapsed:.2f} s")
    return loaded


def _finish_page(
    html: bytes, fill: Callable[[bytes], bytes], compact: Callable[[str], str]
) -> bytes:
    """Put the rendered charts into a page, then compact its inline SVG."""
    html = fill(html)
    if b"<svg" not in html:
        return html
    return compact(html.decode("utf-8")).encode("utf-8")


def finish_staging(
    staging: Path,
    loaded: Loaded,
    written: dict[str, str | None] | None = None,
    echo: Echo = None,
) -> None:
    """Post-render steps and checks on the complete staging folder, before the swap.

    Anything that fails here raises, and the previous site stays in place.
    ``written`` maps every output path to the sha256 of the bytes staged
    there (None when unknown): the steps below then read only what changed.
    """
    from sitegen.search import BUNDLE, index_site

    cache = loaded.archive / CACHE_DIR
    files = SiteFiles(staging) if written is None else SiteFiles.written(staging, written)
    if loaded.config.get("site.search"):
        # A recycled folder still holds an older index: index_site keeps what
        # is current there and replaces the rest (never writing into a file).
        _say(echo, str(index_site(staging, cache / "search", files)))
    else:
        shutil.rmtree(staging / BUNDLE, ignore_errors=True)
        files.forget(BUNDLE)
    broken = check_links(staging, cache / "links", files)
    if broken:
        raise BuildError("broken links in the built site:\n" + "\n".join(broken))
    # The gate also reads the built pages: text can reach them from places the
    # run scan does not see (templates, settings, methodology).
    findings = scan_tree(staging, "site", loaded.allowlist, loaded.gate_cache, files)
    if findings:
        raise ValidationFailed([f.to_problem() for f in findings])


@contextmanager
def _no_lock() -> Iterator[None]:
    yield


def gate_report(archive: Path, *, fingerprints: bool = False) -> str:
    """The gate's findings over ``runs/`` and the built ``site/``, one per line."""
    archive = Path(archive)
    allowlist = load_allowlist(archive)
    findings = scan_tree(archive / "runs", "runs", allowlist)
    if (archive / "site").is_dir():
        findings += scan_tree(archive / "site", "site", allowlist)
    return format_report(findings, fingerprints=fingerprints)


def refresh_catalogue(archive: Path) -> None:
    """Rewrite only ``catalogue.json`` (after the runner or an importer adds a run)."""
    loaded = load(Path(archive))
    _write_if_changed(Path(archive) / CATALOGUE, dumps(loaded.catalogue).encode("utf-8"))


def _write_if_changed(path: Path, data: bytes) -> None:
    """Write atomically, unless the file already holds exactly these bytes (a rebuild
    then leaves it, and its modification time, alone)."""
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return
    except OSError:
        pass
    write_atomic(path, data)
