"""The MLX benchmark envelope, schema_version "1".

One suite run on one Apple-silicon machine: ``results`` are already metric
rows (name, metric, value, unit), so each becomes a ``result`` record; the
optional per-result throughput and latency fields become records of their own.
"""

from __future__ import annotations

from typing import Any

from sitegen.exceptions import Problem

from .base import (
    Document,
    Mapped,
    Target,
    cell_id,
    check_schema,
    digest_or_none,
    parse_iso,
    result,
    slug,
)

NAME = "mlx-benchmarks-v1"
TOOL = "mlx-benchmarks"
SCHEMA = "mlx-benchmarks.v1.json"

# Optional numeric fields of a result row: (unit, higher is better).
_EXTRA_METRICS = {
    "prompt_tokens_per_second": ("tok/s", True),
    "decode_tokens_per_second": ("tok/s", True),
    "total_tokens_per_second": ("tok/s", True),
    "first_token_latency_ms": ("ms", False),
    "peak_rss_mb": ("MB", False),
}
_MEMORY_UNITS = {"rss_gb": "GB", "free_gb": "GB", "wired_gb": "GB", "swap_mb": "MB"}


def sniff(doc: Document) -> bool:
    data = doc.data
    return (
        isinstance(data, dict)
        and data.get("schema_version") == "1"
        and "suite" in data
        and "system" in data
    )


def validate(doc: Document) -> list[Problem]:
    return check_schema(doc, SCHEMA)


def _engine(system: dict[str, Any]) -> tuple[str, str | None]:
    """The serving runtime: vllm-mlx when the envelope records it, else MLX itself
    (every result of this format ran on MLX), with the most specific version
    recorded (mlx-lm's, else mlx's)."""
    if system.get("vllm_mlx_version"):
        return "vllm-mlx", system["vllm_mlx_version"]
    if system.get("mlx_lm_version"):
        return "mlx", f"mlx-lm {system['mlx_lm_version']}"
    return "mlx", system.get("mlx_version") or None


def convert(doc: Document) -> Mapped:
    data: dict[str, Any] = doc.data
    system: dict[str, Any] = data["system"]
    node = slug(system["chip"], "unknown-node")
    engine, engine_version = _engine(system)
    model = data["model"]
    cell = cell_id(node, engine, model)
    started = parse_iso(data["timestamp"])

    settings: dict[str, Any] = {"suite": data["suite"], "trigger": data["trigger"]}
    for key in ("model_revision", "seed", "pr_number"):
        if data.get(key) is not None:
            settings[key] = data[key]
    if data.get("gen_kwargs"):
        settings["gen_kwargs"] = data["gen_kwargs"]
    for key in ("mlx_version", "mlx_lm_version", "vllm_mlx_version", "lm_eval_version"):
        if system.get(key):
            settings[key] = system[key]

    target = Target(
        cell_id=cell,
        node=node,
        engine=engine,
        engine_version=engine_version,
        model=model,
        model_digest=digest_or_none(data.get("model_revision")),
        quantization=data.get("quantization"),
        settings=settings,
    )
    node_info = {
        "cpu": system["chip"],
        "cores": None,
        "gpu": None,
        "memory_gb": system["memory_gb"],
        "os": system["os"],
    }
    for key in ("kernel", "runner", "python_version"):
        if system.get(key):
            node_info[key] = system[key]

    records: list[dict[str, Any]] = []
    for row in data["results"]:
        tags = dict(row.get("tags") or {})
        records.append(
            result(
                row["name"],
                row["metric"],
                row["value"],
                unit=row["unit"],
                duration_s=row.get("duration_seconds"),
                model=model,
                cell=cell,
                tags=tags,
            )
        )
        for key, (unit, better) in _EXTRA_METRICS.items():
            if key in row:
                records.append(
                    result(
                        row["name"],
                        key,
                        row[key],
                        unit=unit,
                        higher_is_better=better,
                        model=model,
                        cell=cell,
                        tags=tags,
                    )
                )
    for snapshot in data.get("memory_snapshots") or []:
        for key, unit in _MEMORY_UNITS.items():
            if key in snapshot:
                records.append(
                    result(
                        f"memory/{snapshot['phase']}",
                        key,
                        snapshot[key],
                        unit=unit,
                        higher_is_better=False,
                        model=model,
                        cell=cell,
                    )
                )

    warnings = list(data.get("errors") or [])
    description = f"{data['suite']} suite run of {model}, triggered by {data['trigger']}."
    if data.get("skipped"):
        description += " The suite was skipped on this run."
    if warnings:
        description += f" The run reported {len(warnings)} non-fatal error(s)."
    run_tags = ["suite-" + slug(data["suite"])]
    if data.get("skipped"):
        run_tags.append("skipped")
    return Mapped(
        title=f"MLX {data['suite']} suite: {model}",
        description=description,
        tool=TOOL,
        tool_version=None,
        clock_start=started,
        started_at=started if started.tzinfo else None,
        clock_note=None if started.tzinfo else "the timestamp has no time zone",
        git_sha=data["git_sha"],
        targets=[target],
        nodes={node: node_info},
        results=records,
        tags=run_tags,
        meta_extra={"source_warnings": warnings} if warnings else {},
        source_extra={"schema_version": data["schema_version"]},
    )
