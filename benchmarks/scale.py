"""Every build-speed figure in one command: the bundled archive and generated archives.

usage: python benchmarks/scale.py [--runs 1000 2000] [--repeat 3] [--calls-per-run 96]

For the bundled archive (a copy of runs/, sitegen.toml, methodology.md):
  catalogue      refresh_catalogue only (what the runner and importers call)
  cold           full build, every cache emptied
  unchanged      `sitegen build` again with nothing changed
  add-one        a new run added, then `sitegen build`

For each generated archive of N runs (about --calls-per-run call records each):
  polars-read    pl.scan_ndjson(every ledger).collect(): the floor for reading
  parse+agg      sitegen's pre-pass, validation, Polars read and aggregation
                 (load() with empty caches), and its ratio to polars-read
  cold           full build with every cache empty (charts rendered in parallel)
  warm           full build again, caches warm (--force: nothing skipped)
  add-one        one run added, then a build
  peak MiB       peak resident memory of the warm build process
  index KiB      size of the first index page

Each figure is the median of --repeat measurements, each in a fresh process.
The machine's core count is printed first; this machine is shared, so compare
figures from the same run only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from generate_archive import generate, write_run  # noqa: E402

PY = sys.executable


def run(cmd: list[str], cwd: Path | None = None) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one child process."""
    wrapper = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)\n"
        "t = time.perf_counter() - t\n"
        "print(t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    out = subprocess.run(
        [PY, "-c", wrapper, *cmd], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.split()
    return float(out[0]), int(out[1])


def build_cmd(archive: Path, *extra: str) -> list[str]:
    return [PY, "-m", "sitegen", "build", str(archive), "--quiet", *extra]


def clear_caches(archive: Path) -> None:
    shutil.rmtree(archive / ".sitegen-cache", ignore_errors=True)


def add_run(archive: Path, index: int, calls_shape: dict[str, int]) -> Path:
    import random

    write_run(archive, index, rng=random.Random(index), kind="complete", **calls_shape)
    return archive / "runs" / f"synthetic-{index:05d}"


def median_of(repeat: int, measure) -> tuple[float, int]:
    results = [measure() for _ in range(repeat)]
    return statistics.median(r[0] for r in results), max(r[1] for r in results)


def bundled(tmp: Path, repeat: int) -> None:
    archive = tmp / "bundled"
    shutil.copytree(ROOT / "runs", archive / "runs")
    for name in ("sitegen.toml", "methodology.md", "runs.lock"):
        if (ROOT / name).is_file():
            shutil.copy(ROOT / name, archive / name)
    catalogue = [
        PY,
        "-c",
        "import sys; from sitegen.build import refresh_catalogue; refresh_catalogue(sys.argv[1])",
        str(archive),
    ]
    figures = {}
    figures["catalogue"] = median_of(repeat, lambda: run(catalogue))[0]

    def cold():
        clear_caches(archive)
        return run(build_cmd(archive, "--force"))

    figures["cold"] = median_of(repeat, cold)[0]
    run(build_cmd(archive))
    figures["unchanged"] = median_of(repeat, lambda: run(build_cmd(archive)))[0]
    shape = {"warm": 5, "n_cells": 3, "n_prompts": 3}
    times = []
    for i in range(repeat):
        add_run(archive, 90000 + i, shape)
        times.append(run(build_cmd(archive))[0])
    figures["add-one"] = statistics.median(times)
    print(
        "bundled archive: " + ", ".join(f"{k} {v:.2f} s" for k, v in figures.items()),
        flush=True,
    )


def polars_read(archive: Path) -> tuple[float, int]:
    code = (
        "import sys, glob, polars as pl\n"
        "pl.scan_ndjson(sorted(glob.glob(sys.argv[1] + '/runs/*/run.jsonl')),"
        " infer_schema_length=None).collect()\n"
    )
    return run([PY, "-c", code, str(archive)])


def parse_aggregate(archive: Path) -> tuple[float, int]:
    code = "import sys\nfrom sitegen.build import load\nload(sys.argv[1], use_cache=False)\n"
    return run([PY, "-c", code, str(archive)])


def generated(tmp: Path, n: int, repeat: int, calls_per_run: int) -> dict[str, float]:
    # 4 cells x 3 prompts x (1 cold + warm) calls per run.
    warm = max(1, round(calls_per_run / 12) - 1)
    archive = tmp / f"gen-{n}"
    generate(archive, n, warm=warm, cells=4, prompts=3)
    calls = sum(
        sum(1 for line in p.open("rb") if b'"type":"call"' in line)
        for p in (archive / "runs").glob("*/run.jsonl")
    )
    f: dict[str, float] = {"runs": n, "calls": calls}
    f["polars-read"] = median_of(repeat, lambda: polars_read(archive))[0]
    f["parse+agg"] = median_of(repeat, lambda: parse_aggregate(archive))[0]
    clear_caches(archive)
    f["cold"] = run(build_cmd(archive, "--force"))[0]
    warm_time, peak = median_of(repeat, lambda: run(build_cmd(archive, "--force")))
    f["warm"] = warm_time
    f["peak MiB"] = peak / 1024
    times = []
    for i in range(repeat):
        add_run(archive, 80000 + i, {"warm": warm, "n_cells": 4, "n_prompts": 3})
        times.append(run(build_cmd(archive))[0])
    f["add-one"] = statistics.median(times)
    index = archive / "site" / "index.html"
    f["index KiB"] = index.stat().st_size / 1024
    shutil.rmtree(archive, ignore_errors=True)
    return f


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, nargs="*", default=[1000, 2000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--calls-per-run", type=int, default=96)
    parser.add_argument("--no-bundled", action="store_true")
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}  python: {sys.version.split()[0]}  repeat: {args.repeat}")
    tmp = Path(tempfile.mkdtemp(prefix="sitegen-scale-"))
    try:
        if not args.no_bundled:
            bundled(tmp, args.repeat)
        rows = []
        for n in args.runs:
            started = time.perf_counter()
            f = generated(tmp, n, args.repeat, args.calls_per_run)
            f["ratio parse/read"] = f["parse+agg"] / f["polars-read"]
            rows.append(f)
            print(json.dumps({k: round(v, 2) for k, v in f.items()}), flush=True)
            print(f"  (measured in {time.perf_counter() - started:.0f} s)", flush=True)
        if len(rows) >= 2:
            a, b = rows[0], rows[-1]
            growth = (b["warm"] / a["warm"]) / (b["runs"] / a["runs"])
            print(
                f"warm build growth per unit of size, {a['runs']} -> {b['runs']} runs: {growth:.2f}"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
