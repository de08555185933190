"""Aggregates checked against values computed by hand."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sitegen.aggregate import (
    aggregate,
    cell_matrix,
    round3,
    rounded,
    rounded_aggregate,
    rows_by_run,
)
from sitegen.ledger import CALL_SCHEMA, sort_calls


def frame(records: list[dict]) -> pl.DataFrame:
    columns = {"run_id": pl.String(), **CALL_SCHEMA}
    rows = [{c: r.get(c) for c in columns} for r in records]
    return pl.DataFrame(rows, schema=columns)


def call(
    phase: str,
    first: float | None,
    total: float | None,
    tps: float | None = None,
    error=None,
    tokens=10,
):
    return {
        "run_id": "r",
        "type": "call",
        "cell_id": "n:e:m",
        "prompt_id": "P",
        "phase": phase,
        "first_delta_ms": first,
        "total_duration_ms": total,
        "tokens_per_sec": tps,
        "completion_tokens": tokens,
        "error": error,
    }


def test_percentiles_are_linear_interpolation_and_errors_are_excluded():
    calls = [
        call("cold", 900.0, 1500.0, 10.0),
        call("warm", 100.0, 300.0, 20.0),
        call("warm", 110.0, 310.0, 22.0),
        call("warm", 120.0, 330.0, 24.0),
        call("warm", 130.0, 360.0, 26.0),
        call("warm", 200.0, 500.0, 28.0),
        call("warm", None, None, None, error="ReadTimeout: stalled", tokens=None),
    ]
    rows = rows_by_run(aggregate(frame(calls)))["r"]
    cold, warm = rows
    assert cold["phase"] == "cold" and cold["first_delta_ms_p50"] == 900.0 and cold["n"] == 1
    assert warm["n"] == 6 and warm["errors"] == 1
    assert warm["success_rate"] == pytest.approx(5 / 6, abs=1e-3)
    # Five good values 100,110,120,130,200: p50 is the middle one.
    assert warm["first_delta_ms_p50"] == 120.0
    # p95: h = 4 * 0.95 = 3.8 -> 130 + 0.8 * (200 - 130) = 186.
    assert warm["first_delta_ms_p95"] == pytest.approx(186.0)
    # totals 300,310,330,360,500: p95 = 360 + 0.8 * 140 = 472.
    assert warm["total_duration_ms_p95"] == pytest.approx(472.0)
    assert warm["tokens_per_sec_mean"] == pytest.approx(24.0)
    assert warm["completion_tokens_mean"] == pytest.approx(10.0)


def test_even_count_p50_interpolates_between_the_two_middle_values():
    calls = [call("warm", v, v * 2) for v in (10.0, 20.0, 30.0, 40.0)]
    (warm,) = rows_by_run(aggregate(frame(calls)))["r"]
    assert warm["first_delta_ms_p50"] == 25.0
    # h = 3 * 0.95 = 2.85 -> 30 + 0.85 * 10
    assert warm["first_delta_ms_p95"] == pytest.approx(38.5)


def test_all_errors_gives_no_percentiles_but_counts_them():
    calls = [call("warm", None, None, error="HTTP 500") for _ in range(3)]
    (warm,) = rows_by_run(aggregate(frame(calls)))["r"]
    assert warm["n"] == 3 and warm["errors"] == 3 and warm["success_rate"] == 0.0
    assert warm["first_delta_ms_p50"] is None


def test_cell_matrix_uses_warm_p50_of_ttft():
    calls = [call("cold", 900.0, 1000.0), call("warm", 100.0, 200.0), call("warm", 300.0, 400.0)]
    for c, ttft in zip(calls, (950.0, 110.0, 330.0), strict=True):
        c["ttft_ms"] = ttft
    rows = rows_by_run(aggregate(frame(calls)))["r"]
    # TTFT (ttft_ms) is the headline; the first event is its own matrix.
    assert cell_matrix(rows) == {"n:e:m": {"P": 220.0}}
    assert cell_matrix(rows, "first_delta_ms_p50") == {"n:e:m": {"P": 200.0}}


def test_tpot_decode_and_cold_kind_are_aggregated():
    calls = [call("cold", 900.0, 1000.0), call("cold", 800.0, 1000.0)]
    calls += [call("warm", 100.0, 200.0), call("warm", 300.0, 400.0)]
    calls[0]["cold_kind"], calls[1]["cold_kind"] = "process_warm", "process_start"
    for c, tpot in zip(calls, (5.0, 7.0, 2.0, 4.0), strict=True):
        c["tpot_ms"], c["decode_tps"] = tpot, 1000.0 / tpot
    cold, warm = rows_by_run(aggregate(frame(calls)))["r"]
    assert cold["cold_kind"] == "process_start, process_warm" and warm["cold_kind"] is None
    assert warm["tpot_ms_p50"] == pytest.approx(3.0)
    assert warm["tpot_ms_p95"] == pytest.approx(3.9)
    assert warm["decode_tps_p50"] == pytest.approx(375.0)


@settings(max_examples=100, deadline=None)
@given(
    values=st.lists(
        st.floats(0, 1e6, allow_nan=False) | st.sampled_from([0.0005, 1.0005, 2.6745, 0.1235]),
        min_size=1,
        max_size=12,
    )
)
def test_rows_rounded_once_and_kept_equal_rows_rounded_when_read(values: list[float]):
    """The build keeps each run's rows already rounded (Python's round, ties to even
    on the exact value); reading them back gives what rounding on read gives."""
    calls = [call("warm", v, v * 3 + 0.0005, v / 7) for v in values]
    calls += [call("cold", values[0] / 3, None, None)]
    computed = aggregate(frame(calls))
    kept = rounded_aggregate(frame(calls))
    assert kept.schema == computed.schema
    assert rows_by_run(kept, is_rounded=True) == rows_by_run(computed)
    assert rounded(kept).equals(kept)  # rounding twice changes nothing


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.floats(allow_nan=False, allow_infinity=False)
        | st.floats(-1e7, 1e7)
        | st.integers(-(10**9), 10**9).map(lambda k: k / 2000)  # exact and near ties
        | st.integers(-(10**9), 10**9).map(lambda k: k / 1000 + 0.0005),
        max_size=60,
    )
)
@example([0.0005, 1.0005, 2.675, -2.675, 1e15 + 0.5, 5e-324, -0.0, 2.0**53, 1e308])
def test_the_column_rounding_is_pythons_round_on_every_float(values: list[float]):
    """Every number the site shows is ``round(v, 3)``; the rows are rounded a column
    at a time, and that must give Python's double for every value, ties included."""
    got = round3(np.array(values, dtype=np.float64)).tolist()
    want = [round(v, 3) for v in values]
    assert [repr(x) for x in got] == [repr(x) for x in want]


_KEYS = st.tuples(
    st.sampled_from(["r1", "r2", "r10"]),
    st.sampled_from(["n:e:a", "n:e:b", None]),
    st.sampled_from(["P1", "P2"]),
    st.sampled_from(["cold", "warm"]),
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            _KEYS,
            st.floats(0, 5000, allow_nan=False),
            st.booleans(),
            st.sampled_from([None, "process_warm", "process_start"]),
        ),
        min_size=1,
        max_size=40,
    ),
    st.randoms(use_true_random=False),
)
def test_each_group_is_aggregated_once_whatever_order_the_calls_come_in(rows, rng):
    """The build passes calls in sort_calls order and aggregate groups runs of equal
    keys; calls in any other order (or with a key missing) must give the same rows,
    one per group, with its own calls' figures."""
    calls = [
        {
            "run_id": run,
            "type": "call",
            "cell_id": cell,
            "prompt_id": prompt,
            "phase": phase,
            "run_idx": i,
            "first_delta_ms": value,
            "total_duration_ms": value + 1.0,
            "tokens_per_sec": value / 7,
            "cold_kind": kind,
            "error": "Timeout" if failed else None,
        }
        for i, ((run, cell, prompt, phase), value, failed, kind) in enumerate(rows)
    ]
    shuffled = list(calls)
    rng.shuffle(shuffled)
    ordered = sort_calls(frame(calls))
    got = aggregate(frame(shuffled))
    assert got.equals(aggregate(ordered))
    groups: dict[tuple, list[dict]] = {}
    for c in calls:
        groups.setdefault((c["run_id"], c["cell_id"], c["prompt_id"], c["phase"]), []).append(c)
    nulls_first = sorted(groups, key=lambda k: [(v is not None, v or "") for v in k])
    keys = list(got.select("run_id", "cell_id", "prompt_id", "phase").iter_rows())
    assert keys == nulls_first
    for row in got.iter_rows(named=True):
        members = groups[(row["run_id"], row["cell_id"], row["prompt_id"], row["phase"])]
        ok = [c["first_delta_ms"] for c in members if c["error"] is None]
        assert row["n"] == len(members) and row["errors"] == len(members) - len(ok)
        if ok:
            assert row["first_delta_ms_p50"] == pytest.approx(np.percentile(ok, 50))
            assert row["first_delta_ms_p95"] == pytest.approx(np.percentile(ok, 95))
            assert row["tokens_per_sec_mean"] == pytest.approx(np.mean(ok) / 7)
        else:
            assert row["first_delta_ms_p50"] is None and row["tokens_per_sec_mean"] is None
        kinds = sorted({c["cold_kind"] for c in members if c["cold_kind"]})
        assert row["cold_kind"] == (", ".join(kinds) or None)
    # rows per run, in the frame's order, whether a run's rows are together or not
    for rows_of in (got, got.reverse(), got.sample(fraction=1.0, shuffle=True, seed=1)):
        expected: dict[str, list[dict]] = {}
        for row in rounded(rows_of).iter_rows(named=True):
            expected.setdefault(row.pop("run_id"), []).append(row)
        assert rows_by_run(rows_of) == expected


def test_a_mean_is_the_same_whatever_order_its_calls_come_in():
    """Found by the property test above: summed in the ledger's order, the mean of
    50/7, 100/7 and 0.5/7 tokens/s differs in its last bit from the same calls
    summed in another order, so a build could publish one run two ways."""
    from itertools import permutations

    values = [50.0, 100.0, 0.5]
    results = set()
    for order in permutations(range(3)):
        calls = [
            {
                "run_id": "r1",
                "type": "call",
                "cell_id": "n:e:a",
                "prompt_id": "P1",
                "phase": "warm",
                "run_idx": i,
                "first_delta_ms": values[i],
                "total_duration_ms": values[i] + 1.0,
                "tokens_per_sec": values[i] / 7,
            }
            for i in order
        ]
        results.add(aggregate(frame(calls))["tokens_per_sec_mean"].item())
    assert len(results) == 1


def test_rows_by_run_makes_each_runs_rows_when_asked_and_says_its_cells_without_them():
    """The rows of each run as dictionaries equal a row-by-row reading of the frame,
    even when one run's rows come in two stretches; ``cells`` and ``warm`` agree
    with them."""
    calls = [
        {**call("cold", 900.0, 1500.0), "run_id": "b"},
        {**call("warm", 100.0, 300.0), "run_id": "a", "cell_id": "n:e:x"},
        {**call("warm", 120.0, 330.0), "run_id": "a", "prompt_id": "Q"},
        {**call("warm", 110.0, 310.0), "run_id": "b", "cell_id": "n:e:y"},
    ]
    agg = rounded_aggregate(frame(calls))
    shuffled = pl.concat([agg.filter(pl.col("run_id") != "b"), agg.filter(pl.col("run_id") == "b")])
    split = pl.concat(
        [shuffled.slice(0, 1), agg.filter(pl.col("run_id") == "b"), shuffled.slice(1)]
    )
    for source in (agg, split):
        rows = rows_by_run(source, is_rounded=True)
        by_hand: dict[str, list[dict]] = {}
        for row in source.to_dicts():
            by_hand.setdefault(row.pop("run_id"), []).append(row)
        assert rows == by_hand and sorted(rows) == ["a", "b"] and "c" not in rows
        assert rows.cells("a") == {"n:e:m", "n:e:x"} and rows.cells("b") == {"n:e:m", "n:e:y"}
        assert rows.cells("c") == set()
        warm = rows.warm("b")
        assert warm["n:e:m"] == {}  # measured cold only
        assert [r["first_delta_ms_p50"] for r in warm["n:e:y"].values()] == [110.0]
        assert rows["a"] is not rows["a"]  # made again on each ask, never held
