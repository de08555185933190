"""The relational export: the whole archive as one SQLite database.

The site and ``catalogue.json`` answer "what is in the archive"; researchers
also want to ask their own questions across runs (TTFT per model, best score
per task, runs per node) in SQL. This module writes every run, call, skip and
result record into explicit entity tables (models, tasks, prompts, nodes,
engines, cells) joined by declared foreign keys. ``docs/relational.md``
describes every table and the decisions behind them.

The file is reproducible: the same archive gives the same bytes (with the same
SQLite library). Rows are inserted in a sorted order, surrogate keys are
numbered in that order, nothing time-dependent is stored, the page size is
fixed, and the file is vacuumed at the end.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sitegen.catalogue import split_cell, targets_of
from sitegen.discover import LEDGER
from sitegen.exceptions import BuildError
from sitegen.ledger import normalise_record
from sitegen.repro import prompt_hashes

if TYPE_CHECKING:
    from sitegen.archive import Run
    from sitegen.build import Loaded

FORMAT = "sitegen.relational"
SCHEMA_VERSION = 1
PAGE_SIZE = 4096
#: Placeholders the importers write into cell ids for a part the source does not state.
UNKNOWN = {"unknown-node", "unknown-engine"}

# Call record fields stored in their own column, in table order (after the keys).
CALL_COLUMNS = (
    "phase",
    "cold_kind",
    "run_idx",
    "first_delta_ms",
    "ttft_ms",
    "total_duration_ms",
    "tpot_ms",
    "decode_tps",
    "tokens_per_sec",
    "itl_p50_ms",
    "itl_p95_ms",
    "itl_max_ms",
    "request_offset_ms",
    "started_at_utc",
    "prompt_tokens",
    "completion_tokens",
    "reasoning_tokens",
    "cached_tokens",
    "tokens_source",
    "chunks",
    "content_chunks",
    "finish_reason",
    "http_status",
    "backend",
    "error",
    "error_class",
    "system_fingerprint",
    "cache_prompt",
    "worker",
)
CALL_JSON = ("server_timings",)
CALL_KEYS = ("type", "cell_id", "prompt_id")
RESULT_COLUMNS = ("metric", "value", "unit", "stderr", "higher_is_better", "passed", "duration_s")
RESULT_KEYS = ("type", "name", "model", "cell_id", "tags")
BOOLEAN = {"cache_prompt", "higher_is_better", "passed"}
CALL_KNOWN = frozenset(CALL_COLUMNS + CALL_JSON + CALL_KEYS)
RESULT_KNOWN = frozenset(RESULT_COLUMNS + RESULT_KEYS)

DDL = f"""
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE runs (
    run_id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    description TEXT,
    status TEXT NOT NULL CHECK (status IN ('complete', 'interrupted', 'meta-only')),
    started_at_utc TEXT,
    finished_at_utc TEXT,
    submitter TEXT,
    runner_name TEXT,
    runner_version TEXT,
    git_sha TEXT,
    git_dirty INTEGER,
    host TEXT,
    load_avg_1m REAL,
    concurrency INTEGER,
    verdict TEXT NOT NULL CHECK (verdict IN ('reliable', 'unreliable')),
    digest TEXT NOT NULL,
    synthetic INTEGER NOT NULL,
    baseline INTEGER NOT NULL,
    license TEXT,
    source_format TEXT,
    source_tool TEXT,
    source_tool_version TEXT,
    supersedes TEXT REFERENCES runs (run_id) DEFERRABLE INITIALLY DEFERRED,
    retracted INTEGER NOT NULL,
    retraction_reason TEXT,
    retraction_date TEXT
);
CREATE TABLE run_authors (
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    position INTEGER NOT NULL,
    author TEXT NOT NULL,
    PRIMARY KEY (run_id, position)
);
CREATE TABLE run_tags (
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    tag TEXT NOT NULL,
    PRIMARY KEY (run_id, tag)
);
CREATE TABLE run_checks (
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    position INTEGER NOT NULL,
    check_id TEXT NOT NULL,
    ok INTEGER NOT NULL,
    detail TEXT NOT NULL,
    PRIMARY KEY (run_id, position)
);
CREATE TABLE nodes (
    node_key INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    cpu TEXT,
    cores INTEGER,
    gpu TEXT,
    memory_gb REAL,
    os TEXT
);
CREATE TABLE engines (
    engine_key INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    version TEXT
);
CREATE TABLE models (
    model_key INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    provider TEXT,
    version TEXT,
    quantization TEXT,
    parameter_count INTEGER,
    context_length INTEGER
);
CREATE TABLE cells (
    cell_key INTEGER PRIMARY KEY,
    cell_id TEXT NOT NULL,
    node_key INTEGER REFERENCES nodes (node_key),
    engine_key INTEGER REFERENCES engines (engine_key),
    model_key INTEGER REFERENCES models (model_key)
);
CREATE TABLE run_cells (
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    cell_key INTEGER NOT NULL REFERENCES cells (cell_key),
    declared INTEGER NOT NULL,
    settings_json TEXT,
    PRIMARY KEY (run_id, cell_key)
);
CREATE TABLE tasks (
    task_key INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT
);
CREATE TABLE prompts (
    prompt_key INTEGER PRIMARY KEY,
    prompt_id TEXT NOT NULL,
    sha256 TEXT,
    task_key INTEGER NOT NULL REFERENCES tasks (task_key),
    text TEXT,
    id_conflict INTEGER NOT NULL,
    first_run_id TEXT NOT NULL REFERENCES runs (run_id)
);
CREATE TABLE run_prompts (
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    prompt_key INTEGER NOT NULL REFERENCES prompts (prompt_key),
    declared INTEGER NOT NULL,
    max_tokens INTEGER,
    PRIMARY KEY (run_id, prompt_key)
);
CREATE TABLE calls (
    call_key INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    line INTEGER NOT NULL,
    cell_key INTEGER NOT NULL REFERENCES cells (cell_key),
    model_key INTEGER REFERENCES models (model_key),
    prompt_key INTEGER NOT NULL REFERENCES prompts (prompt_key),
    phase TEXT NOT NULL CHECK (phase IN ('cold', 'warm')),
    cold_kind TEXT,
    run_idx INTEGER NOT NULL,
    first_delta_ms REAL,
    ttft_ms REAL,
    total_duration_ms REAL,
    tpot_ms REAL,
    decode_tps REAL,
    tokens_per_sec REAL,
    itl_p50_ms REAL,
    itl_p95_ms REAL,
    itl_max_ms REAL,
    request_offset_ms REAL,
    started_at_utc TEXT,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    reasoning_tokens INTEGER,
    cached_tokens INTEGER,
    tokens_source TEXT,
    chunks INTEGER,
    content_chunks INTEGER,
    finish_reason TEXT,
    http_status INTEGER,
    backend TEXT NOT NULL,
    error TEXT,
    error_class TEXT,
    system_fingerprint TEXT,
    cache_prompt INTEGER,
    worker INTEGER,
    server_timings_json TEXT,
    extra_json TEXT
);
CREATE TABLE skips (
    skip_key INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    line INTEGER NOT NULL,
    cell_key INTEGER NOT NULL REFERENCES cells (cell_key),
    prompt_key INTEGER REFERENCES prompts (prompt_key),
    reason TEXT NOT NULL
);
CREATE TABLE run_model_metrics (
    metric_key INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    line INTEGER NOT NULL,
    model_key INTEGER REFERENCES models (model_key),
    cell_key INTEGER REFERENCES cells (cell_key),
    task_key INTEGER NOT NULL REFERENCES tasks (task_key),
    metric TEXT NOT NULL,
    value REAL,
    unit TEXT,
    stderr REAL,
    higher_is_better INTEGER,
    passed INTEGER,
    duration_s REAL,
    tags_json TEXT,
    extra_json TEXT
);
PRAGMA user_version = {SCHEMA_VERSION};
"""

INDEXES = """
CREATE INDEX runs_supersedes ON runs (supersedes);
CREATE INDEX cells_node ON cells (node_key);
CREATE INDEX cells_engine ON cells (engine_key);
CREATE INDEX cells_model ON cells (model_key);
CREATE INDEX models_name ON models (name);
CREATE INDEX nodes_name ON nodes (name);
CREATE INDEX run_cells_cell ON run_cells (cell_key);
CREATE INDEX prompts_id ON prompts (prompt_id);
CREATE INDEX prompts_sha256 ON prompts (sha256);
CREATE INDEX prompts_task ON prompts (task_key);
CREATE INDEX prompts_first_run ON prompts (first_run_id);
CREATE INDEX run_prompts_prompt ON run_prompts (prompt_key);
CREATE UNIQUE INDEX calls_run_line ON calls (run_id, line);
CREATE INDEX calls_cell ON calls (cell_key);
CREATE INDEX calls_model_phase ON calls (model_key, phase);
CREATE INDEX calls_prompt ON calls (prompt_key);
CREATE UNIQUE INDEX skips_run_line ON skips (run_id, line);
CREATE INDEX skips_cell ON skips (cell_key);
CREATE INDEX skips_prompt ON skips (prompt_key);
CREATE UNIQUE INDEX metrics_run_line ON run_model_metrics (run_id, line);
CREATE INDEX metrics_task_metric ON run_model_metrics (task_key, metric);
CREATE INDEX metrics_model ON run_model_metrics (model_key);
CREATE INDEX metrics_cell ON run_model_metrics (cell_key);
"""


# --- natural keys -------------------------------------------------------------

NodeKey = tuple[str, str | None, int | None, str | None, float | None, str | None]
EngineKey = tuple[str, str | None]
ModelKey = tuple[str, str | None, str | None, str | None, int | None, int | None]
CellKey = tuple[str, NodeKey | None, EngineKey | None, ModelKey | None]
PromptKey = tuple[str, str | None]


def _order(value: Any) -> Any:
    """A sort key under which None sorts first and tuples compare field by field."""
    if isinstance(value, tuple):
        return tuple(_order(v) for v in value)
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, int | float):
        return (1, value)
    return (2, str(value))


def _text(value: Any) -> str | None:
    """Versions may be numbers in the sources; the tables keep them as text."""
    return None if value is None else str(value)


def _known(value: Any) -> str | None:
    """A node or engine name, or None for missing and the importers' placeholders."""
    if not isinstance(value, str) or not value or value in UNKNOWN:
        return None
    return value


def _bool(value: Any) -> int | None:
    return None if value is None else int(bool(value))


def _json(value: Any) -> str | None:
    """Canonical JSON text (sorted keys), or None for nothing."""
    if value is None or value == {}:
        return None
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def provider_of(model: str, settings: Any) -> str | None:
    """The ``org`` of an ``org/name`` model id, else the provider the source states."""
    if "/" in model:
        return model.split("/", 1)[0] or None
    if isinstance(settings, dict) and isinstance(settings.get("provider"), str):
        return settings["provider"] or None
    return None


@dataclass
class _Tables:
    """Rows gathered from the archive, referring to entities by natural key."""

    runs: list[tuple[Any, ...]] = field(default_factory=list)
    run_authors: list[tuple[Any, ...]] = field(default_factory=list)
    run_tags: list[tuple[Any, ...]] = field(default_factory=list)
    run_checks: list[tuple[Any, ...]] = field(default_factory=list)
    # run id -> cell natural key -> (declared, settings json)
    run_cells: dict[str, dict[CellKey, tuple[int, str | None]]] = field(default_factory=dict)
    # run id -> prompt natural key -> (declared, max_tokens)
    run_prompts: dict[str, dict[PromptKey, tuple[int, int | None]]] = field(default_factory=dict)
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    skips: list[tuple[Any, ...]] = field(default_factory=list)
    metrics: list[tuple[Any, ...]] = field(default_factory=list)
    tasks: set[str] = field(default_factory=set)
    first_run: dict[PromptKey, tuple[Any, str]] = field(default_factory=dict)


class _RunScope:
    """Resolves the cell, model and prompt ids a run's records name to natural keys."""

    def __init__(self, run: Run, tables: _Tables):
        self.run = run
        self.tables = tables
        self.cells: dict[str, CellKey] = {}
        self.by_model: dict[str, list[CellKey]] = {}
        self.run_cells = tables.run_cells.setdefault(run.run_id, {})
        self.run_prompts = tables.run_prompts.setdefault(run.run_id, {})
        described = run.metadata.get("nodes") or {}
        self.nodes = {k: v for k, v in described.items() if isinstance(v, dict)}
        for target in targets_of(run):
            self._add_cell(target, declared=True)
        declared = run.metadata.get("prompts") or run.meta.get("prompts") or {}
        self.prompt_sha = prompt_hashes(run)
        for pid in sorted(declared):
            spec = declared[pid] if isinstance(declared[pid], dict) else {}
            self._use_prompt(pid, declared=True, max_tokens=spec.get("max_tokens"))

    def _add_cell(self, target: dict[str, Any], *, declared: bool) -> CellKey:
        cell_id = target["cell_id"]
        node_name = _known(target.get("node"))
        engine_name = _known(target.get("engine"))
        model_name = target.get("model") or None
        node: NodeKey | None = None
        if node_name is not None:
            hw = self.nodes.get(node_name, {})
            memory = hw.get("memory_gb")
            node = (
                node_name,
                hw.get("cpu"),
                hw.get("cores"),
                hw.get("gpu"),
                None if memory is None else float(memory),
                hw.get("os"),
            )
        engine: EngineKey | None = (
            (engine_name, _text(target.get("engine_version"))) if engine_name else None
        )
        model: ModelKey | None = None
        if model_name is not None:
            model = (
                model_name,
                provider_of(model_name, target.get("settings")),
                _text(target.get("model_digest")),
                target.get("quantization"),
                target.get("parameters"),
                target.get("context_length"),
            )
        key: CellKey = (cell_id, node, engine, model)
        self.cells[cell_id] = key
        if model_name is not None:
            self.by_model.setdefault(model_name, []).append(key)
        if key not in self.run_cells:
            self.run_cells[key] = (int(declared), _json(target.get("settings")))
        return key

    def cell(self, cell_id: str) -> CellKey:
        """The run's cell of that id; one inferred from the id when metadata lacks it."""
        if cell_id in self.cells:
            return self.cells[cell_id]
        return self._add_cell({"cell_id": cell_id, **split_cell(cell_id)}, declared=False)

    def result_cell(self, record: dict[str, Any]) -> CellKey | None:
        """A result's cell: named, else the one target of its model, else the run's only one."""
        if isinstance(record.get("cell_id"), str) and record["cell_id"]:
            return self.cell(record["cell_id"])
        model = record.get("model")
        if isinstance(model, str) and len(set(self.by_model.get(model, []))) == 1:
            return self.by_model[model][0]
        declared = {k for k, (d, _) in self.run_cells.items() if d}
        if model is None and len(declared) == 1:
            return next(iter(declared))
        return None

    def _use_prompt(self, pid: str, *, declared: bool, max_tokens: Any = None) -> PromptKey:
        key: PromptKey = (pid, self.prompt_sha.get(pid))
        if key in self.run_prompts:
            return key
        limit = max_tokens if isinstance(max_tokens, int) else None
        self.run_prompts[key] = (int(declared), limit)
        order = (_order(self.run.started_at), self.run.run_id)
        seen = self.tables.first_run.get(key)
        if seen is None or order < seen[0]:
            self.tables.first_run[key] = (order, self.run.run_id)
        self.tables.tasks.add(pid)
        return key

    def prompt(self, pid: str) -> PromptKey:
        return self._use_prompt(pid, declared=False)


def _ledger_records(run: Run) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) of every call, skip and result record of the run's ledger.

    The ledger passed the build's strict pre-pass, so plain parsing is enough;
    harness-style ``phase: "skipped"`` lines become skips, as in the build.
    """
    if run.ledger is None:
        return
    with (run.source.path / LEDGER).open(encoding="utf-8") as fh:
        for number, text in enumerate(fh, start=1):
            record = normalise_record(json.loads(text))
            if record.get("type") in ("call", "skip", "result"):
                yield number, record


def _columns(record: dict[str, Any], names: tuple[str, ...]) -> list[Any]:
    """The record's values for ``names`` (None when absent; booleans as 0/1)."""
    return [_bool(record.get(c)) if c in BOOLEAN else record.get(c) for c in names]


def _run_row(run: Run, check: dict[str, Any], entry: dict[str, Any]) -> tuple[Any, ...]:
    md, meta = run.metadata, run.meta
    harness = md.get("harness") or {}
    git = md.get("git") or {}
    source = md.get("source") or {}
    load = md.get("load_avg_start") or meta.get("load_avg_start") or []
    authors = md.get("authors") or []
    retraction = entry.get("retracted") or {}
    dirty = git.get("dirty") if git.get("dirty") is not None else meta.get("git_dirty")
    concurrency = md.get("concurrency")
    if concurrency is None:
        concurrency = meta.get("concurrency")
    return (
        run.run_id,
        md["title"],
        md.get("description") or None,
        run.status,
        run.started_at,
        run.finished_at,
        "; ".join(authors) or None,
        harness.get("name") or meta.get("harness_name"),
        _text(
            harness.get("version")
            if harness.get("version") is not None
            else meta.get("harness_version")
        ),
        git.get("sha") or meta.get("git_sha"),
        _bool(dirty),
        meta.get("host"),
        float(load[0]) if load else None,
        concurrency,
        check["verdict"],
        run.digest,
        int(run.synthetic),
        int(bool(md.get("baseline"))),
        md.get("license"),
        source.get("format"),
        source.get("tool"),
        _text(source.get("tool_version")),
        md.get("supersedes"),
        int(bool(retraction)),
        retraction.get("reason"),
        retraction.get("date"),
    )


def _gather(loaded: Loaded) -> _Tables:
    """Every row of every table, entities still named by their natural keys."""
    tables = _Tables()
    entries = {e["id"]: e for e in loaded.catalogue.get("runs", [])}
    for run in sorted(loaded.runs, key=lambda r: r.run_id):
        rid = run.run_id
        md = run.metadata
        tables.runs.append(_run_row(run, loaded.checks[rid], entries.get(rid, {})))
        for position, author in enumerate(md.get("authors") or []):
            tables.run_authors.append((rid, position, author))
        for tag in sorted(set(md.get("tags") or [])):
            tables.run_tags.append((rid, tag))
        for position, item in enumerate(loaded.checks[rid]["checks"]):
            tables.run_checks.append((rid, position, item["id"], int(item["ok"]), item["detail"]))
        scope = _RunScope(run, tables)
        for line, rec in _ledger_records(run):
            kind = rec["type"]
            if kind == "call":
                cell = scope.cell(rec["cell_id"])
                extra = {k: v for k, v in rec.items() if k not in CALL_KNOWN}
                tables.calls.append(
                    (
                        rid,
                        line,
                        cell,
                        cell[3],
                        scope.prompt(rec["prompt_id"]),
                        *_columns(rec, CALL_COLUMNS),
                        _json(rec.get("server_timings")),
                        _json(extra),
                    )
                )
            elif kind == "skip":
                pid = rec.get("prompt_id")
                prompt = scope.prompt(pid) if isinstance(pid, str) and pid else None
                tables.skips.append((rid, line, scope.cell(rec["cell_id"]), prompt, rec["reason"]))
            else:
                cell = scope.result_cell(rec)
                tables.tasks.add(rec["name"])
                extra = {k: v for k, v in rec.items() if k not in RESULT_KNOWN}
                # The model a result names is authoritative; its cell gives the details.
                model = cell[3] if cell is not None else None
                if model is None and isinstance(rec.get("model"), str) and rec["model"]:
                    model = (rec["model"], provider_of(rec["model"], None), None, None, None, None)
                tables.metrics.append(
                    (
                        rid,
                        line,
                        model,
                        cell,
                        rec["name"],
                        *_columns(rec, RESULT_COLUMNS),
                        _json(rec.get("tags")),
                        _json(extra),
                    )
                )
    return tables


def _numbered(keys: Iterable[Any]) -> dict[Any, int]:
    """Surrogate keys 1, 2, ... in the sorted order of the natural keys."""
    return {k: i for i, k in enumerate(sorted(set(keys), key=_order), start=1)}


def _canonical_prompts() -> tuple[dict[str, str], dict[tuple[str, str], str]]:
    """The runner's frozen prompts: sha256 -> text, and (id, sha256) -> intent.

    A text is only ever filled in from its hash, so it is the text the run sent.
    """
    from sitegen.runner.cells import load_prompts

    prompts = load_prompts()
    texts = {p.sha256: p.text for p in prompts}
    return texts, {(p.id, p.sha256): p.intent for p in prompts if p.intent}


def _rows(loaded: Loaded) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows, in insertion order, with surrogate keys resolved."""
    t = _gather(loaded)
    cell_keys: set[CellKey] = set()
    for per_run in t.run_cells.values():
        cell_keys |= set(per_run)
    models = {c[3] for c in cell_keys if c[3] is not None}
    models |= {row[2] for row in t.metrics if row[2] is not None}
    node_ids = _numbered(c[1] for c in cell_keys if c[1] is not None)
    engine_ids = _numbered(c[2] for c in cell_keys if c[2] is not None)
    model_ids = _numbered(models)
    cell_ids = _numbered(cell_keys)
    task_ids = _numbered(t.tasks)
    prompt_ids = _numbered(t.first_run)

    texts, intents = _canonical_prompts()
    shas: dict[str, set[str]] = {}
    for pid, sha in prompt_ids:
        if sha is not None:
            shas.setdefault(pid, set()).add(sha)
    # A task's description is the canonical intent, when one of its prompts is that text.
    described = {pid: intents[(pid, sha)] for pid, sha in prompt_ids if (pid, sha) in intents}

    def opt(ids: dict[Any, int], key: Any) -> int | None:
        return None if key is None else ids[key]

    rows: dict[str, list[tuple[Any, ...]]] = {
        "meta": [("format", FORMAT), ("schema_version", str(SCHEMA_VERSION))],
        "runs": t.runs,
        "run_authors": t.run_authors,
        "run_tags": t.run_tags,
        "run_checks": t.run_checks,
        "nodes": [(i, *k) for k, i in node_ids.items()],
        "engines": [(i, *k) for k, i in engine_ids.items()],
        "models": [(i, *k) for k, i in model_ids.items()],
        "cells": [
            (i, c[0], opt(node_ids, c[1]), opt(engine_ids, c[2]), opt(model_ids, c[3]))
            for c, i in cell_ids.items()
        ],
        "run_cells": [
            (rid, cell_ids[c], declared, settings)
            for rid in sorted(t.run_cells)
            for c, (declared, settings) in sorted(
                t.run_cells[rid].items(), key=lambda kv: cell_ids[kv[0]]
            )
        ],
        "tasks": [(i, name, described.get(name)) for name, i in task_ids.items()],
        "prompts": [
            (
                i,
                pid,
                sha,
                task_ids[pid],
                texts.get(sha) if sha is not None else None,
                int(len(shas.get(pid, ())) > 1),
                t.first_run[(pid, sha)][1],
            )
            for (pid, sha), i in prompt_ids.items()
        ],
        "run_prompts": [
            (rid, prompt_ids[p], declared, max_tokens)
            for rid in sorted(t.run_prompts)
            for p, (declared, max_tokens) in sorted(
                t.run_prompts[rid].items(), key=lambda kv: prompt_ids[kv[0]]
            )
        ],
        "calls": [
            (n, rid, line, cell_ids[cell], opt(model_ids, model), prompt_ids[prompt], *rest)
            for n, (rid, line, cell, model, prompt, *rest) in enumerate(t.calls, start=1)
        ],
        "skips": [
            (n, rid, line, cell_ids[cell], opt(prompt_ids, prompt), reason)
            for n, (rid, line, cell, prompt, reason) in enumerate(t.skips, start=1)
        ],
        "run_model_metrics": [
            (n, rid, line, opt(model_ids, model), opt(cell_ids, cell), task_ids[task], *rest)
            for n, (rid, line, model, cell, task, *rest) in enumerate(t.metrics, start=1)
        ],
    }
    return rows


def _insert(con: sqlite3.Connection, rows: dict[str, list[tuple[Any, ...]]]) -> None:
    for table, table_rows in rows.items():
        if not table_rows:
            continue
        marks = ", ".join("?" * len(table_rows[0]))
        con.executemany(f"INSERT INTO {table} VALUES ({marks})", table_rows)


def _write(path: Path, rows: dict[str, list[tuple[Any, ...]]]) -> None:
    con = sqlite3.connect(path, isolation_level=None)
    try:
        # Before the first table: the page size is fixed when the file is created.
        con.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        con.execute("PRAGMA journal_mode = MEMORY")
        con.execute("PRAGMA foreign_keys = ON")
        con.executescript(DDL)
        con.execute("BEGIN")
        _insert(con, rows)
        con.execute("COMMIT")
        broken = con.execute("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise BuildError(f"{path}: relational export has dangling references: {broken[:5]}")
        con.executescript(INDEXES)
        con.execute("VACUUM")
    finally:
        con.close()


def write_sqlite(path: Path, loaded: Loaded) -> None:
    """Write the whole archive as a SQLite database at ``path``, atomically.

    The same archive gives a byte-identical file, so the download can be
    checksummed and cached like every other published file.
    """
    path = Path(path)
    rows = _rows(loaded)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise BuildError(f"{path}: cannot write: {exc.strerror or exc}") from None
    tmp = Path(name)
    try:
        _write(tmp, rows)
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except sqlite3.Error as exc:
        raise BuildError(f"{path}: SQLite export failed: {exc}") from None
    except OSError as exc:
        raise BuildError(f"{path}: cannot write: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
        Path(f"{tmp}-journal").unlink(missing_ok=True)
