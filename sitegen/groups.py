"""Cross-run views: a page per model, per node and per engine, and the trend charts.

A group is every cell whose target names that model (node, engine), and every
run that measured or planned one of those cells. Its page lists the runs and
the cells, and draws one small chart per cell and prompt: warm TTFT and
decode tokens/s, p50 with the interquartile range, over time, one series per
set of like-for-like settings, each point a link to its run.

Pages that can grow with the archive (the index, a group's run list) are cut
into pages of ``site.runs_per_page`` runs: ``index.html`` then
``pages/2/index.html``, and so on.
"""

from __future__ import annotations

import copy
import hashlib
import json
import posixpath
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import altair as alt

from sitegen import charts
from sitegen import vocabulary as vocab
from sitegen.archive import Run
from sitegen.catalogue import NODE_FIELDS, nodes_of, targets_of
from sitegen.compare import Facts, shown, workload
from sitegen.entities import short_count, short_digest
from sitegen.numfmt import readable
from sitegen.verdicts import Spread

KINDS: dict[str, dict[str, str]] = {
    "model": {"folder": "models", "title": "Models", "one": "Model"},
    "node": {"folder": "nodes", "title": "Nodes", "one": "Node"},
    "engine": {"folder": "engines", "title": "Engines", "one": "Engine"},
}
# What a cell is called on a group page: the parts the group does not fix.
_LABEL_PARTS = {
    "model": ("node", "engine"),
    "node": ("engine", "model"),
    "engine": ("node", "model"),
}

_UNSAFE = re.compile(r"[^a-z0-9._-]+")
_CLEAN = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
RESERVED_SLUGS = {"index.html", "pages"}
MAX_SLUG = 80
TREND_RUNS = 60  # at most this many recent runs are drawn per group; the tables list all
# Linked points per chart: each costs about 600 bytes with its interval line and
# its share of the axes (measured), so 120 keep a group page's charts near 75 KB.
TREND_LINKS = 120
TREND_PANELS = 18  # cell x prompt panels per chart (~4 KB each, both metrics)


def slugify(name: str) -> str:
    """Lowercase ``[a-z0-9._-]``, other characters folded to ``-``; never empty."""
    slug = _UNSAFE.sub("-", name.lower()).strip("-.")[:MAX_SLUG].strip("-.")
    return slug or "x"


def _hashed(slug: str, name: str, length: int = 8) -> str:
    return f"{slug[: MAX_SLUG - length - 1]}-{hashlib.sha256(name.encode()).hexdigest()[:length]}"


def slugs(names: Iterable[str]) -> dict[str, str]:
    """name -> slug, deterministic and collision-proof.

    A name that already is a clean slug keeps it (stable URLs). Others use
    their folded form unless that is taken or reserved, in which case a short
    hash of the exact name is appended.
    """
    ordered = sorted(set(names))
    taken = {
        n for n in ordered if _CLEAN.match(n) and n not in RESERVED_SLUGS and len(n) <= MAX_SLUG
    }
    out = {n: n for n in taken}
    folded: dict[str, list[str]] = {}
    for n in ordered:
        if n not in out:
            folded.setdefault(slugify(n), []).append(n)
    for slug, group in sorted(folded.items()):
        for n in group:
            candidate = slug
            if len(group) > 1 or candidate in taken or candidate in RESERVED_SLUGS:
                length = 8
                candidate = _hashed(slug, n, length)
                while candidate in taken:
                    length += 4
                    candidate = _hashed(slug, n, length)
            taken.add(candidate)
            out[n] = candidate
    return out


@dataclass
class Group:
    """One model, node or engine, with its cells and runs (newest first).

    Models with one canonical name but different files (digests or parameter
    counts) are different groups: ``variant`` says what tells each apart.
    """

    kind: str
    name: str
    slug: str
    cells: dict[str, dict[str, Any]] = field(default_factory=dict)  # cell id -> target
    run_ids: list[str] = field(default_factory=list)
    variant: str | None = None  # e.g. "3.58M parameters, digest 2b1f95fa"; None: the only one
    # What the runs recorded about it (sitegen.entities facts): label -> values seen.
    facts: list[dict[str, Any]] = field(default_factory=list)
    planned: list[str] = field(default_factory=list)  # runs that only planned its cells
    members: set[tuple[str, str]] = field(default_factory=set, repr=False)  # (run, cell)

    @property
    def url(self) -> str:
        return f"{KINDS[self.kind]['folder']}/{self.slug}/"

    @property
    def title(self) -> str:
        """The name, with what tells it apart from same-named models."""
        return f"{self.name} ({self.variant})" if self.variant else self.name

    def label(self, cell_id: str) -> str:
        target = self.cells[cell_id]
        parts = [str(target.get(p) or "?") for p in _LABEL_PARTS[self.kind]]
        return " · ".join(parts)


def _fingerprint(target: dict[str, Any]) -> str | None:
    """What identifies a model's file: its digest, else its parameter count."""
    if target.get("model_digest"):
        return f"digest:{target['model_digest']}"
    if target.get("parameters"):
        return f"parameters:{target['parameters']}"
    return None


def _variant_keys(targets: list[dict[str, Any]]) -> dict[str | None, str | None]:
    """One model name's fingerprints -> the variant each belongs to (None: the only one).

    A parameter count without a digest joins the one digest recorded with that count;
    targets that record neither join the only variant there is, if there is one.
    """
    params: dict[str, set[Any]] = {}
    for t in targets:
        fp = _fingerprint(t)
        if fp is not None and fp.startswith("digest:"):
            params.setdefault(fp, set()).add(t.get("parameters"))
    out: dict[str | None, str | None] = {}
    for fp in sorted({f for f in map(_fingerprint, targets) if f is not None}):
        if fp.startswith("digest:"):
            out[fp] = fp
            continue
        count = int(fp.split(":", 1)[1])
        matches = [d for d in sorted(params) if count in params[d]]
        out[fp] = matches[0] if len(matches) == 1 else fp
    variants = set(out.values())
    if any(_fingerprint(t) is None for t in targets):
        out[None] = next(iter(variants)) if len(variants) == 1 else "unrecorded"
    if len(set(out.values())) <= 1:
        return dict.fromkeys(out)
    return out


def _variant_names(
    name: str, members: dict[str, list[dict[str, Any]]]
) -> dict[str, tuple[str, str]]:
    """variant key -> (slug stem, label saying what differs from its namesakes)."""
    out = {}
    for key, targets in members.items():
        counts = sorted({t["parameters"] for t in targets if t.get("parameters")})
        digests = sorted({t["model_digest"] for t in targets if t.get("model_digest")})
        size = (
            ", ".join(f"{short_count(c)} parameters" for c in counts)
            if counts
            else "parameters not recorded"
        )
        digest = (
            "digest " + ", ".join(str(short_digest(d)) for d in digests)
            if digests
            else "digest not recorded"
        )
        if key.startswith("digest:"):
            suffix = str(short_digest(key.split(":", 1)[1]))
        elif key.startswith("parameters:"):
            suffix = short_count(int(key.split(":", 1)[1])).lower() + "-params"
        else:
            suffix = "unidentified"
        out[key] = (f"{name}-{suffix}", f"{size}, {digest}")
    return out


def build_groups(entries: Sequence[dict[str, Any]], runs: dict[str, Run]) -> dict[str, list[Group]]:
    """kind -> its groups sorted by name; runs in catalogue order (newest first).

    Names are canonical (sitegen.entities): ``llama.cpp`` and ``llamacpp`` are one
    engine page, ``x.gguf`` and ``x`` one model page unless their files differ.
    """
    seen = [(entry, target) for entry in entries for target in targets_of(runs[entry["id"]])]
    by_model: dict[str, list[dict[str, Any]]] = {}
    for _entry, target in seen:
        if target.get("model"):
            by_model.setdefault(target["model"], []).append(target)
    variant_of = {name: _variant_keys(ts) for name, ts in by_model.items()}
    found: dict[str, dict[tuple[str, str | None], Group]] = {kind: {} for kind in KINDS}
    members: dict[tuple[str, str | None], list[dict[str, Any]]] = {}
    for entry, target in seen:
        for kind in KINDS:
            name = target.get(kind)
            if not name:
                continue
            variant = variant_of[name][_fingerprint(target)] if kind == "model" else None
            group = found[kind].setdefault((name, variant), Group(kind, name, ""))
            group.cells.setdefault(target["cell_id"], target)
            group.members.add((entry["id"], target["cell_id"]))
            if kind == "model":
                members.setdefault((name, variant), []).append(target)
            if not group.run_ids or group.run_ids[-1] != entry["id"]:
                group.run_ids.append(entry["id"])
                if entry.get("status") == "meta-only":
                    group.planned.append(entry["id"])
    stems: dict[tuple[str, str | None], str] = {}
    for name in sorted(by_model):
        keys = sorted({k for k in variant_of[name].values() if k is not None})
        keyed = {k: members[(name, k)] for k in keys}
        for key, (stem, label) in _variant_names(name, keyed).items():
            stems[(name, key)] = stem
            found["model"][(name, key)].variant = label
    out: dict[str, list[Group]] = {}
    for kind, groups in found.items():
        names = slugs(stems.get(k, k[0]) for k in groups)
        for k, group in groups.items():
            group.slug = names[stems.get(k, k[0])]
            group.facts = describe(group, [runs[rid] for rid in group.run_ids])
        out[kind] = [groups[k] for k in sorted(groups, key=lambda k: (k[0], k[1] or ""))]
    return out


class Locator:
    """Which group page each (run, cell) belongs to, per kind: exact even where one
    model name stands for different files."""

    def __init__(self, groups: dict[str, list[Group]]):
        self.pages = {
            kind: {(rid, cell): g.url for g in gs for rid, cell in g.members}
            for kind, gs in groups.items()
        }

    def url(self, kind: str, run_id: str, cell_id: str) -> str | None:
        """The URL (from the site root) of the page of a cell's node, engine or model."""
        return self.pages.get(kind, {}).get((run_id, cell_id))


# ---------------------------------------------------------------- what a group is

_FIELD_LABELS = {
    "cpu": "CPU",
    "cores": "Cores",
    "memory_gb": "Memory (GB)",
    "gpu": "GPU",
    "vram_gb": "GPU memory (GB)",
    "os": "Operating system",
    "kernel": "Kernel",
    "arch": "Architecture",
    "backends": "Backends",
    "python_version": "Python",
    "runner": "CI runner",
}
_PLACEHOLDER = re.compile(r"(^|[^a-z])(unknown|none|null|n/?a)([^a-z]|$)", re.IGNORECASE)


def recorded(value: Any) -> Any:
    """``value``, or None when it says nothing: missing, empty, zero, or a placeholder
    such as ``unknown`` or llama.cpp's ``b0-unknown``."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value if value > 0 else None
    if isinstance(value, str):
        text = value.strip()
        return None if not text or _PLACEHOLDER.search(text) else text
    if isinstance(value, list):
        return ", ".join(map(str, value)) or None
    return str(value)


def _fact(label: str, seen: dict[Any, list[str]], order: dict[str, int]) -> dict[str, Any]:
    """One fact: each value recorded (None: not recorded) with the runs that recorded it."""
    values = [
        {"value": v, "runs": sorted(set(rids), key=lambda r: order[r])} for v, rids in seen.items()
    ]
    values.sort(key=lambda x: (x["value"] is None, str(x["value"])))
    return {"label": label, "values": values}


def describe(group: Group, runs: list[Run]) -> list[dict[str, Any]]:
    """What the runs recorded about a node (hardware), an engine (versions) or a model
    (parameters, quantizations, digests, files, recorded names), with the runs."""
    order = {r.run_id: i for i, r in enumerate(runs)}
    fields: dict[str, dict[Any, list[str]]] = {}

    def note(label: str, value: Any, run_id: str) -> None:
        fields.setdefault(label, {}).setdefault(recorded(value), []).append(run_id)

    for run in runs:
        if group.kind == "node":
            hardware = dict(nodes_of(run)).get(group.name)
            if hardware is None:
                for key in NODE_FIELDS:
                    note(key, None, run.run_id)
                continue
            keys = [*NODE_FIELDS, *sorted(k for k in hardware if k not in NODE_FIELDS)]
            for key in keys:
                note(key, hardware.get(key), run.run_id)
            continue
        for target in targets_of(run):
            if target["cell_id"] not in group.cells or target.get(group.kind) != group.name:
                continue
            if group.kind == "engine":
                note("engine_version", target.get("engine_version"), run.run_id)
                note("engine_recorded", (target.get("recorded") or {}).get("engine"), run.run_id)
            else:
                note("parameters", target.get("parameters"), run.run_id)
                note("quantization", target.get("quantization"), run.run_id)
                note("model_digest", target.get("model_digest"), run.run_id)
                note("model_file", target.get("model_file"), run.run_id)
                note("model_recorded", (target.get("recorded") or {}).get("model"), run.run_id)
    labels = _FIELD_LABELS | {
        "engine_version": "Version",
        "engine_recorded": "Also recorded as",
        "parameters": "Parameters",
        "quantization": "Quantization",
        "model_digest": "Digest",
        "model_file": "File",
        "model_recorded": "Also recorded as",
    }
    out = []
    for key, seen in fields.items():
        if key.endswith("_recorded"):
            seen.pop(None, None)
            if not seen:
                continue
        out.append(_fact(labels.get(key, key.replace("_", " ").capitalize()), seen, order))
    return out


# ---------------------------------------------------------------- pagination


@dataclass(frozen=True)
class Page:
    """One page of a long list.

    The front page (``number`` 0) shows the newest items. The rest of the list
    lives in fixed blocks counted from the oldest item (``pages/1/`` holds the
    oldest ``per_page``), so a new item changes the front page and the newest
    block only: older block pages keep their content and their URLs, which
    makes them citable and lets a rebuild reuse them unchanged.
    """

    rel: str  # output path of this page
    root: str  # relative path back to the site root
    items: list[Any]  # newest first
    number: int  # 0: the front page; 1..count: blocks, 1 the oldest
    # Number of blocks, on the front page; None on a block, whose content must not
    # depend on how many blocks follow it.
    count: int | None
    nav: list[tuple[str, str, bool]]  # (label, href relative to this page, is this page)
    first: int  # position of the oldest item shown, counted from the oldest (1-based)
    last: int  # position of the newest item shown


def page_path(base: str, number: int) -> str:
    return f"{base}index.html" if number == 0 else f"{base}pages/{number}/index.html"


def paginate(base: str, items: Sequence[Any], per_page: int) -> list[Page]:
    """The front page and the blocks of ``items`` (given newest first) under ``base``."""
    total = len(items)
    oldest_first = list(reversed(items))
    blocks = (
        [oldest_first[i : i + per_page] for i in range(0, total, per_page)]
        if total > per_page
        else []
    )
    count = len(blocks)

    def href(here: str, number: int) -> str:
        return posixpath.relpath(page_path(base, number), posixpath.dirname(here) or ".")

    front_rel = page_path(base, 0)
    front_nav = [("Newest", href(front_rel, 0), True)] if count else []
    front_nav += [(str(n), href(front_rel, n), False) for n in range(count, 0, -1)]
    shown = list(items[:per_page])
    pages = [
        Page(
            front_rel,
            "../" * front_rel.count("/"),
            shown,
            0,
            count,
            front_nav,
            total - len(shown) + 1,
            total,
        )
    ]
    for number, block in enumerate(blocks, start=1):
        rel = page_path(base, number)
        # Only neighbours: a new block changes the nav of the block before it, no other.
        nav = [("Newest", href(rel, 0), False)]
        nav += [(str(n), href(rel, n), n == number) for n in (number + 1, number, number - 1)]
        nav = [item for item in nav if item[0] == "Newest" or 1 <= int(item[0]) <= count]
        first = (number - 1) * per_page + 1
        last = first + len(block) - 1
        root = "../" * rel.count("/")
        pages.append(Page(rel, root, block[::-1], number, None, nav, first, last))
    return pages


# ---------------------------------------------------------------- trend charts

TTFT_TITLE = vocab.header_words("ttft_ms", "p50", iqr=True, lead="Warm")
DECODE_TITLE = vocab.compared_words("decode", "p50", iqr=True, lead="Warm")
X_TITLE = "run started (UTC)"
UNRELIABLE_WORDS = "retracted, interrupted, failing the reproducibility checklist, or synthetic"


def unreliable_reasons(entry: dict[str, Any]) -> list[str]:
    """Why a run's numbers are not to be relied on, in words (empty when they are)."""
    reasons = []
    if entry.get("retracted"):
        reasons.append("retracted")
    if entry.get("status") == "interrupted":
        reasons.append("interrupted")
    if (entry.get("reproducibility") or {}).get("verdict") == "unreliable":
        reasons.append("failing the reproducibility checklist")
    if entry.get("synthetic"):
        reasons.append("synthetic")
    return reasons


def concurrency_words(n: int) -> str:
    return "1 request in flight" if n == 1 else f"{n} requests in flight"


def series_labels(workloads: dict[str, dict[str, Any]]) -> dict[str, tuple[int, str]]:
    """run -> (concurrency, words) of its series within one cell x prompt panel.

    Runs are one series when every setting ``compare.workload`` records for them
    (requests in flight, prompt text, max tokens, the target's settings) is equal;
    a setting that takes two values in the panel names the series, a run that
    did not record it is "not recorded" there.
    """
    names = sorted({n for w in workloads.values() for n in w} - {"concurrency"})
    varying = [
        n
        for n in names
        if len({json.dumps(w[n], sort_keys=True) for w in workloads.values() if n in w}) > 1
    ]
    out = {}
    for rid, w in workloads.items():
        words = [concurrency_words(w["concurrency"])]
        words += [f"{n} {shown(w[n])}" if n in w else f"{n} not recorded" for n in varying]
        out[rid] = (w["concurrency"], ", ".join(words))
    return out


def _stamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _spread_words(s: Spread, unit: str) -> str:
    return f"{readable(s.p50)} {unit} [IQR {readable(s.p25)}–{readable(s.p75)}], n = {s.n}"


def trend_panels(
    group: Group,
    entries: dict[str, dict[str, Any]],
    spreads: dict[str, dict[str, dict[str, dict[str, Spread | None]]]],
    facts: dict[str, Facts],
    root: str,
    limit: int | None = None,
) -> dict[str, Any] | None:
    """What the trend charts of a group draw: per cell x prompt panel, one point per run
    with its warm TTFT and decode tokens/s p50 and interquartile range.

    At most ``TREND_PANELS`` panels (the cell x prompt pairs measured most often), and
    by default as many of the newest dated runs as keep the page under ``TREND_LINKS``
    linked points (two per run and panel), between 5 and ``TREND_RUNS``. Each point
    carries its series (``series_labels``), its colour, and its mark: a diamond for a
    baseline run, a hollow mark for an unreliable one. None when nothing is drawn.
    """
    measured: dict[str, dict[tuple[str, str], dict[str, Spread | None]]] = {}
    for rid in group.run_ids:
        if not entries[rid].get("started_at_utc"):
            continue
        found = {
            (cell, prompt): metrics
            for cell, prompts in spreads.get(rid, {}).items()
            if cell in group.cells
            for prompt, metrics in prompts.items()
            if metrics.get("ttft") is not None or metrics.get("decode") is not None
        }
        if found:
            measured[rid] = found
    counts: dict[tuple[str, str], int] = {}
    for found in measured.values():
        for key in found:
            counts[key] = counts.get(key, 0) + 1
    chosen = sorted(counts, key=lambda k: (-counts[k], k))[:TREND_PANELS]
    if not chosen:
        return None
    if limit is None:
        limit = max(5, min(TREND_RUNS, TREND_LINKS // (2 * len(chosen))))
    runs = list(measured)[:limit]  # group.run_ids are newest first
    panels: list[dict[str, Any]] = []
    for cell, prompt in sorted(chosen, key=lambda k: (group.label(k[0]), k[1])):
        rids = [rid for rid in runs if (cell, prompt) in measured[rid]]
        if not rids:
            continue
        labels = series_labels({rid: workload(facts[rid], cell, prompt) for rid in rids})
        several = len({label for _, label in labels.values()}) > 1
        points = []
        for rid in reversed(rids):  # oldest first
            entry, metrics = entries[rid], measured[rid][(cell, prompt)]
            # What a screen reader says of each point (the link's name), kept short:
            # the chart's key and the run page say the rest.
            notes = ["baseline"] if entry.get("baseline") else []
            notes += ["unreliable"] if unreliable_reasons(entry) else []
            notes += [labels[rid][1]] if several else []
            point: dict[str, Any] = {
                "time": entry["started_at_utc"],
                "run": rid,
                "order": labels[rid][0],
                "series": labels[rid][1],
                "shape": "diamond" if entry.get("baseline") else "circle",
                "hollow": bool(unreliable_reasons(entry)),
                "href": f"{root}{entry['url']}index.html",
            }
            for m, words, unit in (
                ("ttft", "TTFT", "ms"),
                ("decode", "decode", "tokens/s"),
            ):
                s = metrics.get(m)
                if s is None:
                    continue
                point |= {m: s.p50, f"{m}_lo": s.p25, f"{m}_hi": s.p75, f"{m}_n": s.n}
                point[f"{m}_desc"] = "; ".join(
                    [f"{rid}, {point['time'][:10]}: {words} p50 {_spread_words(s, unit)}", *notes]
                )
            points.append(point)
        panel: dict[str, Any] = {"cell": cell, "label": group.label(cell), "prompt": prompt}
        panels.append(panel | {"points": points})
    series = sorted({(p["order"], p["series"]) for panel in panels for p in panel["points"]})
    colours = {name: charts.PALETTE[i % len(charts.PALETTE)] for i, (_, name) in enumerate(series)}
    for panel in panels:
        for p in panel["points"]:
            p["color"] = colours[p["series"]]
            p["fill"] = "transparent" if p["hollow"] else p["color"]
        panel["summary"] = _panel_summary(panel["points"])
    every = [p for panel in panels for p in panel["points"]]
    return {
        "panels": panels,
        "series": [{"name": name, "color": colours[name]} for _, name in series],
        "baseline": any(p["shape"] == "diamond" for p in every),
        "unreliable": any(p["hollow"] for p in every),
        "runs": len({p["run"] for p in every}),
        "words": {"ttft": TTFT_TITLE, "decode": DECODE_TITLE, "unreliable": UNRELIABLE_WORDS},
    }


def _panel_summary(points: list[dict[str, Any]]) -> str:
    """One sentence for readers who do not see the chart: the span and the newest values."""
    first, last = points[0], points[-1]
    runs = len(points)
    span = first["time"][:10]
    span += "" if last["time"][:10] == span else f" to {last['time'][:10]}"
    text = f"{runs} run{'' if runs == 1 else 's'}, {span}. Newest ({last['series']}"
    text += ", unreliable)" if last["hollow"] else ")"
    values = []
    if "ttft" in last:
        values.append(f"TTFT p50 {readable(last['ttft'])} ms")
    if "decode" in last:
        values.append(f"decode p50 {readable(last['decode'])} tokens/s")
    return text + (": " + ", ".join(values) if values else "") + "."


def time_axis(points: list[dict[str, Any]]) -> tuple[str, list[int]]:
    """The x axis of a panel: a format with the year, and ticks at its first and last run.

    Dates when the runs span two days or more, else dates with the time of day.
    """
    stamps = sorted(_stamp(p["time"]) for p in points)
    fmt = "%Y-%m-%d" if (stamps[-1] - stamps[0]).total_seconds() >= 2 * 86400 else "%Y-%m-%d %H:%M"
    ticks = sorted({int(stamps[0].timestamp() * 1000), int(stamps[-1].timestamp() * 1000)})
    return fmt, ticks


def _metric(key: str, title: str, fmt: str, bottom: bool) -> alt.LayerChart:
    # Rates and durations from zero: a 5% swing looks like one.
    zero = alt.Scale(zero=True, nice=True)
    y_axis = alt.Axis(tickCount=3, domain=False, ticks=False)
    # alt.Data has no annotations (altair generates it untyped).
    base = alt.Chart().encode(
        x=alt.X(
            "time:T",
            title=X_TITLE if bottom else None,
            # UTC, like every time on the site (and independent of the build machine)
            scale=alt.Scale(type="utc", padding=14),
            axis=(
                alt.Axis(format=fmt, labelAngle=0, grid=False, labelFlush=True, values=[0])
                if bottom
                else None
            ),
        ),
        y=alt.Y(f"{key}:Q", title=None, scale=zero, axis=y_axis),
    )
    valid = f"isValid(datum.{key})"
    bars = (
        base.mark_rule(strokeWidth=1.5, opacity=0.75, aria=False)
        .encode(
            y=alt.Y(f"{key}_lo:Q", title=None, scale=zero, axis=y_axis),
            y2=f"{key}_hi:Q",
            stroke=alt.Stroke("color:N", scale=None),
        )
        .transform_filter(valid)
    )
    line = (
        base.mark_line(strokeWidth=1.5, aria=False)
        .encode(stroke=alt.Stroke("color:N", scale=None), detail="series:N", order="time:T")
        .transform_filter(valid)
    )
    dots = (
        base.mark_point(size=60, strokeWidth=2, opacity=1)
        .encode(
            shape=alt.Shape("shape:N", scale=None),
            fill=alt.Fill("fill:N", scale=None),
            stroke=alt.Stroke("color:N", scale=None),
            href="href:N",
            description=f"{key}_desc:N",
        )
        .transform_filter(valid)
    )
    layered = alt.layer(bars, line, dots).properties(
        width=270, height=80, title=alt.TitleParams(title, fontSize=12, fontWeight="normal")
    )
    return layered  # type: ignore[return-value]  # properties() is typed loosely in altair


def _panel_layout(fmt: str) -> alt.VConcatChart:
    chart = alt.vconcat(
        _metric("ttft", TTFT_TITLE, fmt, bottom=False),
        _metric("decode", DECODE_TITLE, fmt, bottom=True),
        data=alt.Data(values=[]),  # type: ignore[no-untyped-call]
        spacing=8,
    ).resolve_scale(x="shared")
    themed: alt.VConcatChart = charts.readable(chart)
    return themed


def _set_ticks(spec: Any, ticks: list[int]) -> None:
    """Put the panel's own tick values into every x axis of a copied template spec."""
    if isinstance(spec, dict):
        axis = spec.get("x", {}).get("axis") if isinstance(spec.get("x"), dict) else None
        if isinstance(axis, dict) and "values" in axis:
            axis["values"] = ticks
        for value in spec.values():
            _set_ticks(value, ticks)
    elif isinstance(spec, list):
        for value in spec:
            _set_ticks(value, ticks)


def panel_chart(panel: dict[str, Any]) -> dict[str, Any]:
    """One panel's spec: a template built once per time format, with the points and
    ticks put in (building an Altair chart per panel costs a third of a second)."""
    fmt, ticks = time_axis(panel["points"])
    template = charts.cached_template(("trend", fmt), lambda: _panel_layout(fmt), theme=False)
    spec = copy.deepcopy(template)
    spec["data"] = {"values": panel["points"]}
    _set_ticks(spec, ticks)
    return spec


def trend_svgs(group: Group, trend: dict[str, Any], cache: Path | None) -> list[dict[str, Any]]:
    """Each panel with its inline SVG (inside a chart batch, a placeholder the build fills)."""
    out = []
    for i, panel in enumerate(trend["panels"]):
        title = f"{panel['label']} · {panel['prompt']}"
        description = (
            f"{TTFT_TITLE} and {DECODE_TITLE[0].lower()}{DECODE_TITLE[1:]} of {panel['label']}, "
            f"prompt {panel['prompt']}, "
            f"per run over time. {panel['summary']} Each point links to its run."
        )
        svg = charts.svg_chart(panel_chart(panel), f"chart-trend-{i}", title, description, cache)
        out.append(panel | {"title": title, "svg": svg})
    return out
