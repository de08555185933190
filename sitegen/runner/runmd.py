"""``run.md``: the human-readable tables of one run (section 6.2 shape).

A top-level matrix of warm TTFT p50 per cell and prompt, then per cell a cold
table and a warm table with one row per prompt, and an across-prompts line.
Columns follow the reference order (first_delta_ms, total_duration_ms,
completion_tokens, tokens_per_sec); newer metrics are appended after them,
never interleaved, so diffs between runs stay mechanical.
"""

from __future__ import annotations

from typing import Any

from sitegen.runner.recorder import Ledger
from sitegen.runner.sse import percentile
from sitegen.runner.stats import Batch, batches, fmt

_TEXT_COLUMNS = {"cell", "prompt", "cold_kind", "finish_reason", "phase", "class", "message"}


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    def esc(cell: str) -> str:
        return cell.replace("|", "\\|")

    out = ["| " + " | ".join(esc(h) for h in headers) + " |"]
    out.append("|" + "|".join("---" if h in _TEXT_COLUMNS else "---:" for h in headers) + "|")
    out += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return out


def _p(values: list[float], q: float) -> float | None:
    return percentile(values, q)


def render(ledger: Ledger, metadata: dict[str, Any]) -> str:
    """The whole run.md text for a ledger and the metadata written beside it."""
    meta = ledger.meta
    end = ledger.end or {}
    calls = ledger.calls
    groups = batches(calls)
    cells = list(dict.fromkeys([*meta.get("cells_planned", []), *(b.cell_id for b in groups)]))
    prompt_ids = list(dict.fromkeys([*(meta.get("prompts") or {}), *(b.prompt_id for b in groups)]))
    by_key = {(b.cell_id, b.prompt_id): b for b in groups}
    lines = [f"# {metadata['title']}", ""]
    git = metadata.get("git") or {}
    sha = (git.get("sha") or "not recorded")[:12]
    dirty = git.get("dirty")
    dirty_text = (
        f", dirty ({len(git.get('dirty_files') or [])} file(s) listed)"
        if dirty
        else (", clean" if dirty is False else "")
    )
    lines += [
        f"- Run id: `{metadata['id']}`",
        f"- Status: **{metadata['status']}**"
        + (f" ({end.get('interrupted_reason')})" if end.get("interrupted_reason") else "")
        + ("" if ledger.end else " (no end record: the runner was stopped)"),
        f"- Started: {metadata.get('started_at_utc') or '—'}; finished: "
        f"{metadata.get('finished_at_utc') or '—'}",
        f"- Harness: {meta.get('harness_name') or 'harness'} {meta.get('harness_version')}; "
        f"git {sha}{dirty_text}",
        f"- Driven from node `{meta.get('host') or '—'}`; load average at start "
        f"{', '.join(str(x) for x in meta.get('load_avg_start') or []) or '—'}",
        f"- 1 cold + {meta.get('warm_runs', '—')} warm calls per cell and prompt; "
        f"concurrency {meta.get('concurrency', 1)}",
        f"- Calls recorded: {len(calls)} ({sum(1 for c in calls if c.get('error'))} errors)",
        "",
    ]
    if end.get("request_throughput") is not None:
        lines += [
            f"Warm capacity at concurrency {meta.get('concurrency', 1)}: "
            f"{fmt(end['request_throughput'], 2)} requests/s, "
            f"{fmt(end.get('output_tokens_per_sec'))} output tokens/s "
            "(warm phases only; each cold call runs alone).",
            "",
        ]
    lines += ["## Summary: warm TTFT p50 (ms)", ""]
    rows = []
    for cell in cells:
        row = [cell]
        for pid in prompt_ids:
            batch = by_key.get((cell, pid))
            row.append(fmt(batch.warm_p("ttft_ms", 50)) if batch else "—")
        rows.append(row)
    lines += [*_table(["cell", *prompt_ids], rows), ""]

    targets = {t["cell_id"]: t for t in metadata.get("targets") or []}
    for cell in cells:
        lines += _cell_section(cell, prompt_ids, by_key, targets.get(cell, {}))
    if ledger.skips:
        lines += ["## Skipped cells", ""]
        lines += [f"- `{s['cell_id']}`: {s['reason']}" for s in ledger.skips] + [""]
    errors = [c for c in calls if c.get("error")]
    if errors:
        lines += ["## Errors", ""]
        lines += [
            *_table(
                ["cell", "prompt", "phase", "run", "class", "message"],
                [
                    [
                        c["cell_id"],
                        c["prompt_id"],
                        c["phase"],
                        str(c["run_idx"]),
                        str(c.get("error_class") or ""),
                        str(c["error"])[:160].replace("\n", " "),
                    ]
                    for c in errors
                ],
            ),
            "",
        ]
    lines += [
        "Times are client wall-clock milliseconds from the POST: first_delta_ms to the first "
        "stream event, ttft_ms to the first event carrying text, total_duration_ms to the last "
        "text-bearing event. tokens_per_sec = completion_tokens / ((total - first_delta) / 1000). "
        "Errored calls are counted in the success rate and left out of percentiles and means.",
        "",
    ]
    return "\n".join(lines)


def _cell_section(
    cell: str, prompt_ids: list[str], by_key: dict[tuple[str, str], Batch], target: dict[str, Any]
) -> list[str]:
    lines = [f"## {cell}", ""]
    facts = [
        ("engine", target.get("engine")),
        ("version", target.get("engine_version")),
        ("model", target.get("model")),
        ("quantization", target.get("quantization")),
        ("context", target.get("context_length")),
        ("digest", target.get("model_digest")),
    ]
    shown = [f"{k} `{v}`" for k, v in facts if v not in (None, "")]
    if shown:
        lines += ["; ".join(shown), ""]
    cold_rows, warm_rows = [], []
    for pid in prompt_ids:
        batch = by_key.get((cell, pid))
        if batch is None:
            continue
        c = batch.cold_call
        if c:
            cold_rows.append(
                [
                    pid,
                    fmt(c.get("first_delta_ms")),
                    fmt(c.get("total_duration_ms")),
                    fmt(c.get("completion_tokens")),
                    fmt(c.get("tokens_per_sec")),
                    fmt(c.get("ttft_ms")),
                    str(c.get("cold_kind") or "—"),
                    str(c.get("finish_reason") or ("error" if c.get("error") else "—")),
                ]
            )
        if batch.warm:
            tokens = batch.warm_values("completion_tokens")
            rate = batch.success_rate()
            warm_rows.append(
                [
                    pid,
                    fmt(batch.warm_p("first_delta_ms", 50)),
                    fmt(batch.warm_p("first_delta_ms", 95)),
                    fmt(batch.warm_p("total_duration_ms", 50)),
                    fmt(batch.warm_p("total_duration_ms", 95)),
                    fmt(_p(tokens, 50), 0),
                    fmt(batch.warm_mean("tokens_per_sec")),
                    f"{rate:.2f}" if rate is not None else "—",
                    fmt(batch.warm_p("ttft_ms", 50)),
                    fmt(batch.warm_p("tpot_ms", 50), 2),
                    fmt(batch.warm_mean("decode_tps")),
                    str(len(batch.warm)),
                ]
            )
    if cold_rows:
        lines += ["### Cold", ""]
        lines += [
            *_table(
                [
                    "prompt",
                    "first_delta_ms",
                    "total_duration_ms",
                    "completion_tokens",
                    "tokens_per_sec",
                    "ttft_ms",
                    "cold_kind",
                    "finish_reason",
                ],
                cold_rows,
            ),
            "",
        ]
    if warm_rows:
        lines += ["### Warm", ""]
        lines += [
            *_table(
                [
                    "prompt",
                    "first_delta_ms p50",
                    "first_delta_ms p95",
                    "total_duration_ms p50",
                    "total_duration_ms p95",
                    "completion_tokens p50",
                    "tokens_per_sec mean",
                    "success_rate",
                    "ttft_ms p50",
                    "tpot_ms p50",
                    "decode_tps mean",
                    "n",
                ],
                warm_rows,
            ),
            "",
        ]
        merged = Batch(cell, "*")
        for pid in prompt_ids:
            batch = by_key.get((cell, pid))
            if batch:
                merged.warm += batch.warm
        rate = merged.success_rate()
        lines += [
            "Across prompts (warm): first_delta_ms p50 "
            f"{fmt(merged.warm_p('first_delta_ms', 50))}, total_duration_ms p50 "
            f"{fmt(merged.warm_p('total_duration_ms', 50))}, tokens_per_sec mean "
            f"{fmt(merged.warm_mean('tokens_per_sec'))}, success rate "
            f"{f'{rate:.2f}' if rate is not None else '—'}.",
            "",
        ]
    return lines
