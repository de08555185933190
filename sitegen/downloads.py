"""Data downloads for researchers: every call archive-wide, and the aggregates.

``data/calls.parquet`` and ``data/calls.csv`` hold one row per call record of
every run (``run_id`` first), ``data/aggregates.parquet`` and
``data/aggregates.csv`` one row per run, cell, prompt and phase, the numbers
on the run pages. Parquet is written with fixed settings (zstd level 3, one
row group per 100,000 rows, statistics on) and Polars writes no timestamp, so
the same archive gives the same bytes.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import polars as pl

from sitegen import aggregate as agg

ROW_GROUP = 100_000


@dataclass(frozen=True)
class Download:
    rel: str  # output path
    title: str
    content: bytes
    rows: int
    columns: list[str]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @property
    def size(self) -> int:
        return len(self.content)


def parquet_bytes(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_parquet(
        buffer,
        compression="zstd",
        compression_level=3,
        statistics=True,
        row_group_size=ROW_GROUP,
    )
    return buffer.getvalue()


def csv_bytes(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_csv(buffer, line_terminator="\n", null_value="")
    return buffer.getvalue()


def aggregates_frame(calls: pl.DataFrame) -> pl.DataFrame:
    """The aggregates, floats rounded to 3 decimals like every page and catalogue.json."""
    frame = agg.aggregate(calls)
    floats = [name for name, dtype in frame.schema.items() if dtype.is_float()]
    return frame.with_columns(pl.col(floats).round(3))


def downloads(calls: pl.DataFrame) -> list[Download]:
    """The files under ``data/``, in the order the data page lists them."""
    calls = calls.sort(["run_id", "cell_id", "prompt_id", "phase", "run_idx"], maintain_order=True)
    aggregates = aggregates_frame(calls)
    calls = calls.drop("type")  # always "call" here
    out = []
    for frame, name, title in (
        (calls, "calls", "Every call record of every run"),
        (aggregates, "aggregates", "Aggregates per run, cell, prompt and phase"),
    ):
        for ext, writer in (("parquet", parquet_bytes), ("csv", csv_bytes)):
            out.append(
                Download(f"data/{name}.{ext}", title, writer(frame), frame.height, frame.columns)
            )
    return out
