"""Ledger call lines checked column by column: the fast path of the ledger read.

The line-by-line check (sitegen.ledger.LineCheck) costs about 9 µs of CPython
a line, most of a cold read of a large archive. Here a batch of ledgers is
split into lines and decoded by Polars in one pass, and each call line is
*proved* valid with column expressions:

- the line must equal, byte for byte, the compact JSON encoding of the record
  Polars decoded from it, with the keys of its ledger's first call line in
  their order. So the line holds exactly those keys, once each, every value
  of the kind its column reads (a number in a string field would come back
  quoted) and every number as written (no integer beyond 64 bits, no float
  rounded off); Polars refuses malformed JSON itself;
- the schema's rules (required, null, enum, bounds, lengths, timestamps) and
  the timing rule run as column expressions, made from the schema.

A line not proved valid goes to LineCheck, which finds and names its problem;
a ledger Polars cannot read cleanly goes to the line-by-line pre-pass whole.
So every verdict is the line-by-line check's; tests hold the two equal.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
import polars as pl

from sitegen import schema
from sitegen.exceptions import Problem
from sitegen.fsutil import read_hashed
from sitegen.ledger import (
    CALL_SCHEMA,
    RECORD_SCHEMAS,
    TIMING_EPSILON_MS,
    LedgerSummary,
    LineCheck,
)

# Ledgers per Polars batch: a line Polars refuses sends its whole batch to the
# line-by-line check, and a batch's text is held in memory about three times.
BATCH_FILES = 256
_PREFIX = '{"type":"call",'
_NO_RULE = {"description", "title", "$comment", "examples"}
# A time every Python ``datetime.fromisoformat`` reads, with a zone.
_STAMP = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
    r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)
_RULES: dict[type[pl.DataType], set[str]] = {
    pl.String: {"const", "enum", "minLength", "maxLength", "format"},
    pl.Float64: {"const", "enum", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"},
    pl.Int64: {"const", "enum", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"},
    pl.Boolean: {"const", "enum"},
}


@dataclass(frozen=True)
class _Prop:
    """One property of the call schema, as the column check reads it."""

    name: str
    nullable: bool
    rules: tuple[tuple[str, Any], ...]  # (keyword, value) besides type
    dtype: pl.DataType | None  # its column's type; None: an object, typed by the sample
    checkable: bool  # every keyword is one the column check knows


def _prop(name: str, spec: dict[str, Any]) -> _Prop:
    declared = spec.get("type")
    if isinstance(declared, str):
        kinds = {declared}
    elif isinstance(declared, list):
        kinds = set(declared)
    elif "const" in spec:
        kinds = {schema.json_type(spec["const"])}
    elif isinstance(spec.get("enum"), list):
        kinds = {schema.json_type(v) for v in spec["enum"]}
    else:
        kinds = {"any"}
    if "integer" in kinds and "number" in kinds:
        kinds.discard("integer")
    values = kinds - {"null"}
    dtype: pl.DataType | None = {
        "string": pl.String(),
        "number": pl.Float64(),
        "integer": pl.Int64(),
        "boolean": pl.Boolean(),
    }.get(next(iter(values)) if len(values) == 1 else "")
    rules = tuple((k, v) for k, v in spec.items() if k not in _NO_RULE and k != "type")
    allowed = _RULES.get(type(dtype), set()) if dtype is not None else set()
    checkable = (dtype is not None or values == {"object"}) and all(
        k in allowed and (k != "format" or v in ("iso-date-time", "date-time")) for k, v in rules
    )
    return _Prop(name, "null" in kinds, rules, dtype, checkable)


@dataclass(frozen=True)
class _CallSchema:
    props: dict[str, _Prop]
    required: frozenset[str]
    open: bool  # keys the schema does not name are allowed


@cache
def _call_schema() -> _CallSchema:
    doc = schema.load(RECORD_SCHEMAS["call"])
    props = {k: _prop(k, v) for k, v in doc.get("properties", {}).items()}
    for name, dtype in CALL_SCHEMA.items():
        # The call rows are read with CALL_SCHEMA's types: the schema must agree.
        if props[name].dtype != dtype:
            raise AssertionError(f"{name}: the call schema and CALL_SCHEMA disagree")
    return _CallSchema(
        props, frozenset(doc.get("required", ())), doc.get("additionalProperties", True) is True
    )


# --- templates: the keys a ledger's call lines are written with ----------------------


def _dtype_of(value: Any) -> pl.DataType | None:
    """The column type that reads a sample value back as written; None: none does."""
    if isinstance(value, dict):
        fields = {k: _dtype_of(v) for k, v in value.items()}
        if not fields or any(t is None for t in fields.values()):
            return None
        return pl.Struct({k: t for k, t in fields.items() if t is not None})
    if isinstance(value, bool):
        return pl.Boolean()
    if isinstance(value, int):
        return pl.Int64()
    if isinstance(value, float):
        return pl.Float64()
    if isinstance(value, str) or value is None:
        return pl.String()
    return None


def _template(record: Any, cs: _CallSchema, dtypes: dict[str, pl.DataType]) -> tuple[str, ...]:
    """The keys of a ledger's first call line, when its lines can be proved by
    column (adding each key's type to ``dtypes``); () when they cannot."""
    if not isinstance(record, dict) or not cs.required <= record.keys():
        return ()
    wanted: dict[str, pl.DataType] = {}
    for key, value in record.items():
        prop = cs.props.get(key)
        if prop is None and not cs.open:
            return ()
        if prop is not None and not prop.checkable:
            return ()
        dtype = prop.dtype if prop is not None and prop.dtype is not None else _dtype_of(value)
        if dtype is None:
            return ()
        held = dtypes.get(key)
        if held is not None and held != dtype:
            if prop is None and {held, dtype} == {pl.Int64(), pl.Float64()}:
                dtype = pl.Float64()  # integers in one ledger, floats in another
            else:
                return ()
        wanted[key] = dtype
    dtypes.update(wanted)
    return tuple(record)


@dataclass
class _Templates:
    """The key lists a batch's call lines are written with, and where each applies."""

    keys: list[tuple[str, ...]]  # by template number
    where: pl.DataFrame  # file, _nk (count of '":' in a line), _tid (template number)
    dtypes: dict[str, pl.DataType]  # column types that decode every template


def _templates(frame: pl.DataFrame) -> _Templates:
    """One template per ledger and number of keys (a cold call line may carry a key
    warm ones leave out): the keys of the first such call line."""
    cs = _call_schema()
    dtypes: dict[str, pl.DataType] = dict(CALL_SCHEMA)
    ids: dict[tuple[str, ...], int] = {}
    rows: list[tuple[int, int, int]] = []
    firsts = frame.filter(pl.col("line").str.starts_with(_PREFIX)).unique(
        ["file", "_nk"], keep="first", maintain_order=True
    )
    for index, count, text in firsts.select("file", "_nk", "line").iter_rows():
        try:
            record = json.loads(text)
        except ValueError:
            continue
        keys = _template(record, cs, dtypes)
        if keys:
            rows.append((index, count, ids.setdefault(keys, len(ids))))
    where = pl.DataFrame(
        rows, schema={"file": pl.UInt32, "_nk": pl.UInt32, "_tid": pl.UInt32}, orient="row"
    )
    return _Templates(list(ids), where, dtypes)


# --- the per-line proof -------------------------------------------------------------


def _rule(v: pl.Expr, keyword: str, arg: Any) -> pl.Expr:
    """True where the decoded value ``v`` (not null) keeps one schema rule."""
    if keyword == "const":
        return v.eq(arg)
    if keyword == "enum":
        return v.is_in([a for a in arg if a is not None])
    if keyword == "minimum":
        return v.ge(arg)
    if keyword == "maximum":
        return v.le(arg)
    if keyword == "exclusiveMinimum":
        return v.gt(arg)
    if keyword == "exclusiveMaximum":
        return v.lt(arg)
    if keyword == "minLength":
        return v.str.len_chars().ge(arg)
    if keyword == "maxLength":
        return v.str.len_chars().le(arg)
    if keyword == "format":  # iso-date-time or date-time: a zoned stamp proves both
        parsed = v.str.slice(0, 19).str.strptime(pl.Datetime, "%Y-%m-%dT%H:%M:%S", strict=False)
        return v.str.contains(_STAMP) & parsed.is_not_null()
    raise AssertionError(keyword)


def _valid(keys: tuple[str, ...], dtypes: dict[str, pl.DataType]) -> pl.Expr:
    """True where a line written with ``keys`` (read with ``dtypes``) is the compact
    encoding of its decoded record and keeps every rule of the call schema."""
    cs = _call_schema()
    ok = [pl.struct(list(keys)).struct.json_encode() == pl.col("line")]
    for key in keys:
        prop = cs.props.get(key)
        if prop is None:
            continue
        v = pl.col(key)
        if prop.dtype is None and not isinstance(dtypes[key], pl.Struct):
            # An object the sample line did not give: a number or a string read back
            # as written is still not an object. Only null is proved.
            ok.append(v.is_null())
        if not prop.nullable:
            ok.append(v.is_not_null())
        for keyword, arg in prop.rules:
            ok.append(v.is_null() | _rule(v, keyword, arg))
    # What a schema cannot say: the first event cannot come after the last.
    total = pl.col("total_duration_ms") + TIMING_EPSILON_MS
    for first in ("first_delta_ms", "ttft_ms"):
        ok.append(pl.col(first).is_null() | total.is_null() | (pl.col(first) <= total))
    return pl.all_horizontal(ok).fill_null(False)


def _proved(
    frame: pl.DataFrame, decoded: pl.DataFrame, templates: _Templates, max_line_bytes: int
) -> pl.Series:
    """Which lines are proved valid call records."""
    line = pl.col("line")
    candidate = line.str.starts_with(_PREFIX) & (line.str.len_bytes() <= max_line_bytes)
    both = (
        pl.concat([frame.select("file", "line", "_nk"), decoded], how="horizontal")
        .with_row_index("_row")
        .filter(candidate)
        .join(templates.where, on=["file", "_nk"], how="inner")
    )
    out = np.zeros(frame.height, dtype=bool)
    for tid, keys in enumerate(templates.keys):
        picked = both.lazy().filter(pl.col("_tid") == tid).filter(_valid(keys, templates.dtypes))
        out[picked.select("_row").collect()["_row"].to_numpy()] = True
    return pl.Series("proved", out)


def _lines(data: list[bytes]) -> pl.DataFrame:
    """One row per line: ``file`` (index), ``no`` (1-based), ``line`` and ``_nk``
    (the count of ``":`` in it, which tells a template's lines); the empty piece
    after a final newline is not a line. A file that is not UTF-8 is one
    row whose line is null. (Polars checks the encoding: decoding in Python and
    handing Polars the strings cost twice as much.)"""
    frame = pl.DataFrame(
        {"file": pl.Series(range(len(data)), dtype=pl.UInt32), "line": _texts(data)}
    ).with_columns(pl.col("line").str.split("\n"))
    frame = frame.explode("line").with_columns(
        no=pl.int_range(1, pl.len() + 1, dtype=pl.UInt32).over("file"),
        last=pl.len().over("file"),
    )
    line = pl.col("line")  # null: the file is not UTF-8 (kept: the filter drops a null)
    return frame.filter(line.is_null() | (pl.col("no") < pl.col("last")) | (line != "")).select(
        "file", "no", "line", _nk=pl.col("line").str.count_matches('":', literal=True)
    )


def _texts(data: list[bytes]) -> pl.Series:
    """The files as text; null for each one that is not UTF-8."""
    try:
        return pl.Series(data, dtype=pl.Binary).cast(pl.String)
    except pl.exceptions.PolarsError:  # one file is not: find which, one by one
        return pl.Series([_utf8_or_none(d) for d in data], dtype=pl.String)


def _utf8_or_none(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _decode(data: list[bytes], dtypes: dict[str, pl.DataType]) -> pl.DataFrame:
    """Every line of the batch read with the given column types (one row a line)."""
    whole = b"".join(d if d.endswith(b"\n") else d + b"\n" for d in data)
    return pl.read_ndjson(io.BytesIO(whole), schema=dtypes)


@dataclass
class Checked:
    """What the column check found for a batch of ledgers."""

    results: dict[str, tuple[LedgerSummary, list[Problem]]]  # path -> verdict
    whole: list[tuple[str, str]]  # ledgers (path, display) for the line-by-line pre-pass
    # path -> (stat stamp, sha256) of every ledger read; one whose summary is
    # already stored (by sha256) is hashed only, not checked
    hashed: dict[str, tuple[list[int], str]]
    # call rows of the valid ledgers: ``_file`` (an index into ``files``) first
    calls: pl.DataFrame | None = None
    files: list[str] = field(default_factory=list)  # the paths ``_file`` counts
    # the valid ledgers, whose call rows ``calls`` holds (maybe none)
    read: list[str] = field(default_factory=list)


def _read(
    jobs: Sequence[tuple[str, str]],
    known: Callable[[str], bool],
    hashed: dict[str, tuple[list[int], str]],
) -> tuple[list[_Ledger], list[tuple[str, str]]]:
    """The ledgers to check, and those that cannot be read (path, display).

    Each ledger read is hashed into ``hashed`` from the same bytes (hashing
    lets go of the interpreter lock): the build reads each ledger once. One
    whose sha256 is ``known`` (its summary is stored) is not checked again.
    """
    read: list[_Ledger] = []
    whole: list[tuple[str, str]] = []
    for path, display in jobs:
        try:
            stamp, digest, raw = read_hashed(path)
        except OSError:
            whole.append((path, display))  # the pre-pass names the problem
            continue
        hashed[path] = (stamp, digest)
        if not known(digest):
            read.append(_Ledger(path, display, raw))
    return read, whole


@dataclass(eq=False)  # compared by identity
class _Ledger:
    path: str
    display: str
    data: bytes


def _decodable(
    ledgers: list[_Ledger], frame: pl.DataFrame | None = None
) -> tuple[list[_Ledger], pl.DataFrame, _Templates, pl.DataFrame | None]:
    """The ledgers, their lines (``frame`` when given: ``_lines`` of exactly these
    ledgers), templates and decoded rows; when Polars cannot read the batch or
    passes over a line, the decoded rows are None."""
    if frame is None:
        frame = _lines([ledger.data for ledger in ledgers])
    templates = _templates(frame)
    try:
        decoded = _decode([ledger.data for ledger in ledgers], templates.dtypes)
    except (pl.exceptions.PolarsError, ValueError):
        return ledgers, frame, templates, None
    return ledgers, frame, templates, decoded if decoded.height == frame.height else None


def check_batch(
    jobs: Sequence[tuple[str, str]],
    max_line_bytes: int,
    known: Callable[[str], bool] = lambda sha: False,
) -> Checked:
    """Check the ledgers ``jobs`` (path, display path) of one batch, but for those
    whose sha256 is ``known``."""
    hashed: dict[str, tuple[list[int], str]] = {}
    ledgers, whole = _read(jobs, known, hashed)
    if not ledgers:
        return Checked({}, whole, hashed)
    lines = _lines([ledger.data for ledger in ledgers])
    # Not UTF-8; or a blank line, which Polars passes over (shifting every line after it).
    line = pl.col("line")
    blank = set(lines.filter(line.is_null() | (line.str.strip_chars() == ""))["file"].to_list())
    if blank:
        whole += [(x.path, x.display) for i, x in enumerate(ledgers) if i in blank]
        ledgers = [x for i, x in enumerate(ledgers) if i not in blank]
        if not ledgers:
            return Checked({}, whole, hashed)
    # the lines already split serve unless a ledger left (the file numbers changed)
    ledgers, frame, templates, decoded = _decodable(ledgers, None if blank else lines)
    if decoded is None and len(ledgers) > 1:
        # Find the ledgers Polars refuses, one by one; check the rest by column.
        refused = [x for x in ledgers if _decodable([x])[3] is None]
        whole += [(x.path, x.display) for x in refused]
        ledgers, frame, templates, decoded = _decodable([x for x in ledgers if x not in refused])
    if decoded is None:
        return Checked({}, whole + [(x.path, x.display) for x in ledgers], hashed)
    kept = [(x.path, x.display) for x in ledgers]
    del ledgers
    frame = frame.with_columns(
        _proved(frame, decoded, templates, max_line_bytes), err=decoded["error"].is_not_null()
    )
    results: dict[str, tuple[LedgerSummary, list[Problem]]] = {}
    valid: list[int] = []
    extras: list[tuple[int, int, dict[str, Any]]] = []
    for index, (summary, problems, extra) in _verdicts(frame, kept, max_line_bytes):
        results[kept[index][0]] = (summary, problems)
        if not problems:
            valid.append(index)
            extras += [(index, no, record) for no, record in extra]
    paths = [path for path, _display in kept]
    calls = _calls(decoded, frame, valid, extras)
    return Checked(results, whole, hashed, calls, paths, [paths[i] for i in valid])


def _calls(
    decoded: pl.DataFrame,
    frame: pl.DataFrame,
    valid: list[int],
    extras: list[tuple[int, int, dict[str, Any]]],
) -> pl.DataFrame:
    """read_calls' rows and columns for the valid ledgers: ``_file``, then the call
    columns, each ledger's calls in line order. The caller names the files: a
    column of paths, filtered and mapped to run ids later, cost a third of a
    second at 10,000 runs, where mapping 256 numbers a batch costs nothing."""
    proved = (
        decoded.select(*CALL_SCHEMA)
        .with_columns(_file=frame["file"], _no=frame["no"])
        .filter(frame["proved"] & frame["file"].is_in(valid))
    )
    if extras:
        rows = pl.DataFrame(
            {name: [rec.get(name) for _f, _n, rec in extras] for name in CALL_SCHEMA},
            schema=CALL_SCHEMA,
            strict=False,
        ).with_columns(
            _file=pl.Series([f for f, _n, _r in extras], dtype=pl.UInt32),
            _no=pl.Series([n for _f, n, _r in extras], dtype=pl.UInt32),
        )
        # lines the line-by-line check read go back in their place (the rest are in order)
        proved = pl.concat([proved, rows], how="vertical").sort("_file", "_no")
    proved = proved.filter(pl.col("phase").is_in(["cold", "warm"]))
    return proved.select("_file", *CALL_SCHEMA)


def _verdicts(
    frame: pl.DataFrame, kept: list[tuple[str, str]], max_line_bytes: int
) -> Iterator[tuple[int, tuple[LedgerSummary, list[Problem], list[tuple[int, dict[str, Any]]]]]]:
    """Each ledger's verdict: proved lines counted in blocks, every other line checked
    by LineCheck in order (so the rules of a line's place apply to both)."""
    others = frame.filter(~pl.col("proved")).select("file", "no", "line")
    proved = frame.filter(pl.col("proved")).select("file", "no", "err")
    p_file = proved["file"].to_numpy()
    p_no = proved["no"].to_numpy()
    p_err = np.concatenate([[0], np.cumsum(proved["err"].to_numpy(), dtype=np.int64)])
    p_starts = np.searchsorted(p_file, np.arange(len(kept) + 1))
    counts = frame.group_by("file").len()
    lines = dict(zip(counts["file"].to_list(), counts["len"].to_list(), strict=True))
    o_file = others["file"].to_list()
    o_no = others["no"].to_list()
    o_line = others["line"].to_list()
    j = 0
    for index, (_path, display) in enumerate(kept):
        check = LineCheck(display, max_line_bytes=max_line_bytes)
        extra: list[tuple[int, dict[str, Any]]] = []
        lo, end = int(p_starts[index]), int(p_starts[index + 1])
        while j < len(o_file) and o_file[j] == index:
            hi = lo + int(np.searchsorted(p_no[lo:end], o_no[j]))
            check.proved_calls(int(p_no[lo]) if hi > lo else 0, hi - lo, int(p_err[hi] - p_err[lo]))
            lo = hi
            record = check.line(o_no[j], o_line[j].encode())
            if record is not None:
                extra.append((o_no[j], record))
            j += 1
        if end > lo:
            check.proved_calls(int(p_no[lo]), end - lo, int(p_err[end] - p_err[lo]))
        summary, problems = check.finish(lines.get(index, 0))
        yield index, (summary, problems, extra)
