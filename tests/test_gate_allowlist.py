"""Publication gate allowlist: only gate-allowlist.toml exempts, and only exactly."""

from __future__ import annotations

from pathlib import Path

import pytest

from sitegen.exceptions import ConfigError
from sitegen.gate import Allowlist, fingerprint, load_allowlist, scan_text, scan_tree
from sitegen.layout import Layout

FP_A = fingerprint("ipv4", "10.1.2.3")
FP_B = fingerprint("ipv4", "10.4.5.6")


def write(root: Path, text: str) -> Path:
    path = root / "gate-allowlist.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_missing_file_is_an_empty_allowlist(tmp_path):
    allow = load_allowlist(Layout.of(tmp_path))
    assert len(allow) == 0
    findings = scan_text("10.1.2.3", "a.txt")
    assert allow.filter(findings) == findings


def test_an_entry_suppresses_exactly_its_fingerprint(tmp_path):
    write(tmp_path, f'[[allow]]\nfingerprint = "{FP_A}"\nreason = "our public demo server"\n')
    allow = load_allowlist(Layout.of(tmp_path))
    findings = scan_text("a 10.1.2.3 b 10.4.5.6 c 10.1.2.33", "a.txt")
    kept = allow.filter(findings)
    assert [f.fingerprint for f in kept] == [FP_B, fingerprint("ipv4", "10.1.2.33")]
    # the same text under another rule is another fingerprint
    assert fingerprint("ipv6", "10.1.2.3") not in allow
    (entry,) = allow.entries
    assert (entry.fingerprint, entry.reason, entry.line) == (FP_A, "our public demo server", 1)


def test_an_entry_covers_every_disguise_of_the_same_value(tmp_path):
    write(tmp_path, f'[[allow]]\nfingerprint = "{FP_A}"\nreason = "demo server"\n')
    allow = load_allowlist(Layout.of(tmp_path))
    assert allow.filter(scan_text("<td>&#49;0.1.2.3</td>", "a.html", kind="html")) == []
    assert allow.filter(scan_text("１０.１.２.３", "a.txt")) == []


def test_missing_reason_is_a_config_error_naming_file_and_line(tmp_path):
    write(
        tmp_path,
        f'# exemptions\n\n[[allow]]\nfingerprint = "{FP_A}"\nreason = "demo"\n\n'
        f'[[allow]]\nfingerprint = "{FP_B}"\n',
    )
    with pytest.raises(ConfigError) as err:
        load_allowlist(Layout.of(tmp_path))
    (problem,) = err.value.problems
    assert problem.path.endswith("gate-allowlist.toml")
    assert problem.line == 7
    assert "no reason" in str(problem)
    assert str(problem).startswith(f"{tmp_path / 'gate-allowlist.toml'}:7:")


def test_blank_reason_counts_as_missing(tmp_path):
    write(tmp_path, f'[[allow]]\nfingerprint = "{FP_A}"\nreason = "   "\n')
    with pytest.raises(ConfigError, match=r"gate-allowlist.toml:1: .*no reason"):
        load_allowlist(Layout.of(tmp_path))


def test_every_problem_is_reported_at_once(tmp_path):
    write(
        tmp_path,
        '[[allow]]\nfingerprint = "abc"\nreason = "x"\n'
        f'[[allow]]\nfingerprint = "{FP_A}"\nreason = "x"\nnote = "typo?"\n'
        f'[[allow]]\nfingerprint = "{FP_A}"\nreason = "again"\n',
    )
    with pytest.raises(ConfigError) as err:
        load_allowlist(Layout.of(tmp_path))
    messages = [(p.line, p.message) for p in err.value.problems]
    assert [line for line, _ in messages] == [1, 4, 8]
    assert "64 hex digits" in messages[0][1]
    assert "unknown field 'note'" in messages[1][1]
    assert "already allowed at line 4" in messages[2][1]


def test_invalid_toml_names_the_line(tmp_path):
    write(tmp_path, '[[allow]]\nfingerprint = "abc\nreason = "x"\n')
    with pytest.raises(ConfigError) as err:
        load_allowlist(Layout.of(tmp_path))
    (problem,) = err.value.problems
    assert problem.line == 2
    assert "not valid TOML" in problem.message


def test_unknown_top_level_key_is_an_error(tmp_path):
    write(tmp_path, 'allowed = ["x"]\n')
    with pytest.raises(ConfigError, match="unknown key 'allowed'"):
        load_allowlist(Layout.of(tmp_path))


def test_uppercase_fingerprints_are_accepted(tmp_path):
    write(tmp_path, f'[[allow]]\nfingerprint = "{FP_A.upper()}"\nreason = "demo"\n')
    assert FP_A in load_allowlist(Layout.of(tmp_path))


def test_unused_entries_are_reported(tmp_path):
    write(
        tmp_path,
        f'[[allow]]\nfingerprint = "{FP_A}"\nreason = "demo"\n'
        f'[[allow]]\nfingerprint = "{FP_B}"\nreason = "old"\n',
    )
    allow = load_allowlist(Layout.of(tmp_path))
    allow.filter(scan_text("10.1.2.3", "a.txt"))
    assert [e.fingerprint for e in allow.unused()] == [FP_B]


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("run.log", "connect 10.1.2.3  # gate: allow\n"),
        ("run.log", "# gate: allow-next-line\nconnect 10.1.2.3\n"),
        ("index.html", "<!-- allow --><td>10.1.2.3</td><!-- gate: allow -->\n"),
        ("run.md", "<!-- gate: allow -->\n10.1.2.3\n"),
        ("metadata.json", '{\n  "gate_allow": true,\n  "host": "10.1.2.3"\n}\n'),
        ("run.jsonl", '{"type":"meta","gate_allow":true,"allow":["ipv4"],"host":"10.1.2.3"}\n'),
        ("cells.yaml", "# gate: allow\nhost: 10.1.2.3 # noqa gate\n"),
    ],
)
def test_inline_allow_markers_in_run_files_suppress_nothing(tmp_path, name, text):
    root = tmp_path / "runs" / "r1"
    root.mkdir(parents=True)
    (root / name).write_text(text, encoding="utf-8")
    findings = scan_tree(tmp_path / "runs", "runs", load_allowlist(Layout.of(tmp_path)))
    assert [(f.path, f.rule) for f in findings] == [(f"runs/r1/{name}", "ipv4")]


def test_an_allowlist_inside_a_run_folder_is_ignored(tmp_path):
    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    write(run, f'[[allow]]\nfingerprint = "{FP_A}"\nreason = "sneaky"\n')
    (run / "run.log").write_text("10.1.2.3\n")
    assert len(load_allowlist(Layout.of(tmp_path))) == 0
    findings = scan_tree(tmp_path / "runs", "runs", load_allowlist(Layout.of(tmp_path)))
    assert {f.path for f in findings} >= {"runs/r1/run.log"}


def test_allowlist_that_is_a_folder_is_a_config_error(tmp_path):
    (tmp_path / "gate-allowlist.toml").mkdir()
    with pytest.raises(ConfigError, match="regular file"):
        load_allowlist(Layout.of(tmp_path))


def test_empty_allowlist_object_allows_nothing():
    assert Allowlist().filter(scan_text("10.1.2.3", "a")) != []
