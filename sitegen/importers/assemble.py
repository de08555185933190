"""Turn a mapped source into a run folder: run.jsonl, metadata.json, source/.

The folder is written by ``sitegen.runfolder``: staged, synced and renamed into
place, so a reader (or a build running at the same moment) sees either no run
or a whole one.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from sitegen.exceptions import Problem
from sitegen.jsonio import dumps, dumps_line
from sitegen.runfolder import write_run_folder
from sitegen.schema import schema_messages

from .base import Mapped, utc_text

METADATA_FORMAT = "sitegen.metadata/1"
LEDGER_VERSION = 1


def derive_run_id(format_name: str, mapped: Mapped, raw: bytes) -> str:
    """``<format>-<YYYYMMDD of the source timestamp>-<hash of the bytes>``.

    The same file always gets the same id, so importing it twice is caught.
    """
    digest = hashlib.sha256(raw).hexdigest()[:10]
    run_id = f"{format_name}-{mapped.clock_start:%Y%m%d}-{digest}".lower()
    return re.sub(r"[^a-z0-9._-]+", "-", run_id)[:128]


def build_ledger(
    run_id: str, format_name: str, mapped: Mapped, source_name: str
) -> list[dict[str, Any]]:
    """meta record, result records, call records, end record."""
    meta: dict[str, Any] = {
        "type": "meta",
        "ledger_version": LEDGER_VERSION,
        "benchmark_run_id": run_id,
        "git_sha": mapped.git_sha,
        "git_dirty": mapped.git_dirty,
        "harness_name": mapped.tool,
        "harness_version": mapped.tool_version,
        "started_at_utc": utc_text(mapped.started_at or mapped.clock_start),
        "host": None,
        "load_avg_start": None,
        "cells_planned": [t.cell_id for t in mapped.targets],
        "imported": {"format": format_name, "file": f"source/{source_name}"},
    }
    if mapped.concurrency is not None:
        meta["concurrency"] = mapped.concurrency
    if mapped.clock_note:
        meta["time_note"] = mapped.clock_note
    meta.update(mapped.meta_extra)
    end_moment = mapped.finished_at or mapped.clock_end or mapped.clock_start
    end: dict[str, Any] = {
        "type": "end",
        "finished_at_utc": utc_text(end_moment),
        "load_avg_end": None,
        "calls": len(mapped.calls),
        "errors": mapped.errors,
        "skipped": 0,
        "results": len(mapped.results),
        "interrupted": False,
    }
    if mapped.finished_at is None:
        end["time_note"] = (
            mapped.clock_note
            if mapped.clock_end is not None and mapped.clock_note
            else "the source does not record when the run finished; this is its start time"
        )
    end.update(mapped.end_extra)
    return [meta, *mapped.results, *mapped.calls, end]


def build_metadata(
    run_id: str,
    format_name: str,
    mapped: Mapped,
    source_name: str,
    origin: str,
    extra_tags: Sequence[str],
    authors: Sequence[str] = (),
) -> dict[str, Any]:
    """metadata.json: provenance as stated by the source, unknowns left null."""
    nodes = dict(mapped.nodes)
    for target in mapped.targets:
        if target.node and target.node not in nodes:
            nodes[target.node] = {
                "cpu": None,
                "cores": None,
                "gpu": None,
                "memory_gb": None,
                "os": None,
            }
    tags = list(dict.fromkeys(["imported", format_name, *mapped.tags, *extra_tags]))
    metadata: dict[str, Any] = {
        "format": METADATA_FORMAT,
        "id": run_id,
        "title": mapped.title[:300],
        "description": (mapped.description or "")[:2000] or None,
        "started_at_utc": utc_text(mapped.started_at) if mapped.started_at else None,
        "finished_at_utc": utc_text(mapped.finished_at) if mapped.finished_at else None,
        "status": "complete",
        "harness": {"name": mapped.tool, "version": mapped.tool_version},
        "git": {"sha": mapped.git_sha, "dirty": mapped.git_dirty},
        "load_avg_start": None,
        "targets": [t.to_json() for t in mapped.targets],
        "nodes": nodes,
        "tags": [t for t in tags if t],
        "concurrency": mapped.concurrency,
        "source": {
            "format": format_name,
            "tool": mapped.tool,
            "tool_version": mapped.tool_version,
            "file": source_name,
            "origin": origin,
            **mapped.source_extra,
        },
    }
    if mapped.clock_note:
        metadata["source"]["time_note"] = mapped.clock_note
    names = list(dict.fromkeys(a.strip() for a in [*mapped.authors, *authors] if a.strip()))
    if names:
        metadata["source"]["authors"] = names
    return metadata


@cache
def _our_schema(name: str) -> dict[str, Any]:
    text = resources.files("sitegen").joinpath("schemas", name).read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)  # every shipped schema is a JSON object
    return schema


def check_generated(
    display: str, ledger: list[dict[str, Any]], metadata: dict[str, Any]
) -> list[Problem]:
    """The generated files against the archive's own schemas (a guard against
    mapping bugs: an import never writes a run the build would refuse)."""
    problems = [
        Problem(display, message=f"generated metadata.json {m}")
        for m in schema_messages(_our_schema("metadata.v1.json"), metadata)
    ]
    for number, record in enumerate(ledger, start=1):
        schema = _our_schema(f"ledger-{record['type']}.v1.json")
        problems.extend(
            Problem(display, message=f"generated run.jsonl line {number} {m}")
            for m in schema_messages(schema, record)
        )
    return problems


def write_run(
    runs_dir: Path,
    run_id: str,
    ledger: list[dict[str, Any]],
    metadata: dict[str, Any],
    source_name: str,
    raw: bytes,
) -> Path:
    """The run folder with its ledger, metadata and the original file under ``source/``.

    Raises ``FileExistsError`` if the run already exists (never overwritten).
    """
    files = {
        f"source/{source_name}": raw,
        "run.jsonl": "".join(dumps_line(r) + "\n" for r in ledger).encode("utf-8"),
        "metadata.json": dumps(metadata).encode("utf-8"),
    }
    return write_run_folder(runs_dir, run_id, files)
