"""Time ``sitegen build`` side by side with ``asv publish`` on the same result points.

usage: python benchmarks/asv_compare.py [--runs 1000] [--warm 5] [--repeat 3]
                                        [--asv PATH] [--timeout SECONDS] [--keep]

asv (airspeed velocity) publishes a static site of benchmark results and
re-renders all of it on every publish. This script puts both tools in front
of the same numbers and times them in the same run, on the same machine:

1. ``generate_archive.generate`` writes a synthetic sitegen archive of
   ``--runs`` runs into a temporary folder; an untimed ``sitegen build``
   publishes it, and the result points are counted in the published
   ``site/data/aggregates.csv``.
2. The same values are written out as an asv project: a throwaway git
   repository with one commit per run that has calls (written with ``git
   fast-import``, committer dates = run start times), ``asv.conf.json`` pointing
   at it, ``results/benchmarks.json`` (asv format 2), ``results/<machine>/
   machine.json`` (format 1) and one results file per commit (format 2, with
   ``result_columns``), as written by asv 0.6. Each aggregate statistic is a
   ``track`` benchmark parameterized by (cell, prompt, phase); each run is a
   commit. The first publish is checked: the graphs asv writes must hold
   exactly as many non-null values as there are result points.
3. Each repetition times, in fresh subprocesses: ``sitegen build`` cold
   (``.sitegen-cache`` and ``site/`` removed, so every chart is rendered
   again), warm (nothing changed), warm with ``--force`` (a full rebuild that
   keeps the chart and read caches), then ``asv publish --no-pull`` cold (no
   ``html_dir``) and warm (``html_dir`` present; asv deletes and rewrites it
   anyway). Medians, the asv/sitegen ratios, the core count and the versions
   are printed. The builds run a copy of sitegen's code taken at the start,
   so edits made to the work tree meanwhile do not change what is measured.

Result point, as counted here: one non-null aggregate statistic of one
(run, cell, prompt, phase) group, i.e. one non-empty statistic cell in the
published ``data/aggregates.csv``. The statistics are every numeric column
except the group keys and the bookkeeping counts ``n`` and ``errors`` (today:
p50 and p95 of first_delta_ms, ttft_ms and total_duration_ms, mean tokens/s,
mean completion and prompt tokens, success rate). Why this definition: asv's
result point is one value of one benchmark (for one parameter combination) at
one commit, the thing it plots and runs step detection over; the many timed
samples behind that value are not points, nor are the sample counts it stores
beside it (``stats_number``, ``stats_repeat``). The sitegen equivalents are a
run (commit), a statistic (benchmark), a (cell, prompt, phase) group
(parameter combination), its calls (samples) and ``n``/``errors`` (counts).
Counting call records instead would count samples, which asv never plots.

Install asv (a benchmark dependency only, not a test one)::

    pip install asv

``pip install --dry-run asv`` first: on this project's environment it only
adds packages and upgrades ``packaging`` (26.2 to 26.3). If it would
downgrade something the project needs, install it into a venv instead
(``python -m venv /tmp/asv-venv && /tmp/asv-venv/bin/pip install asv``) and
pass ``--asv /tmp/asv-venv/bin/asv`` or set ``ASV=/tmp/asv-venv/bin/asv``.
The default is ``asv`` on PATH. Also needs ``git``. Nothing goes to the
network: the repository asv reads is local, and ``--no-pull`` is passed.
All temporary folders are removed at the end, also on failure.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from generate_archive import count_calls, generate  # noqa: E402

DEFINITION = (
    "result point = one non-null aggregate statistic of one (run, cell, prompt, phase) "
    "group: a non-empty statistic cell of the published data/aggregates.csv (statistics = "
    "its numeric columns except the keys and the counts n, errors). asv side: one non-null "
    "value of one track benchmark (one per statistic) for one parameter combination "
    "(cell, prompt, phase) at one commit (one per run)."
)
KEYS = ("run_id", "cell_id", "prompt_id", "phase")
COUNTS = ("n", "errors")
MACHINE = "sitegen-synthetic"
BRANCH = "main"
RESULT_COLUMNS = ["result", "params", "version", "started_at", "duration"]
ASV_RESULTS_VERSION = 2  # asv.results.Results.api_version in asv 0.6
ASV_BENCHMARKS_VERSION = 2  # asv.benchmarks.Benchmarks.api_version
ASV_MACHINE_VERSION = 1  # asv.machine.Machine.api_version
ASV_CONF_VERSION = 1  # asv.config.Config.api_version


class BenchError(Exception):
    """A problem the user can act on; printed without a traceback."""


@dataclass
class Points:
    """The result points of a built sitegen archive, read from its aggregates.csv."""

    metrics: list[str]
    # run id -> (cell, prompt, phase) -> metric -> value (None when empty)
    values: dict[str, dict[tuple[str, str, str], dict[str, float | None]]] = field(
        default_factory=dict
    )
    rows: int = 0

    @property
    def count(self) -> int:
        return sum(
            v is not None
            for groups in self.values.values()
            for stats in groups.values()
            for v in stats.values()
        )


def _float(text: str) -> float | None:
    if text == "":
        return None
    return float(text)


def read_points(aggregates_csv: Path) -> Points:
    """Count result points in the aggregates table the site publishes."""
    if not aggregates_csv.is_file():
        raise BenchError(f"{aggregates_csv} missing: did the sitegen build publish the data?")
    with aggregates_csv.open(newline="", encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    if not table:
        raise BenchError(f"{aggregates_csv} has no rows: the archive has no calls")
    header = list(table[0])
    missing = [k for k in KEYS if k not in header]
    if missing:
        raise BenchError(f"{aggregates_csv}: missing key columns {missing}")
    metrics = []
    for column in header:
        if column in KEYS or column in COUNTS:
            continue
        try:
            for row in table:
                _float(row[column])
        except ValueError:
            continue  # not a numeric statistic
        metrics.append(column)
    points = Points(metrics=metrics, rows=len(table))
    for row in table:
        group = (row["cell_id"], row["prompt_id"], row["phase"])
        points.values.setdefault(row["run_id"], {})[group] = {m: _float(row[m]) for m in metrics}
    return points


def _run_start(archive: Path, run_id: str) -> datetime:
    meta = json.loads((archive / "runs" / run_id / "metadata.json").read_text(encoding="utf-8"))
    return datetime.fromisoformat(meta["started_at_utc"].replace("Z", "+00:00"))


def make_git_repo(repo: Path, commits: list[tuple[str, datetime]]) -> list[str]:
    """One empty commit per run on branch main, in one ``git fast-import``; return the hashes."""
    git = shutil.which("git")
    if git is None:
        raise BenchError("git not found on PATH: asv needs a git repository for commit hashes")
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
    subprocess.run(
        [git, "init", "-q", "-b", BRANCH, str(repo)], check=True, env=env, capture_output=True
    )
    stream = []
    for run_id, start in commits:
        message = f"sitegen run {run_id}\n".encode()
        stream.append(
            f"commit refs/heads/{BRANCH}\n"
            f"committer sitegen benchmark <bench@example.invalid> {int(start.timestamp())} +0000\n"
            f"data {len(message)}\n".encode()
            + message
            + b"\n"
        )
    subprocess.run(
        [git, "fast-import", "--quiet"],
        cwd=repo,
        input=b"".join(stream),
        check=True,
        env=env,
        capture_output=True,
    )
    out = subprocess.run(
        [git, "rev-list", "--reverse", BRANCH],
        cwd=repo,
        check=True,
        env=env,
        capture_output=True,
        text=True,
    ).stdout.split()
    if len(out) != len(commits):
        raise BenchError(f"git made {len(out)} commits, expected {len(commits)}")
    return out


def _unit(metric: str) -> str:
    if "_ms_" in metric:
        return "ms"
    if metric.startswith("tokens_per_sec"):
        return "tokens/s"
    if "tokens" in metric:
        return "tokens"
    if metric == "success_rate":
        return "fraction"
    return "unit"


def _js_ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


@dataclass(frozen=True)
class AsvProject:
    config: Path
    commits: int
    benchmarks: int
    combinations: int  # parameter combinations per benchmark


def write_asv_project(root: Path, archive: Path, points: Points) -> AsvProject:
    """Write an asv project whose results hold exactly ``points``."""
    run_ids = sorted(points.values, key=lambda r: (_run_start(archive, r), r))
    starts = {r: _run_start(archive, r) for r in run_ids}
    hashes = make_git_repo(root / "repo", [(r, starts[r]) for r in run_ids])

    groups = {g for per_run in points.values.values() for g in per_run}
    cells = sorted({g[0] for g in groups})
    prompts = sorted({g[1] for g in groups})
    phases = sorted({g[2] for g in groups})
    params = [[repr(c) for c in cells], [repr(p) for p in prompts], [repr(p) for p in phases]]
    combos = [(c, p, ph) for c in cells for p in prompts for ph in phases]  # itertools.product

    results_dir = root / "results"
    machine_dir = results_dir / MACHINE
    machine_dir.mkdir(parents=True)
    version = "0" * 64  # benchmark code hash; fixed, the same in every results file
    benchmarks: dict[str, object] = {}
    for metric in points.metrics:
        name = f"sitegen.{metric}"
        benchmarks[name] = {
            "code": f"# aggregate statistic {metric} of sitegen's data/aggregates.csv\n",
            "name": name,
            "param_names": ["cell", "prompt", "phase"],
            "params": params,
            "timeout": 60.0,
            "type": "track",
            "unit": _unit(metric),
            "version": version,
        }
    benchmarks["version"] = ASV_BENCHMARKS_VERSION
    (results_dir / "benchmarks.json").write_text(json.dumps(benchmarks, indent=4, sort_keys=True))

    cores = str(os.cpu_count() or 1)
    machine = {
        "arch": platform.machine() or "unknown",
        "cpu": f"synthetic ({cores} cores)",
        "machine": MACHINE,
        "num_cpu": cores,
        "os": f"{platform.system()} {platform.release()}",
        "ram": "unknown",
    }
    (machine_dir / "machine.json").write_text(
        json.dumps({**machine, "version": ASV_MACHINE_VERSION}, indent=4, sort_keys=True)
    )
    python = f"{sys.version_info[0]}.{sys.version_info[1]}"
    env_name = f"existing-py{python}"
    written = 0
    for run_id, commit in zip(run_ids, hashes, strict=True):
        per_run = points.values[run_id]
        started = _js_ms(starts[run_id])
        results = {}
        for metric in points.metrics:
            values = [per_run.get(g, {}).get(metric) for g in combos]
            written += sum(v is not None for v in values)
            results[f"sitegen.{metric}"] = [values, params, version, started, 1.0]
        data = {
            "commit_hash": commit,
            "env_name": env_name,
            "date": started,
            "params": {**machine, "python": python},
            "python": python,
            "requirements": {},
            "env_vars": {},
            "result_columns": RESULT_COLUMNS,
            "results": results,
            "durations": {},
            "version": ASV_RESULTS_VERSION,
        }
        (machine_dir / f"{commit[:8]}-{env_name}.json").write_text(
            json.dumps(data, separators=(",", ":"))
        )

    conf = {
        "version": ASV_CONF_VERSION,
        "project": "sitegen synthetic archive",
        "project_url": "#",
        "repo": str(root / "repo"),
        "dvcs": "git",
        "branches": [BRANCH],
        "environment_type": "existing",
        "results_dir": str(results_dir),
        "html_dir": str(root / "html"),
        "hash_length": 8,
    }
    config = root / "asv.conf.json"
    config.write_text(json.dumps(conf, indent=4))
    if written != points.count:
        raise BenchError(f"wrote {written} asv values for {points.count} result points")
    return AsvProject(config, len(hashes), len(points.metrics), len(combos))


def _numbers(value: object) -> Iterator[float]:
    if isinstance(value, list):
        for item in value:
            yield from _numbers(item)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield value


def published_asv_points(html: Path, benchmarks: set[str]) -> int:
    """Non-null values in the per-benchmark graphs asv wrote (summary graphs excluded)."""
    total = 0
    for path in (html / "graphs").rglob("*.json"):
        if path.stem not in benchmarks or path.relative_to(html / "graphs").parts[0] == "summary":
            continue
        for _revision, value in json.loads(path.read_text(encoding="utf-8")):
            total += sum(1 for _ in _numbers(value))
    return total


def asv_project(archive: Path, root: Path) -> tuple[Points, AsvProject]:
    """Write an asv project under ``root`` holding the result points of the built ``archive``."""
    points = read_points(archive / "site" / "data" / "aggregates.csv")
    return points, write_asv_project(root, archive, points)


def publish_command(asv: str, project: AsvProject) -> list[str]:
    """``asv publish`` of ``project``; ``--no-pull``: the repository is local, nothing to fetch."""
    return [asv, "--config", str(project.config), "publish", "--no-pull"]


def check_published(html: Path, points: Points, project: AsvProject) -> str:
    """Check that asv's first publish kept every result point; return a line saying so.

    asv skips results it cannot match to a commit or benchmark without an
    error, so a timing of a publish that dropped points would flatter it.
    """
    seen = published_asv_points(html, {f"sitegen.{m}" for m in points.metrics})
    index = json.loads((html / "index.json").read_text(encoding="utf-8"))
    if seen != points.count:
        raise BenchError(
            f"asv published {seen} values, expected {points.count}: "
            "it skipped some results (rerun with --keep, then asv publish -v there)"
        )
    return (
        f"asv project: {project.commits} commits (one per run with calls), "
        f"{project.benchmarks} track benchmarks x {project.combinations} "
        f"(cell, prompt, phase) parameter combinations; asv publish accepted it: "
        f"{len(index['revision_to_hash'])} revisions, its graphs hold {seen} "
        "non-null values"
    )


def find_asv(explicit: str | None) -> str:
    """The asv executable: --asv, else $ASV, else asv on PATH; a clean error when absent."""
    name = explicit or os.environ.get("ASV") or "asv"
    found = shutil.which(name)
    if found is None:
        raise BenchError(
            f"asv not found ({name!r}): install it with `pip install asv`, or point --asv / "
            "the ASV environment variable at an asv executable (e.g. one in a venv)"
        )
    return found


def timed(cmd: list[str], cwd: Path, timeout: float, env: dict[str, str] | None = None) -> float:
    """Wall-clock seconds of one subprocess; its output is kept only to report a failure."""
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{' '.join(cmd)} took longer than {timeout:.0f} s") from exc
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-20:])
        raise BenchError(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{tail}")
    return elapsed


def versions(asv: str | None = None) -> dict[str, str]:
    """Versions of Python and the packages that set the figures (and of asv, when given)."""
    out = {"python": platform.python_version()}
    for dist in ("sitegen", "polars", "vl-convert-python"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    if asv is not None:
        probe = subprocess.run([asv, "--version"], capture_output=True, text=True)
        out["asv"] = (probe.stdout or probe.stderr).strip().removeprefix("asv ").strip() or "?"
    return out


def _clear(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def snapshot_code(dest: Path) -> tuple[dict[str, str], str]:
    """Copy sitegen's code, theme and methodology; return (env that imports the copy, label).

    The work tree may change while the benchmark runs (other people edit it), and
    sitegen's up-to-date check fingerprints its own code: a changed file would
    turn a "nothing changed" rebuild into a full one halfway through. Every
    build here runs the copy taken at the start instead.
    """
    try:
        import sitegen
    except ImportError as exc:
        raise BenchError(f"sitegen is not importable ({exc}): pip install -e . first") from exc

    package = Path(sitegen.__file__).resolve().parent
    source = package.parent
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(package, dest / "sitegen", ignore=ignore)
    for extra in ("templates", "methodology.md"):
        if (source / extra).is_dir():
            shutil.copytree(source / extra, dest / extra, ignore=ignore)
        elif (source / extra).is_file():
            shutil.copy2(source / extra, dest / extra)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(dest), os.environ.get("PYTHONPATH", "")]),
    }
    env["PYTHONPATH"] = env["PYTHONPATH"].rstrip(os.pathsep)
    probe = subprocess.run(
        [sys.executable, "-P", "-c", "import sitegen; print(sitegen.__file__)"],
        env=env,
        cwd=dest.parent,
        capture_output=True,
        text=True,
    )
    if Path(probe.stdout.strip()).resolve().parent != (dest / "sitegen").resolve():
        raise BenchError(f"could not run sitegen from its snapshot in {dest}: {probe.stderr}")
    label = str(source)
    head = subprocess.run(
        ["git", "-C", str(source), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
    )
    if head.returncode == 0:
        label += f" at {head.stdout.strip()}"
    return env, label


def measure(args: argparse.Namespace, asv: str, tmp: Path) -> None:
    env, code = snapshot_code(tmp / "code")
    archive = tmp / "archive"
    ids = generate(archive, args.runs, warm=args.warm)
    build = [sys.executable, "-m", "sitegen", "build", str(archive), "--quiet"]
    help_text = subprocess.run(
        [*build[:4], "--help"], env=env, capture_output=True, text=True, check=False
    ).stdout
    has_force = "--force" in help_text

    first = timed(build, archive, args.timeout, env)  # not in the table: publishes the data
    calls = count_calls(archive)
    asv_root = tmp / "asv"
    points, project = asv_project(archive, asv_root)
    publish = publish_command(asv, project)

    print(DEFINITION)
    print(
        f"sitegen archive: {len(ids)} runs ({len(points.values)} with calls), {calls} calls, "
        f"{points.rows} (run, cell, prompt, phase) groups x {len(points.metrics)} statistics "
        f"-> {points.count} result points"
    )
    print(f"  statistics: {', '.join(points.metrics)}")
    print(f"  first build (untimed, publishes the data): {first:.1f} s", flush=True)

    cold_s: list[float] = []
    warm_s: list[float] = []
    force_s: list[float] = []
    cold_a: list[float] = []
    warm_a: list[float] = []
    for i in range(args.repeat):
        _clear(archive / ".sitegen-cache")
        _clear(archive / "site")
        cold_s.append(timed(build, archive, args.timeout, env))
        warm_s.append(timed(build, archive, args.timeout, env))
        if has_force:
            force_s.append(timed([*build, "--force"], archive, args.timeout, env))
        _clear(asv_root / "html")
        cold_a.append(timed(publish, asv_root, args.timeout))
        if i == 0:
            print(check_published(asv_root / "html", points, project), flush=True)
        warm_a.append(timed(publish, asv_root, args.timeout))
        print(
            f"  repetition {i + 1}/{args.repeat}: sitegen cold {cold_s[-1]:.1f} s, "
            f"warm {warm_s[-1]:.2f} s"
            + (f", warm --force {force_s[-1]:.1f} s" if has_force else "")
            + f"; asv cold {cold_a[-1]:.1f} s, warm {warm_a[-1]:.1f} s",
            flush=True,
        )

    med = statistics.median
    rows = [
        ("sitegen build, cold (cache and site/ removed)", cold_s),
        ("sitegen build, warm (nothing changed)", warm_s),
    ]
    if has_force:
        rows.append(("sitegen build --force, warm (cache kept)", force_s))
    rows += [
        ("asv publish --no-pull, cold (no html dir)", cold_a),
        ("asv publish --no-pull, warm (html dir kept)", warm_a),
    ]
    print()
    print(f"{'median of ' + str(args.repeat):<48} {'seconds':>9} {'points/s':>10}")
    for label, values in rows:
        m = med(values)
        print(f"{label:<48} {m:>9.2f} {points.count / m:>10.0f}")
    print()
    print(f"ratio asv/sitegen, cold: {med(cold_a) / med(cold_s):.2f}x")
    print(f"ratio asv/sitegen, warm (nothing changed): {med(warm_a) / med(warm_s):.1f}x")
    if has_force:
        print(f"ratio asv/sitegen, warm --force: {med(warm_a) / med(force_s):.2f}x")
    print(f"cores: {os.cpu_count()}  load average now: {os.getloadavg()[0]:.2f}")
    print("versions: " + "  ".join(f"{k} {v}" for k, v in versions(asv).items()))
    print(f"sitegen code: a copy of {code} taken at the start")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000, help="runs in the archive (1000)")
    parser.add_argument("--warm", type=int, default=5, help="warm calls per cell and prompt (5)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions per timing (3)")
    parser.add_argument("--asv", default=None, help="asv executable (default: $ASV, else asv)")
    parser.add_argument(
        "--timeout", type=float, default=3600.0, help="limit per command, seconds (3600)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary folder (to inspect it)"
    )
    args = parser.parse_args(argv)
    if args.runs < 1 or args.repeat < 1 or args.warm < 0:
        parser.error("--runs and --repeat must be at least 1, --warm at least 0")
    tmp = Path(tempfile.mkdtemp(prefix="sitegen-asv-"))
    try:
        asv = find_asv(args.asv)
        measure(args, asv, tmp)
    except BenchError as exc:
        print(f"asv_compare: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("asv_compare: interrupted", file=sys.stderr)
        return 130
    finally:
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
