"""Search: Pagefind indexes run, model, node and engine pages after the HTML is
written; a failure keeps the previous site. (Searching itself: test_browser.py.)"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from sitegen import search
from sitegen.build import build
from sitegen.exceptions import BuildError

ROOT = Path(__file__).resolve().parent.parent


def test_index_is_written_for_run_and_group_pages_only(tmp_path, write_run):
    write_run()
    build(tmp_path)
    site = tmp_path / "site"
    bundle = site / "pagefind"
    assert (bundle / "pagefind.js").is_file() and (bundle / "pagefind-entry.json").is_file()
    assert not any((bundle / name).exists() for name in search.UNUSED)
    assert "data-pagefind-body" in (site / "runs" / "r1" / "index.html").read_text()
    assert "data-pagefind-body" in (site / "models" / "m1" / "index.html").read_text()
    assert "data-pagefind-body" not in (site / "index.html").read_text()
    entry = (bundle / "pagefind-entry.json").read_text()
    assert '"page_count":4' in entry  # the run, its model, node and engine


def test_search_can_be_switched_off(tmp_path, write_run):
    write_run()
    (tmp_path / "sitegen.toml").write_text("[site]\nsearch = false\n")
    build(tmp_path)
    assert not (tmp_path / "site" / "pagefind").exists()
    assert (tmp_path / "site" / "runs" / "r1" / "index.html").is_file()


def test_a_failing_indexer_fails_the_build_and_keeps_the_previous_site(
    tmp_path, write_run, monkeypatch
):
    write_run()
    build(tmp_path)
    before = (tmp_path / "site" / "index.html").read_bytes()
    write_run("r2")
    monkeypatch.setattr(
        search,
        "pagefind_command",
        lambda site: [sys.executable, "-c", "import sys; sys.exit('indexer exploded')"],
    )
    with pytest.raises(BuildError, match="search indexing \\(pagefind\\) failed: indexer exploded"):
        build(tmp_path)
    assert (tmp_path / "site" / "index.html").read_bytes() == before


def test_github_pages_example_builds_and_uploads_a_plain_folder():
    workflow = yaml.safe_load((ROOT / "docs" / "examples" / "github-pages.yml").read_text())
    steps = workflow["jobs"]["build"]["steps"]
    script = "\n".join(s.get("run", "") for s in steps)
    assert "sitegen build . --out public" in script and "cp -rL public _site" in script
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-pages"))
    assert upload["with"]["path"] == "_site"
    assert workflow["permissions"] == {"contents": "read", "pages": "write", "id-token": "write"}
