"""Verdicts: is a run's change against its baseline real, and is it large enough to flag?

One :class:`RowVerdict` per (run, baseline, cell, prompt), holding one
:class:`MetricVerdict` per metric, computed once from the per-call warm values
of both runs. The run page, the changes page, ``sitegen compare``,
``catalogue.json`` and the regressions feed all read these objects, so they
cannot disagree. methodology.md ("Verdicts") defines every number in words.

The statistics, chosen because they need no resampling (deterministic) and no
assumption about the shape of the delay distribution:

- the change is the Hodges-Lehmann shift of log values, ``exp(median(log y_j -
  log x_i))`` over all baseline x now pairs: a ratio, robust to a stray call;
- its confidence interval (level ``1 - alpha``) is read off the same sorted
  pairwise differences at ranks given by the Mann-Whitney null distribution,
  so it excludes 1 exactly when the test below rejects (without ties);
- the test is the two-sided Mann-Whitney U test, exact (no ties, small
  samples) or normal approximation with tie and continuity corrections.

A change is flagged only when it is significant at ``alpha`` AND its estimate
is beyond the archive's threshold; with fewer than ``min_calls`` calls a side,
or when no outcome could reach ``alpha`` at these sample sizes, it is "too few
calls to tell".
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from statistics import NormalDist
from typing import Any

from sitegen.config import Config
from sitegen.vocabulary import COMPARED

EXACT_MAX_N = 50  # both samples at most this (and no ties): exact null distribution

# Metric statuses, as shown to readers.
REGRESSION = "regression"
WIN = "win"
SMALL = "below threshold"  # significant, but smaller than the threshold
NOISE = "within noise"
TOO_FEW = "too few calls"
UNLIKE = "not like-for-like"
NO_DATA = "no data"
# Row verdicts add one: significant moves in opposite directions, one of them flagged.
MIXED = "mixed"
FLAGGED = (REGRESSION, WIN, MIXED)


@dataclass(frozen=True)
class Settings:
    """The archive's thresholds (``[thresholds]``) and test settings (``[compare]``)."""

    ttft_regression: float = 0.30
    total_regression: float = 0.30
    tps_regression: float = 0.30
    win: float = 0.30
    min_success_rate: float = 0.95
    tightened: float = 0.20
    alpha: float = 0.01
    min_calls: int = 5
    tighten_at: int = 20
    length_tolerance: float = 0.05

    @classmethod
    def from_config(cls, config: Config) -> Settings:
        values: dict[str, Any] = {k: float(v) for k, v in config.section("thresholds").items()}
        values |= config.section("compare")
        return cls(**values)

    @property
    def confidence(self) -> float:
        return 1.0 - self.alpha

    def limits(self, metric: Metric, n: int) -> tuple[float, float]:
        """The (regression, win) thresholds of ``metric`` when the smaller side has ``n`` calls.

        Section 7 chose 30% for five calls a side and says to tighten it once N is 20; from
        ``tighten_at`` calls the thresholds become ``tightened`` (never looser than set).
        """
        reg: float = getattr(self, metric.threshold)
        if n >= self.tighten_at:
            return min(reg, self.tightened), min(self.win, self.tightened)
        return reg, self.win


@dataclass(frozen=True)
class Metric:
    key: str  # short id, used in catalogue.json and anchors
    label: str
    unit: str
    lower_is_better: bool
    threshold: str  # the Settings field holding its regression threshold
    anchor: str  # methodology.md anchor of its definition
    field: str = ""  # the per-call field its values are (sitegen.vocabulary COMPARED)


def _metric(key: str, lower_is_better: bool, threshold: str) -> Metric:
    """A compared metric, named and unit-ed by the site's one vocabulary."""
    c = COMPARED[key]
    return Metric(key, c.label, c.unit, lower_is_better, threshold, c.anchor, c.field)


METRICS: tuple[Metric, ...] = (
    _metric("ttft", True, "ttft_regression"),
    _metric("decode", False, "tps_regression"),
    _metric("total", True, "total_regression"),
)
BY_KEY = {m.key: m for m in METRICS}


@dataclass(frozen=True)
class Sample:
    """The warm calls of one run for one cell and prompt (errored calls only counted)."""

    calls: int
    errors: int
    values: dict[str, tuple[float, ...]] = field(default_factory=dict)  # metric key -> values
    completion_tokens: tuple[float, ...] = ()
    # What is computed from the values once (a baseline is compared with many runs).
    _memo: dict[tuple[str, str], object] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @property
    def success_rate(self) -> float | None:
        return None if not self.calls else (self.calls - self.errors) / self.calls

    def positive(self, key: str) -> tuple[float, ...]:
        """The metric's values that a ratio can use (positive and finite)."""
        memo = self._memo.get(("positive", key))
        if memo is None:
            memo = tuple(v for v in self.values.get(key, ()) if v > 0 and math.isfinite(v))
            self._memo[("positive", key)] = memo
        return memo  # type: ignore[return-value]

    def spread(self, key: str) -> Spread | None:
        if ("spread", key) not in self._memo:
            self._memo[("spread", key)] = Spread.of(self.positive(key))
        return self._memo[("spread", key)]  # type: ignore[return-value]

    def logs(self, key: str) -> tuple[float, ...]:
        memo = self._memo.get(("logs", key))
        if memo is None:
            memo = tuple(math.log(v) for v in self.positive(key))
            self._memo[("logs", key)] = memo
        return memo  # type: ignore[return-value]


# ---------------------------------------------------------------- statistics


def quantile(sorted_values: list[float] | tuple[float, ...], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default, as the aggregates)."""
    h = (len(sorted_values) - 1) * q
    lo = math.floor(h)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (h - lo) * (sorted_values[hi] - sorted_values[lo])


@dataclass(frozen=True)
class Spread:
    """p50 with its interquartile range (p25-p75) and the number of values."""

    p50: float
    p25: float
    p75: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread | None:
        if not values:
            return None
        s = sorted(values)
        return cls(quantile(s, 0.5), quantile(s, 0.25), quantile(s, 0.75), len(s))


@lru_cache(maxsize=4096)
def u_counts(m: int, n: int) -> tuple[int, ...]:
    """How many of the C(m+n, m) orderings give U = 0, 1, ..., m*n (no ties).

    These are the coefficients of the Gaussian binomial [m+n choose m]_q,
    built as the product over i = 1..m of (1 - q^(n+i)) / (1 - q^i).
    """
    deg = m * n
    c = [1] + [0] * deg
    for i in range(1, m + 1):
        step = n + i
        for j in range(deg, step - 1, -1):
            c[j] -= c[j - step]
        for j in range(i, deg + 1):
            c[j] += c[j - i]
    return tuple(c)


@lru_cache(maxsize=4096)
def _u_cdf(m: int, n: int) -> tuple[float, ...]:
    """P(U <= u) for u = 0..m*n under the null (no ties)."""
    total, cum, out = math.comb(m + n, m), 0, []
    for c in u_counts(m, n):
        cum += c
        out.append(cum / total)
    return tuple(out)


def _exact_p(u: float, m: int, n: int) -> float:
    return min(1.0, 2.0 * _u_cdf(m, n)[int(min(u, m * n - u))])


def smallest_p(m: int, n: int) -> float:
    """The smallest two-sided p the exact test can give at these sizes (complete separation)."""
    if m == 0 or n == 0:
        return 1.0
    return min(1.0, 2.0 / math.comb(m + n, m))


def _ranks(values: list[float]) -> tuple[list[float], list[int]]:
    """Mid-ranks (1-based) of ``values`` and the sizes of their tie groups."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    ties = []
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        if j > i:
            ties.append(j - i + 1)
        i = j + 1
    return ranks, ties


def mann_whitney(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """(U, two-sided p) for y against x; U counts pairs with y > x (ties count a half).

    Exact when there are no ties and both samples hold at most EXACT_MAX_N
    values; otherwise the normal approximation with tie and continuity
    corrections. Matches ``scipy.stats.mannwhitneyu(y, x, method=...)``.
    """
    m, n = len(x), len(y)
    if not m or not n:
        return math.nan, 1.0
    ranks, ties = _ranks(list(x) + list(y))
    u = sum(ranks[m:]) - n * (n + 1) / 2
    mn = m * n
    if not ties and max(m, n) <= EXACT_MAX_N:
        return u, _exact_p(u, m, n)
    total = m + n
    tie_term = sum(t**3 - t for t in ties) / (total * (total - 1))
    var = mn / 12.0 * ((total + 1) - tie_term)
    if var <= 0:
        return u, 1.0
    z = (abs(u - mn / 2.0) - 0.5) / math.sqrt(var)
    return u, min(1.0, math.erfc(max(z, 0.0) / math.sqrt(2.0)))


@lru_cache(maxsize=4096)
def _ci_rank(m: int, n: int, alpha: float) -> int:
    """k such that the k-th smallest and k-th largest pairwise differences bound the
    ``1 - alpha`` interval; 0 when no finite interval reaches that level."""
    mn = m * n
    if max(m, n) <= EXACT_MAX_N:
        k = 0
        for u, cdf in enumerate(_u_cdf(m, n)):
            if cdf > alpha / 2:
                break
            k = u + 1  # P(U <= u) <= alpha/2, so the (u+1)-th difference is a bound
        return k
    z = NormalDist().inv_cdf(1 - alpha / 2)
    return max(0, math.floor(mn / 2 - z * math.sqrt(mn * (m + n + 1) / 12)))


@dataclass(frozen=True)
class Shift:
    """The Hodges-Lehmann ratio now/baseline, its ``level`` CI, and the test's p."""

    ratio: float
    low: float | None  # None: unbounded at this level
    high: float | None
    p: float
    level: float


def hodges_lehmann(
    x: Sequence[float],
    y: Sequence[float],
    alpha: float,
    logs: tuple[Sequence[float], Sequence[float]] | None = None,
) -> Shift:
    """Shift of log values between two positive samples, as a ratio with its CI.
    ``logs``: the two samples' logarithms, when already at hand."""
    lx, ly = logs or ([math.log(v) for v in x], [math.log(v) for v in y])
    diffs = sorted([b - a for b in ly for a in lx])
    mid = len(diffs) // 2
    med = diffs[mid] if len(diffs) % 2 else (diffs[mid - 1] + diffs[mid]) / 2
    m, n = len(x), len(y)
    k = _ci_rank(m, n, alpha)
    low = math.exp(diffs[k - 1]) if k else None
    high = math.exp(diffs[len(diffs) - k]) if k else None
    if max(m, n) <= EXACT_MAX_N and len(set(x) | set(y)) == m + n:
        # No ties: U is the number of positive differences, already sorted here.
        p = _exact_p(len(diffs) - bisect.bisect_right(diffs, 0.0), m, n)
    else:
        _, p = mann_whitney(x, y)
    return Shift(math.exp(med), low, high, p, 1.0 - alpha)


# ---------------------------------------------------------------- verdicts


@dataclass(frozen=True)
class MetricVerdict:
    metric: Metric
    status: str  # REGRESSION, WIN, SMALL, NOISE, TOO_FEW, UNLIKE or NO_DATA
    reason: str  # the status in words a reader understands
    base: Spread | None
    now: Spread | None
    shift: Shift | None
    note: str = ""  # how it was measured, when not as defined (a TTFT read as first event)

    @property
    def change(self) -> float | None:
        """ratio - 1, rounded so that exactly 30% stays 0.3."""
        return None if self.shift is None else round(self.shift.ratio - 1.0, 6)

    @property
    def significant(self) -> bool:
        return self.status in (REGRESSION, WIN, SMALL)

    @property
    def p_text(self) -> str:
        return fmt_p(self.shift.p) if self.shift else "–"

    @property
    def ci_text(self) -> str:
        return fmt_ci(self.shift)

    @property
    def change_text(self) -> str:
        return fmt_pct(self.change)

    @property
    def n_text(self) -> str:
        return _n_text(self.base, self.now)

    def worse(self) -> float | None:
        """How much worse (positive) or better (negative), as a fraction."""
        if self.change is None:
            return None
        return self.change if self.metric.lower_is_better else -self.change


def fmt_pct(fraction: float | None) -> str:
    return "–" if fraction is None else f"{fraction * 100:+.1f}%"


def fmt_p(p: float | None) -> str:
    if p is None:
        return "–"
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}"


def fmt_ci(shift: Shift | None) -> str:
    if shift is None:
        return "–"

    def end(v: float | None, sign: str) -> str:
        return f"{sign}∞" if v is None else fmt_pct(v - 1.0)

    return f"{shift.level * 100:.0f}% CI {end(shift.low, '−')} to {end(shift.high, '+')}"


def _n_text(base: Spread | None, now: Spread | None) -> str:
    return f"n = {base.n if base else 0} vs {now.n if now else 0}"


def ttft_fallback(base: Sample, now: Sample) -> str | None:
    """Why TTFT is measured as the first event for this pair, or None when both sides
    recorded ``ttft_ms``. Only a side with no ``ttft_ms`` at all (an older or imported
    run) falls back, and then both sides use ``first_delta_ms``: never one definition
    against the other."""
    sides = (("baseline", base), ("this run", now))
    missing = [name for name, s in sides if not s.values.get("ttft")]
    if not missing or not all(s.values.get("first_event") for s in (base, now)):
        return None
    return f"TTFT read as first event: no ttft_ms recorded for {' or '.join(missing)}"


def metric_verdict(metric: Metric, base: Sample, now: Sample, settings: Settings) -> MetricVerdict:
    fallback = ttft_fallback(base, now) if metric.key == "ttft" else None
    key = "first_event" if fallback else metric.key
    verdict = _metric_verdict(metric, key, base, now, settings)
    if fallback:
        return replace(verdict, reason=f"{verdict.reason}; {fallback}", note=fallback)
    return verdict


def _metric_verdict(
    metric: Metric, key: str, base: Sample, now: Sample, settings: Settings
) -> MetricVerdict:
    if key == "decode":
        # decode_tps only when both runs record it for every call, else tokens_per_sec:
        # never one definition against the other.
        both = all(len(s.values.get("decode_tps", ())) == s.calls - s.errors for s in (base, now))
        key = "decode_tps" if both else "tokens_per_sec"
    x, y = base.positive(key), now.positive(key)
    sx, sy = base.spread(key), now.spread(key)
    if sx is None or sy is None:
        return MetricVerdict(metric, NO_DATA, "not measured by both runs", sx, sy, None)
    if metric.key == "total":
        lb, ln = Spread.of(base.completion_tokens), Spread.of(now.completion_tokens)
        if (
            lb is None
            or ln is None
            or abs(ln.p50 - lb.p50) > settings.length_tolerance * max(lb.p50, 1.0)
        ):
            told = "not recorded" if lb is None or ln is None else f"{lb.p50:g} vs {ln.p50:g}"
            return MetricVerdict(
                metric,
                UNLIKE,
                f"not like-for-like: output length (median tokens {told})",
                sx,
                sy,
                None,
            )
    shift = hodges_lehmann(x, y, settings.alpha, (base.logs(key), now.logs(key)))
    n_text = _n_text(sx, sy)
    if min(len(x), len(y)) < settings.min_calls or smallest_p(len(x), len(y)) > settings.alpha:
        return MetricVerdict(metric, TOO_FEW, f"too few calls to tell ({n_text})", sx, sy, shift)
    draft = MetricVerdict(metric, NOISE, "", sx, sy, shift)
    worse = draft.worse() or 0.0
    evidence = f"{fmt_ci(shift)}, {fmt_p(shift.p)}, {n_text}"
    if shift.p > settings.alpha:
        if _rules_out(metric, shift, settings.limits(metric, min(len(x), len(y)))):
            return MetricVerdict(metric, NOISE, f"within noise ({fmt_p(shift.p)})", sx, sy, shift)
        return MetricVerdict(
            metric,
            TOO_FEW,
            f"too few calls to tell ({n_text}): the {fmt_ci(shift)} still admits a change "
            f"past the threshold ({fmt_p(shift.p)})",
            sx,
            sy,
            shift,
        )
    reg, win = settings.limits(metric, min(len(x), len(y)))
    if worse >= reg:
        return MetricVerdict(metric, REGRESSION, f"regression ({evidence})", sx, sy, shift)
    if -worse >= win:
        return MetricVerdict(metric, WIN, f"win ({evidence})", sx, sy, shift)
    direction = "worse" if worse > 0 else "better"
    limit = reg if worse > 0 else win
    return MetricVerdict(
        metric,
        SMALL,
        f"real but small: {direction} by less than the {limit * 100:.0f}% threshold "
        f"({fmt_p(shift.p)})",
        sx,
        sy,
        shift,
    )


def _rules_out(metric: Metric, shift: Shift, limits: tuple[float, float]) -> bool:
    """Whether the CI excludes every change that would be flagged, both ways: only then is
    an unflagged change "within noise" rather than "too few calls to tell"."""
    if shift.low is None or shift.high is None:
        return False
    reg, win = limits
    if metric.lower_is_better:
        return 1.0 - win < shift.low and shift.high < 1.0 + reg
    return 1.0 - reg < shift.low and shift.high < 1.0 + win


@dataclass(frozen=True)
class RowVerdict:
    """One cell x prompt of a run against its baseline."""

    cell_id: str
    prompt_id: str
    baseline_id: str
    baseline_title: str
    metrics: tuple[MetricVerdict, ...]
    success_base: float | None
    success_now: float | None
    success_flag: bool  # warm success rate under the minimum (a red flag)
    differences: tuple[str, ...]  # why not like-for-like; empty when it is
    verdict: str  # REGRESSION, WIN, MIXED, SMALL, NOISE, TOO_FEW or UNLIKE
    reason: str
    # Some estimate is past a threshold, flagged or not: what a ratio alone would flag.
    beyond_threshold: bool = False

    @property
    def comparable(self) -> bool:
        return not self.differences

    @property
    def flagged(self) -> bool:
        return self.verdict in FLAGGED

    @property
    def regressions(self) -> list[str]:
        if not self.comparable:
            return []
        out = [m.metric.label for m in self.metrics if m.status == REGRESSION]
        return out + (["warm success rate"] if self.success_flag else [])

    @property
    def wins(self) -> list[str]:
        if not self.comparable:
            return []
        return [m.metric.label for m in self.metrics if m.status == WIN]

    @property
    def p(self) -> float | None:
        """The strongest evidence of the row: its smallest p among tested metrics."""
        ps = [m.shift.p for m in self.metrics if m.shift and m.status not in (TOO_FEW, UNLIKE)]
        return min(ps) if ps else None

    @property
    def size(self) -> float:
        """Its largest change, as |log ratio|."""
        return max((abs(math.log(m.shift.ratio)) for m in self.metrics if m.shift), default=0.0)

    def evidence_key(self) -> tuple[int, float, float, str, str]:
        """Flagged rows first, then by significance, then by size."""
        p = self.p if self.p is not None else 2.0
        return (0 if self.flagged else 1, p, -self.size, self.cell_id, self.prompt_id)


def _past(m: MetricVerdict, s: Settings) -> bool:
    worse = m.worse()
    if worse is None or m.base is None or m.now is None:
        return False
    reg, win = s.limits(m.metric, min(m.base.n, m.now.n))
    return worse >= reg or -worse >= win


def row_verdict(
    cell: str,
    prompt: str,
    baseline_id: str,
    baseline_title: str,
    base: Sample,
    now: Sample,
    differences: list[str],
    settings: Settings,
) -> RowVerdict:
    metrics = tuple(metric_verdict(m, base, now, settings) for m in METRICS)
    success_now = now.success_rate
    success_flag = success_now is not None and success_now < settings.min_success_rate
    verdict, reason = _combine(metrics, success_flag, differences, success_now)
    notes = [m.note for m in metrics if m.note]
    if notes:
        reason = "; ".join([reason, *notes])
    return RowVerdict(
        cell,
        prompt,
        baseline_id,
        baseline_title,
        metrics,
        base.success_rate,
        success_now,
        success_flag,
        tuple(differences),
        verdict,
        reason,
        success_flag or any(_past(m, settings) for m in metrics),
    )


def _combine(
    metrics: tuple[MetricVerdict, ...],
    success_flag: bool,
    differences: list[str],
    success_now: float | None,
) -> tuple[str, str]:
    if differences:
        return UNLIKE, "not like-for-like: " + "; ".join(differences)
    worse = [m for m in metrics if m.significant and (m.worse() or 0) > 0]
    better = [m for m in metrics if m.significant and (m.worse() or 0) < 0]
    flagged_bad = [m for m in worse if m.status == REGRESSION]
    flagged_good = [m for m in better if m.status == WIN]

    def said(ms: list[MetricVerdict], how: str) -> list[str]:
        return [f"{m.metric.label} {fmt_pct(m.change)}{' ' + how if how else ''}" for m in ms]

    red = [f"warm success rate {success_now:.0%} (red flag)"] if success_flag else []
    if ((flagged_bad or red) and better) or (flagged_good and (worse or red)):
        parts = red + said(worse, "worse") + said(better, "better")
        return MIXED, "mixed: " + ", ".join(parts)
    if flagged_bad or red:
        return REGRESSION, "regression: " + ", ".join(red + said(flagged_bad, ""))
    if flagged_good:
        return WIN, "win: " + ", ".join(said(flagged_good, ""))
    if worse or better:
        return SMALL, "real but below the thresholds: " + ", ".join(
            said(worse, "worse") + said(better, "better")
        )
    few = [m for m in metrics if m.status == TOO_FEW]
    if few:
        return TOO_FEW, few[0].reason
    tested = [m.shift.p for m in metrics if m.status == NOISE and m.shift]
    if tested:
        return NOISE, f"within noise (smallest {fmt_p(min(tested))})"
    return NO_DATA, "nothing both runs measured alike"


def _round(v: float | None, digits: int = 6) -> float | None:
    return None if v is None else round(v, digits)


def spread_json(s: Spread | None) -> dict[str, float | int] | None:
    if s is None:
        return None
    return {"p50": round(s.p50, 3), "p25": round(s.p25, 3), "p75": round(s.p75, 3), "n": s.n}


def metric_json(m: MetricVerdict) -> dict[str, object]:
    """The catalogue form of a metric verdict (plain JSON, rounded for stable bytes)."""
    sh = m.shift
    return {
        "metric": m.metric.key,
        "status": m.status,
        "reason": m.reason,
        "base": spread_json(m.base),
        "now": spread_json(m.now),
        "ratio": _round(sh.ratio) if sh else None,
        "ci_low": _round(sh.low) if sh else None,
        "ci_high": _round(sh.high) if sh else None,
        "ci_level": _round(sh.level) if sh else None,
        "p": _round(sh.p, 8) if sh else None,
    }


def row_json(r: RowVerdict) -> dict[str, object]:
    return {
        "cell_id": r.cell_id,
        "prompt_id": r.prompt_id,
        "baseline_id": r.baseline_id,
        "verdict": r.verdict,
        "reason": r.reason,
        "differences": list(r.differences),
        "success_base": _round(r.success_base, 4),
        "success_now": _round(r.success_now, 4),
        "success_flag": r.success_flag,
        "metrics": [metric_json(m) for m in r.metrics],
    }
