"""The front page answers first: the latest reliable results and the latest changes; each run
page opens with its key figures. Pages show what catalogue.json records (key_figures)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup, Tag
from conftest import PROMPT_SHA, ROOT, call_record, end_record, lines, meta_record, metadata

from sitegen.build import build
from sitegen.numfmt import readable
from sitegen.verdicts import BY_KEY, FLAGGED

CELL = "node-a:llamacpp:m1"


def soup(path: Path) -> BeautifulSoup:
    return BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


def text(el: Tag | None) -> str:
    assert el is not None
    return " ".join(el.get_text(" ", strip=True).split())


# ---------------------------------------------------------------- what a cell should read


def shown(v: Any) -> str:
    return "not recorded" if v is None else readable(v)


def ttft_text(row: dict[str, Any], field: str = "ttft_ms") -> str:
    if row["ttft_p50"] is None:
        return "not recorded"
    shown = f"{readable(row['ttft_p50'])} [{readable(row['ttft_p25'])}–{readable(row['ttft_p75'])}]"
    # A run that recorded no ttft_ms shows its first event, and says so.
    return shown + ("" if field == "ttft_ms" else " first event")


def decode_text(row: dict[str, Any]) -> str:
    if row["decode_p50"] is None:
        return "not recorded"
    return readable(row["decode_p50"]) + ("" if row["decode_field"] == "decode_tps" else " ref.")


def cold_text(row: dict[str, Any]) -> str:
    if row["cold_failed"]:
        return "failed"
    if row["cold_ms"] is None:
        return "not recorded"
    kind = f" {row['cold_kind'].replace('_', ' ')}" if row["cold_kind"] else ""
    return readable(row["cold_ms"]) + kind


def n_text(row: dict[str, Any]) -> str:
    return readable(row["n"]) + (f" ({readable(row['errors'])} failed)" if row["errors"] else "")


def reliable_by_hand(entry: dict[str, Any]) -> bool:
    """The methodology's definition, from the entry's own fields."""
    return (
        not entry["retracted"]
        and not entry["superseded_by"]
        and entry["status"] == "complete"
        and entry["reproducibility"]["verdict"] == "reliable"
        and any(r["n"] for r in entry["key_figures"]["rows"])
    )


def newest_reliable(catalogue: dict[str, Any]) -> dict[tuple, tuple[str, dict[str, Any]]]:
    """(model, node, engine, concurrency, prompt) -> (run id, key-figures row)."""
    out: dict[tuple, tuple[str, dict[str, Any]]] = {}
    for entry in catalogue["runs"]:  # newest first
        kf = entry["key_figures"]
        assert kf["reliable"] == reliable_by_hand(entry), entry["id"]
        if not kf["reliable"]:
            continue
        for row in kf["rows"]:
            if row["n"]:
                key = (row["model"], row["node"], row["engine"], kf["concurrency"] or 1)
                out.setdefault((*key, row["prompt_id"]), (entry["id"], row))
    return out


def front_rows(site: Path) -> dict[tuple, Tag]:
    page = soup(site / "index.html")
    cat = json.loads((site / "catalogue.json").read_text())
    out = {}
    for tr in page.select("table#latest tbody tr"):
        entry = next(e for e in cat["runs"] if e["id"] == tr["data-run"])
        row = next(
            r
            for r in entry["key_figures"]["rows"]
            if r["cell_id"] == tr["data-cell"] and r["prompt_id"] == tr["data-prompt"]
        )
        conc = entry["key_figures"]["concurrency"] or 1
        key = (row["model"], row["node"], row["engine"], conc, row["prompt_id"])
        assert key not in out, f"two rows for {key}"
        out[key] = tr
    return out


def check_front_cells(site: Path, expected: dict[tuple, tuple[str, dict[str, Any]]]) -> None:
    rows = front_rows(site)
    assert set(rows) == set(expected)
    published = json.loads((site / "catalogue.json").read_text(encoding="utf-8"))
    fields = {e["id"]: e["key_figures"]["ttft_field"] for e in published["runs"]}
    for key, tr in rows.items():
        run_id, row = expected[key]
        assert tr["data-run"] == run_id, key
        cells = {td["data-kf"]: td for td in tr.select("td[data-kf]")}
        assert text(cells["ttft"]) == ttft_text(row, fields[run_id])
        assert text(cells["decode"]) == decode_text(row)
        assert text(cells["cold"]) == cold_text(row)
        assert text(cells["n"]) == readable(row["n"])
        for td in cells.values():  # every figure links to its run
            assert td.a["href"] == f"runs/{run_id}/index.html#key-figures"


def check_run_page(site: Path, entry: dict[str, Any]) -> None:
    page = soup(site / "runs" / entry["id"] / "index.html")
    main = page.select_one("main")
    section = main.select_one("section.key-figures")
    # It opens the page: after the title and badges, before every notice and table.
    assert main.find("h2")["id"] == "key-figures"
    assert section.find_previous_sibling(class_="notice") is None
    kf = entry["key_figures"]
    rows = [r for r in kf["rows"] if r["n"]]
    figures = section.select("[data-cell][data-prompt]")
    assert [(f["data-cell"], f["data-prompt"]) for f in figures] == [
        (r["cell_id"], r["prompt_id"]) for r in rows
    ]
    for el, row in zip(figures, rows, strict=True):
        got = {c["data-kf"]: text(c) for c in el.select("[data-kf]")}
        assert got["ttft"] == ttft_text(row, kf["ttft_field"])
        assert got["tpot"] == shown(row["tpot_p50"])
        assert got["decode"] == decode_text(row)
        assert got["cold"] == cold_text(row)
        assert got["max_tokens"] == shown(row["max_tokens"])
        assert got["n"] == n_text(row)
        if "concurrency" in got:
            assert got["concurrency"] == shown(kf["concurrency"])
    scope = text(section.select_one(".kf-scope"))
    if rows:
        assert f"concurrency {shown(kf['concurrency'])}" in scope
    if not kf["reliable"]:
        assert "Not a reliable measurement" in scope
        for why in kf["not_reliable_because"]:
            assert why in scope
    words = text(section).lower().split()
    assert "none" not in words and "null" not in words


# ---------------------------------------------------------------- the bundled archive


@pytest.fixture(scope="module")
def bundled(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bundled")
    shutil.copytree(ROOT / "runs", root / "runs", ignore=shutil.ignore_patterns(".*"))
    for name in ("sitegen.toml", "methodology.md", "retractions.toml"):
        if (ROOT / name).is_file():
            shutil.copy(ROOT / name, root / name)
    build(root)
    return root / "site"


def catalogue(site: Path) -> dict[str, Any]:
    return json.loads((site / "catalogue.json").read_text(encoding="utf-8"))


def test_front_page_opens_with_the_newest_reliable_figures_of_each_combination(bundled: Path):
    cat = catalogue(bundled)
    expected = newest_reliable(cat)
    check_front_cells(bundled, expected)
    # The newest Q4_1 run is the interrupted one: the complete repeat before it stands.
    q4 = ("SmolLM2-135M-Instruct-Q4_1", "devbox", "llamacpp", 1, "P-EASY")
    assert expected[q4][0] == "686b91bf-cb7e-4824-a0b9-f1fab9cbee48"
    assert cat["runs"][0]["id"] == "d033c9b1-68f6-4831-8dcb-466839ecdb50"
    # Latency under four requests in flight is a row of its own, not the headline.
    assert expected[(*q4[:3], 4, "P-EASY")][0] == "7981449c-a027-45b9-ab18-dabb4fb34e87"
    page = soup(bundled / "index.html")
    main = page.select_one("main")
    assert [h["id"] for h in main.find_all("h2")][:2] == ["latest-heading", "changes-heading"]
    # The TTFT column is the verdicts' TTFT, labelled and linked from the vocabulary.
    heads = page.select("table#latest thead th")
    assert [text(th) for th in heads] == [
        "Model, node · engine",
        "Prompt",
        "Warm TTFT p50 [IQR] (ms)",
        "Decode tokens/s p50 (tokens/s)",
        "Cold start (ms)",
        "Warm calls",
        "Concurrency",
        "Run",
    ]
    assert heads[2].a["href"] == f"methodology/index.html#{BY_KEY['ttft'].anchor}"
    assert heads[4].a["href"] == "methodology/index.html#cold-start"
    assert all(e["key_figures"]["ttft_field"] == BY_KEY["ttft"].field for e in cat["runs"])


def test_combinations_without_a_reliable_run_are_listed_with_the_reason(bundled: Path):
    items = {
        (li["data-model"], li["data-node"], li["data-engine"]): text(li)
        for li in soup(bundled / "index.html").select("ul.unmeasured li")
    }
    assert "retracted on 2026-12-04" in items[("tiny-256x4", "devbox", "llamacpp")]
    assert "planned: metadata only" in items[("qwen2.5:0.5b", "devbox", "ollama")]
    imported = items[("gpt-4.1-mini", "", "openai")]  # its node was not recorded
    assert "imported" in imported and "no warm calls: reports results only" in imported
    measured = {k[:3] for k in newest_reliable(catalogue(bundled))}
    assert not measured & set(items)


def test_every_run_page_opens_with_the_catalogue_key_figures(bundled: Path):
    entries = catalogue(bundled)["runs"]
    assert any(len([r for r in e["key_figures"]["rows"] if r["n"]]) > 1 for e in entries)
    for entry in entries:
        check_run_page(bundled, entry)


def test_no_flagged_change_says_so_and_links_the_changes_page(bundled: Path):
    cat = catalogue(bundled)
    flagged = [
        r
        for e in cat["runs"]
        if e["comparison"]
        for r in json.loads((bundled / e["comparison"]["url"]).read_text())["rows"]
        if r["verdict"] in FLAGGED
    ]
    assert flagged == []
    section = soup(bundled / "index.html").select_one("section.latest-changes")
    assert section.select("ul.changes-list li") == []
    assert "No change is supported by the evidence yet" in text(section)
    assert section.select_one("a[href='changes/index.html']")


def test_the_publisher_note_is_a_notice_not_a_copy_of_the_runner_report(bundled: Path):
    page = soup(bundled / "runs" / "39044a9a-8201-4b2d-a740-b2025593d12c" / "index.html")
    note = page.select_one("aside.publisher-note")
    assert "shared the 2-core machine with another CPU-heavy benchmark" in text(note)
    assert note.select("table") == []  # the report's tables are not repeated
    assert "Summary: warm TTFT p50" not in page.get_text()
    assert note.select_one("a")["href"] == "files/run.md"
    # A runner report without added words gives no notice at all.
    plain = soup(bundled / "runs" / "686b91bf-cb7e-4824-a0b9-f1fab9cbee48" / "index.html")
    assert plain.select_one("aside.publisher-note") is None


# ---------------------------------------------------------------- small generated archives

COMPLETE = {
    "machine": {"cores": 4, "calls_sampled": 6, "other_cores_p50": 0.2, "load_1m_p50": 1.0},
    "window": {"statement": "02:00-05:00Z", "by": "Ben"},
}


def targets(*models: str) -> list[dict[str, Any]]:
    return [
        {
            "cell_id": f"node-a:llamacpp:{m}",
            "node": "node-a",
            "engine": "llamacpp",
            "engine_version": "b1234",
            "model": m,
            "model_digest": "sha256:" + (m.encode().hex() * 32)[:64],
            "quantization": "F32",
        }
        for m in models
    ]


def write(
    root: Path,
    run_id: str,
    day: int,
    warm: dict[str, list[float]],
    *,
    cold: float | None = 500.0,
    end: bool = True,
    baseline: bool = False,
    fields: bool = True,
    **md_extra: Any,
) -> None:
    """A run on day ``day`` of May 2026: per model, warm calls with these TTFTs (ms)."""
    start, finish = f"2026-05-{day:02d}T10:00:00Z", f"2026-05-{day:02d}T10:05:00Z"
    calls = []
    for model, values in warm.items():
        cell = f"node-a:llamacpp:{model}"
        extra = {"tpot_ms": 10.0, "decode_tps": 100.0, "ttft_ms": None} if fields else {}
        if cold is not None:
            calls.append(
                call_record(
                    cell_id=cell,
                    phase="cold",
                    cold_kind="process_start",
                    first_delta_ms=cold,
                    total_duration_ms=cold + 50,
                    **extra,
                )
            )
        for i, v in enumerate(values):
            calls.append(
                call_record(
                    cell_id=cell,
                    run_idx=i,
                    first_delta_ms=v,
                    total_duration_ms=v + 100.0,
                    **(extra | {"tpot_ms": 10.0 + i % 3, "decode_tps": 100.0 - i % 3})
                    if fields
                    else {},
                )
            )
    meta = meta_record(
        run_id, started_at_utc=start, cells_planned=[f"node-a:llamacpp:{m}" for m in warm]
    )
    records: list[Any] = [meta, *calls]
    if end:
        records.append(end_record(finished_at_utc=finish, calls=len(calls)))
    md = metadata(run_id, started_at_utc=start, finished_at_utc=finish, baseline=baseline)
    md["targets"] = targets(*warm)
    md |= COMPLETE
    for key, value in md_extra.items():  # None: leave the field out
        if value is None:
            md.pop(key, None)
        else:
            md[key] = value
    folder = root / "runs" / run_id
    folder.mkdir(parents=True)
    (folder / "run.jsonl").write_text(lines(*records), encoding="utf-8")
    (folder / "metadata.json").write_text(json.dumps(md, indent=2), encoding="utf-8")


def spread(center: float, n: int = 20) -> list[float]:
    return [center + (i - n / 2) * 0.5 for i in range(n)]


def test_a_newer_unreliable_run_never_replaces_an_older_reliable_one(tmp_path: Path):
    write(tmp_path, "r1-old", 1, {"m1": spread(100)})
    write(tmp_path, "r2-retracted", 2, {"m1": spread(300)})
    write(tmp_path, "r3-interrupted", 3, {"m1": spread(400)}, end=False)
    write(tmp_path, "r4-unchecked", 4, {"m1": spread(500)}, window=None)
    write(tmp_path, "r5-superseded", 5, {"m1": spread(600)})
    write(
        tmp_path, "r6-correction", 6, {"m2": spread(50)}, supersedes="r5-superseded", synthetic=True
    )
    write(tmp_path, "r7-imported", 7, {"m3": spread(70)}, source={"format": "vllm-bench-serve"})
    (tmp_path / "retractions.toml").write_text(
        '["r2-retracted"]\nreason = "Contended."\ndate = "2026-05-03"\n'
    )
    build(tmp_path)
    site = tmp_path / "site"
    cat = catalogue(site)
    why = {e["id"]: e["key_figures"]["not_reliable_because"] for e in cat["runs"]}
    assert why["r1-old"] == [] and why["r6-correction"] == []
    # An imported run's source never records the harness's health checks.
    assert why["r7-imported"] == ["reproducibility checklist: 1 item fails"]
    assert why["r2-retracted"] == ["retracted on 2026-05-03"]
    assert why["r3-interrupted"][0].startswith("interrupted")
    assert why["r4-unchecked"] == ["reproducibility checklist: 1 item fails"]
    assert why["r5-superseded"] == ["superseded by r6-correction"]
    expected = newest_reliable(cat)
    assert {k: v[0] for k, v in expected.items()} == {
        ("m1", "node-a", "llamacpp", 1, "P-EASY"): "r1-old",
        ("m2", "node-a", "llamacpp", 1, "P-EASY"): "r6-correction",
    }
    check_front_cells(site, expected)
    # A synthetic run counts, and says what it is; so does an imported one where it is named.
    rows = front_rows(site)
    labels = {k[0]: [b.get_text() for b in tr.select(".badge")] for k, tr in rows.items()}
    assert labels == {"m1": [], "m2": ["synthetic demo data"]}
    unmeasured = soup(site / "index.html").select_one("ul.unmeasured li[data-model=m3]")
    assert "imported" in text(unmeasured) and "r7-imported" in unmeasured.a["href"]
    tr = front_rows(site)[("m1", "node-a", "llamacpp", 1, "P-EASY")]
    assert text(tr.select_one("td[data-kf=ttft]")).startswith("99.8 [")  # not 300-600
    for entry in cat["runs"]:
        check_run_page(site, entry)


def test_latest_changes_show_only_flagged_verdicts_with_their_evidence(tmp_path: Path):
    write(
        tmp_path, "b1", 1, {"m1": spread(100), "m2": spread(100), "m3": spread(100)}, baseline=True
    )
    # m1 twice as slow (a regression), m2 twice as fast (a win), m3 the same (noise).
    write(tmp_path, "r2", 2, {"m1": spread(200), "m2": spread(50), "m3": spread(100.2)})
    write(tmp_path, "r3", 3, {"m1": spread(200)}, title="Retracted slowdown")
    (tmp_path / "retractions.toml").write_text('["r3"]\nreason = "Contended."\n')
    build(tmp_path)
    site = tmp_path / "site"
    rows = json.loads((site / "runs" / "r2" / "comparison.json").read_text())["rows"]
    verdicts = {r["cell_id"].split(":")[-1]: r["verdict"] for r in rows}
    assert verdicts["m1"] == "regression" and verdicts["m2"] == "win"
    assert verdicts["m3"] not in FLAGGED
    flagged = {
        (r["cell_id"], r["prompt_id"], r["verdict"]) for r in rows if r["verdict"] in FLAGGED
    }
    section = soup(site / "index.html").select_one("section.latest-changes")
    items = section.select("ul.changes-list > li")
    assert {(li["data-cell"], li["data-prompt"], li["data-verdict"]) for li in items} == flagged
    assert {li["data-run"] for li in items} == {"r2"}  # not the retracted run's
    assert "1 in retracted or superseded runs are left out" in text(section)
    for li in items:
        words = text(li)
        assert "99% CI" in words and "p < 0.001" in words and "n = 20 vs 20" in words
        assert li.select_one("a[href='runs/r2/index.html#changes']")
        assert li.select_one("a[href='runs/b1/index.html']")
    regression = next(li for li in items if li["data-verdict"] == "regression")
    assert "Warm TTFT +" in text(regression)


def test_values_not_recorded_read_not_recorded_never_none_or_zero(tmp_path: Path):
    write(
        tmp_path,
        "r1",
        1,
        {"m1": spread(100, 5)},
        cold=None,
        fields=False,
        prompts={"P-EASY": {"sha256": PROMPT_SHA}},
    )
    build(tmp_path)
    site = tmp_path / "site"
    entry = catalogue(site)["runs"][0]
    row = entry["key_figures"]["rows"][0]
    assert entry["key_figures"]["concurrency"] is None
    assert row["tpot_p50"] is None and row["cold_ms"] is None and row["max_tokens"] is None
    assert row["decode_field"] == "tokens_per_sec"  # the ledger has no decode_tps
    check_run_page(site, entry)
    strip = soup(site / "runs" / "r1" / "index.html").select_one("dl.kf-strip")
    got = {dd["data-kf"]: text(dd) for dd in strip.select("dd")}
    for key in ("tpot", "cold", "max_tokens", "concurrency"):
        assert got[key] == "not recorded", (key, got)
    assert got["decode"].endswith("ref.")
    front = soup(site / "index.html").select_one("table#latest tbody tr")
    cells = [text(td) for td in front.select("td")]
    assert "not recorded" in cells
    assert not {"0", "none", "None", "–"} & set(cells)


# ---------------------------------------------------------------- sorting, in Chromium


@pytest.mark.browser
def test_sorting_orders_formatted_numbers_and_puts_missing_values_last(bundled: Path):
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("Chromium is not installed")

    script = (ROOT / "templates" / "assets" / "table.js").read_text(encoding="utf-8")
    values = ["1,234", "999", "–", "12.5", "not recorded", "110 [104–116]", "2,000.5"]
    body = "".join(f"<tr><td>{v}</td><td>r{i}</td></tr>" for i, v in enumerate(values))
    html = (
        '<table class="sortable"><thead><tr><th><a href="#x">Figure</a></th><th>Row</th></tr>'
        f"</thead><tbody>{body}</tbody></table><script>{script}</script>"
    )
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium")
        try:
            page = browser.new_page()
            page.set_content(html)
            # The header keeps its link to the definition; the sort button sits beside it.
            assert page.locator("thead th a[href='#x']").count() == 1
            button = page.locator("thead th").first.locator("button.sort")
            button.click()
            order = page.locator("tbody td:first-child").all_inner_texts()
            assert order[:5] == ["12.5", "110 [104–116]", "999", "1,234", "2,000.5"]
            assert set(order[5:]) == {"–", "not recorded"}
            button.click()
            order = page.locator("tbody td:first-child").all_inner_texts()
            assert order[:5] == ["2,000.5", "1,234", "999", "110 [104–116]", "12.5"]
            assert set(order[5:]) == {"–", "not recorded"}
        finally:
            browser.close()
