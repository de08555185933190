"""Charts as a reader sees them in Chromium: readable on a 390 px phone, no white box in
dark mode, a key that names every series and mark (the bundled archive's devbox node
has sequential and concurrency-4 runs, a baseline and unreliable runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup
from test_browser import Reader, browser, bundled_site  # noqa: F401
from test_page_kinds_browser import served  # noqa: F401

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
NODE = "nodes/devbox/index.html"
BASELINE = "8d331ba3-edf6-4d56-8cc8-568864dcebd7"  # concurrency 1, baseline, reliable
CONCURRENT = "7981449c-a027-45b9-ab18-dabb4fb34e87"  # concurrency 4
INTERRUPTED = "d033c9b1-68f6-4831-8dcb-466839ecdb50"

# Every drawn text of every chart: its size on screen (the SVG's font size times the
# scale the page draws the SVG at) and its colour.
_TEXTS = """() => [...document.querySelectorAll('figure.chart svg:not(.swatch)')].flatMap(svg => {
  const scale = svg.getBoundingClientRect().width / svg.width.baseVal.value;
  return [...svg.querySelectorAll('text')]
    .filter(t => t.getBoundingClientRect().width > 0 && getComputedStyle(t).opacity !== '0')
    .map(t => ({text: t.textContent, px: parseFloat(getComputedStyle(t).fontSize) * scale,
                fill: getComputedStyle(t).fill}));
})"""

# The colour a chart is seen against: its own background, else the nearest ancestor's.
_BACKDROPS = """() => [...document.querySelectorAll('figure.chart svg:not(.swatch)')].map(svg => {
  const own = getComputedStyle(svg).backgroundColor;
  let el = svg;
  while (el && ['rgba(0, 0, 0, 0)', 'transparent'].includes(getComputedStyle(el).backgroundColor))
    el = el.parentElement;
  return {own, seen: el ? getComputedStyle(el).backgroundColor : 'none'};
})"""


def _charted_run(site: Path) -> str:
    """A run page of the bundled archive that has bar charts."""
    for page in sorted((site / "runs").glob("*/index.html")):
        if BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser").select_one(
            "figure.chart svg"
        ):
            return str(page.relative_to(site))
    raise AssertionError("no run page has a chart")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_chart_text_is_at_least_11_px_on_a_390_px_phone(
    browser: Any,  # noqa: F811
    bundled_site: Path,  # noqa: F811
    served: str,  # noqa: F811
    scheme: str,
) -> None:
    r = Reader(browser, viewport=PHONE, color_scheme=scheme)
    try:
        for path in (NODE, _charted_run(bundled_site)):
            r.page.goto(served + path)
            texts = r.page.evaluate(_TEXTS)
            assert len(texts) > 20, path
            small = [t for t in texts if t["px"] < 11]
            assert small == [], f"{path}: text under 11 px at 390 px: {small[:5]}"
    finally:
        r.close()


def test_in_dark_mode_charts_are_drawn_on_the_dark_page_in_light_ink(
    browser: Any,  # noqa: F811
    bundled_site: Path,  # noqa: F811
    served: str,  # noqa: F811
) -> None:
    white = {"rgb(255, 255, 255)", "rgba(255, 255, 255, 1)"}
    r = Reader(browser, viewport={"width": 1280, "height": 800}, color_scheme="dark")
    try:
        for path in (NODE, _charted_run(bundled_site)):
            r.page.goto(served + path)
            backdrops = r.page.evaluate(_BACKDROPS)
            assert backdrops, path
            assert all(b["own"] not in white and b["seen"] not in white for b in backdrops)
            assert {b["seen"] for b in backdrops} == {"rgb(13, 17, 23)"}  # the page's --bg
            fills = {t["fill"] for t in r.page.evaluate(_TEXTS)}
            assert fills == {"rgb(230, 237, 243)"}, fills  # the page's --fg, not black
    finally:
        r.close()


def test_the_key_names_each_series_and_mark_and_the_marks_differ(
    browser: Any,  # noqa: F811
    served: str,  # noqa: F811
) -> None:
    r = Reader(browser, viewport=PHONE)
    try:
        r.page.goto(served + NODE)
        key = r.page.locator("#trends ~ ul.chart-key li").all_inner_texts()
        assert key[:2] == ["1 request in flight", "4 requests in flight"]
        assert "baseline run" in key
        assert any(k.startswith("unreliable run: retracted, interrupted") for k in key)
        assert not any("mean" in k for k in key)
        assert r.page.get_by_text("4 requests in flight").first.is_visible()

        def mark(run: str) -> dict[str, str]:
            point = r.page.locator(f'#chart-trend-0 a[href*="{run}"] path').first
            return point.evaluate(
                """p => ({stroke: getComputedStyle(p).stroke, fill: getComputedStyle(p).fill,
                          d: p.getAttribute('d'), label: p.getAttribute('aria-label')})"""
            )

        base, concurrent, cut = mark(BASELINE), mark(CONCURRENT), mark(INTERRUPTED)
        assert concurrent["stroke"] != base["stroke"]  # another series, another colour
        assert "4 requests in flight" in concurrent["label"]
        assert "A" not in base["d"] and "A" in concurrent["d"]  # a diamond, a circle
        assert "baseline" in base["label"]
        assert cut["fill"] == "none" and concurrent["fill"] != "none"  # hollow: unreliable
        assert "unreliable" in cut["label"]
    finally:
        r.close()
