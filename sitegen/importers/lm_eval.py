"""lm-evaluation-harness ``results_<date>.json``.

``results`` maps each task (and, in newer versions, each group) to metrics
keyed ``<metric>,<filter>``, with the standard error beside each under
``<metric>_stderr,<filter>``. Every task x metric x filter becomes a
``result`` record with its stderr, its ``higher_is_better`` flag, the task
version and the number of few-shot examples. ``config`` (model type and
arguments), ``git_hash``, the package versions and ``date`` (Unix time of the
start) give the provenance.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from sitegen.exceptions import Problem

from .base import (
    Document,
    Mapped,
    Target,
    basename,
    cell_id,
    check_schema,
    digest_or_none,
    result,
    scrub,
    slug,
    text_or_none,
)

NAME = "lm-eval"
TOOL = "lm-evaluation-harness"
SCHEMA = "lm-eval-results.json"

# lm-eval model types whose engine is clear: type -> (engine, key of its version).
_ENGINES = {
    "hf": ("transformers", "transformers_version"),
    "hf-auto": ("transformers", "transformers_version"),
    "huggingface": ("transformers", "transformers_version"),
    "hf-multimodal": ("transformers", "transformers_version"),
    "vllm": ("vllm", None),
    "vllm-vlm": ("vllm", None),
    "sglang": ("sglang", None),
    "gguf": ("llama.cpp", None),
    "ggml": ("llama.cpp", None),
    "mlx": ("mlx-lm", None),
}
_MODEL_KEYS = ("peft", "delta", "pretrained", "model", "path", "engine")
_SETTING_KEYS = (
    "batch_size",
    "batch_sizes",
    "device",
    "use_cache",
    "limit",
    "bootstrap_iters",
    "gen_kwargs",
    "random_seed",
    "numpy_seed",
    "torch_seed",
    "fewshot_seed",
)
_TOP_SETTINGS = (
    "fewshot_as_multiturn",
    "chat_template_sha",
    "system_instruction_sha",
    "model_source",
    "max_length",
)
_VERSION = re.compile(r"^v?\d+(\.\d+)*([.+-][0-9A-Za-z.+-]*)?$")


def sniff(doc: Document) -> bool:
    data = doc.data
    return (
        isinstance(data, dict)
        and isinstance(data.get("results"), dict)
        and any(k in data for k in ("versions", "n-shot", "configs", "config"))
        and "schema_version" not in data
    )


def validate(doc: Document) -> list[Problem]:
    return check_schema(doc, SCHEMA)


def parse_model_args(value: Any) -> dict[str, Any]:
    """``"pretrained=org/m,dtype=float"`` (or an already-split object) as a dict."""
    if isinstance(value, dict):
        return dict(value)
    args: dict[str, Any] = {}
    if isinstance(value, str):
        for part in value.split(","):
            key, sep, item = part.partition("=")
            if sep and key.strip():
                args[key.strip()] = item.strip()
    return args


def _model_name(data: dict[str, Any], args: dict[str, Any]) -> str:
    name = text_or_none(data.get("model_name"))
    if name is None:
        name = next((str(args[k]) for k in _MODEL_KEYS if text_or_none(args.get(k))), None)
    if name is None:
        name = data["config"]["model"]
    if name.startswith(("/", "~", "./", "../")) or re.match(r"^[A-Za-z]:\\", name):
        name = basename(name)
    return name


def parse_env(text: str) -> dict[str, Any]:
    """OS, CPU, logical CPU count and GPUs from torch's collect_env report."""
    info: dict[str, Any] = {}
    lines = text.splitlines()
    for index, line in enumerate(lines):
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key == "OS" and value:
            info["os"] = value
        elif key == "Model name" and value and "cpu" not in info:
            info["cpu"] = value
        elif key == "CPU(s)" and value.isdigit() and "cores" not in info:
            info["cores"] = int(value)
        elif key == "GPU models and configuration":
            gpus = [value] if value else []
            for follow in lines[index + 1 :]:
                if not follow.startswith("GPU "):
                    break
                gpus.append(follow.strip())
            gpus = [re.sub(r"^GPU \d+:\s*", "", g) for g in gpus if g]
            if gpus and "could not collect" not in gpus[0].lower():
                info["gpu"] = ", ".join(dict.fromkeys(gpus))
    return info


def _stderr(metrics: dict[str, Any], metric: str, filt: str) -> float | None:
    value = metrics.get(f"{metric}_stderr,{filt}")
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def convert(doc: Document) -> Mapped:
    data: dict[str, Any] = doc.data
    config: dict[str, Any] = data["config"]
    args = parse_model_args(config.get("model_args"))
    model = _model_name(data, args)
    model_type = config["model"]
    engine, version_key = _ENGINES.get(model_type, (None, None))
    engine_version = text_or_none(data.get(version_key)) if version_key else None

    env = parse_env(data["pretty_env_info"]) if isinstance(data.get("pretty_env_info"), str) else {}
    label = env.get("gpu") or env.get("cpu")
    node = slug(label, "unknown-node") if label else "unknown-node"
    node_info = {
        "cpu": env.get("cpu"),
        "cores": env.get("cores"),
        "gpu": env.get("gpu"),
        "memory_gb": None,
        "os": env.get("os"),
    }

    settings: dict[str, Any] = {"lm_eval_model": model_type}
    if args:
        settings["model_args"] = scrub(args)
    settings.update({k: config[k] for k in _SETTING_KEYS if config.get(k) not in (None, [], {})})
    settings.update({k: data[k] for k in _TOP_SETTINGS if data.get(k) not in (None, "")})
    for key in ("model_dtype", "model_revision"):
        if text_or_none(config.get(key)):
            settings[key] = config[key]
    digest = next(
        (
            d
            for d in map(
                digest_or_none,
                (args.get("revision"), config.get("model_sha"), config.get("model_revision")),
            )
            if d
        ),
        None,
    )
    parameters = config.get("model_num_parameters")
    cell = cell_id(node, engine, model)
    target = Target(
        cell_id=cell,
        node=node,
        engine=engine,
        engine_version=engine_version,
        model=model,
        model_digest=digest,
        parameters=parameters if isinstance(parameters, int) and parameters >= 0 else None,
        settings=settings,
    )

    versions = data.get("versions") or {}
    shots = data.get("n-shot") or {}
    better = data.get("higher_is_better") or {}
    samples = data.get("n-samples") or {}
    sections = [("results", data["results"], False), ("groups", data.get("groups") or {}, True)]
    records: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for _section, tasks, is_group in sections:
        for task, metrics in tasks.items():
            for key, value in metrics.items():
                metric, sep, filt = key.partition(",")
                if not sep or metric.endswith("_stderr"):
                    continue
                name_metric = metric if filt == "none" else f"{metric},{filt}"
                if (task, name_metric) in seen:
                    continue
                seen.add((task, name_metric))
                effective = (
                    samples.get(task, {}).get("effective")
                    if isinstance(samples.get(task), dict)
                    else None
                )
                tags: dict[str, Any] = {"filter": filt, "lm_eval_key": key}
                if task in shots:
                    tags["n_shot"] = shots[task]
                if task in versions:
                    tags["task_version"] = versions[task]
                if effective is not None:
                    tags["n_samples"] = effective
                if isinstance(metrics.get("alias"), str) and metrics["alias"].strip() != task:
                    tags["alias"] = metrics["alias"].strip()
                subtasks = (data.get("group_subtasks") or {}).get(task)
                if is_group or subtasks:
                    tags["group"] = True
                flags = better.get(task)
                if not isinstance(flags, dict):
                    flags = {}
                records.append(
                    result(
                        task,
                        name_metric,
                        value,
                        stderr=_stderr(metrics, metric, filt),
                        higher_is_better=flags.get(metric),
                        model=model,
                        cell=cell,
                        tags=tags,
                    )
                )

    started = datetime.fromtimestamp(data["date"], tz=UTC)
    finished = None
    total = data.get("total_evaluation_time_seconds")
    try:
        finished = started + timedelta(seconds=float(total)) if total is not None else None
    except (TypeError, ValueError):
        finished = None
    tool_version = text_or_none(data.get("lm_eval_version"))
    if tool_version and not _VERSION.match(tool_version):
        tool_version = None  # lm-eval writes the error text when it cannot find its version
    task_names = list(data["results"])
    shown = ", ".join(task_names[:6]) + (
        f" and {len(task_names) - 6} more" if len(task_names) > 6 else ""
    )
    return Mapped(
        title=f"lm-eval: {model} on {shown}"[:300],
        description=(
            f"lm-evaluation-harness scores of {model} ({model_type}) on {len(task_names)} "
            f"task(s); {len(records)} metric value(s)."
        ),
        tool=TOOL,
        tool_version=tool_version,
        clock_start=started,
        started_at=started,
        finished_at=finished,
        clock_end=finished,
        git_sha=text_or_none(data.get("git_hash")),
        targets=[target],
        nodes={node: node_info},
        results=records,
        source_extra={"date": data["date"]},
    )
