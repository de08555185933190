"""The shared listing of a built site, and the publication gate reading through it:
each file hashed at most once, and with known digests a warm scan reads nothing."""

from __future__ import annotations

import hashlib
from pathlib import Path

from sitegen.fsutil import write_atomic
from sitegen.gate import Allowlist, scan_tree
from sitegen.gate.findings_cache import ScanCache
from sitegen.sitefiles import SiteFiles


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "runs" / "a").mkdir(parents=True)
    (root / "runs" / "a" / "index.html").write_text("<p>&#49;0.1.2.3</p>\n<p>fine</p>\n")
    (root / "runs" / "a" / "run.jsonl").write_text('{"host":"10.9.8.7"}\n')
    (root / "runs" / "a" / "data.parquet").write_bytes(b"PAR1\x15\x00 10.5.5.5 PAR1")
    (root / "runs" / "a" / "blob").write_bytes(b"\x00\x01 10.6.6.6")
    (root / "notes.md").write_text("clean\n")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("10.7.7.7\n")
    return root


def test_the_listing_keeps_links_apart_and_hashes_once(tmp_path, monkeypatch):
    root = make_site(tmp_path)
    (root / "alias.md").symlink_to(root / "notes.md")
    files = SiteFiles(root)
    assert "runs/a/index.html" in files and "alias.md" in files
    assert "alias.md" not in files.sorted() and files.links == {"alias.md"}
    assert files.sorted(".html") == ["runs/a/index.html"]
    reads: list[Path] = []
    read_bytes = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda p: reads.append(p) or read_bytes(p))
    assert files.read("notes.md") == b"clean\n"
    assert files.digest("notes.md") == sha(b"clean\n")
    assert files.digest("runs/a/run.jsonl") == files.digest("runs/a/run.jsonl")
    assert len(reads) == 2  # notes.md once for read and digest, run.jsonl once


def test_known_digests_are_used_and_added_files_are_listed(tmp_path):
    root = make_site(tmp_path)
    files = SiteFiles(root, {"notes.md": "f" * 64, "not/there.txt": "0" * 64})
    assert files.digest("notes.md") == "f" * 64  # trusted: the caller wrote the file
    assert "not/there.txt" not in files
    (root / "pagefind").mkdir()
    (root / "pagefind" / "x.js").write_text("x")
    files.add("pagefind/x.js", sha(b"x"))
    assert "pagefind/x.js" in files.sorted()
    files.forget("pagefind")
    assert "pagefind/x.js" not in files


def test_a_listing_of_written_files_is_not_walked(tmp_path):
    root = make_site(tmp_path)
    files = SiteFiles.written(root, {"notes.md": sha(b"clean\n")})
    assert files.sorted() == ["notes.md"] and files.digest("notes.md") == sha(b"clean\n")


def test_the_gate_finds_the_same_through_a_listing(tmp_path):
    root = make_site(tmp_path)
    (root / "gate-allowlist.toml").write_text("# 10.8.8.8\n")
    walked = scan_tree(root, "site", Allowlist())
    listed = scan_tree(root, "site", Allowlist(), ScanCache(None), SiteFiles(root))
    assert listed == walked
    assert [str(f) for f in walked] == [
        "site/runs/a/index.html:1:4: [ipv4] 10…",
        "site/runs/a/run.jsonl:1:10: [ipv4] 10…",
    ]


def test_a_warm_gate_with_known_digests_reads_no_file(tmp_path):
    root = make_site(tmp_path)
    cache_path = tmp_path / "state"
    cache = ScanCache(cache_path)
    first = scan_tree(root, "site", Allowlist(), cache, SiteFiles(root))
    cache.save()
    digests = {rel: SiteFiles(root).digest(rel) for rel in SiteFiles(root).sorted()}
    for rel in digests:  # the bytes are gone: only the cache can answer
        (root / rel).write_bytes(b"")
    cache = ScanCache(cache_path)
    again = scan_tree(root, "site", Allowlist(), cache, SiteFiles(root, digests))
    assert again == first and cache.misses == 0


def test_a_cache_file_is_replaced_whole(tmp_path):
    path = tmp_path / "deep" / "cache.json"
    write_atomic(path, "one", durable=False)
    write_atomic(path, "two", durable=False)
    assert path.read_text() == "two"
    assert [p.name for p in path.parent.iterdir()] == ["cache.json"]
