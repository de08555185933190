"""Search: Pagefind indexes the marked parts of run, model, node and engine pages
after the HTML is written, as cached bundles; a failure keeps the previous
site. (Searching itself, across bundles: test_browser.py.)"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from sitegen import search
from sitegen.build import build
from sitegen.exceptions import BuildError
from sitegen.search import bundle_of, index_site, search_document, shard_count

ROOT = Path(__file__).resolve().parent.parent


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def bundles(site: Path) -> list[str]:
    return json.loads((site / "pagefind" / "bundles.json").read_text())["bundles"]


def page_count(bundle: Path) -> int:
    entry = json.loads((bundle / "pagefind-entry.json").read_text())
    return sum(lang["page_count"] for lang in entry["languages"].values())


RUN_PAGE = """<!doctype html><html lang="en"><head><title>{id}</title></head><body>
<nav><a href="../../index.html">Runs</a></nav>
<main id="main" data-pagefind-body data-pagefind-meta="kind:run">
<p class="crumbs" data-pagefind-ignore><code>{id}</code></p>
<h1>Run {id}</h1>
<dl><dt>Run id</dt><dd><code data-pagefind-weight="10">{id}</code></dd></dl>
<p>{words}</p>
<section data-pagefind-ignore><table><tr><td>{numbers}</td></tr></table></section>
</main></body></html>
"""


def write_site(site: Path, runs: dict[str, str], numbers: str = "12.5") -> None:
    """A site of run pages (id -> words) plus one model page and a page without search."""
    for run_id, words in runs.items():
        page = site / "runs" / run_id / "index.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(RUN_PAGE.format(id=run_id, words=words, numbers=numbers))
    model = site / "models" / "m1" / "index.html"
    model.parent.mkdir(parents=True, exist_ok=True)
    model.write_text(
        '<html><body><main data-pagefind-body data-pagefind-meta="kind:model">'
        "<h1>Model m1</h1></main></body></html>"
    )
    (site / "index.html").write_text("<html><body><main><h1>All runs</h1></main></body></html>")


# --- documents ---------------------------------------------------------------------------


def test_the_document_holds_the_marked_elements_without_the_ignored_ones():
    doc = search_document(RUN_PAGE.format(id="r1", words="alpha beta", numbers="98765"))
    assert doc is not None
    assert '<main id="main" data-pagefind-body data-pagefind-meta="kind:run">' in doc
    assert "<h1>Run r1</h1>" in doc and "alpha beta" in doc and 'data-pagefind-weight="10"' in doc
    assert "98765" not in doc and "crumbs" not in doc  # ignored parts are cut out
    assert "<nav>" not in doc and "<title>" not in doc  # outside the body
    assert doc.count("</main>") == 1


def test_several_bodies_nested_elements_and_decoys():
    page = (
        '<p title="data-pagefind-body">decoy attribute value</p>'
        "<p>the text data-pagefind-body is not a tag</p>"
        "<div data-pagefind-body><div>inner <div>deeper</div></div> after</div>"
        '<span class="x">between</span>'
        "<section data-pagefind-body>two<DIV data-pagefind-ignore=all>no<div>no<div/></div></DIV>"
        "<img data-pagefind-ignore src=x.png>end</section>"
    )
    doc = search_document(page)
    assert doc is not None
    assert "decoy" not in doc and "is not a tag" not in doc and "between" not in doc
    assert "<div>inner <div>deeper</div></div> after</div>" in doc
    assert "two" in doc and "end</section>" in doc
    assert "no" not in doc.replace("section", "") and "x.png" not in doc


def test_a_page_without_a_body_has_no_document():
    assert search_document("<html><body><main><h1>Runs</h1></main></body></html>") is None


# --- bundles -----------------------------------------------------------------------------


def test_bundles_double_only_when_the_run_count_crosses_a_power_of_two():
    size = search.SHARD_DOCS
    counts = (0, 1, size, size + 1, 2 * size, 2 * size + 1, 10_000)
    assert [shard_count(n) for n in counts] == [1, 1, 1, 2, 2, 4, 16]
    assert bundle_of("models/m1/index.html", 16) == "pages"
    assert bundle_of("runs/r1/files/x.html", 16) == "pages"
    assert bundle_of("runs/r1/index.html", 1) == "runs-0"
    names = {bundle_of(f"runs/r{i}/index.html", 16) for i in range(200)}
    assert names == {f"runs-{i:02d}" for i in range(16)}
    # a run's bundle depends on its id and the count only, never on the other runs
    assert bundle_of("runs/abc/index.html", 16) == bundle_of("runs/abc/index.html", 16)


def test_index_site_without_cache_writes_every_bundle(tmp_path):
    site = tmp_path / "site"
    write_site(site, {"r1": "alpha", "r2": "beta"})
    stats = index_site(site)
    assert bundles(site) == ["pages/", "runs-0/"]
    for name in ("pages", "runs-0"):
        bundle = site / "pagefind" / name
        assert (bundle / "pagefind.js").is_file() and (bundle / "pagefind-entry.json").is_file()
        assert not any((bundle / unused).exists() for unused in search.UNUSED)
    assert page_count(site / "pagefind" / "pages") == 1
    assert page_count(site / "pagefind" / "runs-0") == 2
    assert (stats.documents, stats.bundles, stats.reused) == (3, 2, 0)
    assert not list(tmp_path.glob(".search-*"))  # the scratch folder is gone


def test_a_second_indexing_reuses_every_bundle_and_writes_the_same_bytes(tmp_path):
    site, cache = tmp_path / "site", tmp_path / "cache"
    write_site(site, {f"r{i}": f"word{i}" for i in range(6)})
    index_site(site, cache)
    first = tree(site / "pagefind")
    shutil.rmtree(site / "pagefind")
    stats = index_site(site, cache)
    assert stats.reused == stats.bundles == 2 and stats.pages_read == 0
    assert tree(site / "pagefind") == first
    cold = tmp_path / "cold"
    write_site(cold, {f"r{i}": f"word{i}" for i in range(6)})
    index_site(cold)  # no cache at all
    assert tree(cold / "pagefind") == first


def test_changing_one_run_page_reindexes_only_its_bundle(tmp_path, monkeypatch):
    monkeypatch.setattr(search, "SHARD_DOCS", 2)
    site, cache = tmp_path / "site", tmp_path / "cache"
    runs = {f"r{i}": f"word{i}" for i in range(8)}
    write_site(site, runs)
    index_site(site, cache)
    names = bundles(site)
    assert len(names) == 5  # pages + four run bundles
    before = {name: tree(site / "pagefind" / name) for name in names}

    # only ignored content changes: pages are read again, nothing is re-indexed
    write_site(site, runs, numbers="99.9")
    stats = index_site(site, cache)
    assert stats.reused == stats.bundles and stats.pages_read == 8

    runs["r3"] = "zebra"
    write_site(site, runs, numbers="99.9")
    stats = index_site(site, cache)
    changed = bundle_of("runs/r3/index.html", 4)
    # only r3 is read: its bundle's other documents are kept as Pagefind's input
    assert (stats.bundles, stats.reused, stats.pages_read) == (5, 4, 1)
    after = {name: tree(site / "pagefind" / name) for name in names}
    assert [n for n in names if after[n] != before[n]] == [f"{changed}/"]
    cold = tmp_path / "cold"
    write_site(cold, runs, numbers="99.9")
    index_site(cold)
    assert tree(cold / "pagefind") == tree(site / "pagefind")
    # the cache keeps only what the last indexing used (the rest goes to a trash
    # folder, deleted in the background)
    assert len(list((cache / "bundles").iterdir())) == 5
    assert sorted(p.name for p in (cache / "inputs").iterdir()) == sorted(
        [n.rstrip("/") for n in names] + [n.rstrip("/") + ".json" for n in names]
    )


def test_a_recycled_folder_keeps_its_current_bundles_and_loses_the_rest(tmp_path, monkeypatch):
    monkeypatch.setattr(search, "SHARD_DOCS", 2)
    site, cache = tmp_path / "site", tmp_path / "cache"
    runs = {f"r{i}": f"word{i}" for i in range(8)}
    write_site(site, runs)
    index_site(site, cache)
    pagefind = site / "pagefind"
    inodes = {p: p.stat().st_ino for p in pagefind.rglob("*") if p.is_file()}
    (pagefind / "stray.txt").write_text("left by an older build")
    runs["r3"] = "zebra"
    write_site(site, runs)
    index_site(site, cache)  # on the folder as it is, older index included
    changed = f"pagefind/{bundle_of('runs/r3/index.html', 4)}/"
    for path, inode in inodes.items():
        rel = path.relative_to(site).as_posix()
        if rel.startswith(changed) or rel.endswith("bundles.json"):
            continue
        assert path.stat().st_ino == inode, rel  # kept, not written again
    assert not (pagefind / "stray.txt").exists()
    cold = tmp_path / "cold"
    write_site(cold, runs)
    index_site(cold)
    assert tree(cold / "pagefind") == tree(pagefind)


def test_a_site_without_searchable_pages_gets_an_empty_manifest(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<html><body><h1>Nothing</h1></body></html>")
    stats = index_site(site, tmp_path / "cache")
    assert bundles(site) == [] and stats.bundles == 0


# --- in the build ------------------------------------------------------------------------


def test_index_is_written_for_run_and_group_pages_only(tmp_path, write_run):
    write_run()
    build(tmp_path)
    site = tmp_path / "site"
    assert bundles(site) == ["pages/", "runs-0/"]
    assert "data-pagefind-body" in (site / "runs" / "r1" / "index.html").read_text()
    assert "data-pagefind-body" in (site / "models" / "m1" / "index.html").read_text()
    assert "data-pagefind-body" not in (site / "index.html").read_text()
    assert page_count(site / "pagefind" / "runs-0") == 1
    assert page_count(site / "pagefind" / "pages") == 3  # its model, node and engine


def test_search_can_be_switched_off(tmp_path, write_run):
    write_run()
    (tmp_path / "sitegen.toml").write_text("[site]\nsearch = false\n")
    build(tmp_path)
    assert not (tmp_path / "site" / "pagefind").exists()
    assert (tmp_path / "site" / "runs" / "r1" / "index.html").is_file()


def test_a_failing_indexer_fails_the_build_and_keeps_the_previous_site(
    tmp_path, write_run, monkeypatch
):
    write_run()
    build(tmp_path)
    before = (tmp_path / "site" / "index.html").read_bytes()
    write_run("r2")
    monkeypatch.setattr(
        search,
        "pagefind_command",
        lambda site, output: [sys.executable, "-c", "import sys; sys.exit('indexer exploded')"],
    )
    with pytest.raises(BuildError, match="search indexing \\(pagefind\\) failed: indexer exploded"):
        build(tmp_path)
    assert (tmp_path / "site" / "index.html").read_bytes() == before


def test_github_pages_example_builds_and_uploads_a_plain_folder():
    workflow = yaml.safe_load((ROOT / "docs" / "examples" / "github-pages.yml").read_text())
    steps = workflow["jobs"]["build"]["steps"]
    script = "\n".join(s.get("run", "") for s in steps)
    assert "sitegen build . --out public" in script and "cp -rL public _site" in script
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-pages"))
    assert upload["with"]["path"] == "_site"
    assert workflow["permissions"] == {"contents": "read", "pages": "write", "id-token": "write"}
