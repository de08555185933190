"""The one map of an archive: every path sitegen reads or writes under it.

Resolved once, where a command starts (from the archive root and ``--out``),
then passed down; no other module knows a file name of the archive's layout.
Paths keep the form the user typed (relative stays relative), so messages
name them as the user knows them; code that must tell two folders apart
compares them by device and inode (sitegen.fsutil.out_key), never by text.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

RUNS = "runs"
TEMPLATES = "templates"
SETTINGS_FILE = "sitegen.toml"
ALLOWLIST = "gate-allowlist.toml"
RETRACTIONS = "retractions.toml"
METHODOLOGY = "methodology.md"
LOCK = "runs.lock"
CATALOGUE = "catalogue.json"
SITE = "site"
CACHE = ".sitegen-cache"
BUILD_LOCK = ".sitegen-build.lock"
LEDGERS = "ledgers"  # the runner's in-progress ledgers, before packaging

# Everything the publisher edits that can change the output: what the build
# fingerprints, what `sitegen serve` watches, what `--out` may never touch.
INPUTS = (RUNS, TEMPLATES, SETTINGS_FILE, ALLOWLIST, RETRACTIONS, METHODOLOGY)
# Written by the build itself beside the inputs.
OUTPUTS = (CATALOGUE, LOCK)
# What `--out` may never be, hold or sit inside (besides the archive folder itself).
PROTECTED = (*INPUTS, *OUTPUTS, CACHE, BUILD_LOCK, ".git")


@dataclass(frozen=True)
class Layout:
    """Where each part of one archive lives, and where its site is written."""

    root: Path
    site: Path  # the output folder: ``--out`` as typed, else ``<root>/site``
    site_given: bool = False  # True when ``--out`` named it

    @classmethod
    def of(cls, archive: Path | str | Layout, out: Path | str | None = None) -> Layout:
        """The layout of ``archive`` (a Layout passes through, ``out`` overriding its site)."""
        if isinstance(archive, Layout):
            return archive if out is None else cls(archive.root, Path(out), True)
        root = Path(archive)
        if out is None:
            return cls(root, root / SITE, False)
        return cls(root, Path(out), True)

    @property
    def runs(self) -> Path:
        return self.root / RUNS

    def run(self, run_id: str) -> Path:
        return self.root / RUNS / run_id

    @property
    def templates(self) -> Path:
        return self.root / TEMPLATES

    @property
    def settings(self) -> Path:
        return self.root / SETTINGS_FILE

    @property
    def allowlist(self) -> Path:
        return self.root / ALLOWLIST

    @property
    def retractions(self) -> Path:
        return self.root / RETRACTIONS

    @property
    def methodology(self) -> Path:
        return self.root / METHODOLOGY

    @property
    def lock(self) -> Path:
        return self.root / LOCK

    @property
    def catalogue(self) -> Path:
        return self.root / CATALOGUE

    @property
    def cache(self) -> Path:
        return self.root / CACHE

    @property
    def build_lock(self) -> Path:
        return self.root / BUILD_LOCK

    @property
    def ledgers(self) -> Path:
        return self.root / LEDGERS

    @property
    def last_build(self) -> Path:
        """What the last successful build was made from (sitegen.state)."""
        return self.cache / "last-build.json"

    @property
    def charts_cache(self) -> Path:
        return self.cache / "charts"

    @property
    def search_cache(self) -> Path:
        return self.cache / "search"

    @property
    def copies_cache(self) -> Path:
        """The run files, one copy of each content, that staged sites link to."""
        return self.cache / "copies"

    @property
    def check_scratch(self) -> Path:
        """Where ``sitegen check`` renders a site it then deletes."""
        return self.cache / "check"

    def inputs(self) -> tuple[Path, ...]:
        return tuple(self.root / name for name in INPUTS)

    def outputs(self) -> tuple[Path, ...]:
        return tuple(self.root / name for name in OUTPUTS)

    def shown(self, path: Path) -> str:
        """``path`` as the publisher knows it: relative to the archive when inside it."""
        try:
            return str(path.relative_to(self.root)) if self.root != Path() else str(path)
        except ValueError:
            return str(path)
