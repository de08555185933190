"""The benchmark output schema v1 (``schema_version: "v1"``).

One benchmark run of one model: ``results.metrics`` maps metric names to
numbers and becomes one ``result`` record per metric; numeric leaves of
``results.details`` become records named after where they sat
(``<benchmark>/by_split/easy``). A run with
``status: "error"`` is imported too, with a failed ``status`` record carrying
the error, so a failure is published rather than silently missing.
"""

from __future__ import annotations

from collections.abc import Iterator
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
    scrub_text,
    slug,
)

NAME = "benchmark-output-v1"
TOOL = "benchmark-output-v1"
SCHEMA = "benchmark-output.v1.json"


def sniff(doc: Document) -> bool:
    data = doc.data
    return (
        isinstance(data, dict)
        and data.get("schema_version") == "v1"
        and isinstance(data.get("metadata"), dict)
        and isinstance(data.get("results"), dict)
    )


def validate(doc: Document) -> list[Problem]:
    return check_schema(doc, SCHEMA)


def _leaves(value: Any, path: list[str]) -> Iterator[tuple[list[str], float | int]]:
    """Numeric leaves of a details tree with the keys leading to them."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, [*path, str(key)])
    elif isinstance(value, int | float) and not isinstance(value, bool) and path:
        yield path, value


def convert(doc: Document) -> Mapped:
    data: dict[str, Any] = doc.data
    meta: dict[str, Any] = data["metadata"]
    bench: dict[str, Any] = meta["benchmark"]
    model_info: dict[str, Any] = meta["model"]
    run: dict[str, Any] = meta["run"]
    outcome: dict[str, Any] = data["results"]
    host: dict[str, Any] = run.get("host") or {}

    node = "unknown-node"
    node_info: dict[str, Any] = {
        "cpu": None,
        "cores": None,
        "gpu": None,
        "memory_gb": None,
        "os": host.get("os") if isinstance(host.get("os"), str) else None,
    }
    if isinstance(host.get("python"), str):
        node_info["python"] = host["python"]

    model = scrub_text(model_info["name"])
    engine = model_info["provider"]
    revision = model_info.get("revision")
    settings: dict[str, Any] = {"provider": engine}
    if bench.get("version"):
        settings["benchmark_version"] = bench["version"]
    if model_info.get("parameters"):
        settings["parameters"] = model_info["parameters"]
    if revision:
        settings["revision"] = revision
    cell = cell_id(node, engine, model)
    target = Target(
        cell_id=cell,
        node=node,
        engine=engine,
        engine_version=None,
        model=model,
        model_digest=digest_or_none(revision),
        settings=settings,
    )

    name = bench["name"] + (f"/{bench['task']}" if bench.get("task") else "")
    records: list[dict[str, Any]] = [
        result(name, metric, value, model=model, cell=cell)
        for metric, value in outcome["metrics"].items()
    ]
    for path, value in _leaves(outcome.get("details") or {}, []):
        records.append(
            result(
                "/".join([name, *path[:-1]]),
                path[-1],
                value,
                model=model,
                cell=cell,
                tags={"details": ".".join(path[:-1]) or None},
            )
        )
    failed = outcome["status"] == "error"
    description = f"{bench['name']} run {run['id']} of {model} ({engine})."
    if failed:
        error = outcome.get("error") or {}
        message = scrub_text(str(error.get("message", "")))[:500]
        records.append(
            result(
                name,
                "status",
                None,
                passed=False,
                model=model,
                cell=cell,
                tags={"error_type": error.get("type"), "error_message": message},
            )
        )
        description += f" The run failed: {message}"
    if meta.get("notes"):
        description += " " + scrub_text(meta["notes"])

    started = parse_iso(run["started_at"])
    finished = parse_iso(run["finished_at"]) if run.get("finished_at") else None
    git = run.get("git") or {}
    tags = [slug(t) for t in meta.get("tags") or [] if slug(t, "")]
    tags.append("status-error" if failed else "status-ok")
    return Mapped(
        title=f"{bench['name']}: {model}"[:300],
        description=description[:2000],
        tool=bench.get("suite") or bench["name"],
        tool_version=None,
        clock_start=started,
        started_at=started if started.tzinfo else None,
        finished_at=finished if finished and finished.tzinfo else None,
        clock_end=finished,
        clock_note=None if started.tzinfo else "run.started_at has no time zone",
        git_sha=git.get("commit") or None,
        git_dirty=git.get("dirty"),
        targets=[target],
        nodes={node: node_info},
        results=records,
        tags=tags,
        end_extra={"source_status": outcome["status"]},
        source_extra={
            "run_id": run["id"],
            "status": outcome["status"],
            "benchmark_version": bench.get("version"),
        },
    )
