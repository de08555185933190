"""Rendering many pages at once in worker processes, one per core.

A build that renders every run page (a new ``--out``, a changed template) spends
most of its time in Jinja, one page at a time; the pages are independent, so
they are split among forked workers that share the loaded archive with the
build (copy on write) and send back each page's HTML. The build adds them in
the order it asked for them, so the site is byte for byte the same with or
without the pool.

Forked, not spawned: a spawned worker would need the whole page context
pickled to it. Forking a process whose Polars thread pool is running can
deadlock a child that calls Polars, and rendering never does; a worker that
does not answer in time, fails or dies is given up, and its pages are rendered
here (a dead worker's slice after the timeout).

A page that asks for a chart not yet drawn gets a placeholder in the build's
chart batch; a worker's copy of the batch is not the build's, so such a page is
rendered again here, where the placeholder counts.
"""

from __future__ import annotations

import gc
import multiprocessing as mp
import signal
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sitegen import charts
from sitegen.fsutil import fault
from sitegen.workers import worker_count

Job = TypeVar("Job")
Out = TypeVar("Out")

POOL_ABOVE = 400  # pages: below this, starting workers costs more than it saves
SLICE = 100  # pages a worker renders per task
TASK_TIMEOUT = 120.0  # seconds a slice may take before its pages are rendered here


@dataclass
class Rendered:
    """What a worker made of one slice: each job's output (None: make it in the build),
    and the chart-cache hits and comparisons read for the outputs it kept."""

    pages: list[Any]
    chart_hits: int
    decoded: int


# Set by render_all just before forking: the workers inherit it.
_WORK: tuple[Callable[[Any], Any], Sequence[Any], Callable[[], int]] | None = None


def _render_slice(bounds: tuple[int, int]) -> Rendered:
    assert _WORK is not None
    render, jobs, decoded_count = _WORK
    batch = charts.current_batch()
    pages: list[Any] = []
    hits = 0
    decoded_before = decoded_count()
    for job in jobs[bounds[0] : bounds[1]]:
        placed = len(batch.placements) if batch is not None else 0
        hits_before = batch.hits if batch is not None else 0
        made = render(job)
        if batch is not None and len(batch.placements) != placed:
            pages.append(None)  # a chart to draw: the build renders this page itself
            continue
        hits += (batch.hits - hits_before) if batch is not None else 0
        pages.append(made)
    return Rendered(pages, hits, decoded_count() - decoded_before)


def _worker_start() -> None:
    # The build's own handlers turn SIGTERM into an exception with a traceback; a
    # worker stopped by the build (or by Ctrl-C with it) just ends. A build that
    # ignores Ctrl-C (started in the background, under nohup) keeps its workers too.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.SIG_DFL)


def _task(bounds: tuple[int, int]) -> Rendered:
    # A worker is sent this function's name and the bounds; it finds _render_slice in
    # its own (inherited) module, so a replacement set before the fork is the one run.
    return _render_slice(bounds)


def render_all(
    jobs: Sequence[Job],
    render: Callable[[Job], Out],
    decoded_count: Callable[[], int],
    on_decoded: Callable[[int], None],
    workers: int | None = None,
) -> Generator[tuple[Job, Out], None, None]:
    """(job, its output) for every job, in order; in worker processes when there are many.

    ``decoded_count`` reads, and ``on_decoded`` adds to, the build's count of
    comparisons read in full, which the workers' reads belong to. A slice whose
    worker fails, is late or dies (killed, out of memory) is rendered here.
    """
    global _WORK
    workers = workers or worker_count()
    if len(jobs) < POOL_ABOVE or workers < 2 or "fork" not in mp.get_all_start_methods():
        for job in jobs:
            yield job, render(job)
        return
    bounds = [(i, min(i + SLICE, len(jobs))) for i in range(0, len(jobs), SLICE)]
    _WORK = (render, jobs, decoded_count)
    batch = charts.current_batch()
    # Objects that exist now are left out of the workers' cycle collections: a
    # collection writes to every object it visits, which would copy each page of
    # the inherited archive into each worker.
    gc.freeze()
    try:
        pool = mp.get_context("fork").Pool(workers, initializer=_worker_start)
    finally:
        gc.unfreeze()
    answered = False
    try:
        results: list[Any] = [pool.apply_async(_task, (b,)) for b in bounds]
        given_up = 0
        for k, (start, end) in enumerate(bounds):
            # Each answer is let go once its pages are taken: holding every slice's
            # text until the end doubled what the build kept of the rendered site.
            result, results[k] = results[k], None
            try:
                done: Rendered | None = result.get(TASK_TIMEOUT)
            except Exception:  # failed, or late (its worker hangs or died): rendered here
                done = None
                given_up += 1
            del result
            if done is not None:
                if batch is not None:
                    batch.hits += done.chart_hits
                on_decoded(done.decoded)
            fault("rendering")  # a test's Ctrl-C or kill while the workers render
            for i in range(start, end):
                made = done.pages[i - start] if done is not None else None
                yield jobs[i], made if made is not None else render(jobs[i])
        answered = given_up == 0
    finally:
        if answered:
            pool.close()  # every slice answered: the workers end on their own
        else:
            # A failed or stopped build, or a slice given up: a dead worker's task
            # would keep a closed pool waiting for ever, so end the workers now.
            pool.terminate()
        pool.join()
        _WORK = None
