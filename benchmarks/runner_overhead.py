"""How much the runner itself costs: client time per call, and request rate at concurrency 64.

    python benchmarks/runner_overhead.py [--reps 5] [--calls 200] [--requests 640]

A fake llama.cpp server (tests/fake_engine.py, a subprocess on 127.0.0.1)
answers every request instantly with a 16-token stream, usage chunk and
[DONE]. Two figures, each the median of ``--reps`` repetitions:

(a) Client time added per call, p50. Baseline: a bare httpx loop that POSTs
    the same body and reads the stream to the end without parsing. Runner:
    ``sitegen run`` single-stream against the same server; its per-call cycle
    is the gap between consecutive warm calls' ``request_offset_ms`` (so it
    includes SSE parsing, metric derivation, schema validation, the fsync'd
    ledger line and the progress update). Added = p50(runner cycle) -
    p50(baseline cycle).

(b) Request rate the runner sustains with ``--concurrency 64`` (its own
    ``request_throughput`` over the warm window), next to the bare httpx
    client (one connection per worker, connected beforehand) with 64
    requests in flight against the same server: what the server and the
    transport allow on this machine without any of the runner's work.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sitegen.runner import RunOptions, run  # noqa: E402
from sitegen.runner.sse import percentile  # noqa: E402

BODY = {
    "model": "tiny",
    "messages": [{"role": "user", "content": "hi\n"}],
    "max_tokens": 64,
    "stream": True,
    "stream_options": {"include_usage": True},
    "cache_prompt": False,
}


def start_server(tokens: int) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tests" / "fake_engine.py"),
            "--engine",
            "llamacpp",
            "--tokens",
            str(tokens),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("PORT "):
        proc.kill()
        raise SystemExit(f"fake engine did not start: {line!r}")
    return proc, f"http://127.0.0.1:{int(line.split()[1])}"


async def bare_cycles(url: str, calls: int) -> list[float]:
    """Per-call wall time (ms) of a bare httpx streaming loop, one at a time."""
    data = json.dumps(BODY).encode()
    out = []
    async with httpx.AsyncClient(timeout=30) as client:
        for _ in range(calls + 5):
            t0 = time.perf_counter_ns()
            async with client.stream(
                "POST",
                url + "/v1/chat/completions",
                content=data,
                headers={"content-type": "application/json"},
            ) as resp:
                async for _chunk in resp.aiter_bytes():
                    pass
            out.append((time.perf_counter_ns() - t0) / 1e6)
    return out[5:]


async def bare_rate(url: str, requests: int, concurrency: int) -> float:
    """Requests/s of bare httpx streams, ``concurrency`` in flight, one client each.

    One client per worker, as the runner does: a single shared httpx pool with
    64 connections spends most of its time in its own bookkeeping.
    """
    data = json.dumps(BODY).encode()
    pending = list(range(requests))
    headers = {"content-type": "application/json"}

    async def worker() -> None:
        async with httpx.AsyncClient(timeout=60) as client:
            await client.get(url + "/health")
            await ready.wait()
            while pending:
                pending.pop()
                async with client.stream(
                    "POST", url + "/v1/chat/completions", content=data, headers=headers
                ) as r:
                    async for _chunk in r.aiter_bytes():
                        pass

    ready = asyncio.Event()
    tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
    await asyncio.sleep(0.5)  # let every worker connect first
    t0 = time.perf_counter()
    ready.set()
    await asyncio.gather(*tasks)
    return requests / (time.perf_counter() - t0)


def runner(url: str, workdir: Path, warm: int, concurrency: int) -> list[dict]:
    """One ``sitegen run`` (in-process, not packaged); returns its ledger records."""
    cells = workdir / "cells.yaml"
    cells.write_text(
        f"cells:\n  - {{node: bench, engine: llamacpp, model: tiny, endpoint: '{url}'}}\n"
    )
    outcome = run(
        RunOptions(
            cells_path=cells,
            runs_dir=workdir / "runs",
            warm=warm,
            concurrency=concurrency,
            prompt_ids=("P-EASY",),
            force_load=True,
            progress=False,
            package=False,
            git_dir=workdir,
        ),
        echo=io.StringIO().write,
    )
    assert outcome.ledger is not None
    return [json.loads(x) for x in outcome.ledger.read_text().splitlines()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--calls", type=int, default=200, help="calls per single-stream rep")
    parser.add_argument("--requests", type=int, default=640, help="requests per c=64 rep")
    parser.add_argument("--tokens", type=int, default=16)
    args = parser.parse_args()
    proc, url = start_server(args.tokens)
    added, bare_p50s, runner_p50s, outside_p50s = [], [], [], []
    rates, bare_rates = [], []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for rep in range(args.reps):
                bare = asyncio.run(bare_cycles(url, args.calls))
                work = Path(tmp) / f"single-{rep}"
                work.mkdir()
                records = runner(url, work, args.calls, 1)
                warm = [r for r in records if r.get("type") == "call" and r["phase"] == "warm"]
                offsets = [r["request_offset_ms"] for r in warm]
                cycles = [b - a for a, b in itertools.pairwise(offsets)]
                outside = [c - r["wall_ms"] for c, r in zip(cycles, warm, strict=False)]
                bare_p50s.append(percentile(bare, 50))
                runner_p50s.append(percentile(cycles, 50))
                outside_p50s.append(percentile(outside, 50))
                added.append(runner_p50s[-1] - bare_p50s[-1])

                work = Path(tmp) / f"c64-{rep}"
                work.mkdir()
                records = runner(url, work, args.requests, 64)
                end = records[-1]
                errors = sum(1 for r in records if r.get("type") == "call" and r["error"])
                if errors:
                    print(f"warning: {errors} errored calls at concurrency 64", file=sys.stderr)
                rates.append(end["request_throughput"])
                bare_rates.append(asyncio.run(bare_rate(url, args.requests, 64)))
                print(
                    f"rep {rep + 1}/{args.reps}: added {added[-1]:.3f} ms/call, "
                    f"runner c=64 {rates[-1]:.0f} req/s, bare c=64 {bare_rates[-1]:.0f} req/s",
                    file=sys.stderr,
                )
    finally:
        proc.terminate()
        proc.wait(10)
    med = statistics.median
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, load average now {load}"
    )
    print(
        f"fake llama.cpp server (subprocess, instant {args.tokens}-token stream); "
        f"medians of {args.reps} repetitions"
    )
    print(f"(a) single stream, {args.calls} calls per repetition:")
    print(f"    bare httpx per-call cycle p50      {med(bare_p50s):8.3f} ms")
    print(f"    runner per-call cycle p50          {med(runner_p50s):8.3f} ms")
    print(f"    client time added per call (p50)   {med(added):8.3f} ms")
    print(
        f"    of which after the stream ends     {med(outside_p50s):8.3f} ms "
        "(record, schema check, fsync'd ledger line)"
    )
    print(f"(b) --concurrency 64, {args.requests} requests per repetition:")
    print(f"    runner sustained request rate      {med(rates):8.0f} req/s")
    print(
        f"    bare httpx, 64 in flight           {med(bare_rates):8.0f} req/s "
        "(same server, none of the runner's work)"
    )


if __name__ == "__main__":
    main()
