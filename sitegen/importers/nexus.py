"""The proposed benchmark result record ("Nexus", schema_version 1).

A snapshot submitted once per machine: ``hardware`` describes the node, and
each ``results`` entry is one (model, task) measurement with its throughput,
latency, token counts and a quality-check verdict. Every numeric field of an
entry becomes a ``result`` record; the verdict becomes a record with
``passed`` set. The record carries only its submission time, so the run's own
start and finish stay unknown.
"""

from __future__ import annotations

from typing import Any

from sitegen.exceptions import Problem

from .base import Document, Mapped, Target, cell_id, check_schema, parse_iso, result, slug

NAME = "nexus-result-v1"
TOOL = "nexus"
SCHEMA = "nexus-result-record.v1.json"

# Known numeric fields of a result entry: (unit, higher is better).
_METRICS = {
    "tokens_per_second": ("tok/s", True),
    "time_to_first_token_ms": ("ms", False),
    "total_duration_ms": ("ms", False),
    "prompt_tokens": ("tokens", None),
    "completion_tokens": ("tokens", None),
}


def sniff(doc: Document) -> bool:
    data = doc.data
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        return False
    return "nexus_version" in data or ("hardware" in data and "submitted_at" in data)


def validate(doc: Document) -> list[Problem]:
    return check_schema(doc, SCHEMA)


def convert(doc: Document) -> Mapped:
    data: dict[str, Any] = doc.data
    hardware: dict[str, Any] = data.get("hardware") or {}
    label = hardware.get("gpu_model") or hardware.get("cpu")
    node = slug(label, "unknown-node") if label else "unknown-node"
    node_info: dict[str, Any] = {
        "cpu": hardware.get("cpu"),
        "cores": None,
        "gpu": hardware.get("gpu_model"),
        "memory_gb": hardware.get("ram_gb"),
        "os": hardware.get("os"),
    }
    for key in ("arch", "vram_gb"):
        if hardware.get(key) is not None:
            node_info[key] = hardware[key]

    targets: dict[str, Target] = {}
    records: list[dict[str, Any]] = []
    for entry in data["results"]:
        model = entry["model"]
        cell = cell_id(node, None, model)
        targets.setdefault(model, Target(cell_id=cell, node=node, model=model))
        task = entry["task"]
        for key, value in entry.items():
            if key in ("model", "task", "passed_quality_check"):
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            unit, better = _METRICS.get(key, (None, None))
            records.append(
                result(task, key, value, unit=unit, higher_is_better=better, model=model, cell=cell)
            )
        verdict = entry.get("passed_quality_check")
        if verdict is not None:
            records.append(
                result(
                    task,
                    "passed_quality_check",
                    1 if verdict else 0,
                    unit="bool",
                    higher_is_better=True,
                    passed=verdict,
                    model=model,
                    cell=cell,
                )
            )

    submitted = parse_iso(data["submitted_at"])
    models = sorted(targets)
    tasks = sorted({e["task"] for e in data["results"]})
    return Mapped(
        title=f"Nexus benchmark record: {', '.join(models)} on {', '.join(tasks)}"[:300],
        description=(
            f"{len(data['results'])} result(s) submitted at {data['submitted_at']}"
            + (f" from {label}" if label else "")
            + ". The record states no run start or finish time."
        ),
        tool=TOOL,
        tool_version=data.get("nexus_version"),
        clock_start=submitted,
        started_at=None,
        clock_note="the record gives only its submission time (submitted_at)",
        targets=list(targets.values()),
        nodes={node: node_info},
        results=records,
        source_extra={"submitted_at": data["submitted_at"], "schema_version": 1},
    )
