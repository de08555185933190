"""Strict JSON in, canonical JSON out.

Strict: duplicate keys, NaN and Infinity are errors (Python's json accepts
them silently). Canonical: sorted keys, two-space indent, UTF-8, one trailing
newline, so the same data always gives the same bytes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sitegen.exceptions import Problem


class DuplicateKeyError(ValueError):
    """A JSON object repeats a key (which value would count is ambiguous)."""


def reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` for json.loads that refuses repeated keys."""
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise DuplicateKeyError(key)
        obj[key] = value
    return obj


def reject_constants(name: str) -> Any:
    """``parse_constant`` for json.loads that refuses NaN and Infinity."""
    raise ValueError(f"{name} is not valid JSON (NaN and Infinity are not allowed)")


def _key_line(text: str, key: str) -> int | None:
    needle = json.dumps(key) + ":"
    seen = text.find(needle)
    if seen < 0:
        return None
    second = text.find(needle, seen + 1)
    return text.count("\n", 0, second if second >= 0 else seen) + 1


def loads_strict(text: str, display: str) -> tuple[Any, list[Problem]]:
    """Parse JSON text; on failure return ``(None, [problem with line/column])``."""
    try:
        return json.loads(
            text, object_pairs_hook=reject_duplicates, parse_constant=reject_constants
        ), []
    except DuplicateKeyError as exc:
        key = str(exc)
        return None, [Problem(display, _key_line(text, key), None, f"duplicate key {key!r}")]
    except json.JSONDecodeError as exc:
        return None, [Problem(display, exc.lineno, exc.colno, f"malformed JSON: {exc.msg}")]
    except ValueError as exc:
        return None, [Problem(display, None, None, str(exc))]


def load_strict(path: Path, display: str) -> tuple[Any, list[Problem]]:
    """Read and parse a JSON file strictly (UTF-8 only)."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        return None, [Problem(display, line, col, "bytes that are not UTF-8")]
    return loads_strict(text, display)


def dumps(obj: Any) -> str:
    """Canonical JSON text: the byte-identical-on-rebuild form."""
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def dumps_line(obj: Any) -> str:
    """One compact ledger line (no trailing newline)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
