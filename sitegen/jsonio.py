"""Strict JSON in, canonical JSON out.

Every JSON file sitegen reads from an archive or an import goes through
:func:`decode`, which is strict where Python's json is lenient:

- duplicate keys, NaN and Infinity are errors (json accepts them silently);
- nesting deeper than :data:`MAX_DEPTH` levels is an error, found by a bracket
  scan before parsing (json recurses, and 10,000 levels crash it);
- a number outside the range of a 64-bit float (``1e400`` silently becomes
  infinity) or an integer outside a signed 64-bit integer is an error, so
  Polars and every downstream reader can hold what validation let through.

Every error carries its offset in the text, so callers report ``file:line:col``.
Canonical output: sorted keys, two-space indent, UTF-8, one trailing newline,
so the same data always gives the same bytes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sitegen.exceptions import Problem

if TYPE_CHECKING:
    from sitegen.buildstate import Memo

MAX_DEPTH = 64
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_SHOWN = 40


class DuplicateKeyError(ValueError):
    """A JSON object repeats a key (which value would count is ambiguous)."""


class JsonError(ValueError):
    """Why a JSON text was refused, and where (0-based offset, when known).

    ``kind`` is "syntax" (``reason`` then holds json's own words), "duplicate"
    (``reason``: the key), "depth" or "number", for callers with their own wording.
    """

    def __init__(
        self, message: str, offset: int | None = None, kind: str = "syntax", reason: str = ""
    ):
        super().__init__(message)
        self.message = message
        self.offset = offset
        self.kind = kind
        self.reason = reason or message


class _NumberError(ValueError):
    def __init__(self, literal: str, message: str):
        super().__init__(message)
        self.literal = literal


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
    raise _NumberError(name, f"{name} is not valid JSON (NaN and Infinity are not allowed)")


def _literal(text: str) -> str:
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


def _checked_float(text: str) -> float:
    value = float(text)
    if value - value != 0:  # inf or nan
        raise _NumberError(text, f"number {_literal(text)} is outside the range of a 64-bit float")
    return value


def _checked_int(text: str) -> int:
    if len(text) < 19:
        return int(text)
    # Past 20 characters it cannot fit; not converting also spares int() its
    # own refusal of 4,300+ digit numbers.
    value = None if len(text) > 20 else int(text)
    if value is None or not INT64_MIN <= value <= INT64_MAX:
        raise _NumberError(
            text, f"integer {_literal(text)} does not fit in a signed 64-bit integer"
        )
    return value


def _lenient_float(text: str) -> float:
    return float(text)


_CHECKED = json.JSONDecoder(
    object_pairs_hook=reject_duplicates,
    parse_constant=reject_constants,
    parse_float=_checked_float,
    parse_int=_checked_int,
)
# For files of other tools (imports): NaN, Infinity and overflowing floats are
# what those tools write for "no value"; only integers are still bounded.
_LENIENT = json.JSONDecoder(object_pairs_hook=reject_duplicates, parse_int=_checked_int)
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def too_deep(text: str, limit: int = MAX_DEPTH) -> int | None:
    """Offset of the first bracket that opens level ``limit + 1``, or None.

    A scan, not a recursion, so any depth is safe to look at. Brackets inside
    strings do not count.
    """
    if text.count("[") + text.count("{") <= limit:
        return None
    depth = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > limit:
                return match.start()
        elif token in "]}":
            depth -= 1
    return None


def _offset_of(text: str, literal: str) -> int | None:
    """Where a value literal stands in the text (not inside a string, as near as a
    search can tell); the first such place."""
    pattern = re.compile(r"(?<![\w.\"+-])" + re.escape(literal) + r"(?![\w.\"])")
    found = pattern.search(text)
    return found.start() if found else None


def _key_offset(text: str, key: str) -> int | None:
    """Offset of the second occurrence of a key (the repeat), else the first."""
    needle = json.dumps(key, ensure_ascii=False) + ":"
    spaced = re.compile(re.escape(json.dumps(key, ensure_ascii=False)) + r"\s*:")
    hits = [m.start() for m in spaced.finditer(text)]
    if not hits:
        seen = text.find(needle)
        return seen if seen >= 0 else None
    return hits[1] if len(hits) > 1 else hits[0]


def decode(text: str, *, lenient_numbers: bool = False) -> Any:
    """Parse one JSON text strictly; raise :class:`JsonError` with its offset."""
    deep = too_deep(text)
    if deep is not None:
        raise JsonError(f"nesting deeper than {MAX_DEPTH} levels", deep, "depth")
    # The range hooks cost about 2 µs a ledger line; a regex pre-filter cost more.
    decoder = _LENIENT if lenient_numbers else _CHECKED
    try:
        return decoder.decode(text)
    except DuplicateKeyError as exc:
        key = str(exc)
        raise JsonError(
            f"duplicate key {key!r}", _key_offset(text, key), "duplicate", key
        ) from None
    except json.JSONDecodeError as exc:
        raise JsonError(f"malformed JSON: {exc.msg}", exc.pos, "syntax", exc.msg) from None
    except _NumberError as exc:
        raise JsonError(str(exc), _offset_of(text, exc.literal), "number") from None
    except RecursionError:  # not reached after the depth scan; kept as a last guard
        raise JsonError(f"nesting deeper than {MAX_DEPTH} levels", None, "depth") from None
    except ValueError as exc:
        raise JsonError(str(exc), None, "number") from None


def line_col(text: str, offset: int | None) -> tuple[int | None, int | None]:
    """1-based line and column (in characters) of an offset in a text."""
    if offset is None:
        return None, None
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def loads_strict(text: str, display: str) -> tuple[Any, list[Problem]]:
    """Parse JSON text; on failure return ``(None, [problem with line/column])``."""
    try:
        return decode(text), []
    except JsonError as exc:
        line, col = line_col(text, exc.offset)
        return None, [Problem(display, line, col, exc.message)]


def decode_utf8(raw: bytes, display: str) -> tuple[str | None, list[Problem]]:
    """The text of a file's bytes, or a located problem when they are not UTF-8."""
    try:
        return raw.decode("utf-8"), []
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        return None, [Problem(display, line, col, "bytes that are not UTF-8")]


def load_strict(path: Path, display: str) -> tuple[Any, list[Problem]]:
    """Read and parse a JSON file strictly (UTF-8 only)."""
    text, problems = decode_utf8(path.read_bytes(), display)
    if text is None:
        return None, problems
    return loads_strict(text, display)


def key_line(text: str, path: list[str | int]) -> int | None:
    """The line of the value at ``path`` in a JSON text, as near as a search can
    tell: each key is looked for after the previous one (array indices are
    skipped). Used to put a line on problems found after parsing."""
    offset = 0
    found = None
    for part in path:
        if not isinstance(part, str):
            continue
        spaced = re.compile(re.escape(json.dumps(part, ensure_ascii=False)) + r"\s*:")
        match = spaced.search(text, offset)
        if match is None:
            break
        found = offset = match.start()
    return None if found is None else text.count("\n", 0, found) + 1


def dumps(obj: Any) -> str:
    """Canonical JSON text: the byte-identical-on-rebuild form."""
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def dumps_line(obj: Any) -> str:
    """One compact ledger line (no trailing newline)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def dumps_compact(obj: Any) -> str:
    """Canonical JSON without whitespace (sorted keys, one trailing newline): for the
    site's data files that a page fetches, where indentation would double the size."""
    return (
        json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        + "\n"
    )


_HOLE = "\x00"  # stands in for an item in the skeleton; encoded as "\u0000"


@dataclasses.dataclass(frozen=True)
class Encoded:
    """A document in :func:`dumps` form, as UTF-8, and the sha256 of each cached item's text."""

    data: bytes
    item_digests: list[str]
    # the offset just past the line each item ends on: where the publication
    # gate may cut the file into chunks (gate.scan.chunk_ends)
    item_ends: list[int] = dataclasses.field(default_factory=list)


def dumps_items_cached(
    obj: dict[str, Any], field: str, memo: Memo, keys: list[str] | None = None
) -> Encoded:
    """:func:`dumps` of ``obj``, byte for byte, with each item of the list
    ``obj[field]`` encoded once and kept in ``memo`` (catalogue.json's run
    entries: a build that adds one run encodes one entry).

    ``keys`` name each item by what it was made from (the caller's key, which
    must change whenever the item does). Without them, an item's key is the
    sha256 of its pickle, which is exact (an equal pickle is an equal value,
    types and all) and a tenth of the cost of encoding it. Two equal values may
    pickle differently (shared objects), which costs a miss, never a wrong
    text. Each item is encoded alone, then indented to its depth.

    The document is joined as bytes from each item's bytes: at 10,000 runs it is
    about 100 MiB, and a text of it beside the bytes (and beside the items' texts)
    was a few hundred MiB of a build's peak memory.
    """
    items = obj[field]
    if keys is not None and len(keys) != len(items):
        keys = None  # not this list's keys
    blobs: list[bytes] = []
    for i, item in enumerate(items):
        if keys is not None:
            key = "made:" + keys[i]
        else:
            key = hashlib.sha256(pickle.dumps(item, protocol=5)).hexdigest()
        text = memo.get(key)
        if not isinstance(text, str):
            text = dumps(item)[:-1].replace("\n", "\n    ")
            memo.put(key, text)
        blobs.append(text.encode("utf-8"))
    digests = [hashlib.sha256(b).hexdigest() for b in blobs]
    pieces = dumps(obj | {field: [_HOLE] * len(items)}).split('"\\u0000"')
    if len(pieces) != len(items) + 1 or not _at_item_depth(pieces):
        return Encoded(dumps(obj).encode("utf-8"), digests)  # a NUL elsewhere in obj
    out = [pieces[0].encode("utf-8")]
    offset = len(out[0])
    ends: list[int] = []
    for blob, piece in zip(blobs, pieces[1:], strict=True):
        tail = piece.encode("utf-8")
        out += (blob, tail)
        offset += len(blob)
        newline = tail.find(b"\n")
        if newline >= 0:
            ends.append(offset + newline + 1)
        offset += len(tail)
    return Encoded(b"".join(out), digests, ends)


def _at_item_depth(pieces: list[str]) -> bool:
    """Every hole sits where an item of a top-level list does: four spaces in."""
    return all(p.endswith("\n    ") for p in pieces[:-1])
