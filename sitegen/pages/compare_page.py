"""The compare page: any two runs, or two cells of one run, side by side in the browser.

``compare/index.html`` is static; ``assets/compare.js`` computes the verdicts there
from ``compare/index.json`` (the runs that can be compared, the archive's verdict
settings) and each run's ``runs/<id>/samples.json`` (its warm calls and the facts the
like-for-like guard reads), exactly as ``sitegen compare`` does (sitegen.compare).
"""

from __future__ import annotations

from sitegen.compare import Facts, compare_index, facts_of, samples_json
from sitegen.jsonio import dumps_compact
from sitegen.pages.context import Context
from sitegen.reuse import digest
from sitegen.verdicts import METRICS

PAGE = "compare/index.html"
INDEX = "compare/index.json"


def samples_path(run_id: str) -> str:
    return f"runs/{run_id}/samples.json"


def compare_pages(ctx: Context) -> None:
    """Each run's samples.json (keyed by its entry: its files, so its calls and metadata),
    the index (keyed by the whole catalogue) and the page."""
    data = ctx.data
    facts: dict[str, Facts] = {}
    for entry in ctx.entries:
        rid = entry["id"]
        samples = data.samples.get(rid)
        if not samples:
            continue
        f = facts_of(data.runs[rid], samples)
        facts[rid] = f
        ctx.outputs.cached(
            samples_path(rid),
            digest([ctx.salt, "samples", ctx.entry_keys[rid]]),
            lambda f=f: dumps_compact(samples_json(f)),  # type: ignore[misc]
        )
    ctx.outputs.cached(
        INDEX,
        digest([ctx.whole, INDEX]),
        lambda: dumps_compact(compare_index(ctx.entries, facts, ctx.thresholds)),
    )
    comparable = [e for e in ctx.entries if e["id"] in facts]
    example = [e["id"] for e in comparable[:2]][::-1]
    ctx.page(
        PAGE,
        "compare.html",
        digest([ctx.whole, example]),
        root="../",
        thresholds=ctx.thresholds,
        metrics=METRICS,
        example=example,
        runs=len(comparable),
    )
