"""A static host for browser tests: a built site served on 127.0.0.1 the way GitHub
Pages serves one, under its base URL's path, with 404.html for any missing address."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit


class Pages(SimpleHTTPRequestHandler):
    """The site under ``prefix``; 404.html's bytes (status 404) for what is not a file."""

    prefix = "/"
    asked: list[str] | None = None  # when a list: every path requested, in order

    def translate_path(self, path: str) -> str:
        path = urlsplit(path).path
        if self.asked is not None:
            self.asked.append(unquote(path))
        if not path.startswith(self.prefix):
            return str(Path(self.directory) / "no such file")
        return super().translate_path("/" + path[len(self.prefix) :])

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        body = (Path(self.directory) / "404.html").read_bytes()
        self.send_response(404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def static_host(folder: Path, prefix: str, asked: list[str] | None = None) -> Iterator[str]:
    """``folder`` served at ``prefix``; yields the site's URL. ``asked``, when given,
    collects every path requested (what the browser fetched out of Playwright's sight)."""
    handler = type("Pages", (Pages,), {"prefix": prefix, "asked": asked})
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(folder))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}{prefix}"
    finally:
        server.shutdown()
        server.server_close()
