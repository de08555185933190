"""The theme's table filters make the markup the macros made, and escape what they show."""

from __future__ import annotations

from pathlib import Path

import pytest
from markupsafe import Markup

from sitegen.pages.filters import change, figure, prompt_link, spans, spread
from sitegen.pages.theme import environment
from sitegen.verdicts import METRICS, NOISE, UNLIKE, MetricVerdict, Spread


def test_a_missing_value_reads_as_a_dash_or_as_told_never_as_zero():
    assert figure(None) == Markup('<span class="na">–</span>')
    assert figure(None, "not recorded") == Markup('<span class="na">not recorded</span>')
    assert figure(0) == "0"
    assert figure(10726.857838) == "10,727"


def test_untrusted_prompt_ids_and_reasons_are_escaped():
    hostile = '<img src=x onerror="alert(1)">'
    assert "<img" not in prompt_link(hostile, "../../")
    assert prompt_link("P-EASY", "../../").startswith(
        '<a class="prompt-id" href="../../methodology/index.html#p-easy" title="'
    )
    m = MetricVerdict(METRICS[0], UNLIKE, hostile, None, None, None)
    cell = change(m)
    assert "<img" not in cell and "&lt;img" in cell
    assert cell.endswith(f"<small>{Markup.escape(hostile)}</small></span>")


def test_a_spread_shows_its_median_and_interquartile_range():
    s = Spread(p50=12.34, p25=10.0, p75=15.5, n=9)
    assert spread(s) == Markup(
        '12.3 <small class="iqr" title="interquartile range, p25–p75">[10–15.5]</small>'
    )
    assert spread(None) == Markup('<span class="na">–</span>')
    assert "too few" not in change(MetricVerdict(METRICS[1], NOISE, "within noise", s, s, None))


def test_row_groups_count_their_rows():
    rows = [{"cell_id": "a"}, {"cell_id": "a"}, {"cell_id": "b"}]
    assert spans(rows, "cell_id") == {"a": 2, "b": 1}


@pytest.mark.parametrize("root", ["../../", "./"])
def test_memo_gives_a_header_macro_its_own_output_once(root: str):
    """The headers every run page repeats are made once a build, and are the macro's."""
    env = environment(Path("/nonexistent"))
    macros = env.get_template("_macros.html").module
    direct = str(macros.stats_head(root, "warm"))  # type: ignore[attr-defined]
    template = env.from_string(
        '{% from "_macros.html" import stats_head %}'
        '{{ memo(stats_head, root, "warm") }}|{{ memo(stats_head, root, "warm") }}'
    )
    assert template.render(root=root) == f"{direct}|{direct}"
    assert f'href="{root}methodology/index.html#' in direct


def kf_row(**values: object) -> dict[str, object]:
    row: dict[str, object] = dict.fromkeys(
        ("ttft_p50", "ttft_p25", "ttft_p75", "decode_p50", "cold_ms", "cold_kind")
    )
    return row | {"n": 8, "errors": 0, "decode_field": "decode_tps", "cold_failed": False} | values


def test_key_figures_say_why_a_value_is_missing():
    from sitegen.pages.filters import key_cold, key_decode, key_ttft

    assert "all calls failed" in key_ttft(kf_row(errors=8))
    assert "not recorded" in key_ttft(kf_row(n=0))
    assert "not recorded" in key_decode(kf_row())
    assert key_cold(kf_row(cold_failed=True)) == Markup('<span class="na">failed</span>')
    assert "not recorded" in key_cold(kf_row())


def test_key_figures_mark_stand_ins_and_escape_what_the_run_recorded():
    from sitegen.pages.filters import key_cold, key_decode, key_ttft

    ttft = kf_row(ttft_p50=120.0, ttft_p25=100.0, ttft_p75=150.5)
    assert key_ttft(ttft, "ttft_ms").startswith('120 <small class="iqr"')
    assert "first event" not in key_ttft(ttft, "ttft_ms")
    assert "first event</small>" in key_ttft(ttft, "first_delta_ms")
    assert key_decode(kf_row(decode_p50=41.25, decode_field="tokens_per_sec")).endswith(
        "ref.</small>"
    )
    cold = key_cold(kf_row(cold_ms=2500.0, cold_kind='process_cold"<b>'))
    assert cold.startswith("2,500 <small title=") and "<b>" not in cold
    assert ">process cold&#34;&lt;b&gt;</small>" in cold


def test_a_publishers_template_importing_the_old_macros_still_renders():
    """A theme override written against the macros keeps working: each is the filter."""
    env = environment(Path("/nonexistent"))
    s = Spread(p50=2.0, p25=1.0, p75=3.0, n=5)
    m = MetricVerdict(METRICS[0], NOISE, "within noise", s, s, None)
    row = kf_row(ttft_p50=1.0, ttft_p25=0.5, ttft_p75=2.0, decode_p50=3.0, cold_ms=9.0)
    template = env.from_string(
        '{% from "_macros.html" import ms, num, spread, change, prompt %}'
        '{% from "_headlines.html" import value, ttft, decode, cold %}'
        "{{ ms(none) }}|{{ num(1234.5) }}|{{ spread(s) }}|{{ change(m) }}"
        '|{{ prompt("../", "P-HARD") }}'
        "|{{ value(none) }}|{{ ttft(row) }}|{{ decode(row) }}|{{ cold(row) }}"
    )
    from sitegen.pages.filters import key_cold, key_decode, key_ttft

    expected = [
        figure(None),
        figure(1234.5),
        spread(s),
        change(m),
        prompt_link("P-HARD", "../"),
        figure(None, "not recorded"),
        key_ttft(row),
        key_decode(row),
        key_cold(row),
    ]
    assert template.render(s=s, m=m, row=row).split("|") == [str(e) for e in expected]
