"""Comparisons against baselines: which baseline, the like-for-like guard, the CLI table.

Section 7 of the harness methodology: a run is compared, per cell and prompt,
with the most recent earlier run marked ``baseline`` that measured the same
cell. What each comparison concludes (regression, win, mixed, within noise,
too few calls) is decided in :mod:`sitegen.verdicts` from the per-call warm
values of both runs, never from a ratio of aggregates alone.

A comparison is only made like-for-like: when the model digest, the engine
version or the prompt's sha256 differ (or are not recorded), or the runs kept a
different number of requests in flight, asked for a different max tokens or
recorded a different value of one of the target's settings (threads, slots,
...), the row says which, and counts neither as a regression nor as a win.
The settings a measurement was taken under (``workload``) also split the trend
charts of the group pages into series.
"""

from __future__ import annotations

import bisect
import dataclasses
import json
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import polars as pl

from sitegen.archive import Run
from sitegen.buildstate import BuildState
from sitegen.catalogue import sort_key, targets_of
from sitegen.config import Config
from sitegen.exceptions import BuildError, ValidationFailed
from sitegen.repro import is_placeholder_version, prompt_hashes
from sitegen.reuse import digest
from sitegen.verdicts import (
    BY_KEY,
    EXACT_MAX_N,
    METRICS,
    MIXED,
    REGRESSION,
    WIN,
    MetricVerdict,
    RowVerdict,
    Sample,
    Settings,
    Shift,
    Spread,
    fmt_ci,
    fmt_p,
    fmt_pct,
    row_verdict,
)

# The value lists of a Sample, in the order samples_by_run makes them.
SAMPLE_VALUES = ("ttft", "first_event", "total", "decode_tps", "tokens_per_sec")
GUARDED = (("model_digest", "model digest"), ("engine_version", "engine version"))


@dataclass(frozen=True)
class Facts:
    """What a comparison needs to know about one run."""

    run_id: str
    title: str
    started_at: str | None
    baseline: bool
    targets: dict[str, dict[str, Any]]  # cell id -> target
    prompts: dict[str, str]  # prompt id -> sha256
    warm: Mapping[tuple[str, str], Sample]  # (cell, prompt) -> its warm calls
    concurrency: int = 1  # requests in flight; sequential when not recorded
    max_tokens: dict[str, int] = field(default_factory=dict)  # prompt id -> max tokens asked

    @property
    def key(self) -> tuple[str, str]:
        return (self.started_at or "", self.run_id)

    @property
    def cells(self) -> set[str]:
        return {cell for cell, _ in self.warm}


def facts_of(run: Run, samples: Mapping[tuple[str, str], Sample]) -> Facts:
    return Facts(
        run_id=run.run_id,
        title=run.metadata.get("title") or run.run_id,
        started_at=run.started_at,
        baseline=bool(run.metadata.get("baseline")),
        concurrency=run.concurrency or 1,
        targets={t["cell_id"]: t for t in targets_of(run)},
        prompts=prompt_hashes(run),
        max_tokens=_max_tokens(run),
        warm=samples,
    )


def _max_tokens(run: Run) -> dict[str, int]:
    """prompt id -> the max tokens the run asked for, from metadata, else the ledger meta."""
    declared = run.metadata.get("prompts") or run.meta.get("prompts") or {}
    return {
        pid: p["max_tokens"]
        for pid, p in declared.items()
        if isinstance(p, dict) and isinstance(p.get("max_tokens"), int)
    }


def workload(facts: Facts, cell: str, prompt: str) -> dict[str, Any]:
    """The settings one cell x prompt was measured under, by name: requests in flight,
    the prompt's sha256 and max tokens, and each setting recorded for the target
    (threads, slots, cache_prompt, ...; keys as recorded). Two measurements that
    recorded a different value for one of them are not like-for-like."""
    out: dict[str, Any] = {"concurrency": facts.concurrency}
    if prompt in facts.prompts:
        out["prompt sha256"] = facts.prompts[prompt]
    if prompt in facts.max_tokens:
        out["max tokens"] = facts.max_tokens[prompt]
    settings = facts.targets.get(cell, {}).get("settings")
    if isinstance(settings, dict):
        for key in sorted(settings):
            out.setdefault(str(key), settings[key])
    return out


def shown(value: Any) -> str:
    """A setting's value in a sentence: JSON spelling, long digests cut to 12 characters."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, str):
        return value[:12] + "…" if len(value) > 16 else value
    if isinstance(value, int | float):
        return str(value)
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return text[:40] + "…" if len(text) > 40 else text


_SAMPLE_COLUMNS = ("n", "errors", *SAMPLE_VALUES, "tokens")


class _Recent:
    """The samples of the runs asked for last, made into tuples, shared by the runs of
    one frame. A baseline is asked for by every run compared with it, so it stays;
    the others are let go (every run's kept at once grew a first build by about
    0.1 MB a run)."""

    SIZE = 512  # runs

    def __init__(self) -> None:
        self._made: OrderedDict[int, dict[tuple[str, str], Sample]] = OrderedDict()

    def get(self, start: int) -> dict[tuple[str, str], Sample] | None:
        made = self._made.get(start)
        if made is not None:
            self._made.move_to_end(start)
        return made

    def put(self, start: int, made: dict[tuple[str, str], Sample]) -> None:
        self._made[start] = made
        if len(self._made) > self.SIZE:
            self._made.popitem(last=False)


class RunSamples(Mapping[tuple[str, str], Sample]):
    """One run's warm samples: keys at once, values made on first use.

    Adding a run compares that run only; the other runs' comparisons come from
    the build state, so their values are never read. Making every run's
    samples as Python tuples cost about 1.5 s and 200 MB at 10,000 runs;
    the values stay in the (columnar) frame until a page or a comparison asks,
    and only the runs asked for last are kept made (``_Recent``).
    """

    __slots__ = ("_frame", "_keys", "_recent", "_start")

    def __init__(
        self,
        frame: pl.DataFrame,
        start: int,
        keys: list[tuple[str, str]],
        recent: _Recent,
    ):
        self._frame = frame
        self._start = start
        self._keys = keys
        self._recent = recent

    def _samples(self) -> dict[tuple[str, str], Sample]:
        made = self._recent.get(self._start)
        if made is None:
            part = self._frame.slice(self._start, len(self._keys))
            columns = [part[name].to_list() for name in _SAMPLE_COLUMNS]
            made = {
                key: Sample(
                    calls=n,
                    errors=errors,
                    values=dict(zip(SAMPLE_VALUES, map(tuple, lists), strict=True)),
                    completion_tokens=tuple(tokens),
                )
                for key, (n, errors, *lists, tokens) in zip(
                    self._keys, zip(*columns, strict=True), strict=True
                )
            }
            self._recent.put(self._start, made)
        return made

    def __getitem__(self, key: tuple[str, str]) -> Sample:
        return self._samples()[key]

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __repr__(self) -> str:
        return f"RunSamples({self._samples()!r})"


def samples_by_run(calls: pl.DataFrame) -> dict[str, RunSamples]:
    """run id -> (cell, prompt) -> the per-call values of its warm calls.

    Errored calls are counted (for the success rate) but give no values. TTFT is
    ``ttft_ms``; ``first_delta_ms`` is kept as "first_event", which a comparison uses
    for TTFT only when a side recorded no ``ttft_ms`` at all (see
    ``verdicts.ttft_fallback``). The
    decode rate is ``decode_tps`` where the ledger records it, else
    ``tokens_per_sec``; a comparison uses ``decode_tps`` only when both sides
    have it for every call (see ``decode_values``).
    """
    return samples_of(warm_frame(calls))


def warm_frame(calls: pl.DataFrame) -> pl.DataFrame:
    """Per run, cell and prompt: warm calls, errors, and each value list (see samples_by_run).

    Each run's rows depend on its own calls only (sitegen.read_cache.ReadCache.per_run
    keeps them between builds).
    """
    ok = pl.col("error").is_null()

    def good(column: str) -> pl.Expr:
        return pl.col(column).filter(ok & pl.col(column).is_not_null())

    return (
        calls.lazy()
        .filter(pl.col("phase") == "warm")
        .group_by(["run_id", "cell_id", "prompt_id"])
        .agg(
            pl.len().alias("n"),
            (~ok).sum().alias("errors"),
            good(BY_KEY["ttft"].field).alias("ttft"),
            good("first_delta_ms").alias("first_event"),
            good(BY_KEY["total"].field).alias("total"),
            good("decode_tps").alias("decode_tps"),
            good("tokens_per_sec").alias("tokens_per_sec"),
            good("completion_tokens").cast(pl.Float64).alias("tokens"),
        )
        .sort(["run_id", "cell_id", "prompt_id"])
        .collect()
    )


def samples_of(frame: pl.DataFrame) -> dict[str, RunSamples]:
    """The samples of every run in a :func:`warm_frame`."""
    keys: dict[str, list[tuple[str, str]]] = {}
    starts: dict[str, int] = {}
    ids = [frame[name].to_list() for name in ("run_id", "cell_id", "prompt_id")]
    for i, (run_id, cell, prompt) in enumerate(zip(*ids, strict=True)):
        if run_id not in keys:
            keys[run_id], starts[run_id] = [], i
        keys[run_id].append((cell, prompt))
    recent = _Recent()
    return {rid: RunSamples(frame, starts[rid], k, recent) for rid, k in keys.items()}


@dataclass
class RunComparison:
    run_id: str
    rows: list[RowVerdict] = field(default_factory=list)
    without_baseline: list[str] = field(default_factory=list)  # cells with no earlier baseline
    # cell -> prompt -> metric key -> p50 [IQR] and n of the run's own warm calls: the
    # spread its page shows next to every p50.
    spreads: dict[str, dict[str, dict[str, Spread | None]]] = field(default_factory=dict)
    # Comparing two chosen cells: the prompts only one of them measured (not compared).
    one_sided: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[RowVerdict]:
        """Rows with a flagged regression: verdict regression, or mixed with one in it
        (what the regressions feed lists)."""
        return [r for r in self.rows if r.regressions]

    @property
    def wins(self) -> list[RowVerdict]:
        """Rows whose verdict is a win (a mixed row is not one)."""
        return [r for r in self.rows if r.verdict == WIN]

    @property
    def mixed(self) -> list[RowVerdict]:
        return [r for r in self.rows if r.verdict == MIXED]

    @property
    def flagged(self) -> list[RowVerdict]:
        return [r for r in self.rows if r.flagged]

    @property
    def not_comparable(self) -> list[RowVerdict]:
        return [r for r in self.rows if not r.comparable]

    @property
    def changes(self) -> list[RowVerdict]:
        """Rows flagged, or past a threshold by their estimate alone, strongest evidence first:
        what the changes page lists, each with why it is (or is not) flagged."""
        rows = [r for r in self.rows if r.comparable and (r.flagged or r.beyond_threshold)]
        return sorted(rows, key=RowVerdict.evidence_key)


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


def differences(
    run: Facts, base: Facts, cell: str, prompt: str, base_cell: str | None = None
) -> list[str]:
    """Why this cell x prompt is not like-for-like with the baseline (empty when it is).

    ``base_cell``: the baseline's cell, when another cell than ``cell`` is compared
    with it (``sitegen compare --cell-a/--cell-b``). The cells' ids (node, engine,
    model name) are then not guarded, since they differ by choice; their recorded
    facts (model digest, engine version) are, as are the prompt and the concurrency.
    """
    out = []
    t_now, t_base = run.targets.get(cell, {}), base.targets.get(base_cell or cell, {})
    for key, name in GUARDED:
        why = _describe(name, _known(key, t_base.get(key)), _known(key, t_now.get(key)))
        if why:
            out.append(why)
    why = _describe("prompt sha256", base.prompts.get(prompt), run.prompts.get(prompt))
    if why:
        out.append(why)
    # Latency under load is a different quantity from latency alone.
    why = _describe("concurrency", base.concurrency, run.concurrency)
    if why:
        out.append(why)
    # Max tokens and the target's settings: a difference only where both runs recorded
    # the value (a runner that records a new setting does not break older comparisons).
    now, then = workload(run, cell, prompt), workload(base, cell, prompt)
    for name in sorted(now.keys() & then.keys() - {"concurrency", "prompt sha256"}):
        if now[name] != then[name]:
            out.append(f"{name} differs ({shown(then[name])} vs {shown(now[name])})")
    return out


def compare_row(
    run: Facts,
    base: Facts,
    cell: str,
    prompt: str,
    settings: Settings,
    base_cell: str | None = None,
) -> RowVerdict | None:
    """The verdict of one cell x prompt, or None if either run lacks it (``base_cell``:
    the baseline's cell when it is another one; the row's cell then reads "A → B")."""
    base_cell = base_cell or cell
    now_sample, base_sample = run.warm.get((cell, prompt)), base.warm.get((base_cell, prompt))
    if now_sample is None or base_sample is None:
        return None
    return row_verdict(
        cell if base_cell == cell else cell_pair(base_cell, cell),
        prompt,
        base.run_id,
        base.title,
        base_sample,
        now_sample,
        differences(run, base, cell, prompt, base_cell),
        settings,
    )


def cell_pair(cell_a: str, cell_b: str) -> str:
    """The cell column of a row comparing two different cells."""
    return f"{cell_a} → {cell_b}"


def compare_pair(base: Facts, run: Facts, settings: Settings) -> RunComparison:
    """Every cell x prompt both runs measured (the ``sitegen compare`` table)."""
    out = RunComparison(run.run_id)
    for cell, prompt in sorted(run.warm):
        row = compare_row(run, base, cell, prompt, settings)
        if row is not None:
            out.rows.append(row)
    out.without_baseline = sorted(run.cells - base.cells)
    return out


def compare_cells(
    base: Facts, run: Facts, settings: Settings, cell_a: str | None, cell_b: str | None
) -> RunComparison:
    """``run``'s cell ``cell_b`` against ``base``'s cell ``cell_a``, prompt by prompt (one
    cell given: the same cell on both sides; none: every cell, as :func:`compare_pair`).
    The prompts only one side measured are listed in ``one_sided``."""
    if cell_a is None and cell_b is None:
        return compare_pair(base, run, settings)
    cell_a = cell_a or cell_b
    cell_b = cell_b or cell_a
    assert cell_a is not None and cell_b is not None
    for facts, cell in ((base, cell_a), (run, cell_b)):
        if cell not in facts.cells:
            known = ", ".join(sorted(facts.cells)) or "none"
            raise BuildError(
                f"runs/{facts.run_id}: no warm calls of cell {cell!r} (its cells: {known})"
            )
    now_prompts = {p for c, p in run.warm if c == cell_b}
    base_prompts = {p for c, p in base.warm if c == cell_a}
    out = RunComparison(run.run_id)
    for prompt in sorted(now_prompts & base_prompts):
        row = compare_row(run, base, cell_b, prompt, settings, cell_a)
        if row is not None:
            out.rows.append(row)
    out.one_sided = sorted(now_prompts ^ base_prompts)
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


def spreads_of(facts: Facts) -> dict[str, dict[str, dict[str, Spread | None]]]:
    out: dict[str, dict[str, dict[str, Spread | None]]] = {}
    for (cell, prompt), sample in sorted(facts.warm.items()):
        decode = "decode_tps" if sample.values.get("decode_tps") else "tokens_per_sec"
        out.setdefault(cell, {})[prompt] = {
            "ttft": sample.spread("ttft"),
            "first_event": sample.spread("first_event"),
            "total": sample.spread("total"),
            "decode": sample.spread(decode),
            "tps": sample.spread("tokens_per_sec"),
        }
    return out


def compare_to_baselines(facts: Facts, baselines: Baselines, settings: Settings) -> RunComparison:
    out = RunComparison(facts.run_id, spreads=spreads_of(facts))
    for cell in sorted(facts.cells):
        base = baselines.before(facts, cell)
        if base is None:
            out.without_baseline.append(cell)
            continue
        for c, prompt in sorted(facts.warm):
            if c != cell:
                continue
            row = compare_row(facts, base, cell, prompt, settings)
            if row is not None:
                out.rows.append(row)
    return out


@dataclass(frozen=True)
class Outline:
    """What the catalogue and the listing pages read of a run's comparison: its verdict
    counts, baselines and spreads, without its rows.

    Kept in the build state beside the comparison, so that a build decodes a run's
    rows only for a page that shows them (at 10,000 runs, decoding every comparison
    on every build was 5 s of adding one run).
    """

    run_id: str
    verdicts: dict[str, int]  # verdict -> how many rows got it
    baselines: list[str]  # the baselines its rows were compared with
    without_baseline: list[str]
    rows: int
    regressions: int  # rows with a regression in them (a mixed row may have one)
    changes: int  # rows the changes page lists (flagged, or past a threshold)
    unflagged: int  # comparable rows past a threshold but not flagged
    not_comparable: int
    spreads: dict[str, dict[str, dict[str, Spread | None]]]


def outline_of(c: RunComparison) -> Outline:
    verdicts: dict[str, int] = {}
    for r in c.rows:
        verdicts[r.verdict] = verdicts.get(r.verdict, 0) + 1
    return Outline(
        run_id=c.run_id,
        verdicts=dict(sorted(verdicts.items())),
        baselines=sorted({r.baseline_id for r in c.rows}),
        without_baseline=list(c.without_baseline),
        rows=len(c.rows),
        regressions=len(c.regressions),
        changes=len(c.changes),
        unflagged=sum(1 for r in c.rows if r.comparable and r.beyond_threshold and not r.flagged),
        not_comparable=len(c.not_comparable),
        spreads=c.spreads,
    )


class Comparisons(Mapping[str, RunComparison]):
    """run id -> its comparison with the baselines before it, for every run.

    Each run's :class:`Outline` is at hand; its rows are decoded from the build state
    (or computed, if the stored row is damaged) each time they are asked for, and not
    kept: a page that shows them asks once, and a build that renders every page does
    not hold every comparison at once. That holds for the comparisons this build
    computed too (``computed``): they wait in the build state, encoded.
    """

    def __init__(
        self,
        outlines: dict[str, Outline],
        made: dict[str, RunComparison],
        fetch: Callable[[str], RunComparison] | None = None,
        keys: dict[str, str] | None = None,
        computed: Collection[str] = (),
    ):
        self._outlines = outlines
        self._made = made
        self._fetch = fetch
        self._keys = keys or {}
        self._computed = frozenset(computed) | made.keys()
        self.decoded = 0  # comparisons read in full from the build state, for the pages made

    @classmethod
    def of(cls, comparisons: dict[str, RunComparison]) -> Comparisons:
        """Comparisons computed here and now (no build state)."""
        return cls({rid: outline_of(c) for rid, c in comparisons.items()}, comparisons)

    def __getitem__(self, run_id: str) -> RunComparison:
        made = self._made.get(run_id)
        if made is not None:
            return made
        if run_id not in self._outlines or self._fetch is None:
            raise KeyError(run_id)
        if run_id not in self._computed:
            self.decoded += 1
        return self._fetch(run_id)

    def __iter__(self) -> Iterator[str]:
        return iter(self._outlines)

    def __len__(self) -> int:
        return len(self._outlines)

    def __contains__(self, run_id: object) -> bool:
        return run_id in self._outlines

    @property
    def computed(self) -> int:
        """Runs compared by this build (not found in the build state)."""
        return len(self._computed)

    def summary(self) -> str:
        """What this build did for the verdicts, for its report."""
        return (
            f"comparisons: {self.computed} computed, {len(self) - self.computed} from the "
            f"build state ({self.decoded} read in full for the pages made)"
        )

    def outline(self, run_id: str) -> Outline | None:
        return self._outlines.get(run_id)

    def key(self, run_id: str) -> str | None:
        """The build-state key of the run's comparison: a digest of all it was made from."""
        return self._keys.get(run_id)

    def outlines(self) -> Iterable[Outline]:
        return self._outlines.values()


OUTLINES = "comparison-outlines"  # the build state's kind for outlines (comparisons: "comparisons")


def all_comparisons(
    runs: list[Run],
    samples: Mapping[str, Mapping[tuple[str, str], Sample]],
    settings: Settings,
    state: BuildState | None = None,
) -> Comparisons:
    """run id -> its comparison with the baselines before it, for every run.

    With ``state``, a run's comparison (and its outline) is computed once and kept
    under a key made of exactly what it reads: the run's files, the files of the
    baseline chosen for each of its cells, the verdict settings and the
    publisher's aliases (the code's version salts the whole store). Adding a run
    then compares that run only, unless it is a baseline later runs now meet.
    """
    by_id = {r.run_id: r for r in runs}
    facts = [facts_of(r, samples.get(r.run_id, {})) for r in sorted(runs, key=sort_key)]
    baselines = Baselines(facts)
    if state is None:
        return Comparisons.of(
            {f.run_id: compare_to_baselines(f, baselines, settings) for f in facts}
        )
    memo, outline_memo = state.memo("comparisons"), state.memo(OUTLINES)
    salt = json.dumps(dataclasses.asdict(settings), sort_keys=True)
    outlines: dict[str, Outline] = {}
    computed: list[str] = []
    keys: dict[str, str] = {}
    facts_by_id = {f.run_id: f for f in facts}
    for f in facts:
        run = by_id[f.run_id]
        chosen = {cell: baselines.before(f, cell) for cell in sorted(f.cells)}
        inputs = [
            salt,
            run.digest,
            run.aliases.key,
            [(cell, b and b.run_id, b and by_id[b.run_id].digest) for cell, b in chosen.items()],
        ]
        key = keys[f.run_id] = digest(inputs)
        stored = outline_memo.get(key)
        if stored is not None and memo.hold(key):
            outlines[f.run_id] = outline_from_plain(stored)
            continue
        comparison = compare_to_baselines(f, baselines, settings)
        computed.append(f.run_id)
        outlines[f.run_id] = outline_of(comparison)
        memo.put(key, comparison_to_plain(comparison))
        outline_memo.put(key, outline_to_plain(outlines[f.run_id]))

    def fetch(run_id: str) -> RunComparison:
        stored = memo.peek(keys[run_id])
        if stored is not None:
            return comparison_from_plain(stored)
        # a damaged row: compute it again, and store it for the next build
        comparison = compare_to_baselines(facts_by_id[run_id], baselines, settings)
        memo.put(keys[run_id], comparison_to_plain(comparison))
        return comparison

    return Comparisons(outlines, {}, fetch, keys, computed)


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _shallow(obj: Any) -> dict[str, Any]:
    """A dataclass's fields as a dict, values as they are: for the flat ones stored
    here (``dataclasses.asdict`` copies deeply, a seventh of a first build's load)."""
    names = _FIELD_NAMES.get(type(obj))
    if names is None:
        names = _FIELD_NAMES[type(obj)] = tuple(f.name for f in dataclasses.fields(obj))
    return {name: getattr(obj, name) for name in names}


def _spreads_to_plain(
    spreads: dict[str, dict[str, dict[str, Spread | None]]],
) -> dict[str, Any]:
    return {
        cell: {
            prompt: {k: s and _shallow(s) for k, s in metrics.items()}
            for prompt, metrics in prompts.items()
        }
        for cell, prompts in spreads.items()
    }


def _spreads_from_plain(data: dict[str, Any]) -> dict[str, dict[str, dict[str, Spread | None]]]:
    return {
        cell: {
            prompt: {k: None if s is None else _restore(Spread, s) for k, s in metrics.items()}
            for prompt, metrics in prompts.items()
        }
        for cell, prompts in data.items()
    }


def outline_to_plain(o: Outline) -> dict[str, Any]:
    return _shallow(o) | {"spreads": _spreads_to_plain(o.spreads)}


def outline_from_plain(data: dict[str, Any]) -> Outline:
    return _restore(Outline, data | {"spreads": _spreads_from_plain(data["spreads"])})


def comparison_to_plain(c: RunComparison) -> dict[str, Any]:
    """A comparison as JSON values (metrics by key), for the build state."""

    def metric(m: MetricVerdict) -> dict[str, Any]:
        return {
            "metric": m.metric.key,
            "status": m.status,
            "reason": m.reason,
            "base": m.base and _shallow(m.base),
            "now": m.now and _shallow(m.now),
            "shift": m.shift and _shallow(m.shift),
            "note": m.note,
        }

    rows = [_shallow(r) | {"metrics": [metric(m) for m in r.metrics]} for r in c.rows]
    return {
        "run_id": c.run_id,
        "rows": rows,
        "without_baseline": c.without_baseline,
        "spreads": _spreads_to_plain(c.spreads),
        "one_sided": c.one_sided,
    }


def comparison_from_plain(data: dict[str, Any]) -> RunComparison:
    """The inverse of :func:`comparison_to_plain`: equal to the comparison it was made from.

    Every run's comparison is read back on every build, hundreds of thousands of
    small frozen values at 10,000 runs, so they are restored as a pickle would
    be (fields set, ``__init__`` not run: these classes check nothing in it),
    which is ten times faster than constructing them.
    """

    def spread(d: dict[str, Any] | None) -> Spread | None:
        return None if d is None else _restore(Spread, d)

    def metric(d: dict[str, Any]) -> MetricVerdict:
        return _restore(
            MetricVerdict,
            {
                "metric": BY_KEY[d["metric"]],
                "status": d["status"],
                "reason": d["reason"],
                "base": spread(d["base"]),
                "now": spread(d["now"]),
                "shift": None if d["shift"] is None else _restore(Shift, d["shift"]),
                "note": d["note"],
            },
        )

    rows = [
        _restore(
            RowVerdict,
            r
            | {
                "metrics": tuple(metric(m) for m in r["metrics"]),
                "differences": tuple(r["differences"]),
            },
        )
        for r in data["rows"]
    ]
    return RunComparison(
        data["run_id"],
        rows,
        list(data["without_baseline"]),
        _spreads_from_plain(data["spreads"]),
        list(data["one_sided"]),
    )


_Restored = TypeVar("_Restored")


def _restore(cls: type[_Restored], fields: dict[str, Any]) -> _Restored:
    """An instance of the frozen dataclass ``cls`` with these ``fields`` (constructed
    the usual way, which names what is wrong, when they are not as many as its own)."""
    if len(fields) != len(cls.__dataclass_fields__):  # type: ignore[attr-defined]
        return cls(**fields)
    obj = object.__new__(cls)
    obj.__dict__.update(fields)
    return obj


# ---------------------------------------------------------------- the compare page's data

SAMPLES_FORMAT = "sitegen.samples/1"
INDEX_FORMAT = "sitegen.compare-index/1"


def samples_json(facts: Facts) -> dict[str, Any]:
    """``runs/<id>/samples.json``: everything :func:`compare_row` reads about one run.

    Per measured cell and prompt, the warm calls' values exactly as the verdicts use
    them (errored calls only counted); the facts :func:`differences` guards (a
    placeholder engine version is written as null: it identifies no build), the
    prompts' sha256 and the concurrency. Floats are written in full (the shortest text
    that reads back as the same number), so the page computes the build's verdicts.
    """
    cells = sorted(facts.cells)
    warm: dict[str, dict[str, dict[str, Any]]] = {}
    for (cell, prompt), sample in sorted(facts.warm.items()):
        warm.setdefault(cell, {})[prompt] = {
            "calls": sample.calls,
            "errors": sample.errors,
            **{k: list(sample.values.get(k, ())) for k in SAMPLE_VALUES},
            "completion_tokens": list(sample.completion_tokens),
        }
    targets = {
        cell: {key: _known(key, facts.targets.get(cell, {}).get(key)) for key, _ in GUARDED}
        for cell in cells
    }
    return {
        "format": SAMPLES_FORMAT,
        "id": facts.run_id,
        "concurrency": facts.concurrency,
        "prompts": dict(sorted(facts.prompts.items())),
        "targets": targets,
        "warm": warm,
    }


def facts_from_samples(
    doc: dict[str, Any], title: str, started_at: str | None = None, baseline: bool = False
) -> Facts:
    """The :class:`Facts` a ``samples.json`` describes (what the compare page computes from)."""
    warm = {
        (cell, prompt): Sample(
            calls=s["calls"],
            errors=s["errors"],
            values={k: tuple(s[k]) for k in SAMPLE_VALUES},
            completion_tokens=tuple(s["completion_tokens"]),
        )
        for cell, prompts in doc["warm"].items()
        for prompt, s in prompts.items()
    }
    return Facts(
        run_id=doc["id"],
        title=title,
        started_at=started_at,
        baseline=baseline,
        targets=doc["targets"],
        prompts=doc["prompts"],
        warm=warm,
        concurrency=doc["concurrency"],
    )


def compare_index(
    entries: list[dict[str, Any]], facts: dict[str, Facts], settings: Settings
) -> dict[str, Any]:
    """``compare/index.json``: the runs that can be compared (those with warm calls), in
    the catalogue's order, with their cells and prompts, and the archive's verdict
    settings and metrics, so the page needs nothing else."""
    runs = []
    for e in entries:
        f = facts.get(e["id"])
        if f is None or not f.warm:
            continue
        cells: dict[str, list[str]] = {}
        for cell, prompt in sorted(f.warm):
            cells.setdefault(cell, []).append(prompt)
        runs.append(
            {
                "id": e["id"],
                "title": e["title"],
                "started_at_utc": e.get("started_at_utc"),
                "baseline": bool(e.get("baseline")),
                "synthetic": bool(e.get("synthetic")),
                "retracted": bool(e.get("retracted")),
                "reliable": (e.get("reproducibility") or {}).get("verdict") == "reliable",
                "cells": [{"id": c, "prompts": p} for c, p in cells.items()],
                "samples": f"runs/{e['id']}/samples.json",
            }
        )
    return {
        "format": INDEX_FORMAT,
        "settings": {**dataclasses.asdict(settings), "exact_max_n": EXACT_MAX_N},
        "metrics": [
            {
                "key": m.key,
                "label": m.label,
                "unit": m.unit,
                "lower_is_better": m.lower_is_better,
                "threshold": m.threshold,
            }
            for m in METRICS
        ],
        "runs": runs,
    }


# ---------------------------------------------------------------- formatting


def fmt_value(value: float | None) -> str:
    return "–" if value is None else f"{value:,.1f}"


def fmt_metric(m: MetricVerdict) -> str:
    """``base → now, change (CI, p) status``: everything a verdict rests on, in one cell."""
    text = (
        f"{fmt_value(m.base.p50 if m.base else None)} → {fmt_value(m.now.p50 if m.now else None)}"
    )
    if m.shift is not None:
        text += f" {fmt_pct(m.change)} [{fmt_ci(m.shift)}, {fmt_p(m.shift.p)}]"
    return text + f" {m.status}"


def fmt_success(row: RowVerdict) -> str:
    def pct(v: float | None) -> str:
        return "–" if v is None else f"{v * 100:.0f}%"

    text = f"{pct(row.success_base)} → {pct(row.success_now)}"
    return text + " red flag" if row.success_flag and row.comparable else text


def n_text(row: RowVerdict) -> str:
    ns = [(m.base.n, m.now.n) for m in row.metrics if m.base and m.now]
    return f"{ns[0][0]} vs {ns[0][1]}" if ns else "–"


def table(comparison: RunComparison) -> list[list[str]]:
    """Header plus one text row per cell x prompt: the page table, in plain text."""
    head = ["cell", "prompt", "n", *(m.label for m in METRICS), "warm success", "verdict"]
    body = [
        [
            r.cell_id,
            r.prompt_id,
            n_text(r),
            *(fmt_metric(m) for m in r.metrics),
            fmt_success(r),
            r.reason,
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


def _load_two(archive: Path, ids: tuple[str, str]) -> tuple[list[Facts], Config]:
    """Read just the two runs (not the whole archive) and collect their warm calls."""
    from sitegen.archive import read_run
    from sitegen.config import load_config
    from sitegen.discover import LEDGER, discover
    from sitegen.layout import Layout
    from sitegen.ledger import read_calls

    if not archive.is_dir():
        raise BuildError(f"{archive}: archive folder does not exist")
    layout = Layout.of(archive)
    config = load_config(layout)
    sources, _ = discover(layout, max_file_bytes=config.get("limits.max_file_bytes"))
    by_id = {s.run_id: s for s in sources}
    read: dict[str, Run] = {}
    for run_id in ids:
        if run_id not in by_id:
            raise BuildError(f"runs/{run_id}: no such run in {archive}")
        if run_id in read:
            continue  # two cells of one run: read it once
        run, problems = read_run(by_id[run_id], config)
        if run is None:
            raise ValidationFailed(problems)
        read[run_id] = run
    runs = [read[run_id] for run_id in ids]
    ledgers = {r.run_id: r.source.path / LEDGER for r in read.values() if r.ledger is not None}
    samples = samples_by_run(read_calls(ledgers))
    return [facts_of(r, samples.get(r.run_id, {})) for r in runs], config


def compare_runs(
    archive: Path,
    run_a: str,
    run_b: str,
    cell_a: str | None = None,
    cell_b: str | None = None,
) -> str:
    """The text table of RUN_B against RUN_A (A plays the baseline), with the verdicts;
    with ``cell_a``/``cell_b``, only those cells (of one run, or of two)."""
    archive = Path(archive)
    (base, run), config = _load_two(archive, (run_a, run_b))
    settings = Settings.from_config(config)
    comparison = compare_cells(base, run, settings, cell_a, cell_b)
    out = [compared_title(run_b, run_a, cell_a, cell_b)]
    if not comparison.rows:
        out.append("no cell x prompt was measured by both runs")
        return "\n".join(out) + "\n"
    out.append(
        f"flagged only when significant (two-sided Mann-Whitney, alpha = {settings.alpha:g}, "
        f"at least {settings.min_calls} calls a side) and past the threshold; "
        f"changes are Hodges-Lehmann ratios with {settings.confidence * 100:.0f}% CIs"
    )
    text = "\n".join(out) + "\n\n" + render_table(table(comparison))
    n_reg = sum(1 for r in comparison.rows if r.verdict == REGRESSION)
    n_win, n_mixed = len(comparison.wins), len(comparison.mixed)
    n_nc = len(comparison.not_comparable)
    summary = f"\n{n_reg} regression(s), {n_win} win(s), {n_mixed} mixed, {n_nc} not like-for-like"
    if comparison.without_baseline:
        summary += f"; not in {base.run_id}: " + ", ".join(comparison.without_baseline)
    if comparison.one_sided:
        summary += "; measured by one side only: " + ", ".join(comparison.one_sided)
    return text + summary + "\n"


def compared_title(run_b: str, run_a: str, cell_a: str | None, cell_b: str | None) -> str:
    """The first line of ``sitegen compare``: what is compared against what."""
    if cell_a is None and cell_b is None:
        return f"{run_b} against {run_a}"
    cell_a = cell_a or cell_b
    cell_b = cell_b or cell_a
    return f"{run_b} cell {cell_b} against {run_a} cell {cell_a}"
