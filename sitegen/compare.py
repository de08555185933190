"""Comparisons against baselines: regressions, wins, and the comparability guard.

Section 7 of the harness methodology: a run is compared, per cell and prompt,
with the most recent earlier run marked ``baseline`` that measured the same
cell. Warm TTFT p50 and total duration p50 that are slower by the threshold,
and warm tokens/s that is lower by it, are regressions; a warm success rate
under the minimum is a red flag, counted as a regression; an improvement of at
least the win threshold on any metric is a win.

A comparison is only made like-for-like: when the model digest, the engine
version or the prompt's sha256 differ (or are not recorded), the row says
which, and counts neither as a regression nor as a win.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sitegen.archive import Run
from sitegen.catalogue import sort_key, targets_of
from sitegen.config import Config
from sitegen.exceptions import BuildError, ValidationFailed
from sitegen.repro import is_placeholder_version, prompt_hashes


@dataclass(frozen=True)
class Metric:
    key: str  # column of the aggregate rows
    label: str
    unit: str
    lower_is_better: bool
    threshold: str  # name of the regression threshold setting


METRICS: tuple[Metric, ...] = (
    Metric("first_delta_ms_p50", "warm TTFT p50", "ms", True, "ttft_regression"),
    Metric("total_duration_ms_p50", "warm total p50", "ms", True, "total_regression"),
    Metric("tokens_per_sec_mean", "warm tokens/s", "", False, "tps_regression"),
)

GUARDED = (("model_digest", "model digest"), ("engine_version", "engine version"))


@dataclass(frozen=True)
class Thresholds:
    ttft_regression: float = 0.30
    total_regression: float = 0.30
    tps_regression: float = 0.30
    win: float = 0.30
    min_success_rate: float = 0.95

    @classmethod
    def from_config(cls, config: Config) -> Thresholds:
        return cls(**{k: float(v) for k, v in config.section("thresholds").items()})


@dataclass(frozen=True)
class Facts:
    """What a comparison needs to know about one run."""

    run_id: str
    title: str
    started_at: str | None
    baseline: bool
    targets: dict[str, dict[str, Any]]  # cell id -> target
    prompts: dict[str, str]  # prompt id -> sha256
    warm: dict[tuple[str, str], dict[str, Any]]  # (cell, prompt) -> warm aggregate row

    @property
    def key(self) -> tuple[str, str]:
        return (self.started_at or "", self.run_id)

    @property
    def cells(self) -> set[str]:
        return {cell for cell, _ in self.warm}


def facts_of(run: Run, rows: list[dict[str, Any]]) -> Facts:
    return Facts(
        run_id=run.run_id,
        title=run.metadata.get("title") or run.run_id,
        started_at=run.started_at,
        baseline=bool(run.metadata.get("baseline")),
        targets={t["cell_id"]: t for t in targets_of(run)},
        prompts=prompt_hashes(run),
        warm={(r["cell_id"], r["prompt_id"]): r for r in rows if r["phase"] == "warm"},
    )


@dataclass
class Row:
    """One cell x prompt of a run against its baseline."""

    cell_id: str
    prompt_id: str
    baseline_id: str
    baseline_title: str
    metrics: list[dict[str, Any]]  # key, label, unit, base, now, change, flag
    success_base: float | None
    success_now: float | None
    success_flag: bool
    differences: list[str]  # empty when like-for-like

    @property
    def comparable(self) -> bool:
        return not self.differences

    @property
    def regressions(self) -> list[str]:
        if not self.comparable:
            return []
        out = [m["label"] for m in self.metrics if m["flag"] == "regression"]
        if self.success_flag:
            out.append("warm success rate")
        return out

    @property
    def wins(self) -> list[str]:
        if not self.comparable:
            return []
        return [m["label"] for m in self.metrics if m["flag"] == "win"]

    @property
    def verdict(self) -> str:
        """``regression``, ``win``, ``ok`` or ``not like-for-like``."""
        if not self.comparable:
            return "not like-for-like"
        if self.regressions:
            return "regression"
        return "win" if self.wins else "ok"


@dataclass
class RunComparison:
    run_id: str
    rows: list[Row] = field(default_factory=list)
    without_baseline: list[str] = field(default_factory=list)  # cells with no earlier baseline

    @property
    def regressions(self) -> list[Row]:
        return [r for r in self.rows if r.regressions]

    @property
    def wins(self) -> list[Row]:
        return [r for r in self.rows if r.wins]

    @property
    def not_comparable(self) -> list[Row]:
        return [r for r in self.rows if not r.comparable]


def change(base: float | None, now: float | None) -> float | None:
    """Relative change ``now / base - 1``, rounded so 30% is exactly 0.3."""
    if base is None or now is None or base <= 0:
        return None
    return round(now / base - 1.0, 6)


def flag(metric: Metric, delta: float | None, thresholds: Thresholds) -> str | None:
    if delta is None:
        return None
    worse = delta if metric.lower_is_better else -delta
    if worse >= getattr(thresholds, metric.threshold):
        return "regression"
    if -worse >= thresholds.win:
        return "win"
    return None


def _describe(name: str, base: Any, now: Any) -> str | None:
    if base is None and now is None:
        return f"{name} not recorded"
    if base is None:
        return f"{name} not recorded for the baseline"
    if now is None:
        return f"{name} not recorded for this run"
    if base != now:
        return f"{name} differs ({base} vs {now})"
    return None


def _known(key: str, value: Any) -> Any:
    """A placeholder engine version (``b0-unknown``) means unknown: two are not equal."""
    if key == "engine_version" and value is not None and is_placeholder_version(value):
        return None
    return value


def differences(run: Facts, base: Facts, cell: str, prompt: str) -> list[str]:
    """Why this cell x prompt is not like-for-like with the baseline (empty when it is)."""
    out = []
    t_now, t_base = run.targets.get(cell, {}), base.targets.get(cell, {})
    for key, name in GUARDED:
        why = _describe(name, _known(key, t_base.get(key)), _known(key, t_now.get(key)))
        if why:
            out.append(why)
    why = _describe("prompt sha256", base.prompts.get(prompt), run.prompts.get(prompt))
    if why:
        out.append(why)
    return out


def compare_row(
    run: Facts, base: Facts, cell: str, prompt: str, thresholds: Thresholds
) -> Row | None:
    """The comparison of one cell x prompt, or None if either run lacks it."""
    now_row, base_row = run.warm.get((cell, prompt)), base.warm.get((cell, prompt))
    if now_row is None or base_row is None:
        return None
    metrics = []
    for m in METRICS:
        delta = change(base_row.get(m.key), now_row.get(m.key))
        metrics.append(
            {
                "key": m.key,
                "label": m.label,
                "unit": m.unit,
                "base": base_row.get(m.key),
                "now": now_row.get(m.key),
                "change": delta,
                "flag": flag(m, delta, thresholds),
            }
        )
    success_now = now_row.get("success_rate")
    return Row(
        cell_id=cell,
        prompt_id=prompt,
        baseline_id=base.run_id,
        baseline_title=base.title,
        metrics=metrics,
        success_base=base_row.get("success_rate"),
        success_now=success_now,
        success_flag=success_now is not None and success_now < thresholds.min_success_rate,
        differences=differences(run, base, cell, prompt),
    )


def compare_pair(base: Facts, run: Facts, thresholds: Thresholds) -> RunComparison:
    """Every cell x prompt both runs measured (the ``sitegen compare`` table)."""
    out = RunComparison(run.run_id)
    for cell, prompt in sorted(run.warm):
        row = compare_row(run, base, cell, prompt, thresholds)
        if row is not None:
            out.rows.append(row)
    out.without_baseline = sorted(run.cells - base.cells)
    return out


class Baselines:
    """Baseline runs per cell, ordered, to find the most recent earlier one fast."""

    def __init__(self, facts: list[Facts]):
        self._keys: dict[str, list[tuple[str, str]]] = {}
        self._runs: dict[str, list[Facts]] = {}
        for f in sorted((f for f in facts if f.baseline), key=lambda f: f.key):
            for cell in f.cells:
                self._keys.setdefault(cell, []).append(f.key)
                self._runs.setdefault(cell, []).append(f)

    def before(self, run: Facts, cell: str) -> Facts | None:
        """The most recent baseline that started before ``run`` and measured ``cell``."""
        i = bisect.bisect_left(self._keys.get(cell, []), run.key)
        return self._runs[cell][i - 1] if i else None


def compare_to_baselines(
    facts: Facts, baselines: Baselines, thresholds: Thresholds
) -> RunComparison:
    out = RunComparison(facts.run_id)
    for cell in sorted(facts.cells):
        base = baselines.before(facts, cell)
        if base is None:
            out.without_baseline.append(cell)
            continue
        for c, prompt in sorted(facts.warm):
            if c != cell:
                continue
            row = compare_row(facts, base, cell, prompt, thresholds)
            if row is not None:
                out.rows.append(row)
    return out


def all_comparisons(
    runs: list[Run], rows: dict[str, list[dict[str, Any]]], thresholds: Thresholds
) -> dict[str, RunComparison]:
    """run id -> its comparison with the baselines before it, for every run."""
    facts = [facts_of(r, rows.get(r.run_id, [])) for r in sorted(runs, key=sort_key)]
    baselines = Baselines(facts)
    return {f.run_id: compare_to_baselines(f, baselines, thresholds) for f in facts}


# ---------------------------------------------------------------- formatting


def fmt_value(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:,.1f}"


def fmt_change(delta: float | None) -> str:
    if delta is None:
        return "–"
    return f"{delta * 100:+.1f}%"


def fmt_metric(m: dict[str, Any]) -> str:
    text = f"{fmt_value(m['base'])} → {fmt_value(m['now'])} ({fmt_change(m['change'])})"
    if m["flag"]:
        text += f" {m['flag']}"
    return text


def fmt_success(row: Row) -> str:
    def pct(v: float | None) -> str:
        return "–" if v is None else f"{v * 100:.0f}%"

    text = f"{pct(row.success_base)} → {pct(row.success_now)}"
    return text + " red flag" if row.success_flag and row.comparable else text


def verdict_text(row: Row) -> str:
    if not row.comparable:
        return "not like-for-like: " + "; ".join(row.differences)
    return "within thresholds" if row.verdict == "ok" else row.verdict


def table(comparison: RunComparison) -> list[list[str]]:
    """Header plus one text row per cell x prompt: the page table, in plain text."""
    head = ["cell", "prompt", *(m.label for m in METRICS), "warm success", "verdict"]
    body = [
        [
            r.cell_id,
            r.prompt_id,
            *(fmt_metric(m) for m in r.metrics),
            fmt_success(r),
            verdict_text(r),
        ]
        for r in comparison.rows
    ]
    return [head, *body]


def render_table(rows: list[list[str]]) -> str:
    """Columns padded to their widest cell; one line per row."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- the CLI command


def _load_two(archive: Path, ids: tuple[str, str]) -> list[Facts]:
    """Read just the two runs (not the whole archive) and aggregate them."""
    from sitegen import aggregate as agg
    from sitegen.archive import read_run
    from sitegen.config import load_config
    from sitegen.discover import LEDGER, discover
    from sitegen.ledger import read_calls

    if not archive.is_dir():
        raise BuildError(f"{archive}: archive folder does not exist")
    config = load_config(archive)
    sources, _ = discover(archive, max_file_bytes=config.get("limits.max_file_bytes"))
    by_id = {s.run_id: s for s in sources}
    runs = []
    for run_id in ids:
        if run_id not in by_id:
            raise BuildError(f"runs/{run_id}: no such run in {archive}")
        run, problems = read_run(by_id[run_id], config)
        if run is None:
            raise ValidationFailed(problems)
        runs.append(run)
    ledgers = {r.run_id: r.source.path / LEDGER for r in runs if r.ledger is not None}
    rows = agg.rows_by_run(agg.aggregate(read_calls(ledgers)))
    return [facts_of(r, rows.get(r.run_id, [])) for r in runs]


def compare_runs(archive: Path, run_a: str, run_b: str) -> str:
    """The text table of RUN_B against RUN_A (A plays the baseline), with thresholds."""
    archive = Path(archive)
    from sitegen.config import load_config

    thresholds = Thresholds.from_config(load_config(archive))
    base, run = _load_two(archive, (run_a, run_b))
    comparison = compare_pair(base, run, thresholds)
    out = [f"{run.run_id} against {base.run_id}"]
    if not comparison.rows:
        out.append("no cell x prompt was measured by both runs")
        return "\n".join(out) + "\n"
    text = "\n".join(out) + "\n\n" + render_table(table(comparison))
    n_reg, n_win = len(comparison.regressions), len(comparison.wins)
    n_nc = len(comparison.not_comparable)
    summary = f"\n{n_reg} regression(s), {n_win} win(s), {n_nc} not like-for-like"
    if comparison.without_baseline:
        summary += f"; not in {base.run_id}: " + ", ".join(comparison.without_baseline)
    return text + summary + "\n"
