"""Every kind of page of the bundled archive, as a reader sees it on a phone and a laptop.

At 390 px and 1280 px, in light and dark mode: no horizontal scrolling, no
console error, no request leaving 127.0.0.1, and axe-core finds nothing. The
bundled archive is the hard case: recorded runs carry notes with wide tables,
long digests and imported results.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from conftest import ROOT
from static_host import static_host
from test_browser import AXE, Reader, _axe, _require, browser, bundled_site  # noqa: F401

pytestmark = pytest.mark.browser

VIEWPORTS = {"phone": {"width": 390, "height": 844}, "laptop": {"width": 1280, "height": 800}}


def page_kinds(site: Path) -> dict[str, str]:
    """One page of each kind, found in the built site (so a new kind is not missed)."""
    kinds = {
        "index": "index.html",
        "changes": "changes/index.html",
        "data": "data/index.html",
        "methodology": "methodology/index.html",
        "not found": "runs/no-such-run/files/missing.txt",  # served 404.html, as hosts do
    }
    for folder in ("models", "nodes", "engines"):
        kinds[folder] = f"{folder}/index.html"
        first = sorted(p.name for p in (site / folder).iterdir() if p.is_dir())[0]
        kinds[folder[:-1]] = f"{folder}/{first}/index.html"
    if (site / "compare" / "index.html").is_file():
        kinds["compare"] = "compare/index.html"
        # With two runs chosen: the widest table of the site, filled in by its script.
        # Two runs with the most cells in common: the most rows.
        runs = json.loads((site / "compare" / "index.json").read_text())["runs"]
        cells = {r["id"]: {c["id"] for c in r["cells"]} for r in runs}
        a, b = max(
            ((a, b) for i, b in enumerate(cells) for a in list(cells)[i + 1 :]),
            key=lambda pair: len(cells[pair[0]] & cells[pair[1]]),
        )
        kinds["compare two runs"] = f"compare/index.html?a={a}&b={b}"
    # The run pages differ most (notes, imports, planned runs): each is its own kind here.
    for run in sorted(p.name for p in (site / "runs").iterdir() if p.is_dir()):
        kinds[f"run {run}"] = f"runs/{run}/index.html"
    return kinds


@pytest.fixture(scope="module")
def served(bundled_site: Path) -> Iterator[str]:  # noqa: F811
    """The bundled site at its configured base path on 127.0.0.1."""
    config = tomllib.loads((ROOT / "sitegen.toml").read_text(encoding="utf-8"))
    prefix = urlsplit(config["archive"]["base_url"]).path or "/"
    with static_host(bundled_site, prefix) as url:
        yield url


_DOC_404 = "Failed to load resource: the server responded with a status of 404 (Not Found)"


def visit(r: Reader, url: str, kind: str) -> None:
    """Open a page; the missing address's own 404 status is the one error expected."""
    before = len(r.errors)
    r.page.goto(url)
    if kind == "compare two runs":
        r.page.wait_for_selector("#compare-result", state="visible", timeout=15_000)
    if kind == "not found" and _DOC_404 in r.errors[before:]:
        r.errors.remove(_DOC_404)


def _overflow(page: Any) -> int:
    return int(page.evaluate("document.documentElement.scrollWidth - window.innerWidth"))


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("screen", sorted(VIEWPORTS))
def test_no_page_scrolls_sideways_errors_or_leaves_the_host(
    browser: Any,  # noqa: F811
    bundled_site: Path,  # noqa: F811
    served: str,
    screen: str,
    scheme: str,
) -> None:
    r = Reader(browser, viewport=VIEWPORTS[screen], color_scheme=scheme)
    try:
        wide = {}
        for kind, path in page_kinds(bundled_site).items():
            visit(r, served + path, kind)
            if (extra := _overflow(r.page)) > 0:
                wide[kind] = extra
        assert wide == {}, f"pages wider than the {screen} screen (px too wide): {wide}"
    finally:
        r.close()  # asserts no console error and no request off 127.0.0.1


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("screen", sorted(VIEWPORTS))
def test_axe_is_clean_on_every_page_kind(
    browser: Any,  # noqa: F811
    bundled_site: Path,  # noqa: F811
    served: str,
    screen: str,
    scheme: str,
) -> None:
    _require(AXE, "npm ci")
    kinds = page_kinds(bundled_site)
    # One run page of each source: recorded (with notes), imported, planned.
    runs = [k for k in kinds if k.startswith("run ")]
    keep = {runs[0], *(k for k in runs if "bench" in k or "planned" in k or "mlx" in k)}
    r = Reader(browser, viewport=VIEWPORTS[screen], color_scheme=scheme)
    try:
        found = {}
        for kind, path in kinds.items():
            if kind.startswith("run ") and kind not in keep:
                continue
            visit(r, served + path, kind)
            if violations := _axe(r.page):
                found[kind] = violations
        assert found == {}
    finally:
        r.close()
