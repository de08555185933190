"""Run pages rendered by worker processes: the same site, byte for byte, as rendered
by the build alone, whatever a worker does (asks for an undrawn chart, fails)."""

from __future__ import annotations

import gc
import os
import re
import shutil
import signal
import subprocess
import sys
import weakref
from pathlib import Path

import pytest
from conftest import cli_in, generate_archive

from sitegen.output import Deferred, Outputs
from sitegen.pages import pool


def tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def archive(folder: Path) -> Path:
    generate_archive.generate(folder, 13, warm=2, cells=2, prompts=2, seed=3)
    return folder


def report(output: str) -> list[str]:
    """The build's summary lines that must not depend on who rendered the pages."""
    keep = ("pages: ", "comparisons: ", "charts: ", "search: ")
    lines = [line for line in output.splitlines() if line.startswith(keep) and "/" not in line]
    return [re.sub(r" in [0-9.]+ s$", "", line) for line in lines]  # not the time taken


@pytest.fixture
def alone(tmp_path: Path) -> tuple[Path, list[str]]:
    """The archive built with every page rendered by the build itself (too few for a pool)."""
    root = archive(tmp_path / "alone")
    result = cli_in(root, "build")
    assert result.exit_code == 0, result.output
    return root, report(result.output)


def forced_pool(monkeypatch: pytest.MonkeyPatch, record: Path) -> None:
    """A pool for any number of pages, small slices, and each worker noting its pid."""
    monkeypatch.setattr(pool, "POOL_ABOVE", 1)
    monkeypatch.setattr(pool, "SLICE", 3)
    real = pool._render_slice

    def noted(bounds: tuple[int, int]) -> pool.Rendered:
        assert pool._WORK is not None
        jobs = pool._WORK[1][bounds[0] : bounds[1]]
        with record.open("a") as f:
            for job in jobs:  # a run page job, or another page deferred by the build
                rel = job.rel if isinstance(job, Deferred) else job.files[0][0]
                f.write(f"{os.getpid()} {rel}\n")
        return real(bounds)

    monkeypatch.setattr(pool, "_render_slice", noted)


def test_pages_rendered_by_workers_equal_pages_rendered_alone(
    tmp_path: Path, alone: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first build: every run page with charts asks for charts not drawn yet, so the
    workers hand those back; the rest they render. Same bytes, same report."""
    record = tmp_path / "workers.txt"
    forced_pool(monkeypatch, record)
    root = archive(tmp_path / "pooled")
    result = cli_in(root, "build")
    assert result.exit_code == 0, result.output
    pids = {line.split()[0] for line in record.read_text().splitlines()}
    assert pids and str(os.getpid()) not in pids  # rendered in other processes
    assert tree(root / "site") == tree(alone[0] / "site")
    assert (root / "catalogue.json").read_bytes() == (alone[0] / "catalogue.json").read_bytes()
    assert report(result.output) == alone[1]

    # every page again into a new folder, the charts drawn: all from the workers
    record.unlink()
    holds = tmp_path / "holds.txt"
    real_hold = Outputs.hold

    def noted_hold(self: Outputs, content: bytes | str, sha256: str | None = None):
        with holds.open("a") as f:
            f.write(f"{os.getpid()}\n")
        return real_hold(self, content, sha256)

    monkeypatch.setattr(Outputs, "hold", noted_hold)
    again = cli_in(root, "build", "--out", "again")
    assert again.exit_code == 0, again.output
    rendered = {line.split()[1] for line in record.read_text().splitlines()}
    # ... and spool what they render themselves: the build writes only the pages made
    # after the pool (methodology, data, 404, feeds, sitemap and the like)
    held_by = holds.read_text().split()
    assert held_by.count(str(os.getpid())) < 20 < len(held_by)
    # the workers render the list pages and data files with the run pages
    assert {"index.html", "changes/index.html", "runs/synthetic-00000/samples.json"} <= rendered
    assert any(rel.startswith("models/") for rel in rendered)
    assert tree(root / "again") == tree(alone[0] / "site")


def test_a_failing_worker_leaves_its_pages_to_the_build(
    tmp_path: Path, alone: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pool, "POOL_ABOVE", 1)
    monkeypatch.setattr(pool, "SLICE", 3)

    def broken(bounds: tuple[int, int]) -> pool.Rendered:
        raise MemoryError("a worker ran out of memory")

    monkeypatch.setattr(pool, "_render_slice", broken)
    root = archive(tmp_path / "pooled")
    result = cli_in(root, "build")
    assert result.exit_code == 0, result.output
    assert tree(root / "site") == tree(alone[0] / "site")


def test_a_broken_template_is_reported_by_file_and_line_from_a_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The template is first compiled in a worker; the error reaches the publisher as
    the build alone reports it, and the previous site stays."""
    forced_pool(monkeypatch, tmp_path / "workers.txt")
    root = archive(tmp_path / "pooled")
    assert cli_in(root, "build").exit_code == 0
    before = tree(root / "site")
    (root / "templates").mkdir()
    (root / "templates" / "run.html").write_text(
        '{% extends "base.html" %}\n{% block main %}\n{{ run.title | no_such_filter }}\n'
        "{% endblock %}\n",
        encoding="utf-8",
    )
    result = cli_in(root, "build", "--force")
    assert result.exit_code != 0
    assert "templates/run.html:3: template error" in result.output, result.output
    assert "Traceback" not in result.output
    assert tree(root / "site") == before


def pooled_build(
    root: Path,
    slice_code: str = "",
    *,
    marker: str = "",
    env: dict[str, str] | None = None,
    **popen: object,
) -> subprocess.CompletedProcess[str]:
    """``sitegen build --out fresh`` (every page to render) in a new session, every run
    page in a pool of two workers (slices of 2, given up after 5 s), each slice first
    running ``slice_code`` in its worker; ``marker`` is put in its command line."""
    code = (
        f"# {marker}\n"
        "import os, signal\n"
        "import sitegen.pages.pool as pool\n"
        "pool.POOL_ABOVE, pool.SLICE, pool.TASK_TIMEOUT = 1, 2, 5.0\n"
        "real = pool._render_slice\n"
        "def first(bounds):\n"
        + "".join(f"    {line}\n" for line in slice_code.splitlines())
        + "    return real(bounds)\n"
        "pool._render_slice = first\n"
        "from sitegen.cli import main\n"
        "main()\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, "build", "--out", "fresh"],
        cwd=root,
        env=os.environ | {"SITEGEN_WORKERS": "2"} | (env or {}),
        capture_output=True,
        text=True,
        timeout=100,  # a closed pool waiting for a dead worker's slice would hang
        start_new_session=True,
        **popen,  # type: ignore[call-overload]
    )


@pytest.mark.parametrize(("sig", "status"), [("INT", 130), ("TERM", 143)])
def test_ctrl_c_while_workers_render_stops_them_all_and_keeps_the_site(
    tmp_path: Path, sig: str, status: int
) -> None:
    """Ctrl-C (or SIGTERM) halfway through the run pages: the build stops with no
    traceback, no worker is left running, and the previous site is as it was."""
    root = archive(tmp_path / "archive")
    assert cli_in(root, "build").exit_code == 0
    before = tree(root / "site")
    marker = f"sitegen-pool-test-{tmp_path.name}-{sig}"
    died = pooled_build(  # Ctrl-C as at a terminal, even if these tests run in the background
        root,
        marker=marker,
        env={"SITEGEN_FAULT": f"rendering:{sig}"},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert died.returncode == status, died.stderr
    assert "Traceback" not in died.stderr, died.stderr
    assert tree(root / "site") == before
    assert not (root / "fresh").exists()
    staged = root / ".fresh.builds"
    assert not staged.exists() or list(staged.iterdir()) == []  # the staging folder is gone
    left = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if marker.encode() in cmdline.read_bytes():
                left.append(cmdline.parent.name)
        except OSError:
            continue
    assert left == []
    # and the same build, run again, makes the whole site
    assert cli_in(root, "build", "--out", "fresh").exit_code == 0
    assert tree(root / "fresh") == before


def test_a_worker_killed_outright_leaves_its_pages_to_the_build(
    tmp_path: Path, alone: tuple[Path, list[str]]
) -> None:
    """The kernel's out-of-memory killer, or a publisher's kill: the worker leaves no
    answer. The build gives its slice up, renders it itself, and ends (it used to
    wait for ever for the dead worker's task)."""
    root = archive(tmp_path / "pooled")
    done = cli_in(root, "build", "--out", "fresh")  # the charts drawn, then a fresh folder
    assert done.exit_code == 0, done.output
    (root / "fresh").unlink()
    shutil.rmtree(root / ".fresh.builds")
    killed = pooled_build(root, "if bounds[0] == 2:\n    os.kill(os.getpid(), signal.SIGKILL)")
    assert killed.returncode == 0, killed.stderr
    assert tree(root / "fresh") == tree(alone[0] / "site")


def test_a_build_that_ignores_ctrl_c_keeps_its_workers_through_it(
    tmp_path: Path, alone: tuple[Path, list[str]]
) -> None:
    """Started in the background (or under nohup), a build ignores Ctrl-C at the
    terminal; so do its workers, which finish their pages."""
    root = archive(tmp_path / "pooled")
    record = tmp_path / "survived.txt"
    slice_code = (
        "if bounds[0] == 0:\n"
        "    os.killpg(0, signal.SIGINT)  # Ctrl-C reaches the whole process group\n"
        f"    open({str(record)!r}, 'a').write('finished its slice')\n"
    )
    ran = pooled_build(
        root, slice_code, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)
    )
    assert ran.returncode == 0, ran.stderr
    assert record.read_text() == "finished its slice"
    assert tree(root / "fresh") == tree(alone[0] / "site")


class Page:
    """A rendered page whose copies in the build can be counted (weak references)."""

    def __init__(self, job: int) -> None:
        self.job = job


def test_the_build_holds_one_slice_of_answered_pages_at_a_time(monkeypatch: pytest.MonkeyPatch):
    """Rendering every page of a large archive must not keep every worker's answer
    until the last one (it doubled the build's memory at 2,000 runs)."""
    monkeypatch.setattr(pool, "POOL_ABOVE", 1)
    monkeypatch.setattr(pool, "SLICE", 5)
    alive: list[weakref.ref[Page]] = []
    most = 0
    jobs = list(range(60))
    for job, made in pool.render_all(jobs, Page, lambda: 0, lambda _n: None, workers=2):
        assert made.job == job
        alive.append(weakref.ref(made))
        del made
        gc.collect()
        most = max(most, sum(ref() is not None for ref in alive))
    assert len(alive) == len(jobs)
    assert most <= pool.SLICE, most


def test_a_build_failing_while_workers_render_stops_them_and_leaves_no_spool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure in the build process while the workers still render (here: a page
    path claimed twice) ends the workers at once, before the spool they write into is
    removed, and the previous site stays."""
    import multiprocessing

    from sitegen.exceptions import BuildError

    forced_pool(monkeypatch, tmp_path / "workers.txt")
    root = archive(tmp_path / "pooled")
    assert cli_in(root, "build").exit_code == 0
    before = tree(root / "site")
    real_add = Outputs.add

    def clash(self: Outputs, rel: str, content: object, key: str | None = None) -> None:
        if rel.endswith("/cite.bib"):
            raise BuildError(f"two outputs claim the same path {rel!r}")
        real_add(self, rel, content, key)  # type: ignore[arg-type]

    monkeypatch.setattr(Outputs, "add", clash)
    failed = cli_in(root, "build", "--out", "fresh")
    assert failed.exit_code == 1
    assert "two outputs claim the same path 'runs/" in failed.output
    assert multiprocessing.active_children() == []  # no worker left rendering
    assert not (root / "fresh").exists()
    assert [p.name for p in (root / ".fresh.builds").iterdir()] == []  # no spool, no staging
    assert tree(root / "site") == before
