"""The compare page in Chromium: any two runs, side by side, as ``sitegen compare`` says.

The built site is served by a static host at a nested base path. For pairs of the
bundled archive and of a small generated archive with known answers (a clear
regression, an A/A pair, too few calls, a changed model, two cells of one run), every
row's verdict, reason, change, confidence interval, p-value and p50s on the page equal
the table ``sitegen compare`` prints for the same pair, and the unrounded estimates
equal Python's. The selection lives in the URL and survives a reload; without
JavaScript, or from file://, the page says how to run the command instead; run titles
and cell ids that hold markup stay text.
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from click.testing import CliRunner
from conftest import ROOT, call_record, end_record, meta_record, metadata
from static_host import static_host
from test_browser import Reader, browser, bundled_site  # noqa: F401

from sitegen.build import build
from sitegen.cli import main
from sitegen.compare import _load_two, compare_cells
from sitegen.verdicts import Settings

pytestmark = pytest.mark.browser

CELL = "node-a:llamacpp:m1"
CELL_Q8 = "node-a:llamacpp:m1-q8"
HOSTILE_CELL = "node-a:llamacpp:<img src=x onerror=\"document.title='owned'\">"
HOSTILE_TITLE = "<script>document.title='owned'</script><b id=bold>bold</b> & \"quotes\""
JITTER = (0.97, 1.0, 1.03, 0.99, 1.02, 1.01)
PREFIX = "/deep/er/"


def _run(
    root: Path,
    run_id: str,
    day: int,
    cells: dict[str, float],
    *,
    n: int = 6,
    digest: str = "0",
    baseline: bool = False,
    title: str | None = None,
) -> None:
    start = f"2026-05-{day:02d}T00:00:00Z"
    end = f"2026-05-{day:02d}T00:05:00Z"
    calls = [
        call_record(
            cell_id=cell,
            run_idx=i,
            first_delta_ms=ttft * JITTER[i],
            total_duration_ms=ttft * JITTER[i] + 1000.0,
            tokens_per_sec=50.0 / JITTER[i],
        )
        for cell, ttft in cells.items()
        for i in range(n)
    ]
    template = metadata()["targets"][0]
    targets = [
        template
        | {"cell_id": c, "model": c.split(":", 2)[2], "model_digest": "sha256:" + digest * 64}
        for c in cells
    ]
    folder = root / "runs" / run_id
    folder.mkdir(parents=True)
    ledger = [
        meta_record(run_id, started_at_utc=start, cells_planned=list(cells)),
        *calls,
        end_record(finished_at_utc=end, calls=len(calls)),
    ]
    (folder / "run.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ledger))
    md = metadata(
        run_id, started_at_utc=start, finished_at_utc=end, targets=targets, baseline=baseline
    )
    if title:
        md["title"] = title
    (folder / "metadata.json").write_text(json.dumps(md, indent=2))


@pytest.fixture(scope="module")
def known(tmp_path_factory) -> Path:
    """Runs whose comparisons have a known answer, built with a nested base URL."""
    root = tmp_path_factory.mktemp("known")
    _run(root, "base", 1, {CELL: 100.0, CELL_Q8: 100.0}, baseline=True)
    _run(root, "repeat", 2, {CELL: 100.0, CELL_Q8: 100.0})  # A/A: the same calls again
    _run(root, "slow", 3, {CELL: 150.0, CELL_Q8: 100.0}, title=HOSTILE_TITLE)  # +50% TTFT
    _run(root, "few", 4, {CELL: 150.0}, n=4)  # four calls: too few to tell
    _run(root, "other", 5, {CELL: 400.0}, digest="9")  # another model: not like-for-like
    _run(root, "quant", 6, {CELL: 100.0, CELL_Q8: 200.0})  # its two cells: twice as slow
    _run(root, "odd", 7, {HOSTILE_CELL: 100.0})
    (root / "sitegen.toml").write_text(
        f'[archive]\ntitle = "Compare test"\nbase_url = "https://bench.test{PREFIX}"\n'
    )
    build(root)
    return root


@pytest.fixture(scope="module")
def known_host(known: Path) -> Iterator[str]:
    with static_host((known / "site").resolve(), PREFIX) as url:
        yield url


@pytest.fixture(scope="module")
def bundled_host(bundled_site: Path) -> Iterator[str]:  # noqa: F811
    config = tomllib.loads((ROOT / "sitegen.toml").read_text(encoding="utf-8"))
    prefix = urlsplit(config["archive"]["base_url"]).path or "/"
    with static_host(bundled_site, prefix) as url:
        yield url


# ---------------------------------------------------------------- the CLI's table


def cli_table(archive: Path, a: str, b: str, ca: str = "", cb: str = "") -> dict[str, Any]:
    """``sitegen compare``'s output, split into its title, method line, rows and summary."""
    args = ["compare", a, b, "--archive", str(archive)]
    args += ["--cell-a", ca] if ca else []
    args += ["--cell-b", cb] if cb else []
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    if len(lines) == 2:  # nothing measured by both
        return {"title": lines[0], "method": lines[1], "rows": [], "summary": ""}
    dashes = lines[4]
    starts = [i for i, ch in enumerate(dashes) if ch == "-" and (i == 0 or dashes[i - 1] == " ")]
    bounds = [*starts[1:], None]
    rows = []
    for line in lines[5:]:
        if not line.strip():
            break
        cells = zip(starts, bounds, strict=True)
        rows.append([line[s : (e - 2 if e else None)].strip() for s, e in cells])
    return {"title": lines[0], "method": lines[1], "rows": rows, "summary": lines[-1]}


PAGE_ROWS = """() => [...document.querySelectorAll('#compare-rows tr')].map(tr => {
  const t = (el, sel) => { const e = el.querySelector(sel); return e ? e.textContent : null; };
  const metric = td => {
    let s = t(td, '.base') + ' → ' + t(td, '.now');
    if (td.dataset.ratio) s += ' ' + t(td, '.pct') + ' [' + t(td, '.ci') + ', ' + t(td, '.p') + ']';
    return s + ' ' + t(td, '.flag');
  };
  const metrics = [...tr.querySelectorAll('td[data-metric]')];
  return {
    text: [t(tr, '.cell'), t(tr, '.prompt'), t(tr, 'td.n'), ...metrics.map(metric),
           tr.querySelector('td.success').textContent.replace(/\\s+/g, ' ').trim(),
           t(tr, '.reason')],
    verdict: t(tr, '.verdict'),
    numbers: metrics.map(td => td.dataset.ratio === undefined ? null :
      ['ratio', 'low', 'high', 'p'].map(
        k => td.dataset[k] === 'null' ? null : Number(td.dataset[k]))),
  };
})"""


def page_result(page: Any) -> dict[str, Any]:
    page.wait_for_selector("#compare-result", state="visible", timeout=15_000)
    return {
        "title": page.locator("#compare-title").text_content(),
        "method": page.locator("#compare-method").text_content(),
        "summary": page.locator("#compare-summary").text_content(),
        "rows": page.evaluate(PAGE_ROWS),
        "command": page.locator("#compare-command-result").text_content(),
    }


def python_numbers(archive: Path, a: str, b: str, ca: str, cb: str) -> list[list[Any]]:
    (base, now), config = _load_two(archive, (a, b))
    comparison = compare_cells(base, now, Settings.from_config(config), ca or None, cb or None)
    return [
        [
            [m.shift.ratio, m.shift.low, m.shift.high, m.shift.p] if m.shift else None
            for m in r.metrics
        ]
        for r in comparison.rows
    ]


def _same_numbers(page: list[Any], python: list[Any]) -> bool:
    for pm, ym in zip(page, python, strict=True):
        if (pm is None) != (ym is None):
            return False
        if pm is not None and not all(
            (x is None and y is None)
            or (x is not None and y is not None and math.isclose(x, y, rel_tol=1e-12))
            for x, y in zip(pm, ym, strict=True)
        ):
            return False
    return True


def assert_page_matches_cli(
    r: Reader, host: str, archive: Path, a: str, b: str, ca: str = "", cb: str = ""
) -> dict[str, Any]:
    query = {"a": a, "b": b} | ({"ca": ca} if ca else {}) | ({"cb": cb} if cb else {})
    r.page.goto(host + "compare/index.html?" + urlencode(query))
    shown = page_result(r.page)
    cli = cli_table(archive, a, b, ca, cb)
    assert shown["title"] == cli["title"]
    assert shown["method"] == cli["method"]
    assert [row["text"] for row in shown["rows"]] == cli["rows"]
    assert shown["summary"] == cli["summary"]
    numbers = python_numbers(archive, a, b, ca, cb)
    assert len(numbers) == len(shown["rows"])
    for row, expected in zip(shown["rows"], numbers, strict=True):
        assert _same_numbers(row["numbers"], expected), (row["numbers"], expected)
    words = (
        ["sitegen", "compare", a, b]
        + (["--cell-a", ca] if ca else [])
        + (["--cell-b", cb] if cb else [])
    )
    assert shown["command"] == " ".join(words)
    return shown


# ---------------------------------------------------------------- the tests


KNOWN = [
    # (A, B, cell A, cell B, the verdict of each row)
    ("base", "slow", "", "", {"regression", "within noise"}),
    ("base", "repeat", "", "", {"within noise"}),
    ("base", "few", "", "", {"too few calls"}),
    ("base", "other", "", "", {"not like-for-like"}),
    ("quant", "quant", CELL, CELL_Q8, {"regression"}),
    ("base", "quant", CELL_Q8, "", {"regression"}),
]


@pytest.mark.parametrize(("a", "b", "ca", "cb", "verdicts"), KNOWN)
def test_known_pairs_match_sitegen_compare(
    browser: Any,  # noqa: F811
    known: Path,
    known_host: str,
    a: str,
    b: str,
    ca: str,
    cb: str,
    verdicts: set[str],
) -> None:
    r = Reader(browser)
    try:
        shown = assert_page_matches_cli(r, known_host, known, a, b, ca, cb)
        assert {row["verdict"] for row in shown["rows"]} == verdicts
        if "regression" in verdicts:
            changes = [t.split(" [")[0] for row in shown["rows"] for t in row["text"][3:4]]
            assert any(c.endswith(("+50.0%", "+100.0%")) for c in changes), changes
    finally:
        r.close()


def test_bundled_pairs_match_sitegen_compare(
    browser: Any,  # noqa: F811
    bundled_site: Path,  # noqa: F811
    bundled_host: str,
) -> None:
    index = json.loads((bundled_site / "compare" / "index.json").read_text())
    runs = {r["id"]: r for r in index["runs"]}
    recorded = [r["id"] for r in index["runs"] if len(r["cells"]) == 2][:2]  # A/A, 20 calls
    small = [r["id"] for r in index["runs"] if len(r["cells"]) == 3][:2]  # 5 calls, 3 cells
    assert len(recorded) == 2 and len(small) == 2
    q4, q8 = (c["id"] for c in runs[recorded[0]]["cells"])
    archive = bundled_site.parent.parent  # the site is <archive>/.site.builds/build-*
    assert (archive / "runs").is_dir()
    pairs = [
        (recorded[1], recorded[0], "", ""),
        (recorded[0], recorded[1], "", ""),
        (small[0], small[1], "", ""),
        (small[1], recorded[0], "", ""),  # nothing in common
        (recorded[0], recorded[0], q4, q8),  # two cells of one run
        (index["runs"][0]["id"], recorded[0], "", ""),
    ]
    r = Reader(browser)
    try:
        for a, b, ca, cb in pairs:
            assert_page_matches_cli(r, bundled_host, archive, a, b, ca, cb)
    finally:
        r.close()


def test_the_selection_is_in_the_url_and_survives_a_reload(
    browser: Any,  # noqa: F811
    known_host: str,
) -> None:
    r = Reader(browser)
    try:
        page = r.page
        page.goto(known_host + "runs/quant/index.html")
        page.get_by_role("link", name="Compare this run with…").click()
        page.wait_for_selector("#compare-form", state="visible")
        assert page.locator("#compare-a").input_value() == "quant"  # run A pre-filled
        page.select_option("#compare-b", "quant")
        page.select_option("#compare-ca", CELL)
        page.select_option("#compare-cb", CELL_Q8)
        page.get_by_role("button", name="Compare").click()
        before = page_result(page)
        query = dict(p.split("=", 1) for p in urlsplit(page.url).query.split("&"))
        assert {k: v.replace("%3A", ":") for k, v in query.items()} == {
            "a": "quant",
            "b": "quant",
            "ca": CELL,
            "cb": CELL_Q8,
        }
        shared = page.url
        page.reload()
        assert page_result(page) == before
        for sel, value in (("a", "quant"), ("b", "quant"), ("ca", CELL), ("cb", CELL_Q8)):
            assert page.locator(f"#compare-{sel}").input_value() == value
        # Another reader opening the shared address sees the same comparison.
        other = Reader(browser)
        try:
            other.page.goto(shared)
            assert page_result(other.page) == before
        finally:
            other.close()
        page.go_back()  # the history entry before the comparison: the run page's link
        page.wait_for_selector("#compare-form", state="visible")
        assert page.locator("#compare-a").input_value() == "quant"
        assert page.locator("#compare-b").input_value() == ""
    finally:
        r.close()


def test_without_javascript_the_page_gives_the_command(
    browser: Any,  # noqa: F811
    known: Path,
    known_host: str,
) -> None:
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(known_host + "compare/index.html?a=base&b=slow")
        help_box = page.locator("#compare-cli")
        assert help_box.is_visible()
        assert help_box.locator("code#compare-command").inner_text().startswith("sitegen compare ")
        assert "--cell-a" in help_box.inner_text()
        assert not page.locator("#compare-form").is_visible()
        assert not page.locator("#compare-result").is_visible()
    finally:
        context.close()
    # From disk, fetch is refused: the page says so, with the command for this selection.
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto((known / "site" / "compare" / "index.html").resolve().as_uri() + "?a=base&b=slow")
        page.wait_for_function(
            "document.getElementById('compare-status').textContent.includes('could not be loaded')"
        )
        assert page.locator("#compare-cli").is_visible()
        assert page.locator("#compare-command").inner_text() == "sitegen compare base slow"
        assert "sitegen serve" in page.locator("#compare-status").inner_text()
    finally:
        context.close()


def test_hostile_titles_and_cell_ids_stay_text(
    browser: Any,  # noqa: F811
    known: Path,
    known_host: str,
) -> None:
    r = Reader(browser)
    dialogs: list[str] = []
    r.page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    try:
        page = r.page
        page.goto(known_host + "compare/index.html?" + urlencode({"a": "odd", "b": "slow"}))
        page.wait_for_selector("#compare-form", state="visible")
        labels = page.locator("#compare-b option").all_text_contents()
        assert any(label.startswith(HOSTILE_TITLE) for label in labels)
        runs = page.locator("#compare-runs")
        # filled in once the runs' samples have arrived: wait for it, then read it whole
        page.wait_for_function(
            "t => (document.querySelector('#compare-runs').textContent || '').endsWith(t)",
            arg="B: " + HOSTILE_TITLE,
        )
        assert (runs.text_content() or "").endswith("B: " + HOSTILE_TITLE)
        page.goto(known_host + "compare/index.html?" + urlencode({"a": "odd", "b": "odd"}))
        shown = page_result(page)
        assert shown["rows"][0]["text"][0] == HOSTILE_CELL
        page.select_option("#compare-ca", HOSTILE_CELL)
        page.get_by_role("button", name="Compare").click()
        shown = page_result(page)
        assert shown["command"] == (
            "sitegen compare odd odd --cell-a 'node-a:llamacpp:<img src=x "
            "onerror=\"document.title='\\''owned'\\''\">'"
        )
        assert page.locator("#bold, main img, main script:not([src])").count() == 0
        assert page.title() != "owned" and dialogs == []
    finally:
        r.close()
