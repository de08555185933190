"""Search: Pagefind indexes every page's main content (unless its template opts
out) after the HTML is written, as cached bundles, with clean excerpts; a
failure keeps the previous site. (Searching itself, in Chromium:
test_search_browser.py, and across bundles: test_browser.py.)"""

from __future__ import annotations

import gzip
import json
import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from bs4 import BeautifulSoup

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


def fragments(site: Path) -> dict[str, dict]:
    """What Pagefind stored for each indexed page (url -> its fragment: content, meta)."""
    out = {}
    for path in sorted((site / "pagefind").glob("*/fragment/*.pf_fragment")):
        data = gzip.decompress(path.read_bytes()).decode("utf-8")
        fragment = json.loads(data[data.index("{") :])
        out[fragment["url"]] = fragment
    return out


def test_every_page_is_indexed_except_page_blocks_and_the_404(tmp_path, write_run):
    write_run()
    (tmp_path / "methodology.md").write_text(
        "# Methodology\n\nWarm calls follow the zeppelin rule.\n", encoding="utf-8"
    )
    build(tmp_path)
    site = tmp_path / "site"
    assert bundles(site) == ["pages/", "runs-0/"]
    assert page_count(site / "pagefind" / "runs-0") == 1
    indexed = set(fragments(site))
    assert indexed == {
        "/index.html",
        "/methodology/index.html",
        "/changes/index.html",
        "/data/index.html",
        "/compare/index.html",  # without JavaScript it says how to run sitegen compare
        "/models/index.html",
        "/nodes/index.html",
        "/engines/index.html",
        "/models/m1/index.html",
        "/nodes/node-a/index.html",
        "/engines/llamacpp/index.html",
        "/runs/r1/index.html",
    }, indexed
    found = fragments(site)
    assert "zeppelin" in found["/methodology/index.html"]["content"]
    assert found["/methodology/index.html"]["meta"]["title"] == "Methodology"
    assert found["/changes/index.html"]["meta"]["title"] == "Changes against baselines"
    assert found["/data/index.html"]["meta"]["title"] == "Data downloads"
    assert found["/runs/r1/index.html"]["meta"]["kind"] == "run"
    assert found["/models/m1/index.html"]["meta"] == {"title": "Model m1", "kind": "model"}
    # opted out: the 404 page (served at any address) has no body to index
    assert "data-pagefind-body" not in (site / "404.html").read_text()
    # every page has the search box in its header, told where the site's root is
    for rel, root in (
        ("index.html", ""),
        ("methodology/index.html", "../"),
        ("runs/r1/index.html", "../../"),
    ):
        page = BeautifulSoup((site / rel).read_text(), "html.parser")
        box = page.select_one("header.site .site-search")
        assert box is not None and box["data-root"] == root, rel
        assert box.select_one("label[for=search-input]") and box.select_one("#search-form[hidden]")
        assert page.select_one(f"script[src='{root}assets/search.js']"), rel


def test_excerpts_keep_cells_terms_and_badges_apart_and_leave_out_boilerplate(tmp_path, write_run):
    write_run()
    build(tmp_path)
    site = tmp_path / "site"
    run = fragments(site)["/runs/r1/index.html"]["content"]
    # the targets table: its cells are separate words, its column labels are left out
    assert re.search(r"node-a:llamacpp:m1\W+node-a\W+llamacpp\W+b1234\W+m1\b", run), run
    assert "CellNode" not in run and "Cell Node Engine" not in run
    assert "Copy" not in run  # buttons are controls, not text
    assert not re.search(r"(reproducible|unreliable)(baseline|retracted|interrupted)", run)
    front = fragments(site)["/index.html"]["content"]
    assert "Skip to content" not in front and "Atom feed" not in front
    assert "r1" not in front  # the run table is the runs' own pages' business
    data = fragments(site)["/data/index.html"]["content"]
    assert not re.search(r"\b[0-9a-f]{64}\b", data)  # no sha256 digests


def test_page_blocks_are_left_out_of_the_index(tmp_path, write_run):
    for i in range(11):
        write_run(f"r{i:02d}")
    (tmp_path / "sitegen.toml").write_text("[site]\nruns_per_page = 10\n")
    build(tmp_path)
    site = tmp_path / "site"
    blocks = [p for p in site.rglob("index.html") if "pages" in p.relative_to(site).parts]
    assert blocks, "the front page should have blocks of older runs"
    for block in blocks:
        assert "data-pagefind-body" not in block.read_text(), block
    assert not any("/pages/" in url for url in fragments(site))


def test_search_can_be_switched_off(tmp_path, write_run):
    write_run()
    (tmp_path / "sitegen.toml").write_text("[site]\nsearch = false\n")
    build(tmp_path)
    assert not (tmp_path / "site" / "pagefind").exists()
    run = (tmp_path / "site" / "runs" / "r1" / "index.html").read_text()
    assert "search-input" not in run and "search.js" not in run  # no dead search box


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


def test_a_new_run_leaves_the_other_runs_bundles_and_the_front_pages_text_alone(
    tmp_path, write_run, monkeypatch
):
    """The front and list pages are indexed without their counts, so their text stays;
    only the new run's bundle (and the pages bundle, for the data page) is indexed."""
    monkeypatch.setattr(search, "SHARD_DOCS", 3)
    for i in range(1, 6):
        write_run(f"r{i}")
    build(tmp_path)
    site = tmp_path / "site"
    keys = json.loads((site / "pagefind" / "bundles.json").read_text())["keys"]
    before = fragments(site)
    write_run("r6")
    build(tmp_path)
    after = json.loads((site / "pagefind" / "bundles.json").read_text())["keys"]
    assert sorted(keys) == sorted(after) == ["pages", "runs-0", "runs-1"]
    new = bundle_of("runs/r6/index.html", 2)
    assert {name for name in keys if after[name] != keys[name]} <= {new, "pages"}
    assert after[new] != keys[new]
    now = fragments(site)
    for url in ("/index.html", "/models/index.html", "/models/m1/index.html"):
        assert now[url]["content"] == before[url]["content"], url
    assert "/runs/r6/index.html" in now


def test_a_run_page_that_loses_its_charts_keeps_its_search_document(tmp_path, monkeypatch):
    """Past ``site.run_charts`` runs, each new run takes the charts of the oldest charted
    run's page. That page changes, but its text does not: its search document stays
    the same, so its bundle is not indexed again when a run is added."""
    from conftest import cli_in, generate_archive

    monkeypatch.setattr(search, "SHARD_DOCS", 2)  # one bundle per run, or nearly
    ids = generate_archive.generate(tmp_path, 4, warm=2, cells=2, prompts=2, seed=4)
    (tmp_path / "sitegen.toml").write_text("[site]\nrun_charts = 2\n")
    (tmp_path / "runs" / ids[3]).rename(tmp_path / "newest")  # added later
    assert cli_in(tmp_path, "build").exit_code == 0
    page = tmp_path / "site" / "runs" / ids[1] / "index.html"
    charted = page.read_text(encoding="utf-8")
    keys = json.loads((tmp_path / "site" / "pagefind" / "bundles.json").read_text())["keys"]
    (tmp_path / "newest").rename(tmp_path / "runs" / ids[3])
    result = cli_in(tmp_path, "build")
    assert result.exit_code == 0, result.output
    plain = page.read_text(encoding="utf-8")
    assert "<svg" in charted and "<svg" not in plain  # the page lost its charts
    assert search_document(plain) == search_document(charted)
    after = json.loads((tmp_path / "site" / "pagefind" / "bundles.json").read_text())["keys"]
    shards = shard_count(4)
    its, new = (bundle_of(f"runs/{rid}/index.html", shards) for rid in (ids[1], ids[3]))
    assert its == new or after[its] == keys[its]  # indexed again only if the new run is in it
