"""The publisher's exemptions: ``gate-allowlist.toml`` at the archive root.

Exemptions live in one file the publisher owns, never inside run files: a
run file is data from a machine, and a comment in it saying "allow" is
exactly what a leak would look like. Each entry names one finding by its
fingerprint and says why it is safe to publish.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sitegen.exceptions import ConfigError, Problem
from sitegen.layout import Layout

if TYPE_CHECKING:
    from sitegen.gate.scan import Finding

_FINGERPRINT = re.compile(r"[0-9a-f]{64}")
_ENTRY_HEADER = re.compile(r"^[ \t]*\[\[[ \t]*allow[ \t]*\]\]", re.MULTILINE)
_TOML_POSITION = re.compile(r"\(at line (\d+), column (\d+)\)")
_ENTRY_KEYS = frozenset({"fingerprint", "reason"})


@dataclass(frozen=True)
class AllowEntry:
    """One exemption: a fingerprint, the publisher's reason, and where it was written."""

    fingerprint: str
    reason: str
    line: int


class Allowlist:
    """Fingerprints the publisher has declared safe to publish.

    Also remembers which entries suppressed something, so a build can warn
    about stale entries (:meth:`unused`).
    """

    def __init__(self, entries: Iterable[AllowEntry] = (), source: Path | None = None):
        self.source = source
        self._entries = {e.fingerprint: e for e in entries}
        self._used: set[str] = set()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, fingerprint: object) -> bool:
        return fingerprint in self._entries

    @property
    def entries(self) -> list[AllowEntry]:
        return sorted(self._entries.values(), key=lambda e: e.line)

    def allows(self, finding: Finding) -> bool:
        """True when ``finding``'s fingerprint has an entry (and mark it used)."""
        if finding.fingerprint in self._entries:
            self._used.add(finding.fingerprint)
            return True
        return False

    def filter(self, findings: Iterable[Finding]) -> list[Finding]:
        """The findings no entry covers."""
        return [f for f in findings if not self.allows(f)]

    def unused(self) -> list[AllowEntry]:
        """Entries that have suppressed nothing so far (stale once every file is scanned)."""
        return [e for e in self.entries if e.fingerprint not in self._used]


def _entry_lines(text: str, count: int, entries: list[Any]) -> list[int]:
    """Line of each entry: its ``[[allow]]`` header, else where its fingerprint is written."""
    headers = [text.count("\n", 0, m.start()) + 1 for m in _ENTRY_HEADER.finditer(text)]
    if len(headers) == count:
        return headers
    lines = []
    for entry in entries:
        line = 1
        fp = entry.get("fingerprint") if isinstance(entry, dict) else None
        if isinstance(fp, str) and fp and fp in text:
            line = text.count("\n", 0, text.index(fp)) + 1
        lines.append(line)
    return lines


def parse_allowlist(text: str, display: str) -> Allowlist:
    """Parse allowlist ``text``; every problem is reported at once as a ConfigError."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = _TOML_POSITION.search(str(exc))
        line, col = (int(m.group(1)), int(m.group(2))) if m else (None, None)
        message = _TOML_POSITION.sub("", str(exc)).strip()
        raise ConfigError([Problem(display, line, col, f"not valid TOML: {message}")]) from None
    problems: list[Problem] = []
    for key in data:
        if key != "allow":
            problems.append(
                Problem(display, 1, None, f"unknown key {key!r}; entries go in [[allow]] tables")
            )
    raw_entries = data.get("allow", [])
    if not isinstance(raw_entries, list):
        problems.append(Problem(display, 1, None, "'allow' must be a list of [[allow]] tables"))
        raw_entries = []
    lines = _entry_lines(text, len(raw_entries), raw_entries)
    entries: list[AllowEntry] = []
    first_line: dict[str, int] = {}
    for raw, line in zip(raw_entries, lines, strict=True):
        if not isinstance(raw, dict):
            problems.append(Problem(display, line, None, "an allowlist entry must be a table"))
            continue
        for key in sorted(set(raw) - _ENTRY_KEYS):
            problems.append(
                Problem(
                    display,
                    line,
                    None,
                    f"unknown field {key!r}; an entry has fingerprint and reason",
                )
            )
        fp = raw.get("fingerprint")
        reason = raw.get("reason")
        ok = True
        if not isinstance(fp, str) or not _FINGERPRINT.fullmatch(fp.strip().lower()):
            problems.append(
                Problem(
                    display,
                    line,
                    None,
                    "fingerprint must be 64 hex digits (sha256 of 'rule:matched text')",
                )
            )
            ok = False
        if not isinstance(reason, str) or not reason.strip():
            problems.append(
                Problem(
                    display,
                    line,
                    None,
                    "allowlist entry has no reason; say why this finding is safe to publish",
                )
            )
            ok = False
        if not ok or not isinstance(fp, str) or not isinstance(reason, str):
            continue  # (ok already implies both are strings; the tests narrow their types)
        fp = fp.strip().lower()
        if fp in first_line:
            problems.append(
                Problem(
                    display, line, None, f"fingerprint already allowed at line {first_line[fp]}"
                )
            )
            continue
        first_line[fp] = line
        entries.append(AllowEntry(fp, reason.strip(), line))
    if problems:
        raise ConfigError(problems)
    return Allowlist(entries)


def load_allowlist(layout: Layout) -> Allowlist:
    """Read the archive's ``gate-allowlist.toml``; a missing file is an empty allowlist."""
    path = layout.allowlist
    display = str(path)
    if not path.exists() and not path.is_symlink():
        return Allowlist(source=None)
    if not path.is_file():
        raise ConfigError([Problem(display, None, None, "must be a regular file")])
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [Problem(display, None, None, f"not UTF-8 text ({exc.reason})")]
        ) from None
    except OSError as exc:
        raise ConfigError(
            [Problem(display, None, None, f"cannot read: {exc.strerror or exc}")]
        ) from None
    allowlist = parse_allowlist(text, display)
    allowlist.source = path
    return allowlist
