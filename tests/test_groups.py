"""Cross-run pages: one per model, node and engine, with trend charts and pagination;
slugs; the page-weight budget."""

from __future__ import annotations

from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from conftest import generate_archive

from sitegen.build import build
from sitegen.groups import paginate, slugify, slugs
from sitegen.links import internal_target

# The page-weight budget (docs/deploying.md): every HTML page at most 200 KB,
# and the index's first paint (HTML + CSS + JS) at most 100 KB.
PAGE_BUDGET = 200 * 1024
FIRST_PAINT_BUDGET = 100 * 1024


def soup(path: Path) -> BeautifulSoup:
    return BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


def test_slugs_are_clean_stable_and_collision_proof():
    names = ["demo-0.5b", "Qwen3.5:0.8B", "qwen3.5-0.8b", "mlx-community/Qwen3-4B", "index.html"]
    out = slugs(names)
    assert out["demo-0.5b"] == "demo-0.5b"  # already a slug: kept as is
    assert out["qwen3.5-0.8b"] == "qwen3.5-0.8b"  # the clean name keeps the plain slug
    assert out["Qwen3.5:0.8B"].startswith("qwen3.5-0.8b-")  # the other one gets a hash
    assert out["mlx-community/Qwen3-4B"] == "mlx-community-qwen3-4b"
    assert out["index.html"] != "index.html"  # would clash with the listing page
    assert len(set(out.values())) == len(names)
    assert slugs(reversed(names)) == out  # deterministic
    for slug in out.values():
        assert slug == slugify(slug) or slug.rsplit("-", 1)[0] == slugify(slug.rsplit("-", 1)[0])
        assert all(c in "abcdefghijklmnopqrstuvwxyz0123456789._-" for c in slug)
    assert slugify("ÄÖÜ") == "x"


def test_pagination_front_page_shows_the_newest_and_blocks_count_from_the_oldest():
    items = list(range(24, -1, -1))  # 25 items, newest (24) first
    pages = paginate("models/m/", items, 10)
    assert [p.rel for p in pages] == [
        "models/m/index.html",
        "models/m/pages/1/index.html",
        "models/m/pages/2/index.html",
        "models/m/pages/3/index.html",
    ]
    front, oldest, _, newest = pages
    assert front.items == list(range(24, 14, -1)) and (front.first, front.last) == (16, 25)
    assert oldest.items == list(range(9, -1, -1)) and (oldest.first, oldest.last) == (1, 10)
    assert newest.items == [24, 23, 22, 21, 20] and newest.root == "../../../../"
    assert [label for label, _, _ in front.nav] == ["Newest", "3", "2", "1"]
    assert {label: href for label, href, _ in oldest.nav} == {
        "Newest": "../../index.html",
        "2": "../2/index.html",
        "1": "index.html",
    }
    assert [current for _, _, current in oldest.nav] == [False, False, True]
    assert len(paginate("", [], 10)) == 1  # an empty archive still has an index
    assert not paginate("", [1, 2], 10)[0].nav  # everything fits: no pager


def test_a_new_item_changes_only_the_front_page_and_the_newest_block():
    before = paginate("", list(range(24, -1, -1)), 10)
    after = paginate("", list(range(25, -1, -1)), 10)
    changed = {p.rel for p in after} - {p.rel for p in before} | {
        a.rel for a, b in zip(after, before, strict=False) if a != b
    }
    assert changed == {"index.html", "pages/3/index.html"}
    # A new block changes its neighbour's nav (a "newer" link), and no other block.
    grown = paginate("", list(range(30, -1, -1)), 10)
    assert grown[3].nav != after[3].nav and grown[1:3] == after[1:3]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    generate_archive.generate(root, 24, warm=2, cells=3, prompts=3, seed=5)
    (root / "sitegen.toml").write_text("[site]\nruns_per_page = 10\n")
    build(root)
    return root / "site"


def test_each_model_node_and_engine_has_a_page_listing_its_runs_and_cells(demo: Path):
    listing = soup(demo / "models" / "index.html")
    models = {a.get_text(): a["href"] for a in listing.select("table.groups td:first-child a")}
    assert set(models) == {"demo-0.5b-q4_k_m", "demo-1.5b-q4_k_m", "demo-1.5b-q8_0"}
    assert models["demo-1.5b-q8_0"] == "../models/demo-1.5b-q8_0/index.html"
    page = soup(demo / "models" / "demo-1.5b-q8_0" / "index.html")
    assert page.h1.get_text() == "Model demo-1.5b-q8_0"
    cells = [c.get_text() for c in page.select("table.cells tbody tr td:first-child code")]
    assert cells == ["synth-a:ollama:demo-1.5b-q8_0"]
    assert page.select_one("table.cells a[href='../../nodes/synth-a/index.html']")
    assert page.select_one("table.cells a[href='../../engines/ollama/index.html']")
    for kind, name in (("nodes", "synth-b"), ("engines", "llamacpp")):
        assert (demo / kind / name / "index.html").is_file()
    # Run pages link their targets to these pages.
    run = soup(demo / "runs" / "synthetic-00001" / "index.html")
    assert run.select_one("a[href='../../models/demo-1.5b-q8_0/index.html']")


def test_trend_chart_has_a_panel_per_cell_and_prompt_and_points_link_to_runs(demo: Path):
    path = demo / "nodes" / "synth-a" / "index.html"
    page = soup(path)
    panels = page.select("#trends ~ .trend-grid figure.chart")
    titles = {f.select_one("figcaption strong").get_text() for f in panels}
    for cell in ("llamacpp · demo-0.5b-q4_k_m", "ollama · demo-1.5b-q8_0"):
        assert {f"{cell} · {p}" for p in ("P-EASY", "P-MEDIUM", "P-HARD")} <= titles
    links = []
    for i, figure in enumerate(panels):
        svg = figure.select_one(f"svg#chart-trend-{i}")
        assert svg["role"] == "group" and svg.find("title").get_text() in titles
        assert svg.find("desc").get_text().startswith("Warm TTFT p50 [IQR] (ms)")
        links += [a["href"] for a in svg.find_all("a")]
    assert links and all(h.startswith("../../runs/synthetic-") for h in links)
    assert all(internal_target(path, h).is_file() for h in set(links))
    # The meta-only run (no measurements) has no point.
    assert not any("synthetic-00005/" in h for h in links)
    # Every run of the generated archive is synthetic: every mark is hollow, and the
    # key says what a hollow mark is.
    key = page.select_one("#trends ~ ul.chart-key").get_text(" ", strip=True)
    assert "1 request in flight" in key and "unreliable run: retracted" in key


def test_a_value_many_runs_recorded_names_the_newest_and_counts_the_rest(demo: Path):
    """A fact table cell never lists hundreds of runs: every run agreeing is said in
    words, and a value some runs recorded names the newest ten, then how many more."""

    def facts(page: Path) -> dict[str, list[BeautifulSoup]]:
        rows: dict[str, list[BeautifulSoup]] = {}
        label = ""
        for tr in soup(page).select("table.entity-facts tbody tr"):
            label = tr.th.get_text() if tr.th else label
            rows.setdefault(label, []).append(tr.select("td")[-1])
        return rows

    node = facts(demo / "nodes" / "synth-a" / "index.html")
    assert node["CPU"][0].get_text() == "all 24 runs" and not node["CPU"][0].select("a")
    digest = facts(demo / "models" / "demo-1.5b-q8_0" / "index.html")["Digest"]
    named = [a.get_text() for a in digest[0].select("a code")]
    assert named[:2] == ["synthetic-00022", "synthetic-00021"] and len(named) == 10
    assert "and 12 older" in digest[0].get_text()
    assert digest[0].select_one("a[href='#runs-heading']")
    assert [a.get_text() for a in digest[1].select("a code")] == [
        "synthetic-00023",
        "synthetic-00003",
    ]


def test_long_lists_are_paginated_and_the_table_stays_complete_without_js(demo: Path):
    index = soup(demo / "index.html")
    assert len(index.select("table#runs tbody tr")) == 10
    assert [a["href"] for a in index.select("nav.pager a")][:4] == [
        "index.html",
        "pages/3/index.html",
        "pages/2/index.html",
        "pages/1/index.html",
    ]
    oldest = soup(demo / "pages" / "1" / "index.html")
    rows = oldest.select("table#runs tbody tr")
    assert len(rows) == 10 and rows[-1].select_one("code.id").get_text() == "synthetic-00000"
    assert oldest.select_one("link[rel=stylesheet]")["href"] == "../../assets/style.css"
    assert "Runs 1–10 of the archive" in oldest.get_text()
    newest = soup(demo / "pages" / "3" / "index.html")
    assert len(newest.select("table#runs tbody tr")) == 4
    group_block = demo / "engines" / "llamacpp" / "pages" / "1" / "index.html"
    assert len(soup(group_block).select("table#runs tbody tr")) == 10


def test_pages_stay_within_the_weight_budget(tmp_path: Path):
    # The archive shape of the speed targets (4 cells x 3 prompts, 8 warm calls), with
    # more runs than a front page lists (50) and than a trend chart draws (60), each run
    # carrying its full reasons: the heaviest index, group and changes pages it makes.
    generate_archive.generate(tmp_path, 70, warm=8, cells=4, prompts=3, seed=3)
    (tmp_path / "sitegen.toml").write_text("[site]\nrun_charts = 2\nsearch = false\n")
    build(tmp_path)
    site = tmp_path / "site"
    index = soup(site / "index.html")
    assert len(index.select("table#runs tbody tr")) == 50  # the default runs_per_page
    model = soup(site / "models" / "demo-0.5b-q4_k_m" / "index.html")
    assert len(model.select("table#runs tbody tr")) == 50 and model.select("figure.trend svg")
    heavy = {
        p.relative_to(site).as_posix(): p.stat().st_size
        for p in site.rglob("*.html")
        if p.stat().st_size > PAGE_BUDGET
    }
    assert not heavy
    first_paint = sum(
        (site / rel).stat().st_size
        for rel in ("index.html", "assets/style.css", "assets/table.js", "assets/search.js")
    )
    assert first_paint <= FIRST_PAINT_BUDGET
