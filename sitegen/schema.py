"""The package's JSON Schemas, compiled once, and readable error messages.

Validation runs on every ledger line, so the fast path uses fastjsonschema
(compiled to Python). Only when a document fails do we ask jsonschema for the
full list of errors, each located by a JSON pointer such as
``$.results[2].value``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from functools import cache
from importlib import resources
from typing import Any

import fastjsonschema
import jsonschema

_TYPE_NAMES = {
    "string": "string",
    "number": "number",
    "integer": "integer",
    "boolean": "true/false",
    "object": "object",
    "array": "array",
    "null": "null",
}


@cache
def load(name: str) -> dict[str, Any]:
    """A schema shipped in ``sitegen/schemas`` by file name, e.g. ``metadata.v1.json``."""
    text = resources.files("sitegen").joinpath("schemas", name).read_text(encoding="utf-8")
    return json.loads(text)


@cache
def _fast(name: str) -> Callable[[Any], Any]:
    return fastjsonschema.compile(load(name))


@cache
def _full(name: str) -> jsonschema.protocols.Validator:
    schema = load(name)
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


def pointer(path: Iterable[Any]) -> str:
    """``["results", 2, "value"]`` -> ``$.results[2].value``."""
    out = "$"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _describe(error: jsonschema.ValidationError) -> str:
    where = pointer(error.absolute_path)
    if error.validator == "type":
        wanted = error.validator_value
        wanted = [wanted] if isinstance(wanted, str) else wanted
        names = " or ".join(_TYPE_NAMES.get(w, w) for w in wanted)
        got = json.dumps(error.instance, ensure_ascii=False)
        if len(got) > 40:
            got = got[:37] + "..."
        return f"{where}: expected {names}, got {_json_type(error.instance)} {got}"
    if error.validator == "required":
        missing = error.message.replace(" is a required property", "").strip("'")
        return f"{where}: missing required field {missing!r}"
    if error.validator == "minimum":
        return f"{where}: must be at least {error.validator_value}, got {error.instance}"
    if error.validator in ("enum", "const"):
        allowed = error.validator_value if error.validator == "enum" else [error.validator_value]
        options = ", ".join(json.dumps(a) for a in allowed)
        return f"{where}: must be one of {options}, got {json.dumps(error.instance)}"
    if error.validator == "additionalProperties":
        return f"{where}: {error.message}"
    return f"{where}: {error.message}"


def errors(name: str, document: Any) -> list[str]:
    """Every problem of ``document`` against schema ``name``; empty when valid."""
    try:
        _fast(name)(document)
        return []
    except fastjsonschema.JsonSchemaException:
        pass
    found = sorted(_full(name).iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))
    return [_describe(e) for e in found] or ["does not match its schema"]
