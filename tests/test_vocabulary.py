"""One vocabulary for statistics: every statistic's table header on the site has one
label and unit and links to its definition on the methodology page."""

from __future__ import annotations

import json
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
        "TTFT p50 [IQR] (ms)",
        "TTFT p95 (ms)",
        "First event p50 (ms)",
        "TPOT p50 (ms)",
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
    # The key figures say what their TTFT is: the verdicts' warm TTFT (ttft_ms).
    ttft = page.select_one("section.key-figures [data-kf=ttft]")
    assert ttft is not None
    head = page.select_one("section.key-figures thead th:nth-of-type(3) a")
    assert head["href"].endswith("#" + vocabulary.COMPARED["ttft"].anchor)
    assert head["title"] == vocabulary.COMPARED["ttft"].definition
    assert vocabulary.COMPARED["ttft"].field == "ttft_ms"


def test_group_and_index_headers_carry_units_and_links(built: Path):
    group = next(sorted((built / "engines").glob("*/index.html")).__iter__())
    heads = [" ".join(th.get_text(" ", strip=True).split()) for th in soup(group).select("th")]
    assert "Latest warm TTFT p50 [IQR] (ms), n" in heads
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
    assert row.get_text(" ", strip=True).count("First event p95") == 1
    assert COLUMNS["first_delta_ms_p95"][0] in row.get_text(" ", strip=True)
    assert row.a["href"] == "../methodology/index.html#first-delta-ms"
    assert rows["run_id"].a is None  # not a statistic: no definition link


def test_downloads_and_verdicts_read_the_vocabulary():
    for term in vocabulary.TERMS:
        description, unit = COLUMNS[term.field]
        assert description.startswith(term.label + ": ") and unit == term.column_unit
        assert description.lower().endswith(term.definition.lower())
    assert COLUMNS["tokens_per_sec_mean"] == (
        "Tokens/s (reference) mean: mean tokens_per_sec of the successful calls.",
        "tokens/s",
    )
    assert COLUMNS["ttft_ms_p50"][0].startswith("TTFT p50: ")
    assert COLUMNS["first_delta_ms_p50"][0].startswith("First event p50: ")
    assert [(m.label, m.unit, m.anchor) for m in METRICS] == [
        (c.label, c.unit, c.anchor) for c in vocabulary.COMPARED.values()
    ]


# ------------------------------------------------------------ one meaning per word

FIELDS = set(COLUMNS) | set(vocabulary.BY_FIELD)
SHIFT_MS = 7.0  # ttft_ms made later than first_delta_ms by this much in one run
SHIFTED = "8d331ba3-edf6-4d56-8cc8-568864dcebd7"  # a baseline
NO_TTFT = "686b91bf-cb7e-4824-a0b9-f1fab9cbee48"  # compared with SHIFTED; as an older run
WITH_TTFT = "39044a9a-8201-4b2d-a740-b2025593d12c"  # compared, ttft_ms recorded


def _rewrite(ledger: Path, change) -> None:
    lines = []
    for line in ledger.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record.get("type") == "call":
            change(record)
        lines.append(json.dumps(record))
    ledger.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def distinct(tmp_path_factory) -> Path:
    """The bundled archive, where TTFT and first event differ in one run and another
    run records no ttft_ms at all (as an older or imported run)."""
    root = tmp_path_factory.mktemp("distinct")
    shutil.copytree(ROOT / "runs", root / "runs", ignore=shutil.ignore_patterns(".*"))
    for name in ("sitegen.toml", "methodology.md", "retractions.toml"):
        if (ROOT / name).is_file():
            shutil.copy(ROOT / name, root / name)

    def later(record):
        first, total = record.get("first_delta_ms"), record.get("total_duration_ms")
        if first is not None and total is not None and first + SHIFT_MS <= total:
            record["ttft_ms"] = round(first + SHIFT_MS, 3)

    _rewrite(root / "runs" / SHIFTED / "run.jsonl", later)
    _rewrite(root / "runs" / NO_TTFT / "run.jsonl", lambda r: r.pop("ttft_ms", None))
    result = cli_in(root, "build", "--quiet")
    assert result.exit_code == 0, result.output
    return root / "site"


def _text(el) -> str:
    return " ".join(el.get_text(" ", strip=True).split())


def _html_pages(site: Path):
    return sorted(p for p in site.rglob("*.html") if "pagefind" not in p.parts)


def test_no_header_anywhere_shows_a_raw_field_name(bundled: Path):
    """Every <th> of every page, run notes included: labels, never first_delta_ms."""
    checked = 0
    for path in _html_pages(bundled):
        for th in soup(path).select("th"):
            words = set(re.findall(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)+", _text(th)))
            assert not words & FIELDS, f"{path}: raw field name in header {_text(th)!r}"
            checked += 1
    assert checked > 500
    # A publisher's note (run.md) that writes field names shows them as labels.
    from sitegen.pages.markup import labelled_headers, markdown

    table = "| prompt | first_delta_ms p50 | tokens_per_sec mean |\n|-|-|-|\n| P-EASY | 1 | 2 |"
    note = BeautifulSoup(str(labelled_headers(markdown(table), "../../")), "html.parser")
    heads = {_text(th): th for th in note.select("th")}
    assert "First event p50 (ms)" in heads and "Tokens/s (reference) mean (tokens/s)" in heads
    assert heads["First event p50 (ms)"]["title"] == "first_delta_ms p50"
    ids = methodology_ids(bundled)
    for th in heads.values():
        for a in th.select("a[href*='methodology/index.html#']"):
            assert a["href"].split("#", 1)[1] in ids


def _aggregates(site: Path):
    import polars as pl

    return pl.read_parquet(site / "data" / "aggregates.parquet")


def _column(table, label: str) -> int:
    heads = [_text(th) for th in table.select("thead th")]
    return next(i for i, h in enumerate(heads) if h.startswith(label))


def test_ttft_means_ttft_ms_and_first_event_means_first_delta_ms(distinct: Path):
    from sitegen.numfmt import readable

    agg = _aggregates(distinct)
    page = soup(distinct / "runs" / SHIFTED / "index.html")
    warm = [t for t in page.select("table.stats") if "TTFT p95 (ms)" in _text(t.thead)]
    assert warm
    seen = 0
    for table in warm:
        cell = _text(table.find_previous("h2")).removeprefix("Cell ")
        ttft, first = _column(table, "TTFT p50"), _column(table, "First event p50")
        for tr in table.select("tbody tr"):
            cells = tr.select("th, td")
            row = agg.filter(
                (agg["run_id"] == SHIFTED)
                & (agg["cell_id"] == cell)
                & (agg["prompt_id"] == _text(cells[0]))
                & (agg["phase"] == "warm")
            ).row(0, named=True)
            assert row["ttft_ms_p50"] != row["first_delta_ms_p50"]
            assert _text(cells[ttft]).split(" [")[0] == readable(row["ttft_ms_p50"])
            assert _text(cells[first]) == readable(row["first_delta_ms_p50"])
            seen += 1
    assert seen >= 6
    # The key figures' TTFT is TTFT too.
    figures = page.select("section.key-figures [data-cell][data-prompt]")
    assert figures
    for el in figures:
        row = agg.filter(
            (agg["run_id"] == SHIFTED)
            & (agg["cell_id"] == el["data-cell"])
            & (agg["prompt_id"] == el["data-prompt"])
            & (agg["phase"] == "warm")
        ).row(0, named=True)
        assert _text(el.select_one("[data-kf=ttft]")).split(" [")[0] == readable(row["ttft_ms_p50"])
    catalogue = json.loads((distinct.parent / "catalogue.json").read_text(encoding="utf-8"))
    entry = next(e for e in catalogue["runs"] if e["id"] == SHIFTED)
    some = next(iter(entry["headline"]["warm_ttft_ms_p50"].values()))
    firsts = next(iter(entry["headline"]["warm_first_delta_ms_p50"].values()))
    assert all(some[p] == pytest.approx(firsts[p] + SHIFT_MS, abs=0.01) for p in some)


def test_a_run_without_ttft_says_it_falls_back_to_first_event(distinct: Path):
    page = soup(distinct / "runs" / NO_TTFT / "index.html")
    marked = page.select("section.key-figures [data-kf=ttft] .first-event-fallback")
    assert marked and len(marked) == len(page.select("section.key-figures [data-kf=ttft]"))
    assert "recorded no TTFT" in _text(page.select_one("section.key-figures"))
    comparison = json.loads(
        (distinct / "runs" / NO_TTFT / "comparison.json").read_text(encoding="utf-8")
    )
    assert comparison["rows"]
    for row in comparison["rows"]:
        said = "TTFT read as first event: no ttft_ms recorded for this run"
        assert said in row["reason"]
        ttft = next(m for m in row["metrics"] if m["metric"] == "ttft")
        assert said in ttft["reason"]
    reasons = [_text(tr) for tr in page.select("table.changes tbody tr")]
    assert reasons and all("TTFT read as first event" in r for r in reasons)
    # A run with ttft_ms against a baseline with it does not fall back.
    other = json.loads(
        (distinct / "runs" / WITH_TTFT / "comparison.json").read_text(encoding="utf-8")
    )
    assert other["rows"] and all("first event" not in r["reason"] for r in other["rows"])


def test_every_prompt_id_carries_its_description(bundled: Path):
    from sitegen.prompts import load_prompts

    prompts = {p.id: p for p in load_prompts()}
    seen = 0
    for path in [*bundled.glob("runs/*/index.html"), bundled / "changes" / "index.html"]:
        page = soup(path)
        for el in page.select("th, td"):
            if _text(el) in vocabulary.PROMPTS:
                a = el.select_one("a[title]")
                assert a is not None, f"{path}: prompt id {_text(el)} without a description"
                p = prompts[_text(el)]
                assert f"max {p.max_tokens:,} output tokens" in a["title"]
                assert p.sha256[:16] in a["title"] and p.intent in a["title"]
                assert a["href"].endswith("methodology/index.html#" + vocabulary.PROMPTS[p.id])
                seen += 1
    assert seen > 50


def test_cold_rows_say_what_kind_of_cold_and_mark_process_warm(bundled: Path):
    agg = _aggregates(bundled)
    marked = plain = 0
    for path in bundled.glob("runs/*/index.html"):
        page = soup(path)
        for table in page.select("table.stats"):
            if "Cold kind" not in _text(table.thead):
                continue
            kind = _column(table, "Cold kind")
            cell = _text(table.find_previous("h2")).removeprefix("Cell ")
            for tr in table.select("tbody tr"):
                cells = tr.select("th, td")
                row = agg.filter(
                    (agg["run_id"] == path.parent.name)
                    & (agg["cell_id"] == cell)
                    & (agg["prompt_id"] == _text(cells[0]))
                    & (agg["phase"] == "cold")
                ).row(0, named=True)
                said = _text(cells[kind])
                assert row["cold_kind"] and row["cold_kind"].split(", ")[0] in said
                if "process_warm" in row["cold_kind"]:
                    assert "process-warm" in tr.get("class", [])
                    assert "not a true cold start" in said
                    marked += 1
                else:
                    assert "not a true cold start" not in said
                    plain += 1
    assert marked > 5 and plain > 5


_LONG_FLOAT = re.compile(r"(?<![\w.])\d[\d,]*\.\d{5,}(?![\w])")


def test_no_number_on_a_page_prints_more_than_four_decimals(bundled: Path):
    """Pages round for reading (numfmt.readable); the downloads keep the exact values."""
    for path in _html_pages(bundled):
        page = soup(path)
        for el in page.select("svg, code, pre, script, style"):
            el.decompose()
        text = page.get_text(" ")
        found = _LONG_FLOAT.findall(text)
        assert not found, f"{path}: {found[:5]}"
    agg = _aggregates(bundled)
    exact = [v for v in agg["total_duration_ms_p50"].to_list() if v and v != round(v, 1)]
    assert exact, "the downloads keep more precision than the pages show"
