"""Every bad-input case gets a clear file:line error, no traceback, and the
previous site and catalogue.json stay exactly as they were."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import call_record, end_record, lines, meta_record, metadata

from sitegen.build import build
from sitegen.cli import main


def run_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def snapshot(root: Path) -> dict[str, bytes]:
    site = root / "site"
    files = {
        str(p.relative_to(site)): p.read_bytes() for p in sorted(site.rglob("*")) if p.is_file()
    }
    files["<catalogue>"] = (root / "catalogue.json").read_bytes()
    return files


CASES = {
    "malformed-json": (
        lambda: lines(meta_record(), '{"type": "call", "cell_id": ', end_record()),
        "runs/r1/run.jsonl:2:",
        "malformed JSON",
    ),
    "not-utf8": (
        lambda: lines(meta_record()).encode() + b'{"type":"call","x":"\xff\xfe"}\n',
        "runs/r1/run.jsonl:2:",
        "not UTF-8",
    ),
    "not-an-object": (
        lambda: lines(meta_record(), "[1, 2, 3]"),
        "runs/r1/run.jsonl:2:",
        "not a JSON object",
    ),
    "duplicate-keys": (
        lambda: lines(meta_record(), '{"type":"call","type":"call"}'),
        "runs/r1/run.jsonl:2:",
        "duplicate key 'type'",
    ),
    "nan": (
        lambda: lines(meta_record(), json.dumps(call_record()).replace("100.0", "NaN")),
        "runs/r1/run.jsonl:2:",
        "NaN",
    ),
    "infinity": (
        lambda: lines(meta_record(), json.dumps(call_record()).replace("200.0", "Infinity")),
        "runs/r1/run.jsonl:2:",
        "Infinity",
    ),
    "missing-meta": (
        lambda: lines(call_record(), end_record()),
        "runs/r1/run.jsonl:1:",
        "missing meta record",
    ),
    "wrong-type": (
        lambda: lines(meta_record(), call_record(completion_tokens="12")),
        "runs/r1/run.jsonl:2:",
        '$.completion_tokens: expected integer or null, got "12"',
    ),
    "negative-duration": (
        lambda: lines(meta_record(), call_record(total_duration_ms=-5)),
        "runs/r1/run.jsonl:2:",
        "$.total_duration_ms: expected a value at least 0, got -5",
    ),
    "unknown-record-type": (
        lambda: lines(meta_record(), {"type": "banana"}),
        "runs/r1/run.jsonl:2:",
        "unknown type 'banana'",
    ),
    "missing-required-field": (
        lambda: lines(meta_record(), {k: v for k, v in call_record().items() if k != "cell_id"}),
        "runs/r1/run.jsonl:2:",
        '$: missing required property "cell_id"',
    ),
    "empty-ledger": (lambda: "", "runs/r1/run.jsonl:", "missing meta record"),
}


@pytest.fixture
def built(tmp_path: Path, write_run) -> Path:
    """An archive with one good run, built once: the 'previous site'."""
    write_run("good")
    build(tmp_path)
    return tmp_path


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_ledger_is_reported_with_file_and_line_and_nothing_changes(case, built, write_run):
    make, where, what = CASES[case]
    before = snapshot(built)
    write_run("r1", ledger=make())
    code, out = run_cli("build", str(built))
    assert code == 1
    assert "Traceback" not in out
    error_lines = [line for line in out.splitlines() if line.startswith("error: ")]
    assert any(where in line and what in line for line in error_lines), out
    assert snapshot(built) == before


def test_every_problem_in_the_archive_is_reported_in_one_pass(built, write_run):
    write_run("r1", ledger=lines(meta_record("r1"), "[1]", call_record(run_idx=-1)))
    write_run("r2", ledger=lines(meta_record("r2"), '{"type": "nope"}'), md=metadata("r2"))
    code, out = run_cli("check", str(built))
    assert code == 1
    assert "runs/r1/run.jsonl:2:" in out
    assert "runs/r1/run.jsonl:3:" in out and "$.run_idx: expected a value at least 0" in out
    assert "runs/r2/run.jsonl:2:" in out


def test_two_runs_with_the_same_id(built, write_run):
    write_run("r1", ledger=[meta_record("shared"), call_record(), end_record()])
    write_run("r2", ledger=[meta_record("shared"), call_record(), end_record()], md=metadata("r2"))
    code, out = run_cli("build", str(built))
    assert code == 1
    assert "duplicate run id 'shared'" in out


def test_bad_run_id(built, write_run):
    write_run("Bad_ID", md=metadata("Bad_ID"))
    code, out = run_cli("build", str(built))
    assert code == 1
    assert "runs/Bad_ID: run id 'Bad_ID' does not match" in out


def test_symlinked_run_folder_and_symlink_inside(built, write_run, tmp_path):
    target = write_run("r1")
    os.symlink(target, tmp_path / "runs" / "r2")
    os.symlink("/etc/passwd", target / "run.log")
    code, out = run_cli("build", str(built))
    assert code == 1
    assert "runs/r2: run folder is a symlink" in out
    assert "runs/r1/run.log: is a symlink" in out


def test_empty_run_folder(built):
    (built / "runs" / "empty").mkdir()
    code, out = run_cli("build", str(built))
    assert code == 1
    assert "runs/empty: run folder is empty" in out


def test_metadata_id_differs_from_folder(built, write_run):
    write_run("r1", md=metadata("r2"))
    code, out = run_cli("build", str(built))
    assert code == 1
    assert "runs/r1/metadata.json:3: $.id: 'r2' differs from its folder name 'r1'" in out


def test_metadata_with_malformed_json_names_line(built, write_run):
    folder = write_run("r1")
    (folder / "metadata.json").write_text('{\n  "id": "r1",\n  "title": \n}\n')
    code, out = run_cli("build", str(built))
    assert code == 1
    assert "runs/r1/metadata.json:4:1: malformed JSON" in out


def test_line_over_the_size_cap(built, write_run):
    (built / "sitegen.toml").write_text("[limits]\nmax_line_bytes = 512\n")
    write_run("r1", ledger=lines(meta_record(), call_record(error="x" * 2000), end_record()))
    before = snapshot(built)
    code, out = run_cli("build", str(built))
    assert code == 1
    assert "runs/r1/run.jsonl:2: line is longer than the cap of 512 bytes" in out
    assert snapshot(built) == before


def test_file_over_the_size_cap(built, write_run):
    (built / "sitegen.toml").write_text("[limits]\nmax_file_bytes = 2048\n")
    write_run("r1", run__log="y" * 5000)
    code, out = run_cli("build", str(built))
    assert code == 1
    assert "runs/r1/run.log: file is 5000 bytes, over the cap of 2048" in out


def test_skip_invalid_builds_the_rest_and_lists_what_it_left_out(built, write_run):
    write_run("r1", ledger=lines(meta_record(), "[1]"))
    code, out = run_cli("build", str(built), "--skip-invalid")
    assert code == 0, out
    assert "left out r1:" in out
    assert "runs/r1/run.jsonl:2:" in out
    catalogue = json.loads((built / "catalogue.json").read_text())
    assert [r["id"] for r in catalogue["runs"]] == ["good"]


def test_unknown_fields_are_kept_and_ignored(built, write_run):
    write_run(
        "r1", ledger=[meta_record(future_field={"a": 1}), call_record(gpu_temp_c=71), end_record()]
    )
    code, out = run_cli("build", str(built))
    assert code == 0, out
    published = (built / "site" / "runs" / "r1" / "files" / "run.jsonl").read_text()
    assert '"gpu_temp_c": 71' in published


def test_harness_skipped_phase_lines_become_skip_records(built, write_run):
    write_run(
        "r1",
        ledger=[
            meta_record(),
            {
                "type": "call",
                "cell_id": "node-b:ollama:m2",
                "phase": "skipped",
                "error": "probe timed out",
            },
            call_record(),
            end_record(),
        ],
    )
    code, out = run_cli("build", str(built))
    assert code == 0, out
    page = (built / "site" / "runs" / "r1" / "index.html").read_text()
    assert "node-b:ollama:m2" in page and "probe timed out" in page


def test_config_problems_are_all_reported_at_once(built):
    (built / "sitegen.toml").write_text(
        '[archive]\ntitle = 3\nbase_url = "ftp://x"\n[thresholds]\nwin = -1\nbogus = 2\n'
    )
    code, out = run_cli("check", str(built))
    assert code == 1
    assert "sitegen.toml:2: archive.title: expected a string" in out
    assert "sitegen.toml:3: archive.base_url: must be an http(s) URL" in out
    assert "sitegen.toml:5: thresholds.win: must be at least 0.0" in out
    assert "sitegen.toml:6: unknown setting 'thresholds.bogus'" in out
