"""The one page-context object every page module renders from.

``SiteData`` is what the pipeline hands to rendering; ``Context`` adds what
several pages share and is computed once per build: the Jinja environment,
the output set, the groups and their URLs, each run's key digests and the
salts every page key starts from.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment

from sitegen.aggregate import RowsByRun
from sitegen.archive import Run
from sitegen.buildstate import BuildState, Memo
from sitegen.codeversion import methodology_default
from sitegen.compare import Comparisons, Outline
from sitegen.config import Config, defaults
from sitegen.downloads import Download
from sitegen.groups import Group, Locator, build_groups
from sitegen.jsonio import dumps
from sitegen.layout import Layout
from sitegen.output import Outputs
from sitegen.pages.theme import code_digest
from sitegen.reuse import Previous, digest
from sitegen.verdicts import MIXED, REGRESSION, WIN, Sample, Settings


@dataclass(frozen=True)
class SiteData:
    """Everything the renderer needs, as plain data computed earlier in the pipeline."""

    layout: Layout  # where the templates and methodology are (sitegen.layout)
    catalogue: dict[str, Any]
    runs: dict[str, Run]
    checks: dict[str, dict[str, Any]]
    rows: RowsByRun  # made into dictionaries a run at a time, when a page asks
    chart_cache: Path | None
    config: Config = field(default_factory=defaults)
    files: tuple[Download, ...] = ()  # everything under data/ (sitegen.downloads)
    catalogue_json: bytes = b""  # the catalogue in its canonical form, when already made
    # run id -> sha256 of its entry's text in catalogue_json (made with it)
    entry_digests: dict[str, str] = field(default_factory=dict)
    progress: Callable[[str], Any] | None = None  # told how rendering goes, on long builds
    previous: Previous | None = None  # the live build, whose unchanged files are reused
    spool: Path | None = None  # where rendered pages wait for staging (None: in memory)
    comparisons: Comparisons = field(default_factory=lambda: Comparisons.of({}))
    # run id -> (cell, prompt) -> warm calls (sitegen.compare.samples_by_run)
    samples: Mapping[str, Mapping[tuple[str, str], Sample]] = field(default_factory=dict)
    # The build state (rows of run texts; run files are linked from copies it indexes,
    # when it is kept on disk).
    state: BuildState = field(default_factory=lambda: BuildState(None))

    @property
    def archive(self) -> Path:
        return self.layout.root


@dataclass(frozen=True)
class Context:
    """What the pages of one build share, computed once."""

    data: SiteData
    env: Environment
    outputs: Outputs
    archive_info: dict[str, Any]  # the catalogue's "archive" object
    methodology_text: str
    # Every page key starts from ``salt``: code, theme, settings, the archive's own
    # texts. ``whole`` adds the catalogue bytes, which name every run with its
    # content digest: it keys the pages that depend on the whole archive.
    salt: str
    whole: str
    catalogue_bytes: bytes
    entries: list[dict[str, Any]]  # catalogue runs, newest first
    by_id: dict[str, dict[str, Any]]
    groups: dict[str, list[Group]]
    locator: Locator  # the group page of each run's cell, per kind (exact for models)
    comparisons: Comparisons  # sitegen.compare: outlines at hand, rows decoded when asked
    thresholds: Settings
    per_page: int
    charted: set[str]  # runs whose pages get charts (the newest site.run_charts)
    # Digests of each run's catalogue entry and comparison, computed once: the
    # keys of every page that shows a run are made from these.
    entry_keys: dict[str, str]
    comparison_keys: dict[str, str]
    # What a run page shows besides its tables (its citation: text, BibTeX, and a CFF
    # document checked against its schema; its publisher's note, made from run.md),
    # kept in the build state by its entry's digest and the archive's: together about
    # 1.2 ms a run, a quarter of the page, which a build of every page made again.
    run_texts: Memo
    archive_key: str

    def run_texts_key(self, run_id: str) -> str:
        return f"{self.entry_keys[run_id]}:{self.archive_key}"

    def page(self, rel: str, template: str, key: str, **values: Any) -> None:
        """One page from one template, rendered only when ``key`` is new."""
        self.outputs.cached(
            rel,
            digest([key, rel, template]),
            lambda: self.env.get_template(template).render(archive=self.archive_info, **values),
        )

    def block_key(self, values: dict[str, Any], listed: str, ids: list[str]) -> str:
        """The key of a block page: its values, with the runs it lists (``values[listed]``)
        stood in for by their entries' and comparisons' digests."""
        runs = [(self.entry_keys[i], self.comparison_keys.get(i)) for i in ids]
        rest = {k: v for k, v in values.items() if k not in (listed, "page")}
        page = dataclasses.replace(values["page"], items=ids)  # the page, less its items
        return digest([self.salt, rest, page, runs])

    def newest_first(self) -> list[tuple[str, Outline]]:
        """The runs that have a comparison, newest first, with its outline."""
        outline = self.comparisons.outline
        return [(e["id"], o) for e in self.entries if (o := outline(e["id"])) is not None]

    def change_counts(self) -> dict[str, int]:
        """The verdict counts the front page and the changes page both show."""
        outlines = list(self.comparisons.outlines())
        return {
            "compared": sum(o.rows for o in outlines),
            "regressions": sum(o.verdicts.get(REGRESSION, 0) for o in outlines),
            "wins": sum(o.verdicts.get(WIN, 0) for o in outlines),
            "mixed": sum(o.verdicts.get(MIXED, 0) for o in outlines),
            "unflagged": sum(o.unflagged for o in outlines),
            "not_comparable": sum(o.not_comparable for o in outlines),
            "runs": sum(1 for o in outlines if o.rows),
        }


def make_context(data: SiteData, env: Environment, outputs: Outputs) -> Context:
    entries = data.catalogue["runs"]
    groups = build_groups(entries, data.runs)
    comparisons = data.comparisons
    entry_keys = data.entry_digests or {e["id"]: digest(e) for e in entries}
    archive_info = data.catalogue["archive"]
    methodology = data.layout.methodology
    if not methodology.is_file():
        methodology = methodology_default()
    methodology_text = methodology.read_text(encoding="utf-8")
    salt = digest(
        [code_digest(data.layout.templates), archive_info, data.config.values, methodology_text]
    )
    catalogue_bytes = data.catalogue_json or dumps(data.catalogue).encode("utf-8")
    # Whether pages offer the search box (base.html); the setting is in the salt.
    env.globals["search"] = bool(data.config.get("site.search"))
    return Context(
        data=data,
        env=env,
        outputs=outputs,
        archive_info=archive_info,
        methodology_text=methodology_text,
        salt=salt,
        whole=digest([salt, hashlib.sha256(catalogue_bytes).hexdigest()]),
        catalogue_bytes=catalogue_bytes,
        entries=entries,
        by_id={e["id"]: e for e in entries},
        groups=groups,
        locator=Locator(groups),
        comparisons=comparisons,
        thresholds=Settings.from_config(data.config),
        per_page=int(data.config.get("site.runs_per_page")),
        charted={e["id"] for e in entries[: int(data.config.get("site.run_charts"))]},
        entry_keys=entry_keys,
        comparison_keys={o.run_id: comparison_key(o, entry_keys) for o in comparisons.outlines()},
        run_texts=data.state.memo("run-texts"),
        archive_key=digest(archive_info),
    )


def comparison_key(comparison: Outline, entry_keys: dict[str, str]) -> str:
    """What a comparison is computed from: its run's entry (whose digest covers the run's
    files, so its calls), the entries of the baselines it chose, and the cells without
    one; the settings and code are in every page's salt. Hashing these instead of the
    comparison's rows saves encoding every row of every run on every build."""
    return digest(
        [
            entry_keys.get(comparison.run_id),
            [[b, entry_keys.get(b)] for b in comparison.baselines],
            comparison.without_baseline,
        ]
    )
