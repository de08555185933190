"""Packaging: a recorded ledger becomes ``runs/<id>/``, atomically.

The folder is written by ``sitegen.runfolder`` (staged, synced, renamed into
place), so a reader never sees half a run. A ledger without an end record, or with one
marked interrupted, is packaged with status ``interrupted``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sitegen.discover import RUN_ID_RE
from sitegen.exceptions import RunnerError
from sitegen.jsonio import dumps as canonical
from sitegen.layout import RUNS
from sitegen.runfolder import refresh_catalogue, write_run_folder
from sitegen.runner import runmd
from sitegen.runner.cells import load_inventory
from sitegen.runner.engines import ENGINE_NAMES
from sitegen.runner.recorder import RESPONSES, RESPONSES_BESIDE_LEDGER, Ledger, read_ledger

TARGET_KEYS = (
    "cell_id",
    "node",
    "engine",
    "engine_version",
    "engine_version_source",
    "engine_version_reported",
    "model",
    "model_digest",
    "quantization",
    "parameters",
    "context_length",
    "settings",
    "model_file",
)
Echo = Callable[[str], None]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def build_metadata(ledger: Ledger, nodes: dict[str, Any] | None = None) -> dict[str, Any]:
    """metadata.json for a recorded run, from its meta record (and an inventory)."""
    meta = ledger.meta
    end = ledger.end or {}
    publish = meta.get("publish") or {}
    run_id = meta["benchmark_run_id"]
    status = "interrupted" if ledger.interrupted else "complete"
    targets: list[dict[str, Any]] = [
        {k: t.get(k) for k in TARGET_KEYS if k in t}
        for t in meta.get("targets") or []
        if isinstance(t, dict) and t.get("cell_id")
    ]
    planned = meta.get("cells_planned") or []
    used_targets = [t for t in targets if t["cell_id"] in planned] or targets
    engines = sorted(
        {ENGINE_NAMES.get(t["engine"], t["engine"]) for t in used_targets if t.get("engine")}
    )
    node_names = sorted({t["node"] for t in used_targets if t.get("node")})
    title = publish.get("title") or (
        f"{' + '.join(engines) or 'Engines'} on {', '.join(node_names) or meta.get('host')}: "
        f"{_plural(len(planned), 'cell')} x {_plural(len(meta.get('prompts') or {}), 'prompt')}"
        + (f", concurrency {meta['concurrency']}" if (meta.get("concurrency") or 1) > 1 else "")
        + (" (smoke)" if meta.get("smoke") else "")
    )
    calls = ledger.calls
    errors = sum(1 for c in calls if c.get("error"))
    concurrency = meta.get("concurrency") or 1
    description = publish.get("description") or (
        f"Recorded with {meta.get('harness_name') or 'the runner'} {meta.get('harness_version')}: "
        f"1 cold + {meta.get('warm_runs', '?')} warm calls per cell and prompt, "
        + ("single stream" if concurrency == 1 else f"up to {concurrency} requests in flight")
        + f". {_plural(len(calls), 'call')} recorded, {_plural(errors, 'error')}"
        + (f", {_plural(len(ledger.skips), 'cell')} skipped" if ledger.skips else "")
        + "."
        + (
            " The run was interrupted; every call that finished is kept."
            if status == "interrupted"
            else ""
        )
    )
    inventory = nodes if nodes is not None else (meta.get("nodes") or {})
    wanted_nodes = set(node_names) | ({meta["host"]} if meta.get("host") else set())
    tags = list(
        dict.fromkeys(
            [
                *publish.get("tags", []),
                *sorted({t["engine"] for t in used_targets if t.get("engine")}),
            ]
        )
    )
    if concurrency > 1:
        tags.append("concurrency")
    if status == "interrupted":
        tags.append("interrupted")
    out: dict[str, Any] = {
        "format": "sitegen.metadata/1",
        "id": run_id,
        "title": title[:300],
        "description": description[:2000],
        "started_at_utc": meta.get("started_at_utc"),
        "finished_at_utc": end.get("finished_at_utc"),
        "status": status,
        "harness": {"name": meta.get("harness_name"), "version": meta.get("harness_version")},
        "git": {
            "sha": meta.get("git_sha"),
            "dirty": meta.get("git_dirty"),
            "dirty_files": meta.get("git_dirty_files") or [],
            "dirty_note": meta.get("git_dirty_note"),
        },
        "load_avg_start": meta.get("load_avg_start"),
        "targets": used_targets,
        "nodes": {n: inventory[n] for n in sorted(wanted_nodes) if n in inventory},
        "prompts": meta.get("prompts") or {},
        "license": publish.get("license") or "CC-BY-4.0",
        "authors": [a for a in publish.get("authors") or [] if a],
        "tags": tags,
        "baseline": bool(publish.get("baseline", False)),
        "synthetic": bool(meta.get("synthetic", False)),
        "concurrency": concurrency,
        "host": meta.get("host"),
    }
    # Section 8 evidence: the measured contention, and the publisher's own
    # statements, which are shown beside the measurement, never instead of it.
    if isinstance(end.get("machine"), dict):
        out["machine"] = end["machine"]
    for key in ("exclusive", "authorization", "window"):
        if meta.get(key):
            out[key] = meta[key]
    if not ledger.end and calls:
        out["last_call_started_at_utc"] = calls[-1].get("started_at_utc")
    return out


def package_ledger(
    ledger_path: Path,
    *,
    runs_dir: Path = Path(RUNS),
    nodes_path: Path | None = None,
    echo: Echo | None = None,
    refresh: bool = True,
) -> Path:
    """Package ``ledger_path`` as ``runs_dir/<id>/`` and rebuild the catalogue."""
    say = echo or (lambda _s: None)
    ledger = read_ledger(ledger_path)
    run_id = str(ledger.meta["benchmark_run_id"])
    if not RUN_ID_RE.match(run_id):
        raise RunnerError(f"{ledger_path}: run id {run_id!r} is not a valid folder name")
    runs_dir.mkdir(parents=True, exist_ok=True)
    final = runs_dir / run_id
    if final.exists():
        raise RunnerError(f"{final} already exists; a run is packaged once")
    nodes = load_inventory(nodes_path).nodes if nodes_path else None
    metadata = build_metadata(ledger, nodes)
    stem = ledger_path.with_suffix("")
    log_path = stem.with_name(stem.name + ".log")
    probes_path = stem.with_name(stem.name + ".probes.json")
    texts_path = stem.with_name(f"{stem.name}.{RESPONSES_BESIDE_LEDGER}")
    files = {
        "run.jsonl": "".join(line + "\n" for line in ledger.raw_lines).encode("utf-8"),
        "metadata.json": canonical(metadata).encode("utf-8"),
        "run.md": runmd.render(ledger, metadata).encode("utf-8"),
    }
    log_text = log_path.read_text(encoding="utf-8") if log_path.is_file() else ""
    if ledger.dropped_tail:
        log_text += "packaging: dropped a torn final ledger line (the writer was killed)\n"
    if not ledger.end:
        log_text += "packaging: no end record; packaged as interrupted\n"
    if log_text:
        files["run.log"] = log_text.encode("utf-8")
    if probes_path.is_file():
        files["probes.json"] = probes_path.read_bytes()
    if texts_path.is_file():
        files[RESPONSES] = _whole_lines(texts_path)
    try:
        write_run_folder(runs_dir, run_id, files)
    except FileExistsError:
        raise RunnerError(f"{final} already exists; a run is packaged once") from None
    say(f"packaged {metadata['status']} run {run_id} -> {final}")
    if refresh:
        archive = runs_dir.resolve().parent
        note = refresh_catalogue(archive)
        say(note or f"catalogue rebuilt in {archive}")
    return final


def _whole_lines(source: Path) -> bytes:
    """A JSON-lines file without a torn last line (its writer may have been killed)."""
    data = source.read_bytes()
    return data[: data.rfind(b"\n") + 1]
