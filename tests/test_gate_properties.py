"""Publication gate, property-based: every real address is caught, nothing crashes."""

from __future__ import annotations

import ipaddress
import re

from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from sitegen.gate import KINDS, scan_bytes, scan_text
from sitegen.gate.rules import LIBRARY_NAMES

# The allowed networks as the documentation states them (written out here, not
# imported, so a change to the code's list has to be made on purpose).
ALLOWED = [
    ipaddress.ip_network(n)
    for n in (
        "192.0.2.0/24",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "127.0.0.0/8",
        "0.0.0.0/8",
        "2001:db8::/32",
        "::1/128",
        "::/128",
    )
]


def allowed(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if any(addr.version == n.version and addr in n for n in ALLOWED):
        return True
    mapped = getattr(addr, "ipv4_mapped", None)
    return mapped is not None and allowed(mapped)


# Word-boundary separators an address may sit between. Excluded on purpose:
# "." and "-" glue a dotted quad into a version ("v1.2.3.4", "torch-2.1.0.1"),
# "=" can form "==" (a version pin), ":" and "[" "]" make colon-hex text part
# of a longer token or a Python slice.
SEPARATORS = list(" \t\n,;()\"'<>/|{}!?*")
# Surrounding text: words and spaces, never ending in a version keyword.
WORDS = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _", max_size=30
)
VERSION_WORDS = ("version", "ver", "release", "revision", "rev", "section")


def embed(prefix: str, sep1: str, addr: str, sep2: str, suffix: str) -> tuple[str, int]:
    text = f"{prefix}{sep1}{addr}{sep2}{suffix}"
    return text, len(prefix) + len(sep1)


def position(text: str, offset: int) -> tuple[int, int]:
    """1-based (line, column) of a character offset."""
    return text.count("\n", 0, offset) + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1


def assume_no_version_word(prefix: str) -> None:
    """A dotted quad right after "version", "rev" ... is documented as a version."""
    assume(not re.search(r"(?:" + "|".join(VERSION_WORDS) + r")s?[ _]*$", prefix.lower()))
    # after a software name ("CUDA 12.4.1.0") it is documented as that software's version
    words = re.findall(r"[A-Za-z][A-Za-z0-9_]*", prefix)
    assume(not words or words[-1].lower().rstrip("_") not in LIBRARY_NAMES)


@settings(max_examples=300, deadline=None)
@given(
    addr=st.ip_addresses(v=4),
    prefix=WORDS,
    suffix=WORDS,
    sep1=st.sampled_from(SEPARATORS),
    sep2=st.sampled_from(SEPARATORS),
)
@example(ipaddress.IPv4Address("10.0.0.1"), "host", "up", " ", " ")
@example(ipaddress.IPv4Address("255.255.255.255"), "", "", "(", ")")
def test_every_public_or_private_ipv4_is_caught(addr, prefix, suffix, sep1, sep2):
    assume(not allowed(addr))
    assume_no_version_word(prefix)
    text, col = embed(prefix, sep1, str(addr), sep2, suffix)
    findings = scan_text(text, "p.txt")
    assert any(f.rule == "ipv4" and (f.line, f.column) == position(text, col) for f in findings), (
        text,
        findings,
    )


@settings(max_examples=300, deadline=None)
@given(
    addr=st.ip_addresses(v=6),
    prefix=WORDS,
    suffix=WORDS,
    sep1=st.sampled_from(SEPARATORS),
    sep2=st.sampled_from(SEPARATORS),
    exploded=st.booleans(),
)
@example(ipaddress.IPv6Address("fe80::1"), "addr", "", " ", " ", False)
@example(ipaddress.IPv6Address("1::2"), "", "", " ", " ", False)
def test_every_non_documentation_ipv6_is_caught(addr, prefix, suffix, sep1, sep2, exploded):
    assume(not allowed(addr))
    shown = addr.exploded if exploded else str(addr)
    # documented: a lone hex word before "::" reads as reST "be::" or C++ "add::"
    assume(not re.fullmatch(r"[a-f]{1,4}::", shown))
    text, col = embed(prefix, sep1, shown, sep2, suffix)
    findings = scan_text(text, "p.txt")
    assert any(f.rule == "ipv6" and (f.line, f.column) == position(text, col) for f in findings), (
        text,
        findings,
    )


@settings(max_examples=300, deadline=None)
@given(text=st.text(), kind=st.sampled_from(sorted(KINDS)))
@example("&#", "html")
@example('"\\ud800"', "json")
@example("\ufeff\u200b&#8203;\\u200b", "html")
@example("-----BEGIN RSA PRIVATE KEY-----", "text")
def test_scan_text_never_raises(text, kind):
    for f in scan_text(text, "any", kind=kind):
        assert f.line >= 1 and f.column >= 1


@settings(max_examples=300, deadline=None)
@given(
    data=st.binary(),
    name=st.sampled_from(["a.html", "b.json", "c.jsonl", "d.md", "e.log", "f", "g.csv", "h.yaml"]),
)
@example(b"\xff\xfe\x00&#49;\xc3", "a.html")
def test_scan_bytes_never_raises(data, name):
    findings = scan_bytes(data, name)
    assert all(f.path == name for f in findings)


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(alphabet=st.characters(codec="utf-8"), max_size=200),
    kind=st.sampled_from(sorted(KINDS)),
)
def test_positions_are_inside_the_text(text, kind):
    lines = text.split("\n")
    for f in scan_text(text, "any", kind=kind):
        assert f.line <= len(lines)
        assert f.column <= len(lines[f.line - 1]) + 1


@settings(max_examples=400, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(list("iIpP-0123456789. x\u0130\u0131\u0307")), max_size=40)
    | st.text(max_size=40)
)
@example("\u0130P-10-0-0-5")
@example("\u0131p-10-0-0-5")
def test_the_quick_test_before_the_dashed_address_scan_never_hides_one(text: str):
    """Cloud host names (``ip-10-0-0-5``) are found by a case-blind pattern, which is
    scanned only where a cheap test on the lowered text says it may match: that
    test must say so wherever the pattern matches, dotted and dotless i included."""
    from sitegen.gate.rules import _IPV4_DASHED, _may_hold_dashed

    assert _may_hold_dashed(text) or not _IPV4_DASHED.search(text)


# Pieces that exercise the fast paths of the views and the assignment rule:
# keywords in each spelling, entities, escapes, combining marks, invisibles,
# compatibility characters and the one character str.lower() lengthens.
PIECES = st.sampled_from(
    [*"ab e=:;\n\"'\\/&#x0123456789", "&amp;", "&#49;", "&#x301;", "&#8203;", "&hellip;",
     "\\u0031", "\\u200b", "\u0301", "\u0323", "e\u0301", "\u2026", "\u00b7", "\uff46",
     "\u200b", "\ufeff", "\u3164", "\ufb01", "\u2460", "\u0130", "\u1100\u1161", "\u00b5",
     "key=", "Key: ", "KEY=", "token: ", "TOKEN=", "password=", "Passwd=", "PASSPHRASE: ",
     "credentials=", "pwd=", "secret:", "api_key=", "Zq8Lm3Xr9Tb2Vn7Kc4Wd"]
)  # fmt: skip
MIXED = st.lists(PIECES, max_size=80).map("".join)


def _nfkc_by_cluster(s: str, offs: list[int]) -> tuple[str, list[int]]:
    """The plain definition the fast NFKC pass must equal: text NFKC leaves as it
    is stays as it is; otherwise every base character with its combining marks
    is normalised alone, each output character pointing at the cluster's first
    raw character, and ASCII clusters are copied."""
    import unicodedata

    if unicodedata.is_normalized("NFKC", s):
        return s, offs
    out: list[str] = []
    new_offs: list[int] = []
    i = 0
    while i < len(s):
        j = i + 1
        while j < len(s) and unicodedata.combining(s[j]):
            j += 1
        piece = s[i:j]
        norm = piece if piece.isascii() else unicodedata.normalize("NFKC", piece)
        out.append(norm)
        new_offs.extend(offs[i:j] if piece.isascii() else [offs[i]] * len(norm))
        i = j
    return "".join(out), new_offs


@settings(max_examples=500, deadline=None)
@given(MIXED | st.text(max_size=60))
def test_the_fast_paths_give_what_the_plain_definitions_give(text: str):
    """Built pages are scanned through shortcuts (only non-ASCII runs walked, only
    non-ASCII characters searched for invisibles, keywords found with str.find);
    each must give exactly what its plain definition gives."""
    from sitegen.gate.decoded import _nfkc, has_invisible, invisible_re
    from sitegen.gate.rules import _ASSIGNMENT, _assignments

    offs = list(range(100, 100 + len(text)))
    assert _nfkc(text, offs) == _nfkc_by_cluster(text, offs)
    assert has_invisible(text) == bool(invisible_re().search(text))
    assert [m.span() for m in _assignments(text)] == [m.span() for m in _ASSIGNMENT.finditer(text)]


@settings(max_examples=300, deadline=None)
@given(st.lists(MIXED, min_size=1, max_size=6).map("\n".join))
def test_a_view_skips_only_lines_that_need_nothing(text: str):
    """raw_view rewrites a line only when it holds an entity, an invisible
    character or text NFKC changes; the view equals normalising every line."""
    from sitegen.gate.decoded import _normalise, raw_view

    for entities in (False, True):
        view = raw_view(text, entities=entities)
        expected, start = [], 0
        for line in text.split("\n"):
            new, _ = _normalise(
                line, list(range(start, start + len(line))), entities=entities, invisibles=[]
            )
            expected.append(new)
            start += len(line) + 1
        assert view.text == "\n".join(expected)
