"""llama-bench output, ``-o json`` (an array of rows) or ``-o jsonl`` (a row a line).

Each row is one test of one configuration: ``pp<N>`` (prompt processing of N
tokens), ``tg<N>`` (generating N tokens) or both, optionally at a context
depth. A row becomes one ``result`` record: the average tokens per second
(``avg_ts``) as the value, with the spread (``stddev_ts``), the average time
(``avg_ns``) and the configuration as tags. ``build_commit``/``build_number``
give the llama.cpp version; a build made outside git reports ``unknown``/0,
which stays unknown here.
"""

from __future__ import annotations

import re
from typing import Any

from sitegen.exceptions import Problem

from .base import (
    Document,
    Mapped,
    Target,
    basename,
    cell_id,
    check_schema,
    parse_iso,
    result,
    slug,
    text_or_none,
)

NAME = "llama-bench"
TOOL = "llama-bench"
SCHEMA = "llama-bench.json"
ENGINE = "llama.cpp"

# Configuration fields copied into each record's tags (when present).
CONFIG_FIELDS = (
    "n_batch",
    "n_ubatch",
    "n_threads",
    "cpu_mask",
    "cpu_strict",
    "poll",
    "type_k",
    "type_v",
    "n_gpu_layers",
    "n_cpu_moe",
    "split_mode",
    "main_gpu",
    "no_kv_offload",
    "flash_attn",
    "devices",
    "tensor_split",
    "tensor_buft_overrides",
    "use_mmap",
    "load_mode",
    "embeddings",
    "no_op_offload",
    "no_host",
    "repack",
    "backends",
)
_QUANT = re.compile(r"\b(?:[IT]?Q\d\w*|F16|F32|BF16|MXFP4\w*)\b", re.IGNORECASE)


def sniff(doc: Document) -> bool:
    rows = doc.data
    if not isinstance(rows, list) or not rows:
        return False
    first = rows[0]
    return (
        isinstance(first, dict)
        and "build_commit" in first
        and ("avg_ts" in first or "avg_ns" in first)
    )


def validate(doc: Document) -> list[Problem]:
    return check_schema(doc, SCHEMA, row_definition="row")


def test_name(row: dict[str, Any]) -> str:
    """The test as llama-bench prints it: ``pp512``, ``tg128``, ``pp512+tg128``, ``@ d<N>``."""
    parts = []
    if row["n_prompt"]:
        parts.append(f"pp{row['n_prompt']}")
    if row["n_gen"]:
        parts.append(f"tg{row['n_gen']}")
    name = "+".join(parts) or "empty"
    if row.get("n_depth"):
        name += f" @ d{row['n_depth']}"
    return name


def engine_version(row: dict[str, Any]) -> str | None:
    """``b<number> (<commit>)`` from the build fields, or as much of it as is known."""
    commit = text_or_none(row.get("build_commit"))
    number = row.get("build_number") or None
    if number and commit:
        return f"b{number} ({commit})"
    if number:
        return f"b{number}"
    return commit


def quantization(model_type: str) -> str | None:
    """The weight type in llama.cpp's model description "<arch> <size> <type>"
    ("llama 3B Q4_K - Medium" -> "Q4_K - Medium")."""
    parts = model_type.split(maxsplit=2)
    return parts[2] if len(parts) == 3 and _QUANT.search(parts[2]) else None


def convert(doc: Document) -> Mapped:
    rows: list[dict[str, Any]] = doc.data
    first = rows[0]
    cpu = text_or_none(first.get("cpu_info"))
    gpu = text_or_none(first.get("gpu_info"))
    hardware = gpu or cpu
    node = slug(hardware, "unknown-node") if hardware else "unknown-node"
    node_info: dict[str, Any] = {
        "cpu": cpu,
        "cores": None,
        "gpu": gpu,
        "memory_gb": None,
        "os": None,
    }
    if text_or_none(first.get("backends")):
        node_info["backends"] = first["backends"]

    version = engine_version(first)
    targets: dict[str, Target] = {}
    records: list[dict[str, Any]] = []
    for index, row in enumerate(rows):
        model = basename(row["model_filename"])
        cell = cell_id(node, ENGINE, model)
        if model not in targets:
            settings: dict[str, Any] = {"model_type": row["model_type"]}
            if "model_size" in row:
                settings["model_size_bytes"] = row["model_size"]
            targets[model] = Target(
                cell_id=cell,
                node=node,
                engine=ENGINE,
                engine_version=engine_version(row),
                model=model,
                model_digest=None,
                quantization=quantization(row["model_type"]),
                parameters=row.get("model_n_params"),
                settings=settings,
            )
        samples = row.get("samples_ns") or []
        tags: dict[str, Any] = {
            "stddev_ts": row["stddev_ts"],
            "avg_ns": row["avg_ns"],
            "stddev_ns": row["stddev_ns"],
            "repetitions": len(samples) if samples else None,
            "n_prompt": row["n_prompt"],
            "n_gen": row["n_gen"],
            "n_depth": row.get("n_depth", 0),
            "test_time": row["test_time"],
            "row": index,
        }
        tags.update({key: row[key] for key in CONFIG_FIELDS if key in row})
        records.append(
            result(
                test_name(row),
                "tokens_per_sec",
                row["avg_ts"],
                unit="tok/s",
                higher_is_better=True,
                duration_s=round(sum(samples) / 1e9, 9) if samples else None,
                model=model,
                cell=cell,
                tags=tags,
            )
        )

    times = [parse_iso(row["test_time"]) for row in rows]
    start = min(times)
    names = list(dict.fromkeys(test_name(r) for r in rows))
    models = ", ".join(targets)
    return Mapped(
        title=f"llama-bench: {models} ({', '.join(names)})"[:300],
        description=(
            f"{len(rows)} llama-bench test row(s) on {gpu or cpu or 'an unnamed machine'}, "
            f"llama.cpp {version or 'build unknown'}."
        ),
        tool=TOOL,
        tool_version=version,
        clock_start=start,
        started_at=start if start.tzinfo else None,
        clock_end=max(times),
        clock_note="llama-bench records when each test started, not when the last one ended",
        git_sha=text_or_none(first.get("build_commit")),
        targets=list(targets.values()),
        nodes={node: node_info},
        results=records,
        tags=["llama-bench-jsonl" if doc.is_jsonl else "llama-bench-json"],
        source_extra={"layout": "jsonl" if doc.is_jsonl else "json", "rows": len(rows)},
    )
