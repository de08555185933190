"""`sitegen import`: each format's realistic sample becomes a valid run folder
whose numbers are exactly the source's, with provenance mapped and unknowns
left null."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import sitegen.importers as importers
from sitegen.importers import detect_format, import_files
from sitegen.importers.base import read_document, scrub_text
from sitegen.schema import pointer

DATA = Path(__file__).parent / "data" / "import"
LM_EVAL = "results_2026-01-20T09-14-55.812345.json"

# sample file -> (format, result records, call records)
SAMPLES = {
    "mlx-throughput.json": ("mlx-benchmarks-v1", 13, 0),
    "nexus-record.json": ("nexus-result-v1", 18, 0),
    "bench-output-ok.json": ("benchmark-output-v1", 6, 0),
    "bench-output-error.json": ("benchmark-output-v1", 1, 0),
    "vllm-serve-detailed.json": ("vllm-bench-serve", 35, 6),
    "vllm-serve-summary.json": ("vllm-bench-serve", 35, 0),
    "llama-bench-rtx4070.json": ("llama-bench", 4, 0),
    "llama-bench-cpu.jsonl": ("llama-bench", 2, 0),
    LM_EVAL: ("lm-eval", 8, 0),
}
MALFORMED = {
    "mlx-bad.json": "mlx-benchmarks-v1",
    "nexus-bad.json": "nexus-result-v1",
    "bench-output-bad.json": "benchmark-output-v1",
    "vllm-serve-bad.json": "vllm-bench-serve",
    "llama-bench-bad.jsonl": "llama-bench",
    "results_bad.json": "lm-eval",
}


def _schema(name: str) -> dict[str, Any]:
    return json.loads(resources.files("sitegen").joinpath("schemas", name).read_text("utf-8"))


@pytest.fixture(autouse=True)
def refreshes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Record catalogue refreshes instead of running the build."""
    calls: list[Path] = []

    def fake(root: Path) -> None:
        calls.append(root)

    monkeypatch.setattr(importers, "refresh_catalogue", fake)
    return calls


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    return tmp_path / "archive" / "runs"


def _import(runs: Path, name: str, **kwargs: Any) -> Path:
    report = import_files([DATA / name], runs_dir=runs, **kwargs)
    assert len(report.runs) == 1
    return report.runs[0].path


def _ledger(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "run.jsonl").read_text("utf-8").splitlines()]


def _metadata(run: Path) -> dict[str, Any]:
    return json.loads((run / "metadata.json").read_text("utf-8"))


def _results(run: Path) -> list[dict[str, Any]]:
    return [r for r in _ledger(run) if r["type"] == "result"]


def _one(records: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    found = [r for r in records if all(r.get(k) == v for k, v in match.items())]
    assert len(found) == 1, (match, found)
    return found[0]


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_sample_imports_as_a_valid_run_folder(runs: Path, name: str, refreshes: list[Path]) -> None:
    fmt, n_results, n_calls = SAMPLES[name]
    run = _import(runs, name)
    assert run.parent == runs and run.name.startswith(f"{fmt}-")
    assert sorted(p.name for p in run.iterdir()) == ["metadata.json", "run.jsonl", "source"]
    assert (run / "source" / name).read_bytes() == (DATA / name).read_bytes()

    metadata = _metadata(run)
    jsonschema.validate(metadata, _schema("metadata.v1.json"))
    assert metadata["id"] == run.name
    assert metadata["format"] == "sitegen.metadata/1"
    assert metadata["status"] == "complete"
    assert {"imported", fmt} <= set(metadata["tags"])
    assert metadata["source"]["format"] == fmt
    assert metadata["source"]["file"] == name
    assert metadata["load_avg_start"] is None  # no source records it: never invented

    ledger = _ledger(run)
    for record in ledger:
        jsonschema.validate(record, _schema(f"ledger-{record['type']}.v1.json"))
    assert ledger[0]["type"] == "meta" and ledger[-1]["type"] == "end"
    assert ledger[0]["benchmark_run_id"] == run.name
    assert ledger[0]["cells_planned"] == [t["cell_id"] for t in metadata["targets"]]
    assert sum(r["type"] == "result" for r in ledger) == n_results == ledger[-1]["results"]
    assert sum(r["type"] == "call" for r in ledger) == n_calls == ledger[-1]["calls"]
    assert refreshes == [runs.parent.resolve()]
    assert not [p for p in runs.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize(("name", "fmt"), [(n, f) for n, (f, _, _) in SAMPLES.items()])
def test_detection_picks_the_format_of_every_sample(name: str, fmt: str) -> None:
    doc = read_document(name, (DATA / name).read_bytes())
    assert detect_format(doc) == fmt


@pytest.mark.parametrize(("name", "fmt"), sorted(MALFORMED.items()))
def test_detection_picks_the_format_of_malformed_samples_too(name: str, fmt: str) -> None:
    doc = read_document(name, (DATA / name).read_bytes())
    assert detect_format(doc) == fmt


def test_mlx_values_and_provenance_round_trip(runs: Path) -> None:
    source = json.loads((DATA / "mlx-throughput.json").read_text())
    run = _import(runs, "mlx-throughput.json")
    results = _results(run)
    for row in source["results"]:
        record = _one(results, name=row["name"], metric=row["metric"])
        assert record["value"] == row["value"]
        assert record["unit"] == row["unit"]
        assert record.get("duration_s") == row.get("duration_seconds")
        assert record.get("tags", {}) == row.get("tags", {})
    first = source["results"][0]
    assert _one(results, name=first["name"], metric="decode_tokens_per_second")["value"] == 87.4
    assert _one(results, name="memory/peak", metric="rss_gb")["value"] == 5.02

    metadata = _metadata(run)
    assert metadata["git"]["sha"] == source["git_sha"]
    assert metadata["started_at_utc"] == "2026-03-02T04:15:09Z"
    assert metadata["finished_at_utc"] is None
    (target,) = metadata["targets"]
    assert (target["engine"], target["engine_version"]) == ("vllm-mlx", "0.2.4")
    assert target["model_digest"] == source["model_revision"]
    assert target["quantization"] == "mlx-4bit"
    assert target["settings"]["gen_kwargs"] == source["gen_kwargs"]
    node = metadata["nodes"][target["node"]]
    assert (node["cpu"], node["memory_gb"], node["os"]) == ("Apple M4 Max", 128, "macOS 15.3.2")


def test_nexus_values_round_trip_with_quality_verdicts(runs: Path) -> None:
    source = json.loads((DATA / "nexus-record.json").read_text())
    run = _import(runs, "nexus-record.json")
    results = _results(run)
    for entry in source["results"]:
        for key in (
            "tokens_per_second",
            "time_to_first_token_ms",
            "total_duration_ms",
            "prompt_tokens",
            "completion_tokens",
        ):
            record = _one(results, name=entry["task"], model=entry["model"], metric=key)
            assert record["value"] == entry[key]
        verdict = _one(
            results, name=entry["task"], model=entry["model"], metric="passed_quality_check"
        )
        assert verdict["passed"] is entry["passed_quality_check"]
    metadata = _metadata(run)
    assert metadata["harness"] == {"name": "nexus", "version": "0.3.5"}
    # The record carries only its submission time: the run's own times stay unknown.
    assert metadata["started_at_utc"] is None and metadata["finished_at_utc"] is None
    assert metadata["source"]["submitted_at"] == source["submitted_at"]
    assert sorted(t["model"] for t in metadata["targets"]) == ["llama3.2:3b", "qwen2.5-coder:1.5b"]
    (node,) = metadata["nodes"].values()
    assert (node["gpu"], node["cpu"], node["memory_gb"]) == ("RTX 4070", "AMD Ryzen 9 7900X", 64)


def test_benchmark_output_ok_round_trip(runs: Path) -> None:
    source = json.loads((DATA / "bench-output-ok.json").read_text())
    run = _import(runs, "bench-output-ok.json")
    results = _results(run)
    for metric, value in source["results"]["metrics"].items():
        assert _one(results, name="humaneval/python", metric=metric)["value"] == value
    hard = _one(results, name="humaneval/python/by_difficulty/hard", metric="pass_at_1")
    assert hard["tags"] == {"details": "by_difficulty.hard"}
    assert hard["value"] == 0.41
    metadata = _metadata(run)
    assert metadata["git"] == {"sha": "b81f2d4c9a0e", "dirty": False}
    assert metadata["started_at_utc"] == "2026-02-11T21:03:44Z"
    assert metadata["finished_at_utc"] == "2026-02-11T21:19:02Z"
    (target,) = metadata["targets"]
    assert target["engine"] == "vllm"
    assert target["model_digest"] == source["metadata"]["model"]["revision"]
    assert target["settings"]["parameters"] == {
        "temperature": 0.2,
        "max_tokens": 768,
        "top_p": 0.95,
    }
    assert "status-ok" in metadata["tags"]
    # benchmark.version versions the benchmark, not the code that ran it
    assert metadata["harness"] == {"name": "code-regression", "version": None}
    assert target["settings"]["benchmark_version"] == "2026.02"


def test_benchmark_output_error_is_imported_as_a_failed_run(runs: Path) -> None:
    run = _import(runs, "bench-output-error.json")
    (status,) = _results(run)
    assert status["metric"] == "status" and status["passed"] is False and status["value"] is None
    assert status["tags"]["error_type"] == "RateLimitError"
    assert "HTTP 429" in status["tags"]["error_message"]
    metadata = _metadata(run)
    assert "status-error" in metadata["tags"]
    assert "The run failed: rate limited" in metadata["description"]
    assert _ledger(run)[-1]["source_status"] == "error"


def test_vllm_summary_statistics_and_per_request_calls_round_trip(runs: Path) -> None:
    source = json.loads((DATA / "vllm-serve-detailed.json").read_text())
    run = _import(runs, "vllm-serve-detailed.json")
    ledger = _ledger(run)
    results = [r for r in ledger if r["type"] == "result"]
    for key in (
        "mean_ttft_ms",
        "median_tpot_ms",
        "std_itl_ms",
        "p99_e2el_ms",
        "p90_ttft_ms",
        "request_throughput",
        "output_throughput",
        "total_token_throughput",
        "completed",
    ):
        record = _one(results, metric=key)
        assert record["value"] == source[key]
        assert record["name"] == source["label"]
    assert _one(results, metric="mean_ttft_ms")["unit"] == "ms"
    assert _one(results, metric="mean_ttft_ms")["higher_is_better"] is False
    assert _one(results, metric="output_throughput")["unit"] == "tok/s"

    calls = [r for r in ledger if r["type"] == "call"]
    assert [c["run_idx"] for c in calls] == list(range(6))
    for i, call in enumerate(calls):
        assert call["phase"] == "warm" and call["cold_kind"] == "not_measured"
        assert call["prompt_tokens"] == source["input_lens"][i]
        assert call["completion_tokens"] == source["output_lens"][i]
        if source["errors"][i]:
            assert call["error"] == source["errors"][i]
            assert call["first_delta_ms"] is None and call["total_duration_ms"] is None
        else:
            assert call["error"] is None
            assert call["first_delta_ms"] == pytest.approx(source["ttfts"][i] * 1000)
            assert call["ttft_ms"] == call["first_delta_ms"]
            assert call["total_duration_ms"] == pytest.approx(source["latencies"][i] * 1000)
            assert call["itl_max_ms"] == pytest.approx(max(source["itls"][i]) * 1000)
    end = ledger[-1]
    assert (end["calls"], end["errors"]) == (6, 1)
    assert end["wall_s"] == source["duration"]

    metadata = _metadata(run)
    assert metadata["harness"] == {"name": "vllm bench serve", "version": "0.9.2"}
    assert metadata["concurrency"] == 4
    # `date` is the client's local time without a zone: not claimed as UTC.
    assert metadata["started_at_utc"] is None
    assert ledger[0]["started_at_utc"] == "2026-03-05T14:15:22"
    assert ledger[0]["time_note"].startswith("vLLM writes `date` in the client's local time")
    assert metadata["source"]["date"] == "20260305-141522"
    (target,) = metadata["targets"]
    assert (target["engine"], target["engine_version"]) == ("vllm", "0.9.2")
    assert target["settings"]["request_rate"] == 4.0


def test_vllm_openai_backend_leaves_engine_and_version_unknown(runs: Path) -> None:
    run = _import(runs, "vllm-serve-summary.json")
    metadata = _metadata(run)
    (target,) = metadata["targets"]
    assert target["engine"] is None and target["engine_version"] is None
    assert metadata["harness"]["version"] is None
    assert _one(_results(run), metric="mean_e2el_ms")["name"] == "bench-serve"


def test_llama_bench_rows_round_trip_and_path_is_scrubbed(runs: Path) -> None:
    name = "llama-bench-rtx4070.json"
    rows = json.loads((DATA / name).read_text())
    run = _import(runs, name)
    results = _results(run)
    assert [r["name"] for r in results] == ["pp512", "tg128", "pp512 @ d4096", "tg128 @ d4096"]
    for row, record in zip(rows, results, strict=True):
        assert record["metric"] == "tokens_per_sec" and record["unit"] == "tok/s"
        assert record["value"] == row["avg_ts"]
        assert record["tags"]["stddev_ts"] == row["stddev_ts"]
        assert record["tags"]["avg_ns"] == row["avg_ns"]
        assert record["tags"]["n_threads"] == row["n_threads"]
        assert record["duration_s"] == pytest.approx(sum(row["samples_ns"]) / 1e9)
    metadata = _metadata(run)
    (target,) = metadata["targets"]
    # canonical names: the file's extension is not the model's name; one llama.cpp engine
    assert target["model"] == "Llama-3.2-3B-Instruct-Q4_K_M"
    assert target["model_file"] == "Llama-3.2-3B-Instruct-Q4_K_M.gguf"
    assert target["engine"] == "llamacpp"
    assert target["cell_id"].endswith(":llamacpp:Llama-3.2-3B-Instruct-Q4_K_M")
    assert target["engine_version"] == "b6415 (6c9e3d1a)"
    assert target["quantization"] == "Q4_K - Medium"
    assert target["parameters"] == 3212749824
    node = metadata["nodes"][target["node"]]
    assert node["gpu"] == "NVIDIA GeForce RTX 4070"
    assert node["cpu"] == "AMD Ryzen 7 7800X3D 8-Core Processor"
    assert metadata["git"]["sha"] == "6c9e3d1a"
    assert metadata["started_at_utc"] == "2026-05-04T02:11:37Z"
    for generated in ("run.jsonl", "metadata.json"):
        assert "/home/" not in (run / generated).read_text("utf-8")
    assert b"/home/user/models/" in (run / "source" / name).read_bytes()


def test_llama_bench_jsonl_unknown_build_stays_unknown(runs: Path) -> None:
    run = _import(runs, "llama-bench-cpu.jsonl")
    metadata = _metadata(run)
    (target,) = metadata["targets"]
    assert target["engine_version"] is None
    assert metadata["git"]["sha"] is None and metadata["harness"]["version"] is None
    assert target["model"] == "Qwen2.5-0.5B-Instruct-Q8_0"
    assert target["model_file"] == "Qwen2.5-0.5B-Instruct-Q8_0.gguf"
    assert metadata["nodes"][target["node"]]["gpu"] is None
    assert "llama-bench-jsonl" in metadata["tags"]
    rows = [json.loads(line) for line in (DATA / "llama-bench-cpu.jsonl").read_text().splitlines()]
    assert [r["value"] for r in _results(run)] == [row["avg_ts"] for row in rows]


def test_lm_eval_metrics_stderr_and_provenance_round_trip(runs: Path) -> None:
    source = json.loads((DATA / LM_EVAL).read_text())
    run = _import(runs, LM_EVAL)
    results = _results(run)
    for task, metrics in source["results"].items():
        for key, value in metrics.items():
            metric, _, filt = key.partition(",")
            if not filt or metric.endswith("_stderr"):
                continue
            name = metric if filt == "none" else key
            record = _one(results, name=task, metric=name)
            assert record["value"] == value
            stderr = metrics.get(f"{metric}_stderr,{filt}")
            assert record["stderr"] == (stderr if isinstance(stderr, float) else None)
            assert record["higher_is_better"] == source["higher_is_better"][task][metric]
            assert record["tags"]["n_shot"] == source["n-shot"][task]
    assert _one(results, name="lambada_openai", metric="perplexity")["higher_is_better"] is False

    metadata = _metadata(run)
    assert metadata["git"]["sha"] == "8138fd52"
    assert metadata["harness"] == {"name": "lm-evaluation-harness", "version": "0.4.7"}
    assert metadata["started_at_utc"] == "2026-01-20T09:14:55.812345Z"
    assert metadata["finished_at_utc"] == "2026-01-20T09:40:54.539048Z"
    (target,) = metadata["targets"]
    assert (target["engine"], target["engine_version"]) == ("transformers", "4.46.3")
    assert target["model"] == "pythia-410m-deduped"
    assert target["model_digest"] == "9879c9b5f8bea9051dcb0e68dff21493d67e9d4f"
    assert target["parameters"] == 405334016
    node = metadata["nodes"][target["node"]]
    assert (node["gpu"], node["cores"]) == ("NVIDIA L4", 16)
    assert node["os"] == "Ubuntu 22.04.5 LTS (x86_64)"
    generated = (run / "metadata.json").read_text() + (run / "run.jsonl").read_text()
    assert "/data/checkpoints" not in generated and "checkpoints" not in generated


def test_origin_and_tags_are_recorded(runs: Path) -> None:
    run = _import(
        runs,
        "nexus-record.json",
        origin="Example record published in X",
        tags=["published-example"],
    )
    metadata = _metadata(run)
    assert metadata["source"]["origin"] == "Example record published in X"
    assert "published-example" in metadata["tags"]


def test_run_id_is_deterministic(tmp_path: Path) -> None:
    first = _import(tmp_path / "a" / "runs", "mlx-throughput.json")
    second = _import(tmp_path / "b" / "runs", "mlx-throughput.json")
    assert first.name == second.name
    assert first.name.startswith("mlx-benchmarks-v1-20260302-")


def test_pointer_form() -> None:
    assert pointer(["results", 2, "value"]) == "$.results[2].value"
    assert pointer(["results", "hellaswag", "acc,none"]) == '$.results.hellaswag["acc,none"]'
    assert pointer([]) == "$"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/home/x/models/m.gguf", "m.gguf"),
        ("pretrained=/home/x/ckpt/m,dtype=float16", "pretrained=m,dtype=float16"),
        ("C:\\Users\\x\\m.gguf", "m.gguf"),
        ("https://user:pw@example.org/v1", "https://example.org/v1"),
        ("tok/s", "tok/s"),
        ("Qwen/Qwen2.5-1.5B-Instruct", "Qwen/Qwen2.5-1.5B-Instruct"),
        ("https://huggingface.co/org/model", "https://huggingface.co/org/model"),
    ],
)
def test_scrub_text(text: str, expected: str) -> None:
    assert scrub_text(text) == expected


REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
_RULE_KEYS = (
    "type",
    "const",
    "enum",
    "required",
    "additionalProperties",
    "pattern",
    "minLength",
    "minimum",
    "format",
)


def _rules(schema: dict[str, Any], path: str = "$") -> dict[str, dict[str, Any]]:
    """Every validation keyword of a schema, keyed by where it applies."""
    out = {
        path: {k: schema[k] for k in _RULE_KEYS if k in schema and not isinstance(schema[k], dict)}
    }
    for name, sub in schema.get("properties", {}).items():
        out.update(_rules(sub, f"{path}.{name}"))
    for key, mark in (("items", "[]"), ("additionalProperties", "{}")):
        if isinstance(schema.get(key), dict):
            out.update(_rules(schema[key], path + mark))
    return out


def test_mlx_schema_states_every_rule_of_the_published_one() -> None:
    reference_file = REFERENCE / "mlx-benchmarks-schema-v1.json"
    if not reference_file.is_file():
        pytest.skip("reference schema not available")
    reference = json.loads(reference_file.read_text())
    ours = json.loads(
        resources.files("sitegen").joinpath("schemas/import/mlx-benchmarks.v1.json").read_text()
    )
    assert _rules(ours) == _rules(reference)
    validator = jsonschema.Draft7Validator(reference)
    assert validator.is_valid(json.loads((DATA / "mlx-throughput.json").read_text()))
    assert not validator.is_valid(json.loads((DATA / "mlx-bad.json").read_text()))


def test_nan_statistics_become_null_in_generated_files(runs: Path, tmp_path: Path) -> None:
    data = json.loads((DATA / "vllm-serve-summary.json").read_text())
    data["std_itl_ms"] = float("nan")
    data["p99_itl_ms"] = float("inf")
    source = tmp_path / "nan.json"
    source.write_text(json.dumps(data))  # Python writes NaN / Infinity, as vLLM does
    run = import_files([source], runs_dir=runs).runs[0].path
    assert _one(_results(run), metric="std_itl_ms")["value"] is None
    assert _one(_results(run), metric="p99_itl_ms")["value"] is None
    text = (run / "run.jsonl").read_text()
    assert "NaN" not in text and "Infinity" not in text


def test_imported_runs_are_accepted_by_the_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.undo()  # the real catalogue refresh this time
    archive = tmp_path / "archive"
    report = import_files([DATA / name for name in SAMPLES], runs_dir=archive / "runs")
    assert report.notes == []
    catalogue = json.loads((archive / "catalogue.json").read_text())
    listed = {run["id"]: run for run in catalogue["runs"]}
    assert set(listed) == {r.run_id for r in report.runs}
    lm_eval = next(r for r in report.runs if r.format == "lm-eval")
    verdict = listed[lm_eval.run_id]["reproducibility"]
    assert verdict["verdict"] == "unreliable"
    assert "load average at start not recorded" in verdict["reasons"]
