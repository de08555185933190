"""The publication gate runs inside every build and check, over runs and the built site."""

from __future__ import annotations

import hashlib

import pytest
from click.testing import CliRunner

from sitegen.build import build, check
from sitegen.cli import main
from sitegen.exceptions import ValidationFailed


def test_a_private_address_in_notes_fails_the_build_with_file_line_and_rule(tmp_path, write_run):
    write_run(run__md="# Notes\n\nServer was at 10.1.2.3 during the run.\n")
    with pytest.raises(ValidationFailed) as info:
        build(tmp_path)
    text = str(info.value)
    assert "runs/r1/run.md:3:15: [ipv4]" in text
    assert "10.1.2.3" not in text  # redacted
    assert not (tmp_path / "site").exists()


def test_check_runs_the_gate_too(tmp_path, write_run):
    write_run(run__log="ssh deploy@build-box-7 uptime\n")
    with pytest.raises(ValidationFailed, match=r"runs/r1/run\.log:1:\d+: \[user-at-host\]"):
        check(tmp_path)


def test_the_built_html_is_scanned(tmp_path, write_run):
    write_run()
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "page.html").write_text(
        "{% extends 'base.html' %}{% block main %}<p>/home/alice/notes</p>{% endblock %}"
    )
    with pytest.raises(
        ValidationFailed, match=r"site/methodology/index\.html:\d+:\d+: \[home-path\]"
    ):
        build(tmp_path)


def test_allowlist_exempts_exactly_one_finding(tmp_path, write_run):
    write_run(run__md="Public mirror at 8.8.8.8, private box 10.9.9.9\n")
    fingerprint = hashlib.sha256(b"ipv4:8.8.8.8").hexdigest()
    (tmp_path / "gate-allowlist.toml").write_text(
        f'[[allow]]\nfingerprint = "{fingerprint}"\nreason = "public resolver, named on purpose"\n'
    )
    with pytest.raises(ValidationFailed) as info:
        build(tmp_path)
    assert str(info.value).count("[ipv4]") == 1


def test_inline_allow_comments_in_run_files_are_ignored(tmp_path, write_run):
    write_run(run__md="<!-- gate: allow -->\nkey at 172.16.4.4 # gate: allow\n")
    with pytest.raises(ValidationFailed, match=r"\[ipv4\]"):
        build(tmp_path)


def test_gate_command_prints_fingerprints_for_the_allowlist(tmp_path, write_run):
    write_run(run__md="box 10.1.2.3\n")
    result = CliRunner().invoke(main, ["gate", str(tmp_path), "--fingerprints"])
    assert result.exit_code == 1
    assert "runs/r1/run.md:1:5: [ipv4]" in result.output
    assert hashlib.sha256(b"ipv4:10.1.2.3").hexdigest() in result.output


def test_a_clean_archive_passes_and_the_second_build_uses_the_cache(tmp_path, write_run):
    write_run()
    build(tmp_path)
    loaded = build(tmp_path)
    assert loaded.gate_cache.misses == 0 and loaded.gate_cache.hits > 0
