"""Site search with Pagefind, run on the staging folder once every page is written.

Pagefind indexes only the pages that mark their content ``data-pagefind-body``
(run, model, node and engine pages) and writes its index and its WebAssembly
search engine to ``pagefind/``. The site's own ``assets/search.js`` drives it,
so Pagefind's UI bundles are removed. Pagefind's output depends only on the
HTML it reads (names are content hashes, no timestamps), which keeps builds
byte-identical; the build's determinism test covers it.

Search fetches files, so it works when the site is served over http (``sitegen
serve`` or any static host); from file:// the page says so, and the run
table's filter still works.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from sitegen.exceptions import BuildError

BUNDLE = "pagefind"
# Pagefind's own UI: not used (assets/search.js talks to pagefind.js directly).
UNUSED = (
    "pagefind-ui.js",
    "pagefind-ui.css",
    "pagefind-component-ui.js",
    "pagefind-component-ui.css",
    "pagefind-modular-ui.js",
    "pagefind-modular-ui.css",
    "pagefind-highlight.js",
)
TIMEOUT_S = 600


def pagefind_command(site: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pagefind",
        "--site",
        str(site),
        "--output-subdir",
        BUNDLE,
        "--keep-index-url",
        "--force-language",
        "en",
        "--silent",
    ]


def index_site(site: Path) -> None:
    """Write the search index into ``site/pagefind``; a failure is a BuildError."""
    try:
        result = subprocess.run(
            pagefind_command(site),
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BuildError(f"search indexing (pagefind) took longer than {TIMEOUT_S} s") from None
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        hint = " (is pagefind installed? pip install 'pagefind[bin]')"
        raise BuildError(
            "search indexing (pagefind) failed: " + ("; ".join(detail[-5:]) or hint.strip())
        )
    bundle = site / BUNDLE
    if not (bundle / "pagefind.js").is_file():
        raise BuildError("search indexing (pagefind) wrote no pagefind/pagefind.js")
    for name in UNUSED:
        (bundle / name).unlink(missing_ok=True)
    shutil.rmtree(bundle / "playground", ignore_errors=True)
