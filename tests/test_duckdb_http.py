"""The Parquet downloads read in place over HTTP by DuckDB, as docs/data.md shows.

A researcher points DuckDB at the published file's URL; DuckDB's httpfs
extension reads the footer and then only the byte ranges it needs, with HTTP
Range requests. Python's SimpleHTTPRequestHandler (and so `sitegen serve`)
ignores Range, so the site is served here by a handler that honours it, as
static hosts do.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

import pytest
from conftest import generate_archive

from sitegen.build import build

duckdb = pytest.importorskip("duckdb")
httpfs = pytest.importorskip("duckdb_extension_httpfs")

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _handler(site: Path) -> type[BaseHTTPRequestHandler]:
    class RangeHost(BaseHTTPRequestHandler):
        """Files of ``site`` with single-range support; logs each request's Range."""

        seen: ClassVar[list[tuple[str, str, str | None]]] = []  # (method, path, Range)

        def _send(self, head_only: bool) -> None:
            path = unquote(urlsplit(self.path).path).lstrip("/")
            self.seen.append((self.command, path, self.headers.get("Range")))
            file = (site / path).resolve()
            if not file.is_relative_to(site) or not file.is_file():
                self.send_error(404)
                return
            data = file.read_bytes()
            size, status = len(data), 200
            start, end = 0, len(data) - 1
            match = _RANGE.match(self.headers.get("Range") or "")
            if match and (match.group(1) or match.group(2)):
                if match.group(1):
                    start = int(match.group(1))
                    end = min(int(match.group(2) or size - 1), size - 1)
                else:  # the last N bytes
                    start = max(size - int(match.group(2)), 0)
                if start >= size or start > end:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.end_headers()
                    return
                status = 206
            body = data[start : end + 1]
            self.send_response(status)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Type", "application/octet-stream")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.end_headers()
            if not head_only:
                self.wfile.write(body)

        def do_GET(self) -> None:
            self._send(head_only=False)

        def do_HEAD(self) -> None:
            self._send(head_only=True)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return RangeHost


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("archive")
    # Enough calls that the Parquet file has real data pages beyond its footer.
    generate_archive.generate(root, 12, warm=20, cells=3, prompts=3, seed=7)
    build(root)
    return root


@pytest.fixture(scope="module")
def served(archive: Path) -> Iterator[tuple[str, Any]]:
    handler = _handler((archive / "site").resolve())
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", handler
    finally:
        server.shutdown()
        server.server_close()


def _connect() -> Any:
    """DuckDB with httpfs from the PyPI package: nothing is downloaded."""
    found = sorted(Path(httpfs.__file__).parent.glob("extensions/*/httpfs.duckdb_extension"))
    if not found:
        pytest.skip("duckdb-extension-httpfs ships no extension file")
    con = duckdb.connect()
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.load_extension(str(found[-1]))
    return con


def test_duckdb_counts_the_calls_over_http_with_range_requests(archive: Path, served):
    base, handler = served
    catalogue = json.loads((archive / "catalogue.json").read_text(encoding="utf-8"))
    expected = sum(run["counts"]["calls"] for run in catalogue["runs"])
    assert expected > 500
    handler.seen.clear()
    con = _connect()
    # The query of docs/data.md, against the served site.
    (count,) = con.execute(
        f"SELECT count(*) FROM read_parquet('{base}data/calls.parquet')"
    ).fetchone()
    assert count == expected
    reads = [r for r in handler.seen if r[1] == "data/calls.parquet" and r[0] == "GET"]
    assert reads and all(r[2] for r in reads), reads  # every GET asked for a byte range
    size = (archive / "site" / "data" / "calls.parquet").stat().st_size
    assert not any(r[2] in (None, f"bytes=0-{size - 1}") for r in reads)


def test_duckdb_over_http_returns_the_published_aggregates(archive: Path, served):
    base, _handler_class = served
    con = _connect()
    query = (
        "SELECT run_id, cell_id, prompt_id, first_delta_ms_p50, tokens_per_sec_mean "
        "FROM '{}' WHERE phase = 'warm' ORDER BY ALL"
    )
    remote = con.execute(query.format(f"{base}data/aggregates.parquet")).fetchall()
    local = con.execute(query.format(archive / "site" / "data" / "aggregates.parquet")).fetchall()
    assert len(remote) > 50
    assert remote == local
