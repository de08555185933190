"""Every build-speed figure at scale in one command, each with its target (issue #12).

usage: python benchmarks/scale.py [--runs 5000 10000] [--repeat 3] [--cold-repeat N]
                                  [--asv] [--asv-runs N] [--asv-exe PATH]
                                  [--no-bundled] [--timeout SECONDS] [--keep]

Bundled archive (a copy of the repository's runs/, sitegen.toml, methodology.md
and runs.lock):
  cold           full build, every cache removed (.sitegen-cache, site, .site.builds)
  unchanged      `sitegen build` again with nothing changed
  catalogue      refresh_catalogue only (what the runner and importers call),
                 caches warm
  add-one        a new run added, then `sitegen build`; with the pages the
                 build says it rendered and reused

Each generated archive of N runs (generate_archive.generate with 4 cells x 3
prompts x (1 cold + 8 warm) calls, so about 100 calls a run; the exact call
count is printed):
  polars-read    pl.scan_ndjson(every ledger, infer_schema_length=None).collect():
                 the floor for reading the calls
  parse+agg      discovery, metadata and ledger validation (column by column
                 in Polars, which also gives the calls; the line-by-line check
                 for lines not proved valid) and the aggregation, no cache; and
                 its ratio to polars-read
  load           sitegen.build.load(archive, use_cache=False): the above plus
                 the lock check and the publication gate's scan of every file
  cold           full build with every cache empty; the chart rendering time
                 the build prints is reported separately
  warm, new out  `sitegen build --force --out NEW`: the chart and read caches
                 warm, but no earlier build of that folder, so every page is
                 rendered (a full render, whatever page reuse skips)
  warm --force   `sitegen build --force` of site/ with every cache warm, and
                 the peak resident memory of the warm builds
  unchanged      `sitegen build` with nothing changed
  add-one        one run added, then `sitegen build`
  index, largest the size of site/index.html and of the largest HTML page
  growth         for consecutive sizes N1 < N2: warm time ratio against N2/N1

With --asv, the largest size (or --asv-runs N) is also published as an asv
project holding the same result points (see asv_compare.py), and `asv publish`
(cold) is timed against `sitegen build` (warm --force, and one run added) in
the same repetitions.

Every figure is the median of --repeat measurements (--cold-repeat for the
cold builds, which take longest), each in a fresh process; peak memory is the
largest over the repeats, read with getrusage(RUSAGE_CHILDREN) in a wrapper
process (the largest single process of the build). Every build runs a copy of
sitegen's code taken at the start: the work tree may change meanwhile, and
sitegen's caches and up-to-date check key on its own code. The core count and
load average are printed: this machine is shared, so compare figures from the
same run only. A table of every figure, its target and PASS/MISS ends the
output, also when a build fails halfway (with the figures measured so far).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from asv_compare import (  # noqa: E402
    BenchError,
    asv_project,
    check_published,
    find_asv,
    publish_command,
    snapshot_code,
    timed,
    versions,
)
from generate_archive import count_calls, generate, write_run  # noqa: E402

PY = sys.executable
# The archive shape: 4 x 3 x 9 = 108 calls a complete run, ~100 on average.
SHAPE = {"warm": 8, "cells": 4, "prompts": 3}
BUNDLED_FILES = ("sitegen.toml", "methodology.md", "runs.lock")
CACHES = (".sitegen-cache", "site", ".site.builds")
FIRST_ADDED = 90000  # index of the first added run: past any generated run's index
TARGET_RUNS = 10_000  # the archive size the speed targets are set for
MIB = 1024  # ru_maxrss is in KiB on Linux

# Runs one command and reports its wall time, the peak RSS of its process tree
# and its output as one JSON object. A separate process, so that RUSAGE_CHILDREN
# covers that one command only.
WRAPPER = """\
import json, resource, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)
seconds = time.perf_counter() - start
json.dump({
    "seconds": seconds,
    "peak_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    "returncode": proc.returncode,
    "stdout": proc.stdout,
    "stderr": proc.stderr[-8000:],
}, sys.stdout)
"""
PAGES_LINE = re.compile(r"^pages: (\d+) rendered, (\d+) unchanged and reused", re.M)
CHARTS_LINE = re.compile(r"^charts: (\d+) from cache, (\d+) rendered(?: in ([0-9.]+) s)?", re.M)
UNCHANGED_LINE = "nothing changed since the last build"
POLARS_READ = (
    "import glob, sys, polars as pl\n"
    "pl.scan_ndjson(sorted(glob.glob(sys.argv[1] + '/runs/*/run.jsonl')),"
    " infer_schema_length=None).collect()\n"
)
# Reading: discovery, metadata and ledger validation (column by column, the
# line-by-line check for lines not proved valid; its Polars decode gives the
# calls) and the aggregation, with no cache; the publication
# gate's secret scan of every file is timed apart (LOAD), as it is not parsing.
PARSE_AGGREGATE = """\
import sys
from sitegen.cli import tune_collector
tune_collector()  # as every sitegen command runs
from pathlib import Path
from sitegen import aggregate as agg
from sitegen.archive import read_archive
from sitegen.read_cache import ReadCache
from sitegen.config import load_config
from sitegen.discover import LEDGER
from sitegen.layout import Layout
archive = Layout.of(Path(sys.argv[1]))
config = load_config(archive)
cache = ReadCache(None, max_line_bytes=config.get("limits.max_line_bytes"))
runs, problems, invalid = read_archive(archive, config, cache)
ledgers = {r.run_id: (r.source.path / LEDGER, r.ledger_sha256 or "") for r in runs if r.ledger}
agg.rows_by_run(agg.aggregate(cache.calls(ledgers).frame()))
"""
LOAD = (
    "import sys\nfrom sitegen.cli import tune_collector\ntune_collector()\n"
    "from sitegen.build import load\nload(sys.argv[1], use_cache=False)\n"
)
CATALOGUE = (
    "import sys\nfrom sitegen.build import refresh_catalogue\nrefresh_catalogue(sys.argv[1])\n"
)


@dataclass(frozen=True)
class Sample:
    """One measured command: wall seconds, peak RSS and what it printed."""

    seconds: float
    peak_kib: int
    stdout: str

    def pages(self) -> tuple[int, int] | None:
        """(rendered, reused) from the build's `pages:` line, if it printed one."""
        m = PAGES_LINE.search(self.stdout)
        return (int(m[1]), int(m[2])) if m else None

    def charts(self) -> tuple[int, int, float | None] | None:
        """(from cache, rendered, seconds or None) from the build's `charts:` summary line."""
        m = CHARTS_LINE.search(self.stdout)
        if m is None:
            return None
        return int(m[1]), int(m[2]), float(m[3]) if m[3] else None

    @property
    def skipped(self) -> bool:
        """True when the build found nothing changed and did no work."""
        return UNCHANGED_LINE in self.stdout

    def describe(self) -> str:
        """The progress-line detail: memory, and what the build said it did."""
        parts = [f"peak {self.peak_kib / MIB:.0f} MiB"]
        pages = self.pages()
        if pages:
            parts.append(f"pages {pages[0]} rendered / {pages[1]} reused")
        charts = self.charts()
        if charts:
            took = f" in {charts[2]:.1f} s" if charts[2] is not None else ""
            parts.append(f"charts {charts[0]} cached / {charts[1]} rendered{took}")
        if self.skipped:
            parts.append("nothing changed")
        return ", ".join(parts)


@dataclass(frozen=True)
class Figure:
    """One line of the final table: a median and, if the issue sets one, its target."""

    label: str
    value: float | None
    unit: str
    target: float | None = None
    op: str = "<"  # "<" or "<=": how value must compare with target
    runs: int | None = None  # archive size measured
    at_runs: int | None = None  # size the target is set for (None: every size)
    note: str = ""

    def verdict(self) -> str:
        if self.target is None:
            return ""
        if self.value is None:
            return "?"
        met = self.value < self.target if self.op == "<" else self.value <= self.target
        if not met:
            return "MISS"
        # Build time grows with size: meeting a target below the size it is set
        # for is no proof of meeting it there, but missing it is.
        if self.at_runs is not None and self.runs is not None and self.runs < self.at_runs:
            return "(pass)"
        return "PASS"

    def value_text(self) -> str:
        return "n/a" if self.value is None else f"{_number(self.value)} {self.unit}"

    def target_text(self) -> str:
        if self.target is None:
            return "-"
        where = f" at {self.at_runs:,} runs" if self.at_runs is not None else ""
        return f"{self.op} {_number(self.target)} {self.unit}{where}"


def _number(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


@dataclass
class Bench:
    """What every measurement shares: the code snapshot, the settings, the figures so far."""

    env: dict[str, str]
    repeat: int
    cold_repeat: int
    timeout: float
    keep: bool = False  # keep the archives (--keep), to inspect them afterwards
    read_only: bool = False  # only the reading figures (--read-only)
    figures: list[Figure] = field(default_factory=list)
    next_index: int = FIRST_ADDED

    def run(self, cmd: list[str], cwd: Path) -> Sample:
        """Run ``cmd`` in a fresh process under the wrapper; a failure raises BenchError."""
        proc = subprocess.Popen(
            [PY, "-P", "-c", WRAPPER, *cmd],
            cwd=cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group: a timeout ends the whole tree
        )
        try:
            out, err = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _end(proc)
            raise BenchError(f"{' '.join(cmd)} took longer than {self.timeout:.0f} s") from None
        except BaseException:  # Ctrl-C reaches only us: the child has its own session
            _end(proc)
            raise
        if proc.returncode != 0:
            raise BenchError(f"measuring {' '.join(cmd)} failed:\n{err[-4000:]}")
        result = json.loads(out)
        if result["returncode"] != 0:
            tail = "\n".join((result["stderr"] or result["stdout"]).strip().splitlines()[-20:])
            raise BenchError(f"{' '.join(cmd)} failed (exit {result['returncode']}):\n{tail}")
        return Sample(result["seconds"], result["peak_kib"], result["stdout"])

    def build(self, archive: Path, *extra: str) -> Sample:
        """`sitegen build` of ``archive`` (not quiet: its summary lines are parsed)."""
        return self.run([PY, "-P", "-m", "sitegen", "build", str(archive), *extra], archive)

    def python(self, code: str, archive: Path) -> Sample:
        return self.run([PY, "-P", "-c", code, str(archive)], archive)

    def add_run(self, archive: Path) -> None:
        """Write one new complete run (a fresh id each time) into ``archive``."""
        index = self.next_index
        self.next_index += 1
        write_run(
            archive,
            index,
            rng=random.Random(index),
            warm=SHAPE["warm"],
            n_cells=SHAPE["cells"],
            n_prompts=SHAPE["prompts"],
            kind="complete",
        )

    def add(self, figure: Figure) -> None:
        self.figures.append(figure)

    def discard(self, path: Path) -> None:
        """Remove a measured archive (a 10,000-run one and its site take gigabytes)."""
        if not self.keep:
            shutil.rmtree(path, ignore_errors=True)


def _end(proc: subprocess.Popen[str]) -> None:
    """Kill the process group ``proc`` leads (the wrapper and the build it runs)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.communicate()


def repeated(where: str, what: str, times: int, once: Callable[[], Sample]) -> list[Sample]:
    """Measure ``once`` ``times`` times, printing a progress line for each."""
    samples = []
    for i in range(times):
        print(f"  [{where}] {what} {i + 1}/{times}: ", end="", flush=True)
        try:
            sample = once()
        except BaseException:
            print("failed", flush=True)
            raise
        samples.append(sample)
        print(f"{sample.seconds:.2f} s ({sample.describe()})", flush=True)
    return samples


def median(samples: list[Sample]) -> float:
    return statistics.median(s.seconds for s in samples)


def clear_caches(archive: Path) -> None:
    """Remove every cache and build output, so the next build starts from nothing."""
    for name in CACHES:
        path = archive / name
        if path.is_symlink() or path.is_file():
            path.unlink()
        else:
            shutil.rmtree(path, ignore_errors=True)


def cold_build(bench: Bench, archive: Path) -> Sample:
    clear_caches(archive)
    return bench.build(archive)


def add_one(bench: Bench, archive: Path) -> Sample:
    bench.add_run(archive)
    return bench.build(archive)


def pages_note(samples: list[Sample]) -> str:
    """Median pages rendered and reused by the add-one builds, as the builds printed them."""
    counts = [p for p in (s.pages() for s in samples) if p is not None]
    if not counts:
        return "the build printed no `pages:` line"
    rendered = statistics.median(c[0] for c in counts)
    reused = statistics.median(c[1] for c in counts)
    return f"pages: {rendered:.0f} rendered, {reused:.0f} reused"


def unchanged_note(samples: list[Sample]) -> str:
    missed = sum(not s.skipped for s in samples)
    return f"{missed} of {len(samples)} rebuilt: the up-to-date check missed" if missed else ""


# --- the bundled archive ---------------------------------------------------------------


def copy_bundled(dest: Path) -> Path:
    shutil.copytree(ROOT / "runs", dest / "runs")
    for name in BUNDLED_FILES:
        if (ROOT / name).is_file():
            shutil.copy(ROOT / name, dest / name)
    return dest


def bundled(bench: Bench, tmp: Path) -> None:
    archive = copy_bundled(tmp / "bundled")
    where = "bundled"
    print(f"bundled archive: {len(list((archive / 'runs').iterdir()))} runs", flush=True)
    cold = repeated(where, "cold build", bench.cold_repeat, lambda: cold_build(bench, archive))
    bench.add(Figure("bundled: full site, cold", median(cold), "s", 5.0))
    same = repeated(where, "unchanged rebuild", bench.repeat, lambda: bench.build(archive))
    bench.add(
        Figure(
            "bundled: rebuild, nothing changed", median(same), "s", 0.3, note=unchanged_note(same)
        )
    )
    catalogue = repeated(
        where, "refresh_catalogue", bench.repeat, lambda: bench.python(CATALOGUE, archive)
    )
    bench.add(Figure("bundled: catalogue only", median(catalogue), "s", 0.5))
    added = repeated(where, "add one run + build", bench.repeat, lambda: add_one(bench, archive))
    bench.add(Figure("bundled: one run added", median(added), "s", note=pages_note(added)))


# --- generated archives ----------------------------------------------------------------


@dataclass(frozen=True)
class SizeResult:
    """The warm medians of one size, for the growth figures."""

    runs: int
    warm: dict[str, float]  # kind of warm build -> median seconds


def read_floor(bench: Bench, archive: Path, n: int) -> None:
    """polars-read and parse+agg, both with no cache of any kind."""
    where = f"{n} runs"
    read = repeated(where, "polars-read", bench.repeat, lambda: bench.python(POLARS_READ, archive))

    def parse() -> Sample:
        clear_caches(archive)  # load() still reads the gate's scan cache: keep it empty
        return bench.python(PARSE_AGGREGATE, archive)

    def load() -> Sample:
        clear_caches(archive)
        return bench.python(LOAD, archive)

    parsed = repeated(where, "parse+agg", bench.repeat, parse)
    loaded = repeated(where, "load (parse+agg, lock, gate scan)", bench.repeat, load)
    bench.add(Figure(f"{where}: polars-read", median(read), "s", runs=n))
    bench.add(Figure(f"{where}: parse+agg", median(parsed), "s", runs=n))
    bench.add(Figure(f"{where}: load incl. gate scan, no cache", median(loaded), "s", runs=n))
    ratio = median(parsed) / median(read)
    bench.add(Figure(f"{where}: parse+agg / polars-read", ratio, "x", 2.0, "<=", runs=n))


def chart_seconds(samples: list[Sample]) -> tuple[float | None, str]:
    """Median chart time the cold builds printed (None if they print none), and a note."""
    charts = [c for c in (s.charts() for s in samples) if c is not None]
    if not charts:
        return None, "the build printed no `charts:` summary"
    note = f"{statistics.median(c[1] for c in charts):.0f} charts rendered"
    times = [c[2] for c in charts if c[2] is not None]
    if len(times) < len(charts):
        return None, note + "; the build does not print their time"
    return statistics.median(times), note


def cold_figures(bench: Bench, archive: Path, n: int) -> None:
    """Full builds from nothing; the chart time the build prints, separately."""
    where = f"{n} runs"
    cold = repeated(where, "cold build", bench.cold_repeat, lambda: cold_build(bench, archive))
    charts, charts_note = chart_seconds(cold)
    bench.add(Figure(f"{where}: full build, cold", median(cold), "s", 120.0, runs=n))
    peak = max(s.peak_kib for s in cold) / MIB
    bench.add(Figure(f"{where}: peak RSS, cold build", peak, "MiB", 1536.0, runs=n))
    bench.add(Figure(f"{where}: chart rendering, cold", charts, "s", runs=n, note=charts_note))


def fresh_out_build(bench: Bench, archive: Path, scratch: Path) -> Sample:
    """A forced build into a new --out folder: no earlier build of it, so no page is reused.

    The chart and read caches stay warm (they belong to the archive, not to
    the output folder), so this is the full render the issue's 60 s target is
    about, whatever the page reuse of `--force` into site/ skips.
    """
    out = scratch / "site"
    try:
        return bench.build(archive, "--force", "--out", str(out))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def warm_figures(bench: Bench, archive: Path, n: int, scratch: Path) -> dict[str, float]:
    """Warm full builds (every page rendered, then `--force`) and their peak RSS; the medians."""
    where = f"{n} runs"
    # Before the builds into site/: a build into another folder makes the next
    # plain build of site/ run for real, which the unchanged figure must not see.
    full = repeated(
        where,
        "warm build, new --out",
        bench.repeat,
        lambda: fresh_out_build(bench, archive, scratch),
    )
    warm = repeated(
        where, "warm build --force", bench.repeat, lambda: bench.build(archive, "--force")
    )
    medians = {}
    for kind, samples in (("warm --force", warm), ("warm, every page rendered", full)):
        missed = sum(c[1] for c in (s.charts() for s in samples) if c is not None)
        note = f"{missed} charts rendered: the chart cache missed" if missed else ""
        medians[kind] = median(samples)
        label = f"{where}: full build, {kind}"
        bench.add(Figure(label, medians[kind], "s", 60.0, runs=n, at_runs=TARGET_RUNS, note=note))
    peak = max(s.peak_kib for s in warm + full) / MIB
    label = f"{where}: peak RSS, warm builds"
    bench.add(Figure(label, peak, "MiB", 2048.0, runs=n, at_runs=TARGET_RUNS))
    return medians


def incremental_figures(bench: Bench, archive: Path, n: int) -> None:
    """A rebuild with nothing changed, then one run added and a build, each repeated."""
    where = f"{n} runs"
    same = repeated(where, "unchanged rebuild", bench.repeat, lambda: bench.build(archive))
    note = unchanged_note(same)
    bench.add(
        Figure(f"{where}: rebuild, nothing changed", median(same), "s", 0.3, runs=n, note=note)
    )
    added = repeated(where, "add one run + build", bench.repeat, lambda: add_one(bench, archive))
    note = pages_note(added)
    label = f"{where}: one run added"
    bench.add(Figure(label, median(added), "s", 3.0, runs=n, at_runs=TARGET_RUNS, note=note))


def page_sizes(bench: Bench, archive: Path, n: int) -> None:
    """The index page against its target, the largest page against the per-page budget."""
    site = (archive / "site").resolve()
    index = (site / "index.html").stat().st_size / 1024
    largest, path = max(
        (p.stat().st_size, p.relative_to(site).as_posix()) for p in site.rglob("*.html")
    )
    bench.add(Figure(f"{n} runs: index page", index, "KiB", 300.0, runs=n, at_runs=TARGET_RUNS))
    bench.add(
        Figure(
            f"{n} runs: largest HTML page",
            largest / 1024,
            "KiB",
            200.0,
            "<=",
            runs=n,
            note=f"{path}; budget of docs/deploying.md",
        )
    )


def make_archive(archive: Path, n: int) -> int:
    """Generate ``n`` runs of the issue's shape into ``archive``; return the call count."""
    started = time.perf_counter()
    generate(archive, n, **SHAPE)
    calls = count_calls(archive)
    took = time.perf_counter() - started
    print(f"generated {n} runs, {calls:,} calls in {took:.0f} s", flush=True)
    return calls


def generated(bench: Bench, tmp: Path, n: int, asv: str | None) -> SizeResult:
    """Every figure of one generated size (and the asv comparison, if it is ``asv``'s size)."""
    archive = tmp / f"gen-{n}"
    started = time.perf_counter()
    calls = make_archive(archive, n)
    bench.add(Figure(f"{n} runs: call records", calls, "calls", runs=n))
    read_floor(bench, archive, n)
    if bench.read_only:
        bench.discard(archive)
        return SizeResult(n, {})
    cold_figures(bench, archive, n)
    warm = warm_figures(bench, archive, n, tmp / "fresh-out")
    incremental_figures(bench, archive, n)
    page_sizes(bench, archive, n)
    if asv is not None:
        compare_asv(bench, archive, n, asv, tmp / "asv")
    bench.discard(archive)
    print(f"  ({n} runs measured in {time.perf_counter() - started:.0f} s)", flush=True)
    return SizeResult(n, warm)


def growth(bench: Bench, a: SizeResult, b: SizeResult) -> None:
    """Warm time ratio against size ratio: 2x the runs may cost at most 2.2x the time."""
    size_ratio = b.runs / a.runs
    for kind in a.warm:
        time_ratio = b.warm[kind] / a.warm[kind]
        note = f"(time x{time_ratio:.2f}) / (runs x{size_ratio:.2f})"
        label = f"growth {a.runs} -> {b.runs} runs, {kind}"
        bench.add(Figure(label, time_ratio / size_ratio, "", 1.1, "<=", note=note))


# --- asv -------------------------------------------------------------------------------


def compare_asv(bench: Bench, archive: Path, n: int, asv: str, root: Path) -> None:
    """Time `asv publish` (cold) against sitegen's warm --force and add-one builds.

    The asv project holds the result points of the archive as it is when the
    comparison starts; each repetition then adds one run to the sitegen side
    (the add-one build), a difference of one run in N.
    """
    where = f"asv, {n} runs"
    points, project = asv_project(archive, root)
    publish = publish_command(asv, project)
    print(f"  [{where}] {points.count:,} result points ({len(points.metrics)} statistics)")
    force: list[Sample] = []
    added: list[Sample] = []
    published: list[float] = []
    for i in range(bench.repeat):
        force.append(bench.build(archive, "--force"))
        added.append(add_one(bench, archive))
        shutil.rmtree(root / "html", ignore_errors=True)
        published.append(timed(publish, root, bench.timeout))
        if i == 0:
            print(f"  [{where}] {check_published(root / 'html', points, project)}")
        print(
            f"  [{where}] {i + 1}/{bench.repeat}: sitegen warm --force {force[-1].seconds:.2f} s,"
            f" one run added {added[-1].seconds:.2f} s; asv publish cold {published[-1]:.2f} s",
            flush=True,
        )
    asv_s = statistics.median(published)
    note = f"{points.count:,} result points"
    bench.add(Figure(f"{where}: asv publish, cold", asv_s, "s", runs=n, note=note))
    bench.add(Figure(f"{where}: sitegen build --force, warm", median(force), "s", runs=n))
    bench.add(Figure(f"{where}: sitegen, one run added", median(added), "s", runs=n))
    bench.add(
        Figure(f"{where}: asv cold / sitegen warm --force", asv_s / median(force), "x", runs=n)
    )
    bench.add(
        Figure(f"{where}: asv cold / sitegen one run added", asv_s / median(added), "x", runs=n)
    )
    # The targets: a full warm build at most half of asv's, one run added at most a tenth.
    label = f"{where}: sitegen warm --force / asv publish"
    bench.add(Figure(label, median(force) / asv_s, "x", 0.5, "<=", runs=n))
    label = f"{where}: sitegen one run added / asv publish"
    bench.add(Figure(label, median(added) / asv_s, "x", 0.1, "<=", runs=n))
    bench.discard(root)


def asv_only(bench: Bench, tmp: Path, n: int, asv: str) -> None:
    """The asv comparison on a size that is not among --runs: build it once, untimed."""
    archive = tmp / f"asv-{n}"
    make_archive(archive, n)
    first = bench.build(archive)
    print(f"  [asv, {n} runs] first build (untimed): {first.seconds:.1f} s", flush=True)
    compare_asv(bench, archive, n, asv, tmp / "asv")
    bench.discard(archive)


# --- report ----------------------------------------------------------------------------


def table(figures: list[Figure]) -> str:
    rows = [("figure", "median", "target", "verdict", "note")]
    rows += [(f.label, f.value_text(), f.target_text(), f.verdict(), f.note) for f in figures]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[4]]).rstrip())
    return "\n".join(lines)


def header(args: argparse.Namespace, code: str, asv: str | None) -> str:
    load = os.getloadavg()
    return "\n".join(
        [
            f"cores: {os.cpu_count()}  load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
            "versions: " + "  ".join(f"{k} {v}" for k, v in versions(asv).items()),
            f"sitegen code: a copy of {code} taken at the start",
            f"repeat: {args.repeat} (cold builds: {args.cold_repeat})  sizes: {args.runs}",
        ]
    )


def footer(figures: list[Figure]) -> str:
    lines = ["", table(figures), ""]
    if any(f.verdict() == "(pass)" for f in figures):
        lines.append(
            f"(pass): met at this size; the target is set for {TARGET_RUNS:,} runs, "
            "where only a measurement there can pass it"
        )
    lines.append(f"cores: {os.cpu_count()}  load average now: {os.getloadavg()[0]:.2f}")
    return "\n".join(lines)


def measure(args: argparse.Namespace, bench: Bench, tmp: Path, asv: str | None) -> None:
    if not args.no_bundled:
        bundled(bench, tmp)
    sizes = sorted(set(args.runs))
    asv_size = args.asv_runs if args.asv_runs is not None else (sizes[-1] if sizes else None)
    results = []
    for n in sizes:
        results.append(generated(bench, tmp, n, asv if n == asv_size else None))
        if len(results) >= 2 and not bench.read_only:
            growth(bench, results[-2], results[-1])
    if asv is not None and asv_size is not None and asv_size not in sizes:
        asv_only(bench, tmp, asv_size, asv)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, nargs="*", default=[5000, 10000], help="sizes")
    parser.add_argument("--repeat", type=int, default=3, help="measurements per figure (3)")
    parser.add_argument(
        "--cold-repeat", type=int, default=None, help="cold builds per figure (--repeat)"
    )
    parser.add_argument("--asv", action="store_true", help="also time asv publish")
    parser.add_argument("--asv-runs", type=int, default=None, help="asv size (largest --runs)")
    parser.add_argument("--asv-exe", default=None, help="asv executable ($ASV, else asv)")
    parser.add_argument("--no-bundled", action="store_true", help="skip the bundled archive")
    parser.add_argument(
        "--read-only",
        action="store_true",
        help="only the reading figures (polars-read, parse+agg, load) of each size",
    )
    parser.add_argument(
        "--timeout", type=float, default=3600.0, help="limit per command, seconds (3600)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary folder and its archives"
    )
    args = parser.parse_args(argv)
    if args.cold_repeat is None:
        args.cold_repeat = args.repeat
    if args.repeat < 1 or args.cold_repeat < 1 or any(n < 1 for n in args.runs):
        parser.error("--repeat, --cold-repeat and every --runs size must be at least 1")
    if args.asv_runs is not None and not args.asv:
        parser.error("--asv-runs needs --asv")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="sitegen-scale-"))
    bench: Bench | None = None
    status = 0
    try:
        asv = find_asv(args.asv_exe) if args.asv else None
        env, code = snapshot_code(tmp / "code")
        print(header(args, code, asv), flush=True)
        bench = Bench(env, args.repeat, args.cold_repeat, args.timeout, args.keep, args.read_only)
        measure(args, bench, tmp, asv)
    except BenchError as exc:
        print(f"scale: {exc}", file=sys.stderr, flush=True)
        status = 1
    except KeyboardInterrupt:
        print("scale: interrupted", file=sys.stderr, flush=True)
        status = 130
    finally:
        if bench is not None:
            print(footer(bench.figures), flush=True)
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
