"""``sitegen run``: guards, probes, then 1 cold + N warm calls per (cell, prompt).

One asyncio code path serves single-stream and ``--concurrency N`` runs: each
(cell, prompt) starts with its cold call alone (nothing else in flight, so
the cold number is not polluted), then its warm calls are shared by up to N
workers. With N = 1 this is exactly the reference order.

Every finished call is appended to the ledger at once (from a single writer
thread, so an fsync never stalls the event loop that is timing other
streams). SIGINT and SIGTERM stop the calls in flight, write an end record
marked ``interrupted`` and package what was recorded.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import platform
import signal
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, TextIO

import httpx

from sitegen import __version__
from sitegen.exceptions import RunnerError
from sitegen.layout import RUNS, Layout
from sitegen.prompts import Prompt, load_prompts, select_prompts
from sitegen.runner import contention, engines, guards
from sitegen.runner.cells import Cell, host_node, load_cells, load_inventory, select_cells
from sitegen.runner.progress import Progress, summary_table, text_table
from sitegen.runner.recorder import RESPONSES_BESIDE_LEDGER, LedgerWriter, finite
from sitegen.runner.scrub import Scrubber
from sitegen.runner.sse import stream_call
from sitegen.runner.stats import warm_throughput

HARNESS_NAME = "sitegen-runner"
LEDGER_VERSION = 1
Echo = Callable[[str], None]


def utc_now(precise: bool = False) -> str:
    """ISO 8601 UTC ending in Z (milliseconds when ``precise``)."""
    now = datetime.now(UTC)
    if precise:
        return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class RunOptions:
    """Everything ``sitegen run`` accepts (see docs/runner.md)."""

    cells_path: Path
    prompts_path: Path | None = None
    runs_dir: Path = Path(RUNS)
    nodes_path: Path | None = None
    warm: int = 5
    concurrency: int = 1
    probe_only: bool = False
    smoke: bool = False
    allow_dirty: bool = False
    force_load: bool = False
    for_publication: bool = False
    host_node: str | None = None
    cell_ids: tuple[str, ...] = ()
    prompt_ids: tuple[str, ...] = ()
    call_timeout_s: float = 300.0
    stall_timeout_s: float = 60.0
    title: str | None = None
    description: str | None = None
    tags: tuple[str, ...] = ()
    authors: tuple[str, ...] = ()
    license: str = "CC-BY-4.0"
    baseline: bool = False
    dirty_note: str | None = None
    exclusive: str | None = None
    authorization: str | None = None
    window: str | None = None
    package: bool = True
    progress: bool = True
    git_dir: Path | None = None
    stream: TextIO | None = None


@dataclass
class RunOutcome:
    """What a run produced, for the CLI and for tests."""

    run_id: str | None
    ledger: Path | None = None
    package: Path | None = None
    status: str = "complete"
    calls: list[dict[str, Any]] = field(default_factory=list)
    probes: list[engines.Probe] = field(default_factory=list)


def client_versions() -> dict[str, Any]:
    """Versions of the client stack, recorded so overhead changes are traceable."""
    out: dict[str, Any] = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "sitegen": __version__,
    }
    for dist in ("httpx", "httpcore", "h11", "anyio"):
        try:
            out[dist] = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            out[dist] = None
    return out


def probe_table(probes: list[engines.Probe]) -> str:
    """The ``--probe`` table: availability and identity per cell."""
    rows = []
    for p in probes:
        t = p.target
        rows.append(
            [
                p.cell_id,
                "ok" if p.ok else "SKIP",
                f"{p.health_ms:.1f}" if p.health_ms is not None else "—",
                str(t.get("engine_version") or "—"),
                str(t.get("quantization") or "—"),
                str(t.get("context_length") or "—"),
                (str(t.get("model_digest") or "—"))[:19],
                p.reason or "; ".join(p.notes) or "",
            ]
        )
    headers = ["cell", "probe", "ms", "engine", "quant", "ctx", "digest", "note"]
    return text_table(headers, rows)


async def probe_all(cells: list[Cell]) -> list[engines.Probe]:
    """Probe every cell concurrently (each health check has a 1 s timeout)."""
    async with httpx.AsyncClient(trust_env=False) as client:
        return list(await asyncio.gather(*(engines.probe(client, c) for c in cells)))


class _Log:
    """run.log: timestamped, scrubbed, flushed line by line."""

    def __init__(self, path: Path, scrub: Scrubber):
        self.fh = path.open("a", encoding="utf-8")
        self.scrub = scrub

    def __call__(self, text: str) -> None:
        for line in self.scrub.text(text).splitlines() or [""]:
            self.fh.write(f"{utc_now(True)} {line}\n")
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()


def run(options: RunOptions, echo: Echo | None = None) -> RunOutcome:
    """Run a benchmark as ``options`` say; see the module docstring for the flow."""
    echo = echo or (lambda s: print(s, file=options.stream or sys.stdout))
    if options.warm < 0:
        raise RunnerError("--warm must be 0 or more")
    if options.concurrency < 1:
        raise RunnerError("--concurrency must be 1 or more")
    cells = select_cells(load_cells(options.cells_path), options.cell_ids)
    prompts = select_prompts(load_prompts(options.prompts_path), options.prompt_ids)
    inventory = load_inventory(options.nodes_path)
    host = host_node(inventory, options.host_node)

    if options.probe_only:
        probes = asyncio.run(probe_all(cells))
        echo(probe_table(probes))
        return RunOutcome(None, probes=probes)

    git = guards.git_state(options.git_dir)
    guards.check_dirty(git, options.allow_dirty)
    load_start = guards.load_average()
    guards.check_load(load_start, options.force_load)

    probes = asyncio.run(probe_all(cells))
    failed = [(p.cell_id, p.reason or "probe failed") for p in probes if not p.ok]
    guards.check_publication(failed, options.for_publication)
    ok_cells = [c for c, p in zip(cells, probes, strict=True) if p.ok]
    guards.check_versions(
        [p.target for p in probes if p.ok and p.cell_id in {c.cell_id for c in ok_cells}],
        options.for_publication,
    )
    warm = options.warm
    if options.smoke:
        ok_cells, prompts, warm = ok_cells[:1], prompts[:1], 0
    if not ok_cells:
        echo(probe_table(probes))
        raise RunnerError("no cell passed its probe; nothing to run")

    sampler = contention.Sampler()
    for cell in ok_cells:
        sampler.locate(cell.cell_id, cell.endpoint, cell.engine_pid)

    runs_dir = options.runs_dir
    layout = Layout.of(runs_dir.resolve().parent)
    run_id = str(uuid.uuid4())
    ledger_dir = layout.ledgers
    ledger_dir.mkdir(parents=True, exist_ok=True)
    ledger_path = ledger_dir / f"{run_id}.jsonl"
    secrets = [engines.auth_headers(c).get("authorization", "")[7:] for c in cells]
    scrub = Scrubber(((c.endpoint, c.node) for c in cells), extra=secrets)
    log = _Log(ledger_dir / f"{run_id}.log", scrub)
    probes_doc = {
        p.cell_id: scrub.obj(
            {
                "ok": p.ok,
                "reason": p.reason,
                "health_ms": p.health_ms,
                "target": p.target,
                "snapshots": p.snapshots,
                "notes": p.notes,
            }
        )
        for p in probes
    }
    from sitegen.jsonio import dumps as canonical

    probes_text = canonical(finite(probes_doc))
    (ledger_dir / f"{run_id}.probes.json").write_text(probes_text, encoding="utf-8")

    meta = {
        "type": "meta",
        "ledger_version": LEDGER_VERSION,
        "benchmark_run_id": run_id,
        "git_sha": git.sha,
        "git_dirty": git.dirty,
        "git_dirty_files": git.dirty_files,
        "git_dirty_note": options.dirty_note,
        "harness_name": HARNESS_NAME,
        "harness_version": __version__,
        "started_at_utc": utc_now(),
        "host": host,
        "load_avg_start": load_start,
        "for_publication": options.for_publication,
        "machine_sampling": sampler.available,
        "cells_planned": [c.cell_id for c in ok_cells],
        "cells_skipped": [cid for cid, _ in failed],
        "prompts": {p.id: {"sha256": p.sha256, "max_tokens": p.max_tokens} for p in prompts},
        "concurrency": options.concurrency,
        "warm_runs": warm,
        "smoke": options.smoke,
        "call_timeout_s": options.call_timeout_s,
        "stall_timeout_s": options.stall_timeout_s,
        "client": client_versions(),
        "synthetic": False,
        "targets": [probes_doc[c.cell_id]["target"] for c in cells],
        "nodes": {
            n: inventory.nodes[n]
            for n in sorted({c.node for c in cells} | {host})
            if n in inventory.nodes
        },
        "publish": {
            "title": options.title,
            "description": options.description,
            "tags": list(options.tags),
            "authors": list(options.authors) or [a for a in [guards.git_author()] if a],
            "license": options.license,
            "baseline": options.baseline,
        },
    }
    authors = list(options.authors) or [a for a in [guards.git_author()] if a]
    by = authors[0] if authors else None
    for key in ("exclusive", "authorization", "window"):
        text = getattr(options, key)
        if text:
            meta[key] = {"statement": text, "by": by}
    writer = LedgerWriter(ledger_path)
    # What the model answered, one line per call, beside the ledger.
    texts_path = ledger_path.with_name(f"{run_id}.{RESPONSES_BESIDE_LEDGER}")
    texts = LedgerWriter(texts_path, check=lambda _record: None)
    progress = Progress(
        len(ok_cells) * len(prompts) * (1 + warm),
        stream=sys.stderr,
        log=log,
        enabled=options.progress,
    )
    log(
        f"run {run_id} on {host}: {len(ok_cells)} cell(s) x {len(prompts)} prompt(s), "
        f"1 cold + {warm} warm, concurrency {options.concurrency}"
    )
    outcome = RunOutcome(run_id, ledger_path, probes=probes)
    try:
        writer.write(meta)
        skips = []
        for cell_id, reason in failed:
            skip = {
                "type": "skip",
                "cell_id": cell_id,
                "reason": scrub.text(reason),
                "phase": "skipped",
                "prompt_id": None,
            }
            writer.write(skip)
            skips.append(skip)
            progress.note(f"skipped {cell_id}: {reason}")
        for p in probes:
            for note in p.notes:
                log(f"probe {p.cell_id}: {note}")
        session = _Session(
            options, ok_cells, prompts, warm, writer, scrub, progress, log, sampler, texts
        )
        started = time.monotonic()
        interrupted_reason = asyncio.run(session.execute())
        progress.finish()
        outcome.calls = session.calls
        rate, tps, _wall = warm_throughput(session.calls)
        end: dict[str, Any] = {
            "type": "end",
            "finished_at_utc": utc_now(),
            "load_avg_end": guards.load_average(),
            "calls": len(session.calls),
            "errors": sum(1 for c in session.calls if c.get("error")),
            "skipped": len(skips),
            "results": 0,
            "interrupted": interrupted_reason is not None,
            "interrupted_reason": interrupted_reason,
            "wall_s": round(time.monotonic() - started, 3),
            "request_throughput": rate,
            "output_tokens_per_sec": tps,
        }
        machine = contention.summarise(session.calls)
        if machine is not None:
            end["machine"] = machine
        writer.write(end)
        outcome.status = "interrupted" if interrupted_reason else "complete"
        if interrupted_reason:
            progress.note(f"interrupted ({interrupted_reason}): {len(session.calls)} call(s) kept")
        echo(summary_table(session.calls, skips))
        if rate is not None:
            echo(
                f"warm capacity: {rate:.2f} req/s, {tps:.1f} output tok/s "
                f"at concurrency {options.concurrency}"
            )
    finally:
        writer.close()
        texts.close()
        log.close()
    echo(f"ledger: {ledger_path}")
    if options.package:
        from sitegen.runner.packaging import package_ledger

        outcome.package = package_ledger(
            ledger_path, runs_dir=runs_dir, nodes_path=options.nodes_path, echo=echo
        )
    return outcome


class _Session:
    """The asynchronous part of one run: the calls, in order, with workers."""

    def __init__(
        self,
        options: RunOptions,
        cells: list[Cell],
        prompts: list[Prompt],
        warm: int,
        writer: LedgerWriter,
        scrub: Scrubber,
        progress: Progress,
        log: Callable[[str], None],
        sampler: contention.Sampler | None = None,
        texts: LedgerWriter | None = None,
    ):
        self.options = options
        self.texts = texts
        self.cells = cells
        self.prompts = prompts
        self.warm = warm
        self.writer = writer
        self.scrub = scrub
        self.progress = progress
        self.log = log
        self.sampler = sampler or contention.Sampler()
        self.calls: list[dict[str, Any]] = []
        self.cold = engines.ColdState()
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ledger")
        self._t0 = 0

    async def execute(self) -> str | None:
        """Run every call; return the interruption reason, or None when complete."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        reason: list[str] = []

        def stop(name: str) -> None:
            if not reason:
                reason.append(name)
                assert task is not None
                task.cancel()

        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop, sig.name)
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                pass
        try:
            await self._calls()
        except asyncio.CancelledError:
            if not reason:
                raise
            if task is not None:
                task.uncancel()
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
            self._pool.shutdown(wait=True)
        return reason[0] if reason else None

    async def _calls(self) -> None:
        opts = self.options
        timeout = httpx.Timeout(opts.stall_timeout_s, connect=min(opts.stall_timeout_s, 10.0))
        # One small client per worker: httpx's shared pool costs grow with the
        # square of its connections, which would throttle --concurrency 64.
        limits = httpx.Limits(max_connections=4, max_keepalive_connections=4)
        tls = httpx.create_ssl_context()  # loading CA certificates once, not per client
        self._t0 = time.perf_counter_ns()
        async with contextlib.AsyncExitStack() as stack:
            clients = [
                await stack.enter_async_context(
                    httpx.AsyncClient(timeout=timeout, limits=limits, verify=tls, trust_env=False)
                )
                for _ in range(max(1, min(opts.concurrency, self.warm)))
            ]
            for cell in self.cells:
                for prompt in self.prompts:
                    cold_kind = await engines.prepare_cold(clients[0], cell, self.cold)
                    await self._one(clients[0], cell, prompt, "cold", 0, 0, cold_kind)
                    engines.mark_served(cell, self.cold)
                    pending = list(range(self.warm))

                    async def worker(
                        w: int,
                        cell: Cell = cell,
                        prompt: Prompt = prompt,
                        pending: list[int] = pending,
                    ) -> None:
                        while pending:
                            idx = pending.pop(0)
                            await self._one(clients[w], cell, prompt, "warm", idx, w, None)

                    await asyncio.gather(*(worker(w) for w in range(min(len(clients), self.warm))))

    def _write(self, record: dict[str, Any], text: dict[str, Any] | None) -> None:
        """The ledger line first: the text file is a companion, never the only trace."""
        self.writer.write(record)
        if text is not None and self.texts is not None:
            self.texts.write(text)

    async def _one(
        self,
        client: httpx.AsyncClient,
        cell: Cell,
        prompt: Prompt,
        phase: str,
        run_idx: int,
        worker: int,
        cold_kind: str | None,
    ) -> None:
        started_at = utc_now(True)
        # Sampled outside the timed request: /proc reads never count in a duration.
        mark = self.sampler.start(cell.cell_id)
        offset_ns = time.perf_counter_ns() - self._t0
        m = await stream_call(
            client,
            engines.chat_url(cell),
            engines.request_body(cell, prompt),
            native=engines.is_native(cell),
            headers=engines.auth_headers(cell),
            call_timeout_s=self.options.call_timeout_s,
        )
        machine = self.sampler.finish(cell.cell_id, mark)
        record: dict[str, Any] = {
            "type": "call",
            "cell_id": cell.cell_id,
            "prompt_id": prompt.id,
            "phase": phase,
            "run_idx": run_idx,
        }
        if phase == "cold":
            record["cold_kind"] = cold_kind
        fields = m.fields()
        for key in ("error", "system_fingerprint"):
            if isinstance(fields.get(key), str):
                fields[key] = self.scrub.text(fields[key])
        if fields.get("server_timings") is not None:
            fields["server_timings"] = self.scrub.obj(fields["server_timings"])
        record.update(fields)
        record.update(
            {
                "backend": cell.engine,
                "cache_prompt": engines.cache_prompt(cell),
                "started_at_utc": started_at,
                "request_offset_ms": round(offset_ns / 1e6, 3),
                "worker": worker,
            }
        )
        if machine is not None:
            record.update(machine)
        # Counted before the await: once submitted, the writer thread finishes the
        # line even if an interrupt cancels this coroutine meanwhile.
        self.calls.append(record)
        text = None
        if self.texts is not None:
            text = {k: record[k] for k in ("cell_id", "prompt_id", "phase", "run_idx", "worker")}
            text["text"] = self.scrub.text(m.text)
            if m.reasoning:
                text["reasoning"] = self.scrub.text(m.reasoning)
        write = asyncio.get_running_loop().run_in_executor(self._pool, self._write, record, text)
        await write
        self.progress.call(record)
        if m.error:
            self.log(
                f"  {cell.cell_id} {prompt.id} {phase} #{run_idx}: "
                f"{record['error_class']}: {record['error']}"
            )
