"""Publishing corners outside the browser: the verify recipe on run pages, the
placeholder settings --strict refuses, and the 404 page's absolute links."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from conftest import ROOT

from sitegen.build import build
from sitegen.config import load_config, placeholders
from sitegen.layout import Layout
from sitegen.links import check_links

BUNDLED_TOML = (ROOT / "sitegen.toml").read_text(encoding="utf-8")
OWN_TOML = (
    '[archive]\ntitle = "Lab benchmarks"\nbase_url = "https://bench.lab.test/runs-archive/"\n'
    'authors = ["Ada Lovelace"]\n'
)


def sitegen(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a publisher types it, in the archive folder, from this checkout."""
    return subprocess.run(
        [sys.executable, "-m", "sitegen", *args],
        cwd=cwd,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_verify_recipe_on_the_run_page_prints_the_digest_the_page_shows(tmp_path, write_run):
    # Names that trip naive recipes: a nested folder sorting around a dotted
    # name, and a space.
    folder = write_run("r1", run__md="# Notes\n", run__log="log line\n")
    (folder / "source").mkdir()
    (folder / "source" / "orig data.json").write_text("{}\n")
    (folder / "source.txt").write_text("beside the folder\n")
    build(tmp_path)
    run_dir = tmp_path / "site" / "runs" / "r1"
    page = BeautifulSoup((run_dir / "index.html").read_text(encoding="utf-8"), "html.parser")
    recipe = page.find(id="verify-recipe").get_text()
    shown = page.find(id="run-digest").get_text()
    assert shown.startswith("sha256:")
    for where in (run_dir / "files", folder):  # the site's copy and the archive's folder
        out = subprocess.run(
            ["bash", "-c", recipe], cwd=where, capture_output=True, text=True, check=True
        )
        assert out.stdout.split()[0] == shown.removeprefix("sha256:"), where
    # One changed byte gives another digest: the recipe really reads the files.
    (run_dir / "files" / "run.log").write_text("log line!\n")
    out = subprocess.run(["bash", "-c", recipe], cwd=run_dir / "files", capture_output=True)
    assert out.stdout.split()[0].decode() != shown.removeprefix("sha256:")


@pytest.mark.parametrize(
    ("base_url", "flagged"),
    [
        ("https://example.org/sitegen-archive/", True),
        ("https://example.com/", True),
        ("http://docs.example.net/bench/", True),
        ("https://example/", True),
        ("https://example-bench.org/", False),
        ("https://myexample.com/", False),
        ("https://example.org.lab.test/", False),
    ],
)
def test_placeholder_hosts(tmp_path, base_url, flagged):
    (tmp_path / "sitegen.toml").write_text(f'[archive]\nbase_url = "{base_url}"\n')
    found = [str(p) for p in placeholders(load_config(Layout.of(tmp_path)))]
    assert found == (
        [
            f"sitegen.toml:2: archive.base_url: {base_url!r} is a placeholder"
            f" ({base_url.split('/')[2]} is an example host); set your own"
        ]
        if flagged
        else []
    )


def test_strict_build_refuses_the_bundled_placeholders_and_a_plain_build_warns(tmp_path, write_run):
    write_run("r1")
    (tmp_path / "sitegen.toml").write_text(BUNDLED_TOML, encoding="utf-8")
    plain = sitegen(tmp_path, "build")
    assert plain.returncode == 0, plain.stderr
    warnings = [line for line in plain.stdout.splitlines() if line.startswith("warning: ")]
    assert [w.split(": ")[1:3] for w in warnings] == [
        ["sitegen.toml:7", "archive.base_url"],
        ["sitegen.toml:4", "archive.title"],
        ["sitegen.toml:9", "archive.authors"],
    ]
    site_before = {
        p.relative_to(tmp_path / "site"): p.read_bytes()
        for p in (tmp_path / "site").rglob("*")
        if p.is_file()
    }
    catalogue_before = (tmp_path / "catalogue.json").read_bytes()

    strict = sitegen(tmp_path, "build", "--strict", "--force")
    assert strict.returncode == 1
    errors = strict.stderr.splitlines()
    for setting in ("base_url", "title", "authors"):
        assert any(
            e.startswith("error: sitegen.toml:") and f"archive.{setting}: " in e for e in errors
        ), (setting, errors)
    assert "Traceback" not in strict.stderr
    site_after = {
        p.relative_to(tmp_path / "site"): p.read_bytes()
        for p in (tmp_path / "site").rglob("*")
        if p.is_file()
    }
    assert site_after == site_before
    assert (tmp_path / "catalogue.json").read_bytes() == catalogue_before

    (tmp_path / "sitegen.toml").write_text(OWN_TOML, encoding="utf-8")
    own = sitegen(tmp_path, "build")
    assert own.returncode == 0, own.stderr
    assert "warning" not in own.stdout
    # Under --strict this fixture run still fails its checklist (no per-call machine
    # samples, a zero digest); the settings themselves no longer do.
    own_strict = sitegen(tmp_path, "build", "--strict", "--force")
    assert "unreliable" in own_strict.stderr
    assert not [e for e in own_strict.stderr.splitlines() if "sitegen.toml" in e]


def test_404_links_start_from_the_base_url_path_and_pass_the_link_check(tmp_path, write_run):
    write_run("r1")
    (tmp_path / "sitegen.toml").write_text(OWN_TOML, encoding="utf-8")
    build(tmp_path)
    site = tmp_path / "site"
    page = BeautifulSoup((site / "404.html").read_text(encoding="utf-8"), "html.parser")
    targets = [a["href"] for a in page.select("a[href], link[href]")]
    internal = [t for t in targets if not t.startswith("#")]
    assert internal and all(t.startswith("/runs-archive/") for t in internal), internal
    assert check_links(site) == []
    # An absolute link outside the base path is reported, not silently accepted.
    (site / "404.html").write_text('<a href="/elsewhere/index.html">x</a>\n')
    assert check_links(site) == ["404.html:1: broken link '/elsewhere/index.html'"]


def test_without_a_base_url_the_404_page_links_relatively(tmp_path, write_run):
    write_run("r1")
    build(tmp_path)
    html = (tmp_path / "site" / "404.html").read_text(encoding="utf-8")
    assert 'href="index.html"' in html and 'href="assets/style.css"' in html
