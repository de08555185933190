"""Score results across runs: the ``result`` records (evaluation scores, summary
statistics of imported tools) of one model, side by side per task and metric.

A result belongs to a model when it names it (``model``), when its cell does,
or when its run has exactly one model. Where a task and metric has results
from more than one run, a chart shows them in time order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sitegen import charts
from sitegen.archive import Run
from sitegen.catalogue import split_cell, targets_of
from sitegen.entities import canonical

MAX_CHARTS = 12  # per model page: charts cost ~0.1 s each to render the first time


@dataclass
class Series:
    """One (task, metric) of one model: a value per run."""

    task: str
    metric: str
    unit: str | None
    higher_is_better: bool | None
    points: list[dict[str, Any]] = field(default_factory=list)  # oldest first


def _model_of(result: dict[str, Any], run_models: list[str], run: Run) -> str | None:
    if result.get("model"):
        return canonical("model", str(result["model"]), run.aliases)
    if result.get("cell_id"):
        return canonical("model", split_cell(str(result["cell_id"]))["model"], run.aliases)
    return run_models[0] if len(run_models) == 1 else None


def model_series(model: str, runs: list[Run], entries: dict[str, dict[str, Any]]) -> list[Series]:
    """Every (task, metric) with results for ``model``, points in run start order."""
    found: dict[tuple[str, str], Series] = {}
    ordered = sorted(runs, key=lambda r: (r.started_at or "", r.run_id))
    for run in ordered:
        if run.ledger is None or not run.ledger.results:
            continue
        models = sorted({t["model"] for t in targets_of(run) if t.get("model")})
        for result in run.ledger.results:
            if _model_of(result, models, run) != model:
                continue
            key = (result["name"], result["metric"])
            series = found.setdefault(
                key,
                Series(key[0], key[1], result.get("unit"), result.get("higher_is_better")),
            )
            series.points.append(
                {
                    "run_id": run.run_id,
                    "url": entries[run.run_id]["url"],
                    "started_at_utc": run.started_at,
                    "value": result.get("value"),
                    "stderr": result.get("stderr"),
                }
            )
    return [found[k] for k in sorted(found)]


def series_chart(series: Series, chart_id: str, cache: Any) -> str | None:
    """An inline SVG of one series' values per run, or None with fewer than two values."""
    values = [
        {"run": p["run_id"], "value": p["value"], "order": i}
        for i, p in enumerate(series.points)
        if p["value"] is not None
    ]
    if len(values) < 2:
        return None
    unit = f" ({series.unit})" if series.unit else ""
    title = f"{series.task}: {series.metric}{unit}"
    spec = charts.with_data(_template(f"{series.metric}{unit}"), values, title)
    listing = "; ".join(f"{v['run']}: {v['value']:g}" for v in values)
    return charts.svg_chart(
        spec, chart_id, title, f"{title}, per run, oldest first. {listing}.", cache
    )


def _template(axis_title: str) -> dict[str, Any]:
    return charts.cached_template(("scores", axis_title), lambda: _build_template(axis_title))


def _build_template(axis_title: str) -> Any:
    import altair as alt

    return (
        alt.Chart(alt.Data(values=[]))  # type: ignore[no-untyped-call]  # alt.Data is untyped
        .mark_bar()
        .encode(
            # Run ids are long: cut to fit a phone's column; the table above has them whole.
            y=alt.Y(
                "run:N",
                title=None,
                sort=alt.EncodingSortField("order"),
                axis=alt.Axis(labelLimit=130),
            ),
            x=alt.X("value:Q", title=axis_title),
        )
        .properties(title="", width=190)
    )


def series_charts(series: list[Series], cache: Any) -> list[dict[str, Any]]:
    """The charts of a model page's series with several runs (at most ``MAX_CHARTS``)."""
    rendered: list[dict[str, Any]] = []
    for i, s in enumerate(series):
        if len(rendered) >= MAX_CHARTS:
            break
        svg = series_chart(s, f"chart-score-{i}", cache)
        if svg is not None:
            rendered.append({"svg": svg, "caption": f"{s.task}: {s.metric}, per run."})
    return rendered
