"""The relational export: the whole archive as one SQLite database.

The site and ``catalogue.json`` answer "what is in the archive"; researchers
also want to ask their own questions across runs (TTFT per model, best score
per task, runs per node) in SQL. This module writes every run, call, skip and
result record into explicit entity tables (models, tasks, prompts, nodes,
engines, cells) joined by declared foreign keys. ``docs/relational.md``
describes every table and the decisions behind them.

The file is reproducible: the same archive gives the same bytes (with the same
SQLite library). Rows are inserted in a sorted order, surrogate keys are
numbered in the sorted order of the natural keys, nothing time-dependent is
stored, and the page size is fixed.

A build that adds one run writes a new export, so it can start from the
previous one (``Base``): the rows of unchanged runs are copied from it by
SQLite, and only new or changed runs are read from their ledgers in Python.
Both kinds of rows go through staging tables and then one ``INSERT ... SELECT
... ORDER BY`` per table, which renumbers their keys: the same statements on
the same rows, so the file is the same bytes as one written from scratch.

Above ``data.split_calls_above`` calls, the ``calls`` table is left empty
(``calls=False``): call rows are most of the file and of the time to write it,
and the call-level data is then in the per-month Parquet files.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sitegen.catalogue import nodes_of, split_cell, targets_of
from sitegen.discover import LEDGER
from sitegen.entities import canonical, canonical_target
from sitegen.exceptions import BuildError
from sitegen.ledger import normalise_record
from sitegen.prompts import load_prompts
from sitegen.repro import prompt_hashes

if TYPE_CHECKING:
    from sitegen.archive import Run
    from sitegen.callstore import Calls
    from sitegen.domain import Loaded

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


class _Registry:
    """Natural keys seen in the runs read from their files, each with a provisional id.

    Rows are written to the staging tables as soon as a run is read, before
    the final numbering is known (it depends on every run), so they name
    entities by these provisional ids; the final numbering maps them later.
    """

    def __init__(self) -> None:
        self.ids: dict[str, dict[Any, int]] = {kind: {} for kind in MAPPED}
        # prompt natural key -> (sort order of the earliest run using it, that run's id)
        self.first_run: dict[PromptKey, tuple[Any, str]] = {}

    def provisional(self, kind: str, key: Any) -> int:
        ids = self.ids[kind]
        return ids.setdefault(key, len(ids) + 1)

    def use_prompt(self, key: PromptKey, order: Any, run_id: str) -> None:
        seen = self.first_run.get(key)
        if seen is None or order < seen[0]:
            self.first_run[key] = (order, run_id)


class _RunScope:
    """Resolves the cell, model and prompt ids a run's records name to natural keys."""

    def __init__(self, run: Run, registry: _Registry):
        self.run = run
        self.registry = registry
        self.cells: dict[str, CellKey] = {}
        self.by_model: dict[str, list[CellKey]] = {}
        # cell natural key -> (declared, settings json); prompt key -> (declared, max_tokens)
        self.run_cells: dict[CellKey, tuple[int, str | None]] = {}
        self.run_prompts: dict[PromptKey, tuple[int, int | None]] = {}
        self.nodes = dict(nodes_of(run))  # by canonical name, as the targets name them
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
        inferred = canonical_target(
            {"cell_id": cell_id, **split_cell(cell_id)}, self.run.aliases, self.run.source_format
        )
        return self._add_cell(inferred, declared=False)

    def result_cell(self, record: dict[str, Any]) -> CellKey | None:
        """A result's cell: named, else the one target of its model, else the run's only one."""
        if isinstance(record.get("cell_id"), str) and record["cell_id"]:
            return self.cell(record["cell_id"])
        model = canonical("model", record.get("model"), self.run.aliases)
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
        self.registry.use_prompt(key, order, self.run.run_id)
        return key

    def prompt(self, pid: str) -> PromptKey:
        return self._use_prompt(pid, declared=False)

    def model_id(self, model: ModelKey | None) -> int | None:
        return None if model is None else self.registry.provisional("models", model)


def _may_be_skip_or_result(raw: bytes) -> bool:
    """False only for a line that cannot hold a skip or result record.

    Such a record spells its type (or the harness's ``"phase": "skipped"``)
    as a JSON string, literally or with escapes; a line with neither the
    literal nor a backslash is a call, meta or end record and needs no parsing.
    """
    return b'"skip' in raw or b'"result"' in raw or b"\\" in raw


def _ledger_records(run: Run, *, calls: bool) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) of every call, skip and result record of the run's ledger.

    The ledger passed the build's strict pre-pass, so plain parsing is enough;
    harness-style ``phase: "skipped"`` lines become skips, as in the build.
    Without ``calls``, lines that can only be calls are not parsed at all: at
    a million calls that is most of the cost of the export.
    """
    if run.ledger is None:
        return
    with (run.source.path / LEDGER).open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if not calls and not _may_be_skip_or_result(raw):
                continue
            record = normalise_record(json.loads(raw))
            kind = record.get("type")
            if kind in ("skip", "result") or (calls and kind == "call"):
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
    concurrency = run.concurrency
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


CallRefs = tuple[set[str], set[str]]  # the cell ids and the prompt ids a run's calls name


def _call_refs(calls: Calls, run_ids: set[str]) -> dict[str, CallRefs]:
    """run id -> the cells and prompts its call records name (from the call store)."""
    out: dict[str, CallRefs] = {}
    for named in calls.each(run_ids):  # a part at a time: a first build asks for every run
        for rid, cell, prompt in named.select("run_id", "cell_id", "prompt_id").unique().rows():
            cells, prompts = out.setdefault(rid, (set(), set()))
            cells.add(cell)
            prompts.add(prompt)
    return out


def _calls_add_nothing(scope: _RunScope, refs: CallRefs | None) -> bool:
    """True when every cell and prompt the run's calls name is declared already.

    Then reading the call records registers nothing (no cell or prompt is
    inferred from them), so an export without the calls table can skip them.
    """
    if refs is None:
        return True
    cells, prompts = refs
    return cells <= scope.cells.keys() and prompts <= {pid for pid, _sha in scope.run_prompts}


def _about_run(
    run: Run, check: dict[str, Any], entry: dict[str, Any]
) -> dict[str, list[tuple[Any, ...]]]:
    """The run's rows of every per-run table that does not come from its ledger."""
    rid = run.run_id
    md = run.metadata
    rows: dict[str, list[tuple[Any, ...]]] = {name: [] for name in PER_RUN}
    rows["runs"].append(_run_row(run, check, entry))
    for position, author in enumerate(md.get("authors") or []):
        rows["run_authors"].append((rid, position, author))
    for tag in sorted(set(md.get("tags") or [])):
        rows["run_tags"].append((rid, tag))
    for position, item in enumerate(check["checks"]):
        rows["run_checks"].append((rid, position, item["id"], int(item["ok"]), item["detail"]))
    return rows


def _call_row(scope: _RunScope, line: int, rec: dict[str, Any]) -> tuple[Any, ...]:
    ids = scope.registry.provisional
    cell = scope.cell(rec["cell_id"])
    prompt = scope.prompt(rec["prompt_id"])
    extra = {k: v for k, v in rec.items() if k not in CALL_KNOWN}
    return (
        scope.run.run_id,
        line,
        ids("cells", cell),
        scope.model_id(cell[3]),
        ids("prompts", prompt),
        *_columns(rec, CALL_COLUMNS),
        _json(rec.get("server_timings")),
        _json(extra),
    )


def _skip_row(scope: _RunScope, line: int, rec: dict[str, Any]) -> tuple[Any, ...]:
    ids = scope.registry.provisional
    pid = rec.get("prompt_id")
    prompt = scope.prompt(pid) if isinstance(pid, str) and pid else None
    cell_id = ids("cells", scope.cell(rec["cell_id"]))
    prompt_id = None if prompt is None else ids("prompts", prompt)
    return (scope.run.run_id, line, cell_id, prompt_id, rec["reason"])


def _result_row(scope: _RunScope, line: int, rec: dict[str, Any]) -> tuple[Any, ...]:
    ids = scope.registry.provisional
    cell = scope.result_cell(rec)
    extra = {k: v for k, v in rec.items() if k not in RESULT_KNOWN}
    # The model a result names is authoritative; its cell gives the details.
    model = cell[3] if cell is not None else None
    name = canonical("model", rec.get("model"), scope.run.aliases)
    if model is None and name:
        model = (name, provider_of(name, None), None, None, None, None)
    return (
        scope.run.run_id,
        line,
        scope.model_id(model),
        None if cell is None else ids("cells", cell),
        ids("tasks", rec["name"]),
        *_columns(rec, RESULT_COLUMNS),
        _json(rec.get("tags")),
        _json(extra),
    )


_RECORD_ROWS = {
    "call": ("calls", _call_row),
    "skip": ("skips", _skip_row),
    "result": ("run_model_metrics", _result_row),
}


def _run_rows(
    run: Run,
    check: dict[str, Any],
    entry: dict[str, Any],
    registry: _Registry,
    refs: CallRefs | None,
    *,
    calls: bool,
) -> dict[str, list[tuple[Any, ...]]]:
    """One run's rows of every per-run table, entities named by provisional ids.

    Without ``calls`` the calls table gets no rows; the call records are
    still read when they name a cell or prompt the run does not declare
    (``refs``), since the other tables list those too.
    """
    rows = _about_run(run, check, entry)
    scope = _RunScope(run, registry)
    read_calls = calls or not _calls_add_nothing(scope, refs)
    for line, rec in _ledger_records(run, calls=read_calls):
        table, make = _RECORD_ROWS[rec["type"]]
        row = make(scope, line, rec)  # also registers the cells and prompts it names
        if calls or table != "calls":
            rows[table].append(row)
    # Every cell and prompt the run uses is in these two, so they register the
    # entities (and the models of the cells, and the tasks of the prompts).
    ids = registry.provisional
    for cell, (declared, settings) in scope.run_cells.items():
        scope.model_id(cell[3])
        rows["run_cells"].append((run.run_id, ids("cells", cell), declared, settings))
    for prompt, (declared, max_tokens) in scope.run_prompts.items():
        ids("tasks", prompt[0])
        rows["run_prompts"].append((run.run_id, ids("prompts", prompt), declared, max_tokens))
    return rows


# --- the previous export, reused ------------------------------------------------


@dataclass(frozen=True)
class Base:
    """A previous export of the same code, and the input digest of each run it holds.

    Rows of runs whose digest is unchanged are copied from it by SQLite itself
    instead of being read and inserted again from Python.
    """

    path: Path
    run_keys: dict[str, str]


def run_keys(loaded: Loaded) -> dict[str, str]:
    """run id -> digest of everything the export reads for that run.

    The run's content digest covers its metadata and ledger; its check, the
    catalogue's retraction entry and the archive's aliases come from outside
    the run folder, so they count too. Only the parts the tables hold are hashed, through
    ``repr`` (several times faster than JSON): a different text for equal
    values can only cost a needless rewrite, never a stale file.
    """
    entries = {e["id"]: e for e in loaded.catalogue.get("runs", [])}
    out = {}
    for run in loaded.runs:
        rid = run.run_id
        check = loaded.checks[rid]
        items = [(c["id"], c["ok"], c["detail"]) for c in check["checks"]]
        retracted = entries.get(rid, {}).get("retracted")
        # the publisher's aliases decide the canonical node, engine and model names
        text = repr((rid, run.digest, check["verdict"], items, retracted, run.aliases.key))
        out[rid] = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return out


def _base_entities(con: sqlite3.Connection) -> dict[str, dict[int, Any]]:
    """The previous export's surrogate keys -> natural keys, per mapped entity."""
    nodes = {row[0]: tuple(row[1:]) for row in con.execute("SELECT * FROM base.nodes")}
    engines = {row[0]: tuple(row[1:]) for row in con.execute("SELECT * FROM base.engines")}
    models = {row[0]: tuple(row[1:]) for row in con.execute("SELECT * FROM base.models")}

    def opt(table: dict[int, Any], key: int | None) -> Any:
        return None if key is None else table[key]

    cells = {
        key: (cell_id, opt(nodes, node), opt(engines, engine), opt(models, model))
        for key, cell_id, node, engine, model in con.execute("SELECT * FROM base.cells")
    }
    prompts = {
        key: (pid, sha)
        for key, pid, sha in con.execute("SELECT prompt_key, prompt_id, sha256 FROM base.prompts")
    }
    tasks = dict(con.execute("SELECT task_key, name FROM base.tasks"))
    return {"cells": cells, "models": models, "prompts": prompts, "tasks": tasks}


@dataclass
class _Referenced:
    """The entities some runs refer to, by natural key, and their first use of each prompt."""

    cells: set[CellKey]
    models: set[ModelKey]  # besides the cells' models: those only results name
    tasks: set[str]
    first_run: dict[PromptKey, tuple[Any, str]]  # -> (sort order of the run, its id)

    @classmethod
    def of(cls, registry: _Registry) -> _Referenced:
        ids = registry.ids
        return cls(set(ids["cells"]), set(ids["models"]), set(ids["tasks"]), registry.first_run)

    def union(self, other: _Referenced) -> _Referenced:
        first_run = dict(self.first_run)
        for key, seen in other.first_run.items():
            if key not in first_run or seen[0] < first_run[key][0]:
                first_run[key] = seen
        return _Referenced(
            self.cells | other.cells,
            self.models | other.models,
            self.tasks | other.tasks,
            first_run,
        )


def _kept_entities(con: sqlite3.Connection, base: dict[str, dict[int, Any]]) -> _Referenced:
    """What the runs kept from the previous export refer to, read from it."""
    kept = "run_id IN (SELECT run_id FROM temp.kept)"
    used = con.execute(f"SELECT DISTINCT cell_key FROM base.run_cells WHERE {kept}")
    cells = {base["cells"][k] for (k,) in used}
    named = con.execute(
        f"SELECT DISTINCT model_key FROM base.run_model_metrics WHERE {kept} "
        "AND model_key IS NOT NULL"
    )
    models = {base["models"][k] for (k,) in named}
    tasks = con.execute(f"SELECT DISTINCT task_key FROM base.run_model_metrics WHERE {kept}")
    first_run: dict[PromptKey, tuple[Any, str]] = {}
    for key, rid, started in con.execute(
        "SELECT rp.prompt_key, r.run_id, r.started_at_utc FROM base.run_prompts rp "
        f"JOIN base.runs r ON r.run_id = rp.run_id WHERE rp.{kept}"
    ):
        prompt = base["prompts"][key]
        order = (_order(started), rid)
        seen = first_run.get(prompt)
        if seen is None or order < seen[0]:
            first_run[prompt] = (order, rid)
    return _Referenced(cells, models, {base["tasks"][k] for (k,) in tasks}, first_run)


# --- numbering and the entity tables ---------------------------------------------------


def _numbered(keys: Iterable[Any]) -> dict[Any, int]:
    """Surrogate keys 1, 2, ... in the sorted order of the natural keys."""
    return {k: i for i, k in enumerate(sorted(set(keys), key=_order), start=1)}


def _canonical_prompts() -> tuple[dict[str, str], dict[tuple[str, str], str]]:
    """The runner's frozen prompts: sha256 -> text, and (id, sha256) -> intent.

    A text is only ever filled in from its hash, so it is the text the run sent.
    """
    prompts = load_prompts()
    texts = {p.sha256: p.text for p in prompts}
    return texts, {(p.id, p.sha256): p.intent for p in prompts if p.intent}


@dataclass
class _Numbering:
    """The final surrogate keys of every entity, and the entity tables' rows."""

    ids: dict[str, dict[Any, int]]
    rows: dict[str, list[tuple[Any, ...]]]


def _numbering(used: _Referenced) -> _Numbering:
    """Number every entity in the sorted order of its natural key (as a fresh export does)."""
    cell_keys, first_run = used.cells, used.first_run
    models = used.models | {c[3] for c in cell_keys if c[3] is not None}
    node_ids = _numbered(c[1] for c in cell_keys if c[1] is not None)
    engine_ids = _numbered(c[2] for c in cell_keys if c[2] is not None)
    model_ids = _numbered(models)
    cell_ids = _numbered(cell_keys)
    task_ids = _numbered(used.tasks | {pid for pid, _sha in first_run})
    prompt_ids = _numbered(first_run)

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
        "nodes": [(i, *k) for k, i in node_ids.items()],
        "engines": [(i, *k) for k, i in engine_ids.items()],
        "models": [(i, *k) for k, i in model_ids.items()],
        "cells": [
            (i, c[0], opt(node_ids, c[1]), opt(engine_ids, c[2]), opt(model_ids, c[3]))
            for c, i in cell_ids.items()
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
                first_run[(pid, sha)][1],
            )
            for (pid, sha), i in prompt_ids.items()
        ],
    }
    ids = {"cells": cell_ids, "models": model_ids, "prompts": prompt_ids, "tasks": task_ids}
    return _Numbering(ids, rows)


# --- writing -------------------------------------------------------------------------

#: Per-run tables in insertion order: (table, order of its rows, column numbered 1, 2, ...).
PER_RUN: dict[str, tuple[str, str | None]] = {
    "runs": ("run_id", None),
    "run_authors": ("run_id, position", None),
    "run_tags": ("run_id, tag", None),
    "run_checks": ("run_id, position", None),
    "run_cells": ("run_id, cell_key", None),
    "run_prompts": ("run_id, prompt_key", None),
    "calls": ("run_id, line", "call_key"),
    "skips": ("run_id, line", "skip_key"),
    "run_model_metrics": ("run_id, line", "metric_key"),
}
#: Columns holding an entity's surrogate key, and the entity they name.
MAPPED_COLUMNS = {
    "cell_key": "cells",
    "model_key": "models",
    "prompt_key": "prompts",
    "task_key": "tasks",
}
MAPPED = tuple(MAPPED_COLUMNS.values())
BASE, FRESH = 0, 1  # the two sources of staged keys in the map tables
BATCH_ROWS = 50_000


def _table_columns(con: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in con.execute(f"PRAGMA main.table_info({table})")]


def _staged_columns(con: sqlite3.Connection, table: str) -> list[str]:
    """The columns rows of ``table`` carry before the final numbering."""
    numbered = PER_RUN[table][1]
    return [c for c in _table_columns(con, table) if c != numbered]


def _create_staging(con: sqlite3.Connection) -> None:
    for table in PER_RUN:
        columns = ", ".join(_staged_columns(con, table))
        con.execute(
            f"CREATE TEMP TABLE stage_{table} AS SELECT {columns} FROM main.{table} WHERE 0"
        )
    for kind in MAPPED:
        con.execute(
            f"CREATE TEMP TABLE map_{kind} (src INTEGER, old INTEGER, new INTEGER, "
            "PRIMARY KEY (src, old)) WITHOUT ROWID"
        )
    con.execute("CREATE TEMP TABLE kept (run_id TEXT PRIMARY KEY)")


class _Stager:
    """Buffers rows of the runs read from their files into the staging tables."""

    def __init__(self, con: sqlite3.Connection):
        self.con = con
        self.pending: dict[str, list[tuple[Any, ...]]] = {t: [] for t in PER_RUN}
        self.count = 0

    def add(self, rows: dict[str, list[tuple[Any, ...]]]) -> None:
        for table, table_rows in rows.items():
            self.pending[table] += table_rows
            self.count += len(table_rows)
        if self.count >= BATCH_ROWS:
            self.flush()

    def flush(self) -> None:
        for table, table_rows in self.pending.items():
            if table_rows:
                marks = ", ".join("?" * len(table_rows[0]))
                _insert(self.con, f"INSERT INTO temp.stage_{table} VALUES ({marks})", table_rows)
                table_rows.clear()
        self.count = 0


def _insert(con: sqlite3.Connection, sql: str, rows: list[tuple[Any, ...]]) -> None:
    con.executemany(sql, rows)


def _fill_maps(
    con: sqlite3.Connection,
    numbering: _Numbering,
    fresh: _Registry,
    base: dict[str, dict[int, Any]] | None,
) -> None:
    """Staged key -> final key, for provisional ids and for the previous export's keys."""
    for kind in MAPPED:
        final = numbering.ids[kind]
        rows = [(FRESH, old, final[key]) for key, old in fresh.ids[kind].items()]
        if base is not None:
            rows += [(BASE, old, final[key]) for old, key in base[kind].items() if key in final]
        _insert(con, f"INSERT INTO temp.map_{kind} VALUES (?, ?, ?)", rows)


def _merge(con: sqlite3.Connection, table: str, *, with_base: bool) -> None:
    """Insert the staged and the kept rows of ``table`` in their final order and keys.

    Every export, fresh or not, runs this same statement, so the same rows
    give the same file whichever way they came.
    """
    order = PER_RUN[table][0]
    staged = _staged_columns(con, table)
    names = ", ".join(staged)
    sources = [f"SELECT {FRESH} AS src, {names} FROM temp.stage_{table}"]
    if with_base:
        sources.insert(
            0,
            f"SELECT {BASE} AS src, {names} FROM base.{table} "
            "WHERE run_id IN (SELECT run_id FROM temp.kept)",
        )
    values = [
        f"(SELECT new FROM temp.map_{MAPPED_COLUMNS[c]} m WHERE m.src = s.src AND m.old = s.{c})"
        f" AS {c}"
        if c in MAPPED_COLUMNS
        else c
        for c in staged
    ]
    # The numbered column is left to SQLite: rows arrive in their final order,
    # so it counts 1, 2, ... as a fresh export numbers them.
    con.execute(
        f"INSERT INTO main.{table} ({names}) SELECT {', '.join(values)} "
        f"FROM ({' UNION ALL '.join(sources)}) AS s ORDER BY {order}"
    )


def _kept_runs(loaded: Loaded, base: Base | None, keys: dict[str, str] | None) -> set[str]:
    """The runs whose rows can be copied from ``base``: same id, same inputs."""
    if base is None:
        return set()
    current = keys if keys is not None else run_keys(loaded)
    return {rid for rid, key in current.items() if base.run_keys.get(rid) == key}


def _stage_fresh(
    con: sqlite3.Connection, loaded: Loaded, kept: set[str], *, calls: bool
) -> _Registry:
    """Read every run not kept from its files into the staging tables."""
    registry = _Registry()
    stager = _Stager(con)
    entries = {e["id"]: e for e in loaded.catalogue.get("runs", [])}
    fresh = sorted((r for r in loaded.runs if r.run_id not in kept), key=lambda r: r.run_id)
    refs = {} if calls else _call_refs(loaded.calls, {r.run_id for r in fresh})
    for run in fresh:
        check, entry = loaded.checks[run.run_id], entries.get(run.run_id, {})
        stager.add(_run_rows(run, check, entry, registry, refs.get(run.run_id), calls=calls))
    stager.flush()
    return registry


def _insert_rows(con: sqlite3.Connection, table: str, rows: list[tuple[Any, ...]]) -> None:
    if rows:
        marks = ", ".join("?" * len(rows[0]))
        _insert(con, f"INSERT INTO main.{table} VALUES ({marks})", rows)


def _export(
    con: sqlite3.Connection,
    loaded: Loaded,
    *,
    calls: bool,
    base: Base | None,
    keys: dict[str, str] | None,
) -> None:
    """Fill the new database (its schema in place) in one transaction."""
    kept = _kept_runs(loaded, base, keys)
    _create_staging(con)
    if base is not None and kept:
        # Outside the transaction: SQLite attaches and detaches only there.
        con.execute("ATTACH DATABASE ? AS base", (str(base.path),))
    con.execute("BEGIN")
    base_ids = None
    used = _Referenced(set(), set(), set(), {})
    if base is not None and kept:
        _insert(con, "INSERT INTO temp.kept VALUES (?)", [(rid,) for rid in sorted(kept)])
        base_ids = _base_entities(con)
        used = _kept_entities(con, base_ids)
    registry = _stage_fresh(con, loaded, kept, calls=calls)
    numbering = _numbering(used.union(_Referenced.of(registry)))
    _fill_maps(con, numbering, registry, base_ids)
    calls_table = "complete" if calls else "omitted"
    meta = [("format", FORMAT), ("schema_version", str(SCHEMA_VERSION))]
    _insert_rows(con, "meta", [*meta, ("calls_table", calls_table)])
    for table in ENTITIES:
        _insert_rows(con, table, numbering.rows[table])
    for table in PER_RUN:
        _merge(con, table, with_base=base_ids is not None)
    con.execute("COMMIT")
    if base_ids is not None:
        con.execute("DETACH DATABASE base")


#: Entity tables, inserted before the per-run tables that refer to them.
ENTITIES = ("nodes", "engines", "models", "cells", "tasks", "prompts")


def _write(
    path: Path,
    loaded: Loaded,
    *,
    calls: bool,
    base: Base | None,
    keys: dict[str, str] | None,
) -> None:
    con = sqlite3.connect(path, isolation_level=None)
    try:
        # Before the first table: the page size is fixed when the file is created.
        con.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        # A bulk load into a scratch file that is renamed into place only when
        # complete: no journal and no syncs needed. References are checked
        # once, at the end, rather than row by row.
        con.execute("PRAGMA journal_mode = OFF")
        con.execute("PRAGMA synchronous = OFF")
        con.execute("PRAGMA foreign_keys = OFF")
        con.executescript(DDL)
        _export(con, loaded, calls=calls, base=base, keys=keys)
        broken = con.execute("PRAGMA main.foreign_key_check").fetchall()
        if broken:
            raise BuildError(f"{path}: relational export has dangling references: {broken[:5]}")
        con.executescript(INDEXES)
    finally:
        con.close()


def write_sqlite(
    path: Path,
    loaded: Loaded,
    *,
    calls: bool = True,
    base: Base | None = None,
    keys: dict[str, str] | None = None,
) -> None:
    """Write the whole archive as a SQLite database at ``path``, atomically.

    ``calls=False`` leaves the ``calls`` table empty (its rows are then only in
    the Parquet downloads). With ``base``, a previous export written by the same
    code with the same ``calls``, the rows of unchanged runs are copied from it;
    the file is byte-identical to one written without it. ``keys`` are this
    archive's ``run_keys``, when the caller has them already. The same archive
    gives a byte-identical file, so the download can be checksummed and cached
    like every other published file.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise BuildError(f"{path}: cannot write: {exc.strerror or exc}") from None
    tmp = Path(name)
    try:
        _write(tmp, loaded, calls=calls, base=base, keys=keys)
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
