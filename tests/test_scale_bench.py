"""benchmarks/scale.py: parsing the build's summary lines, verdicts, and the measuring wrapper.

The measurements themselves take minutes and run by hand; these check the
parts a silent mistake in would misreport a figure.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest
import scale  # benchmarks/ is on sys.path (conftest)
from asv_compare import BenchError

BUILD_OUTPUT = """\
12 run(s), 900 call(s); 1 unreliable
pages: 43 rendered, 84 unchanged and reused
charts: rendered 184/1841 (2 worker(s))
charts: 6 from cache, 9 rendered in 4.4 s
wrote 127 file(s) to site and catalogue.json in 8.61 s
"""


def test_sample_reads_the_build_summary_lines() -> None:
    sample = scale.Sample(8.6, 2048, BUILD_OUTPUT)
    assert sample.pages() == (43, 84)
    # The progress lines ("charts: rendered x/y") are not the summary.
    assert sample.charts() == (6, 9, 4.4)
    assert not sample.skipped
    assert "pages 43 rendered / 84 reused" in sample.describe()


def test_sample_tolerates_a_build_that_prints_less() -> None:
    older = scale.Sample(1.0, 0, "charts: 0 from cache, 17 rendered\n")
    assert older.charts() == (0, 17, None)
    assert older.pages() is None
    quiet = scale.Sample(0.1, 0, "nothing changed since the last build of site\n")
    assert quiet.skipped and quiet.charts() is None
    assert scale.chart_seconds([older]) == (
        None,
        "17 charts rendered; the build does not print their time",
    )
    assert scale.pages_note([quiet]) == "the build printed no `pages:` line"


@pytest.mark.parametrize(
    ("value", "op", "runs", "verdict"),
    [
        (0.4, "<", None, "PASS"),
        (0.5, "<", None, "MISS"),
        (0.5, "<=", None, "PASS"),
        (None, "<", None, "?"),
        (3.0, "<", 5000, "(pass)"),  # below the size the target is set for
        (70.0, "<", 5000, "MISS"),  # missing it there already misses it
        (3.0, "<", 10000, "PASS"),
    ],
)
def test_verdicts(value: float | None, op: str, runs: int | None, verdict: str) -> None:
    at = scale.TARGET_RUNS if runs is not None else None
    target = 0.5 if runs is None else 60.0
    figure = scale.Figure("x", value, "s", target, op, runs=runs, at_runs=at)
    assert figure.verdict() == verdict


def test_figure_without_target_has_no_verdict() -> None:
    figure = scale.Figure("calls", 1_000_000, "calls")
    assert (figure.verdict(), figure.value_text(), figure.target_text()) == (
        "",
        "1,000,000 calls",
        "-",
    )


def test_growth_compares_time_ratio_with_size_ratio() -> None:
    bench = scale.Bench(dict(os.environ), 1, 1, 10.0)
    small = scale.SizeResult(5000, {"warm --force": 20.0})
    large = scale.SizeResult(10000, {"warm --force": 45.0})
    scale.growth(bench, small, large)
    (figure,) = bench.figures
    assert figure.value == pytest.approx(1.125)
    assert figure.verdict() == "MISS"  # 2x the runs cost 2.25x the time: more than 2.2x


def test_table_lists_every_figure() -> None:
    figures = [
        scale.Figure("bundled: catalogue only", 0.31, "s", 0.5),
        scale.Figure("10000 runs: index page", 350.0, "KiB", 300.0, runs=10000, at_runs=10000),
    ]
    lines = scale.table(figures).splitlines()
    assert lines[0].split()[:4] == ["figure", "median", "target", "verdict"]
    assert lines[1].split()[-1] == "PASS"
    assert lines[2].split()[-1] == "MISS"


def test_run_measures_time_memory_and_output(tmp_path: Path) -> None:
    bench = scale.Bench(dict(os.environ), 1, 1, 30.0)
    code = "import time; print('pages: 1 rendered, 2 unchanged and reused'); time.sleep(0.2)"
    sample = bench.run([sys.executable, "-c", code], tmp_path)
    assert sample.seconds >= 0.2
    assert sample.peak_kib > 1024  # a Python process takes more than 1 MiB
    assert sample.pages() == (1, 2)


def test_run_reports_a_failing_command(tmp_path: Path) -> None:
    bench = scale.Bench(dict(os.environ), 1, 1, 30.0)
    code = "import sys; sys.exit('sitegen: runs/x/run.jsonl:3: broken')"
    with pytest.raises(BenchError, match=r"exit 1\):\nsitegen: runs/x/run.jsonl:3: broken"):
        bench.run([sys.executable, "-c", code], tmp_path)


def test_run_ends_a_command_that_takes_too_long(tmp_path: Path) -> None:
    bench = scale.Bench(dict(os.environ), 1, 1, 1.0)
    started = time.perf_counter()
    with pytest.raises(BenchError, match="longer than 1 s"):
        bench.run([sys.executable, "-c", "import time; time.sleep(60)"], tmp_path)
    assert time.perf_counter() - started < 10
