"""Atom feeds of runs and of regressions, sitemap.xml, robots.txt and the 404 page."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import call_record, end_record, meta_record, metadata

from sitegen.build import build

ATOM = "{http://www.w3.org/2005/Atom}"
SITEMAP = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
BASE = "https://example.org/archive/"


def write(write_run, run_id: str, day: int, ttft: float, *, baseline: bool = False) -> None:
    start = f"2026-05-{day:02d}T10:00:00Z"
    # Six warm calls with a little scatter: enough for a flag to be possible at all.
    calls = [
        call_record(
            run_idx=i, first_delta_ms=ttft * j, ttft_ms=ttft * j, total_duration_ms=ttft * j + 100
        )
        for i, j in enumerate((0.97, 1.0, 1.03, 0.99, 1.02, 1.01))
    ]
    write_run(
        run_id,
        ledger=[
            meta_record(run_id, started_at_utc=start),
            *calls,
            end_record(finished_at_utc=f"2026-05-{day:02d}T10:05:00Z"),
        ],
        md=metadata(
            run_id,
            started_at_utc=start,
            finished_at_utc=f"2026-05-{day:02d}T10:05:00Z",
            baseline=baseline,
        ),
    )


@pytest.fixture
def archive(tmp_path, write_run) -> Path:
    write(write_run, "a-base", 1, 100.0, baseline=True)
    write(write_run, "b-slow", 2, 200.0)
    write(write_run, "c-same", 3, 101.0)
    return tmp_path


def test_runs_feed_is_atom_newest_first_with_absolute_links(archive: Path):
    (archive / "sitegen.toml").write_text(f'[archive]\nbase_url = "{BASE}"\n')
    build(archive)
    feed = ET.parse(archive / "site" / "feeds" / "runs.atom").getroot()
    assert feed.tag == f"{ATOM}feed"
    assert feed.find(f"{ATOM}id").text == f"{BASE}feeds/runs.atom"
    assert feed.find(f"{ATOM}updated").text == "2026-05-03T10:05:00Z"  # newest run, not build time
    entries = feed.findall(f"{ATOM}entry")
    ids = [e.find(f"{ATOM}id").text for e in entries]
    assert ids == [f"{BASE}runs/{r}/" for r in ("c-same", "b-slow", "a-base")]
    link = entries[0].find(f"{ATOM}link").get("href")
    assert link == f"{BASE}runs/c-same/index.html"
    assert "baseline" in [c.get("term") for c in entries[2].findall(f"{ATOM}category")]


def test_regressions_feed_lists_only_runs_slower_than_their_baseline(archive: Path):
    (archive / "sitegen.toml").write_text(f'[archive]\nbase_url = "{BASE}"\n')
    build(archive)
    feed = ET.parse(archive / "site" / "feeds" / "regressions.atom").getroot()
    (entry,) = feed.findall(f"{ATOM}entry")
    assert entry.find(f"{ATOM}link").get("href") == f"{BASE}runs/b-slow/index.html#changes"
    summary = entry.find(f"{ATOM}summary").text
    assert "against a-base" in summary and "warm TTFT +100.0% (99% CI +" in summary
    assert "p = 0.0022, n = 6 vs 6" in summary  # the evidence, not the ratio alone


def test_sitemap_lists_every_page_with_absolute_urls(archive: Path):
    (archive / "sitegen.toml").write_text(f'[archive]\nbase_url = "{BASE}"\n')
    build(archive)
    site = archive / "site"
    root = ET.parse(site / "sitemap.xml").getroot()
    locs = [u.find(f"{SITEMAP}loc").text for u in root.findall(f"{SITEMAP}url")]
    pages = sorted(
        p.relative_to(site).as_posix() for p in site.rglob("*.html") if p.name != "404.html"
    )
    assert locs == [BASE + p for p in pages]
    assert f"{BASE}runs/b-slow/index.html" in locs and f"{BASE}models/m1/index.html" in locs
    assert (site / "robots.txt").read_text().endswith(f"Sitemap: {BASE}sitemap.xml\n")


def test_without_base_url_feeds_and_sitemap_say_so_and_link_relatively(archive: Path):
    build(archive)
    site = archive / "site"
    text = (site / "feeds" / "runs.atom").read_text()
    assert "archive.base_url is not set" in text
    feed = ET.fromstring(text.encode())
    first = feed.find(f"{ATOM}entry")
    href = first.find(f"{ATOM}link").get("href")
    assert href == "../runs/c-same/index.html" and (site / "feeds" / href).is_file()
    assert first.find(f"{ATOM}id").text.startswith("urn:sitegen:")
    sitemap = (site / "sitemap.xml").read_text()
    assert "archive.base_url is not set" in sitemap and "<loc>index.html</loc>" in sitemap
    assert "Sitemap:" not in (site / "robots.txt").read_text()


def test_404_page_exists_and_links_home(archive: Path):
    build(archive)
    html = (archive / "site" / "404.html").read_text()
    assert "<h1>Page not found</h1>" in html and 'href="index.html"' in html
