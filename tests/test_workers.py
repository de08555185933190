"""Worker processes: one setting for every step, results in order, none when told."""

from __future__ import annotations

import os

import pytest

from sitegen.exceptions import BuildError
from sitegen.workers import spawned_map, worker_count, workers_for


def test_sitegen_workers_sets_how_many_and_one_keeps_everything_in_the_build(monkeypatch):
    monkeypatch.setenv("SITEGEN_WORKERS", "1")
    assert worker_count() == 1
    assert workers_for(10_000, 256, 16) == 1  # many jobs, still none started
    monkeypatch.setenv("SITEGEN_WORKERS", "3")
    assert workers_for(10_000, 256, 16) == 3
    assert workers_for(256, 256, 16) == 1  # too few to pay for starting them
    assert workers_for(300, 256, 100) == 3
    monkeypatch.delenv("SITEGEN_WORKERS")
    assert worker_count() == (os.cpu_count() or 1)


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_a_bad_count_names_the_variable(monkeypatch, value):
    monkeypatch.setenv("SITEGEN_WORKERS", value)
    with pytest.raises(BuildError, match=f"SITEGEN_WORKERS='{value}': expected a whole number"):
        worker_count()


def test_a_spawned_map_gives_results_in_order_from_other_processes():
    items = list(range(40))
    with spawned_map(abs, [-i for i in items], 2, chunksize=3) as out:
        assert list(out) == items
    with spawned_map(_pid, items, 2, chunksize=4) as pids:
        seen = set(pids)
    assert os.getpid() not in seen
    with spawned_map(_pid, items, 1) as pids:
        assert set(pids) == {os.getpid()}


def _pid(_: object) -> int:
    return os.getpid()
