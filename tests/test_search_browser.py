"""Search from any page, as a reader uses it in Chromium.

The site is built with a base URL under a path prefix and served there by a
static host (404.html's bytes for any missing address, as GitHub Pages does),
so that the index's location and every result link must be right from the
front page, from a run page two folders down and from a deep 404 page. The
archive holds more runs than one screen of results.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import generate_archive
from static_host import static_host
from test_browser import Reader, browser  # noqa: F401

from sitegen.build import build

pytestmark = pytest.mark.browser

PREFIX = "/sitegen-archive/"
RUNS = 26  # every run page says "synthetic": more results than one screen (20)
RUN = "runs/synthetic-00003/index.html"
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("archive")
    generate_archive.generate(root, RUNS, warm=2, cells=2, prompts=2, seed=7)
    (root / "sitegen.toml").write_text(
        f'[archive]\ntitle = "Search archive"\nbase_url = "https://bench.test{PREFIX}"\n'
        "[site]\nrun_charts = 0\n"
    )
    build(root)
    return (root / "site").resolve()


@pytest.fixture(scope="module")
def served(site: Path) -> Iterator[str]:
    with static_host(site, PREFIX) as url:
        yield url


@pytest.fixture
def reader(browser: Any) -> Iterator[Reader]:  # noqa: F811
    r = Reader(browser)
    failed: list[str] = []
    r.page.on("response", lambda res: failed.append(res.url) if res.status >= 400 else None)
    yield r
    r.close()
    assert failed == [], f"requests that failed: {failed}"


def search(page: Any, query: str) -> Any:
    """Type a query into the header's box; the results list once they are shown."""
    box = page.locator("#search-input")
    box.fill(query)
    box.press("Enter")
    page.locator("#search-results > li").first.wait_for(timeout=15_000)
    return page.locator("#search-results")


def result_count(page: Any) -> int:
    status = page.locator("#search-status")
    page.wait_for_function(
        "() => /\\d+ results? for/.test(document.getElementById('search-status').textContent)"
    )
    found = re.match(r"(\d+) results? for", status.inner_text())
    assert found, status.inner_text()
    return int(found[1])


def test_from_a_run_page_search_finds_the_methodology_and_a_run_by_id(reader: Reader, served: str):
    page = reader.page
    page.goto(served + RUN)
    assert page.locator("header.site #search-input").is_visible()
    results = search(page, "percentile")
    link = results.locator(":scope > li > a", has_text=re.compile(r"^Methodology$"))
    link.wait_for(timeout=15_000)
    assert link.get_attribute("href") == "../../methodology/index.html"
    # the sections of a long page that hold the hits link to their headings
    anchors = link.evaluate(
        "a => [...a.parentElement.querySelectorAll('.search-sections a')]"
        ".map(s => s.getAttribute('href'))"
    )
    assert anchors and all(a.startswith("../../methodology/index.html#") for a in anchors)
    link.click()
    page.wait_for_url(served + "methodology/index.html")
    assert page.locator("h1").inner_text() == "Methodology"

    # from the methodology page (depth 1), a run by its id
    results = search(page, "synthetic-00017")
    first = results.locator(":scope > li").first.locator(":scope > a")
    assert first.inner_text().startswith("Synthetic demo run 17:")
    assert first.get_attribute("href") == "../runs/synthetic-00017/index.html"
    first.click()
    page.wait_for_url(served + "runs/synthetic-00017/index.html")
    assert page.locator("#run-id").inner_text() == "synthetic-00017"


def test_search_from_a_deep_missing_address_links_under_the_base_path(
    browser: Any,  # noqa: F811
    served: str,
):
    r = Reader(browser)
    try:
        before = len(r.errors)
        r.page.goto(served + "runs/no-such-run/deeper/")  # 404.html's bytes, status 404
        assert r.page.locator("h1").inner_text() == "Page not found"
        del r.errors[before:]  # the page's own 404 status is expected
        link = search(r.page, "synthetic-00005").locator(":scope > li").first.locator(":scope > a")
        assert link.get_attribute("href") == PREFIX + "runs/synthetic-00005/index.html"
        link.click()
        r.page.wait_for_url(served + "runs/synthetic-00005/index.html")
    finally:
        r.close()


def test_every_result_of_a_broad_query_can_be_reached(reader: Reader, served: str):
    page = reader.page
    page.goto(served + "index.html")
    results = search(page, "synthetic")
    total = result_count(page)
    assert total >= RUNS > 20
    status = page.locator("#search-status")
    assert f"{total} results for “synthetic”, showing the first 20" == status.inner_text()
    assert results.locator(":scope > li").count() == 20
    more = page.locator("#search-more")
    shown = 20
    while shown < total:
        more.click()
        added = min(total, shown + 20)
        page.wait_for_function(
            f"() => document.querySelectorAll('#search-results > li').length === {added}"
        )
        # the first result just added takes the focus: the keyboard goes on from there
        focused = page.evaluate(
            "[...document.querySelectorAll('#search-results > li')]"
            ".indexOf(document.activeElement.closest('li'))"
        )
        assert focused == shown
        shown = added
    assert not more.is_visible()
    assert status.inner_text() == f"{total} results for “synthetic”"
    hrefs = results.locator(":scope > li > a").evaluate_all(
        "links => links.map(a => a.getAttribute('href'))"
    )
    assert len(set(hrefs)) == total
    runs = {h for h in hrefs if h.startswith("runs/")}
    assert len(runs) == RUNS  # every run page is among them


def test_keyboard_search_walks_the_results_and_escape_clears_them(reader: Reader, served: str):
    page = reader.page
    page.goto(served + RUN)
    status = page.locator("#search-status")
    assert status.get_attribute("aria-live") == "polite"
    assert page.locator("label[for=search-input]").inner_text() == "Search"
    page.locator("#search-input").focus()
    page.keyboard.type("synthetic-00011")
    page.keyboard.press("Enter")
    page.locator("#search-results > li").first.wait_for(timeout=15_000)
    assert re.match(r"\d+ results? for “synthetic-00011”", status.inner_text())
    page.keyboard.press("Tab")  # the Search button
    page.keyboard.press("Tab")  # the first result
    assert page.evaluate("document.activeElement.textContent").startswith("Synthetic demo run 11:")
    page.locator("#search-input").focus()
    page.keyboard.press("Escape")
    assert page.locator("#search-input").input_value() == ""
    assert page.locator("#search-results > li").count() == 0
    assert not page.locator("#search-results").is_visible()
    assert status.inner_text() == ""


def test_open_results_fit_a_phone_screen(browser: Any, served: str):  # noqa: F811
    for path in (RUN, "index.html", "methodology/index.html"):
        r = Reader(browser, viewport=PHONE)
        try:
            r.page.goto(served + path)
            search(r.page, "synthetic")
            r.page.locator("#search-more").click()
            r.page.wait_for_function(
                "() => document.querySelectorAll('#search-results > li').length > 20"
            )
            wide = r.page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert wide <= 0, f"{path}: {wide} px wider than the screen with results open"
            box = r.page.locator("#search-input").bounding_box()
            assert box is not None and box["x"] + box["width"] <= PHONE["width"]
        finally:
            r.close()


def test_from_file_the_box_is_hidden_and_the_note_says_how_to_serve(
    browser: Any,  # noqa: F811
    site: Path,
):
    context = browser.new_context()
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        for path in ("index.html", RUN):
            page.goto((site / path).as_uri())
            note = page.locator("#search-note")
            note.wait_for()
            assert "sitegen serve" in note.inner_text()
            assert not page.locator("#search-form").is_visible()
            assert not page.locator("#search-input").is_visible()
        assert errors == []
    finally:
        context.close()


def test_without_javascript_the_box_is_hidden_and_a_note_shows(
    browser: Any,  # noqa: F811
    served: str,
):
    r = Reader(browser, java_script_enabled=False)
    try:
        r.page.goto(served + RUN)
        assert not r.page.locator("#search-form").is_visible()
        assert not r.page.locator("#search-more").is_visible()
        note = r.page.locator("header.site .search-note:visible")
        assert note.count() == 1 and "sitegen serve" in note.inner_text()
    finally:
        r.close()
