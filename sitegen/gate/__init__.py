"""The publication gate: nothing leaves the archive holding a secret or personal data.

The build runs it over everything it publishes (run files, notes, logs,
imported sources and the built HTML). Any finding fails the build unless the
publisher's ``gate-allowlist.toml`` names its fingerprint with a reason.
User documentation: docs/publication-gate.md.
"""

from sitegen.gate.allowlist import AllowEntry, Allowlist, load_allowlist, parse_allowlist
from sitegen.gate.rules import ALLOWED_NETWORKS, RULES
from sitegen.gate.scan import (
    KINDS,
    Finding,
    fail_on_findings,
    fingerprint,
    format_report,
    kind_for,
    scan_bytes,
    scan_text,
    scan_tree,
)

__all__ = [
    "ALLOWED_NETWORKS",
    "KINDS",
    "RULES",
    "AllowEntry",
    "Allowlist",
    "Finding",
    "fail_on_findings",
    "fingerprint",
    "format_report",
    "kind_for",
    "load_allowlist",
    "parse_allowlist",
    "scan_bytes",
    "scan_text",
    "scan_tree",
]
