"""The corners a reader hits in Chromium: no JavaScript, file://, a deep 404, copy buttons.

The site is built with a base URL under a path prefix (as on GitHub Pages
project sites) and served from a handler that answers every missing address
with 404.html's bytes and status 404, which is what GitHub Pages and Netlify do.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from conftest import generate_archive
from static_host import static_host
from test_browser import ARGS, CHROMIUM, Reader

from sitegen.build import build

pytestmark = pytest.mark.browser

PREFIX = "/sitegen-archive/"
RUN = "runs/synthetic-00003/index.html"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("archive")
    generate_archive.generate(root, 5, warm=2, cells=2, prompts=2, seed=5)
    (root / "sitegen.toml").write_text(
        f'[archive]\ntitle = "Robustness archive"\nbase_url = "https://bench.test{PREFIX}"\n'
    )
    build(root)
    return (root / "site").resolve()


@pytest.fixture(scope="module")
def asked() -> list[str]:
    """Every path the host was asked for, in order."""
    return []


@pytest.fixture(scope="module")
def host(site: Path, asked: list[str]) -> Iterator[str]:
    """The host's root URL; the site is under PREFIX, 404.html everywhere else."""
    with static_host(site, PREFIX, asked) as url:
        yield url[: -len(PREFIX)]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield instance
        instance.close()


def test_without_javascript_no_dead_filter_search_or_copy_button(browser: Any, host: str):
    r = Reader(browser, java_script_enabled=False)
    try:
        r.page.goto(host + PREFIX + "index.html")
        assert r.page.locator("table#runs tbody tr").count() == 5
        assert not r.page.locator(".table-tools").is_visible()
        assert not r.page.locator("#run-filter").is_visible()
        assert r.page.locator("#search-form").count() == 1
        assert not r.page.locator("#search-form").is_visible()
        assert "sitegen serve" in r.page.locator(".search-note:visible").inner_text()
        r.page.goto(host + PREFIX + RUN)
        assert r.page.locator("button.copy").count() == 5
        assert r.page.locator("button.copy:visible").count() == 0
    finally:
        r.close()


def test_from_file_search_box_is_hidden_and_the_note_says_how_to_serve(browser: Any, site: Path):
    context = browser.new_context()
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto((site / "index.html").as_uri())
        note = page.locator("#search-note")
        note.wait_for()
        assert not page.locator("#search-input").is_visible()
        assert not page.locator("#search-form").is_visible()
        assert "sitegen serve" in note.inner_text()
        assert "static web server" in note.inner_text()
        # The run table's filter needs no server, so it is offered.
        assert page.locator("#run-filter").is_visible()
        assert errors == []
    finally:
        context.close()


def test_nested_missing_address_gets_a_styled_404_whose_links_work(browser: Any, host: str):
    r = Reader(browser)
    failed: list[str] = []
    r.page.on("response", lambda res: failed.append(res.url) if res.status >= 400 else None)
    try:
        missing = host + PREFIX + "runs/nope/deeper/"
        response = r.page.goto(missing)
        assert response is not None and response.status == 404
        # The page itself is the only 404: its stylesheet, icon and script all loaded.
        assert failed == [missing]
        assert r.errors == [
            "Failed to load resource: the server responded with a status of 404 (Not Found)"
        ]
        r.errors.clear()
        assert r.page.locator("h1").inner_text() == "Page not found"
        # The stylesheet loaded: main is capped at 72rem, the browser default is none.
        assert r.page.evaluate("getComputedStyle(document.querySelector('main')).maxWidth") == (
            "1152px"
        )
        hrefs = r.page.evaluate(
            "[...document.querySelectorAll('a[href], link[href]')]"
            ".filter(a => !a.getAttribute('href').startsWith('#')).map(a => a.href)"
        )
        internal = {h for h in hrefs if urlsplit(h).hostname == "127.0.0.1"}
        assert internal == set(hrefs)  # nothing points at another host
        assert {host + PREFIX + "index.html", host + PREFIX + "assets/style.css"} <= internal
        for url in sorted(internal):
            assert r.page.request.get(url).status == 200, url
    finally:
        r.close()


def test_favicon_is_linked_and_no_page_errors_on_index_and_run(
    browser: Any, host: str, asked: list[str]
):
    # Chromium fetches the icon itself, out of Playwright's sight: the server sees it.
    r = Reader(browser)
    try:
        for path in ("index.html", RUN):
            asked.clear()
            r.page.goto(host + PREFIX + path)
            for _ in range(50):
                if PREFIX + "assets/favicon.svg" in asked:
                    break
                r.page.wait_for_timeout(100)
            assert PREFIX + "assets/favicon.svg" in asked
            assert not any(p.endswith("favicon.ico") for p in asked)
    finally:
        r.close()  # asserts no console error (a missing icon is one)


def test_copy_buttons_put_the_text_on_the_clipboard(browser: Any, host: str):
    from playwright.sync_api import expect

    r = Reader(browser, permissions=["clipboard-read", "clipboard-write"])
    try:
        page = r.page
        page.goto(host + PREFIX + RUN)
        for target in ("run-id", "run-digest", "citation-text", "citation-bibtex"):
            button = page.locator(f"button.copy[data-copy='{target}']")
            assert button.is_visible()
            button.click()
            expect(button.locator(".label")).to_have_text("Copied")
            expected = page.locator(f"#{target}").inner_text()
            assert page.evaluate("navigator.clipboard.readText()") == expected
        assert page.evaluate("navigator.clipboard.readText()").startswith("@")  # BibTeX, last
    finally:
        r.close()
