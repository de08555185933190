"""vLLM ``bench serve`` result JSON (``--save-result``, optionally ``--save-detailed``).

The summary statistics (mean/median/std/pNN of TTFT, TPOT, ITL and E2EL, the
throughputs, request counts) become ``result`` records named by the
benchmark's label. With ``--save-detailed`` the file also holds per-request
arrays; each request then becomes a ``call`` record (phase ``warm``: the tool
does not separate cold starts, so ``cold_kind`` is ``not_measured``).

vLLM stamps ``date`` with the client's local clock and no zone, and records
neither its own version nor the server's unless passed with
``--metadata vllm_version=...``; those stay unknown rather than guessed.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from sitegen.exceptions import Problem
from sitegen.schema import pointer

from .base import (
    Document,
    Mapped,
    Target,
    basename,
    cell_id,
    check_schema,
    result,
    scrub_text,
    text_or_none,
)

NAME = "vllm-bench-serve"
TOOL = "vllm bench serve"
SCHEMA = "vllm-bench-serve.json"

_CONFIG_KEYS = {
    "date",
    "endpoint_type",
    "backend",
    "label",
    "model_id",
    "tokenizer_id",
    "num_prompts",
    "request_rate",
    "burstiness",
    "max_concurrency",
    "ramp_up_strategy",
    "ramp_up_start_rps",
    "ramp_up_end_rps",
    "best_of",
    "use_beam_search",
}
_PER_REQUEST = (
    "input_lens",
    "output_lens",
    "ttfts",
    "itls",
    "latencies",
    "start_times",
    "generated_texts",
    "errors",
)
_OTHER_LISTS = {"queue_times", "rps_change_events", "spec_decode_per_position_acceptance_rates"}
# Summary fields: (unit, higher is better).
_SUMMARY = {
    "duration": ("s", None),
    "completed": ("requests", True),
    "failed": ("requests", False),
    "total_input_tokens": ("tokens", None),
    "total_output_tokens": ("tokens", None),
    "request_throughput": ("req/s", True),
    "request_goodput": ("req/s", True),
    "output_throughput": ("tok/s", True),
    "total_token_throughput": ("tok/s", True),
    "max_output_tokens_per_s": ("tok/s", True),
    "max_concurrent_requests": ("requests", None),
    "rtfx": (None, True),
}
_STAT = re.compile(r"^(mean|median|std|p[0-9]+(?:\.[0-9]+)?)_[a-z0-9_]+_ms$")
# Backends named after an OpenAI-style API say nothing about the server behind it.
_API_ONLY = re.compile(r"^openai")
PROMPT_ID = "bench-serve"


def _looks_like_result(data: Any) -> bool:
    return (
        isinstance(data, dict)
        and "date" in data
        and ("backend" in data or "endpoint_type" in data)
        and any(k in data for k in ("request_throughput", "mean_ttft_ms", "mean_e2el_ms"))
    )


def sniff(doc: Document) -> bool:
    if doc.is_jsonl:  # --append-result writes one result a line
        return bool(doc.data) and all(_looks_like_result(row) for row in doc.data)
    return _looks_like_result(doc.data)


def validate(doc: Document) -> list[Problem]:
    if doc.is_jsonl:
        return [
            Problem(
                doc.display,
                message=f"holds {len(doc.data)} results appended with --append-result; "
                "import them one file each (one run per benchmark)",
            )
        ]
    problems = check_schema(doc, SCHEMA)
    data = doc.data
    if not isinstance(data, dict):
        return problems
    present = [k for k in _PER_REQUEST if isinstance(data.get(k), list)]
    if present:
        first = present[0]
        for key in present[1:]:
            if len(data[key]) != len(data[first]):
                problems.append(
                    Problem(
                        doc.display,
                        message=f"{pointer([key])}: has {_entries(len(data[key]))}, but "
                        f"{pointer([first])} has {_entries(len(data[first]))} (one per request)",
                    )
                )
        for needed in ("ttfts", "latencies"):
            if needed not in present:
                problems.append(
                    Problem(
                        doc.display,
                        message=f"{pointer([])}: per-request arrays are present "
                        f"({', '.join(present)}) but {needed!r} is missing",
                    )
                )
    try:
        if isinstance(data.get("date"), str) and len(data["date"]) == 15:
            datetime.strptime(data["date"], "%Y%m%d-%H%M%S")
    except ValueError:
        problems.append(
            Problem(
                doc.display,
                message=f"{pointer(['date'])}: not a real date and time "
                f"(expected YYYYMMDD-HHMMSS), got {data['date']!r}",
            )
        )
    return problems


def _entries(count: int) -> str:
    return f"{count} entry" if count == 1 else f"{count} entries"


def _percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (the usual numpy default)."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _calls(data: dict[str, Any], cell: str, backend: str) -> list[dict[str, Any]]:
    ttfts: list[float] = data["ttfts"]
    latencies: list[float] = data["latencies"]
    count = len(ttfts)
    inputs = data.get("input_lens") or [None] * count
    outputs = data.get("output_lens") or [None] * count
    itls = data.get("itls") or [None] * count
    errors = data.get("errors") or [None] * count
    starts: list[float] = data.get("start_times") or []
    origin = min(starts) if starts else None
    calls: list[dict[str, Any]] = []
    for i in range(count):
        error = errors[i] or None
        ttft = None if error else round(ttfts[i] * 1000, 6)
        total = None if error else round(latencies[i] * 1000, 6)
        completion = outputs[i]
        call: dict[str, Any] = {
            "type": "call",
            "cell_id": cell,
            "prompt_id": PROMPT_ID,
            "phase": "warm",
            "cold_kind": "not_measured",
            "run_idx": i,
            "first_delta_ms": ttft,
            "ttft_ms": ttft,
            "total_duration_ms": total,
            "prompt_tokens": inputs[i],
            "completion_tokens": completion,
            "tokens_source": "vllm output_lens" if completion is not None else None,
            "tokens_per_sec": None,
            "tpot_ms": None,
            "finish_reason": None,
            "backend": backend,
            "error": scrub_text(error) if error else None,
        }
        if ttft is not None and total is not None and completion:
            decode_ms = total - ttft
            if decode_ms > 0:
                call["tokens_per_sec"] = round(completion / (decode_ms / 1000), 6)
            if completion > 1:
                call["tpot_ms"] = round(decode_ms / (completion - 1), 6)
        gaps = itls[i]
        if not error and gaps:
            gaps_ms = [g * 1000 for g in gaps]
            call["itl_p50_ms"] = round(_percentile(gaps_ms, 0.50), 6)
            call["itl_p95_ms"] = round(_percentile(gaps_ms, 0.95), 6)
            call["itl_max_ms"] = round(max(gaps_ms), 6)
        if origin is not None:
            call["request_offset_ms"] = round((starts[i] - origin) * 1000, 6)
        calls.append(call)
    return calls


def convert(doc: Document) -> Mapped:
    data: dict[str, Any] = doc.data
    backend = data["backend"]
    engine = None if _API_ONLY.match(backend) else backend
    tool_version = text_or_none(data.get("vllm_version"))
    model = data["model_id"]
    if model.startswith(("/", "~")) or re.match(r"^[A-Za-z]:\\", model):
        model = basename(model)
    cell = cell_id(None, engine, model)

    settings: dict[str, Any] = {"backend": backend}
    extra_meta: dict[str, Any] = {}
    for key, value in data.items():
        if key in _CONFIG_KEYS and key not in ("date", "model_id", "backend"):
            if value is not None:
                settings[key] = value
        elif (
            key not in _CONFIG_KEYS
            and key not in _SUMMARY
            and not _STAT.match(key)
            and isinstance(value, str | bool)
        ):
            extra_meta[key] = value
    if extra_meta:
        settings["metadata"] = extra_meta
    if isinstance(settings.get("tokenizer_id"), str):
        tokenizer = settings["tokenizer_id"]
        settings["tokenizer_id"] = basename(tokenizer) if tokenizer.startswith("/") else tokenizer

    name = text_or_none(data.get("label")) or PROMPT_ID
    records: list[dict[str, Any]] = []
    for key, value in data.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if key in _SUMMARY:
            unit, better = _SUMMARY[key]
        elif _STAT.match(key):
            unit, better = "ms", False
        elif key in _CONFIG_KEYS or key in _OTHER_LISTS:
            continue
        else:
            unit, better = None, None
        records.append(
            result(name, key, value, unit=unit, higher_is_better=better, model=model, cell=cell)
        )

    detailed = isinstance(data.get("ttfts"), list) and isinstance(data.get("latencies"), list)
    calls = _calls(data, cell, backend) if detailed else []
    started = datetime.strptime(data["date"], "%Y%m%d-%H%M%S")
    ended = started + timedelta(seconds=data["duration"])
    concurrency = data.get("max_concurrency")
    return Mapped(
        title=f"vLLM bench serve: {model} ({backend})"[:300],
        description=(
            f"{data['completed']} request(s) completed in {data['duration']:.1f} s"
            f" at request rate {data.get('request_rate', 'unknown')}"
            + (f", concurrency at most {concurrency}" if concurrency else "")
            + (", with per-request timings." if detailed else "; summary statistics only.")
        ),
        tool=TOOL,
        tool_version=tool_version,
        clock_start=started,
        started_at=None,
        clock_end=ended,
        clock_note="vLLM writes `date` in the client's local time without a time zone",
        targets=[
            Target(
                cell_id=cell,
                node=None,
                engine=engine,
                engine_version=tool_version if engine == "vllm" else None,
                model=model,
                settings=settings,
            )
        ],
        results=records,
        calls=calls,
        concurrency=concurrency if isinstance(concurrency, int) else None,
        errors=sum(1 for c in calls if c["error"]),
        tags=["detailed"] if detailed else [],
        end_extra={
            "wall_s": data["duration"],
            "request_throughput": data["request_throughput"],
            "output_tokens_per_sec": data.get("output_throughput"),
        },
        source_extra={"date": data["date"]},
    )
