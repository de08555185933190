"""The one vocabulary of the site's statistics: each measured field's label, unit,
one-line definition and methodology anchor, and the same for the statistics (p50,
p95, IQR, mean, n) taken of them.

Table headers (templates/_macros.html ``stat_head``), the comparison metrics
(sitegen.verdicts) and the download column documentation (sitegen.downloads)
all read from here, so a field is named and defined once. Anchors are ids on the
methodology page, written there as ``{#anchor}`` ([a-z0-9-] only, see
sitegen.pages.markup.anchored).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Term:
    """One per-call field (or count) as the reader sees it."""

    field: str  # the column name in the ledger and the downloads
    label: str  # the reader's words, shown in table headers
    unit: str | None  # shown in headers as "(unit)"
    anchor: str  # methodology.md id of its definition
    definition: str  # one line: the header's tooltip and the download column's description
    data_unit: str | None = None  # unit of the stored column when it differs (a fraction for %)
    stored_as_shown: bool = True  # False when the stored column is in data_unit, not unit

    @property
    def column_unit(self) -> str | None:
        """The unit of the column in the downloads (datapackage.json, docs/data.md)."""
        return self.unit if self.stored_as_shown else self.data_unit


@dataclass(frozen=True)
class Statistic:
    """A statistic taken over the calls of one cell, prompt and phase."""

    key: str
    label: str
    anchor: str
    definition: str
    column: str = ""  # description of a downloaded aggregate column; {field} is the field's name


TERMS: tuple[Term, ...] = (
    Term(
        "first_delta_ms",
        "First event",
        "ms",
        "first-delta-ms",
        "Time from sending the request to the first server-sent-events data event "
        "(client wall clock).",
    ),
    Term(
        "ttft_ms",
        "TTFT",
        "ms",
        "ttft-ms",
        "Time to first token: from sending the request to the first event carrying "
        "generated text (client wall clock).",
    ),
    Term(
        "total_duration_ms",
        "Total time",
        "ms",
        "total-duration-ms",
        "Time from sending the request to the last token-bearing event.",
    ),
    Term(
        "prompt_tokens",
        "Prompt tokens",
        "tokens",
        "prompt-tokens",
        "Prompt tokens, from the engine's usage report.",
    ),
    Term(
        "completion_tokens",
        "Output tokens",
        "tokens",
        "completion-tokens",
        "Generated tokens, from the engine's usage report.",
    ),
    Term(
        "tokens_per_sec",
        "Tokens/s (reference)",
        "tokens/s",
        "tokens-per-sec",
        "completion_tokens / ((total_duration_ms - first_delta_ms) / 1000).",
    ),
    Term(
        "tpot_ms",
        "TPOT",
        "ms",
        "tpot-ms",
        "Time per output token after the first: (t_last - ttft) / (tokens - 1).",
    ),
    Term(
        "decode_tps",
        "Decode tokens/s",
        "tokens/s",
        "decode-tps",
        "Decode speed after the first token: (tokens - 1) / (t_last - ttft).",
    ),
    Term(
        "finish_reason",
        "Finish reason",
        None,
        "finish-reason",
        "Why generation stopped (stop, length, ...), as the engine reports.",
    ),
    Term(
        "cold_kind",
        "Cold kind",
        None,
        "cold-kind",
        "How cold a cold call was: process_start, process_warm, unloaded, ...; in the "
        "aggregates, the kinds of the row's calls, comma-separated; null when not recorded.",
    ),
    Term("n", "Calls", None, "n", "Calls, errored ones included.", "calls", False),
    Term("errors", "Errors", None, "errors", "Calls that failed.", "calls", False),
    Term("success_rate", "Success rate", "%", "success-rate", "(n - errors) / n.", None, False),
)
BY_FIELD: dict[str, Term] = {t.field: t for t in TERMS}

STATISTICS: tuple[Statistic, ...] = (
    Statistic(
        "p50",
        "p50",
        "p50",
        "Median of the successful calls (linear interpolation between ranks).",
        "median {field} of the successful calls.",
    ),
    Statistic(
        "p95",
        "p95",
        "p95",
        "95th percentile of the successful calls: 1 in 20 calls was slower.",
        "95th percentile of {field}, successful calls.",
    ),
    Statistic(
        "iqr",
        "[IQR]",
        "iqr",
        "Interquartile range, p25–p75: the middle half of the successful calls.",
    ),
    Statistic(
        "mean",
        "mean",
        "mean",
        "Arithmetic mean of the successful calls.",
        "mean {field} of the successful calls.",
    ),
    Statistic(
        "n",
        "n",
        "n",
        "Number of calls behind the figure.",
    ),
    Statistic(
        "stderr",
        "± stderr",
        "stderr",
        "Standard error of a reported result, as its source gave it.",
    ),
)
STATS: dict[str, Statistic] = {s.key: s for s in STATISTICS}

# The aggregate columns published in the downloads: (field, statistic).
AGGREGATES: tuple[tuple[str, str], ...] = (
    ("first_delta_ms", "p50"),
    ("first_delta_ms", "p95"),
    ("ttft_ms", "p50"),
    ("ttft_ms", "p95"),
    ("total_duration_ms", "p50"),
    ("total_duration_ms", "p95"),
    ("tpot_ms", "p50"),
    ("tpot_ms", "p95"),
    ("decode_tps", "p50"),
    ("tokens_per_sec", "mean"),
    ("completion_tokens", "mean"),
    ("prompt_tokens", "mean"),
)


@dataclass(frozen=True)
class Compared:
    """A metric compared against a baseline (sitegen.verdicts): its label is also
    the catalogue's wording of verdict reasons, so it stays as published."""

    key: str
    label: str
    unit: str
    anchor: str
    definition: str  # one line: the header's tooltip
    field: str = ""  # the per-call field it is computed from (sitegen.compare, sitegen.figures)


COMPARED: dict[str, Compared] = {
    c.key: c
    for c in (
        Compared(
            "ttft",
            "warm TTFT",
            "ms",
            "metric-ttft",
            "TTFT (ttft_ms) of each warm call; a run with no ttft_ms recorded is "
            "compared by first event, and says so; lower is better.",
            "ttft_ms",
        ),
        Compared(
            "decode",
            "decode tokens/s",
            "tokens/s",
            "metric-decode",
            "Decode tokens/s of each warm call (else tokens/s); higher is better.",
            "decode_tps",
        ),
        Compared(
            "total",
            "warm total time",
            "ms",
            "metric-total",
            "Total time of each warm call, when output lengths match; lower is better.",
            "total_duration_ms",
        ),
    )
}

# Values of cold_kind, in words (methodology "Cold and warm").
COLD_KINDS: dict[str, str] = {
    "process_start": "first call after the server started",
    "process_warm": "server already running, model loaded",
    "unloaded": "model unloaded before the call",
    "unload_unconfirmed": "unload requested but not confirmed",
    "restart": "first call after the server was restarted",
    "not_measured": "cold start not measured",
}


def _lower(text: str) -> str:
    """A definition continuing a label: "Time to ..." -> "time to ..." (not "TTFT ...")."""
    return text[:1].lower() + text[1:] if text[1:2].islower() else text


def column_docs() -> dict[str, tuple[str, str | None]]:
    """Description and unit of every vocabulary column of the downloads: the label the
    pages show, then its definition ("First event p50: median first_delta_ms ...")."""
    docs = {t.field: (f"{t.label}: {_lower(t.definition)}", t.column_unit) for t in TERMS}
    for name, stat in AGGREGATES:
        t, s = BY_FIELD[name], STATS[stat]
        docs[f"{name}_{stat}"] = (f"{t.label} {s.label}: {s.column.format(field=name)}", t.unit)
    return docs


def cased(label: str, lead: str = "") -> str:
    """``label`` after ``lead`` ("Warm first event"), as the template macro of that name:
    capitalised when it starts the text, else lowercased unless an acronym (TTFT)."""
    if not lead:
        return label[:1].upper() + label[1:]
    return f"{lead} " + (label if label[1:2].isupper() else label[:1].lower() + label[1:])


def header_words(term: str, stat: str | None = None, iqr: bool = False, lead: str = "") -> str:
    """A header's plain text, e.g. "First event p50 (ms)": what a test or a reader sees."""
    t = BY_FIELD[term]
    words = cased(t.label, lead) + (f" {STATS[stat].label}" if stat else "")
    words += f" {STATS['iqr'].label}" if iqr else ""
    return words + (f" ({t.unit})" if t.unit else "")


def compared_words(key: str, stat: str | None = None, iqr: bool = False, lead: str = "") -> str:
    """A compared metric's plain text, e.g. "Decode tokens/s p50 [IQR] (tokens/s)"."""
    c = COMPARED[key]
    words = cased(c.label, lead) + (f" {STATS[stat].label}" if stat else "")
    words += f" {STATS['iqr'].label}" if iqr else ""
    return f"{words} ({c.unit})"


# The frozen prompts defined on the methodology page ("Prompts"), by id.
PROMPTS: dict[str, str] = {p: p.lower() for p in ("P-EASY", "P-MEDIUM", "P-HARD")}


def _prompt_descriptions() -> dict[str, str]:
    """Prompt id -> "intent; max N tokens; text sha256 abcd…", from the frozen prompts file."""
    from sitegen.prompts import load_prompts

    return {
        p.id: f"{p.intent or 'no intent recorded'}; max {p.max_tokens:,} output tokens; "
        f"text sha256 {p.sha256[:16]}…"
        for p in load_prompts()
        if p.id in PROMPTS
    }


# What a prompt id's tooltip says wherever the id appears.
PROMPT_DESCRIPTIONS: dict[str, str] = _prompt_descriptions()


def column_anchor(name: str) -> str | None:
    """Methodology anchor of a download column: its field's, aggregates included."""
    if name in BY_FIELD:
        return BY_FIELD[name].anchor
    field, _, stat = name.rpartition("_")
    return BY_FIELD[field].anchor if (field, stat) in AGGREGATES else None


# The key figures' own words (sitegen.figures; methodology "Key figures"), beside the
# compared metrics and fields they also show.
FIGURES: dict[str, Term] = {
    t.field: t
    for t in (
        Term(
            "cold_ms",
            "Cold start",
            "ms",
            "cold-start",
            "TTFT of the first cold call of the cell and prompt, with how cold it was.",
        ),
        Term(
            "max_tokens",
            "Max tokens",
            "tokens",
            "key-figures",
            "The prompt's generation budget in this run.",
        ),
        Term(
            "concurrency",
            "Concurrency",
            None,
            "key-figures",
            "Requests kept in flight while measuring.",
        ),
        Term(
            "warm_n",
            "Warm calls",
            None,
            "n",
            "Warm calls behind the figures, errored ones included.",
        ),
    )
}
