"""The context of an imported run, derived when it is read.

An imported run keeps what its source said: the result records of its ledger
carry the source's spread and sample size (as ``stderr`` or as tags), its
metadata.json names the tool, its versions, the generation settings and the
kept source file. This module reads those back into what a reader needs next
to a number: how many samples it stands on (n), its spread (±), which tool and
versions made it, with which settings, and whose result it is. Nothing is
written: runs published before this module existed show the same context as
new ones, because everything here comes from fields they already hold.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from sitegen.importers.llama_bench import CONFIG_FIELDS

# Spread of a result: where a format records it, and what kind of spread it is.
# llama-bench: stddev_ts is the standard deviation of the tokens/s over the
# repetitions; other tools name theirs stddev/std/stderr.
_SPREAD_TAGS = (
    ("stddev_ts", "sd"),
    ("stddev", "sd"),
    ("std", "sd"),
    ("stderr", "stderr"),
)
# Sample size of a result: the tag and what one unit of it is.
_N_TAGS = (
    ("repetitions", "repetitions"),  # llama-bench: samples_ns entries
    ("n_limit", "questions (n_limit)"),  # MLX envelope: lm-eval --limit
    ("n_samples", "samples"),  # lm-eval: n-samples.effective
    ("n", "samples"),
)
# vLLM bench serve: per-request statistics, n = the completed requests, the
# spread of mean_<x> is std_<x> of the same run.
_REQUEST_STAT = re.compile(r"^(mean|median|std|p\d+(?:\.\d+)?)_(\w+_ms)$")

# Versions recorded as settings (``<name>_version``): the usual name of the
# package and what it is to the run.
_VERSION_NAMES = {
    "lm_eval_version": ("lm-eval", "harness"),
    "mlx_version": ("MLX", "package"),
    "mlx_lm_version": ("mlx-lm", "package"),
    "vllm_mlx_version": ("vllm-mlx", "package"),
    "vllm_version": ("vLLM", "package"),
    "transformers_version": ("transformers", "package"),
    "torch_version": ("PyTorch", "package"),
    "benchmark_version": ("benchmark", "benchmark"),
}

# Fields of metadata.json ``source`` shown under their own headings, not as extras.
_SOURCE_SHOWN = {"format", "tool", "tool_version", "file", "origin", "authors"}

NOT_RECORDED = "authors not recorded"


def original_authors(source: dict[str, Any] | None, fallback: list[str] | None = None) -> list[str]:
    """Who made an imported result: ``source.authors`` (from ``sitegen import
    --author`` or the format), else the run's own ``authors``; empty when unknown."""
    names = (source or {}).get("authors") or fallback or []
    return [str(n) for n in names if str(n).strip()]


def tool_text(source: dict[str, Any]) -> str:
    """``<tool> <version>``, saying so when the version is not recorded."""
    tool = source.get("tool") or source.get("format") or "an unnamed tool"
    version = source.get("tool_version")
    return f"{tool} {version}" if version else f"{tool} (version not recorded)"


def publisher_text(archive: dict[str, Any]) -> str:
    """Who publishes the archive: its authors, else nobody named ('')."""
    return ", ".join(str(a) for a in archive.get("authors") or [])


def republished_text(archive: dict[str, Any], capital: bool = True) -> str:
    """``Republished in <archive title> by <publisher>`` (without a final stop)."""
    who = publisher_text(archive)
    verb = "Republished" if capital else "republished"
    return f"{verb} in {archive['title']}" + (f" by {who}" if who else "")


def _number(value: Any) -> float | int | None:
    """A finite number, also from a numeric string (tags of some formats are strings)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value) if re.search(r"[.eE]", value) else int(value)
        except ValueError:
            return None
    if isinstance(value, int | float) and math.isfinite(value):
        return value
    return None


def _text(value: Any) -> str:
    """A setting as written in the source (exact: a setting is not a measurement)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def result_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each result record with its spread and sample size, as far as its format records them.

    Adds ``spread`` and ``spread_kind`` ("stderr", "sd"), ``n`` and ``n_kind``
    ("repetitions", "questions (n_limit)", "samples", "requests"); None when
    the source does not say.
    """
    by_name: dict[tuple[Any, Any], dict[str, Any]] = {}
    for r in results:
        by_name.setdefault((r.get("name"), r.get("cell_id")), {})[str(r.get("metric"))] = r
    rows = []
    for r in results:
        tags = r.get("tags") or {}
        row = dict(r)
        spread, kind = _number(r.get("stderr")), "stderr"
        if spread is None:
            for key, tag_kind in _SPREAD_TAGS:
                if _number(tags.get(key)) is not None:
                    spread, kind = _number(tags.get(key)), tag_kind
                    break
        n, n_kind = None, None
        for key, unit in _N_TAGS:
            if _number(tags.get(key)) is not None:
                n, n_kind = _number(tags.get(key)), unit
                break
        siblings = by_name[(r.get("name"), r.get("cell_id"))]
        match = _REQUEST_STAT.match(str(r.get("metric") or ""))
        if match:
            if spread is None and match.group(1) == "mean":
                std = siblings.get(f"std_{match.group(2)}")
                if std is not None and _number(std.get("value")) is not None:
                    spread, kind = _number(std.get("value")), "sd"
            completed = siblings.get("completed")
            if n is None and completed is not None and _number(completed.get("value")) is not None:
                n, n_kind = _number(completed.get("value")), "requests"
        row["spread"] = spread
        row["spread_kind"] = kind if spread is not None else None
        row["n"] = n
        row["n_kind"] = n_kind
        rows.append(row)
    return rows


def _flatten(settings: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key in sorted(settings):
        value = settings[key]
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.extend(_flatten(value, name + "."))
        else:
            out.append((name, value))
    return out


def versions(metadata: dict[str, Any]) -> list[dict[str, str]]:
    """Every version the run records: the tool, the harness, each engine and the
    package versions kept as settings; "not recorded" where the source is silent."""
    source = metadata.get("source") or {}
    out: list[dict[str, str]] = []
    seen: set[tuple[str, str]] = set()

    def add(what: str, name: str, version: Any) -> None:
        text = str(version) if version not in (None, "") else "not recorded"
        if (name, text) not in seen:
            seen.add((name, text))
            out.append({"what": what, "name": name, "version": text})

    tool = source.get("tool") or source.get("format")
    if tool:
        add("tool that wrote the source", str(tool), source.get("tool_version"))
    harness = metadata.get("harness") or {}
    if harness.get("name") and harness.get("name") != tool:
        add("harness", str(harness["name"]), harness.get("version"))
    for target in metadata.get("targets") or []:
        if target.get("engine"):
            add("engine", str(target["engine"]), target.get("engine_version"))
        for key, value in sorted((target.get("settings") or {}).items()):
            if key.endswith("_version") and isinstance(value, str | int | float):
                default = (key[: -len("_version")].replace("_", "-"), "package")
                name, what = _VERSION_NAMES.get(key, default)
                engine = str(target.get("engine") or "")
                if name.lower() == engine.lower() and str(value) == target.get("engine_version"):
                    continue  # the engine's version, listed above
                add(what, name, value)
    return out


def settings(metadata: dict[str, Any], results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per target: its settings (generation settings, batch sizes, suite, seed...),
    flattened to ``a.b`` names, versions left out (they are listed apart), and
    the configuration its result records carry as tags (llama-bench's threads,
    batch sizes, KV cache types...): one value when every record agrees, else
    the values seen."""
    out = []
    for target in metadata.get("targets") or []:
        own = {
            k: v
            for k, v in (target.get("settings") or {}).items()
            if not (k.endswith("_version") and isinstance(v, str | int | float))
        }
        items = [{"name": k, "value": _text(v)} for k, v in _flatten(own)]
        mine = [r for r in results if r.get("cell_id") in (None, target.get("cell_id"))]
        tagged: dict[str, list[str]] = {}
        for r in mine:
            for key, value in (r.get("tags") or {}).items():
                if key not in _CONFIG_TAGS:
                    continue
                seen = tagged.setdefault(key, [])
                if _text(value) not in seen:
                    seen.append(_text(value))
        for key in sorted(tagged):
            values = tagged[key]
            text = values[0] if len(values) == 1 else "varies by result: " + ", ".join(values)
            items.append({"name": key, "value": text})
        if metadata.get("concurrency") is not None:
            items.append({"name": "concurrency", "value": _text(metadata["concurrency"])})
        out.append({"cell_id": target.get("cell_id"), "items": items})
    return [t for t in out if t["items"]]


# Result tags that are configuration (the same for every repetition of a test):
# llama-bench's, as its importer copies them, and lm-eval's few-shot count.
_CONFIG_TAGS = {*CONFIG_FIELDS, "n_shot"}


def source_file(metadata: dict[str, Any], manifest: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The kept source file: its path in the run folder, sha256 and size (from the manifest)."""
    name = (metadata.get("source") or {}).get("file")
    if not name:
        return None
    path = f"source/{name}"
    entry = next((m for m in manifest if m["path"] == path), None)
    if entry is None:
        return {"name": name, "path": path, "sha256": None, "bytes": None}
    return {"name": name, "path": path, "sha256": entry["sha256"], "bytes": entry["bytes"]}


def context(
    metadata: dict[str, Any],
    results: list[dict[str, Any]],
    manifest: list[dict[str, Any]],
    archive: dict[str, Any],
) -> dict[str, Any] | None:
    """Everything the Source section of an imported run's page shows; None for a
    run that was not imported."""
    source = metadata.get("source")
    if not source:
        return None
    extras = [
        {"name": k, "value": _text(v)}
        for k, v in sorted(source.items())
        if k not in _SOURCE_SHOWN and v is not None and not isinstance(v, dict | list)
    ]
    return {
        "format": source.get("format"),
        "tool": tool_text(source),
        "origin": source.get("origin"),
        "authors": original_authors(source, metadata.get("authors")),
        "file": source_file(metadata, manifest),
        "extras": extras,
        "versions": versions(metadata),
        "settings": settings(metadata, results),
        "results": result_rows(results),
        "republished": republished_text(archive),
    }
