"""The run ledger: one JSON record per line, each flushed to disk as it completes.

While a run is going the ledger lives at ``<archive>/ledgers/<run_id>.jsonl``.
Every line is written with one ``write`` call, then flushed and fsync'd, so a
Ctrl-C, a server crash or a killed runner leaves every finished call on disk
and at worst one torn final line (which :func:`read_ledger` drops).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from sitegen.exceptions import Problem, RunnerError

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
SCHEMAS = {
    "meta": "ledger-meta.v1.json",
    "call": "ledger-call.v1.json",
    "skip": "ledger-skip.v1.json",
    "result": "ledger-result.v1.json",
    "end": "ledger-end.v1.json",
}


def finite(value: Any) -> Any:
    """``value`` with NaN and infinities replaced by None (strict JSON has neither).

    Servers' own timing objects occasionally carry them; Python's json would
    write them as bare ``NaN``, which the archive's readers reject.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


def dumps(record: dict[str, Any]) -> str:
    """The ledger line format: compact, UTF-8, strict JSON."""
    return json.dumps(finite(record), ensure_ascii=False, separators=(",", ":"), allow_nan=False)


@cache
def _validator(kind: str) -> Any:
    import fastjsonschema

    text = (SCHEMA_DIR / SCHEMAS[kind]).read_text("utf-8")
    return fastjsonschema.compile(json.loads(text))


def validate(record: dict[str, Any]) -> str | None:
    """The schema error for ``record``, or None when it is valid."""
    kind = record.get("type")
    if kind not in SCHEMAS:
        return f"unknown record type {kind!r}"
    import fastjsonschema

    try:
        _validator(kind)(record)
    except fastjsonschema.JsonSchemaValueException as exc:
        return f"{kind} record: {exc.message}"
    return None


#: The file in a packaged run holding each call's generated text, one JSON line per call.
RESPONSES = "responses.jsonl"
#: Its name beside a ledger being recorded (``<id>.responses.ndjson``): not ``.jsonl``,
#: so ``ledgers/*.jsonl`` still names ledgers only.
RESPONSES_BESIDE_LEDGER = "responses.ndjson"


class LedgerWriter:
    """Append-only, durable JSON-lines file. Refuses records that break the schema
    (``check``: the ledger's by default; None for files beside the ledger)."""

    def __init__(self, path: Path, check: Callable[[dict[str, Any]], str | None] | None = None):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._check = validate if check is None else check
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        self.lines = 0

    def write(self, record: dict[str, Any]) -> None:
        """Validate, append one line, flush and fsync."""
        problem = self._check(record)
        if problem:
            raise RunnerError(f"internal error: refusing to write an invalid record: {problem}")
        data = (dumps(record) + "\n").encode("utf-8")
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        os.fsync(self._fd)
        self.lines += 1

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> LedgerWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Ledger:
    """A ledger read back: its records by kind and what was wrong with it."""

    path: Path
    meta: dict[str, Any]
    records: list[dict[str, Any]]
    end: dict[str, Any] | None
    dropped_tail: bool = False
    raw_lines: list[str] = field(default_factory=list)

    @property
    def calls(self) -> list[dict[str, Any]]:
        """The call records, in ledger order."""
        return [r for r in self.records if r.get("type") == "call"]

    @property
    def skips(self) -> list[dict[str, Any]]:
        """The skip records."""
        return [r for r in self.records if r.get("type") == "skip"]

    @property
    def interrupted(self) -> bool:
        """No end record, or an end record saying the runner was stopped."""
        return self.end is None or bool(self.end.get("interrupted"))


def read_ledger(path: Path) -> Ledger:
    """Read and validate a ledger; a torn last line (killed writer) is dropped."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise RunnerError(f"{path}: ledger not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise RunnerError(f"{path}: cannot read ledger: {exc}") from exc
    lines = text.split("\n")
    complete_last = text.endswith("\n")
    if complete_last:
        lines = lines[:-1]
    records: list[dict[str, Any]] = []
    raw: list[str] = []
    problems: list[Problem] = []
    dropped = False
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            if number == len(lines) and not complete_last:
                dropped = True
                break
            problems.append(
                Problem(
                    str(path),
                    number,
                    exc.colno if hasattr(exc, "colno") else None,
                    f"not JSON: {exc}",
                )
            )
            continue
        if not isinstance(record, dict):
            problems.append(Problem(str(path), number, None, "a record must be a JSON object"))
            continue
        error = validate(record)
        if error:
            problems.append(Problem(str(path), number, None, error))
            continue
        records.append(record)
        raw.append(line)
    if not records or records[0].get("type") != "meta":
        problems.append(Problem(str(path), 1, None, "the first line must be the meta record"))
    if problems:
        raise RunnerError("\n".join(str(p) for p in sorted(problems)))
    meta = records[0]
    end = None
    body = records[1:]
    ends = [i for i, r in enumerate(body) if r.get("type") == "end"]
    if ends:
        if ends[-1] != len(body) - 1 or len(ends) > 1:
            raise RunnerError(f"{path}: the end record must be the last line, once")
        end = body.pop()
    if any(r.get("type") == "meta" for r in body):
        raise RunnerError(f"{path}: more than one meta record")
    return Ledger(path, meta, body, end, dropped, raw)
