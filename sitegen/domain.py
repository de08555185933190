"""The archive as the pipeline's later steps see it: one typed value, defined
below every module that consumes it (the relational export, the downloads,
the renderer), so none of them imports the build to name it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sitegen.jsonio import Encoded, dumps_items_cached

if TYPE_CHECKING:
    from sitegen.aggregate import RowsByRun
    from sitegen.archive import Run
    from sitegen.buildstate import BuildState
    from sitegen.callstore import Calls
    from sitegen.compare import Comparisons
    from sitegen.config import Config
    from sitegen.exceptions import Problem
    from sitegen.gate.allowlist import Allowlist
    from sitegen.gate.findings_cache import ScanCache
    from sitegen.layout import Layout
    from sitegen.verdicts import Sample


@dataclass
class Loaded:
    """The archive after reading, validation, the reproducibility check and aggregation."""

    layout: Layout  # where everything of this archive lives (sitegen.layout)
    config: Config
    runs: list[Run]
    left_out: dict[str, list[Problem]]
    checks: dict[str, dict[str, Any]]
    calls: Calls  # read by run (sitegen.callstore)
    rows: RowsByRun  # run id -> its aggregate rows, made when asked (sitegen.aggregate)
    catalogue: dict[str, Any]
    lock: dict[str, Any]
    allowlist: Allowlist
    gate_cache: ScanCache
    state: BuildState  # every derived artefact, kept between builds (sitegen.buildstate)
    # run id -> its verdicts against its baselines (sitegen.compare), from the calls.
    comparisons: Comparisons
    # run id -> (cell, prompt) -> its warm calls' values: what the verdicts (and the
    # compare page's samples.json) are computed from (sitegen.compare.samples_by_run).
    samples: Mapping[str, Mapping[tuple[str, str], Sample]] = field(default_factory=dict)
    # the build-state key of each catalogue entry, in the catalogue's order
    # (sitegen.catalogue.build_catalogue); empty when there is no build state
    entry_keys: list[str] = field(default_factory=list)

    @cached_property
    def _catalogue_encoded(self) -> Encoded:
        # each run's entry is encoded once and kept in the build state
        memo = self.state.memo("catalogue-entries")
        encoded = dumps_items_cached(self.catalogue, "runs", memo, self.entry_keys or None)
        memo.release()  # read once a build
        return encoded

    @cached_property
    def catalogue_json(self) -> bytes:
        """``catalogue.json``'s bytes: written to the archive and to the site, and keyed
        by pages; one encoding per build, of the entries that changed."""
        return self._catalogue_encoded.data

    @cached_property
    def entry_digests(self) -> dict[str, str]:
        """run id -> sha256 of its catalogue entry's text: what a page showing it is keyed by."""
        runs = self.catalogue["runs"]
        return {e["id"]: d for e, d in zip(runs, self._catalogue_encoded.item_digests, strict=True)}

    @property
    def catalogue_cuts(self) -> list[int]:
        """Where each run's entry ends in ``catalogue_json``: the gate's chunks are cut there."""
        return self._catalogue_encoded.item_ends

    @property
    def archive(self) -> Path:
        """The archive's root folder, as the user gave it."""
        return self.layout.root
