"""Hostile JSON, impossible dates and impossible timings: each is refused with
the exact file and line, no traceback, by `check` and `build` alike, and a
failed build leaves the previous site and catalogue.json byte-identical."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import call_record, cli_in, end_record, lines, meta_record, metadata

RUN = "runs/r1"
LEDGER = f"{RUN}/run.jsonl"
META = f"{RUN}/metadata.json"


def cli(archive: Path, *args: str) -> tuple[int, str]:
    """Run sitegen the way a user types it: from inside the archive, default paths."""
    result = cli_in(archive, *args)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


def snapshot(archive: Path) -> dict[str, bytes]:
    site = archive / "site"
    files = {str(p.relative_to(site)): p.read_bytes() for p in site.rglob("*") if p.is_file()}
    files["<catalogue.json>"] = (archive / "catalogue.json").read_bytes()
    return files


def write_ledger(archive: Path, *records: object, run: str = "r1") -> None:
    (archive / "runs" / run / "run.jsonl").write_text(lines(*records), encoding="utf-8")


def write_metadata(archive: Path, text: str, run: str = "r1") -> None:
    (archive / "runs" / run / "metadata.json").write_text(text, encoding="utf-8")


def md_text(run: str = "r1", **extra: object) -> str:
    # indent=2 puts format, id, title, status, started_at_utc, finished_at_utc
    # on lines 2-7; extra keys come last.
    return json.dumps(metadata(run, **extra), indent=2)


def call_line(**changes: object) -> str:
    return json.dumps(call_record(**changes))


def deep_folder(archive: Path, levels: int) -> None:
    """A folder tree too deep for os.makedirs (which recurses) to create."""
    cwd = Path.cwd()
    os.chdir(archive / "runs" / "r1")
    try:
        for _ in range(levels):
            Path("d").mkdir()
            os.chdir("d")
        Path("x.txt").write_text("deep\n")
    finally:
        os.chdir(cwd)


def remove_deep_folder(archive: Path) -> None:
    """Undo :func:`deep_folder` without recursion: pytest's own clean-up of old
    temporary folders (shutil.rmtree) recurses, and would crash on this tree."""
    top = archive / "runs" / "r1"
    if not (top / "d").is_dir():
        return
    cwd, depth = Path.cwd(), 0
    os.chdir(top)
    try:
        while Path("d").is_dir():
            os.chdir("d")
            depth += 1
        Path("x.txt").unlink(missing_ok=True)
        for _ in range(depth):
            os.chdir("..")
            Path("d").rmdir()
    finally:
        os.chdir(cwd)


def supersede(archive: Path, links: dict[str, str]) -> None:
    for run, old in links.items():
        write_metadata(archive, md_text(run, supersedes=old), run=run)


Mutation = Callable[[Path], None]
CASES: dict[str, tuple[Mutation, str, str]] = {
    # -- numbers the stdlib turns into infinity or Polars cannot hold
    "float-overflow": (
        lambda a: write_ledger(
            a, meta_record(), call_line(total_duration_ms=1).replace(": 1,", ": 1e400,")
        ),
        f"{LEDGER}:2:",
        "number 1e400 is outside the range of a 64-bit float",
    ),
    "negative-float-overflow": (
        lambda a: write_ledger(
            a, meta_record(), call_line(first_delta_ms=7).replace(": 7,", ": -1e400,")
        ),
        f"{LEDGER}:2:",
        "number -1e400 is outside the range of a 64-bit float",
    ),
    "overflow-in-an-unread-field": (
        lambda a: write_ledger(
            a, meta_record(), call_line(server_timings={"t": 5}).replace(": 5}", ": 9e999}")
        ),
        f"{LEDGER}:2:",
        "number 9e999 is outside the range",
    ),
    "integer-over-int64": (
        lambda a: write_ledger(a, meta_record(), call_record(prompt_tokens=2**63)),
        f"{LEDGER}:2:",
        f"integer {2**63} does not fit in a signed 64-bit integer",
    ),
    "integer-of-5000-digits": (
        lambda a: write_ledger(
            a, meta_record(), call_line(prompt_tokens=10).replace(": 10,", ": " + "9" * 5000 + ",")
        ),
        f"{LEDGER}:2:",
        "does not fit in a signed 64-bit integer",
    ),
    "minus-infinity-literal": (
        lambda a: write_ledger(
            a, meta_record(), call_line(total_duration_ms=3).replace(": 3,", ": -Infinity,")
        ),
        f"{LEDGER}:2:",
        "-Infinity is not valid JSON",
    ),
    # -- nesting
    "ledger-line-10000-deep": (
        lambda a: write_ledger(a, meta_record(), call_record(), "[" * 10_000 + "]" * 10_000),
        f"{LEDGER}:3:65:",
        "nesting deeper than 64 levels",
    ),
    "ledger-65-deep-inside-a-field": (
        lambda a: write_ledger(
            a,
            meta_record(),
            call_line(server_timings=1).replace(
                '"server_timings": 1', '"server_timings": ' + "[" * 64 + "]" * 64
            ),
        ),
        f"{LEDGER}:2:",
        "nesting deeper than 64 levels",
    ),
    "metadata-10000-deep": (
        lambda a: write_metadata(a, '{"id": ' + "[" * 10_000 + "]" * 10_000 + "}"),
        f"{META}:1:71:",
        "nesting deeper than 64 levels",
    ),
    "runs-lock-10000-deep": (
        lambda a: (a / "runs.lock").write_text("{\n" + '"x": ' + "{" * 10_000 + "\n"),
        "runs.lock:2:69:",
        "nesting deeper than 64 levels",
    ),
    # -- impossible dates
    "ledger-meta-february-30": (
        lambda a: write_ledger(
            a, meta_record(started_at_utc="2026-02-30T10:00:00Z"), call_record(), end_record()
        ),
        f"{LEDGER}:1:",
        '$.started_at_utc: expected an ISO 8601 date-time, got "2026-02-30T10:00:00Z"'
        " (day is out of range for month)",
    ),
    "ledger-end-month-13": (
        lambda a: write_ledger(
            a, meta_record(), call_record(), end_record(finished_at_utc="2026-13-01T10:00:00Z")
        ),
        f"{LEDGER}:3:",
        "$.finished_at_utc: expected an ISO 8601 date-time",
    ),
    "ledger-call-hour-25": (
        lambda a: write_ledger(
            a, meta_record(), call_record(started_at_utc="2026-05-01T25:00:00Z"), end_record()
        ),
        f"{LEDGER}:2:",
        "$.started_at_utc: expected an ISO 8601 date-time",
    ),
    "ledger-meta-without-zone": (
        lambda a: write_ledger(
            a, meta_record(started_at_utc="2026-05-01T10:00:00"), call_record(), end_record()
        ),
        f"{LEDGER}:1:",
        "$.started_at_utc: '2026-05-01T10:00:00' has no time zone",
    ),
    "metadata-february-30": (
        lambda a: write_metadata(a, md_text(started_at_utc="2026-02-30T10:00:00Z")),
        f"{META}:6:",
        '$.started_at_utc: expected an ISO 8601 date-time with a time zone, got "2026-02-30',
    ),
    "metadata-without-zone": (
        lambda a: write_metadata(a, md_text(finished_at_utc="2026-05-01T10:05:00")),
        f"{META}:7:",
        "(no time zone)",
    ),
    # -- impossible timings
    "ttft-after-total": (
        lambda a: write_ledger(a, meta_record(), call_record(ttft_ms=250.0), end_record()),
        f"{LEDGER}:2:",
        "$.ttft_ms: 250.0 is later than $.total_duration_ms 200.0",
    ),
    "first-delta-after-total": (
        lambda a: write_ledger(a, meta_record(), call_record(first_delta_ms=200.5), end_record()),
        f"{LEDGER}:2:",
        "$.first_delta_ms: 200.5 is later than $.total_duration_ms 200.0",
    ),
    "negative-duration": (
        lambda a: write_ledger(a, meta_record(), call_record(ttft_ms=-1.0), end_record()),
        f"{LEDGER}:2:",
        "$.ttft_ms: expected a value at least 0, got -1.0",
    ),
    "ledger-end-before-start": (
        lambda a: write_ledger(
            a, meta_record(), call_record(), end_record(finished_at_utc="2026-05-01T09:59:59Z")
        ),
        f"{LEDGER}:3:",
        "$.finished_at_utc: '2026-05-01T09:59:59Z' is before the meta record's started_at_utc",
    ),
    "metadata-finish-before-start": (
        lambda a: write_metadata(a, md_text(finished_at_utc="2026-04-30T10:00:00Z")),
        f"{META}:7:",
        "$.finished_at_utc: '2026-04-30T10:00:00Z' is before started_at_utc",
    ),
    "supersedes-itself": (
        lambda a: write_metadata(a, md_text(supersedes="r1")),
        f"{META}:",
        "$.supersedes: a run cannot supersede itself",
    ),
    "supersede-loop-of-two": (
        lambda a: supersede(a, {"r1": "r2", "r2": "r1"}),
        f"{META}:",
        "runs supersede each other in a loop: r1 -> r2 -> r1",
    ),
    "supersede-loop-of-three": (
        lambda a: supersede(a, {"r1": "r2", "r2": "r3", "r3": "r1"}),
        f"{META}:",
        "runs supersede each other in a loop: r1 -> r2 -> r3 -> r1",
    ),
    # -- folders
    "folder-tree-1100-deep": (
        lambda a: deep_folder(a, 1100),
        f"{RUN}/" + "/".join(["d"] * 33) + ":",
        "folders nested deeper than 32 levels",
    ),
}


@pytest.fixture
def built(tmp_path: Path, write_run) -> Iterator[Path]:
    """Three valid runs, built once with the defaults: the 'previous site'."""
    for run in ("r1", "r2", "r3"):
        write_run(run, md=metadata(run))
    code, out = cli(tmp_path, "build", "--quiet")
    assert code == 0, out
    yield tmp_path
    remove_deep_folder(tmp_path)


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_input_is_refused_with_file_and_line(case: str, built: Path) -> None:
    mutate, where, what = CASES[case]
    before = snapshot(built)
    mutate(built)
    for command in ("check", "build"):
        code, out = cli(built, command)
        assert code == 1, out
        assert "Traceback" not in out
        assert "ok: archive is valid" not in out
        errors = [line for line in out.splitlines() if line.startswith("error: ")]
        assert any(line.startswith(f"error: {where}") and what in line for line in errors), out
    assert snapshot(built) == before


def test_limits_themselves_are_accepted(built: Path, write_run) -> None:
    """64 levels, the largest int64 and float64, and a first event exactly at
    the end are real data: they build."""
    deep = "[" * 62 + "]" * 62  # record, server_timings, then 62 arrays: 64 levels
    call = call_line(
        first_delta_ms=200.0, ttft_ms=200.0, prompt_tokens=2**63 - 1, server_timings=1
    ).replace(
        '"server_timings": 1', f'"server_timings": {{"x": 1.7976931348623157e308, "d": {deep}}}'
    )
    write_run("r4", ledger=lines(meta_record("r4"), call, end_record()), md=metadata("r4"))
    code, out = cli(built, "check")
    assert code == 0, out
    assert "ok: archive is valid" in out


def test_imported_ledger_may_keep_a_tools_local_time(built: Path, write_run) -> None:
    """Importers write the zone-less time a tool recorded into the ledger (and
    only zoned times into metadata.json); that is not an error there."""
    meta = meta_record("r4", started_at_utc="2026-05-01T10:00:00", imported={"format": "x"})
    end = end_record(finished_at_utc="2026-05-01T10:05:00")
    write_run("r4", ledger=[meta, call_record(), end], md=metadata("r4"))
    code, out = cli(built, "check")
    assert code == 0, out


def test_import_refuses_a_file_name_that_would_forge_a_manifest_line(built: Path) -> None:
    before = snapshot(built)
    name = "result\n0000  1  run.jsonl.json"
    (built / name).write_text('{"x": 1}\n', encoding="utf-8")
    code, out = cli(built, "import", name)
    assert code == 1 and "Traceback" not in out
    assert out.splitlines() == [
        "error: result\\n0000  1  run.jsonl.json: file name holds a control character,"
        " line break or path separator; rename the file and import it again"
    ]
    assert sorted(p.name for p in (built / "runs").iterdir()) == ["r1", "r2", "r3"]
    assert snapshot(built) == before


def test_import_of_a_deeply_nested_file_is_a_located_error(built: Path) -> None:
    (built / "deep.json").write_text('{\n  "x": ' + "[" * 10_000 + "\n}\n", encoding="utf-8")
    code, out = cli(built, "import", "deep.json")
    assert code == 1 and "Traceback" not in out
    assert "error: deep.json:2:71: nesting deeper than 64 levels" in out.splitlines()
