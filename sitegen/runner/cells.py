"""The runner's input files: cells and the nodes inventory (prompts: :mod:`sitegen.prompts`).

A *cell* is one ``node:engine:model`` target with the endpoint it is reached
at. Endpoints stay in memory only: everything the runner writes names the
node instead (see :mod:`sitegen.runner.scrub`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sitegen.entities import canonical
from sitegen.exceptions import Problem, RunnerError
from sitegen.yamlfile import LineDict, load_yaml, problem_at, raise_problems

ENGINES = ("llamacpp", "ollama", "openai")
# The runner speaks vLLM's OpenAI-compatible API; other spellings are sitegen.entities'.
ENGINE_ALIASES = {"vllm": "openai"}
NODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
CELL_KEYS = {
    "node",
    "engine",
    "model",
    "endpoint",
    "api",
    "model_file",
    "model_digest",
    "quantization",
    "params",
    "api_key_env",
    "engine_version",
    "engine_pid",
}
NODE_KEYS = {"cpu", "cores", "gpu", "memory_gb", "os"}


@dataclass(frozen=True)
class Cell:
    """One target: a model served by an engine on a named node."""

    node: str
    engine: str
    model: str
    endpoint: str = field(repr=False)
    api: str = "openai"
    model_file: str | None = field(default=None, repr=False)
    model_digest: str | None = None
    quantization: str | None = None
    params: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    api_key_env: str | None = None
    #: From the operator's records, for engines that report no usable version.
    engine_version: str | None = None
    #: The engine's process id, when it cannot be found by its listening port.
    engine_pid: int | None = field(default=None, compare=False)

    @property
    def cell_id(self) -> str:
        """``node:engine:model``, the name every record uses for this cell."""
        return f"{self.node}:{self.engine}:{self.model}"

    @property
    def base_url(self) -> str:
        """The endpoint without a trailing slash or a trailing ``/v1``."""
        url = self.endpoint.rstrip("/")
        if url.endswith("/v1"):
            url = url[: -len("/v1")]
        return url


@dataclass(frozen=True)
class Inventory:
    """Hardware per node, and which node drives the run (``host``)."""

    nodes: dict[str, dict[str, Any]]
    host: str | None = None


def load_cells(path: Path) -> list[Cell]:
    """Read ``cells.yaml``: a ``cells:`` list (or a bare list) of cell mappings."""
    data = load_yaml(path)
    items = data.get("cells") if isinstance(data, dict) else data
    if not isinstance(items, list) or not items:
        raise RunnerError(f"{path}: expected a non-empty list of cells under 'cells:'")
    problems: list[Problem] = []
    cells: list[Cell] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        cell = _cell_from(path, index, item, problems)
        if cell is None:
            continue
        if cell.cell_id in seen:
            problems.append(problem_at(path, item, "model", f"duplicate cell {cell.cell_id!r}"))
            continue
        seen[cell.cell_id] = index
        cells.append(cell)
    raise_problems(problems)
    return cells


def _cell_from(path: Path, index: int, item: Any, problems: list[Problem]) -> Cell | None:
    if not isinstance(item, dict):
        problems.append(Problem(str(path), None, None, f"cell #{index + 1} is not a mapping"))
        return None
    before = len(problems)

    def bad(key: str | None, message: str) -> None:
        problems.append(problem_at(path, item, key, message))

    for key in item:
        if key not in CELL_KEYS:
            bad(key, f"unknown cell key {key!r} (known: {', '.join(sorted(CELL_KEYS))})")
    missing = False
    for key in ("node", "engine", "model", "endpoint"):
        value = item.get(key)
        if not isinstance(value, str) or not value.strip():
            bad(key if key in item else None, f"cell #{index + 1}: '{key}' must be a string")
            missing = True
    if missing:
        return None
    node = item["node"].strip()
    named = canonical("engine", item["engine"]) or item["engine"].strip().lower()
    engine = ENGINE_ALIASES.get(named, named)
    model = item["model"].strip()
    endpoint = item["endpoint"].strip()
    if not NODE_RE.match(node):
        bad("node", f"node name {node!r} must be letters, digits, '.', '_' or '-'")
    if engine not in ENGINES:
        bad("engine", f"unknown engine {item['engine']!r} (use one of {', '.join(ENGINES)})")
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        bad("endpoint", f"endpoint {endpoint!r} must be an http:// or https:// URL")
    if len(f"{node}:{engine}:{model}") > 512:
        bad("model", "cell id longer than 512 characters")
    api = str(item.get("api", "native" if engine == "ollama" else "openai")).lower()
    if api not in ("native", "openai") or (api == "native" and engine != "ollama"):
        bad("api", "'api' is 'openai', or 'native' for Ollama's own /api/chat")
    params = item.get("params", {}) or {}
    if not isinstance(params, dict):
        bad("params", "'params' must be a mapping of extra request fields")
    digest = item.get("model_digest")
    if digest is not None and not (
        isinstance(digest, str) and re.fullmatch(r"(sha256:)?[0-9a-f]{64}", digest)
    ):
        bad("model_digest", "'model_digest' must be a sha256 hex digest")
    version = item.get("engine_version")
    if version is not None and not (
        isinstance(version, (str, int, float)) and str(version).strip()
    ):
        bad("engine_version", "'engine_version' must be text, e.g. \"b6123\"")
    pid = item.get("engine_pid")
    if pid is not None and (isinstance(pid, bool) or not isinstance(pid, int) or pid < 1):
        bad("engine_pid", "'engine_pid' must be a process id (a positive integer)")
    for key in ("model_file", "quantization", "api_key_env"):
        if key in item and not isinstance(item[key], str):
            bad(key, f"'{key}' must be a string")
    if len(problems) > before:
        return None
    if digest and not digest.startswith("sha256:"):
        digest = f"sha256:{digest}"
    return Cell(
        node=node,
        engine=engine,
        model=model,
        endpoint=endpoint,
        api=api,
        model_file=item.get("model_file"),
        model_digest=digest,
        quantization=item.get("quantization"),
        params=dict(params),
        api_key_env=item.get("api_key_env"),
        engine_version=str(version).strip() if version is not None else None,
        engine_pid=pid,
    )


def load_inventory(path: Path | None) -> Inventory:
    """Read ``nodes.yaml``: ``nodes: {name: {cpu, cores, gpu, memory_gb, os}}``, ``host:``."""
    if path is None:
        return Inventory({})
    data = load_yaml(path)
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), dict):
        raise RunnerError(f"{path}: expected 'nodes:' mapping node names to hardware")
    problems: list[Problem] = []
    nodes: dict[str, dict[str, Any]] = {}
    for name, spec in data["nodes"].items():
        if not isinstance(name, str) or not NODE_RE.match(name):
            problems.append(problem_at(path, data["nodes"], name, f"bad node name {name!r}"))
            continue
        if not isinstance(spec, dict):
            problems.append(problem_at(path, data["nodes"], name, f"{name}: expected a mapping"))
            continue
        entry: dict[str, Any] = {}
        for key, value in spec.items():
            if key not in NODE_KEYS:
                problems.append(problem_at(path, spec, key, f"{name}: unknown key {key!r}"))
            elif (
                key == "cores"
                and value is not None
                and (isinstance(value, bool) or not isinstance(value, int) or value < 0)
            ):
                problems.append(problem_at(path, spec, key, f"{name}: cores must be an integer"))
            elif (
                key == "memory_gb"
                and value is not None
                and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0)
            ):
                problems.append(problem_at(path, spec, key, f"{name}: memory_gb must be a number"))
            elif key in ("cpu", "gpu", "os") and value is not None and not isinstance(value, str):
                problems.append(problem_at(path, spec, key, f"{name}: {key} must be text"))
            else:
                entry[key] = value
        nodes[name] = entry
    host = data.get("host")
    if host is not None and (not isinstance(host, str) or not NODE_RE.match(host)):
        problems.append(problem_at(path, data, "host", f"bad host node name {host!r}"))
    raise_problems(problems)
    return Inventory(nodes, host)


def host_node(inventory: Inventory, explicit: str | None) -> str:
    """The node name of the machine driving the run: never the real hostname."""
    if explicit:
        if not NODE_RE.match(explicit):
            raise RunnerError(f"--host-node {explicit!r}: use letters, digits, '.', '_' or '-'")
        return explicit
    if inventory.host:
        return inventory.host
    if len(inventory.nodes) == 1:
        return next(iter(inventory.nodes))
    return "local"


def select_cells(cells: list[Cell], wanted: tuple[str, ...]) -> list[Cell]:
    """Keep only the named cells (by cell id), in file order; unknown names are errors."""
    if not wanted:
        return cells
    known = {c.cell_id for c in cells}
    missing = [w for w in wanted if w not in known]
    if missing:
        raise RunnerError(
            "unknown cell(s): " + ", ".join(missing) + " (known: " + ", ".join(sorted(known)) + ")"
        )
    return [c for c in cells if c.cell_id in wanted]


__all__ = [
    "ENGINES",
    "Cell",
    "Inventory",
    "LineDict",
    "host_node",
    "load_cells",
    "load_inventory",
    "select_cells",
]
