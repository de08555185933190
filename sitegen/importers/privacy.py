"""Refuse source files that carry private data.

The source file is published byte-for-byte next to the run, so it cannot be
cleaned on the way in. It is scanned with the archive's publication gate
(the same rules and the same ``gate-allowlist.toml`` the build applies:
addresses, ``user@host``, home folders of named users, credentials), plus
two checks only the structure shows: a field named like a host name, or like
a secret, holding a value. Each finding is reported with its line, column and
JSON pointer, and the publisher cleans the file (or allowlists a false alarm)
before importing again.

Absolute paths outside home folders (``/models/m.gguf``, ``/tmp/x``) are not
refused; the generated files carry only their last component.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sitegen.exceptions import Problem
from sitegen.gate.allowlist import load_allowlist
from sitegen.gate.scan import Finding, scan_bytes, scan_text
from sitegen.layout import Layout
from sitegen.schema import pointer

from .base import Document

_HOST_KEYS = {"hostname", "host_name", "host", "fqdn", "node_name", "nodename"}
_SECRET_KEYS = re.compile(
    r"(?i)^(api[_-]?key|access[_-]?token|auth[_-]?token|hf[_-]?token|token|password|passwd|"
    r"secret|client[_-]?secret|authorization)$"
)
_HARMLESS_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0", ""}
ADVICE = "the source file is published byte-for-byte: clean it and import again"


def _strings(value: Any, path: list[str | int]) -> Iterator[tuple[list[str | int], str]]:
    """Every key and string value with the pointer path that leads to it."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield [*path, key], key
            yield from _strings(item, [*path, key])
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, [*path, index])
    elif isinstance(value, str):
        yield path, value


def _field_findings(data: Any) -> list[tuple[list[str | int], str]]:
    """Host-name and secret fields, which no text pattern can recognise."""
    found: list[tuple[list[str | int], str]] = []

    def walk(value: Any, path: list[str | int]) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                here = [*path, key]
                if isinstance(item, str) and item.strip().lower() not in _HARMLESS_HOSTS:
                    if key.lower() in _HOST_KEYS:
                        found.append((here, "holds a host name"))
                    elif _SECRET_KEYS.match(key):
                        found.append((here, "holds a secret (password, key or token)"))
                walk(item, here)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, [*path, index])

    walk(data, [])
    return found


def _locate(findings: list[Finding], data: Any) -> dict[str, str]:
    """Fingerprint -> JSON pointer of the string that holds it (when one does)."""
    wanted = {f.fingerprint for f in findings}
    where: dict[str, str] = {}
    for path, text in _strings(data, []):
        for hit in scan_text(text, "-"):
            if hit.fingerprint in wanted and hit.fingerprint not in where:
                where[hit.fingerprint] = pointer(path)
        if len(where) == len(wanted):
            break
    return where


def privacy_problems(doc: Document, archive_root: Path) -> list[Problem]:
    """Every private value in the source, located by line, column and pointer."""
    allowlist = load_allowlist(Layout.of(archive_root))
    findings = sorted(allowlist.filter(scan_bytes(doc.raw, doc.display)))
    problems: list[Problem] = []
    if findings:
        rows = doc.data if doc.rows_lines is not None else [doc.data]
        where: dict[str, str] = {}
        for row in rows:
            where.update({k: v for k, v in _locate(findings, row).items() if k not in where})
        for f in findings:
            place = f"{where[f.fingerprint]}: " if f.fingerprint in where else ""
            message = f"{place}[{f.rule}] {f.redacted}; {ADVICE} (or allowlist it)"
            problems.append(Problem(doc.display, f.line, f.column, message))
    fields: list[tuple[int | None, list[str | int], str]]
    if doc.rows_lines is None:
        fields = [(None, path, what) for path, what in _field_findings(doc.data)]
    else:
        fields = [
            (line, path, what)
            for row, line in zip(doc.data, doc.rows_lines, strict=True)
            for path, what in _field_findings(row)
        ]
    for line, path, what in fields:
        problems.append(Problem(doc.display, line, None, f"{pointer(path)}: {what}; {ADVICE}"))
    return problems
