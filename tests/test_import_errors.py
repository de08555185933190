"""`sitegen import` refusals: malformed sources listed by JSON pointer, private
data, run ids, duplicates and a failure mid-write; nothing is ever half-written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import sitegen.importers as importers
import sitegen.runfolder as runfolder
from sitegen.cli import main
from sitegen.exceptions import ImportFailed
from sitegen.importers import import_files

DATA = Path(__file__).parent / "data" / "import"

EXPECTED = {
    "mlx-bad.json": [
        "does not validate as mlx-benchmarks-v1 (4 problems):",
        '$.trigger: expected one of "schedule", "pr", "workflow_dispatch", "local", got "nightly"',
        '$.system: missing required property "chip"',
        '$.results[2].value: expected number, got "0.8"',
        "$.notes: unexpected property (allowed here: errors, gen_kwargs, git_sha, "
        "memory_snapshots, model, model_revision, pr_number, quantization, results, "
        "schema_version, seed, skipped, suite, system, timestamp, trigger)",
    ],
    "nexus-bad.json": [
        "does not validate as nexus-result-v1 (6 problems):",
        '$.schema_version: expected 1, got "1"',
        "$.submitted_at: expected an ISO 8601 date-time with a time zone,"
        ' got "2026-04-30 19:42" (no time part)',
        '$.hardware.vram_gb: expected number or null, got "12GB"',
        '$.results[0]: missing required property "task"',
        '$.results[0].tokens_per_second: expected number or null, got "fast"',
        "$.results[0].prompt_tokens: expected integer or null, got 298.5",
    ],
    "bench-output-bad.json": [
        "does not validate as benchmark-output-v1 (4 problems):",
        '$.metadata.model: missing required property "provider"',
        '$.results: missing required property "error"',
        '$.results.metrics.accuracy: expected number, got "high"',
        "$.scores: unexpected property (allowed here: $schema, metadata, results, schema_version)",
    ],
    "vllm-serve-bad.json": [
        "does not validate as vllm-bench-serve (3 problems):",
        '$.completed: expected integer, got "5"',
        "$.mean_ttft_ms: expected number, got null",
        "$.latencies: has 1 entry, but $.ttfts has 2 entries (one per request)",
    ],
    "results_bad.json": [
        "does not validate as lm-eval (5 problems):",
        '$.results.hellaswag["acc,none"]: expected number or null, got "0.40"',
        '$.results.hellaswag["acc_stderr,none"]: expected number or "N/A" or null, got "n/a"',
        "$.results.arc_easy: expected object, got an array",
        '$.config: missing required property "model"',
        '$.date: expected number, got "yesterday"',
    ],
}


@pytest.fixture(autouse=True)
def no_refresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importers, "refresh_catalogue", lambda root: None)


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    return tmp_path / "runs"


def _refusal(runs: Path, *files: Path, **kwargs: object) -> ImportFailed:
    with pytest.raises(ImportFailed) as caught:
        import_files(list(files), runs_dir=runs, **kwargs)  # type: ignore[arg-type]
    return caught.value


def _nothing_written(runs: Path) -> bool:
    return not runs.exists() or not any(runs.iterdir())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_malformed_sample_is_refused_with_every_pointer(runs: Path, name: str) -> None:
    error = _refusal(runs, DATA / name)
    problems = error.problems  # type: ignore[attr-defined]
    assert [p.message for p in problems] == EXPECTED[name]
    assert {p.path for p in problems} == {str(DATA / name)}
    assert _nothing_written(runs)


def test_malformed_jsonl_rows_carry_their_line(runs: Path) -> None:
    error = _refusal(runs, DATA / "llama-bench-bad.jsonl")
    lines = str(error).splitlines()
    where = str(DATA / "llama-bench-bad.jsonl")
    assert lines[1:] == [
        f'{where}:2: $: missing required property "model_filename"',
        f'{where}:2: $.avg_ts: expected number, got "fast"',
    ]
    assert _nothing_written(runs)


def test_forcing_the_wrong_format_reports_against_that_format(runs: Path) -> None:
    error = _refusal(runs, DATA / "nexus-record.json", fmt="mlx-benchmarks-v1")
    messages = [p.message for p in error.problems]  # type: ignore[attr-defined]
    assert messages[0].startswith("does not validate as mlx-benchmarks-v1")
    assert '$.schema_version: expected "1", got 1' in messages
    assert "$.hardware: unexpected property" in " ".join(messages)


def test_unknown_and_unparsable_files_are_refused_clearly(runs: Path) -> None:
    error = _refusal(runs, DATA / "unknown.json", DATA / "not-json.txt", runs / "missing.json")
    text = str(error)
    assert f"{DATA / 'unknown.json'}: not a format sitegen can import; known formats: " in text
    assert "llama-bench, lm-eval" in text
    assert f"{DATA / 'not-json.txt'}:1:1: not valid JSON: Expecting value" in text
    assert f"{runs / 'missing.json'}: no such file" in text
    assert _nothing_written(runs)


def test_one_bad_file_means_nothing_is_written(runs: Path) -> None:
    _refusal(runs, DATA / "nexus-record.json", DATA / "mlx-bad.json")
    assert _nothing_written(runs)


def test_unknown_format_name_is_refused(runs: Path) -> None:
    error = _refusal(runs, DATA / "nexus-record.json", fmt="csv")
    assert "unknown format 'csv'; known: mlx-benchmarks-v1, nexus-result-v1" in str(error)


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"server": "http://admin:hunter2@bench.example.org/v1"}, "$.server: [user-at-host] "),
        ({"node": "worker on 10.8.0.3"}, "$.node: [ipv4] 10…;"),
        ({"model_id": "/home/dana/models/m"}, "$.model_id: [home-path] /home/d…"),
        ({"cmd": "ssh bench@gpu-box-07 ./run.sh"}, "$.cmd: [user-at-host] "),
        ({"hf": "hf_" + "aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dF"}, "$.hf: [huggingface-token] hf_"),
        ({"hostname": "gpu-box-07.corp.example"}, "$.hostname: holds a host name"),
        ({"api_key": "abc123"}, "$.api_key: holds a secret (password, key or token)"),
    ],
)
def test_private_data_in_the_source_is_refused(
    runs: Path, tmp_path: Path, patch: dict[str, str], expected: str
) -> None:
    data = json.loads((DATA / "vllm-serve-summary.json").read_text())
    data.update(patch)
    source = tmp_path / "private.json"
    source.write_text(json.dumps(data))
    error = _refusal(runs, source)
    (problem,) = error.problems  # type: ignore[attr-defined]
    assert problem.message.startswith(expected), problem.message
    assert "the source file is published byte-for-byte" in problem.message
    assert _nothing_written(runs)


def test_private_data_is_located_by_line_and_pointer(runs: Path, tmp_path: Path) -> None:
    text = (DATA / "llama-bench-rtx4070.json").read_text()
    source = tmp_path / "bench.json"
    source.write_text(text.replace("/home/user/models/", "/home/dana/models/"))
    problems = _refusal(runs, source).problems  # type: ignore[attr-defined]
    assert [(p.line, p.column) for p in problems] == [(8, 24), (62, 24), (116, 24), (170, 24)]
    assert problems[0].message.startswith("$[0].model_filename: [home-path] /home/d…")


def test_a_host_name_deep_in_a_document_is_located(runs: Path, tmp_path: Path) -> None:
    data = json.loads((DATA / "bench-output-ok.json").read_text())
    data["metadata"]["run"]["host"]["hostname"] = "dana-workstation"
    source = tmp_path / "host.json"
    source.write_text(json.dumps(data))
    (problem,) = _refusal(runs, source).problems  # type: ignore[attr-defined]
    assert problem.message.startswith("$.metadata.run.host.hostname: holds a host name")


def test_gate_allowlist_of_the_archive_is_honoured(runs: Path, tmp_path: Path) -> None:
    data = json.loads((DATA / "vllm-serve-summary.json").read_text())
    data["node"] = "worker on 10.8.0.3"
    source = tmp_path / "allowed.json"
    source.write_text(json.dumps(data))
    from sitegen.gate.scan import scan_bytes

    (finding,) = scan_bytes(source.read_bytes(), "x.json")
    runs.mkdir(parents=True)
    (runs.parent / "gate-allowlist.toml").write_text(
        f'[[allow]]\nfingerprint = "{finding.fingerprint}"\nreason = "lab address, public"\n'
    )
    assert import_files([source], runs_dir=runs).runs


def test_loopback_addresses_and_versions_are_not_private(runs: Path, tmp_path: Path) -> None:
    data = json.loads((DATA / "vllm-serve-summary.json").read_text())
    data.update({"server": "http://127.0.0.1:8000", "driver": "535.161.08", "host": "localhost"})
    source = tmp_path / "fine.json"
    source.write_text(json.dumps(data))
    assert import_files([source], runs_dir=runs).runs


def test_explicit_id_is_used(runs: Path) -> None:
    report = import_files([DATA / "nexus-record.json"], runs_dir=runs, run_id="nexus-example-1")
    assert report.runs[0].path == runs / "nexus-example-1"
    metadata = json.loads((runs / "nexus-example-1" / "metadata.json").read_text())
    assert metadata["id"] == "nexus-example-1"


@pytest.mark.parametrize("bad", ["Upper", "-dash", "has space", "x" * 129])
def test_invalid_id_is_refused(runs: Path, bad: str) -> None:
    error = _refusal(runs, DATA / "nexus-record.json", run_id=bad)
    assert "is not allowed: use 1-128 of a-z 0-9" in str(error)
    assert _nothing_written(runs)


def test_id_with_several_files_is_refused(runs: Path) -> None:
    error = _refusal(runs, DATA / "nexus-record.json", DATA / "mlx-throughput.json", run_id="x")
    assert "--id: names one run" in str(error)


def test_importing_the_same_file_twice_is_refused_and_keeps_the_run(runs: Path) -> None:
    (first,) = import_files([DATA / "mlx-throughput.json"], runs_dir=runs).runs
    before = {p: p.read_bytes() for p in first.path.rglob("*") if p.is_file()}
    error = _refusal(runs, DATA / "mlx-throughput.json")
    assert f"run {first.run_id} already exists in {runs}; published runs are never" in str(error)
    assert {p: p.read_bytes() for p in first.path.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in runs.iterdir()) == [first.run_id]


def test_the_same_file_twice_in_one_command_is_refused(runs: Path) -> None:
    error = _refusal(runs, DATA / "nexus-record.json", DATA / "nexus-record.json")
    assert "(the same file twice?)" in str(error)
    assert _nothing_written(runs)


def test_failure_mid_write_leaves_no_run_and_no_staging_folder(
    runs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = runfolder._write_synced

    def failing(path: Path, data: bytes) -> None:
        if path.name == "metadata.json":
            raise OSError(28, "No space left on device")
        real_write(path, data)

    monkeypatch.setattr(runfolder, "_write_synced", failing)
    error = _refusal(runs, DATA / "nexus-record.json")
    assert "could not write" in str(error) and "No space left on device" in str(error)
    assert runs.is_dir() and list(runs.iterdir()) == []


def test_cli_imports_and_reports(runs: Path) -> None:
    result = CliRunner().invoke(
        main, ["import", str(DATA / "llama-bench-cpu.jsonl"), "--runs-dir", str(runs)]
    )
    assert result.exit_code == 0, result.output
    assert "imported" in result.output and "(llama-bench: 2 results, 0 calls)" in result.output
    (run,) = runs.iterdir()
    assert (run / "source" / "llama-bench-cpu.jsonl").is_file()


def test_cli_refusal_is_a_message_not_a_traceback(runs: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "import",
            "--format",
            "mlx-benchmarks-v1",
            str(DATA / "mlx-bad.json"),
            "--runs-dir",
            str(runs),
        ],
    )
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert f'error: {DATA / "mlx-bad.json"}: $.results[2].value: expected number, got "0.8"' in (
        result.output
    )
    assert _nothing_written(runs)


def test_catalogue_is_refreshed_for_the_archive_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    roots: list[Path] = []
    monkeypatch.setattr(importers, "refresh_catalogue", lambda root: roots.append(root))
    archive = tmp_path / "archive"
    import_files(
        [DATA / "nexus-record.json", DATA / "mlx-throughput.json"], runs_dir=archive / "runs"
    )
    assert roots == [archive.resolve()]


def test_duplicate_keys_are_refused_as_ambiguous(runs: Path, tmp_path: Path) -> None:
    text = (DATA / "nexus-record.json").read_text()
    source = tmp_path / "dup.json"
    source.write_text(
        text.replace('"schema_version": 1,', '"schema_version": 1,\n  "schema_version": 2,')
    )
    (problem,) = _refusal(runs, source).problems  # type: ignore[attr-defined]
    assert (problem.line, problem.message) == (
        3,
        'duplicate key "schema_version" in one object (ambiguous)',
    )
    assert _nothing_written(runs)


def test_appended_vllm_results_are_refused_with_advice(runs: Path, tmp_path: Path) -> None:
    one = (DATA / "vllm-serve-summary.json").read_text().strip()
    source = tmp_path / "appended.json"
    source.write_text(one + "\n" + one + "\n")
    header, problem = _refusal(runs, source).problems  # type: ignore[attr-defined]
    assert header.message == "does not validate as vllm-bench-serve (1 problem):"
    assert problem.message.startswith("holds 2 results appended with --append-result")


def test_an_import_during_a_build_keeps_the_run_and_leaves_the_catalogue_to_the_build(
    tmp_path: Path,
) -> None:
    """The catalogue refresh after an import takes the build lock, as a build does (both
    write the caches and catalogue.json): while a build runs, the run is written and
    the import says the catalogue was not refreshed, instead of writing beside it."""
    from conftest import sitegen_process

    from sitegen.build import build_lock
    from sitegen.layout import Layout

    archive = tmp_path / "archive"
    (archive / "runs").mkdir(parents=True)
    with build_lock(Layout.of(archive)):
        done = sitegen_process(archive, "import", str(DATA / "llama-bench-cpu.jsonl"))
    assert done.returncode == 0, done.stderr
    assert "catalogue.json not refreshed (run `sitegen build`)" in done.stderr
    assert "another build of this archive is running" in done.stderr
    (run,) = (archive / "runs").iterdir()
    assert not (archive / "catalogue.json").exists()
    built = sitegen_process(archive, "build")  # once the build is over, the next one publishes it
    assert built.returncode == 0, built.stderr
    assert run.name in (archive / "catalogue.json").read_text()
