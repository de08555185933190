"""Machine exclusivity, measured by the runner: the per-call samples and the checklist item.

The end-to-end test records real runs with ``sitegen run`` (typed as a user
types it, in the archive folder) against the fake engine, once while two CPU
hogs spin on this machine's cores and once without, then builds the site and
reads the verdict on the run page.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from sitegen.runner import contention

ROOT = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, PYTHONPATH=str(ROOT))
LINUX = Path("/proc/stat").is_file()


# ---------------------------------------------------------------- a fake /proc


def write_proc(
    root: Path, busy: int, procs: dict[int, tuple[int, int]], children: dict[int, list[int]]
) -> None:
    """A /proc with the machine's busy ticks and (utime+stime, ppid) per pid."""
    root.mkdir(exist_ok=True)
    # user nice system idle iowait irq softirq steal guest guest_nice
    (root / "stat").write_text(f"cpu  {busy} 0 0 99999 7 0 0 0 5 0\ncpu0 1 2 3 4\n")
    for pid, (ticks, ppid) in procs.items():
        task = root / str(pid) / "task" / str(pid)
        task.mkdir(parents=True, exist_ok=True)
        fields = ["S", str(ppid)] + ["0"] * 9 + [str(ticks), "0"] + ["0"] * 30
        (root / str(pid) / "stat").write_text(f"{pid} (odd) name) " + " ".join(fields) + "\n")
        (task / "children").write_text(" ".join(map(str, children.get(pid, []))))


def test_other_cpu_is_busy_time_minus_runner_and_engine_tree(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    # Runner 100, engine 200 with a child 300; a child 400 is born during the call.
    write_proc(proc, 1000, {100: (50, 1), 200: (500, 1), 300: (70, 200)}, {200: [300]})
    sampler = contention.Sampler(proc, own_pid=100)
    sampler.engines["c"] = ("local", 200)
    mark = sampler.start("c")
    assert mark is not None and mark.procs == {100: 50, 200: 500, 300: 70}
    # +300 busy ticks: runner +20, engine +100, child +30, new child 40 -> other 110.
    write_proc(
        proc,
        1300,
        {100: (70, 1), 200: (600, 1), 300: (100, 200), 400: (40, 200)},
        {200: [300, 400]},
    )
    record = sampler.finish("c", mark)
    ticks = contention.TICKS
    assert record is not None
    assert record["machine_other_cpu_s"] == round(110 / ticks, 3)
    assert record["machine_engine_cpu_s"] == round(170 / ticks, 3)
    assert record["machine_runner_cpu_s"] == round(20 / ticks, 3)
    assert record["machine_engine"] == "local" and record["machine_cores"] >= 1


def test_a_remote_engine_leaves_everything_but_the_runner_to_others(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    write_proc(proc, 1000, {100: (50, 1)}, {})
    sampler = contention.Sampler(proc, own_pid=100)
    sampler.locate("c", "http://192.0.2.7:11434")  # TEST-NET: never this machine
    mark = sampler.start("c")
    write_proc(proc, 1100, {100: (60, 1)}, {})
    record = sampler.finish("c", mark)
    assert record is not None
    assert record["machine_engine"] == "remote" and record["machine_engine_cpu_s"] is None
    assert record["machine_other_cpu_s"] == round(90 / contention.TICKS, 3)


def test_without_proc_nothing_is_recorded_not_zero(tmp_path: Path) -> None:
    sampler = contention.Sampler(tmp_path / "no-proc-here")
    sampler.locate("c", "http://127.0.0.1:1")
    assert sampler.available is False
    assert sampler.finish("c", sampler.start("c")) is None
    assert contention.summarise([{"type": "call", "cell_id": "c"}]) is None


def test_summary_takes_median_p90_and_run_mean() -> None:
    calls = [
        {"machine_cores": 2, "machine_wall_s": 1.0, "machine_other_cpu_s": v, "machine_load_1m": ld}
        for v, ld in ((0.1, 1.0), (0.2, 1.5), (1.5, 3.0))
    ]
    s = contention.summarise(calls)
    assert s == {
        "cores": 2,
        "calls_sampled": 3,
        "other_cores_p50": 0.2,
        "other_cores_p90": 1.24,
        "other_cores_mean": 0.6,
        "engine": "remote",
        "load_1m_p50": 1.5,
        "load_1m_max": 3.0,
    }


def start_fake_engine(*args: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "fake_engine.py"), "--port", "0", *args],
        stdout=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    line = proc.stdout.readline() if proc.stdout else ""
    assert line.startswith("PORT "), line
    return proc, int(line.split()[1])


@pytest.mark.skipif(not LINUX, reason="reads /proc")
def test_the_engine_process_is_found_by_its_listening_port() -> None:
    engine, port = start_fake_engine()
    try:
        assert contention.find_engine_pid(f"http://127.0.0.1:{port}") == ("local", engine.pid)
        assert contention.find_engine_pid(f"http://localhost:{port}/v1") == ("local", engine.pid)
    finally:
        engine.kill()
        engine.wait()


# ---------------------------------------------------------------- end to end


HOG = "import time\nend = time.time() + {secs}\nwhile time.time() < end:\n    pass\n"


def record_run(archive: Path, port: int) -> dict:
    """``sitegen run`` in the archive folder, as typed; returns the packaged run's metadata."""
    before = set((archive / "runs").iterdir()) if (archive / "runs").is_dir() else set()
    subprocess.run(
        [
            *(sys.executable, "-m", "sitegen", "run", "--cells", "cells.yaml", "--warm", "4"),
            *("--prompt", "P-EASY", "--prompt", "P-MEDIUM", "--force-load", "--quiet"),
        ],
        cwd=archive,
        env=ENV,
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    (new,) = set((archive / "runs").iterdir()) - before
    return json.loads((new / "metadata.json").read_text(encoding="utf-8"))


def exclusivity_row(archive: Path, run_id: str) -> tuple[list[str], str]:
    page = BeautifulSoup(
        (archive / "site" / "runs" / run_id / "index.html").read_text(encoding="utf-8"),
        "html.parser",
    )
    row = page.select_one('table.checklist tr[data-check="exclusive"]')
    assert row is not None
    return row["class"], row.select_one("td.evidence").get_text(" ", strip=True)


@pytest.mark.skipif(not LINUX, reason="the runner measures contention from /proc")
def test_a_cpu_hog_on_the_machine_fails_exclusivity_and_a_quiet_run_does_not(
    tmp_path: Path,
) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    engine, port = start_fake_engine("--tokens", "20", "--token-delay-ms", "10")
    (archive / "cells.yaml").write_text(
        "cells:\n  - node: devbox\n    engine: llamacpp\n    model: tiny\n"
        f"    endpoint: http://127.0.0.1:{port}\n",
        encoding="utf-8",
    )
    cores = os.cpu_count() or 1
    hogs: list[subprocess.Popen[bytes]] = []
    try:
        quiet = record_run(archive, port)
        hogs = [
            subprocess.Popen([sys.executable, "-c", HOG.format(secs=120)]) for _ in range(cores)
        ]
        time.sleep(0.5)
        busy = record_run(archive, port)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
        engine.kill()
        engine.wait()
    for md in (quiet, busy):
        machine = md["machine"]
        assert machine["cores"] == cores and machine["engine"] == "local"
        assert machine["calls_sampled"] == 2 * (1 + 4)
    subprocess.run(
        [sys.executable, "-m", "sitegen", "build", "--quiet"],
        cwd=archive,
        env=ENV,
        check=True,
        capture_output=True,
        timeout=300,
    )
    classes, evidence = exclusivity_row(archive, busy["id"])
    hog_cores = busy["machine"]["other_cores_p50"]
    assert "fail" in classes
    assert f"other processes used {hog_cores:.2f} of {cores} cores (median over 10 calls" in (
        evidence
    )
    quiet_cores = quiet["machine"]["other_cores_p50"]
    classes, evidence = exclusivity_row(archive, quiet["id"])
    if quiet_cores / cores <= 0.25 and quiet["machine"]["load_1m_p50"] / cores <= 2.0:
        # A quiet machine: the run passes, and the hogs made all the difference.
        assert "ok" in classes, evidence
        assert hog_cores >= quiet_cores + 0.5 * cores, (quiet_cores, hog_cores)
    else:
        # This machine is shared with other jobs (the quiet run was itself
        # contended, and says so); the hogs must still take at least half of
        # the CPU the other jobs left free.
        assert "fail" in classes and f"used {quiet_cores:.2f} of {cores} cores" in evidence
        headroom = cores - quiet_cores
        assert hog_cores >= quiet_cores + 0.5 * headroom - 0.05, (quiet_cores, hog_cores)
