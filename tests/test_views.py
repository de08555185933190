"""Cross-run pages: one per model, node and engine, with trend charts and pagination;
slugs; the page-weight budget."""

from __future__ import annotations

from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from conftest import generate_archive

from sitegen.build import build
from sitegen.links import internal_target
from sitegen.views import paginate, slugify, slugs

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


def test_pagination_paths_and_links():
    pages = paginate("models/m/", list(range(25)), 10)
    assert [p.rel for p in pages] == [
        "models/m/index.html",
        "models/m/pages/2/index.html",
        "models/m/pages/3/index.html",
    ]
    assert pages[2].root == "../../../../" and (pages[2].first, pages[2].last) == (21, 25)
    assert dict(pages[1].nav)[1] == "../../index.html"
    assert dict(pages[0].nav)[3] == "pages/3/index.html"
    assert len(paginate("", [], 10)) == 1  # an empty archive still has an index


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
    svg = page.select_one("figure.chart svg#chart-trend")
    assert svg["role"] == "group" and svg.find("title").get_text().startswith("Trends for node")
    labels = {t.get_text() for t in svg.find_all("text")}
    assert {"P-EASY", "P-MEDIUM", "P-HARD"} <= labels
    assert {"llamacpp · demo-0.5b-q4_k_m", "ollama · demo-1.5b-q8_0"} <= labels
    links = [a["href"] for a in svg.find_all("a")]
    assert links and all(h.startswith("../../runs/synthetic-") for h in links)
    assert all(internal_target(path, h).is_file() for h in links)
    # The meta-only run (no measurements) has no point.
    assert not any("synthetic-00005/" in h for h in links)


def test_long_lists_are_paginated_and_the_table_stays_complete_without_js(demo: Path):
    index = soup(demo / "index.html")
    assert len(index.select("table#runs tbody tr")) == 10
    assert [a["href"] for a in index.select("nav.pager a")][:3] == [
        "index.html",
        "pages/2/index.html",
        "pages/3/index.html",
    ]
    last = soup(demo / "pages" / "3" / "index.html")
    rows = last.select("table#runs tbody tr")
    assert len(rows) == 4 and rows[-1].select_one("code.id").get_text() == "synthetic-00000"
    assert last.select_one("link[rel=stylesheet]")["href"] == "../../assets/style.css"
    group_page_2 = demo / "engines" / "llamacpp" / "pages" / "2" / "index.html"
    assert len(soup(group_page_2).select("table#runs tbody tr")) == 10


def test_pages_stay_within_the_weight_budget(demo: Path):
    heavy = {
        str(p.relative_to(demo)): p.stat().st_size
        for p in demo.rglob("*.html")
        if p.stat().st_size > PAGE_BUDGET
    }
    assert not heavy
    first_paint = sum(
        (demo / rel).stat().st_size
        for rel in ("index.html", "assets/style.css", "assets/table.js", "assets/search.js")
    )
    assert first_paint <= FIRST_PAINT_BUDGET


def test_trend_axis_shows_utc_whatever_the_build_machine_time_zone(tmp_path, monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Tokyo")  # chart workers inherit it
    generate_archive.generate(tmp_path, 3, warm=1, cells=1, prompts=1, seed=1)  # 6 h apart
    build(tmp_path)
    svg = soup(tmp_path / "site" / "models" / "demo-0.5b-q4_k_m" / "index.html").select_one(
        "svg#chart-trend"
    )
    labels = [t.get_text() for t in svg.find_all("text") if t.get_text().startswith("01-01 ")]
    assert labels, "runs within two days are labelled with day and time"
    hours = {label.split()[1] for label in labels}
    assert hours <= {"00:00", "03:00", "06:00", "09:00", "12:00"}, hours  # UTC, not UTC+9
