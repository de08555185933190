"""Per-batch figures from call records: the cold call and the warm percentiles.

Used for the summary printed at the end of a run and for ``run.md``. Errored
calls are counted (they lower the success rate) but left out of percentiles
and means, as the methodology says.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from statistics import fmean
from typing import Any

from sitegen.runner.sse import percentile


@dataclass
class Batch:
    """All calls of one (cell, prompt): one cold call and N warm calls."""

    cell_id: str
    prompt_id: str
    cold: list[dict[str, Any]] = field(default_factory=list)
    warm: list[dict[str, Any]] = field(default_factory=list)

    def ok_warm(self) -> list[dict[str, Any]]:
        """Warm calls without an error."""
        return [c for c in self.warm if not c.get("error")]

    def warm_values(self, key: str) -> list[float]:
        """Non-null values of ``key`` over the successful warm calls."""
        return [c[key] for c in self.ok_warm() if isinstance(c.get(key), (int, float))]

    def warm_p(self, key: str, q: float) -> float | None:
        """Percentile ``q`` of ``key`` over successful warm calls."""
        return percentile(self.warm_values(key), q)

    def warm_mean(self, key: str) -> float | None:
        """Mean of ``key`` over successful warm calls."""
        values = self.warm_values(key)
        return fmean(values) if values else None

    def success_rate(self) -> float | None:
        """(N - errors) / N over warm calls."""
        if not self.warm:
            return None
        return len(self.ok_warm()) / len(self.warm)

    @property
    def cold_call(self) -> dict[str, Any] | None:
        """The first cold call, if any."""
        return self.cold[0] if self.cold else None


def batches(calls: Iterable[dict[str, Any]]) -> list[Batch]:
    """Group call records by (cell, prompt), keeping first-seen order."""
    out: dict[tuple[str, str], Batch] = {}
    for call in calls:
        key = (call["cell_id"], call["prompt_id"])
        batch = out.setdefault(key, Batch(*key))
        (batch.cold if call.get("phase") == "cold" else batch.warm).append(call)
    return list(out.values())


def fmt(value: float | int | None, digits: int = 1) -> str:
    """A table cell: a number with fixed decimals, or an em dash when unknown."""
    if value is None:
        return "—"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def throughput(calls: list[dict[str, Any]]) -> tuple[float | None, float | None, float | None]:
    """(requests/s, output tokens/s, wall seconds) over a set of overlapping calls.

    The window runs from the earliest request start to the latest finish, from
    each call's ``request_offset_ms`` plus its duration. Errored calls count as
    requests but add no tokens.
    """
    spans = [
        (c["request_offset_ms"], c["request_offset_ms"] + (c.get("wall_ms") or 0.0))
        for c in calls
        if isinstance(c.get("request_offset_ms"), (int, float))
    ]
    if not spans:
        return None, None, None
    wall_s = (max(e for _, e in spans) - min(s for s, _ in spans)) / 1000.0
    if wall_s <= 0:
        return None, None, None
    tokens = sum(
        c["completion_tokens"]
        for c in calls
        if not c.get("error") and isinstance(c.get("completion_tokens"), int)
    )
    return round(len(spans) / wall_s, 3), round(tokens / wall_s, 3), round(wall_s, 3)


def warm_throughput(calls: list[dict[str, Any]]) -> tuple[float | None, float | None, float | None]:
    """Capacity over the warm phases only: each (cell, prompt)'s warm calls form
    one window (cold calls run alone between them), and the windows are summed.
    """
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for call in calls:
        if call.get("phase") == "warm":
            groups.setdefault((call["cell_id"], call["prompt_id"]), []).append(call)
    requests = tokens = 0.0
    wall = 0.0
    for group in groups.values():
        rate, tps, wall_s = throughput(group)
        if wall_s:
            requests += (rate or 0.0) * wall_s
            tokens += (tps or 0.0) * wall_s
            wall += wall_s
    if wall <= 0:
        return None, None, None
    return round(requests / wall, 3), round(tokens / wall, 3), round(wall, 3)
