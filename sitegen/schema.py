"""The package's JSON Schemas, compiled once, and readable error messages.

Validation runs on every ledger line, so the fast path uses fastjsonschema
(compiled to Python). Only when a document fails do we ask jsonschema for the
full list of errors. jsonschema's own messages quote whole Python reprs and
hide where the problem is; here every message starts with a JSON pointer in
``$.a[2].b`` form and says what was expected and what was found, e.g.
``$.results[2].value: expected number, got "0.8"``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any

import fastjsonschema
import jsonschema
from jsonschema.exceptions import ValidationError

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MAX_SHOWN = 60

FORMAT_CHECKER = jsonschema.FormatChecker(formats=())


def parse_time(value: str) -> datetime:
    """A real ISO 8601 date and time (``2026-02-30`` or hour 25 raise ValueError
    saying why); naive when the text has no zone."""
    if "T" not in value.upper():
        raise ValueError("no time part")
    return datetime.fromisoformat(value.replace("z", "Z"))


def time_problem(value: object, *, zone: bool) -> str | None:
    """Why ``value`` is not a usable timestamp, or None when it is (or is no string)."""
    if not isinstance(value, str):
        return None
    try:
        parsed = parse_time(value)
    except ValueError as exc:
        return str(exc)
    if zone and parsed.tzinfo is None:
        return "no time zone"
    return None


def _format_ok(zone: bool) -> Callable[[object], bool]:
    return lambda value: time_problem(value, zone=zone) is None


# "date-time": RFC 3339 asks for a zone (``Z`` or ``+hh:mm``). "iso-date-time":
# a real date and time whose zone the caller checks (imported ledgers may hold
# the local time a tool wrote, as written).
FORMATS: dict[str, Callable[[object], bool]] = {
    "date-time": _format_ok(zone=True),
    "iso-date-time": _format_ok(zone=False),
}
for _name, _check in FORMATS.items():
    FORMAT_CHECKER.checks(_name)(_check)


def pointer(path: Iterable[str | int]) -> str:
    """``["results", 2, "value"]`` -> ``$.results[2].value``; odd keys are quoted."""
    out = "$"
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.match(part):
            out += f".{part}"
        else:
            out += f"[{json.dumps(part, ensure_ascii=False)}]"
    return out


def json_type(value: Any) -> str:
    """The JSON name of a Python value's type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def shown(value: Any) -> str:
    """A short rendering of a found value: scalars as JSON, containers by kind."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    text = json.dumps(value, ensure_ascii=False)
    if len(text) > _MAX_SHOWN:
        text = text[: _MAX_SHOWN - 1] + "…"
    return text


def _type_words(types: str | Sequence[str]) -> str:
    if isinstance(types, str):
        return types
    return " or ".join(types)


def _describe_subschema(schema: Any) -> str | None:
    """Words for one branch of an anyOf/oneOf, when it is simple enough."""
    if not isinstance(schema, dict):
        return None
    if "const" in schema:
        return json.dumps(schema["const"], ensure_ascii=False)
    if "enum" in schema:
        return " or ".join(json.dumps(v, ensure_ascii=False) for v in schema["enum"])
    if "type" in schema:
        return _type_words(schema["type"])
    return None


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def describe(error: ValidationError) -> list[tuple[list[str | int], str]]:
    """(path, message) pairs for one error; an extra-properties error gives one per key."""
    path: list[str | int] = list(error.absolute_path)
    # Errors from iter_errors always carry the instance and the keyword's value
    # (never jsonschema's _utils.Unset placeholder).
    value: Any = error.instance
    kind = error.validator
    arg: Any = error.validator_value
    if kind == "type":
        return [(path, f"expected {_type_words(arg)}, got {shown(value)}")]
    if kind == "required":
        missing = [name for name in arg if isinstance(value, dict) and name not in value]
        return [(path, f"missing required property {json.dumps(m)}") for m in missing] or [
            (path, error.message)
        ]
    if kind == "additionalProperties" and isinstance(value, dict):
        schema = error.schema if isinstance(error.schema, dict) else {}
        allowed = set(schema.get("properties", {}))
        patterns = [re.compile(p) for p in schema.get("patternProperties", {})]
        extras = [k for k in value if k not in allowed and not any(p.search(k) for p in patterns)]
        names = ", ".join(sorted(allowed))
        return [
            ([*path, key], f"unexpected property (allowed here: {names})") for key in extras
        ] or [(path, error.message)]
    if kind == "enum":
        options = ", ".join(json.dumps(v, ensure_ascii=False) for v in arg)
        return [(path, f"expected one of {options}, got {shown(value)}")]
    if kind == "const":
        return [(path, f"expected {json.dumps(arg, ensure_ascii=False)}, got {shown(value)}")]
    if kind == "pattern":
        return [(path, f"expected a string matching {arg}, got {shown(value)}")]
    if kind == "format":
        expected = {
            "date-time": "an ISO 8601 date-time with a time zone",
            "iso-date-time": "an ISO 8601 date-time",
        }.get(arg, f"a {arg}")
        reason = time_problem(value, zone=arg == "date-time") if arg in FORMATS else None
        why = f" ({reason})" if reason else ""
        return [(path, f"expected {expected}, got {shown(value)}{why}")]
    if kind == "minLength":
        return [(path, f"expected at least {_plural(arg, 'character')}, got {shown(value)}")]
    if kind == "maxLength":
        return [(path, f"expected at most {_plural(arg, 'character')}, got {len(value)}")]
    if kind in ("minimum", "exclusiveMinimum"):
        bound = "at least" if kind == "minimum" else "more than"
        return [(path, f"expected a value {bound} {arg}, got {shown(value)}")]
    if kind in ("maximum", "exclusiveMaximum"):
        bound = "at most" if kind == "maximum" else "less than"
        return [(path, f"expected a value {bound} {arg}, got {shown(value)}")]
    if kind == "minItems":
        return [(path, f"expected at least {_plural(arg, 'item')}, got {len(value)}")]
    if kind == "maxItems":
        return [(path, f"expected at most {_plural(arg, 'item')}, got {len(value)}")]
    if kind == "minProperties":
        return [(path, f"expected at least {_plural(arg, 'property')}, got {len(value)}")]
    if kind in ("anyOf", "oneOf"):
        words = [_describe_subschema(s) for s in arg]
        if all(words):
            return [(path, f"expected {' or '.join(w for w in words if w)}, got {shown(value)}")]
    return [(path, error.message)]


def _order_key(instance: Any, path: Sequence[str | int]) -> tuple[int, ...]:
    """Where a path sits in the document, so problems are listed top to bottom."""
    key: list[int] = []
    node = instance
    for part in path:
        if isinstance(node, dict) and part in node:
            key.append(list(node).index(part))
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            key.append(part)
            node = node[part]
        else:
            key.append(1 << 30)
            break
    return tuple(key)


def schema_messages(schema: dict[str, Any], instance: Any) -> list[str]:
    """Every problem of ``instance`` against ``schema``, as ``$.pointer: message`` lines."""
    return [line for _path, line in schema_problems(schema, instance)]


def schema_problems(schema: dict[str, Any], instance: Any) -> list[tuple[list[str | int], str]]:
    """Like :func:`schema_messages`, each line with the path it is about (to locate it)."""
    validator = jsonschema.Draft7Validator(schema, format_checker=FORMAT_CHECKER)
    pairs: list[tuple[list[str | int], str]] = []
    for error in validator.iter_errors(instance):
        pairs.extend(describe(error))
    pairs.sort(key=lambda pair: _order_key(instance, pair[0]))
    seen: set[str] = set()
    out: list[tuple[list[str | int], str]] = []
    for path, message in pairs:
        line = f"{pointer(path)}: {message}"
        if line not in seen:
            seen.add(line)
            out.append((path, line))
    return out


@cache
def load(name: str) -> dict[str, Any]:
    """A schema shipped in ``sitegen/schemas`` by file name, e.g. ``metadata.v1.json``."""
    text = resources.files("sitegen").joinpath("schemas", name).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)  # every shipped schema is a JSON object
    return schema


@cache
def _fast(name: str) -> Callable[[Any], Any]:
    return fastjsonschema.compile(load(name), formats=FORMATS)


_TYPE_TESTS = {
    "string": "t is str",
    "number": "t is int or t is float",
    "integer": "t is int",
    "boolean": "t is bool",
    "null": "v is None",
    "object": "t is dict",
    "array": "t is list",
}
_SIMPLE_KEYWORDS = {
    "type",
    "minimum",
    "minLength",
    "maxLength",
    "enum",
    "const",
    "description",
    "format",
}


def _property_source(key: str, prop: dict[str, Any], consts: list[Any]) -> list[str] | None:
    """Statements that return False when ``d[key]`` breaks ``prop``; None when it needs
    keywords beyond the simple ones. Values the schema names go in ``consts``."""
    if not set(prop) <= _SIMPLE_KEYWORDS or prop.get("format", "date-time") not in FORMATS:
        return None

    def const(value: Any) -> str:
        return _const(consts, value)

    names = prop.get("type")
    names = [names] if isinstance(names, str) else list(names or [])
    lines = [f"v = d.get({const(key)}, M)", "if v is not M:", "    t = type(v)"]
    if names:
        lines.append(f"    if not ({' or '.join(_TYPE_TESTS[n] for n in names)}): return False")
    elif "boolean" not in names:
        lines.append("    if t is bool: return False")
    if prop.get("minimum") is not None:
        lines.append(
            f"    if (t is int or t is float) and v < {const(prop['minimum'])}: return False"
        )
    if "format" in prop:
        lines.append(f"    if t is str and not {const(FORMATS[prop['format']])}(v): return False")
    low, high = prop.get("minLength"), prop.get("maxLength")
    if low is not None or high is not None:
        low_s, high_s = const(low or 0), const(high if high is not None else float("inf"))
        lines.append(f"    if t is str and not ({low_s} <= len(v) <= {high_s}): return False")
    enum = prop.get("enum", [prop["const"]] if "const" in prop else None)
    if enum is not None:
        # Equal and of the same JSON type (True == 1 in Python, not in JSON Schema).
        pairs = const(frozenset((type(e), e) for e in enum if not isinstance(e, dict | list)))
        lines.append(f"    if t is dict or t is list or (t, v) not in {pairs}: return False")
    return lines


@cache
def _quick(name: str) -> Callable[[Any], bool] | None:
    """For flat record schemas: a check that answers True only for valid documents.

    Ledger lines are validated one by one, and the generated fastjsonschema
    code costs about 20 µs a record. This one is generated as straight-line
    Python from the schema (a type test, bounds and an enum lookup per named
    property) and costs 2-3 µs. False means "not sure", and the caller falls
    back to the full validator, so it can never let an invalid document through.
    """
    schema = load(name)
    if schema.get("type") != "object" or "additionalProperties" in schema:
        return None
    consts: list[Any] = []
    body = ["if type(d) is not dict: return False"]
    required = schema.get("required", ())
    if required:
        present = " and ".join(f"{_const(consts, key)} in d" for key in required)
        body.append(f"if not ({present}): return False")
    for key, prop in schema.get("properties", {}).items():
        lines = _property_source(key, prop, consts)
        # A property needing more than simple keywords: "not sure" when present.
        body += lines or [f"if {_const(consts, key)} in d: return False"]
    body.append("return True")
    source = "def quick(d):\n" + "".join(f"    {line}\n" for line in body)
    namespace: dict[str, Any] = {"C": consts, "M": _MISSING}
    exec(compile(source, f"<quick check of {name}>", "exec"), namespace)
    quick: Callable[[Any], bool] = namespace["quick"]
    return quick


def _const(consts: list[Any], value: Any) -> str:
    """Put ``value`` in the generated check's constants; the expression that reads it."""
    consts.append(value)
    return f"C[{len(consts) - 1}]"


_MISSING = object()


def errors(name: str, document: Any) -> list[str]:
    """Every problem of ``document`` against schema ``name``; empty when valid."""
    return [line for _path, line in located_errors(name, document)]


def located_errors(name: str, document: Any) -> list[tuple[list[str | int], str]]:
    """:func:`errors`, each with the path of the value it is about."""
    quick = _quick(name)
    if quick is not None and quick(document):
        return []
    try:
        _fast(name)(document)
        return []
    except fastjsonschema.JsonSchemaException:
        pass
    return schema_problems(load(name), document) or [([], "does not match its schema")]
