"""Comparisons against baselines: thresholds, baseline choice, the like-for-like guard,
and the same table on the run page, the changes page and ``sitegen compare``."""

from __future__ import annotations

import pytest
from bs4 import BeautifulSoup
from click.testing import CliRunner
from conftest import PROMPT_SHA, call_record, end_record, meta_record, metadata

from sitegen.build import build
from sitegen.cli import main
from sitegen.compare import Facts, compare_pair, compare_row
from sitegen.verdicts import Sample, Settings

CELL = "node-a:llamacpp:m1"
JITTER = (0.97, 1.0, 1.03, 0.99, 1.02, 1.01)  # six warm calls around each value


def soup(path) -> BeautifulSoup:
    return BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


def sample(ttft=100.0, total=1000.0, tps=50.0, tokens=64.0, errors=0, n=6) -> Sample:
    scale = JITTER[:n]
    return Sample(
        calls=n + errors,
        errors=errors,
        values={
            "ttft": tuple(ttft * j for j in scale),
            "total": tuple(total * j for j in scale),
            "decode_tps": (),
            "tokens_per_sec": tuple(tps / j for j in scale),
        },
        completion_tokens=(tokens,) * n,
    )


def facts(
    run_id: str,
    *,
    digest="sha256:" + "0" * 64,
    version="b1234",
    prompt=PROMPT_SHA,
    concurrency=1,
    **kw,
):
    return Facts(
        run_id=run_id,
        title=run_id,
        started_at="2026-05-01T10:00:00Z",
        baseline=False,
        targets={CELL: {"model_digest": digest, "engine_version": version}},
        prompts={"P-EASY": prompt} if prompt else {},
        warm={(CELL, "P-EASY"): sample(**kw)},
        concurrency=concurrency,
    )


def verdict(now: Facts, base: Facts | None = None):
    return compare_row(now, base or facts("a"), CELL, "P-EASY", Settings())


def statuses(row) -> dict[str, str]:
    return {m.metric.key: m.status for m in row.metrics}


def test_thirty_percent_slower_is_a_regression_and_thirty_percent_better_a_win():
    assert statuses(verdict(facts("b", ttft=130.0)))["ttft"] == "regression"
    assert statuses(verdict(facts("b", ttft=129.0)))["ttft"] == "below threshold"
    assert statuses(verdict(facts("b", ttft=70.0)))["ttft"] == "win"
    assert statuses(verdict(facts("b", total=1300.0)))["total"] == "regression"
    assert statuses(verdict(facts("b", tps=35.0)))["decode"] == "regression"  # 30% lower
    assert statuses(verdict(facts("b", tps=36.0)))["decode"] == "below threshold"
    assert statuses(verdict(facts("b", tps=65.0)))["decode"] == "win"


def test_a_flag_needs_enough_calls_on_both_sides():
    row = verdict(facts("b", ttft=300.0, n=4))
    assert row.verdict == "too few calls" and "n = 6 vs 4" in row.reason
    assert row.regressions == []


def test_total_time_is_compared_only_when_output_lengths_match():
    row = verdict(facts("b", total=3000.0, tokens=200.0))
    total = next(m for m in row.metrics if m.metric.key == "total")
    assert total.status == "not like-for-like" and "output length" in total.reason
    assert row.regressions == []


def test_a_win_with_a_significant_slowdown_elsewhere_is_mixed():
    row = verdict(facts("b", ttft=50.0, tps=38.0))  # TTFT halved, tokens/s down 24%
    assert row.verdict == "mixed" and "decode tokens/s" in row.reason
    assert row.wins == ["warm TTFT"] and row.regressions == []
    pair = compare_pair(facts("a"), facts("b", ttft=50.0, tps=38.0), Settings())
    assert pair.wins == [] and len(pair.mixed) == 1  # counted as mixed, never as a win


def test_success_rate_under_the_minimum_is_a_red_flag():
    row = verdict(facts("b", errors=1))
    assert row.success_flag and row.regressions == ["warm success rate"]
    assert row.verdict == "regression"


@pytest.mark.parametrize(
    ("changed", "reason"),
    [
        ({"digest": "sha256:" + "1" * 64}, "model digest differs"),
        ({"version": "b9999"}, "engine version differs"),
        ({"prompt": "f" * 64}, "prompt sha256 differs"),
        ({"version": None}, "engine version not recorded for this run"),
        ({"concurrency": 4}, "concurrency differs (1 vs 4)"),
    ],
)
def test_a_comparison_that_is_not_like_for_like_is_labelled_and_not_counted(changed, reason):
    row = verdict(facts("b", ttft=300.0, **changed))
    assert not row.comparable
    assert any(reason in d for d in row.differences), row.differences
    assert row.verdict == "not like-for-like"
    assert row.regressions == [] and row.wins == []


# ---------------------------------------------------------------- through the build


def write(write_run, run_id: str, start: str, *, baseline=False, ttft=100.0, **md_extra):
    end = start.replace("T00:00:00Z", "T00:05:00Z")
    calls = [
        call_record(
            run_idx=i,
            first_delta_ms=ttft * j,
            ttft_ms=ttft * j,
            total_duration_ms=ttft * j + 1000.0,
        )
        for i, j in enumerate(JITTER)
    ]
    write_run(
        run_id,
        ledger=[meta_record(run_id, started_at_utc=start), *calls, end_record(finished_at_utc=end)],
        md=metadata(
            run_id, started_at_utc=start, finished_at_utc=end, baseline=baseline, **md_extra
        ),
    )


@pytest.fixture
def archive(tmp_path, write_run):
    """An old baseline, a newer baseline, a run 50% slower than the newer one,
    and a later run whose model changed."""
    write(write_run, "base-old", "2026-05-01T00:00:00Z", baseline=True, ttft=50.0)
    write(write_run, "base-new", "2026-05-02T00:00:00Z", baseline=True, ttft=100.0)
    write(write_run, "slow", "2026-05-03T00:00:00Z", ttft=150.0)
    other = metadata("other")["targets"][0] | {"model_digest": "sha256:" + "9" * 64}
    write(write_run, "other", "2026-05-04T00:00:00Z", ttft=400.0, targets=[other])
    build(tmp_path)
    return tmp_path


def test_run_page_compares_with_the_most_recent_earlier_baseline(archive):
    page = soup(archive / "site" / "runs" / "slow" / "index.html")
    (row,) = page.select("section.changes table.changes tbody tr")
    cells = row.find_all("td")
    assert cells[2].a["href"] == "../../runs/base-new/index.html"  # not base-old
    assert "+50.0%" in cells[3].get_text() and "regression" in cells[3].get_text()
    assert "p = 0.0022, n = 6 vs 6" in cells[3].get_text(" ", strip=True)
    assert cells[-1].select_one(".verdict").get_text(strip=True) == "regression"
    # The newer baseline itself is compared with the older one: twice as slow.
    base_row = soup(archive / "site" / "runs" / "base-new" / "index.html").select_one(
        "table.changes tbody tr"
    )
    assert "base-old" in base_row.get_text() and "+100.0%" in base_row.get_text()
    # The oldest baseline has nothing before it.
    first = soup(archive / "site" / "runs" / "base-old" / "index.html")
    assert "No earlier baseline run measured this cell" in first.select_one("section.changes").text


def test_changed_model_is_not_like_for_like_on_the_page_and_not_on_the_changes_page(archive):
    page = soup(archive / "site" / "runs" / "other" / "index.html")
    verdict = page.select_one("table.changes tbody tr td:last-child").get_text(" ", strip=True)
    assert verdict.startswith("not like-for-like") and "model digest differs" in verdict
    changes = soup(archive / "site" / "changes" / "index.html")
    listed = [a.get_text() for a in changes.select("main h2 a")]
    assert "Run slow" in listed and "Run other" not in listed
    assert "1 not like-for-like" in changes.get_text(" ", strip=True)


def test_thresholds_are_configurable_per_archive(archive):
    (archive / "sitegen.toml").write_text("[thresholds]\nttft_regression = 0.6\n")
    build(archive)
    page = soup(archive / "site" / "runs" / "slow" / "index.html")
    row = page.select_one("table.changes tbody tr")
    verdict = row.find_all("td")[-1].get_text(" ", strip=True)
    assert "+50.0%" in row.get_text() and verdict.startswith("below threshold")
    assert "at least 60% slower" in page.get_text(" ", strip=True)
    (archive / "sitegen.toml").write_text("[compare]\nmin_calls = 7\n")
    build(archive)
    page = soup(archive / "site" / "runs" / "slow" / "index.html")
    verdict = page.select_one("table.changes tbody tr td:last-child").get_text(" ", strip=True)
    assert verdict.startswith("too few calls") and "n = 6 vs 6" in verdict


def test_compare_command_prints_the_same_table(archive):
    result = CliRunner().invoke(
        main, ["compare", "base-new", "slow", "--archive", str(archive)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "slow against base-new"
    (row,) = [line for line in lines if line.startswith(CELL)]
    assert "100.5 → 150.8 +50.0% [99% CI +44.1% to +56.2%" in row
    assert "p = 0.0022] regression" in row
    assert row.rstrip().endswith("regression: warm TTFT +50.0%")
    assert "1 regression(s), 0 win(s), 0 mixed, 0 not like-for-like" in result.output
    guarded = CliRunner().invoke(main, ["compare", "slow", "other", "--archive", str(archive)])
    assert "not like-for-like: model digest differs" in guarded.output


def test_compare_command_reports_an_unknown_run_cleanly(archive):
    result = CliRunner().invoke(main, ["compare", "base-new", "nope", "--archive", str(archive)])
    assert result.exit_code == 1
    assert "runs/nope: no such run" in result.output and "Traceback" not in result.output


def test_each_runs_samples_are_its_own_calls_whichever_runs_are_read_with_it():
    """The verdicts read each run's warm calls from one frame of every run: a run's
    samples must hold exactly its own calls, in any company, errored calls counted
    but giving no values, and cold calls left out."""
    import polars as pl

    from sitegen.compare import samples_by_run
    from sitegen.ledger import CALL_SCHEMA

    def call(run, cell, prompt, idx, ttft, *, phase="warm", error=None):
        return {
            "run_id": run,
            "type": "call",
            "cell_id": cell,
            "prompt_id": prompt,
            "phase": phase,
            "run_idx": idx,
            "first_delta_ms": ttft - 1,
            "ttft_ms": None if error else ttft,
            "total_duration_ms": None if error else ttft * 10,
            "completion_tokens": None if error else 64,
            "tokens_per_sec": None if error else 50.0 + idx,
            "decode_tps": None,
            "error": error,
        }

    calls = [
        call("b", "c1", "p1", 0, 900.0, phase="cold"),
        *(call("b", "c1", "p1", i, 100.0 + i) for i in range(1, 4)),
        call("b", "c1", "p1", 4, 0.0, error="timeout"),
        *(call("a", "c2", "p2", i, 200.0 + i) for i in range(3)),
        *(call("b", "c2", "p1", i, 300.0 + i) for i in range(2)),
        call("c", "c1", "p1", 0, 0.0, error="refused"),
    ]
    schema = {"run_id": pl.String(), **CALL_SCHEMA}
    frame = pl.DataFrame(calls, schema=schema)
    together = samples_by_run(frame)
    assert sorted(together) == ["a", "b", "c"]
    assert list(together["b"]) == [("c1", "p1"), ("c2", "p1")]
    b = together["b"][("c1", "p1")]
    assert (b.calls, b.errors) == (4, 1)
    assert b.values["ttft"] == (101.0, 102.0, 103.0)  # the cold call is not a warm value
    assert b.completion_tokens == (64.0, 64.0, 64.0)
    assert together["c"][("c1", "p1")].values["ttft"] == ()
    for run in ("a", "b", "c"):
        alone = samples_by_run(frame.filter(pl.col("run_id") == run))
        assert dict(together[run]) == dict(alone[run])
    assert ("c2", "p2") in together["a"] and ("c1", "p1") not in together["a"]


def test_a_runs_samples_made_again_after_being_let_go_are_the_same(monkeypatch):
    """Only the runs asked for last keep their samples made; a run asked for again
    after many others gets the same values, and the build holds a bounded number."""
    import polars as pl

    from sitegen import compare
    from sitegen.ledger import CALL_SCHEMA

    monkeypatch.setattr(compare._Recent, "SIZE", 3)
    calls = [
        {
            "run_id": f"r{run:02d}",
            "type": "call",
            "cell_id": f"c{cell}",
            "prompt_id": "p1",
            "phase": "warm",
            "run_idx": i,
            "first_delta_ms": 10.0 * run + i,
            "ttft_ms": 10.0 * run + i + 1,
            "total_duration_ms": 100.0 * run + i,
            "completion_tokens": 32 + i,
            "tokens_per_sec": 40.0 + run,
            "decode_tps": None,
            "error": None,
        }
        for run in range(12)
        for cell in range(2)
        for i in range(3)
    ]
    frame = pl.DataFrame(calls, schema={"run_id": pl.String(), **CALL_SCHEMA})
    samples = compare.samples_by_run(frame)
    first = {run: dict(samples[run]) for run in samples}
    held = samples["r00"]._recent
    assert len(held._made) == 3  # the last three runs asked for
    again = {run: dict(samples[run]) for run in reversed(list(samples))}
    assert again == first
    assert first["r05"][("c1", "p1")].values["ttft"] == (51.0, 52.0, 53.0)
