"""Archive settings: declared once in SETTINGS, which drives defaults, validation,
``--help``-style listings and the settings table in the docs.

The settings live in ``sitegen.toml`` at the archive root. The whole file is
validated at once and every problem is reported together, so a publisher fixes
them in one go rather than one per build.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sitegen.entities import Aliases, alias_problems
from sitegen.exceptions import ConfigError, Problem
from sitegen.layout import SETTINGS_FILE, Layout


@dataclass(frozen=True)
class Setting:
    name: str  # dotted: "<table>.<key>"
    kind: type | tuple[type, ...]
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "archive.title",
        str,
        "LLM benchmark archive",
        "Site title, used on every page and in citations.",
    ),
    Setting("archive.description", str, "", "One paragraph shown on the index page."),
    Setting(
        "archive.base_url",
        str,
        "",
        "Absolute URL the site is published at (ending in /). Used only for permalinks in "
        "citations, feeds and the sitemap; pages link to each other relatively.",
    ),
    Setting("archive.license", str, "CC-BY-4.0", "Default license of the published data."),
    Setting("archive.authors", list, [], "Archive maintainers, cited as authors."),
    Setting("archive.repository", str, "", "Public source repository of the archive (optional)."),
    Setting(
        "site.runs_per_page",
        int,
        50,
        "Runs listed per page on the index and on model, node and engine pages. The front "
        "page lists the newest; all runs are also in fixed blocks counted from the oldest "
        "(pages/1/ holds the oldest), which keep their content as the archive grows.",
        10,
        100_000,
    ),
    Setting(
        "site.run_charts",
        int,
        1000,
        "Run pages drawn with bar charts: those of the newest N runs (0: none). Older run "
        "pages show the same values in their tables only. Each chart is rendered once (about "
        "0.1 s) and cached, so this bounds the first build of a large archive.",
        0,
        1 << 40,
    ),
    Setting(
        "site.search",
        bool,
        True,
        "Build the Pagefind search index (pagefind/); search works when the site is served "
        "over http.",
    ),
    Setting(
        "data.split_calls_above",
        int,
        250_000,
        "Above this many call records, the call downloads are split into one Parquet and one "
        "CSV file per month of the runs' start (data/calls/YYYY-MM.parquet) and "
        "data/archive.sqlite leaves its calls table empty, so that adding a run rewrites "
        "small files only.",
        0,
        1 << 40,
    ),
    Setting(
        "thresholds.ttft_regression",
        float,
        0.30,
        "Warm TTFT (ttft_ms) this fraction slower than the baseline (Hodges-Lehmann "
        "ratio) is a regression, when also significant (see [compare] alpha).",
        0.0,
        10.0,
    ),
    Setting(
        "thresholds.total_regression",
        float,
        0.30,
        "Warm total time this fraction slower than the baseline is a regression, when also "
        "significant; compared only when output lengths match.",
        0.0,
        10.0,
    ),
    Setting(
        "thresholds.tps_regression",
        float,
        0.30,
        "Decode tokens/s this fraction lower than the baseline is a regression, when also "
        "significant.",
        0.0,
        1.0,
    ),
    Setting(
        "thresholds.win",
        float,
        0.30,
        "A significant improvement of at least this fraction on any metric is a win.",
        0.0,
        10.0,
    ),
    Setting(
        "thresholds.tightened",
        float,
        0.20,
        "Every regression and win threshold above, tightened to this fraction (never loosened) "
        "once both sides have [compare] tighten_at warm calls: section 7 of the harness sets "
        "30% for five calls and asks for a tighter threshold at twenty.",
        0.0,
        10.0,
    ),
    Setting(
        "thresholds.min_success_rate",
        float,
        0.95,
        "Warm success rate below this is a red flag.",
        0.0,
        1.0,
    ),
    Setting(
        "compare.alpha",
        float,
        0.01,
        "Significance level of the two-sided Mann-Whitney test: a change against the "
        "baseline is flagged only when p is at most this (and past its threshold). Also sets "
        "the confidence intervals shown, at 1 - alpha.",
        0.0001,
        0.5,
    ),
    Setting(
        "compare.min_calls",
        int,
        5,
        "Fewest warm calls each side needs before a change can be flagged; with fewer, or "
        "when no outcome at these sizes could reach alpha, the verdict is 'too few calls to "
        "tell'. At 5 vs 5 the smallest possible p is 0.0079, under the default alpha.",
        2,
        1_000_000,
    ),
    Setting(
        "compare.tighten_at",
        int,
        20,
        "Warm calls each side from which [thresholds] tightened applies instead of the "
        "five-call thresholds.",
        2,
        1_000_000,
    ),
    Setting(
        "compare.length_tolerance",
        float,
        0.05,
        "Total time is compared only when the median output lengths (completion tokens) "
        "differ by at most this fraction; otherwise it is 'not like-for-like: output length'.",
        0.0,
        10.0,
    ),
    Setting(
        "reproducibility.max_load_avg",
        float,
        4.0,
        "Highest 1-minute load average at the start of a reliable run.",
        0.0,
        1024.0,
    ),
    Setting(
        "reproducibility.max_other_cpu",
        float,
        0.25,
        "Highest share of the machine's cores that processes other than the runner and a "
        "local engine may keep busy during a reliable run (median over its calls).",
        0.0,
        1.0,
    ),
    Setting(
        "reproducibility.max_load_per_core",
        float,
        2.0,
        "Highest 1-minute load average per core during a reliable run (median over its "
        "calls; the load includes the runner and a local engine).",
        0.0,
        1024.0,
    ),
    Setting(
        "reproducibility.quiet_hours_utc",
        str,
        "",
        "Daily UTC window outside prime time, as HH:MM-HH:MM (e.g. 02:00-05:00): a run that "
        "starts and finishes inside it passes the prime-time item without an authorization. "
        "Empty: every run needs a recorded authorization or window statement.",
    ),
    *(
        Setting(
            f"aliases.{kind}",
            dict,
            {},
            f"Names of one {kind} spelled differently across runs: a table of name = canonical "
            f"name (e.g. {example}). Its runs share one {kind} page, and feeds, downloads, "
            "search and the catalogue use the canonical name; the run files keep the names "
            "they recorded. Built in: " + builtin + ".",
        )
        for kind, example, builtin in (
            (
                "node",
                '`"bench-01.lan" = "bench-01"`',
                "the importers' placeholder unknown-node is no name (pages say 'not recorded')",
            ),
            (
                "engine",
                '`"LM Studio" = "lmstudio"`',
                "llama.cpp, llama-cpp and llamacpp are llamacpp; an MLX envelope's engine is mlx",
            ),
            (
                "model",
                '`"qwen2.5-0.5b-instruct" = "qwen2.5:0.5b"`',
                "a model file's extension (.gguf, .safetensors, .bin, ...) is not part of "
                "its name; models whose digests or parameter counts differ keep separate pages",
            ),
        )
    ),
    Setting(
        "limits.max_line_bytes",
        int,
        1_048_576,
        "Longest ledger line accepted, in bytes.",
        64,
        1 << 30,
    ),
    Setting(
        "limits.max_file_bytes",
        int,
        1 << 30,
        "Largest file accepted in a run folder, in bytes.",
        1024,
        1 << 40,
    ),
)

_BY_NAME = {s.name: s for s in SETTINGS}


@dataclass(frozen=True)
class Config:
    """Validated settings; ``get("thresholds.win")`` reads one by its dotted name."""

    values: dict[str, Any]
    path: Path | None

    def get(self, name: str) -> Any:
        return self.values[name]

    @property
    def aliases(self) -> Aliases:
        """The publisher's ``[aliases.*]`` tables (sitegen.entities)."""
        return Aliases(
            {k: self.values.get(f"aliases.{k}") or {} for k in ("node", "engine", "model")}
        )

    def section(self, table: str) -> dict[str, Any]:
        prefix = table + "."
        return {k[len(prefix) :]: v for k, v in self.values.items() if k.startswith(prefix)}


def defaults() -> Config:
    return Config({s.name: s.default for s in SETTINGS}, None)


def _line_of(text: str, key: str) -> int | None:
    """Best-effort line of ``key = ...`` (tomllib reports no positions)."""
    pattern = re.compile(rf"^\s*\"?{re.escape(key)}\"?\s*=", re.MULTILINE)
    m = pattern.search(text)
    return text.count("\n", 0, m.start()) + 1 if m else None


def _entry_line(text: str, table: str, key: str | None) -> int | None:
    """The line of ``key = ...`` inside ``[table]`` (or of the header itself)."""
    header = re.compile(rf"^[ \t]*\[[ \t]*{re.escape(table)}\s*\]", re.MULTILINE)
    m = header.search(text)
    if m is None:
        return None
    start = text.count("\n", 0, m.start()) + 1
    if key is None:
        return start
    for offset, raw in enumerate(text[m.end() :].split("\n")[1:], start=1):
        if raw.lstrip().startswith("["):
            break
        if re.match(rf"^\s*(\"{re.escape(key)}\"|'{re.escape(key)}'|{re.escape(key)})\s*=", raw):
            return start + offset
    return start


def _type_name(kind: type | tuple[type, ...]) -> str:
    names = {
        str: "a string",
        int: "an integer",
        float: "a number",
        list: "a list",
        bool: "true/false",
        dict: "a table",
    }
    return names.get(kind, str(kind)) if isinstance(kind, type) else " or ".join(map(str, kind))


def _check_value(setting: Setting, value: Any) -> str | None:
    kind = setting.kind
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
        return f"expected {_type_name(kind)}, got {type(value).__name__} {value!r}"
    # value is now of the setting's kind; the isinstance tests below say which, for the types.
    if isinstance(value, list) and not all(isinstance(v, str) and v for v in value):
        return "expected a list of non-empty strings"
    number = value if isinstance(value, int | float) else None
    if setting.minimum is not None and number is not None and number < setting.minimum:
        return f"must be at least {setting.minimum}, got {value}"
    if setting.maximum is not None and number is not None and number > setting.maximum:
        return f"must be at most {setting.maximum}, got {value}"
    hours = r"([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d"
    if (
        setting.name == "reproducibility.quiet_hours_utc"
        and isinstance(value, str)
        and value
        and not re.fullmatch(hours, value)
    ):
        return f"must be HH:MM-HH:MM (UTC), got {value!r}"
    if isinstance(value, dict) and not setting.name.startswith("aliases."):
        return "expected a single value, got a table"
    if setting.name == "archive.base_url" and isinstance(value, str) and value:
        if not re.match(r"^https?://[^\s/]+(/[^\s]*)?$", value):
            return f"must be an http(s) URL, got {value!r}"
        if not value.endswith("/"):
            return f"must end with '/', got {value!r}"
    return None


def load_config(layout: Layout) -> Config:
    """Read and validate ``sitegen.toml``; a missing file means all defaults."""
    path = layout.settings
    if not path.is_file():
        return defaults()
    display = SETTINGS_FILE
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except UnicodeDecodeError as exc:
        raise ConfigError([Problem(display, None, None, f"not UTF-8: {exc.reason}")]) from None
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        line, col = (int(m.group(1)), int(m.group(2))) if m else (None, None)
        msg = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise ConfigError([Problem(display, line, col, f"invalid TOML: {msg}")]) from None

    values = {s.name: s.default for s in SETTINGS}
    problems: list[Problem] = []
    for table, entries in data.items():
        if not isinstance(entries, dict):
            problems.append(
                Problem(display, _line_of(text, table), None, f"unknown setting {table!r}")
            )
            continue
        for key, value in entries.items():
            name = f"{table}.{key}"
            setting = _BY_NAME.get(name)
            line = _line_of(text, key)
            if setting is None:
                known = ", ".join(s.name for s in SETTINGS if s.name.startswith(table + "."))
                hint = f" (known in [{table}]: {known})" if known else ""
                problems.append(Problem(display, line, None, f"unknown setting {name!r}{hint}"))
                continue
            error = _check_value(setting, value)
            if error:
                problems.append(Problem(display, line, None, f"{name}: {error}"))
            elif table == "aliases":
                found = alias_problems(key, value)
                problems += [
                    Problem(display, _entry_line(text, name, entry) or line, None, message)
                    for entry, message in found
                ]
                if not found:
                    values[name] = {k.strip(): v.strip() for k, v in sorted(value.items())}
            else:
                values[name] = float(value) if setting.kind is float else value
    if problems:
        raise ConfigError(problems)
    return Config(values, path)


# The bundled sitegen.toml's own values: an archive still showing them was
# published before the publisher made the settings theirs.
PLACEHOLDERS = {
    "archive.title": "sitegen benchmark archive",
    "archive.authors": "sitegen developers",
}
# Hosts reserved for documentation (RFC 2606): never where a site really lives.
_EXAMPLE_HOST = re.compile(r"(^|\.)example(\.(com|net|org))?$")


def placeholders(config: Config) -> list[Problem]:
    """Settings still at the bundled archive's placeholder values, located in sitegen.toml.

    ``build --strict`` fails on them; a plain build warns (see build.load).
    """
    if config.path is None:
        return []
    try:
        text = config.path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        text = ""
    found = []
    base_url = config.get("archive.base_url")
    host = (urlsplit(base_url).hostname or "") if base_url else ""
    if _EXAMPLE_HOST.search(host):
        found.append(("base_url", f"{base_url!r} is a placeholder ({host} is an example host)"))
    if config.get("archive.title") == PLACEHOLDERS["archive.title"]:
        found.append(("title", f"{config.get('archive.title')!r} is the bundled placeholder"))
    if PLACEHOLDERS["archive.authors"] in config.get("archive.authors"):
        who = PLACEHOLDERS["archive.authors"]
        found.append(("authors", f"{who!r} is the bundled placeholder"))
    return [
        Problem(SETTINGS_FILE, _line_of(text, key), None, f"archive.{key}: {why}; set your own")
        for key, why in found
    ]


def site_path(base_url: str) -> str:
    """The path part of ``base_url`` ("/bench/"); "" without a base URL.

    Pages link relatively, but the 404 page is served at any missing address,
    so its links start from this path (see templates/404.html).
    """
    if not base_url:
        return ""
    return urlsplit(base_url).path or "/"


def settings_markdown() -> str:
    """The settings table for the docs, generated from SETTINGS."""
    rows = ["| setting | default | meaning |", "| --- | --- | --- |"]
    for s in SETTINGS:
        table, key = s.name.split(".", 1)
        where = f"[{s.name}]" if s.kind is dict else f"[{table}] {key}"  # a table of its own
        rows.append(f"| `{where}` | `{s.default!r}` | {s.help} |")
    return "\n".join(rows) + "\n"
