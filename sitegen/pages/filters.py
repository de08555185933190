"""The theme's filters for the values on every row of the big tables.

A run page shows some 400 values (statistics, spreads, prompt ids); as Jinja
macros each cost a macro call, together about half of the page's rendering
time. As filters they are plain function calls that make the same markup.
Every value is escaped here, as autoescape would.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from jinja2.runtime import Macro
from markupsafe import Markup, escape

from sitegen import vocabulary
from sitegen.numfmt import readable
from sitegen.verdicts import NO_DATA, UNLIKE, MetricVerdict, Spread


def _with_iqr(p50: float, p25: float, p75: float) -> str:
    """``p50 [p25–p75]``, the range in a small with its meaning as the tooltip."""
    return (
        f"{escape(readable(p50))} "
        '<small class="iqr" title="interquartile range, p25–p75">'
        f"[{escape(readable(p25))}–{escape(readable(p75))}]</small>"
    )


def figure(value: float | int | None, missing: str = "–") -> Markup:
    """A value rounded for reading, or ``missing`` greyed out when there is none."""
    if value is None:
        return Markup('<span class="na">') + missing + Markup("</span>")
    return escape(readable(value))


def spread(s: Spread | None) -> Markup:
    """A p50 with its interquartile range (``sitegen.compare.Spread``), or a dash."""
    if s is None:
        return figure(None)
    return Markup(_with_iqr(s.p50, s.p25, s.p75))


def prompt_link(prompt_id: str, root: str) -> Markup:
    """A prompt id linked to its definition on the methodology page, its description as
    the tooltip; an id the methodology does not define is shown as it is."""
    anchor = vocabulary.PROMPTS.get(prompt_id)
    if anchor is None:
        return escape(prompt_id)
    title = vocabulary.PROMPT_DESCRIPTIONS.get(prompt_id, "")
    return Markup(
        f'<a class="prompt-id" href="{escape(root)}methodology/index.html#{escape(anchor)}"'
        f' title="{escape(title)}">{escape(prompt_id)}</a>'
    )


def change(m: MetricVerdict) -> Markup:
    """A compared metric's cell: both spreads, the change with its CI, p and n, and its
    status (with the reason when the runs could not be compared)."""
    status = escape(m.status)
    kind = escape(m.status.replace(" ", "-"))
    parts = [f'<span class="change {kind}">{spread(m.base)} → {spread(m.now)}\n']
    if m.shift is not None:
        parts.append(
            f'<br><strong>{escape(m.change_text)}</strong> <small class="ci">'
            f"{escape(m.ci_text)}</small><br><small>{escape(m.p_text)}, {escape(m.n_text)}</small>"
        )
    parts.append(f'<br><span class="flag">{status}</span>')
    if m.status in (UNLIKE, NO_DATA):
        parts.append(f" <small>{escape(m.reason)}</small>")
    parts.append("</span>")
    return Markup("".join(parts))


_FIRST_EVENT = (
    ' <small class="first-event-fallback" title="no ttft_ms recorded: the warm first event">'
    "first event</small>"
)
_REFERENCE = (
    ' <small title="no per-call decode speed recorded: the median of tokens/s (reference)">'
    "ref.</small>"
)


def key_ttft(row: Mapping[str, Any], field: str | None = None) -> Markup:
    """A key-figures row's warm TTFT p50 with its interquartile range; marked when it is
    the first event (``field``: what the run recorded) rather than ``ttft_ms``."""
    if row["ttft_p50"] is None:
        failed = row.get("n") and row.get("errors") == row.get("n")
        return figure(None, "all calls failed" if failed else "not recorded")
    fallback = _FIRST_EVENT if field and field != vocabulary.COMPARED["ttft"].field else ""
    return Markup(_with_iqr(row["ttft_p50"], row["ttft_p25"], row["ttft_p75"]) + fallback)


def key_decode(row: Mapping[str, Any]) -> Markup:
    """A key-figures row's decode tokens/s p50, marked when it is the reference tokens/s."""
    if row["decode_p50"] is None:
        return figure(None, "not recorded")
    reference = _REFERENCE if row.get("decode_field") != "decode_tps" else ""
    return Markup(f"{escape(readable(row['decode_p50']))}{reference}")


def key_cold(row: Mapping[str, Any]) -> Markup:
    """A key-figures row's cold call time, with how cold it was."""
    if row.get("cold_failed"):
        return figure(None, "failed")
    if row["cold_ms"] is None:
        return figure(None, "not recorded")
    kind = row.get("cold_kind")
    if not kind:
        return escape(readable(row["cold_ms"]))
    title = vocabulary.COLD_KINDS.get(kind, kind)
    return Markup(
        f'{escape(readable(row["cold_ms"]))} <small title="{escape(title)}">'
        f"{escape(kind.replace('_', ' '))}</small>"
    )


def spans(rows: Iterable[Mapping[str, Any]], key: str) -> Counter[Any]:
    """How many of ``rows`` share each value of ``key``: the rowspan of a row group."""
    return Counter(row[key] for row in rows)


class Memo:
    """``memo(macro, *args)`` in a template: the macro's output for those arguments, made
    once per build. For macros whose output depends on their arguments and the theme
    alone (column headers: on every run page, the same 40 macro calls).
    """

    def __init__(self) -> None:
        self._made: dict[tuple[Any, ...], Any] = {}

    def __call__(self, macro: Macro, *args: Any, **kwargs: Any) -> Any:
        key = (macro, args, tuple(sorted(kwargs.items())))
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = macro(*args, **kwargs)
        return made


FILTERS = {
    "figure": figure,
    "spread": spread,
    "prompt_link": prompt_link,
    "change": change,
    "spans": spans,
    "key_ttft": key_ttft,
    "key_decode": key_decode,
    "key_cold": key_cold,
}
