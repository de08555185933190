"""Time ``sitegen build`` on the bundled archive and on generated archives of N runs.

usage: python benchmarks/build_timing.py [--runs 100 1000] [--repeat 3] [--bundled]

Each build runs in a fresh subprocess (as a publisher would run it), so the
figures include interpreter start-up and imports. For each archive it reports
the median of --repeat cold builds (chart cache emptied first) and of warm
rebuilds (nothing changed, cache kept), plus the catalogue-only time
(``refresh_catalogue``), all in seconds, with the machine's core count.
"""

from __future__ import annotations

import argparse
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

from generate_archive import generate  # noqa: E402


def timed(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def measure(archive: Path, repeat: int) -> dict[str, float]:
    build = [sys.executable, "-m", "sitegen", "build", str(archive), "--quiet"]
    catalogue = [
        sys.executable,
        "-c",
        "import sys; from sitegen.build import refresh_catalogue; refresh_catalogue(sys.argv[1])",
        str(archive),
    ]
    cold, warm, cat = [], [], []
    for _ in range(repeat):
        shutil.rmtree(archive / ".sitegen-cache", ignore_errors=True)
        cold.append(timed(build, archive))
        warm.append(timed(build, archive))
        cat.append(timed(catalogue, archive))
    return {
        "cold": statistics.median(cold),
        "rebuild": statistics.median(warm),
        "catalogue": statistics.median(cat),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, nargs="*", default=[100, 1000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--bundled", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}  python: {sys.version.split()[0]}  repeat: {args.repeat}")
    header = ("archive", "runs", "calls", "cold s", "rebuild s", "catalogue s")
    widths = (-28, 6, 9, 8, 10, 12)
    print(
        " ".join(
            f"{h:<{-w}}" if w < 0 else f"{h:>{w}}" for h, w in zip(header, widths, strict=True)
        )
    )
    targets: list[tuple[str, Path]] = []
    tmp = Path(tempfile.mkdtemp(prefix="sitegen-bench-"))
    try:
        if args.bundled:
            bundled = tmp / "bundled"
            shutil.copytree(ROOT / "runs", bundled / "runs")
            for name in ("methodology.md", "sitegen.toml"):
                if (ROOT / name).is_file():
                    shutil.copy(ROOT / name, bundled / name)
            targets.append(("bundled", bundled))
        for n in args.runs:
            folder = tmp / f"generated-{n}"
            generate(folder, n)
            targets.append((f"generated ({n} runs)", folder))
        for label, folder in targets:
            figures = measure(folder, args.repeat)
            runs = sum(1 for p in (folder / "runs").iterdir() if p.is_dir())
            calls = sum(
                sum(1 for line in p.open() if '"type":"call"' in line or '"type": "call"' in line)
                for p in (folder / "runs").glob("*/run.jsonl")
            )
            print(
                f"{label:<28} {runs:>6} {calls:>9} {figures['cold']:>8.2f} "
                f"{figures['rebuild']:>10.2f} {figures['catalogue']:>12.2f}",
                flush=True,
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
