"""Measure the publication gate's throughput on a realistic 10 MB mix.

The mix imitates what a build publishes: ledger lines (JSONL), pretty
metadata (JSON), run notes (Markdown), engine logs, and built HTML pages with
character references, a little non-ASCII text and embedded chart JSON. It is
generated deterministically and holds no findings, so the figure is the cost
of a clean build (the common case). Prints MB/s overall and per kind.

usage: python benchmarks/gate_throughput.py [--mb 10] [--repeat 3] [--tree DIR]

``--tree DIR`` also times ``scan_tree`` over a real folder (e.g. a built site),
as a first build scans it: nothing cached, many files shared among worker
processes (``SITEGEN_WORKERS``). Figures are medians of ``--repeat``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sitegen.gate import Allowlist, scan_text, scan_tree
from sitegen.workers import worker_count

CELLS = [
    "devbox:llamacpp:tiny-512x8",
    "gpu-a:ollama:qwen3.5:0.8b",
    "node-b:vllm:llama-3.1-8b-instruct",
]
MODELS = ["llama-3.1-8b-instruct.Q4_K_M.gguf", "qwen3.5:0.8b", "meta-llama/Llama-3.1-8B-Instruct"]
WORDS = [
    "the",
    "model",
    "answered",
    "prompt",
    "latency",
    "throughput",
    "tokens",
    "warm",
    "cold",
    "cache",
    "engine",
    "decode",
    "prefill",
    "batch",
    "context",
    "quantization",
    "median",
    "percentile",
    "run",
    "cell",
    "result",
    "error",
    "retry",
    "température",
    "résumé",
    "naïve",
    "東京",
    "データ",
]


def _sha(rng: random.Random) -> str:
    return hashlib.sha256(rng.randbytes(16)).hexdigest()


def ledger_file(rng: random.Random, size: int) -> str:
    lines = [
        json.dumps(
            {
                "type": "meta",
                "benchmark_run_id": "bench-0001",
                "git_sha": _sha(rng)[:12],
                "started_at_utc": "2026-01-01T00:00:00Z",
                "host": "devbox",
                "cells_planned": CELLS,
                "prompts": {"P-EASY": {"sha256": _sha(rng), "max_tokens": 64}},
            },
            separators=(",", ":"),
        )
    ]
    total = len(lines[0])
    i = 0
    while total < size:
        rec = {
            "type": "call",
            "cell_id": rng.choice(CELLS),
            "prompt_id": "P-MEDIUM",
            "phase": rng.choice(["cold", "warm"]),
            "run_idx": i,
            "first_delta_ms": rng.uniform(20, 900),
            "ttft_ms": rng.uniform(20, 900),
            "total_duration_ms": rng.uniform(500, 9000),
            "prompt_tokens": rng.randint(5, 400),
            "completion_tokens": rng.randint(10, 1024),
            "tokens_per_sec": rng.uniform(5, 120),
            "tokens_source": "usage",
            "finish_reason": "stop",
            "backend": "llamacpp",
            "error": None,
            "system_fingerprint": f"b{rng.randint(1000, 9999)}-{_sha(rng)[:8]}",
            "engine_version": f"0.{rng.randint(1, 9)}.{rng.randint(0, 9)}.post1",
        }
        if i % 50 == 7:
            rec["error"] = "HTTP 503: server busy\nretry after 2.5 s"
            rec["error_class"] = "http"
        line = json.dumps(rec, ensure_ascii=False, separators=(",", ":"))
        lines.append(line)
        total += len(line) + 1
        i += 1
    return "\n".join(lines) + "\n"


def metadata_file(rng: random.Random, size: int) -> str:
    targets = []
    text = ""
    while len(text) < size:
        targets.append(
            {
                "cell_id": rng.choice(CELLS),
                "engine": "llamacpp",
                "engine_version": f"b{rng.randint(1000, 9999)}",
                "model": rng.choice(MODELS),
                "model_digest": f"sha256:{_sha(rng)}",
                "quantization": "Q4_K_M",
                "parameters": rng.randint(10**8, 10**10),
                "context_length": 4096,
                "settings": {"temperature": 0.0, "seed": rng.randint(0, 2**31), "n_gpu_layers": 99},
            }
        )
        doc = {
            "id": "bench-0001",
            "title": "Throughput sweep",
            "status": "complete",
            "started_at_utc": "2026-01-01T00:00:00Z",
            "git": {"sha": _sha(rng)[:40], "dirty": False},
            "authors": [{"name": "A. Researcher", "email": "a.researcher@example.org"}],
            "targets": targets,
        }
        text = json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return text


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def markdown_file(rng: random.Random, size: int) -> str:
    parts = ["# Run notes\n"]
    total = 0
    while total < size:
        block = (
            f"\n## Cell `{rng.choice(CELLS)}`\n\n{_sentence(rng, 40)} Engine "
            f"`v{rng.randint(1, 3)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}` "
            f"with `{rng.choice(MODELS)}` &amp; warm cache; see uuid "
            f"`{_sha(rng)[:8]}-{_sha(rng)[:4]}-4{_sha(rng)[:3]}-a{_sha(rng)[:3]}-{_sha(rng)[:12]}`.\n\n"
            f"| metric | value |\n|---|---:|\n| ttft p50 | {rng.uniform(10, 900):.1f} ms |\n"
            f"| token_count | {rng.randint(1, 999)} |\n"
        )
        parts.append(block)
        total += len(block)
    return "".join(parts)


def log_file(rng: random.Random, size: int) -> str:
    lines = []
    total = 0
    t = 0.0
    while total < size:
        t += rng.uniform(0.001, 0.5)
        kind = rng.random()
        if kind < 0.6:
            line = (
                f"2026-01-01T00:{int(t // 60) % 60:02d}:{t % 60:06.3f}Z INFO llama_perf: "
                f"eval time = {rng.uniform(1, 999):.2f} ms / {rng.randint(1, 512)} tokens "
                f"({rng.uniform(1, 99):.2f} ms per token, "
                f"{rng.uniform(5, 150):.2f} tokens per second)"
            )
        elif kind < 0.8:
            port, slot = rng.randint(1024, 65535), rng.randint(0, 7)
            line = f"2026-01-01T00:00:00Z DEBUG listening on 127.0.0.1:{port} slot={slot}"
        elif kind < 0.9:
            line = (
                f"load_tensors: offloaded {rng.randint(1, 33)}/33 layers to GPU, sha256:{_sha(rng)}"
            )
        else:
            line = f"prompt: «{_sentence(rng, 12)}» → {_sentence(rng, 8)}"
        lines.append(line)
        total += len(line) + 1
    return "\n".join(lines) + "\n"


def html_file(rng: random.Random, size: int) -> str:
    head = (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        "<title>Run bench-0001 · LLM benchmark archive</title>\n"
        '<link rel="stylesheet" href="../../assets/style.css">\n</head>\n<body>\n'
        # as on every built page: one character NFKC changes ("…" to "...") sends
        # the page down the gate's line-by-line normalisation
        '<input type="search" placeholder="run id, model, node, word\u2026">\n<main id="main">\n'
    )
    rows = []
    total = len(head)
    while total < size:
        cell = rng.choice(CELLS)
        row = (
            f'<tr><th scope="row"><code>{cell}</code></th><td>{rng.choice(MODELS)}</td>'
            f'<td class="num">{rng.uniform(10, 900):.1f}</td>'
            f'<td class="num">{rng.uniform(5, 120):.2f}</td>'
            f'<td title="&quot;{_sentence(rng, 6)}&quot; &mdash; warm">✓</td>'
            f'<td><code class="digest" title="sha256 {_sha(rng)}">{_sha(rng)[:16]}\u2026</code>'
            "</td></tr>\n"
        )
        if rng.random() < 0.1:
            spec = {
                "data": {
                    "values": [{"x": rng.random(), "y": rng.random(), "c": cell} for _ in range(20)]
                },
                "mark": "line",
                "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
            }
            row += f'<script type="application/json">{json.dumps(spec)}</script>\n'
        rows.append(row)
        total += len(row)
    return head + "<table>\n" + "".join(rows) + "</table>\n</main>\n</body>\n</html>\n"


MIX = (  # (kind, generator, share of the total, typical file size)
    ("jsonl", ledger_file, 0.35, 400_000),
    ("json", metadata_file, 0.10, 60_000),
    ("markdown", markdown_file, 0.05, 20_000),
    ("log", log_file, 0.15, 300_000),
    ("html", html_file, 0.35, 45_000),
)


def build_mix(total_bytes: int, seed: int = 1) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    files = []
    for kind, gen, share, file_size in MIX:
        budget = int(total_bytes * share)
        while budget > 0:
            text = gen(rng, min(file_size, budget))
            files.append((kind, text))
            budget -= len(text.encode())
    return files


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=10.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--tree", type=Path, default=None)
    args = ap.parse_args()

    files = build_mix(int(args.mb * 1_000_000))
    per_kind: dict[str, list[float]] = {}
    sizes: dict[str, int] = {}
    overall: list[float] = []
    findings = 0
    for _ in range(args.repeat):
        start = time.perf_counter()
        kind_time: dict[str, float] = {}
        findings = 0
        for i, (kind, text) in enumerate(files):
            t0 = time.perf_counter()
            findings += len(scan_text(text, f"f{i}", kind=kind))
            kind_time[kind] = kind_time.get(kind, 0.0) + time.perf_counter() - t0
        overall.append(time.perf_counter() - start)
        for kind, t in kind_time.items():
            per_kind.setdefault(kind, []).append(t)
    for kind, text in files:
        sizes[kind] = sizes.get(kind, 0) + len(text.encode())
    total_mb = sum(sizes.values()) / 1e6
    took = statistics.median(overall)
    print(f"mix: {total_mb:.1f} MB in {len(files)} files, findings: {findings} (expected 0)")
    print(
        f"overall, one process: {total_mb / took:.1f} MB/s (median of {args.repeat}: {took:.2f} s)"
    )
    for kind, times in sorted(per_kind.items()):
        rate = sizes[kind] / 1e6 / statistics.median(times)
        print(f"  {kind:9s} {sizes[kind] / 1e6:5.1f} MB  {rate:6.1f} MB/s")
    if args.tree is not None:
        # scan_tree shares many files among worker processes (SITEGEN_WORKERS=1: none)
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            found = scan_tree(args.tree, args.tree.name, Allowlist())
            times.append(time.perf_counter() - t0)
        size = sum(
            p.stat().st_size for p in args.tree.rglob("*") if p.is_file() and not p.is_symlink()
        )
        took = statistics.median(times)
        print(
            f"tree {args.tree}: {size / 1e6:.2f} MB in {took:.2f} s, median of {args.repeat} "
            f"({size / 1e6 / took:.1f} MB/s, {worker_count()} worker(s)), {len(found)} findings"
        )


if __name__ == "__main__":
    main()
