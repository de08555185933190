"""Keep endpoint addresses and local paths out of everything the runner writes.

A published run names nodes (``devbox``, ``pavilion``), never ``10.8.0.3:11436``
or ``/home/me/models/x.gguf``. Servers echo both back (llama.cpp's
``model_path``, Ollama's ``modelfile``, httpx error messages quoting the URL),
so every string headed for the ledger, probes, metadata or the log passes
through a :class:`Scrubber` first.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# An absolute POSIX path with at least one directory, or a Windows drive path.
_ABS_PATH = re.compile(
    r"(?<![\w.:/>-])(?:/(?:[^\s/\"'<>|`]+/)+|[A-Za-z]:\\(?:[^\s\\\"'<>|`]+\\)+)([^\s/\\\"'<>|`]*)"
)
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?(?![\w.])")
_IPV6_BRACKET = re.compile(r"\[[0-9A-Fa-f:.]+\](?::\d{1,5})?")
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s\"'<>]+", re.IGNORECASE)


class Scrubber:
    """Replace known endpoints with node names and strip paths and addresses."""

    def __init__(self, endpoints: Iterable[tuple[str, str]] = (), extra: Iterable[str] = ()):
        """``endpoints``: (url, node) pairs; ``extra``: literal strings to remove."""
        pairs: list[tuple[str, str]] = []
        for url, node in endpoints:
            parts = urlsplit(url)
            base = f"{parts.scheme}://{parts.netloc}"
            pairs.append((base, f"<{node}>"))
            if parts.netloc:
                pairs.append((parts.netloc, f"<{node}>"))
            if parts.hostname and parts.hostname not in ("localhost",):
                pairs.append((parts.hostname, f"<{node}>"))
        for text in extra:
            if text:
                pairs.append((text, "<redacted>"))
        # Longest first so "http://h:1/" wins over "h".
        self._pairs = sorted(set(pairs), key=lambda p: -len(p[0]))
        home = str(Path.home())
        self._dirs = sorted(
            {d for d in (home, tempfile.gettempdir(), str(Path.cwd())) if d and d != "/"},
            key=len,
            reverse=True,
        )

    def text(self, value: str) -> str:
        """Scrub one string."""
        for literal, replacement in self._pairs:
            if literal in value:
                value = value.replace(literal, replacement)
        value = _URL.sub(_url_to_path, value)
        value = _ABS_PATH.sub(lambda m: m.group(1) or "<path>", value)
        for directory in self._dirs:
            if directory in value:
                value = value.replace(directory, "<path>")
        value = _IPV6_BRACKET.sub("<addr>", value)
        value = _IPV4.sub("<addr>", value)
        return value

    def obj(self, value: Any) -> Any:
        """Scrub every string inside a JSON-like value (keys included)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.obj(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.obj(v) for v in value]
        return value


def _url_to_path(match: re.Match[str]) -> str:
    """A URL that survived the endpoint replacement keeps only its path."""
    parts = urlsplit(match.group(0))
    return "<url>" + (parts.path or "")


def basename(path: str | None) -> str | None:
    """The last component of a local path (either separator), or None."""
    if not path:
        return None
    return re.split(r"[\\/]", path.rstrip("/\\"))[-1] or None
