"""Key figures: the few numbers a reader asks of a run first, per cell and prompt.

For every (run, cell, prompt) with calls: the warm TTFT p50 with its
interquartile range, TPOT p50, decode tokens/s p50, the cold call's TTFT (the
cold start), the prompt's max tokens and the number of warm calls. The TTFT is
the field the verdicts compare as TTFT (``sitegen.verdicts.BY_KEY["ttft"]``),
read from there so both always mean the same thing.

They are stored in ``catalogue.json`` (each run's ``key_figures``), so the front
page, the run pages and anyone reading the catalogue use one set of numbers.
Each run also says whether it is *reliable* (methodology: "Key figures"), and
if not, why: only a reliable run's figures are the archive's latest results.
Percentiles are those of the aggregates (linear interpolation between closest
ranks, errored calls left out); values are rounded to 6 decimals, as the
verdicts round theirs, so the catalogue's bytes are stable.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import polars as pl

from sitegen.verdicts import BY_KEY
from sitegen.vocabulary import PROMPTS

GROUP = ["run_id", "cell_id", "prompt_id"]
Key = tuple[str, str]  # (cell, prompt)


def prompt_order(prompt: str) -> tuple[int, str]:
    """The frozen prompts in their order (easy, medium, hard), then any other by name."""
    order = list(PROMPTS)
    return (order.index(prompt) if prompt in order else len(order), prompt)


def ttft_field() -> str:
    """The per-call field the site calls TTFT: the one the verdicts compare."""
    return BY_KEY["ttft"].field


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(float(value), digits)


FIRST_EVENT = "first_delta_ms"


def _with_ttft(calls: pl.DataFrame) -> pl.LazyFrame:
    """The calls with ``fallback`` (the run recorded no TTFT in any call: an older
    or imported ledger) and ``_ttft``: the TTFT, or for such a run the first event,
    as its comparisons use it (the figures then say so)."""
    recorded = pl.col(ttft_field()).is_not_null().any().over("run_id")
    return (
        calls.lazy()
        .with_columns((~recorded).alias("fallback"))
        .with_columns(
            pl.when(pl.col("fallback"))
            .then(pl.col(FIRST_EVENT))
            .otherwise(pl.col(ttft_field()))
            .alias("_ttft")
        )
    )


def warm_figures(calls: pl.DataFrame) -> pl.DataFrame:
    """Per run, cell and prompt with warm calls: the medians and counts of the figures.

    Each run's rows depend on its own calls only (sitegen.read_cache.ReadCache.per_run
    keeps them between builds).
    """
    ttft = "_ttft"
    ok = pl.col("error").is_null()

    def good(column: str) -> pl.Expr:
        return pl.col(column).filter(ok & pl.col(column).is_not_null())

    def median(column: str) -> pl.Expr:
        return good(column).quantile(0.5, interpolation="linear")

    return (
        _with_ttft(calls)
        .filter(pl.col("phase") == "warm")
        .group_by(GROUP)
        .agg(
            pl.len().alias("n"),
            (~ok).sum().alias("errors"),
            median(ttft).alias("ttft_p50"),
            good(ttft).quantile(0.25, interpolation="linear").alias("ttft_p25"),
            good(ttft).quantile(0.75, interpolation="linear").alias("ttft_p75"),
            median("tpot_ms").alias("tpot_p50"),
            median("decode_tps").alias("decode_tps_p50"),
            good("decode_tps").len().alias("decode_tps_n"),
            median("tokens_per_sec").alias("tokens_per_sec_p50"),
            ok.sum().alias("ok"),
            pl.col("fallback").first(),
        )
        .sort(GROUP)
        .collect()
    )


def cold_figures(calls: pl.DataFrame) -> pl.DataFrame:
    """Per run, cell and prompt with cold calls: the cold start, i.e. the first cold
    call (lowest run_idx). Run by run, as :func:`warm_figures`."""
    return (
        _with_ttft(calls)
        .filter(pl.col("phase") == "cold")
        .sort([*GROUP, "run_idx"], maintain_order=True)
        .group_by(GROUP, maintain_order=True)
        .agg(
            pl.col("_ttft").first().alias("cold_ms"),
            pl.col("error").first().alias("cold_error"),
            pl.col("cold_kind").first().alias("cold_kind"),
            pl.col("fallback").first(),
        )
        .collect()
    )


def figures_of(warm: pl.DataFrame, cold: pl.DataFrame) -> dict[str, dict[Key, dict[str, Any]]]:
    """run id -> (cell, prompt) -> its figures, for every cell and prompt with calls
    (from a :func:`warm_figures` and a :func:`cold_figures` frame)."""
    out: dict[str, dict[Key, dict[str, Any]]] = {}

    def slot(run: str, cell: str, prompt: str, fallback: bool) -> dict[str, Any]:
        made = out.setdefault(run, {}).setdefault((cell, prompt), _empty())
        made["ttft_from"] = FIRST_EVENT if fallback else ttft_field()
        return made

    # Columns to lists, then zip: a dict per row (iter_rows(named=True)) cost
    # half a second at 10,000 runs.
    for run, cell, prompt, n, errors, p50, p25, p75, tpot, dtps, dtps_n, tps, ok, fb in _columns(
        warm,
        "n",
        "errors",
        "ttft_p50",
        "ttft_p25",
        "ttft_p75",
        "tpot_p50",
        "decode_tps_p50",
        "decode_tps_n",
        "tokens_per_sec_p50",
        "ok",
        "fallback",
    ):
        f = slot(run, cell, prompt, fb)
        # decode_tps only when every successful call records it, else tokens/s: as the
        # verdicts choose (never a median of one definition mixed with the other).
        whole = ok > 0 and dtps_n == ok
        decode = dtps if whole else tps
        f.update(
            n=n,
            errors=errors,
            ttft_p50=_round(p50),
            ttft_p25=_round(p25),
            ttft_p75=_round(p75),
            tpot_p50=_round(tpot),
            decode_p50=_round(decode),
            decode_field=("decode_tps" if whole else "tokens_per_sec")
            if decode is not None
            else None,
        )
    for run, cell, prompt, cold_ms, cold_error, cold_kind, fb in _columns(
        cold, "cold_ms", "cold_error", "cold_kind", "fallback"
    ):
        f = slot(run, cell, prompt, fb)
        failed = cold_error is not None
        f.update(
            cold_ms=None if failed else _round(cold_ms),
            cold_failed=failed,
            cold_kind=cold_kind,
        )
    return out


def _columns(frame: pl.DataFrame, *names: str) -> Iterator[tuple[Any, ...]]:
    """The frame's rows as tuples: run, cell, prompt, then ``names``."""
    return zip(*(frame[name].to_list() for name in (*GROUP, *names)), strict=True)


def _empty() -> dict[str, Any]:
    return {
        "n": 0,
        "errors": 0,
        "ttft_p50": None,
        "ttft_p25": None,
        "ttft_p75": None,
        "tpot_p50": None,
        "decode_p50": None,
        "decode_field": None,
        "cold_ms": None,
        "cold_failed": False,
        "cold_kind": None,
    }


def not_reliable_because(entry: dict[str, Any], measured: bool) -> list[str]:
    """Why a run's figures are not a reliable measurement (empty: they are).

    Reliable: not retracted, not superseded, complete (not interrupted, not
    meta-only), every reproducibility checklist item passing, and warm calls
    measured. Synthetic and imported runs can be reliable; pages label them.
    """
    why = []
    retracted = entry.get("retracted")
    if retracted:
        why.append("retracted" + (f" on {retracted['date']}" if retracted.get("date") else ""))
    if entry.get("superseded_by"):
        why.append("superseded by " + ", ".join(entry["superseded_by"]))
    status = entry["status"]
    if status == "interrupted":
        why.append("interrupted: the planned calls are incomplete")
    elif status == "meta-only":
        why.append("planned: metadata only, no calls published")
    failed = len(entry["reproducibility"]["reasons"])
    if entry["reproducibility"]["verdict"] != "reliable":
        why.append(
            f"reproducibility checklist: {failed} item{'' if failed == 1 else 's'} "
            f"fail{'s' if failed == 1 else ''}"
        )
    if not measured and status != "meta-only":
        results = entry["counts"].get("results", 0)
        why.append("no warm calls: reports results only" if results else "no warm calls")
    return why


def key_figures(
    entry: dict[str, Any],
    targets: dict[str, dict[str, Any]],
    prompts: dict[str, Any],
    concurrency: int | None,
    figures: dict[Key, dict[str, Any]],
) -> dict[str, Any]:
    """A run's ``key_figures`` object for the catalogue.

    ``entry``: the run's catalogue entry so far; ``targets``: cell -> target (node,
    engine, model); ``prompts``: the run's prompts (id -> {max_tokens, ...}).
    """
    rows = []
    for (cell, prompt), f in sorted(
        figures.items(), key=lambda kv: (kv[0][0], prompt_order(kv[0][1]))
    ):
        t = targets.get(cell, {})
        spec = prompts.get(prompt)
        max_tokens = spec.get("max_tokens") if isinstance(spec, dict) else None
        rows.append(
            {
                "cell_id": cell,
                "node": t.get("node") or None,
                "engine": t.get("engine") or None,
                "model": t.get("model") or None,
                "prompt_id": prompt,
                "max_tokens": max_tokens if isinstance(max_tokens, int) else None,
                **{k: v for k, v in f.items() if k != "ttft_from"},
            }
        )
    measured = any(r["n"] for r in rows)
    why = not_reliable_because(entry, measured)
    return {
        # The field every TTFT figure of the run was read from (one per run).
        "ttft_field": next((f["ttft_from"] for f in figures.values() if "ttft_from" in f), None)
        or ttft_field(),
        "concurrency": concurrency,
        "reliable": not why,
        "not_reliable_because": why,
        "rows": rows,
    }
