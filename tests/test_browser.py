"""The site as a reader meets it, in a real Chromium driven by Playwright.

The built site is served on 127.0.0.1 with a strict Content-Security-Policy
(the one docs/deploying.md recommends); every request is routed, and any
request for another host fails the test. axe-core checks accessibility on each
kind of page, in light and dark mode, and the Nu HTML checker (vnu) checks
the markup of the whole site, for a generated archive and for a copy of the
bundled one.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from conftest import ROOT, generate_archive

from sitegen import search
from sitegen.build import build
from sitegen.links import check_links
from sitegen.serve import make_server

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
VNU = ROOT / "node_modules" / "vnu-jar" / "build" / "dist" / "vnu.jar"
CSP = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; worker-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
# One page of each kind, in the generated archive.
PAGES = {
    "index": "index.html",
    "run": "runs/synthetic-00004/index.html",
    "model": "models/demo-1.5b-q8_0/index.html",
    "node": "nodes/synth-a/index.html",
    "engine": "engines/llamacpp/index.html",
    "models": "models/index.html",
    "changes": "changes/index.html",
    "data": "data/index.html",
    "methodology": "methodology/index.html",
    "not found": "404.html",
    "page 2": "pages/2/index.html",
}


def _require(path: Path, hint: str) -> None:
    if not path.exists():
        pytest.skip(f"{path} is missing ({hint})")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("archive")
    generate_archive.generate(root, 14, warm=2, cells=3, prompts=2, seed=11)
    (root / "sitegen.toml").write_text(
        '[archive]\ntitle = "Browser test archive"\n'
        # Served at the root of 127.0.0.1, as the base URL's path says: the
        # 404 page's links start from that path.
        'base_url = "https://bench.test/"\n[site]\nruns_per_page = 10\n'
    )
    notes = root / "runs" / "synthetic-00011" / "run.md"
    notes.write_text("# Synthetic run 11\n\nMeasured next to the aquarium.\n", encoding="utf-8")
    # Small search bundles, so that searching merges several (as on a large site).
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(search, "SHARD_DOCS", 4)
        build(root)
    return (root / "site").resolve()


@pytest.fixture(scope="module")
def bundled_site(tmp_path_factory) -> Path:
    """The bundled archive, built from a copy so the repository is left untouched."""
    root = tmp_path_factory.mktemp("bundled")
    shutil.copytree(ROOT / "runs", root / "runs", ignore=shutil.ignore_patterns(".*"))
    for name in ("sitegen.toml", "methodology.md"):
        if (ROOT / name).is_file():
            shutil.copy(ROOT / name, root / name)
    build(root, skip_invalid=True)
    return (root / "site").resolve()


def _serve(folder: Path) -> Iterator[str]:
    server = make_server(folder, 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def base(site: Path) -> Iterator[str]:
    yield from _serve(site)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _require(CHROMIUM, "apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield instance
        instance.close()


class Reader:
    """A page that records console errors and any request leaving 127.0.0.1."""

    def __init__(self, browser: Any, **context: Any):
        self.context = browser.new_context(accept_downloads=True, **context)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.foreign: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.context.route("**/*", self._route)

    def _route(self, route: Any) -> None:
        url = route.request.url
        if urlsplit(url).hostname != "127.0.0.1":
            self.foreign.append(url)
            route.abort()
            return
        response = route.fetch()
        headers = dict(response.headers) | {"content-security-policy": CSP}
        route.fulfill(response=response, headers=headers)

    def close(self) -> None:
        # A request still in flight (the favicon is fetched after load) must not
        # fail the test when its context goes away.
        self.context.unroute_all(behavior="ignoreErrors")
        self.context.close()
        assert self.foreign == [], f"requests left 127.0.0.1: {self.foreign}"
        assert self.errors == [], f"console errors: {self.errors}"


@pytest.fixture
def reader(browser: Any) -> Iterator[Reader]:
    r = Reader(browser)
    yield r
    r.close()


def test_index_to_run_to_model_and_back(reader: Reader, base: str):
    page = reader.page
    page.goto(base + "index.html")
    first = page.locator("table#runs tbody tr").first.locator("a").first
    title = first.inner_text()
    first.click()
    assert page.locator("h1").inner_text() == title
    run_url = page.url
    page.locator("section[aria-labelledby=targets] a[href*='/models/']").first.click()
    assert page.locator("h1").inner_text().startswith("Model ")
    assert page.locator("figure.chart svg[id^=chart-trend-] a").count() > 0
    page.go_back()
    assert page.url == run_url
    assert page.locator("section.cite h2").inner_text() == "Cite this run"


def test_search_finds_runs_models_nodes_and_engines(reader: Reader, base: str, site: Path):
    bundles = json.loads((site / "pagefind" / "bundles.json").read_text())["bundles"]
    assert len(bundles) == 5  # pages, and four bundles of run pages, merged in the browser
    page = reader.page
    page.goto(base + "index.html")
    box = page.locator("#search-input")
    box.fill("synthetic-00009")
    hit = page.locator("#search-results a", has_text="Synthetic demo run 9:")
    hit.first.wait_for(timeout=15_000)
    for query, expected in (
        ("aquarium", "Synthetic demo run 11:"),  # a word of the run's notes
        ("demo-1.5b-q8_0", "Model demo-1.5b-q8_0"),
        ("synth-b", "Node synth-b"),
        ("ollama", "Engine ollama"),
    ):
        box.fill(query)
        page.locator("#search-results a", has_text=expected).first.wait_for(timeout=15_000)
    box.fill("synthetic-00009")
    hit.first.wait_for(timeout=15_000)
    hit.first.click()
    assert page.locator("h1").inner_text().startswith("Synthetic demo run 9:")
    assert page.url.endswith("/runs/synthetic-00009/index.html")


def test_filter_narrows_the_run_table_and_sorting_reorders_it(reader: Reader, base: str):
    page = reader.page
    page.goto(base + "index.html")
    rows = page.locator("table#runs tbody tr")
    total = rows.count()
    page.fill("#run-filter", "interrupted")
    visible = page.locator("table#runs tbody tr:not([hidden])")
    assert 0 < visible.count() < total
    assert page.locator("#run-count").inner_text() == f"{visible.count()} of {total} runs"
    page.fill("#run-filter", "")
    page.locator("table#runs thead button", has_text="Calls").click()
    assert page.locator("table#runs thead th").nth(3).get_attribute("aria-sort") == "ascending"
    first_calls = rows.first.locator("td").nth(3).get_attribute("data-sort")
    assert first_calls == "0"  # the meta-only run has no calls


def test_download_links_return_the_files(reader: Reader, base: str, site: Path):
    page = reader.page
    page.goto(base + "index.html")
    for name in ("calls.parquet", "calls.csv", "aggregates.parquet"):
        with page.expect_download() as info:
            page.locator(f"a[download][href='data/{name}']").click()
        saved = Path(info.value.path())
        assert saved.read_bytes() == (site / "data" / name).read_bytes()


def test_keyboard_reaches_skip_link_navigation_and_chart_points(reader: Reader, base: str):
    page = reader.page
    page.goto(base + PAGES["model"])
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "brand"
    page.focus("svg#chart-trend-0 a")
    page.keyboard.press("Enter")
    page.wait_for_url("**/runs/synthetic-*/index.html")


def test_layout_fits_a_phone_screen_and_follows_dark_mode(browser: Any, base: str):
    phone = Reader(browser, viewport={"width": 360, "height": 740}, color_scheme="dark")
    try:
        for path in (PAGES["index"], PAGES["run"], PAGES["node"]):
            phone.page.goto(base + path)
            overflow = phone.page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, (path, overflow)
        background = phone.page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(13, 17, 23)"
    finally:
        phone.close()


def _axe(page: Any) -> list[dict[str, Any]]:
    page.evaluate(AXE.read_text(encoding="utf-8"))  # via DevTools: not subject to the CSP
    return page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ["violations"]})).violations
            .map(v => ({id: v.id, nodes: v.nodes.slice(0, 3).map(n => n.target.join(" "))}))"""
    )


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_no_violations_on_any_kind_of_page(browser: Any, base: str, scheme: str):
    _require(AXE, "npm ci")
    r = Reader(browser, color_scheme=scheme)
    # Dark mode changes colours only: check contrast on the pages with the most of them.
    kinds = PAGES if scheme == "light" else ["index", "run", "node", "changes"]
    try:
        found = {}
        for kind in kinds:
            path = PAGES[kind]
            r.page.goto(base + path)
            violations = _axe(r.page)
            if violations:
                found[kind] = violations
        assert found == {}
    finally:
        r.close()


def test_bundled_archive_pages_pass_axe_and_links_resolve(browser: Any, bundled_site: Path):
    _require(AXE, "npm ci")
    assert check_links(bundled_site) == []
    pages = ["index.html", "changes/index.html", "data/index.html"]
    for kind in ("runs", "models", "nodes", "engines"):
        first = sorted(p for p in (bundled_site / kind).iterdir() if p.is_dir())
        if first:
            pages.append(f"{kind}/{first[0].name}/index.html")
    r = Reader(browser)
    try:
        for base in _serve(bundled_site):
            found = {}
            for path in pages:
                r.page.goto(base + path)
                violations = _axe(r.page)
                if violations:
                    found[path] = violations
            assert found == {}
    finally:
        r.close()


def test_every_internal_link_resolves(site: Path):
    assert check_links(site) == []
    # Chart points are links too, and the link check reads them.
    trend = (site / PAGES["node"]).read_text()
    assert trend.count('<a href="../../runs/') > 10


def test_nu_html_checker_reports_no_errors(site: Path, bundled_site: Path):
    _require(VNU, "npm ci")
    if shutil.which("java") is None:
        pytest.skip("java is not installed")
    result = subprocess.run(
        [
            "java",
            "-jar",
            str(VNU),
            "--errors-only",
            "--skip-non-html",
            str(site),
            str(bundled_site),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
