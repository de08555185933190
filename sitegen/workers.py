"""Worker processes for the build's parallel steps: how many, and a map over them.

One setting for every step: ``SITEGEN_WORKERS`` (default one per core; 1 runs
everything in the build's own process, for a machine short of memory).
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

from sitegen.exceptions import BuildError

WORKERS_VARIABLE = "SITEGEN_WORKERS"

Item = TypeVar("Item")
Result = TypeVar("Result")


def worker_count() -> int:
    """Worker processes a step may start: ``SITEGEN_WORKERS``, else one per core."""
    value = os.environ.get(WORKERS_VARIABLE, "").strip()
    if not value:
        return os.cpu_count() or 1
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        raise BuildError(
            f"{WORKERS_VARIABLE}={value!r}: expected a whole number of worker processes (1 or more)"
        )
    return count


def workers_for(jobs: int, above: int, per_worker: int) -> int:
    """Worker processes for ``jobs`` independent jobs: none (1) up to ``above``,
    where starting them costs more than they save; else at most one per
    ``per_worker`` jobs, and never more than :func:`worker_count`."""
    return min(worker_count(), jobs // per_worker) if jobs > above else 1


@contextmanager
def spawned_map(
    fn: Callable[[Item], Result], items: Iterable[Item], workers: int, chunksize: int = 1
) -> Iterator[Iterator[Result]]:
    """``fn`` over ``items``, results in order, in ``workers`` spawned processes.

    Spawned, not forked: forking a build whose Polars thread pool is running can
    deadlock the children, and these steps need nothing of the build's memory
    (``fn`` and the items are sent). One worker runs ``fn`` here instead. When the
    caller stops early (an error, Ctrl-C), work not yet started is cancelled
    rather than waited for.
    """
    if workers < 2:
        yield map(fn, items)
        return
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"))
    try:
        yield pool.map(fn, items, chunksize=chunksize)
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()
