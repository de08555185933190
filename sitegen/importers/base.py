"""Shared pieces of every importer: reading a source file, the mapped run, and
the helpers the format modules use to turn source fields into our fields.

A format module only maps; reading, validation messages, privacy checks and
packaging live here and in :mod:`sitegen.importers.assemble`, so all formats
refuse bad input the same way.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

from sitegen.entities import canonical
from sitegen.exceptions import Problem
from sitegen.jsonio import JsonError, decode, line_col
from sitegen.schema import schema_messages


@dataclass(frozen=True)
class Document:
    """A parsed source file. ``rows_lines`` is set for JSON Lines input: the
    1-based line of each row of ``data`` (then a list)."""

    display: str
    raw: bytes
    data: Any
    rows_lines: tuple[int, ...] | None = None

    @property
    def is_jsonl(self) -> bool:
        return self.rows_lines is not None


def _loads(text: str) -> Any:
    """Strict JSON (repeated keys, nesting and integer ranges are checked).

    NaN, Infinity and overflowing floats are accepted here: tools write them
    (vLLM's statistics of zero successful requests), and they become null in
    generated files.
    """
    return decode(text, lenient_numbers=True)


def _duplicate_problem(display: str, text: str, key: str, line: int | None = None) -> Problem:
    if line is None:
        needle = json.dumps(key) + ":"
        first = text.find(needle)
        second = text.find(needle, first + 1) if first >= 0 else -1
        line = text.count("\n", 0, second) + 1 if second >= 0 else None
    return Problem(
        display, line, None, f"duplicate key {json.dumps(key)} in one object (ambiguous)"
    )


def read_document(display: str, raw: bytes) -> Document:
    """Parse JSON, or JSON Lines when the file holds one object a line.

    Raises :class:`SourceUnreadable` carrying the problems when the bytes are neither.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SourceUnreadable(
            [Problem(display, message=f"not UTF-8 text (byte {exc.start}): {exc.reason}")]
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text.strip():
        raise SourceUnreadable([Problem(display, message="file is empty")])
    try:
        return Document(display, raw, _loads(text))
    except JsonError as exc:
        if exc.kind != "syntax" or exc.reason != "Extra data":
            raise SourceUnreadable([_json_problem(display, text, exc, None, "JSON")]) from None
    rows: list[Any] = []
    lines: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(_loads(line))
        except JsonError as exc:
            raise SourceUnreadable(
                [_json_problem(display, line, exc, number, "JSON Lines")]
            ) from None
        lines.append(number)
    return Document(display, raw, rows, tuple(lines))


def _json_problem(
    display: str, text: str, exc: JsonError, number: int | None, what: str
) -> Problem:
    """One located problem for a refused JSON text (``number``: its line in the
    file, for one line of JSON Lines)."""
    if exc.kind == "duplicate":
        return _duplicate_problem(display, text, exc.reason, number)
    line, col = line_col(text, exc.offset)
    if number is not None:
        line = number
    message = f"not valid {what}: {exc.reason}" if exc.kind == "syntax" else exc.message
    return Problem(display, line, col, message)


class SourceUnreadable(Exception):
    """Internal: the source could not be parsed; carries the problems."""

    def __init__(self, problems: list[Problem]):
        super().__init__("\n".join(map(str, problems)))
        self.problems = problems


@cache
def load_schema(name: str) -> dict[str, Any]:
    """One of the importer schemas shipped in ``sitegen/schemas/import``."""
    text = resources.files("sitegen").joinpath("schemas", "import", name).read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)  # every shipped schema is a JSON object
    return schema


def check_schema(
    doc: Document, schema_name: str, row_definition: str | None = None
) -> list[Problem]:
    """Problems of ``doc`` against an importer schema, one per pointer.

    For JSON Lines, each row is checked against ``definitions/<row_definition>``
    and its problems carry the row's line number.
    """
    schema = load_schema(schema_name)
    if doc.rows_lines is None:
        return [Problem(doc.display, message=m) for m in schema_messages(schema, doc.data)]
    if row_definition is None:
        return [Problem(doc.display, message="this format is one JSON document, not JSON Lines")]
    row_schema = {**schema["definitions"][row_definition], "definitions": schema["definitions"]}
    problems: list[Problem] = []
    for row, line in zip(doc.data, doc.rows_lines, strict=True):
        problems.extend(
            Problem(doc.display, line, None, m) for m in schema_messages(row_schema, row)
        )
    return problems


@dataclass
class Target:
    """One thing measured: engine + model on a node (a metadata.json target)."""

    cell_id: str
    node: str | None = None
    engine: str | None = None
    engine_version: str | None = None
    model: str | None = None
    model_digest: str | None = None
    quantization: str | None = None
    parameters: int | None = None
    context_length: int | None = None
    settings: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """The metadata target, with canonical names; a model named by its file keeps
        the file name as ``model_file``."""
        model = canonical("model", self.model)
        out = {
            "cell_id": self.cell_id,
            "node": canonical("node", self.node),
            "engine": canonical("engine", self.engine),
            "engine_version": self.engine_version,
            "model": model,
            "model_digest": self.model_digest,
            "quantization": self.quantization,
            "parameters": self.parameters,
            "context_length": self.context_length,
            "settings": self.settings or None,
        }
        if self.model and model != self.model.strip():
            out["model_file"] = basename(self.model)
        return out


@dataclass
class Mapped:
    """A source file translated into our terms, before packaging.

    ``started_at``/``finished_at`` are set only when the source states them in
    UTC (or with a zone); the ``clock_*`` fields carry the best reading the
    source has for the ledger, which needs a timestamp on its first and last
    line even when the source cannot say when the run finished.
    """

    title: str
    tool: str
    tool_version: str | None
    clock_start: datetime
    started_at: datetime | None
    finished_at: datetime | None = None
    clock_end: datetime | None = None
    clock_note: str | None = None
    description: str | None = None
    git_sha: str | None = None
    git_dirty: bool | None = None
    targets: list[Target] = field(default_factory=list)
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    results: list[dict[str, Any]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    concurrency: int | None = None
    tags: list[str] = field(default_factory=list)
    meta_extra: dict[str, Any] = field(default_factory=dict)
    end_extra: dict[str, Any] = field(default_factory=dict)
    source_extra: dict[str, Any] = field(default_factory=dict)
    authors: list[str] = field(default_factory=list)  # who made the results, if the source says
    errors: int = 0


# --- time -----------------------------------------------------------------


def utc_text(moment: datetime) -> str:
    """ISO 8601 UTC with a trailing Z, to the second (or microsecond when given).

    A moment without a zone (a tool that writes local time) is written without
    the Z: claiming UTC for it would invent the zone.
    """
    if moment.tzinfo is None:
        return moment.isoformat()
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"


def parse_iso(text: str) -> datetime:
    """An ISO 8601 timestamp; naive results mean the source gave no zone."""
    return datetime.fromisoformat(text.strip().replace("z", "Z"))


# --- text clean-up --------------------------------------------------------

_ABS_PATH = re.compile(
    r"(?<![\w:/.~-])(?:~|[A-Za-z]:)?(?:[/\\][^\s/\\\"',;=()\[\]{}]+)*[/\\]([^\s/\\\"',;=()\[\]{}]+)"
)
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@:]+(?::[^/\s@]*)?@")


def scrub_text(text: str) -> str:
    """Drop what must not reach generated files: folders of absolute paths
    (``/home/x/models/m.gguf`` -> ``m.gguf``) and URL credentials."""
    text = _URL_USERINFO.sub(r"\1", text)
    return _ABS_PATH.sub(lambda m: m.group(1) if _is_path(m.group(0)) else m.group(0), text)


def _is_path(text: str) -> bool:
    # "/" alone, "tok/s" and similar never reach here (the look-behind needs a
    # start of word); a single component "/data" is kept, it names no folder.
    return text.count("/") + text.count("\\") >= 2


def scrub(value: Any) -> Any:
    """``scrub_text`` applied to every string value of a JSON value; NaN and
    infinities (not JSON) become null."""
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [scrub(v) for v in value]
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items()}
    return value


def basename(path: str) -> str:
    """The last component of a POSIX or Windows path."""
    return re.split(r"[/\\]", path.rstrip("/\\"))[-1] or path


def slug(text: str, fallback: str = "unknown") -> str:
    """Lower-case words joined by dashes, for node names and run-id parts."""
    words = re.findall(r"[a-z0-9]+", text.lower().replace("+", " plus "))
    return "-".join(words)[:60].strip("-") or fallback


def cell_id(node: str | None, engine: str | None, model: str) -> str:
    """``<node>:<engine>:<model>`` as the harness names cells, in canonical names
    (sitegen.entities: ``llama.cpp`` is ``llamacpp``, ``x.gguf`` is ``x``); unknown
    parts say so."""
    node = canonical("node", node) or "unknown-node"
    engine = canonical("engine", engine) or "unknown-engine"
    return f"{node}:{engine}:{canonical('model', model) or model}"[:512]


SHA_LIKE = re.compile(r"^(sha256:)?[0-9a-fA-F]{7,64}$")


def digest_or_none(value: Any) -> str | None:
    """A revision that pins content (a commit or content hash), else None.

    A tag or branch name ("main", "v1.0") does not identify bytes, so it is
    kept as a setting instead of passing for a digest.
    """
    if isinstance(value, str) and SHA_LIKE.match(value.strip()):
        return value.strip()
    return None


def text_or_none(value: Any) -> str | None:
    """A non-empty string, else None (sources write "" and "unknown" for unknown)."""
    if value is None:
        return None
    text = str(value).strip()
    return None if text.lower() in ("", "unknown", "none", "n/a", "null") else text


def number_or_none(value: Any) -> float | int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def tag_value(value: Any) -> str | int | float | bool | None:
    """A value a result record's tags may hold (scalars; others as compact JSON)."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def result(
    name: str,
    metric: str,
    value: Any,
    *,
    unit: str | None = None,
    stderr: Any = None,
    higher_is_better: bool | None = None,
    passed: bool | None = None,
    duration_s: Any = None,
    model: str | None = None,
    cell: str | None = None,
    tags: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One ``result`` ledger record (ledger-result.v1.json)."""
    record: dict[str, Any] = {
        "type": "result",
        "name": name[:512] or "unnamed",
        "metric": metric[:256] or "value",
        "value": number_or_none(value),
        "unit": unit,
        "stderr": number_or_none(stderr),
        "higher_is_better": higher_is_better,
    }
    if passed is not None:
        record["passed"] = passed
    duration = number_or_none(duration_s)
    if duration is not None and duration >= 0:
        record["duration_s"] = duration
    if model is not None:
        record["model"] = canonical("model", model) or model
    if cell is not None:
        record["cell_id"] = cell
    if tags:
        record["tags"] = {str(k): tag_value(v) for k, v in tags.items()}
    return record
