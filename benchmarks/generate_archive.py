"""Generate a synthetic archive of N runs, for tests and for timing the build.

Every run it writes is marked ``"synthetic": true`` (in metadata.json and in
the ledger's meta record), so the site badges it as demo data on every page.
Output is deterministic for a given seed.

usage: python benchmarks/generate_archive.py OUT_DIR [--runs N] [--warm N] [--seed S]
                                             [--cells N] [--prompts N]

Besides complete runs, about one run in twelve is meta-only, one in twenty is
unreliable (no model digest, high load), and one in twenty-five is
interrupted (no end record), so every badge and verdict appears.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

PROMPTS = {
    "P-EASY": ("hi\n", 64),
    "P-MEDIUM": ("Explain in 4 sentences why the sky appears blue at noon.\n", 512),
    "P-HARD": (
        "Write a 200-word story about a fisherman who discovers a coin from a sunken empire.\n",
        1024,
    ),
}
NODES = {
    "synth-a": {
        "cpu": "Synthetic CPU A (8 cores)",
        "cores": 8,
        "gpu": None,
        "memory_gb": 32,
        "os": "Linux",
    },
    "synth-b": {
        "cpu": "Synthetic CPU B (4 cores)",
        "cores": 4,
        "gpu": "Synthetic GPU 8 GB",
        "memory_gb": 16,
        "os": "Linux",
    },
}
MODELS = [("demo-0.5b", "Q4_K_M", 0.6), ("demo-1.5b", "Q4_K_M", 1.4), ("demo-1.5b", "Q8_0", 1.9)]
ENGINES = {"llamacpp": "b9999-synthetic", "ollama": "0.0.0-synthetic"}


def _line(obj: dict) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _cells(rng: random.Random, n: int) -> list[dict]:
    out = []
    for i in range(n):
        node = sorted(NODES)[i % len(NODES)]
        engine = sorted(ENGINES)[(i // len(NODES)) % len(ENGINES)]
        model, quant, scale = MODELS[i % len(MODELS)]
        name = f"{model}-{quant.lower()}"
        out.append(
            {
                "cell_id": f"{node}:{engine}:{name}",
                "node": node,
                "engine": engine,
                "engine_version": ENGINES[engine],
                "model": name,
                "model_digest": "sha256:"
                + hashlib.sha256(f"synthetic {name}".encode()).hexdigest(),
                "quantization": quant,
                "scale": scale * (1.0 + 0.4 * (node == "synth-b")),
            }
        )
    return out


def write_run(
    root: Path,
    index: int,
    *,
    rng: random.Random,
    warm: int,
    n_cells: int,
    n_prompts: int,
    kind: str,
) -> str:
    """Write one synthetic run folder; return its id."""
    start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=6 * index)
    run_id = f"synthetic-{index:05d}"
    cells = _cells(rng, n_cells)
    prompts = dict(list(PROMPTS.items())[:n_prompts])
    hashes = {
        pid: {"sha256": hashlib.sha256(text.encode()).hexdigest(), "max_tokens": mt}
        for pid, (text, mt) in prompts.items()
    }
    unreliable = kind == "unreliable"
    load = [round(5.5 if unreliable else rng.uniform(0.1, 1.5), 2)] * 3
    folder = root / "runs" / run_id
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        _line(
            {
                "type": "meta",
                "ledger_version": 1,
                "benchmark_run_id": run_id,
                "git_sha": hashlib.sha1(f"{index}".encode()).hexdigest()[:12],
                "git_dirty": False,
                "harness_version": "1",
                "harness_name": "synthetic-generator",
                "started_at_utc": _iso(start),
                "host": "synth-a",
                "load_avg_start": load,
                "cells_planned": [c["cell_id"] for c in cells],
                "prompts": hashes,
                "synthetic": True,
            }
        )
    ]
    t = start
    calls = errors = 0
    for cell in cells:
        for pid, (_, max_tokens) in prompts.items():
            for run_idx in range(warm + 1):
                phase = "cold" if run_idx == 0 else "warm"
                scale = cell["scale"] * (3.0 if phase == "cold" else 1.0)
                first = round(rng.lognormvariate(4.5, 0.25) * scale, 3)
                n_out = min(max_tokens, int(rng.uniform(0.3, 1.0) * max_tokens))
                tps = round(rng.uniform(25, 60) / cell["scale"], 3)
                total = round(first + n_out / tps * 1000, 3)
                failed = rng.random() < 0.02
                calls += 1
                errors += failed
                lines.append(
                    _line(
                        {
                            "type": "call",
                            "cell_id": cell["cell_id"],
                            "prompt_id": pid,
                            "phase": phase,
                            "cold_kind": "process_warm"
                            if phase == "cold" and cell["engine"] == "llamacpp"
                            else None,
                            "run_idx": 0 if phase == "cold" else run_idx - 1,
                            "first_delta_ms": None if failed else first,
                            "ttft_ms": None if failed else first,
                            "total_duration_ms": None if failed else total,
                            "prompt_tokens": 12 + 7 * len(pid),
                            "completion_tokens": None if failed else n_out,
                            "tokens_per_sec": None
                            if failed
                            else round(n_out / ((total - first) / 1000), 3),
                            "finish_reason": None
                            if failed
                            else ("length" if n_out == max_tokens else "stop"),
                            "backend": cell["engine"],
                            "error": "ReadTimeout: synthetic timeout" if failed else None,
                        }
                    )
                )
                t += timedelta(milliseconds=total if not failed else 1000)
    interrupted = kind == "interrupted"
    if interrupted:
        lines = lines[: max(2, len(lines) // 2)]
    else:
        lines.append(
            _line(
                {
                    "type": "end",
                    "finished_at_utc": _iso(t + timedelta(seconds=1)),
                    "load_avg_end": load,
                    "calls": calls,
                    "errors": errors,
                    "skipped": 0,
                }
            )
        )
    targets = [{k: v for k, v in c.items() if k != "scale"} for c in cells]
    if unreliable:
        for target in targets:
            target["model_digest"] = None
    metadata = {
        "format": "sitegen.metadata/1",
        "id": run_id,
        "title": f"Synthetic demo run {index}: {len(cells)} cells x {len(prompts)} prompts",
        "description": (
            "Generated by benchmarks/generate_archive.py to demo the site; not a measurement."
        ),
        "started_at_utc": _iso(start),
        "finished_at_utc": None if interrupted else _iso(t + timedelta(seconds=1)),
        "status": "meta-only"
        if kind == "meta-only"
        else ("interrupted" if interrupted else "complete"),
        "harness": {"name": "synthetic-generator", "version": "1"},
        "git": {"sha": hashlib.sha1(f"{index}".encode()).hexdigest()[:12], "dirty": False},
        "load_avg_start": load,
        "targets": targets,
        "nodes": {n: NODES[n] for n in sorted({c["node"] for c in cells})},
        "prompts": hashes,
        "license": "CC0-1.0",
        "authors": ["sitegen synthetic generator"],
        "tags": ["synthetic"],
        "baseline": index % 10 == 0,
        "synthetic": True,
    }
    if kind != "meta-only":
        (folder / "run.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        (folder / "run.md").write_text(
            f"# Synthetic run {index}\n\nGenerated demo data: **not measured**.\n", encoding="utf-8"
        )
    (folder / "metadata.json").write_text(
        json.dumps(metadata, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    return run_id


def kind_of(index: int) -> str:
    if index % 12 == 5:
        return "meta-only"
    if index % 20 == 3:
        return "unreliable"
    if index % 25 == 7:
        return "interrupted"
    return "complete"


def generate(
    root: Path,
    runs: int,
    *,
    warm: int = 5,
    cells: int = 3,
    prompts: int = 3,
    seed: int = 1,
) -> list[str]:
    """Write ``runs`` synthetic runs under ``root/runs``; return their ids."""
    rng = random.Random(seed)
    return [
        write_run(root, i, rng=rng, warm=warm, n_cells=cells, n_prompts=prompts, kind=kind_of(i))
        for i in range(runs)
    ]


def count_calls(root: Path) -> int:
    """Call records in the ledgers under ``root/runs`` (written by this generator: type first)."""
    total = 0
    for ledger in sorted((root / "runs").glob("*/run.jsonl")):
        with ledger.open("rb") as f:
            total += sum(line.startswith(b'{"type":"call"') for line in f)
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--runs", type=int, default=12)
    parser.add_argument("--warm", type=int, default=5)
    parser.add_argument("--cells", type=int, default=3)
    parser.add_argument("--prompts", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    ids = generate(
        args.out, args.runs, warm=args.warm, cells=args.cells, prompts=args.prompts, seed=args.seed
    )
    print(f"wrote {len(ids)} synthetic runs to {args.out / 'runs'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
