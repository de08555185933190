"""Charts: valid Vega-Lite, accessible SVG, ids that do not collide, cached."""

from __future__ import annotations

import copy
import json

import altair as alt
from bs4 import BeautifulSoup
from conftest import generate_archive

from sitegen import charts, scores
from sitegen.build import build
from sitegen.charts import compact
from sitegen.compare import Facts, differences
from sitegen.groups import Group, panel_chart, trend_panels
from sitegen.verdicts import Spread

ROWS = [
    {"cell_id": f"n:e:m{i}", "prompt_id": p, "phase": "warm", "first_delta_ms_p50": 10.0 * i + 1}
    for i in range(3)
    for p in ("P-A", "P-B")
]


def test_template_specs_are_valid_vega_lite_and_carry_the_data():
    spec = charts.bar_by_cell(ROWS, "first_delta_ms_p50", "ms", "Warm TTFT")
    alt.Chart.from_dict(spec, validate=True)  # raises on an invalid spec
    assert spec["title"] == "Warm TTFT"
    assert len(spec["data"]["values"]) == 6
    other = charts.bar_by_cell(ROWS[:2], "first_delta_ms_p50", "ms", "Other")
    assert len(spec["data"]["values"]) == 6 and len(other["data"]["values"]) == 2  # no sharing


def test_nothing_to_draw_gives_no_chart():
    cold = [dict(r, phase="cold") for r in ROWS]
    assert charts.bar_by_cell(cold, "first_delta_ms_p50", "ms", "T") is None


def test_svg_is_accessible_and_cached(tmp_path):
    spec = charts.bar_by_cell(ROWS, "first_delta_ms_p50", "ms", "Warm TTFT")
    svg = charts.svg_chart(spec, "chart-a", "Warm TTFT", "Three cells, two prompts", tmp_path)
    assert svg.startswith("<svg") and 'id="chart-a"' in svg and 'role="img"' in svg
    assert '<title id="chart-a-title">Warm TTFT</title>' in svg
    assert '<desc id="chart-a-desc">Three cells, two prompts</desc>' in svg
    assert len(list(tmp_path.rglob("*.svg"))) == 1
    again = charts.svg_chart(spec, "chart-b", "Warm TTFT", "d", tmp_path)
    assert 'id="chart-b"' in again and len(list(tmp_path.rglob("*.svg"))) == 1


def test_batch_renders_missing_charts_once_and_fills_placeholders(tmp_path):
    spec = charts.bar_by_cell(ROWS, "first_delta_ms_p50", "ms", "Warm TTFT")
    with charts.batch(tmp_path) as batch:
        first = charts.svg_chart(spec, "c1", "t", "d", None)
        second = charts.svg_chart(spec, "c2", "t", "d", None)
    assert first.startswith("<!--sitegen-chart-") and len(batch.pending) == 1
    batch.render_pending()
    page = batch.fill(f"<p>{first}</p><p>{second}</p>".encode()).decode()
    assert 'id="c1"' in page and 'id="c2"' in page and "sitegen-chart" not in page
    assert batch.rendered == 1


# ---------------------------------------------------------------- trend charts

CELL = "devbox:llamacpp:m-q4"
TARGET = {
    "cell_id": CELL,
    "node": "devbox",
    "engine": "llamacpp",
    "model": "m-q4",
    "engine_version": "b1",
    "settings": {"threads": 4},
}


def _run(rid, day, *, concurrency=1, baseline=False, max_tokens=64, engine="b1", **entry):
    """A catalogue entry, the run's facts and its warm spreads (one cell, one prompt)."""
    started = f"2026-{day}T10:00:00Z"
    target = TARGET | {"engine_version": engine}
    facts = Facts(
        run_id=rid,
        title=rid,
        started_at=started,
        baseline=baseline,
        targets={CELL: target},
        prompts={"P-EASY": "a" * 64},
        warm={},
        concurrency=concurrency,
        max_tokens={"P-EASY": max_tokens},
    )
    base = 100.0 * concurrency
    spreads = {
        CELL: {
            "P-EASY": {
                "ttft": Spread(base, base * 0.9, base * 1.2, 5),
                "decode": Spread(50.0 / concurrency, 45.0 / concurrency, 52.0 / concurrency, 5),
            }
        }
    }
    entry = {
        "id": rid,
        "url": f"runs/{rid}/",
        "started_at_utc": started,
        "baseline": baseline,
        "status": "complete",
        "retracted": None,
        "synthetic": False,
        "reproducibility": {"verdict": "reliable", "reasons": []},
    } | entry
    return entry, facts, spreads


def _trend(*runs, limit=None):
    """The trend data of a node group holding ``runs`` (given oldest first)."""
    group = Group("node", "devbox", "devbox", cells={CELL: TARGET})
    group.run_ids = [entry["id"] for entry, _, _ in reversed(runs)]  # newest first
    entries = {e["id"]: e for e, _, _ in runs}
    facts = {e["id"]: f for e, f, _ in runs}
    spreads = {e["id"]: s for e, _, s in runs}
    return trend_panels(group, entries, spreads, facts, "../../", limit)


def _svg(spec):
    """The SVG a page gets: rendered, then compacted as the build does."""
    return compact(charts.svg_chart(spec, "t", "t", "d", None))


def _series(trend):
    return {p["run"]: p["series"] for p in trend["panels"][0]["points"]}


def test_runs_at_another_concurrency_are_another_series_named_in_words():
    trend = _trend(
        _run("a", "11-01"),
        _run("b", "11-02"),
        _run("c4", "11-03", concurrency=4),
        _run("d", "11-04"),
    )
    series = _series(trend)
    assert series == {
        "a": "1 request in flight",
        "b": "1 request in flight",
        "c4": "4 requests in flight",
        "d": "1 request in flight",
    }
    assert [s["name"] for s in trend["series"]] == ["1 request in flight", "4 requests in flight"]
    colours = {p["series"]: p["color"] for p in trend["panels"][0]["points"]}
    assert colours["1 request in flight"] != colours["4 requests in flight"]
    # The line is drawn per series: the concurrency-4 point is not joined to the others.
    spec = panel_chart(trend["panels"][0])
    lines = [
        layer
        for chart in spec["vconcat"]
        for layer in chart["layer"]
        if layer["mark"]["type"] == "line"
    ]
    assert lines and all(layer["encoding"]["detail"]["field"] == "series" for layer in lines)
    assert "mean" not in json.dumps(trend)  # the series are settings, never a statistic


def test_any_setting_that_is_not_like_for_like_splits_a_series_and_a_new_engine_does_not():
    threads = _run("t8", "11-03")
    threads[1].targets[CELL] = TARGET | {"settings": {"threads": 8}}
    trend = _trend(
        _run("a", "11-01"),
        _run("m", "11-02", max_tokens=512),
        threads,
        _run("new-engine", "11-04", engine="b2"),
    )
    series = _series(trend)
    assert series["m"] == "1 request in flight, max tokens 512, threads 4"
    assert series["t8"] == "1 request in flight, max tokens 64, threads 8"
    # A new engine version is what a trend follows: it continues the line.
    assert series["a"] == series["new-engine"] == "1 request in flight, max tokens 64, threads 4"
    # The same notion decides whether a comparison is like-for-like.
    assert "threads differs (4 vs 8)" in differences(
        threads[1], _run("a", "11-01")[1], CELL, "P-EASY"
    )
    assert "max tokens differs (64 vs 512)" in differences(
        _run("m", "11-02", max_tokens=512)[1], _run("a", "11-01")[1], CELL, "P-EASY"
    )


def test_baseline_and_unreliable_runs_have_their_own_marks():
    trend = _trend(
        _run("base", "11-01", baseline=True),
        _run("plain", "11-02"),
        _run("gone", "11-03", retracted={"date": "2026-11-04", "reason": "contended"}),
        _run("cut", "11-04", status="interrupted"),
        _run("demo", "11-05", synthetic=True),
        _run("bad", "11-06", reproducibility={"verdict": "unreliable", "reasons": ["x"]}),
    )
    points = {p["run"]: p for p in trend["panels"][0]["points"]}
    assert points["base"]["shape"] == "diamond" and not points["base"]["hollow"]
    assert points["plain"]["shape"] == "circle" and not points["plain"]["hollow"]
    for rid in ("gone", "cut", "demo", "bad"):
        assert points[rid]["hollow"] and points[rid]["fill"] == "transparent", rid
        assert "unreliable" in points[rid]["ttft_desc"]
    assert "baseline" in points["base"]["ttft_desc"]
    assert trend["baseline"] and trend["unreliable"]
    svg = _svg(panel_chart(trend["panels"][0]))
    soup = BeautifulSoup(svg, "html.parser")
    marks = {
        a["href"].split("/")[-2]: a.find("path")
        for a in soup.select("g.role-mark[class*=layer_2] a")
        if a.find("path") and "TTFT" in a.find("path")["aria-label"]
    }
    assert set(marks) == set(points)
    assert "A" not in marks["base"]["d"] and "A" in marks["plain"]["d"]  # diamond, circle
    assert marks["plain"].get("fill") == "#2f7fd1"
    assert all(marks[r].get("fill") in (None, "transparent") for r in ("gone", "cut", "demo"))


def _axis_labels(svg: str, axis: str) -> list[list[str]]:
    """The visible labels of every ``axis`` ("X" or "Y") axis of a rendered chart."""
    soup = BeautifulSoup(svg, "html.parser")
    out = []
    for group in soup.select("g.role-axis[aria-label]"):
        if group["aria-label"].startswith(f"{axis}-axis"):
            texts = group.select("g.role-axis-label text")
            out.append([t.get_text() for t in texts if t.get("opacity") != "0"])
    return out


def test_y_axes_start_at_zero_and_x_labels_carry_the_year():
    trend = _trend(_run("a", "11-01"), _run("b", "11-20"), _run("c", "12-24"))
    spec = panel_chart(trend["panels"][0])
    scales = [
        layer["encoding"]["y"]["scale"] for chart in spec["vconcat"] for layer in chart["layer"]
    ]
    assert scales and all(s.get("zero") is True for s in scales)
    svg = _svg(spec)
    ys = _axis_labels(svg, "Y")
    assert len(ys) == 2 and all(labels[0] == "0" for labels in ys)  # both metrics from 0
    (xs,) = _axis_labels(svg, "X")
    assert xs == ["2026-11-01", "2026-12-24"]  # the first and the last run, with the year
    # Runs within a day: the date (and year) and the time of day.
    hours = [_run(r, "11-01") for r in ("a", "b")]
    hours[1][0]["started_at_utc"] = "2026-11-01T13:30:00Z"
    svg = _svg(panel_chart(_trend(*hours)["panels"][0]))
    assert _axis_labels(svg, "X") == [["2026-11-01 10:00", "2026-11-01 13:30"]]


def test_trend_labels_come_from_the_vocabulary_and_the_chart_follows_the_page_colours():
    trend = _trend(_run("a", "11-01"), _run("b", "11-20"))
    svg = _svg(panel_chart(trend["panels"][0]))
    texts = [t.get_text() for t in BeautifulSoup(svg, "html.parser").find_all("text")]
    assert "Warm TTFT p50 [IQR] (ms)" in texts
    assert "Warm decode tokens/s p50 [IQR] (tokens/s)" in texts
    assert not any("mean" in t for t in texts)
    # No white box: no background is painted, and text takes the page's colour.
    assert 'fill="white"' not in svg and 'fill="#fff' not in svg
    soup = BeautifulSoup(svg, "html.parser")
    assert {t.get("fill") for t in soup.find_all("text")} == {"currentColor"}
    sizes = {float(t["font-size"].rstrip("px")) for t in soup.find_all("text")}
    assert min(sizes) >= 12 and float(soup.svg["width"]) <= 350  # never scaled on a phone


def test_trend_svg_bytes_are_the_same_on_every_render(tmp_path):
    trend = _trend(_run("a", "11-01"), _run("c4", "11-03", concurrency=4), _run("b", "11-20"))
    spec = panel_chart(trend["panels"][0])
    first = charts.svg_chart(spec, "t", "t", "d", tmp_path / "one")
    again = charts.svg_chart(copy.deepcopy(spec), "t", "t", "d", tmp_path / "two")
    assert first == again
    assert _trend(_run("a", "11-01"), _run("b", "11-20")) == _trend(
        _run("a", "11-01"), _run("b", "11-20")
    )


def test_group_and_run_pages_with_charts_are_byte_identical_from_cold_caches(tmp_path):
    """Two archives with the same runs, each built with its own (empty) chart cache."""
    pages = []
    for name in ("one", "two"):
        root = tmp_path / name
        generate_archive.generate(root, 6, warm=3, cells=2, prompts=2, seed=3)
        build(root)
        site = (root / "site").resolve()
        pages.append(
            {
                str(p.relative_to(site)): p.read_bytes()
                for folder in ("nodes", "engines", "models", "runs")
                for p in sorted((site / folder).rglob("index.html"))
            }
        )
    assert pages[0] == pages[1]
    charted = [p for p, html in pages[0].items() if b'class="chart trend"' in html]
    assert charted and any(p.startswith("runs/") and b"<svg" in pages[0][p] for p in pages[0])


def test_every_kind_of_chart_fits_a_phone_column_with_readable_text_in_page_colours():
    """Run page bars, score results and trends: at most 350 px wide (never scaled down in
    a 390 px screen's column), text of 12 px or more in currentColor, nothing white."""
    long_cell = "devbox:llamacpp:SmolLM2-135M-Instruct-Q4_1"
    bars = [dict(r, cell_id=long_cell, lo=1.0, hi=30.0) for r in ROWS]
    series = scores.Series("mmlu", "acc", None, True)
    series.points = [
        {"run_id": f"benchmark-output-v1-20251222-{i:010d}", "value": 0.5 + i / 10}
        for i in range(3)
    ]
    trend = _trend(_run("a", "11-01"), _run("b", "11-20"))
    svgs = {
        "bars": charts.svg_chart(
            charts.bar_by_cell(bars, "first_delta_ms_p50", "Warm first event p50 (ms)", ""),
            "b",
            "t",
            "d",
            None,
        ),
        "scores": scores.series_chart(series, "s", None),
        "trend": _svg(panel_chart(trend["panels"][0])),
    }
    for kind, svg in svgs.items():
        soup = BeautifulSoup(svg, "html.parser")
        assert float(soup.svg["width"]) <= 350, kind
        texts = soup.find_all("text")
        assert texts and all(float(t["font-size"].rstrip("px")) >= 12 for t in texts), kind
        assert {t.get("fill") for t in texts} == {"currentColor"}, kind
        assert "white" not in svg and "#fff" not in svg.lower(), kind
    bar_texts = [t.get_text() for t in BeautifulSoup(svgs["bars"], "html.parser")("text")]
    assert long_cell in bar_texts and "0" in bar_texts  # the whole cell name; bars from 0
