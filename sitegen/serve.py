"""``sitegen serve``: build, serve on 127.0.0.1, rebuild when the archive changes.

The server serves the output path, which the build swaps atomically, so a
reader never sees a half-written site; a failed rebuild prints its errors and
keeps serving the previous one (a build never writes into the live folder).
Only requests addressed to 127.0.0.1 or localhost at the bound port are
answered, and folders are not listed.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sitegen.build import build
from sitegen.codeversion import code_files
from sitegen.discover import MAX_WALK_DEPTH
from sitegen.exceptions import SitegenError
from sitegen.fsutil import out_key
from sitegen.layout import Layout


def fingerprint(layout: Layout) -> tuple[tuple[str, int, int], ...]:
    """(path, mtime_ns, size) of every watched file: cheap enough to poll each second."""
    seen: list[tuple[str, int, int]] = []
    # The build's own input list, so serve can never miss an input the build reads.
    for top in layout.inputs():
        seen += _stamps([top] if top.is_file() else _tree(top) if top.is_dir() else [])
    return tuple(seen)


def code_stamp() -> tuple[tuple[str, int, int], ...]:
    """(path, mtime_ns, size) of sitegen's own files: its code is read once per process."""
    return tuple(_stamps(code_files()))


def _stamps(paths: list[Path]) -> list[tuple[str, int, int]]:
    out = []
    for path in paths:
        try:
            st = path.lstat()
        except FileNotFoundError:
            continue  # removed meanwhile: its absence shows in the next poll
        out.append((str(path), st.st_mtime_ns, st.st_size))
    return out


def _tree(top: Path) -> list[Path]:
    """Every path below ``top``, sorted, at most MAX_WALK_DEPTH folders down
    (``rglob`` recurses without a bound and a hostile tree overflows it)."""
    out = []
    base = str(top).count(os.sep)
    for dirpath, dirnames, filenames in os.walk(top):
        if dirpath.count(os.sep) - base >= MAX_WALK_DEPTH:
            dirnames.clear()  # os.walk recurses too; discovery refuses such trees
        out += [Path(dirpath, name) for name in [*dirnames, *filenames]]
    return sorted(out)


class _SiteHandler(SimpleHTTPRequestHandler):
    """Serves the built site's files and nothing else.

    A request naming another host is refused (403): a page on some other
    site could otherwise point a name it controls at 127.0.0.1 (DNS
    rebinding) and read this server. Folders are never listed (404).
    """

    def send_head(self) -> Any:
        address = self.server.server_address  # (host, port): make_server binds to IPv4
        port = address[1] if isinstance(address, tuple) else None
        host = (self.headers.get("Host") or "").strip().lower()
        if host not in (f"127.0.0.1:{port}", f"localhost:{port}"):
            self.send_error(403 if host else 400, "unexpected Host header")
            return None
        return super().send_head()

    def list_directory(self, path: str | os.PathLike[str]) -> None:
        self.send_error(404, "File not found")
        return None

    def log_message(self, format: str, *args: Any) -> None:
        pass


def make_server(out: Path, port: int) -> ThreadingHTTPServer:
    """An HTTP server for ``out`` bound to loopback only (port 0 picks a free one)."""
    handler = functools.partial(_SiteHandler, directory=str(out_key(out)))
    return ThreadingHTTPServer(("127.0.0.1", port), handler)


def serve(
    archive: Path,
    *,
    out: Path | None = None,
    port: int = 8000,
    echo: Callable[[str], Any] = print,
    stop: threading.Event | None = None,
    poll_seconds: float = 1.0,
    on_ready: Callable[[int], Any] | None = None,
) -> bool:
    """Build once, then serve until interrupted (or ``stop`` is set).

    Returns True when sitegen's own code or default theme changed meanwhile:
    this process still holds the old code (and its code version), so a
    rebuild here could mix old and new pages; the caller restarts instead.
    """
    layout = Layout.of(archive, out)
    out = layout.site
    build(layout, echo=echo)
    server = make_server(out, port)
    actual = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    echo(f"serving {out} at http://127.0.0.1:{actual}/ (Ctrl-C to stop)")
    if on_ready:
        on_ready(actual)
    stop = stop or threading.Event()
    last = fingerprint(layout)
    code = code_stamp()
    try:
        while not stop.wait(poll_seconds):
            if code_stamp() != code:
                echo("sitegen's own code changed; restarting to build with it")
                return True
            current = fingerprint(layout)
            if current == last:
                continue
            last = current
            echo("change detected, rebuilding")
            try:
                build(layout, echo=echo)
            except SitegenError as exc:
                for line in str(exc).splitlines():
                    echo(f"error: {line}")
                echo("rebuild failed; still serving the previous site")
    finally:
        server.shutdown()
        server.server_close()
    return False
