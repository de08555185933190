"""Each reproducibility verdict, as the publisher and reader see it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import call_record, end_record, meta_record, metadata

from sitegen.build import build, load
from sitegen.exceptions import ValidationFailed


def complete(run_id: str = "r1", **extra) -> dict:
    """Metadata holding every item: a real digest, a contention summary, a window."""
    md = metadata(run_id, **extra)
    md["targets"][0]["model_digest"] = "sha256:" + "3c" * 32
    md["machine"] = {"cores": 4, "calls_sampled": 6, "other_cores_p50": 0.2, "load_1m_p50": 1.0}
    md["window"] = {"statement": "02:00-05:00Z", "by": "Ben"}
    return md


def verdict(root: Path, run_id: str = "r1") -> dict:
    loaded = load(root)
    return loaded.checks[run_id]


def failed(check: dict) -> set[str]:
    return {i["id"] for i in check["checks"] if not i["ok"]}


def test_a_complete_run_is_reliable(tmp_path, write_run):
    write_run(md=complete())
    check = verdict(tmp_path)
    assert check["verdict"] == "reliable" and check["reasons"] == []
    assert len(check["checks"]) == 11


@pytest.mark.parametrize(
    ("change", "item", "reason"),
    [
        ({"git": {"dirty": False}}, "git_sha", "git sha not recorded"),
        ({"git": {"sha": "abc", "dirty": True}}, "git_clean", "dirty files are not documented"),
        ({"harness": {"name": "h"}}, "harness_version", "harness version not recorded"),
        ({"load_avg_start": [5.2, 3.0, 2.0]}, "load_avg", "5.2 is above 4"),
        ({"targets": []}, "engine_versions", "no targets recorded"),
    ],
)
def test_each_failed_item_makes_the_run_unreliable(tmp_path, write_run, change, item, reason):
    md = metadata()
    md.update(change)
    meta = meta_record()
    for key in ("git_sha", "git_dirty", "harness_version", "load_avg_start"):
        meta.pop(key)
    write_run(ledger=[meta, call_record(), end_record()], md=md)
    check = verdict(tmp_path)
    assert check["verdict"] == "unreliable"
    assert item in failed(check)
    assert any(reason in r for r in check["reasons"]), check["reasons"]


def test_dirty_tree_with_documented_files_passes(tmp_path, write_run):
    write_run(md=metadata(git={"sha": "abc", "dirty": True, "dirty_files": ["M notes.txt"]}))
    assert "git_clean" not in failed(verdict(tmp_path))


def test_missing_engine_version_and_digest_name_the_cell(tmp_path, write_run):
    md = complete()
    md["targets"][0]["engine_version"] = None
    md["targets"][0].pop("model_digest")
    write_run(md=md)
    check = verdict(tmp_path)
    assert failed(check) == {"engine_versions", "model_digests"}
    assert "engine version missing for node-a:llamacpp:m1" in check["reasons"]


def test_interrupted_run_without_finish_time(tmp_path, write_run):
    write_run(
        ledger=[meta_record(), call_record()],
        md=metadata(finished_at_utc=None, status="interrupted"),
    )
    loaded = load(tmp_path)
    assert loaded.runs[0].status == "interrupted"
    assert "finish time not recorded" in loaded.checks["r1"]["reasons"]


def test_meta_only_run_is_checked_on_what_it_holds(tmp_path, write_run):
    write_run(ledger=b"-", md=complete(status="meta-only", git={}))
    check = verdict(tmp_path)
    assert failed(check) == {"git_sha", "git_clean", "health_checks"}
    assert "no ledger: health checks not recorded" in check["reasons"]


def test_changed_prompt_text_is_flagged_on_the_later_run(tmp_path, write_run):
    write_run("r1", md=complete())
    md = complete(
        "r2", started_at_utc="2026-06-01T00:00:00Z", finished_at_utc="2026-06-01T00:05:00Z"
    )
    md["prompts"] = {"P-EASY": {"sha256": "1" * 64, "max_tokens": 64}}
    write_run("r2", ledger=[meta_record("r2"), call_record(), end_record()], md=md)
    loaded = load(tmp_path)
    assert loaded.checks["r1"]["verdict"] == "reliable"
    assert "prompts_frozen" in failed(loaded.checks["r2"])
    assert "P-EASY differs from its text in run r1" in loaded.checks["r2"]["reasons"][0]


def test_unreliable_is_shown_and_strict_fails(tmp_path, write_run):
    write_run(md=complete(load_avg_start=[9.0]))
    build(tmp_path)
    catalogue = json.loads((tmp_path / "catalogue.json").read_text())
    assert catalogue["runs"][0]["reproducibility"]["verdict"] == "unreliable"
    page = (tmp_path / "site" / "runs" / "r1" / "index.html").read_text()
    assert "unreliable:" in page and "9 is above 4" in page
    with pytest.raises(ValidationFailed, match="runs/r1: unreliable: 1-minute load average 9"):
        build(tmp_path, strict=True)
