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
from pathlib import Path
from typing import Any

import polars as pl

from sitegen import aggregate as agg
from sitegen import reuse, state
from sitegen.archive import Run, read_archive_sources
from sitegen.buildstate import BuildState
from sitegen.catalogue import build_catalogue
from sitegen.compare import all_comparisons, samples_of, warm_frame
from sitegen.config import load_config, placeholders, site_path
from sitegen.discover import LEDGER, discover
from sitegen.domain import Loaded
from sitegen.exceptions import BuildError, Problem, ValidationFailed
from sitegen.figures import cold_figures, figures_of, warm_figures
from sitegen.fsutil import fault, out_key, write_atomic
from sitegen.gate import format_report, load_allowlist, scan_tree
from sitegen.gate.findings_cache import ScanCache
from sitegen.integrity import (
    lock_text,
    read_lock,
    read_retractions,
    unlocked_published,
    updated_lock,
    verify,
)
from sitegen.layout import CATALOGUE, LOCK, PROTECTED, RETRACTIONS, Layout
from sitegen.links import check_links
from sitegen.output import Outputs, check_out, commit, discard, recover, spool_folder, stage
from sitegen.read_cache import ReadCache
from sitegen.repro import check_all
from sitegen.sitefiles import SiteFiles
from sitegen.verdicts import Settings

Echo = Callable[[str], Any] | None
# Written into the staging folder by finish_staging, which keeps them current itself.
FINISHED_LATER = ("pagefind/",)
REPORT_LIMIT = 10  # unreliable runs named by a build; `sitegen check` names them all


def _say(echo: Echo, message: str) -> None:
    if echo is not None:
        echo(message)


def load(
    archive: Path | Layout,
    *,
    strict: bool = False,
    skip_invalid: bool = False,
    use_cache: bool = True,
) -> Loaded:
    """Read, validate, check and aggregate the whole archive.

    Raises ValidationFailed with every problem of the archive, unless
    ``skip_invalid`` is set, in which case the invalid runs are left out and
    listed in ``left_out``.
    """
    layout = Layout.of(archive)
    if not layout.root.is_dir():
        raise BuildError(f"{layout.root}: archive folder does not exist")
    config = load_config(layout)
    build_state = BuildState(layout.cache if use_cache else None)
    cache = ReadCache(
        layout.cache if use_cache else None,
        max_line_bytes=config.get("limits.max_line_bytes"),
        state=build_state,
    )
    lock, lock_problems = read_lock(layout)
    runs, problems, invalid, sources = read_archive_sources(layout, config, cache, set(lock))
    allowlist = load_allowlist(layout)
    gate_cache = ScanCache(state=build_state)
    # The gate scans exactly the files discovery accepted for publication (of
    # every run folder, valid or not), no second walk with rules of its own.
    # Digests known from the manifests let it read only files not cached yet.
    known = {f"{r.run_id}/{m['path']}": m["sha256"] for r in runs for m in r.manifest}
    listed = {
        f"{s.run_id}/{f.rel}": known.get(f"{s.run_id}/{f.rel}") for s in sources for f in s.files
    }
    run_files = SiteFiles.written(layout.runs, listed)
    findings = scan_tree(layout.runs, "runs", allowlist, gate_cache, run_files) if listed else []
    # Integrity and publication-gate failures are never skipped: leaving a run
    # out of the site would hide the problem instead of reporting it.
    fatal = lock_problems + verify(runs, lock, invalid, problems) + _link_problems(runs)
    fatal += [f.to_problem() for f in findings]
    if fatal:
        raise ValidationFailed(sorted(set(fatal + (problems if not skip_invalid else []))))
    left_out: dict[str, list[Problem]] = {}
    if problems:
        if not skip_invalid:
            raise ValidationFailed(problems)
        for p in problems:
            parts = p.path.split("/")
            key = parts[1] if len(parts) > 1 and parts[0] == "runs" else p.path
            left_out.setdefault(key, []).append(p)
    checks = check_all(runs, settings=config.section("reproducibility"), state=build_state)
    if strict:
        unreliable = [
            Problem(f"runs/{rid}", message="unreliable: " + "; ".join(c["reasons"]))
            for rid, c in sorted(checks.items())
            if c["verdict"] == "unreliable"
        ]
        if unreliable or placeholders(config):
            raise ValidationFailed(placeholders(config) + unreliable)
    with_ledger = [r for r in runs if r.ledger is not None]
    calls = cache.calls(
        {r.run_id: (r.source.path / LEDGER, r.ledger_sha256 or "") for r in with_ledger}
    )
    build_state.flush()  # what was read stays known, whatever happens to the rest
    cache.release()  # no later step reads file digests, summaries or metadata
    # Each frame is made run by run, so the store keeps it per part (sitegen.callstore).
    derived = calls.per_run(
        {
            "aggregates": agg.rounded_aggregate,
            "warm-samples": warm_frame,
            "figures-warm": warm_figures,
            "figures-cold": cold_figures,
        }
    )
    rounded = derived["aggregates"]
    rows = agg.rows_by_run(rounded, is_rounded=True)
    retractions = read_retractions(layout)
    unknown = sorted(set(retractions) - {r.run_id for r in runs} - invalid)
    if unknown:
        raise ValidationFailed(
            [
                Problem(RETRACTIONS, message=f"[{rid}]: no such run in the archive")
                for rid in unknown
            ]
        )
    samples = samples_of(derived["warm-samples"])
    comparisons = all_comparisons(runs, samples, Settings.from_config(config), build_state)
    warm = derived["figures-warm"]
    cold = derived["figures-cold"]

    def figures(run_ids: set[str]) -> dict[str, Any]:
        chosen = pl.col("run_id").is_in(sorted(run_ids))
        return figures_of(warm.filter(chosen), cold.filter(chosen))

    catalogue, entry_keys = build_catalogue(
        runs, checks, rows, config, retractions, comparisons, figures, build_state
    )
    new_lock = updated_lock(runs, lock)
    return Loaded(
        layout,
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
        build_state,
        comparisons,
        samples,
        entry_keys,
    )


def _link_problems(runs: list[Run]) -> list[Problem]:
    """``supersedes`` must name another run of the archive, and the chain of
    corrections may not loop (``a -> b -> a``); a run naming itself is caught
    with its metadata."""
    target = {r.run_id: r.metadata.get("supersedes") for r in runs}
    problems = [
        Problem(
            f"runs/{rid}/metadata.json",
            message=f"$.supersedes: no run {old!r} in the archive",
        )
        for rid, old in target.items()
        if old and old not in target
    ]
    for rid in sorted(target):
        chain, seen = [rid], {rid}
        # Each run names at most one other, so following the links either ends
        # or comes back; it is a loop for every run on it, reported by each.
        while (nxt := target.get(chain[-1])) and nxt not in seen:
            chain.append(nxt)
            seen.add(nxt)
        if nxt == rid and len(chain) > 1:
            loop = " -> ".join([*chain, rid])
            problems.append(
                Problem(
                    f"runs/{rid}/metadata.json",
                    message=f"$.supersedes: runs supersede each other in a loop: {loop}",
                )
            )
    return problems


def _report(loaded: Loaded, echo: Echo, limit: int | None = None) -> None:
    """Counts, the unreliable runs (the first ``limit`` of them) and the runs left out."""
    n = len(loaded.runs)
    unreliable = sorted(rid for rid, c in loaded.checks.items() if c["verdict"] == "unreliable")
    _say(echo, f"{n} run(s), {loaded.calls.height} call(s); {len(unreliable)} unreliable")
    for problem in placeholders(loaded.config):  # --strict fails on these instead
        _say(echo, f"warning: {problem}")
    for rid in unreliable[:limit]:
        _say(echo, f"  runs/{rid}: unreliable: {'; '.join(loaded.checks[rid]['reasons'])}")
    if limit is not None and len(unreliable) > limit:
        _say(echo, f"  ... and {len(unreliable) - limit} more (`sitegen check` lists them all)")
    for key, problems in sorted(loaded.left_out.items()):
        _say(echo, f"left out {key}:")
        for p in problems:
            _say(echo, f"  {p}")


def check(archive: Path | Layout, *, strict: bool = False, echo: Echo = None) -> Loaded:
    """Everything ``build`` checks, and nothing it publishes.

    The site is rendered into a scratch folder under the cache and put through
    the same link check and publication gate, then deleted: ``check`` says "ok"
    exactly when ``build`` would succeed, and writes nothing but caches.
    """
    layout = _existing(archive)
    with build_lock(layout):
        loaded = load(layout, strict=strict)
        _report(loaded, echo)
        live = out_key(layout.site)  # only read: unchanged pages are linked from it
        records = reuse.records_dir(layout.cache, live)
        scratch = layout.check_scratch
        shutil.rmtree(scratch, ignore_errors=True)  # left by a killed check; we hold the lock
        try:
            _outputs, staging = _make_site(
                loaded, live, None, reuse.Previous(records, live), spare=None, builds=scratch
            )
            discard(staging, live)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        loaded.state.save()
    for warning in unlocked_published(layout, read_lock(layout)[0]):
        _say(echo, warning)
    _say(echo, "ok: archive is valid")
    return loaded


def _existing(archive: Path | Layout, out: Path | None = None) -> Layout:
    layout = Layout.of(archive, out)
    if not layout.root.is_dir():
        raise BuildError(f"{layout.root}: archive folder does not exist")
    return layout


@contextmanager
def build_lock(layout: Layout) -> Iterator[None]:
    """Only one build of an archive at a time (a second one fails at once)."""
    path = layout.build_lock
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
    archive: Path | Layout,
    *,
    out: Path | None = None,
    strict: bool = False,
    skip_invalid: bool = False,
    echo: Echo = None,
    inputs: str | None = None,
) -> Loaded:
    """Build ``catalogue.json`` and the site; on any failure both stay as they were.

    The site is made in a folder that is not live (a fresh one, or the spare:
    the build before the live one, told apart by inode) and swapped in by
    ``output.commit`` together with ``catalogue.json`` and ``runs.lock``.
    ``out`` is checked first (``output.check_out``): a build never replaces
    what it did not make. ``inputs`` is the fingerprint of the inputs
    (``state.fingerprint``) when the caller took it just before; otherwise the
    build takes it.
    """
    layout = _existing(archive, out)
    root, shown = layout.root, layout.site
    started = time.perf_counter()
    options = {"strict": strict, "skip_invalid": skip_invalid}
    with build_lock(layout):
        out = check_out(shown, root, PROTECTED)
        note = recover(root, layout.cache)
        if note:
            _say(echo, note)
        if inputs is None:
            inputs = state.fingerprint(layout, options)
        loaded = load(layout, strict=strict, skip_invalid=skip_invalid)
        fault("loaded")
        _report(loaded, echo, limit=REPORT_LIMIT)
        records = reuse.records_dir(layout.cache, out)
        outputs, staging = _make_site(
            loaded, out, echo, reuse.Previous(records, out), spare=records
        )
        try:
            files = {
                CATALOGUE: loaded.catalogue_json,
                LOCK: lock_text(loaded.lock).encode("utf-8"),
            }
            commit(staging, out, root, layout.cache, files)
        except BaseException:
            discard(staging, out)
            raise
        reuse.save(records, staging, outputs.reuse_record(), outputs.stamps)
        loaded.state.save()
        state.record(layout, options, inputs)
    elapsed = time.perf_counter() - started
    _say(echo, f"wrote {len(outputs.data)} file(s) to {shown} and {CATALOGUE} in {elapsed:.2f} s")
    return loaded


def _make_site(
    loaded: Loaded,
    out: Path,
    echo: Echo,
    previous: reuse.Previous,
    *,
    spare: Path | None,
    builds: Path | None = None,
) -> tuple[Outputs, Path]:
    """Render the site into a staging folder and run every check on it.

    ``spare`` is the records folder to take the spare build from (None: always
    a fresh folder, in ``builds`` when given). On failure the staging folder
    is deleted; the live site is never written. The pages wait in a spool
    folder beside it until they are staged, not in memory.
    """
    with spool_folder(out, builds) as spool:
        return _render_and_stage(loaded, out, echo, previous, spool, spare=spare, builds=builds)


def _render_and_stage(
    loaded: Loaded,
    out: Path,
    echo: Echo,
    previous: reuse.Previous,
    spool: Path,
    *,
    spare: Path | None,
    builds: Path | None,
) -> tuple[Outputs, Path]:
    # Imported here: Altair and Jinja take most of a second to import, and
    # the catalogue-only path (runner, importers) never needs them.
    from sitegen import charts
    from sitegen.downloads import data_downloads
    from sitegen.pages import SiteData, render_site

    chart_cache = loaded.layout.charts_cache
    data = SiteData(
        layout=loaded.layout,
        catalogue=loaded.catalogue,
        runs={r.run_id: r for r in loaded.runs},
        checks=loaded.checks,
        rows=loaded.rows,
        chart_cache=chart_cache,
        config=loaded.config,
        comparisons=loaded.comparisons,
        samples=loaded.samples,
        files=tuple(data_downloads(loaded, loaded.layout.cache)),
        catalogue_json=loaded.catalogue_json,
        entry_digests=loaded.entry_digests,
        progress=echo,
        previous=previous,
        spool=spool,
        state=loaded.state,
    )
    with charts.batch(chart_cache) as chart_batch:
        outputs = render_site(data)
    fresh = len(outputs.fresh())
    _say(echo, f"pages: {fresh} rendered, {previous.reused} unchanged and reused")
    _say(echo, loaded.comparisons.summary())
    charts_started = time.perf_counter()
    chart_batch.render_pending(progress=echo)
    outputs.transform(chart_batch.fill, ".html")
    chart_seconds = time.perf_counter() - charts_started
    _say(
        echo,
        f"charts: {chart_batch.hits} from cache, {chart_batch.rendered} rendered"
        f" in {chart_seconds:.1f} s",
    )
    fault("rendered")
    taken = reuse.take_spare(spare, out) if spare is not None else None
    staging = stage(outputs, out, taken, keep=FINISHED_LATER, builds=builds)
    try:
        # The copies just made are indexed at once: a build failing after this leaves
        # no copy that a later build would not find (and drop when it is unused).
        loaded.state.flush()
        fault("staged")
        written = {rel: outputs.sha256(rel) for rel in outputs.data}
        finish_staging(staging, loaded, written, echo)
        fault("checked")
    except BaseException:
        discard(staging, out)
        raise
    return outputs, staging


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

    layout = loaded.layout
    files = SiteFiles(staging) if written is None else SiteFiles.written(staging, written)
    if loaded.catalogue_cuts:  # none when the catalogue was encoded whole
        files.cuts[CATALOGUE] = loaded.catalogue_cuts
    if loaded.config.get("site.search"):
        # A recycled folder still holds an older index: index_site keeps what
        # is current there and replaces the rest (never writing into a file).
        _say(echo, str(index_site(staging, layout.search_cache, files, state=loaded.state)))
    else:
        shutil.rmtree(staging / BUNDLE, ignore_errors=True)
        files.forget(BUNDLE)
    base_path = site_path(loaded.config.get("archive.base_url"))
    broken = check_links(staging, None, files, base_path, state=loaded.state)
    if broken:
        raise BuildError("broken links in the built site:\n" + "\n".join(broken))
    fault("links-checked")
    # The gate also reads the built pages: text can reach them from places the
    # run scan does not see (templates, settings, methodology).
    findings = scan_tree(staging, "site", loaded.allowlist, loaded.gate_cache, files)
    if findings:
        raise ValidationFailed([f.to_problem() for f in findings])


def gate_report(
    archive: Path | Layout, *, out: Path | None = None, fingerprints: bool = False
) -> str:
    """The gate's findings over ``runs/`` and the built site, one per line.

    The site scanned is ``out`` when given, else the folder the last build
    wrote (recorded in its state: it may have been built with ``--out``),
    else ``site/``.
    """
    layout = Layout.of(archive, out)
    if out is not None and not layout.site.is_dir():
        raise BuildError(f"{out}: no built site there")
    site = layout.site if layout.site_given else state.last_out(layout)
    if site is None or not site.is_dir():
        site = layout.site
    allowlist = load_allowlist(layout)
    # the run files discovery would publish, as the build scans them; files it
    # refuses (hidden, special, links) are reported as they stand
    sources, refused = discover(
        layout, max_file_bytes=load_config(layout).get("limits.max_file_bytes")
    )
    listed = {f"{s.run_id}/{f.rel}": None for s in sources for f in s.files}
    findings = (
        scan_tree(layout.runs, "runs", allowlist, None, SiteFiles.written(layout.runs, listed))
        if listed
        else []
    )
    if site.is_dir():
        findings += scan_tree(site, "site", allowlist)
    report = format_report(findings, fingerprints=fingerprints)
    return "\n".join([str(p) for p in refused] + ([report] if report else []))


def refresh_catalogue(archive: Path | Layout) -> None:
    """Rewrite only ``catalogue.json`` (after the runner or an importer adds a run).

    Under the build lock, as a build: both write the caches (the call store's
    parts among them) and ``catalogue.json``. While a build runs this fails at
    once, and that build or the next one publishes the run.
    """
    layout = _existing(archive)
    with build_lock(layout):
        loaded = load(layout)
        _write_if_changed(layout.catalogue, loaded.catalogue_json)


def _write_if_changed(path: Path, data: bytes) -> None:
    """Write atomically, unless the file already holds exactly these bytes (a rebuild
    then leaves it, and its modification time, alone)."""
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return
    except OSError:
        pass
    write_atomic(path, data)
