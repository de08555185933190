"""Command line: thin click commands, each calling one library function.

Errors from the library arrive as ``SitegenError`` and are turned into a
message and exit status here, at the edge; nothing below prints tracebacks
for bad input.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import click

from sitegen import __version__
from sitegen.exceptions import SitegenError
from sitegen.layout import RUNS

ARCHIVE = click.argument(
    "archive",
    type=click.Path(file_okay=False, path_type=Path),
    default=".",
    required=False,
)


def reports_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a SitegenError into a clean message on stderr and exit status 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SitegenError as exc:
            for line in str(exc).splitlines() or [type(exc).__name__]:
                click.echo(f"error: {line}", err=True)
            sys.exit(1)
        except Terminated:
            click.echo("terminated", err=True)
            sys.exit(128 + signal.SIGTERM)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be so that the same clean-up runs."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated


def stops_on_sigterm(func: Callable[..., Any]) -> Callable[..., Any]:
    """Treat SIGTERM like Ctrl-C: the build removes its staging folder and exits
    non-zero, leaving the live site as it was (by default SIGTERM kills at once)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if threading.current_thread() is not threading.main_thread():
            return func(*args, **kwargs)
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
        try:
            return func(*args, **kwargs)
        finally:
            signal.signal(signal.SIGTERM, previous)

    return wrapper


class _Exit:
    """What a finished command leaves to the end of the ``sitegen`` program instead of
    freeing (see ``program``); nothing is kept when the commands are called otherwise
    (tests call ``main`` many times in one process)."""

    on: ClassVar[bool] = False
    kept: ClassVar[list[Any]] = []

    @classmethod
    def leave(cls, value: Any) -> None:
        if cls.on:
            cls.kept.append(value)


def program() -> None:
    """The ``sitegen`` program: ``main``, then, when a command left its values for the
    end (a build), an exit that does not free them one by one. At 10,000 runs that
    is millions of objects and 0.6 s (measured); the operating system reclaims the
    memory at once. Output is flushed first, and every file the build wrote is
    closed (it writes through context managers, and its pools are joined)."""
    _Exit.on = True
    try:
        main()
        code: Any = 0
    except SystemExit as exc:
        code = exc.code
    if not _Exit.kept:
        sys.exit(code)
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


@click.group()
@click.version_option(__version__, prog_name="sitegen")
def main() -> None:
    """Build a static, citable site from an archive of LLM benchmark runs."""
    tune_collector()


def tune_collector() -> None:
    """The garbage collector's setting for every sitegen command (and for the
    benchmarks that time parts of a build).

    A build makes millions of small objects that live until it ends (rows,
    verdicts, page values); at the default threshold the collector walks them
    again every 700 allocations. Measured: a fifth of a one-run-added build at
    2,000 runs, with the same peak memory at this threshold.
    """
    gc.set_threshold(100_000, 50, 100)


@main.command()
@ARCHIVE
@click.option(
    "--out",
    type=click.Path(path_type=Path),  # a file is refused by the build, with exit status 1
    default=None,
    help="Output folder (default: site/ inside the archive). Refused when it is a file,"
    " a folder sitegen did not make, or overlaps the archive's inputs.",
)
@click.option("--strict", is_flag=True, help="Fail the build when a run is unreliable.")
@click.option(
    "--skip-invalid", is_flag=True, help="Leave invalid runs out, list them, and build the rest."
)
@click.option("--quiet", "-q", is_flag=True, help="Print only errors.")
@click.option("--force", is_flag=True, help="Rebuild even when nothing changed.")
@reports_errors
@stops_on_sigterm
def build(
    archive: Path, out: Path | None, strict: bool, skip_invalid: bool, quiet: bool, force: bool
) -> None:
    """Build catalogue.json and the static site from ARCHIVE (default: .)."""
    from sitegen import state
    from sitegen.layout import Layout

    layout = Layout.of(archive, out)
    options = {"strict": strict, "skip_invalid": skip_invalid}
    # Taken once, here: the build records it as its inputs when it succeeds.
    inputs = state.fingerprint(layout, options) if archive.is_dir() else None
    if not force and inputs and state.up_to_date(layout, options, inputs):
        if not quiet:
            click.echo(f"nothing changed since the last build of {layout.site}")
        return
    from sitegen.build import build as do_build

    loaded = do_build(
        layout,
        strict=strict,
        skip_invalid=skip_invalid,
        echo=None if quiet else click.echo,
        inputs=inputs,
    )
    _Exit.leave(loaded)


@main.command()
@ARCHIVE
@click.option("--strict", is_flag=True, help="Treat unreliable runs as errors.")
@reports_errors
@stops_on_sigterm
def check(archive: Path, strict: bool) -> None:
    """Run every check a build runs on ARCHIVE (default: .); publishes nothing.

    The site is rendered into a scratch folder, link-checked and scanned by
    the publication gate, then deleted: "ok" means `sitegen build` succeeds.
    """
    from sitegen.build import check as do_check

    do_check(archive, strict=strict, echo=click.echo)


@main.command()
@ARCHIVE
@click.option(
    "--fingerprints",
    is_flag=True,
    help="Also print each finding's fingerprint, for gate-allowlist.toml.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The built site to scan (default: where the last build wrote it).",
)
@reports_errors
def gate(archive: Path, fingerprints: bool, out: Path | None) -> None:
    """Scan ARCHIVE's runs and built site with the publication gate."""
    from sitegen.build import gate_report

    report = gate_report(archive, out=out, fingerprints=fingerprints)
    click.echo(report or "ok: no findings")
    if report:
        sys.exit(1)


@main.command()
@click.argument("run_a")
@click.argument("run_b")
@click.option(
    "--archive",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(),
    show_default=True,
    help="The archive holding both runs.",
)
@click.option(
    "--cell-a",
    default=None,
    metavar="CELL",
    help="Only this cell of RUN_A (with --cell-b: another cell, of RUN_B or of the same run).",
)
@click.option(
    "--cell-b",
    default=None,
    metavar="CELL",
    help="Only this cell of RUN_B (alone: the same cell of both runs).",
)
@reports_errors
def compare(run_a: str, run_b: str, archive: Path, cell_a: str | None, cell_b: str | None) -> None:
    """Compare RUN_B against RUN_A (as its baseline), per cell and prompt.

    RUN_A and RUN_B may be the same run, to compare two of its cells. The compare
    page of the built site (compare/) computes the same table in the browser.
    """
    from sitegen.compare import compare_runs

    click.echo(compare_runs(archive, run_a, run_b, cell_a, cell_b), nl=False)


@main.command()
def settings() -> None:
    """Print the table of sitegen.toml settings with their defaults."""
    from sitegen.config import settings_markdown

    click.echo(settings_markdown(), nl=False)


@main.command()
@ARCHIVE
@click.option(
    "--out",
    type=click.Path(path_type=Path),  # a file is refused by the build, with exit status 1
    default=None,
    help="Output folder, with the same rules as `sitegen build --out`.",
)
@click.option("--port", type=int, default=8000, show_default=True)
@reports_errors
@stops_on_sigterm
def serve(archive: Path, out: Path | None, port: int) -> None:
    """Build, serve on 127.0.0.1 and rebuild when the archive changes."""
    from sitegen.serve import serve as do_serve

    if do_serve(archive, out=out, port=port, echo=click.echo):
        # sitegen itself changed: start afresh with the new code, same arguments.
        os.execv(sys.executable, [sys.executable, "-m", "sitegen", *sys.argv[1:]])


_FILE = click.Path(exists=False, dir_okay=False, path_type=Path)
NODES_OPTION = click.option(
    "--nodes",
    "nodes_path",
    type=_FILE,
    default=None,
    help="nodes.yaml: hardware per node, for metadata.json.",
)


@main.command()
@click.option(
    "--cells",
    "cells_path",
    type=_FILE,
    required=True,
    help="cells.yaml: node, engine, model and endpoint per cell.",
)
@click.option(
    "--prompts",
    "prompts_path",
    type=_FILE,
    default=None,
    help="Frozen prompts file (default: the canonical P-EASY/P-MEDIUM/P-HARD).",
)
@click.option(
    "--runs-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(RUNS),
    show_default=True,
    help="Where packaged runs go.",
)
@NODES_OPTION
@click.option("--host-node", default=None, help="Node name of this machine (default: nodes.yaml).")
@click.option(
    "--warm", type=int, default=5, show_default=True, help="Warm calls per cell and prompt."
)
@click.option(
    "--concurrency", type=int, default=1, show_default=True, help="Warm requests kept in flight."
)
@click.option("--probe", "probe_only", is_flag=True, help="Print the probe table and stop.")
@click.option("--smoke", is_flag=True, help="One cell, one prompt, one call.")
@click.option("--cell", "cell_ids", multiple=True, help="Only this cell id (repeatable).")
@click.option("--prompt", "prompt_ids", multiple=True, help="Only this prompt id (repeatable).")
@click.option("--allow-dirty", is_flag=True, help="Run on a dirty git tree (files are recorded).")
@click.option("--dirty-note", default=None, help="Why the dirty files do not matter.")
@click.option("--force-load", is_flag=True, help="Run even when the load average is above 4.0.")
@click.option(
    "--for-publication",
    is_flag=True,
    help="Refuse when any cell fails its probe or has no real engine version.",
)
@click.option(
    "--exclusive",
    default=None,
    help="Your statement that no other heavy job shared the machine (shown beside the "
    "measurement).",
)
@click.option(
    "--authorization",
    default=None,
    help="Who authorized running in prime time, and where (e.g. 'Sloba, chat 17:34Z').",
)
@click.option(
    "--window",
    default=None,
    help="Your statement that the run's window avoided prime time.",
)
@click.option(
    "--timeout",
    "call_timeout_s",
    type=float,
    default=300.0,
    show_default=True,
    help="Seconds allowed per call.",
)
@click.option(
    "--stall-timeout",
    "stall_timeout_s",
    type=float,
    default=60.0,
    show_default=True,
    help="Seconds allowed between two chunks of a stream.",
)
@click.option("--title", default=None, help="Title of the packaged run.")
@click.option("--description", default=None, help="Description of the packaged run.")
@click.option("--tag", "tags", multiple=True, help="Tag for the packaged run (repeatable).")
@click.option(
    "--author", "authors", multiple=True, help="Author (repeatable; default: git config user.name)."
)
@click.option("--license", "license_", default="CC-BY-4.0", show_default=True)
@click.option("--baseline", is_flag=True, help="Mark the run as a baseline.")
@click.option("--no-package", is_flag=True, help="Leave the ledger unpackaged.")
@click.option("--quiet", "-q", is_flag=True, help="No progress line.")
@reports_errors
def run(**kwargs: Any) -> None:
    """Benchmark the cells: probes, then 1 cold + N warm streamed calls per prompt."""
    from sitegen.runner import RunOptions
    from sitegen.runner import run as do_run

    kwargs["license"] = kwargs.pop("license_")
    kwargs["package"] = not kwargs.pop("no_package")
    kwargs["progress"] = not kwargs.pop("quiet")
    outcome = do_run(RunOptions(**kwargs), echo=click.echo)
    if outcome.status == "interrupted":
        sys.exit(130)


@main.command()
@click.argument("ledger", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--runs-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(RUNS),
    show_default=True,
)
@NODES_OPTION
@reports_errors
def package(ledger: Path, runs_dir: Path, nodes_path: Path | None) -> None:
    """Package a recorded LEDGER as runs/<id>/ (interrupted if it has no end record)."""
    from sitegen.runner import package_ledger

    package_ledger(ledger, runs_dir=runs_dir, nodes_path=nodes_path, echo=click.echo)


@main.command(name="import")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    default=None,
    metavar="FORMAT",
    help="Source format (default: detected). See docs/importing.md.",
)
@click.option("--id", "run_id", default=None, help="Run id (default: <format>-<date>-<hash>).")
@click.option(
    "--runs-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(RUNS),
    show_default=True,
)
@click.option("--origin", default=None, help="Where the file came from (metadata source.origin).")
@click.option("--tag", "tags", multiple=True, help="Extra tag for the run (repeatable).")
@click.option(
    "--author",
    "authors",
    multiple=True,
    help="An original author of the results, cited as such (repeatable; metadata source.authors).",
)
@reports_errors
def import_(
    files: tuple[Path, ...],
    fmt: str | None,
    run_id: str | None,
    runs_dir: Path,
    origin: str | None,
    tags: tuple[str, ...],
    authors: tuple[str, ...],
) -> None:
    """Package published result FILES (vLLM, llama-bench, lm-eval, ...) as runs/<id>/."""
    from sitegen.importers import import_files

    report = import_files(
        list(files),
        runs_dir=runs_dir,
        fmt=fmt,
        run_id=run_id,
        origin=origin,
        tags=tags,
        authors=authors,
    )
    for item in report.runs:
        click.echo(
            f"imported {item.source} as {item.path} "
            f"({item.format}: {item.results} results, {item.calls} calls)"
        )
    for note in report.notes:
        click.echo(f"note: {note}", err=True)


if __name__ == "__main__":  # pragma: no cover
    main()
