"""Aggregates over the call frame, all in Polars.

Per (run, cell, prompt, phase): call count, errors, success rate, p50/p95 of
first_delta_ms, ttft_ms, total_duration_ms and tpot_ms, p50 of decode_tps, mean
tokens/s and mean completion tokens, and the kinds of cold its calls were.
Percentiles use linear interpolation between closest ranks (numpy.percentile's
default). Errored calls are counted but left out of every
timing statistic.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from itertools import groupby
from typing import Any

import numpy as np
import polars as pl

GROUP = ["run_id", "cell_id", "prompt_id", "phase"]
TIMINGS = ("first_delta_ms", "ttft_ms", "total_duration_ms", "tpot_ms")


def _ok(column: str) -> pl.Expr:
    return pl.col(column).filter(pl.col("error").is_null())


def aggregate(calls: pl.DataFrame) -> pl.DataFrame:
    """One row per (run, cell, prompt, phase), sorted by those keys."""
    stats: list[pl.Expr] = [
        pl.len().alias("n"),
        pl.col("error").is_not_null().sum().alias("errors"),
    ]
    for col in TIMINGS:
        stats += [
            _ok(col).quantile(0.5, interpolation="linear").alias(f"{col}_p50"),
            _ok(col).quantile(0.95, interpolation="linear").alias(f"{col}_p95"),
        ]
    stats += [
        _ok("decode_tps").quantile(0.5, interpolation="linear").alias("decode_tps_p50"),
        # Means over sorted values: a float sum depends on the order it adds in (the
        # last bit of 50/7 + 100/7 + 0.5/7 does), and the calls of a group may come
        # in any order; sorted, the mean is one number for one set of calls.
        _ok("tokens_per_sec").sort().mean().alias("tokens_per_sec_mean"),
        _ok("completion_tokens").sort().mean().alias("completion_tokens_mean"),
        _ok("prompt_tokens").sort().mean().alias("prompt_tokens_mean"),
        # e.g. "process_warm", or "process_start, process_warm" when the calls differ
        pl.col("cold_kind").drop_nulls().unique().sort().str.join(", ").alias("cold_kind"),
    ]
    # Each group's rows next to each other (as sort_calls leaves them), numbered in
    # order: grouping by that one number, not by hashing four strings a row, took
    # half the time at 10,000 runs (0.45 against 0.9 s).
    grouped = calls if _in_group_order(calls) else calls.sort(GROUP, maintain_order=True)
    return (
        grouped.with_columns(_group=pl.struct(GROUP).rle_id())
        .group_by("_group", maintain_order=True)
        .agg(*(pl.col(key).first() for key in GROUP), *stats)
        .drop("_group")
        .with_columns(
            ((pl.col("n") - pl.col("errors")) / pl.col("n")).alias("success_rate"),
            pl.when(pl.col("cold_kind") != "").then(pl.col("cold_kind")).alias("cold_kind"),
        )
    )


def _in_group_order(calls: pl.DataFrame) -> bool:
    """True when the rows are sorted by GROUP (no key null): then a group's rows are
    consecutive, and the groups come in the order the result is sorted in."""
    if any(calls[key].null_count() for key in GROUP):
        return False
    later = pl.lit(True)  # each row >= the row before it, comparing the keys in turn
    for key in reversed(GROUP):
        now, before = pl.col(key), pl.col(key).shift(1)
        later = (now > before) | ((now == before) & later)
    return bool(calls.select(later.fill_null(True).all()).item())


def round3(values: np.ndarray) -> np.ndarray:
    """``round(v, 3)`` of each float, as Python gives it, for a whole column.

    Python's ``round`` (correctly rounded from the exact binary value, ties to
    even) decides every value the site and catalogue.json show. Scaling by
    1000, rounding to an integer and dividing gives the same double wherever
    the scaled value is not within its own rounding error of a tie (the
    integer is exact and the division correctly rounded); the few values near
    a tie (a median between two values of 3 decimals is one), and any too large
    or not finite, are rounded by Python itself.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = values * 1000.0
        out = np.rint(scaled) / 1000.0
        gap = np.abs(np.abs(scaled - np.floor(scaled)) - 0.5)
        unsure = (
            ~np.isfinite(scaled)
            | (np.abs(scaled) >= 2.0**52)
            | (gap <= np.abs(scaled) * 2.0**-50 + 2.0**-40)
        )
    where = np.flatnonzero(unsure)
    out[where] = [round(v, 3) for v in values[where].tolist()]
    return out


def _rounded_columns(agg: pl.DataFrame) -> dict[str, list[Any]]:
    """Each column as a list, floats rounded to 3 decimals (:func:`round3`)."""
    columns: dict[str, list[Any]] = {}
    for name in agg.columns:
        column = agg[name]
        if not agg.schema[name].is_float():
            columns[name] = column.to_list()
            continue
        values = round3(column.fill_null(0.0).to_numpy().astype(np.float64)).tolist()
        for i in column.is_null().arg_true().to_list():
            values[i] = None
        columns[name] = values
    return columns


def rounded(agg: pl.DataFrame) -> pl.DataFrame:
    """The aggregate frame with its floats rounded as :func:`rows_by_run` rounds them:
    kept per run in the build state, so a build rounds the new runs' rows only."""
    columns = _rounded_columns(agg)
    return pl.DataFrame(
        {name: pl.Series(name, columns[name], dtype=agg.schema[name]) for name in agg.columns}
    )


def rounded_aggregate(calls: pl.DataFrame) -> pl.DataFrame:
    """:func:`aggregate`, then :func:`rounded`: the rows the site shows."""
    return rounded(aggregate(calls))


def rows_by_run(agg: pl.DataFrame, *, is_rounded: bool = False) -> RowsByRun:
    """Aggregate rows grouped per run, floats rounded to 3 decimals for stable output
    (already, when ``is_rounded``: the frame came from :func:`rounded`)."""
    return RowsByRun(agg if is_rounded else rounded(agg))


class RowsByRun(Mapping[str, list[dict[str, Any]]]):
    """run id -> its aggregate rows as dictionaries, made when asked for from one frame.

    At 10,000 runs the 216,000 rows as dictionaries were about 200 MiB that every
    build held from the reading to the end, while a build that adds a run reads
    the rows of a few runs (a new catalogue entry, a run page, the latest run of
    each cell of a group page). Each ask makes a run's rows again: a caller that
    reads them twice keeps them.
    """

    def __init__(self, frame: pl.DataFrame):
        self._frame = frame.drop("run_id")
        # run id -> the stretches of its rows: a single one in a frame sorted by run
        self._at: dict[str, list[tuple[int, int]]] = {}
        start = 0
        for run_id, same in groupby(frame["run_id"].to_list()):
            n = sum(1 for _ in same)
            self._at.setdefault(run_id, []).append((start, n))
            start += n
        cells = frame.select("run_id", "cell_id").unique(maintain_order=True)
        self._cells: dict[str, set[str]] = {}
        for run_id, cell_id in cells.iter_rows():
            self._cells.setdefault(run_id, set()).add(cell_id)

    def __getitem__(self, run_id: str) -> list[dict[str, Any]]:
        return [
            row for start, n in self._at[run_id] for row in self._frame.slice(start, n).to_dicts()
        ]

    def __iter__(self) -> Iterator[str]:
        return iter(self._at)

    def __len__(self) -> int:
        return len(self._at)

    def __contains__(self, run_id: object) -> bool:
        return run_id in self._at

    def cells(self, run_id: str) -> set[str]:
        """The cells the run has rows for (cold or warm), without making its rows."""
        return self._cells.get(run_id, set())

    def warm(self, run_id: str) -> dict[str, dict[str, dict[str, Any]]]:
        """cell -> prompt -> the run's warm row; a measured cell without warm rows maps to {}."""
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for row in self.get(run_id, []):
            warm = out.setdefault(row["cell_id"], {})
            if row["phase"] == "warm":
                warm[row["prompt_id"]] = row
        return out


def cell_matrix(
    rows: list[dict[str, Any]], column: str = "ttft_ms_p50"
) -> dict[str, dict[str, float | None]]:
    """cell -> prompt -> a warm p50 (TTFT by default): the run's headline table."""
    matrix: dict[str, dict[str, float | None]] = {}
    for row in rows:
        if row["phase"] == "warm":
            matrix.setdefault(row["cell_id"], {})[row["prompt_id"]] = row[column]
    return matrix
