"""Whatever is done to an archive's files, sitegen answers with located errors
(or success), never a traceback: random mutations of a small valid archive go
through check, build, gate, compare and import in-process."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import call_record, cli_in, end_record, lines, meta_record, metadata
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FILES = ["runs/r1/run.jsonl", "runs/r1/metadata.json", "runs/r2/run.jsonl", "runs/r2/metadata.json"]
HOSTILE_VALUES = [
    "1e400",
    "-1e400",
    "NaN",
    "Infinity",
    "9" * 30,
    "-9223372036854775809",
    '"2026-02-30T10:00:00Z"',
    '"2026-13-01T10:00:00Z"',
    '"2026-05-01T25:00:00Z"',
    '"2026-05-01T10:00:00"',
    '"r1"',
    '"r2"',
    "[" * 5000 + "]" * 5000,
    "{}",
    "null",
    "true",
    "-1",
    "1e308",
    '"\\u0000"',
]


def make_archive(root: Path) -> None:
    for run, other in (("r1", None), ("r2", "r1")):
        folder = root / "runs" / run
        folder.mkdir(parents=True)
        records = [meta_record(run), call_record(), call_record(run_idx=1), end_record()]
        (folder / "run.jsonl").write_text(lines(*records), encoding="utf-8")
        md = metadata(run, supersedes=other)
        (folder / "metadata.json").write_text(json.dumps(md, indent=2), encoding="utf-8")
    sample = Path(__file__).parent / "data" / "import" / "bench-output-ok.json"
    shutil.copyfile(sample, root / "import.json")


def replace_value(data: bytes, index: int, value: str) -> bytes:
    """Swap the index-th scalar after a colon for a hostile literal."""
    text = data.decode("utf-8", errors="replace")
    spots = [i for i, ch in enumerate(text) if ch == ":"]
    if not spots:
        return data
    at = spots[index % len(spots)] + 1
    end = at
    while end < len(text) and text[end] not in ",}\n]":
        end += 1
    return (text[:at] + " " + value + text[end:]).encode("utf-8")


@st.composite
def mutation(draw: st.DrawFn) -> tuple[str, str, int, int, str]:
    target = draw(st.sampled_from([*FILES, "import.json"]))
    kind = draw(
        st.sampled_from(
            [
                "value",
                "truncate",
                "duplicate-line",
                "delete-line",
                "insert-line",
                "bad-utf8",
                "nul",
                "empty",
                "delete-file",
                "swap-type",
                "deep",
            ]
        )
    )
    return (
        target,
        kind,
        draw(st.integers(0, 400)),
        draw(st.integers(0, 400)),
        draw(st.sampled_from(HOSTILE_VALUES)),
    )


def apply(root: Path, target: str, kind: str, a: int, b: int, value: str) -> None:
    path = root / target
    data = path.read_bytes()
    rows = data.splitlines(keepends=True)
    if kind == "value":
        data = replace_value(data, a, value)
    elif kind == "truncate":
        data = data[: a % (len(data) + 1)]
    elif kind == "duplicate-line" and rows:
        row = rows[a % len(rows)]
        rows.insert(b % (len(rows) + 1), row)
        data = b"".join(rows)
    elif kind == "delete-line" and rows:
        del rows[a % len(rows)]
        data = b"".join(rows)
    elif kind == "insert-line":
        rows.insert(a % (len(rows) + 1), value.encode() + b"\n")
        data = b"".join(rows)
    elif kind == "bad-utf8":
        cut = a % (len(data) + 1)
        data = data[:cut] + b"\xff\xfe" + data[cut:]
    elif kind == "nul":
        cut = a % (len(data) + 1)
        data = data[:cut] + b"\x00" + data[cut:]
    elif kind == "empty":
        data = b""
    elif kind == "delete-file":
        path.unlink()
        return
    elif kind == "swap-type":
        names = [b'"meta"', b'"call"', b'"end"', b'"skip"', b'"result"']
        data = data.replace(names[a % 5], names[b % 5], 1)
    elif kind == "deep":
        data = b'{"x": ' + b"[" * 3000 + b"\n"
    path.write_bytes(data)


def run(root: Path, *args: str) -> tuple[int, str]:
    result = cli_in(root, *args)
    crashed = result.exception is not None and not isinstance(result.exception, SystemExit)
    assert not crashed, f"{args}: {result.exception!r}\n{result.output}"
    return result.exit_code, result.output


# Every error line starts with the file (or folder) it is about.
KNOWN_PLACES = ("runs/", "runs:", "import.json", "runs.lock")


@pytest.mark.slow
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(mutations=st.lists(mutation(), min_size=1, max_size=3))
def test_mutated_archive_never_gives_a_traceback(tmp_path_factory, mutations) -> None:
    root = tmp_path_factory.mktemp("archive")
    make_archive(root)
    for target, kind, a, b, value in mutations:
        if (root / target).exists():
            apply(root, target, kind, a, b, value)
    commands = [
        ("check",),
        ("build", "--quiet"),
        ("gate",),
        ("compare", "r1", "r2"),
        ("import", "import.json"),
    ]
    for args in commands:
        if args[0] == "import" and not (root / "import.json").exists():
            continue
        code, out = run(root, *args)
        assert "Traceback" not in out, out
        assert code in (0, 1), (args, code, out)
        for line in out.splitlines():
            if line.startswith("error: "):
                where = line[len("error: ") :]
                assert where.startswith(KNOWN_PLACES), (args, line)
    shutil.rmtree(root)
