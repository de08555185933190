"""One name per node, engine and model.

Runs spell the same thing differently: ``llama.cpp``, ``llamacpp`` and
``llama-cpp`` are one engine; ``tiny-256x4.gguf`` is the model
``tiny-256x4`` (a file's extension is not part of a model's name); the MLX
envelope names no engine, but every result in it ran on MLX. Published runs
never change, so names are normalised where they are read: importers and the
runner write canonical names into new runs, and every page, feed, download and
the catalogue read old runs through ``canonical``.

A publisher adds their own equivalences in ``sitegen.toml``::

    [aliases.model]
    "qwen2.5-0.5b-instruct" = "qwen2.5:0.5b"

Placeholders the importers wrote for a name the source did not record
(``unknown-node``, ``unknown-engine``) are no name at all: ``canonical``
returns None for them, and pages say "not recorded".
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

KINDS = ("node", "engine", "model")

# Spellings of one engine (compared lowercased, with "_" as "-").
_ENGINES = {
    "llama.cpp": "llamacpp",
    "llama-cpp": "llamacpp",
    "llamacpp": "llamacpp",
    "llama-server": "llamacpp",
    "mlx": "mlx",
    "mlx-lm": "mlx",
}
# The engine of every result in a source format that names none.
FORMAT_ENGINES = {"mlx-benchmarks-v1": "mlx"}
# What importers and sources write for a name they do not have.
_PLACEHOLDERS = {"", "unknown", "unknown-node", "unknown-engine", "none", "null", "n/a", "?"}
# Model file extensions: not part of the model's name.
MODEL_EXTENSIONS = (".gguf", ".safetensors", ".bin", ".ggml", ".ggmlv3", ".pt", ".pth", ".onnx")


@dataclass(frozen=True)
class Aliases:
    """The publisher's aliases: per kind, a name -> the canonical name it stands for."""

    by_kind: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # (kind, name) -> canonical name: a build asks for the same few names ~10^5 times.
    _names: dict[tuple[str, str], str | None] = field(
        default_factory=dict, compare=False, repr=False, hash=False
    )

    @cached_property
    def key(self) -> str:
        """The aliases as canonical text: part of the key of everything they rename."""
        return json.dumps(self.by_kind, sort_keys=True)

    def resolve(self, kind: str, name: str) -> str:
        table = self.by_kind.get(kind) or {}
        seen = {name}
        while name in table:  # chains end: sitegen.config refuses cycles
            name = table[name]
            if name in seen:
                break
            seen.add(name)
        return name


NO_ALIASES = Aliases()


def builtin(kind: str, name: Any) -> str | None:
    """``name`` normalised by the built-in rules only; None when it names nothing."""
    if not isinstance(name, str):
        return None
    text = name.strip()
    if text.lower() in _PLACEHOLDERS:
        return None
    if kind == "engine":
        folded = text.lower().replace("_", "-")
        return _ENGINES.get(folded, folded)
    if kind == "model":
        lower = text.lower()
        for ext in MODEL_EXTENSIONS:
            if lower.endswith(ext) and len(text) > len(ext):
                return text[: -len(ext)]
    return text


def canonical(kind: str, name: Any, aliases: Aliases = NO_ALIASES) -> str | None:
    """The one name of a node, engine or model; None when nothing was recorded.

    The publisher's aliases apply to the name as recorded and to its built-in
    normal form (so ``[aliases.model] "x.gguf"`` and ``x`` both work).
    """
    if not isinstance(name, str):
        return None
    key = (kind, name)
    if key not in aliases._names:
        aliases._names[key] = _canonical(kind, name, aliases)
    return aliases._names[key]


def _canonical(kind: str, name: str, aliases: Aliases) -> str | None:
    if name.strip() in (aliases.by_kind.get(kind) or {}):
        return builtin(kind, aliases.resolve(kind, name.strip()))
    base = builtin(kind, name)
    if base is None:
        return None
    resolved = aliases.resolve(kind, base)
    return builtin(kind, resolved) if resolved != base else base


def canonical_target(
    target: dict[str, Any], aliases: Aliases = NO_ALIASES, source_format: str | None = None
) -> dict[str, Any]:
    """A target with canonical node, engine and model, and the names as recorded
    (``recorded``: kind -> the raw name, for the kinds whose name changed)."""
    out = dict(target)
    recorded: dict[str, str] = {}
    for kind in KINDS:
        raw = target.get(kind)
        name = canonical(kind, raw, aliases)
        if kind == "engine" and name is None and source_format in FORMAT_ENGINES:
            name = canonical(kind, FORMAT_ENGINES[source_format], aliases)
        out[kind] = name
        if isinstance(raw, str) and raw and raw != name:
            recorded[kind] = raw
            if kind == "model" and not out.get("model_file") and _file_name(raw):
                out["model_file"] = re.split(r"[/\\]", raw.strip())[-1]
    if recorded:
        out["recorded"] = recorded
    return out


def cell_name(target: dict[str, Any]) -> str:
    """A cell as ``node:engine:model`` in canonical names ("–" for a part not recorded);
    the cell id the run recorded stays its identifier in the run's files."""
    return ":".join(str(target.get(k) or "–") for k in KINDS)


def _file_name(name: str) -> bool:
    """Whether a recorded model name is a file's (it ends in a model file extension)."""
    return builtin("model", name) != name.strip() and name.strip().lower().endswith(
        MODEL_EXTENSIONS
    )


def short_digest(digest: str | None) -> str | None:
    """The first 8 hex digits of a ``sha256:...`` digest."""
    if not digest:
        return None
    return digest.split(":", 1)[-1][:8].lower() or None


def short_count(value: int | float) -> str:
    """A parameter count in three significant digits: 3575040 -> "3.58M"."""
    for divisor, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= divisor:
            scaled = value / divisor
            text = f"{scaled:.3g}" if scaled < 1000 else f"{scaled:.0f}"
            return text + suffix
    return f"{value:g}"


# ------------------------------------------------------------ settings checks

_NAME = re.compile(r"\S")


def alias_problems(kind: str, table: Any) -> list[tuple[str | None, str]]:
    """What is wrong with one ``[aliases.<kind>]`` table: (the entry's key, message)."""
    if not isinstance(table, dict):
        return [(None, f"aliases.{kind}: expected a table of name = canonical name")]
    out: list[tuple[str | None, str]] = []
    for key, value in table.items():
        if not isinstance(value, str):
            out.append((key, f"aliases.{kind}.{key}: expected a string, got {value!r}"))
        elif not _NAME.search(value) or not _NAME.search(key):
            out.append((key, f"aliases.{kind}.{key}: names must not be empty"))
        elif value.strip() == key.strip():
            out.append((key, f"aliases.{kind}.{key}: an alias of itself"))
    good = {k: v for k, v in table.items() if isinstance(v, str) and v.strip() != k.strip()}
    reported: set[str] = set()
    for start in sorted(good):
        path = [start]
        name = good[start]
        while name in good and name not in path:
            path.append(name)
            name = good[name]
        if name in path and not reported & set(path):
            cycle = [*path[path.index(name) :], name]
            reported |= set(cycle)
            out.append((start, f"aliases.{kind}: a cycle: {' -> '.join(cycle)}"))
    return out
