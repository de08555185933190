"""The section-8 checklist as readers see it: one row per item with its evidence.

One archive holds a run that passes every item and one run per failure (or
alternative way to pass); it is built once, and each case reads its row of
the checklist table on the built run page.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup
from click.testing import CliRunner
from conftest import call_record, end_record, lines, meta_record, metadata

from sitegen.build import build
from sitegen.cli import main as cli
from sitegen.repro import CHECKS, is_placeholder_version, is_real_digest

DIGEST = "sha256:" + "2b1f95fa8f3f4c1e" * 4
MACHINE = {
    "cores": 2,
    "calls_sampled": 25,
    "other_cores_p50": 0.1,
    "other_cores_p90": 0.2,
    "other_cores_mean": 0.12,
    "engine": "local",
    "load_1m_p50": 1.2,
    "load_1m_max": 1.5,
}


def good_metadata(run_id: str) -> dict[str, Any]:
    md = metadata(run_id)
    md["targets"][0]["model_digest"] = DIGEST
    md["machine"] = dict(MACHINE)
    md["window"] = {"statement": "ran 02:00-05:00Z, outside prime time", "by": "Ben"}
    return md


def good_ledger(run_id: str) -> list[dict[str, Any]]:
    return [meta_record(run_id), call_record(), end_record()]


def dirty(md, led):
    md["git"] = {"sha": "abc1234", "dirty": True}


def dirty_documented(md, led):
    md["git"] = {"sha": "abc1234", "dirty": True, "dirty_files": ["M notes.txt"]}


def no_sha(md, led):
    md["git"] = {"dirty": False}
    led[0].pop("git_sha")


def not_a_sha(md, led):
    md["git"]["sha"] = "n/a"


def no_harness_version(md, led):
    md["harness"] = {"name": "h"}
    led[0].pop("harness_version")


def placeholder_version(md, led):
    md["targets"][0]["engine_version"] = "b0-unknown"


def operator_version(md, led):
    md["targets"][0].update(engine_version="b6123", engine_version_source="operator")


def zero_digest(md, led):
    md["targets"][0]["model_digest"] = "sha256:" + "0" * 64


def no_digest(md, led):
    md["targets"][0].pop("model_digest")


def finish_at_start(md, led):
    # Finishing *before* the start is a validation error; finishing at the very
    # instant it started is valid input but records no window.
    md["finished_at_utc"] = "2026-05-01T10:00:00Z"


def contended(md, led):
    md["machine"].update(other_cores_p50=1.6, other_cores_p90=1.9, other_cores_mean=1.5)
    md["exclusive"] = {"statement": "nothing else ran", "by": "Ben"}


def overloaded(md, led):
    md["machine"]["load_1m_p50"] = 6.0


def not_measured(md, led):
    md.pop("machine")
    md["exclusive"] = {"statement": "nothing else ran", "by": "Ben"}


def remote_engine(md, led):
    md["machine"]["engine"] = "remote"


def no_window(md, led):
    md.pop("window")


def authorized(md, led):
    md.pop("window")
    md["authorization"] = {"statement": "go ahead in chat, 17:34Z", "by": "Sloba"}


def busy_at_start(md, led):
    md["load_avg_start"] = [5.2, 3.0, 2.0]
    led[0].pop("load_avg_start")


def probe_failed(md, led):
    led.insert(
        1,
        {
            "type": "skip",
            "cell_id": "node-b:ollama:m2",
            "reason": "unreachable",
            "phase": "skipped",
        },
    )


# run id, change, item, passes, evidence on the page
CASES = [
    ("dirty", dirty, "git_clean", False, "tree dirty and the dirty files are not documented"),
    ("dirty-doc", dirty_documented, "git_clean", True, "1 file(s) listed (M notes.txt)"),
    ("no-sha", no_sha, "git_sha", False, "git sha not recorded"),
    ("bad-sha", not_a_sha, "git_sha", False, "git sha 'n/a' is not a commit id"),
    ("no-harness", no_harness_version, "harness_version", False, "harness version not recorded"),
    (
        "b0",
        placeholder_version,
        "engine_versions",
        False,
        "placeholder engine version 'b0-unknown' for node-a:llamacpp:m1",
    ),
    (
        "operator",
        operator_version,
        "engine_versions",
        True,
        "node-a:llamacpp:m1: b6123 (operator-supplied)",
    ),
    ("zero-digest", zero_digest, "model_digests", False, "not a real sha256"),
    ("no-digest", no_digest, "model_digests", False, "model digest missing for node-a:llamacpp:m1"),
    ("zero-window", finish_at_start, "times", False, "is not after start"),
    (
        "contended",
        contended,
        "exclusive",
        False,
        "other processes used 1.60 of 2 cores (median over 25 calls; p90 1.90, mean 1.50), "
        "80% of the machine, limit 25%",
    ),
    (
        "contended-says",
        contended,
        "exclusive",
        False,
        "publisher states “nothing else ran” (by Ben)",
    ),
    ("overloaded", overloaded, "exclusive", False, "1-minute load 6 (3.00 per core, median"),
    (
        "unmeasured",
        not_measured,
        "exclusive",
        False,
        "machine exclusivity not measured: the ledger has no per-call machine samples",
    ),
    ("remote", remote_engine, "exclusive", True, "only the harness host was measured"),
    ("no-window", no_window, "prime_time", False, "prime-time avoidance or authorization not"),
    ("authorized", authorized, "prime_time", True, "authorized: “go ahead in chat, 17:34Z”"),
    ("busy-start", busy_at_start, "load_avg", False, "1-minute load average 5.2 is above 4"),
    ("probe-failed", probe_failed, "health_checks", False, "node-b:ollama:m2: unreachable"),
]


def write(root: Path, run_id: str, md: dict[str, Any], ledger: list[dict[str, Any]]) -> None:
    folder = root / "runs" / run_id
    folder.mkdir(parents=True)
    (folder / "metadata.json").write_text(json.dumps(md), encoding="utf-8")
    (folder / "run.jsonl").write_text(lines(*ledger), encoding="utf-8")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("checklist")
    write(root, "good", good_metadata("good"), good_ledger("good"))
    for run_id, change, *_ in CASES:
        md, led = good_metadata(run_id), good_ledger(run_id)
        change(md, led)
        write(root, run_id, md, led)
    build(root)
    return root


def rows(site: Path, run_id: str) -> dict[str, tuple[bool, str, str]]:
    page = BeautifulSoup(
        (site / "site" / "runs" / run_id / "index.html").read_text(encoding="utf-8"), "html.parser"
    )
    out = {}
    for tr in page.select("table.checklist tbody tr"):
        out[tr["data-check"]] = (
            "ok" in tr["class"],
            tr.select_one("td.result").get_text(" ", strip=True),
            tr.select_one("td.evidence").get_text(" ", strip=True),
        )
    return out


def notice(site: Path, run_id: str) -> str:
    page = BeautifulSoup(
        (site / "site" / "runs" / run_id / "index.html").read_text(encoding="utf-8"), "html.parser"
    )
    found = page.select_one(".notice.unreliable")
    return found.get_text(" ", strip=True) if found else ""


def test_a_run_holding_every_item_is_reliable_and_shows_each_piece_of_evidence(site: Path) -> None:
    got = rows(site, "good")
    assert list(got) == [key for key, _ in CHECKS]
    assert all(ok and result == "✓ pass" for ok, result, _ in got.values()), got
    assert got["exclusive"][2].startswith("other processes used 0.10 of 2 cores (median over 25")
    assert got["times"][2] == "2026-05-01T10:00:00Z to 2026-05-01T10:05:00Z (5 min 0 s)"
    assert got["engine_versions"][2] == "node-a:llamacpp:m1: b1234"
    assert got["git_sha"][2] == "commit abc1234"
    assert "outside prime time" in got["prime_time"][2]
    assert got["health_checks"][2] == "all 1 planned cell(s) passed their health check"
    assert notice(site, "good") == ""


@pytest.mark.parametrize(
    ("run_id", "item", "passes", "evidence"),
    [(c[0], c[2], c[3], c[4]) for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_each_item_passes_or_fails_with_its_evidence(
    site: Path, run_id: str, item: str, passes: bool, evidence: str
) -> None:
    got = rows(site, run_id)
    ok, result, shown = got[item]
    assert ok is passes and result == ("✓ pass" if passes else "✗ fail")
    assert evidence in shown, shown
    others = {k for k, (good, _, _) in got.items() if not good} - {item}
    assert not others, f"only {item} should differ: {others}"
    if passes:
        assert notice(site, run_id) == ""
    else:
        # Still published, marked unreliable with the same words.
        assert notice(site, run_id).startswith("unreliable:") and evidence in notice(site, run_id)


@pytest.mark.parametrize(
    "value", ["unknown", "b0-unknown", "b0", "", "0", "dev", "0.0.0", "v0.0", "N/A", None]
)
def test_placeholder_versions_identify_nothing(value: Any) -> None:
    assert is_placeholder_version(value)


@pytest.mark.parametrize("value", ["b6123", "0.6.8", "v0.10.1", "llama.cpp b6123 (operator)"])
def test_real_versions_are_accepted(value: str) -> None:
    assert not is_placeholder_version(value)


def test_digest_must_be_a_real_sha256() -> None:
    assert is_real_digest(DIGEST) and is_real_digest(DIGEST[7:])
    assert not is_real_digest("sha256:" + "0" * 64)
    assert not is_real_digest("sha256:2b1f95fa8f3f")  # a short Ollama id is not a digest


def test_quiet_hours_setting_machine_checks_the_window(tmp_path: Path, monkeypatch) -> None:
    """With quiet hours set, the recorded times decide; no statement is needed."""
    inside, outside = good_metadata("inside"), good_metadata("outside")
    for md in (inside, outside):
        md.pop("window")
    inside.update(started_at_utc="2026-05-01T02:10:00Z", finished_at_utc="2026-05-01T02:40:00Z")
    write(tmp_path, "inside", inside, good_ledger("inside"))
    write(tmp_path, "outside", outside, good_ledger("outside"))
    (tmp_path / "sitegen.toml").write_text(
        '[reproducibility]\nquiet_hours_utc = "02:00-05:00"\n', encoding="utf-8"
    )
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["build", "--quiet"])
    assert result.exit_code == 0, result.output
    assert rows(tmp_path, "inside")["prime_time"] == (
        True,
        "✓ pass",
        "ran 02:10Z to 02:40Z, inside the quiet hours 02:00-05:00 UTC",
    )
    ok, _, shown = rows(tmp_path, "outside")["prime_time"]
    assert not ok and shown == (
        "ran 10:00Z to 10:05Z, outside the quiet hours 02:00-05:00 UTC, and no authorization"
    )


def test_strict_build_fails_on_a_contended_run_and_keeps_the_previous_site(
    tmp_path: Path, monkeypatch
) -> None:
    write(tmp_path, "good", good_metadata("good"), good_ledger("good"))
    monkeypatch.chdir(tmp_path)
    assert CliRunner().invoke(cli, ["build", "--strict", "--quiet"]).exit_code == 0
    before = (tmp_path / "catalogue.json").read_bytes()
    md, led = good_metadata("busy"), good_ledger("busy")
    contended(md, led)
    write(tmp_path, "busy", md, led)
    result = CliRunner().invoke(cli, ["build", "--strict"])
    assert result.exit_code != 0
    assert "runs/busy: unreliable: other processes used 1.60 of 2 cores" in result.output
    assert (tmp_path / "catalogue.json").read_bytes() == before


def test_old_ledgers_without_samples_stay_valid(tmp_path: Path, monkeypatch) -> None:
    """A ledger recorded before the runner sampled the machine builds; the item says why."""
    md = good_metadata("old")
    md.pop("machine")
    write(tmp_path, "old", md, good_ledger("old"))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["check"])
    assert result.exit_code == 0, result.output
    assert "runs/old: unreliable: machine exclusivity not measured" in result.output


# ---------------------------------------------------------------- the runner's side


def cells_yaml(folder: Path, url: str, extra: str = "") -> None:
    (folder / "cells.yaml").write_text(
        f"cells:\n  - node: devbox\n    engine: llamacpp\n    model: tiny\n"
        f"    endpoint: {url}\n{extra}",
        encoding="utf-8",
    )


def test_for_publication_refuses_a_placeholder_engine_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fake_engine

    monkeypatch.setattr(fake_engine, "BUILD_INFO", "b0-unknown")
    monkeypatch.chdir(tmp_path)
    with fake_engine.FakeEngine("llamacpp") as eng:
        cells_yaml(tmp_path, eng.url)
        result = CliRunner().invoke(
            cli, ["run", "--cells", "cells.yaml", "--for-publication", "--force-load", "-q"]
        )
        assert result.exit_code != 0
        assert "no real engine version" in result.output
        assert "devbox:llamacpp:tiny: engine reports placeholder 'b0-unknown'" in result.output
        assert not (tmp_path / "runs").exists() and not (tmp_path / "ledgers").exists()
        assert eng.completions() == []  # refused before any measured call


def test_operator_version_is_recorded_as_such_and_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fake_engine

    monkeypatch.setattr(fake_engine, "BUILD_INFO", "b0-unknown")
    monkeypatch.setattr("sitegen.runner.packaging.refresh_catalogue", lambda archive: None)
    monkeypatch.chdir(tmp_path)
    with fake_engine.FakeEngine("llamacpp", tokens=2) as eng:
        cells_yaml(tmp_path, eng.url, '    engine_version: "b6123"\n')
        result = CliRunner().invoke(
            cli,
            [
                *("run", "--cells", "cells.yaml", "--for-publication", "--force-load", "-q"),
                *("--warm", "1", "--prompt", "P-EASY", "--authorization", "Sloba, chat 17:34Z"),
            ],
        )
    assert result.exit_code == 0, result.output
    (folder,) = (tmp_path / "runs").iterdir()
    md = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))
    (target,) = md["targets"]
    assert target["engine_version"] == "b6123"
    assert target["engine_version_source"] == "operator"
    assert target["engine_version_reported"] == "b0-unknown"
    assert md["authorization"]["statement"] == "Sloba, chat 17:34Z"
    assert CliRunner().invoke(cli, ["build", "--quiet"]).exit_code == 0
    got = rows(tmp_path, folder.name)
    assert got["engine_versions"] == (
        True,
        "✓ pass",
        "devbox:llamacpp:tiny: b6123 (operator-supplied)",
    )
    assert got["prime_time"][2].startswith("authorized: “Sloba, chat 17:34Z”")
    assert "(recorded with --for-publication)" in got["health_checks"][2]


def test_two_placeholder_engine_versions_are_not_like_for_like() -> None:
    """b0-unknown on both sides says nothing about whether the builds match."""
    from sitegen.compare import Facts, differences

    def facts(run_id: str, version: str) -> Facts:
        return Facts(
            run_id=run_id,
            title=run_id,
            started_at=f"2026-05-0{len(run_id)}T10:00:00Z",
            baseline=False,
            targets={"n:llamacpp:m": {"model_digest": DIGEST, "engine_version": version}},
            prompts={"P-EASY": "a" * 64},
            warm={},
        )

    unknown = differences(
        facts("bb", "b0-unknown"), facts("a", "b0-unknown"), "n:llamacpp:m", "P-EASY"
    )
    assert unknown == ["engine version not recorded"]
    assert differences(facts("bb", "b6123"), facts("a", "b6123"), "n:llamacpp:m", "P-EASY") == []


def test_bad_operator_keys_in_cells_yaml_name_the_file_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    cells_yaml(tmp_path, "http://127.0.0.1:9", "    engine_pid: twelve\n    engine_version: ''\n")
    result = CliRunner().invoke(cli, ["run", "--cells", "cells.yaml", "--force-load"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "cells.yaml:6" in result.output and "'engine_pid' must be a process id" in result.output
    assert "cells.yaml:7" in result.output and "'engine_version' must be text" in result.output
