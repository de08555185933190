"""Per-engine knowledge: request shape, availability probe, identity, cold start.

Three kinds of engine are supported:

``llamacpp``
    llama.cpp's ``llama-server``. The model stays resident, so the only true
    cold call is the first one after the server starts; the runner asks
    ``/slots`` whether any task has run yet. Calls send ``cache_prompt: false``
    so a warm call's prefill is not served from the prompt cache.
``ollama``
    Unloaded before each cold call with ``keep_alive: 0`` and confirmed gone
    from ``/api/ps``. Calls use the native ``/api/chat`` stream by default (it
    reports Ollama's own durations), or ``/v1/chat/completions`` with
    ``api: openai``.
``openai``
    vLLM and other OpenAI-compatible servers: no control over residency, so the
    first call of a (cell, prompt) is recorded as ``process_warm``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from sitegen.entities import canonical
from sitegen.prompts import Prompt
from sitegen.runner.cells import Cell
from sitegen.runner.scrub import basename

PROBE_TIMEOUT_S = 1.0
IDENTITY_TIMEOUT_S = 5.0
UNLOAD_CONFIRM_S = 15.0
ENGINE_NAMES = {"llamacpp": "llama.cpp", "ollama": "Ollama", "openai": "OpenAI-compatible"}


@dataclass
class Probe:
    """The outcome of probing one cell before the run."""

    cell_id: str
    ok: bool
    reason: str | None = None
    health_ms: float | None = None
    target: dict[str, Any] = field(default_factory=dict)
    snapshots: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class ColdState:
    """What the runner knows about servers' residency during one run."""

    served: set[str] = field(default_factory=set)


def auth_headers(cell: Cell) -> dict[str, str]:
    """A bearer token from the environment variable the cell names, if any."""
    if cell.api_key_env and os.environ.get(cell.api_key_env):
        return {"authorization": f"Bearer {os.environ[cell.api_key_env]}"}
    return {}


def is_native(cell: Cell) -> bool:
    """True when the cell streams Ollama's NDJSON rather than OpenAI SSE."""
    return cell.engine == "ollama" and cell.api == "native"


def chat_url(cell: Cell) -> str:
    """Where the cell's measured calls are POSTed."""
    return cell.base_url + ("/api/chat" if is_native(cell) else "/v1/chat/completions")


def request_body(cell: Cell, prompt: Prompt) -> dict[str, Any]:
    """The JSON body of one measured call."""
    messages = [{"role": "user", "content": prompt.text}]
    params = dict(cell.params)
    if is_native(cell):
        options = {"num_predict": prompt.max_tokens}
        options.update(params.pop("options", {}) or {})
        return {
            "model": cell.model,
            "messages": messages,
            "stream": True,
            **params,
            "options": options,
        }
    body: dict[str, Any] = {
        "model": cell.model,
        "messages": messages,
        "max_tokens": prompt.max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if cell.engine == "llamacpp":
        body["cache_prompt"] = False
    body.update(params)
    return body


def cache_prompt(cell: Cell) -> bool | None:
    """The cache_prompt value the cell's calls send (llama.cpp only)."""
    if cell.engine != "llamacpp":
        return None
    return bool(cell.params.get("cache_prompt", False))


def settings(cell: Cell) -> dict[str, Any]:
    """Request settings that shape the numbers, for metadata targets."""
    out: dict[str, Any] = {
        "api": "ollama-native-chat" if is_native(cell) else "openai-chat-completions",
        "stream": True,
    }
    if not is_native(cell):
        out["include_usage"] = True
    if cell.engine == "llamacpp":
        out["cache_prompt"] = cache_prompt(cell)
    out.update({k: v for k, v in cell.params.items() if k != "cache_prompt"})
    return out


async def _get(client: httpx.AsyncClient, cell: Cell, path: str, timeout: float) -> httpx.Response:
    return await client.get(cell.base_url + path, timeout=timeout, headers=auth_headers(cell))


def _json(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


async def health(client: httpx.AsyncClient, cell: Cell) -> tuple[bool, str | None, float]:
    """The 1-second availability check: (ok, reason, elapsed ms)."""
    path = {"llamacpp": "/health", "ollama": "/api/version", "openai": "/health"}[cell.engine]
    t0 = time.perf_counter_ns()
    try:
        resp = await _get(client, cell, path, PROBE_TIMEOUT_S)
        if cell.engine == "openai" and resp.status_code == 404:
            resp = await _get(client, cell, "/v1/models", PROBE_TIMEOUT_S)
    except httpx.TimeoutException:
        return False, f"no answer within {PROBE_TIMEOUT_S:g} s", _since(t0)
    except httpx.HTTPError as exc:
        return False, f"unreachable ({type(exc).__name__})", _since(t0)
    elapsed = _since(t0)
    if resp.status_code == 200:
        return True, None, elapsed
    if resp.status_code == 503:
        return False, "server is loading the model (HTTP 503)", elapsed
    return False, f"health check answered HTTP {resp.status_code}", elapsed


def _since(t0: int) -> float:
    return round((time.perf_counter_ns() - t0) / 1e6, 3)


async def probe(client: httpx.AsyncClient, cell: Cell) -> Probe:
    """Health check, then capture the engine's identity (version, model, digest)."""
    ok, reason, elapsed = await health(client, cell)
    result = Probe(cell.cell_id, ok, reason, elapsed)
    result.target = {
        "cell_id": cell.cell_id,
        "node": cell.node,
        "engine": cell.engine,
        "engine_version": None,
        # The name the server is asked for stays in the cell id and the requests; the
        # target names the model canonically (a file's extension is not its name).
        "model": canonical("model", cell.model) or cell.model,
        "model_digest": cell.model_digest,
        "quantization": cell.quantization,
        "parameters": None,
        "context_length": None,
        "settings": settings(cell),
    }
    if not ok:
        return result
    try:
        await _identify(client, cell, result)
    finally:
        _operator_version(cell, result)
    return result


def _operator_version(cell: Cell, result: Probe) -> None:
    """Use the operator's engine version where the engine reports none usable.

    A version read from the engine wins when it identifies a build; the
    source is recorded so the run page can say whose word it is.
    """
    from sitegen.repro import is_placeholder_version

    target = result.target
    reported = target.get("engine_version")
    if reported is not None and not is_placeholder_version(reported):
        target["engine_version_source"] = "engine"
        if cell.engine_version and cell.engine_version != reported:
            result.notes.append(
                f"engine reports version {reported!r}; cells.yaml's "
                f"{cell.engine_version!r} is not used"
            )
    elif cell.engine_version:
        if reported is not None:
            result.notes.append(
                f"engine reports placeholder version {reported!r}; "
                f"using {cell.engine_version!r} from cells.yaml"
            )
        if reported is not None:
            target["engine_version_reported"] = reported
        target["engine_version"] = cell.engine_version
        target["engine_version_source"] = "operator"
    elif reported is not None:
        target["engine_version_source"] = "engine"


async def _identify(client: httpx.AsyncClient, cell: Cell, result: Probe) -> None:
    identify = {
        "llamacpp": _identify_llamacpp,
        "ollama": _identify_ollama,
        "openai": _identify_openai,
    }[cell.engine]
    try:
        await identify(client, cell, result)
    except httpx.HTTPError as exc:
        result.notes.append(f"identity incomplete: {type(exc).__name__}")


async def _identify_llamacpp(client: httpx.AsyncClient, cell: Cell, result: Probe) -> None:
    target = result.target
    props_resp = await _get(client, cell, "/props", IDENTITY_TIMEOUT_S)
    props = _json(props_resp) if props_resp.status_code == 200 else None
    model_path: str | None = None
    if isinstance(props, dict):
        target["engine_version"] = props.get("build_info")
        model_path = props.get("model_path") if isinstance(props.get("model_path"), str) else None
        settings_ = props.get("default_generation_settings") or {}
        n_ctx = settings_.get("n_ctx") if isinstance(settings_, dict) else None
        if isinstance(n_ctx, int) and n_ctx > 0:
            target["context_length"] = n_ctx
        ftype = props.get("model_ftype")
        if isinstance(ftype, str) and ftype and not target["quantization"]:
            target["quantization"] = ftype
        if isinstance(props.get("total_slots"), int):
            target["settings"]["total_slots"] = props["total_slots"]
        snapshot = dict(props)
        for key in ("chat_template", "chat_template_tool_use"):
            if isinstance(snapshot.get(key), str):
                digest = hashlib.sha256(snapshot.pop(key).encode("utf-8")).hexdigest()
                snapshot[key + "_sha256"] = digest
        snapshot.pop("ui_settings", None)
        snapshot["model_path"] = basename(model_path)
        result.snapshots["/props"] = snapshot
        if "chat_template_sha256" in snapshot:
            target["settings"]["chat_template_sha256"] = snapshot["chat_template_sha256"]
    else:
        result.notes.append(f"/props answered HTTP {props_resp.status_code}")
    models_resp = await _get(client, cell, "/v1/models", IDENTITY_TIMEOUT_S)
    models = _json(models_resp) if models_resp.status_code == 200 else None
    if isinstance(models, dict):
        result.snapshots["/v1/models"] = _scrub_model_ids(models)
        for entry in models.get("data") or []:
            meta = entry.get("meta") if isinstance(entry, dict) else None
            if isinstance(meta, dict):
                if isinstance(meta.get("n_params"), int):
                    target["parameters"] = meta["n_params"]
                if target["context_length"] is None and isinstance(meta.get("n_ctx"), int):
                    target["context_length"] = meta["n_ctx"]
                break
    gguf = cell.model_file or model_path
    if gguf and Path(gguf).is_file() and os.access(gguf, os.R_OK):
        digest = await asyncio.to_thread(file_sha256, gguf)
        target["model_digest"] = f"sha256:{digest}"
        result.snapshots["gguf"] = {
            "file": basename(gguf),
            "sha256": digest,
            "size_bytes": Path(gguf).stat().st_size,
        }
    elif not target["model_digest"]:
        result.notes.append("GGUF not readable from this machine: model_digest unknown")
    target["model_file"] = basename(gguf)


def _scrub_model_ids(models: dict[str, Any]) -> dict[str, Any]:
    """llama.cpp names a model by its path when no alias is set: keep the basename."""
    out = dict(models)
    data = []
    for entry in models.get("data") or []:
        if isinstance(entry, dict):
            entry = dict(entry)
            for key in ("id", "root", "parent"):
                if isinstance(entry.get(key), str) and ("/" in entry[key] or "\\" in entry[key]):
                    entry[key] = basename(entry[key])
        data.append(entry)
    out["data"] = data
    listed = []
    for entry in models.get("models") or []:
        if isinstance(entry, dict):
            entry = dict(entry)
            for key in ("name", "model"):
                if isinstance(entry.get(key), str) and ("/" in entry[key] or "\\" in entry[key]):
                    entry[key] = basename(entry[key])
        listed.append(entry)
    if "models" in models:
        out["models"] = listed
    return out


_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str) -> str:
    """SHA-256 of a file, remembered per (path, size, mtime) for this process."""
    st = Path(path).stat()
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


def _ollama_name(name: str) -> str:
    return name if ":" in name.split("/")[-1] else name + ":latest"


async def _identify_ollama(client: httpx.AsyncClient, cell: Cell, result: Probe) -> None:
    target = result.target
    version = _json(await _get(client, cell, "/api/version", IDENTITY_TIMEOUT_S))
    if isinstance(version, dict):
        target["engine_version"] = version.get("version")
        result.snapshots["/api/version"] = version
    tags = _json(await _get(client, cell, "/api/tags", IDENTITY_TIMEOUT_S))
    wanted = _ollama_name(cell.model)
    found = None
    if isinstance(tags, dict):
        for entry in tags.get("models") or []:
            names = {_ollama_name(str(entry.get(k, ""))) for k in ("name", "model")}
            if wanted in names:
                found = entry
                break
        result.snapshots["/api/tags"] = {"models": [found] if found else []}
    if found is None:
        result.ok = False
        result.reason = f"model {cell.model!r} is not pulled on this Ollama"
        return
    digest = found.get("digest")
    if isinstance(digest, str) and digest:
        target["model_digest"] = digest if digest.startswith("sha256:") else f"sha256:{digest}"
    details = found.get("details") or {}
    show_resp = await client.post(
        cell.base_url + "/api/show",
        json={"model": cell.model},
        timeout=IDENTITY_TIMEOUT_S,
        headers=auth_headers(cell),
    )
    show = _json(show_resp) if show_resp.status_code == 200 else None
    if isinstance(show, dict):
        details = show.get("details") or details
        info = show.get("model_info") or {}
        for key, value in info.items():
            if key.endswith(".context_length") and isinstance(value, int):
                target["context_length"] = value
            if key == "general.parameter_count" and isinstance(value, int):
                target["parameters"] = value
        snapshot = {
            k: v
            for k, v in show.items()
            if k not in ("modelfile", "license", "template", "tensors", "model_info")
        }
        if isinstance(show.get("template"), str):
            snapshot["template_sha256"] = hashlib.sha256(show["template"].encode()).hexdigest()
        snapshot["model_info"] = {k: v for k, v in info.items() if not isinstance(v, list)}
        result.snapshots["/api/show"] = snapshot
    if isinstance(details, dict) and details.get("quantization_level") and not cell.quantization:
        target["quantization"] = details["quantization_level"]


async def _identify_openai(client: httpx.AsyncClient, cell: Cell, result: Probe) -> None:
    target = result.target
    version_resp = await _get(client, cell, "/version", IDENTITY_TIMEOUT_S)
    version = _json(version_resp) if version_resp.status_code == 200 else None
    if isinstance(version, dict):
        target["engine_version"] = version.get("version")
        result.snapshots["/version"] = version
    models_resp = await _get(client, cell, "/v1/models", IDENTITY_TIMEOUT_S)
    models = _json(models_resp) if models_resp.status_code == 200 else None
    if not isinstance(models, dict):
        result.notes.append(f"/v1/models answered HTTP {models_resp.status_code}")
        return
    result.snapshots["/v1/models"] = _scrub_model_ids(models)
    ids = [e.get("id") for e in models.get("data") or [] if isinstance(e, dict)]
    if ids and cell.model not in ids:
        result.ok = False
        served = ", ".join(map(str, ids))
        result.reason = f"model {cell.model!r} is not served here (serves: {served})"
        return
    for entry in models.get("data") or []:
        if (
            isinstance(entry, dict)
            and entry.get("id") == cell.model
            and isinstance(entry.get("max_model_len"), int)
        ):
            target["context_length"] = entry["max_model_len"]


async def prepare_cold(client: httpx.AsyncClient, cell: Cell, state: ColdState) -> str:
    """Make the next call as cold as the engine allows; return its cold_kind."""
    if cell.engine == "ollama":
        return await _unload_ollama(client, cell)
    if cell.engine == "llamacpp":
        if cell.base_url in state.served:
            return "process_warm"
        return await _llamacpp_fresh(client, cell)
    return "process_warm"


async def _llamacpp_fresh(client: httpx.AsyncClient, cell: Cell) -> str:
    """``process_start`` when /slots shows no task has run since the server started."""
    try:
        resp = await _get(client, cell, "/slots", PROBE_TIMEOUT_S)
    except httpx.HTTPError:
        return "process_warm"
    slots = _json(resp) if resp.status_code == 200 else None
    if (
        isinstance(slots, list)
        and slots
        and all(isinstance(s, dict) and "id_task" not in s for s in slots)
    ):
        return "process_start"
    return "process_warm"


async def _unload_ollama(client: httpx.AsyncClient, cell: Cell) -> str:
    """Unload with keep_alive 0 and wait until /api/ps no longer lists the model."""
    headers = auth_headers(cell)
    try:
        await client.post(
            cell.base_url + "/api/generate",
            json={"model": cell.model, "keep_alive": 0},
            timeout=60.0,
            headers=headers,
        )
        wanted = _ollama_name(cell.model)
        deadline = time.monotonic() + UNLOAD_CONFIRM_S
        while time.monotonic() < deadline:
            ps = _json(await _get(client, cell, "/api/ps", PROBE_TIMEOUT_S))
            loaded = {
                _ollama_name(str(e.get(k, "")))
                for e in (ps or {}).get("models") or []
                if isinstance(e, dict)
                for k in ("name", "model")
            }
            if isinstance(ps, dict) and wanted not in loaded:
                return "unloaded"
            await asyncio.sleep(0.1)
    except httpx.HTTPError:
        pass
    return "unload_unconfirmed"


def mark_served(cell: Cell, state: ColdState) -> None:
    """Remember that this server has now run a request (llama.cpp residency)."""
    state.served.add(cell.base_url)
