"""Charts: valid Vega-Lite, accessible SVG, ids that do not collide, cached."""

from __future__ import annotations

import altair as alt

from sitegen import charts

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
