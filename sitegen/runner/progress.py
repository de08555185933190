"""What the operator sees while a run goes: a progress line and a closing summary.

The progress line goes to stderr (rewritten in place on a terminal, one line
per call otherwise); every line also goes to ``run.log`` through the log
callback, already scrubbed of addresses and paths.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from sitegen.runner.stats import batches, fmt


def text_table(headers: list[str], rows: list[list[str]]) -> str:
    """A plain aligned table (first column left, the rest right-aligned)."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]

    def line(cells: list[str]) -> str:
        out = [cells[0].ljust(widths[0])]
        out += [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join(out).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


class Progress:
    """A call counter with the latest call's figures."""

    def __init__(
        self,
        total: int,
        stream: TextIO | None = None,
        log: Callable[[str], None] | None = None,
        enabled: bool = True,
    ):
        self.total = total
        self.done = 0
        self.errors = 0
        self.stream = stream or sys.stderr
        self.log = log
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.started = time.monotonic()

    def call(self, record: dict[str, Any]) -> None:
        """Report one finished call."""
        self.done += 1
        if record.get("error"):
            self.errors += 1
        width = len(str(self.total))
        outcome = (
            f"error {record.get('error_class')}: {record.get('error')}"
            if record.get("error")
            else (
                f"ttft {fmt(record.get('ttft_ms'))} ms"
                f"  total {fmt(record.get('total_duration_ms'))} ms"
                f"  {fmt(record.get('completion_tokens'))} tok"
                f"  {fmt(record.get('tokens_per_sec'))} tok/s"
            )
        )
        text = (
            f"[{self.done:>{width}}/{self.total}] {record['cell_id']} {record['prompt_id']} "
            f"{record['phase']} #{record['run_idx']}: {outcome}"
        )
        if self.log:
            self.log(text)
        if not self.enabled:
            return
        if self.tty:
            bar_width = 24
            filled = int(bar_width * self.done / max(self.total, 1))
            bar = "#" * filled + "." * (bar_width - filled)
            elapsed = time.monotonic() - self.started
            short = text if len(text) < 100 else text[:97] + "..."
            self.stream.write(f"\r\x1b[2K[{bar}] {elapsed:5.0f}s {short}")
            if self.done >= self.total:
                self.stream.write("\n")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def note(self, text: str) -> None:
        """A line that is not a call (a skip, a cold preparation)."""
        if self.log:
            self.log(text)
        if self.enabled:
            prefix = "\r\x1b[2K" if self.tty else ""
            self.stream.write(prefix + text + "\n")
            self.stream.flush()

    def finish(self) -> None:
        """End the in-place line, if one is open."""
        if self.enabled and self.tty and self.done < self.total:
            self.stream.write("\n")
            self.stream.flush()


def summary_table(calls: list[dict[str, Any]], skips: list[dict[str, Any]]) -> str:
    """The table printed when a run ends: one row per (cell, prompt)."""
    headers = [
        "cell / prompt",
        "cold ttft ms",
        "warm ttft p50",
        "warm total p50",
        "warm total p95",
        "tok/s mean",
        "ok",
    ]
    rows: list[list[str]] = []
    for batch in batches(calls):
        cold = batch.cold_call or {}
        ok = sum(1 for c in batch.cold + batch.warm if not c.get("error"))
        rows.append(
            [
                f"{batch.cell_id} {batch.prompt_id}",
                fmt(cold.get("ttft_ms")),
                fmt(batch.warm_p("ttft_ms", 50)),
                fmt(batch.warm_p("total_duration_ms", 50)),
                fmt(batch.warm_p("total_duration_ms", 95)),
                fmt(batch.warm_mean("tokens_per_sec")),
                f"{ok}/{len(batch.cold) + len(batch.warm)}",
            ]
        )
    out = text_table(headers, rows) if rows else "no calls were made"
    for skip in skips:
        out += f"\nskipped {skip['cell_id']}: {skip['reason']}"
    return out
