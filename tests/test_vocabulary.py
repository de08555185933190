"""One vocabulary for statistics: every statistic's table header on the site has one
label and unit and links to its definition on the methodology page."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from conftest import ROOT, cli_in

from sitegen import vocabulary
from sitegen.downloads import COLUMNS
from sitegen.verdicts import METRICS

# Pages whose tables are the site's own (run.md notes, the publisher's words, excluded).
PAGES = ("index.html", "changes/index.html", "runs/*/index.html", "models/*/index.html")
GROUPS = ("nodes/*/index.html", "engines/*/index.html")


def soup(path: Path) -> BeautifulSoup:
    return BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


def methodology_ids(site: Path) -> set[str]:
    page = soup(site / "methodology" / "index.html")
    return {el["id"] for el in page.select("main [id]")}


def own_headers(page: BeautifulSoup):
    for th in page.select("thead th"):
        if th.find_parent(class_="notes") is None:
            yield th


def names_a_statistic(text: str) -> bool:
    words = {t.label for t in vocabulary.TERMS} | {c.label.lower() for c in METRICS}
    words |= {s.label for s in vocabulary.STATISTICS}
    return any(re.search(rf"(^|\W){re.escape(w)}($|\W)", text, re.I) for w in words)


def check_site(site: Path) -> int:
    """Every statistic header links to an existing methodology id; no raw field names."""
    ids = methodology_ids(site)
    checked = 0
    for pattern in PAGES + GROUPS:
        for path in sorted(site.glob(pattern)):
            for th in own_headers(soup(path)):
                text = " ".join(th.get_text(" ", strip=True).split())
                assert "_" not in text, f"{path}: raw field name in header {text!r}"
                if not names_a_statistic(text):
                    continue
                links = [a["href"] for a in th.select("a[href]")]
                targets = [h.split("methodology/index.html#", 1)[1] for h in links if "#" in h]
                assert targets, f"{path}: header {text!r} links to no definition"
                for target in targets:
                    assert target in ids, f"{path}: {text!r} links to missing #{target}"
                rel = path.parent.relative_to(site)
                prefix = "../" * len(rel.parts)
                assert all(h.startswith(prefix + "methodology/") for h in links), (path, links)
                checked += 1
    return checked


@pytest.fixture
def built(synthetic_archive: Path) -> Path:
    result = cli_in(synthetic_archive, "build", "--quiet")
    assert result.exit_code == 0, result.output
    return synthetic_archive / "site"


@pytest.fixture(scope="module")
def bundled(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bundled")
    shutil.copytree(ROOT / "runs", root / "runs", ignore=shutil.ignore_patterns(".*"))
    for name in ("sitegen.toml", "methodology.md", "retractions.toml"):
        if (ROOT / name).is_file():
            shutil.copy(ROOT / name, root / name)
    result = cli_in(root, "build", "--quiet")
    assert result.exit_code == 0, result.output
    return root / "site"


def test_every_statistic_header_of_a_small_archive_links_to_its_definition(built: Path):
    assert check_site(built) > 20


def test_every_statistic_header_of_the_bundled_archive_links_to_its_definition(bundled: Path):
    assert check_site(bundled) > 20


def test_run_page_headers_read_as_labels_with_units(built: Path):
    page = soup(built / "runs" / "synthetic-00012" / "index.html")
    heads = {" ".join(th.get_text(" ", strip=True).split()) for th in own_headers(page)}
    for words in (
        "First event p50 [IQR] (ms)",
        "First event p95 (ms)",
        "Total time p50 [IQR] (ms)",
        "Total time p95 (ms)",
        "Success rate (%)",
        "Output tokens mean (tokens)",
        "Decode tokens/s p50 [IQR] (tokens/s)",
        "Calls",
        "Errors",
    ):
        assert words in heads, (words, heads)
    th = next(th for th in own_headers(page) if th.get_text(" ", strip=True).startswith("First"))
    first = th.select_one("a")
    assert first["href"] == "../../methodology/index.html#first-delta-ms"
    assert first["title"] == vocabulary.BY_FIELD["first_delta_ms"].definition
    # The key figures say what their TTFT is: the verdicts' warm TTFT, defined on the
    # methodology page as the first event.
    ttft = page.select_one("section.key-figures [data-kf=ttft]")
    assert ttft is not None
    head = page.select_one("section.key-figures thead th:nth-of-type(3) a")
    assert head["href"].endswith("#" + vocabulary.COMPARED["ttft"].anchor)
    assert head["title"] == vocabulary.COMPARED["ttft"].definition


def test_group_and_index_headers_carry_units_and_links(built: Path):
    group = next(sorted((built / "engines").glob("*/index.html")).__iter__())
    heads = [" ".join(th.get_text(" ", strip=True).split()) for th in soup(group).select("th")]
    assert "Latest warm first event p50 [IQR] (ms), n" in heads
    assert "Latest decode tokens/s p50 [IQR] (tokens/s), n" in heads
    calls = [th for th in soup(built / "index.html").select("#runs th") if th.text == "Calls"]
    assert calls[0].a["href"] == "methodology/index.html#n"


def test_methodology_defines_each_field_statistic_and_prompt(built: Path):
    ids = methodology_ids(built)
    wanted = {t.anchor for t in vocabulary.TERMS} | {s.anchor for s in vocabulary.STATISTICS}
    wanted |= {m.anchor for m in METRICS} | set(vocabulary.PROMPTS.values()) | {"prompts"}
    assert wanted <= ids, wanted - ids
    page = soup(built / "methodology" / "index.html")
    row = page.find(id="p-medium").find_parent("tr").get_text(" ", strip=True)
    assert "512" in row and "e7d95405580deb37" in row


def test_data_page_documents_columns_from_the_one_table(built: Path):
    page = soup(built / "data" / "index.html")
    rows = {tr.td.get_text(strip=True): tr for tr in page.select("table.columns tbody tr") if tr.td}
    row = rows["first_delta_ms_p95"]
    assert COLUMNS["first_delta_ms_p95"][0] in row.get_text(" ", strip=True)
    assert row.a["href"] == "../methodology/index.html#first-delta-ms"
    assert rows["run_id"].a is None  # not a statistic: no definition link


def test_downloads_and_verdicts_read_the_vocabulary():
    for term in vocabulary.TERMS:
        assert COLUMNS[term.field] == (term.definition, term.column_unit)
    assert COLUMNS["tokens_per_sec_mean"] == (
        "Mean tokens_per_sec of the successful calls.",
        "tokens/s",
    )
    assert [(m.label, m.unit, m.anchor) for m in METRICS] == [
        (c.label, c.unit, c.anchor) for c in vocabulary.COMPARED.values()
    ]
