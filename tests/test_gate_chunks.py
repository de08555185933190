"""The gate scans a large file in cached chunks: the same findings as a whole scan,
and a one-line change rescans one chunk, not the file."""

from __future__ import annotations

from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from sitegen.buildstate import BuildState
from sitegen.gate import scan, scan_bytes, scan_tree
from sitegen.gate.allowlist import Allowlist
from sitegen.gate.findings_cache import ScanCache
from sitegen.gate.scan import CHUNKED_MIN_BYTES, chunk_ends, kind_for, scan_chunks
from sitegen.jsonio import dumps, dumps_items_cached

CORPUS = Path(__file__).parent / "data" / "gate"
CORPUS_LINES = [
    line
    for name in ("planted.txt", "lookalikes.txt")
    for line in (CORPUS / name).read_text(encoding="utf-8").splitlines()
]
# What a rule could read across a line break, were it written to: a version
# word above a dotted quad, a BOM or an escaped one opening a line, a key.
CROSS_LINE = [
    "version:",
    "torch==",
    "torch",
    "cd ",
    "/home/alice/work",
    "10.0.0.5",
    "\ufeff10.1.2.3",
    "\\ufeff",
    "password",
    "= hunter2hunter2",
    "ssh",
    "alice@build-box.example.com",
    '"key": ',
    '"sk-abcdefghijklmnopqrstuvwxyz0123456789"',
    "",
    "   ",
]
LINES = st.lists(
    st.sampled_from(CORPUS_LINES) | st.sampled_from(CROSS_LINE), min_size=1, max_size=40
)


@settings(max_examples=300, deadline=None)
@example(lines=["version:", "10.0.0.5"], size=8, name="a.json", cuts=None)
@example(lines=["x", "\ufeff10.1.2.3"], size=8, name="a.csv", cuts=None)
@example(lines=["torch", "10.0.0.5"], size=8, name="a.csv", cuts=None)
@example(lines=["cd ", "/home/alice/work"], size=8, name="a.csv", cuts=None)
@example(lines=["version:", "10.0.0.5"], size=8, name="a.json", cuts=[9, 3, 9, 400])
@given(
    lines=LINES,
    size=st.integers(8, 400),
    name=st.sampled_from(["a.json", "a.csv", "a.html"]),
    cuts=st.none() | st.lists(st.integers(-2, 2_000), max_size=30),
)
def test_chunked_findings_equal_a_whole_scan(
    lines: list[str], size: int, name: str, cuts: list[int] | None
) -> None:
    """Wherever the writer suggests cuts (mid-line, out of order, past the end),
    the chunks give the findings of one scan of the whole file."""
    data = "\n".join(lines).encode("utf-8") + b"\n"
    chunked = scan_chunks(data, name, kind_for(name), ScanCache(None), size, cuts=cuts)
    assert chunked is not None
    assert chunked[0] == scan_bytes(data, name)


def test_a_private_key_sends_the_file_to_a_whole_scan() -> None:
    """Its body spans lines, so only the whole file gives its true fingerprint."""
    key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\n"
    data = ("filler line\n" * 50 + key + "filler line\n" * 50).encode()
    assert scan_chunks(data, "k.txt", "text", ScanCache(None), 64) is None


def test_chunk_ends_fall_after_newlines_and_an_insertion_moves_one_chunk() -> None:
    rows = [f"run-{i:05d},{i * 7919 % 1000},{i * 104729 % 997}.5,c{i % 4}" for i in range(40_000)]
    data = ("\n".join(rows) + "\n").encode()
    ends = chunk_ends(data, 16_384)
    assert ends[-1] == len(data)
    assert all(data[e - 1 : e] == b"\n" for e in ends)
    assert 10 < len(ends) < 200
    added = data.replace(b"run-20000,", b"run-19999b,1,1.5,cell-0\nrun-20000,", 1)
    moved = chunk_ends(added, 16_384)

    def chunks(d: bytes, e: list[int]) -> set[bytes]:
        return {d[a:b] for a, b in zip([0, *e[:-1]], e, strict=True)}

    assert len(chunks(added, moved) - chunks(data, ends)) == 1


def test_catalogue_entries_cut_the_file_and_a_new_entry_moves_one_chunk() -> None:
    """catalogue.json is cut where its entries end (the writer says where), so a
    build that adds a run scans the chunk holding the new entry, not the file."""

    def entry(i: int) -> dict[str, object]:
        return {"id": f"run-{i:05d}", "cells": [{"p50": i % 97 + 0.5, "cell": f"c{i % 4}"}] * 3}

    def encoded(ids: list[int]) -> tuple[bytes, list[int]]:
        memo = BuildState(None).memo("entries")
        doc = {"archive": {"é": 1}, "runs": [entry(i) for i in ids]}
        enc = dumps_items_cached(doc, "runs", memo)
        data = enc.data
        assert data == dumps(doc).encode("utf-8")
        assert len(enc.item_ends) == len(ids)
        assert all(data[e - 1 : e] == b"\n" for e in enc.item_ends)
        return data, chunk_ends(data, 16_384, enc.item_ends)

    data, ends = encoded(list(range(4_000)))
    assert ends[-1] == len(data) and 10 < len(ends) < 200
    added, moved = encoded([*range(2_000), 9_999, *range(2_000, 4_000)])

    def chunks(d: bytes, e: list[int]) -> set[bytes]:
        return {d[a:b] for a, b in zip([0, *e[:-1]], e, strict=True)}

    assert len(chunks(added, moved) - chunks(data, ends)) == 1


def test_chunk_ends_do_not_depend_on_the_block_lines_are_judged_in(monkeypatch) -> None:
    """A large file's lines are judged a block at a time (to bound memory): where
    the blocks fall never moves a chunk end."""
    rows = [f"{i},{i * 31 % 977},row {i % 13}" * (1 + i % 5) for i in range(20_000)]
    data = ("\n".join(rows)).encode()  # no newline at the end: the last piece is no line
    whole = chunk_ends(data, 8_192)
    monkeypatch.setattr(scan, "_BLOCK_BYTES", 1_000)
    assert chunk_ends(data, 8_192) == whole
    assert whole[-1] == len(data) and len(whole) > 20


def test_a_build_after_one_changed_line_rescans_one_chunk(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "data").mkdir(parents=True)
    rows = [f"run-{i:06d},{i % 97}.25,{i % 13},cell-{i % 4},ok" for i in range(60_000)]
    big = site / "data" / "calls.csv"
    big.write_text("\n".join(rows) + "\n", encoding="utf-8")
    assert big.stat().st_size >= CHUNKED_MIN_BYTES
    state = tmp_path / "cache"

    first = ScanCache(state)
    assert scan_tree(site, "site", Allowlist(), first) == []
    first.save()
    chunks_first = first.misses

    rows[30_000] = "run-030000,1.25,3,cell-0,reached 10.20.30.40 from the box"
    big.write_text("\n".join(rows) + "\n", encoding="utf-8")
    second = ScanCache(state)
    found = scan_tree(site, "site", Allowlist(), second)
    assert [(f.path, f.line, f.rule) for f in found] == [("site/data/calls.csv", 30_001, "ipv4")]
    assert found == scan_tree(site, "site", Allowlist())  # what an uncached scan says
    # the changed chunk and the file's index: nothing else was scanned again
    assert chunks_first > 4
    assert second.misses == 2


NAME_PARTS = [
    *CROSS_LINE,
    "runs/x/",
    "files/",
    "index.html",
    "10.0.0.5.log",
    "alice@build-box.txt",
    "\u200b",
    "\ufeff",
    "a\rb",
    "a\u2028b",
    "-",
    ".",
]


@settings(max_examples=300, deadline=None)
@example(names=["\ufeff10.1.2.3", "version:", "10.0.0.5"])
@example(names=["cd ", "/home/alice/work", "a\u2028/home/alice/x"])
@given(
    names=st.lists(
        st.lists(st.sampled_from(NAME_PARTS) | st.sampled_from(CORPUS_LINES), max_size=4).map(
            "".join
        ),
        max_size=30,
    )
)
def test_file_names_scanned_together_find_what_each_name_alone_finds(names: list[str]) -> None:
    """Site file names are scanned in one text, one per line: every finding, and no
    other, is the one scanning that name on its own gives."""
    pairs = [(name, f"site/{i}") for i, name in enumerate(names)]
    alone = [f for rel, display in pairs for f in scan._name_findings(rel, display)]
    assert sorted(scan.names_findings(pairs)) == sorted(alone)
    # in chunks kept in the build state (small ones here, so there are several),
    # as a build scans them: scanned, then answered from the store
    cache = ScanCache()
    assert sorted(scan.names_findings(pairs, cache, size=64)) == sorted(alone)
    assert sorted(scan.names_findings(pairs, cache, size=64)) == sorted(alone)
