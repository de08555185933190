"""Publication gate: planted findings are caught, look-alikes are not, positions are exact."""

from __future__ import annotations

import base64
import json
import random
import re
import string
from dataclasses import dataclass
from pathlib import Path

import pytest

from sitegen.exceptions import BuildError, ValidationFailed
from sitegen.gate import (
    Allowlist,
    Finding,
    fail_on_findings,
    fingerprint,
    format_report,
    parse_allowlist,
    scan_bytes,
    scan_text,
    scan_tree,
)

DATA = Path(__file__).parent / "data" / "gate"
PLACEHOLDER = re.compile(r"\{(NL|SP|JWT|U\+[0-9A-F]{4,6}|(R|RA|RU|RH|RB|D):(\d+))\}")
ALPHABETS = {
    "R": string.ascii_letters + string.digits,
    "RA": string.ascii_letters,
    "RU": string.ascii_uppercase + string.digits,
    "RH": "0123456789abcdef",
    "RB": string.ascii_letters + string.digits + "-_",
    "D": string.digits,
}


@dataclass
class Case:
    lineno: int
    kind: str
    text: str
    secrets: list[str]  # generated random parts: none may be printed in full
    rule: str = ""


def _b64url(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def expand(template: str, rng: random.Random) -> tuple[str, list[str]]:
    """Fill placeholders; tokens are made at test time so none sits in the repository."""
    secrets: list[str] = []

    def fill(m: re.Match[str]) -> str:
        name = m.group(1)
        if name == "NL":
            return "\n"
        if name == "SP":
            return " "
        if name.startswith("U+"):
            return chr(int(name[2:], 16))
        if name == "JWT":
            sig = "".join(rng.choice(ALPHABETS["RB"]) for _ in range(43))
            header = _b64url({"alg": "HS256", "typ": "JWT"})
            token = f"{header}.{_b64url({'sub': rng.randrange(10**9)})}.{sig}"
            secrets.append(token)
            return token
        part = "".join(rng.choice(ALPHABETS[m.group(2)]) for _ in range(int(m.group(3))))
        secrets.append(part)
        return part

    return PLACEHOLDER.sub(fill, template), secrets


def load_corpus(name: str, *, with_rule: bool) -> list[Case]:
    cases = []
    for lineno, line in enumerate((DATA / name).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split(" ", 2 if with_rule else 1)
        rng = random.Random(f"{name}:{lineno}")
        if with_rule:
            rule, kind, template = fields
        else:
            rule, (kind, template) = "", fields
        text, secrets = expand(template, rng)
        cases.append(Case(lineno, kind, text, secrets, rule))
    return cases


PLANTED = load_corpus("planted.txt", with_rule=True)
LOOKALIKES = load_corpus("lookalikes.txt", with_rule=False)


def test_corpora_are_big_enough_and_cover_every_rule():
    from sitegen.gate import RULES

    assert len(PLANTED) >= 60
    assert len(LOOKALIKES) >= 60
    assert {c.rule for c in PLANTED} == set(RULES)


def test_every_planted_finding_is_caught_with_its_rule():
    misses = []
    for case in PLANTED:
        rules = {f.rule for f in scan_text(case.text, "planted.txt", kind=case.kind)}
        if case.rule not in rules:
            misses.append(
                f"line {case.lineno} [{case.rule}] {case.kind}: {case.text!r} -> {sorted(rules)}"
            )
    caught = len(PLANTED) - len(misses)
    assert not misses, f"caught {caught}/{len(PLANTED)}; missed:\n" + "\n".join(misses)


def test_no_lookalike_is_flagged():
    flagged = []
    for case in LOOKALIKES:
        findings = scan_text(case.text, "lookalikes.txt", kind=case.kind)
        if findings:
            flagged.append(
                f"line {case.lineno} {case.kind}: {case.text!r} -> {[str(f) for f in findings]}"
            )
    assert not flagged, f"{len(flagged)}/{len(LOOKALIKES)} false positives:\n" + "\n".join(flagged)


def test_printed_findings_never_hold_a_generated_secret():
    leaks = []
    for case in PLANTED:
        for f in scan_text(case.text, "p", kind=case.kind):
            shown = f"{f}\n{f!r}\n{f.to_problem()}"
            leaks.extend(f"line {case.lineno}: {s}" for s in case.secrets if s in shown)
    assert not leaks, "\n".join(leaks)


@pytest.mark.parametrize(
    ("text", "kind", "secret"),
    [
        ("server 10.20.30.40 up", "text", "10.20.30.40"),
        ("fd00::abcd answered", "text", "fd00::abcd"),
        ("ssh alice@build-box-3", "text", "alice@build-box-3"),
        ("ssh alice@build-box-3", "text", "alice"),
        ("/home/alice/x", "text", "/home/alice"),
        ("/home/alice/x", "text", "alice"),
        ("password = 'q8Vr2LpX9zTw4K'", "text", "q8Vr2LpX9zTw4K"),
        ("https://frank:Zq9Lx2Vr8Kp@db.corp/", "text", "Zq9Lx2Vr8Kp"),
    ],
)
def test_redaction_hides_the_matched_value(text, kind, secret):
    findings = scan_text(text, "f.txt", kind=kind)
    assert findings
    for f in findings:
        assert secret not in str(f)
        assert "…" in f.redacted


def test_private_key_body_is_never_printed():
    body = "MIIEowIBAAKCAQEA" + "q" * 20 + "Zx9" * 10
    text = f"-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----\n"
    (f,) = scan_text(text, "k.pem")
    assert f.rule == "private-key"
    assert body[:8] not in str(f)
    # the fingerprint covers the whole block, so two keys never share an entry
    other = text.replace("Zx9", "Yw8")
    assert scan_text(other, "k.pem")[0].fingerprint != f.fingerprint


def test_finding_string_and_fingerprint():
    (f,) = scan_text("a\nb 10.20.30.40\n", "runs/x/run.log", kind="log")
    assert str(f) == "runs/x/run.log:2:3: [ipv4] 10…"
    assert f.fingerprint == fingerprint("ipv4", "10.20.30.40")
    assert re.fullmatch(r"[0-9a-f]{64}", f.fingerprint)
    assert f'fingerprint = "{f.fingerprint}"' in f.allowlist_entry()


@pytest.mark.parametrize(
    ("text", "kind", "line", "column", "rule"),
    [
        # the column is where the value starts in the raw file, whatever the disguise
        ("x\n  <td>&#49;0.1.2.3</td>", "html", 2, 7, "ipv4"),
        ("&amp;&amp; <b>10.1.2.3</b>", "html", 1, 15, "ipv4"),
        ('{"a": 1}\n{"addr": "\\u0031\\u0030.0.0.9"}', "jsonl", 2, 11, "ipv4"),
        ('{"cwd": "\\/home\\/erin\\/x"}', "json", 1, 10, "home-path"),
        ("ab １０.２.３.４", "text", 1, 4, "ipv4"),
        ("ab 10.0\u200b.0.7", "text", 1, 4, "ipv4"),
        ("ab 10.0\u200b.0.7", "text", 1, 8, "invisible-char"),
        ("é\nwé 10.0.0.7 ŝ", "text", 2, 4, "ipv4"),
        ("line\r\nnext 10.0.0.7\r\n", "log", 2, 6, "ipv4"),
    ],
)
def test_positions_point_at_the_raw_file(text, kind, line, column, rule):
    found = [(f.line, f.column) for f in scan_text(text, "f", kind=kind) if f.rule == rule]
    assert (line, column) in found, found


def test_disguises_share_the_plain_fingerprint():
    plain = scan_text("10.1.2.3", "a")[0].fingerprint
    assert scan_text("&#49;0.1.2.3", "a.html", kind="html")[0].fingerprint == plain
    assert scan_text("１０.１.２.３", "a")[0].fingerprint == plain
    assert scan_text('"\\u0031\\u0030.1.2.3"', "a.json", kind="json")[0].fingerprint == plain


def test_json_escapes_and_raw_text_are_reported_once():
    findings = scan_text('{"path": "/home/alice/x\\n"}', "m.json", kind="json")
    assert [f.rule for f in findings] == ["home-path"]


def test_bom_at_file_start_is_fine_but_not_elsewhere():
    assert scan_text("\ufeffhello", "a.md", kind="markdown") == []
    assert [f.rule for f in scan_text("hel\ufefflo", "a.md", kind="markdown")] == ["invisible-char"]


def test_entities_are_decoded_only_where_they_are_published_decoded():
    # a log shows "10&#46;1&#46;2&#46;3" literally; HTML and Markdown render an address
    assert scan_text("10&#46;1&#46;2&#46;3", "a.log", kind="log") == []
    assert scan_text("10&#46;1&#46;2&#46;3", "a.md", kind="markdown")


def test_unknown_kind_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown kind"):
        scan_text("x", "a", kind="pdf")


def test_scan_bytes_picks_the_kind_from_the_name_and_survives_bad_utf8():
    data = b"\xff\xfe<td>10&#46;1&#46;2&#46;3</td>\x80"
    assert [f.rule for f in scan_bytes(data, "site/x/index.html")] == ["ipv4"]
    assert scan_bytes(data, "notes.log") == []
    assert [f.rule for f in scan_bytes(b'{"a": "\\u0031\\u0030.1.2.3"}', "m.json")] == ["ipv4"]


def _tree(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "runs" / "a").mkdir(parents=True)
    (root / "runs" / "a" / "index.html").write_text("<p>&#49;0.1.2.3</p>\n<p>fine</p>\n")
    (root / "runs" / "a" / "run.jsonl").write_text('{"host":"10.9.8.7"}\n')
    (root / "runs" / "a" / "data.parquet").write_bytes(b"PAR1\x15\x00 10.5.5.5 /home/alice PAR1")
    (root / "runs" / "a" / "blob").write_bytes(b"\x00\x01 10.6.6.6")
    (root / "notes.md").write_text("clean\n")
    return root


def test_scan_tree_reports_sorted_findings_with_display_paths(tmp_path):
    root = _tree(tmp_path)
    findings = scan_tree(root, "site", Allowlist())
    # "data.parquet" and "blob" are binary by content: a NUL byte in their head
    assert [str(f) for f in findings] == [
        "site/runs/a/index.html:1:4: [ipv4] 10…",
        "site/runs/a/run.jsonl:1:10: [ipv4] 10…",
    ]


def test_scan_tree_never_follows_symlinks(tmp_path):
    root = _tree(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("ssh alice@build-box\n")
    (root / "link.txt").symlink_to(outside / "secret.txt")
    (root / "linkdir").symlink_to(outside, target_is_directory=True)
    paths = {f.path for f in scan_tree(root, "site", Allowlist())}
    assert not any("link" in p for p in paths)
    # the folder the caller names may itself be a link (site -> .site.builds/build-1)
    alias = tmp_path / "current"
    alias.symlink_to(root, target_is_directory=True)
    via_alias = scan_tree(alias, "current", Allowlist())
    assert {f.path.replace("current/", "site/") for f in via_alias} == paths


def test_scan_tree_removes_allowlisted_findings_only(tmp_path):
    root = _tree(tmp_path)
    fp = fingerprint("ipv4", "10.9.8.7")
    allow = parse_allowlist(
        f'[[allow]]\nfingerprint = "{fp}"\nreason = "public mirror"\n', "gate-allowlist.toml"
    )
    findings = scan_tree(root, "site", allow)
    assert [f.path for f in findings] == ["site/runs/a/index.html"]
    assert allow.unused() == []


def test_scan_tree_skips_the_allowlist_file_itself(tmp_path):
    root = _tree(tmp_path)
    (root / "gate-allowlist.toml").write_text(
        '[[allow]]\nfingerprint = "0"\nreason = "see 10.2.2.2"\n'
    )
    assert not any(f.path.endswith(".toml") for f in scan_tree(root, "", Allowlist()))


def test_scan_tree_refuses_a_missing_folder(tmp_path):
    with pytest.raises(BuildError, match="needs a folder"):
        scan_tree(tmp_path / "nope", "x", Allowlist())


def test_fail_on_findings_lists_every_finding():
    findings = scan_text("10.1.2.3 and 10.4.5.6", "a.txt")
    with pytest.raises(ValidationFailed) as err:
        fail_on_findings(findings)
    assert str(err.value).splitlines() == ["a.txt:1:1: [ipv4] 10…", "a.txt:1:14: [ipv4] 10…"]
    fail_on_findings([])  # nothing found: no error


def test_report_shows_fingerprints_only_when_asked():
    findings = scan_text("10.1.2.3", "a.txt")
    assert findings[0].fingerprint not in format_report(findings)
    assert findings[0].fingerprint in format_report(findings, fingerprints=True)


def test_finding_is_a_frozen_value():
    f = Finding("a", 1, 1, "ipv4", "10…", "0" * 64)
    with pytest.raises(AttributeError):
        f.line = 2  # type: ignore[misc]


SUFFIX_OF_KIND = {
    "text": ".txt", "markdown": ".md", "log": ".log", "json": ".json", "jsonl": ".jsonl",
    "html": ".html", "yaml": ".yaml", "csv": ".csv",
}  # fmt: skip


def _many_files(root: Path) -> dict[str, str]:
    """Every planted and look-alike case as a file of its kind, a large file with a
    leak in its middle (scanned in chunks), and a binary one: more files than the
    scan keeps to one process. Returns each path's sha256."""
    import hashlib

    from sitegen.gate.scan import CHUNKED_MIN_BYTES, POOL_ABOVE

    cases = PLANTED + LOOKALIKES
    assert len(cases) > POOL_ABOVE
    for i, case in enumerate(cases):
        path = root / f"pages/{i:03d}{SUFFIX_OF_KIND[case.kind]}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(case.text + "\n", encoding="utf-8")
    filler = "".join(f"row {i},{i * 7},ok\n" for i in range(CHUNKED_MIN_BYTES // 10))
    (root / "data").mkdir()
    (root / "data/calls.csv").write_text(filler + "ssh bob@10.20.30.40\n" + filler)
    (root / "data/blob.bin").write_bytes(b"\x00 10.1.2.3\n")
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file()
    }


def test_a_scan_in_worker_processes_finds_what_one_process_finds(tmp_path, monkeypatch):
    """A first build scans every page unscanned, shared among worker processes: the
    findings are the same as in one process, with the cache and without, every file
    comes from the cache at the next build, and a file gone is named."""
    from sitegen.gate.findings_cache import ScanCache
    from sitegen.sitefiles import SiteFiles

    root = tmp_path / "site"
    digests = _many_files(root)

    def scan(workers: str, cache: ScanCache | None) -> list[str]:
        monkeypatch.setenv("SITEGEN_WORKERS", workers)
        listing = SiteFiles.written(root, digests) if cache is not None else None
        return [str(f) for f in scan_tree(root, "site", Allowlist(), cache, listing)]

    alone = scan("1", None)
    assert len({f.split(":")[0] for f in alone}) > 100  # most planted files found
    assert "site/data/calls.csv:" in "".join(alone)  # the leak inside the large file
    assert not any("blob.bin" in f for f in alone)
    assert scan("2", None) == alone
    cache = ScanCache(tmp_path / "cache")
    assert scan("2", cache) == alone
    hits, misses = cache.hits, cache.misses
    assert scan("2", cache) == alone
    assert cache.misses == misses  # nothing scanned again:
    assert cache.hits - hits >= len(digests)  # every file answered by the cache

    gone = sorted(digests)[7]
    (root / gone).unlink()
    with pytest.raises(
        BuildError, match=f"{re.escape(gone)}: cannot read for the publication gate"
    ):
        scan("2", ScanCache(tmp_path / "cache2"))


def test_a_bad_worker_count_is_named(tmp_path, monkeypatch):
    root = tmp_path / "site"
    _many_files(root)
    monkeypatch.setenv("SITEGEN_WORKERS", "two")
    with pytest.raises(BuildError, match="SITEGEN_WORKERS='two': expected a whole number"):
        scan_tree(root, "site", Allowlist())
