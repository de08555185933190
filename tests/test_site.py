"""The built site as a reader sees it, and the build's guarantees."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from conftest import (
    ROOT,
    call_record,
    end_record,
    generate_archive,
    meta_record,
    metadata,
    sitegen_process,
)

from sitegen.build import build
from sitegen.exceptions import BuildError


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def soup(path: Path) -> BeautifulSoup:
    return BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


def test_two_builds_are_byte_identical(synthetic_archive: Path):
    build(synthetic_archive)
    first_site = tree(synthetic_archive / "site")
    first_cat = (synthetic_archive / "catalogue.json").read_bytes()
    build(synthetic_archive)
    assert tree(synthetic_archive / "site") == first_site
    assert (synthetic_archive / "catalogue.json").read_bytes() == first_cat
    assert '"built_at"' not in first_cat.decode() and "timestamp" not in first_cat.decode()


def test_index_lists_every_run_newest_first_with_badges(synthetic_archive: Path):
    build(synthetic_archive)
    page = soup(synthetic_archive / "site" / "index.html")
    rows = page.select("table#runs tbody tr")
    assert len(rows) == 13
    ids = [r.select_one("code.id").get_text() for r in rows]
    assert ids == sorted(ids, reverse=True)  # generated start times grow with the id
    assert all(r.select_one(".badge.synthetic") for r in rows)
    status = {r.select_one("code.id").get_text(): r.get_text(" ", strip=True) for r in rows}
    assert "planned" in status["synthetic-00005"]  # a meta-only run: its cells were planned
    assert "interrupted" in status["synthetic-00007"]
    assert "unreliable: model digest missing" in status["synthetic-00003"]
    # Links are relative and explicit, so the site works from file://.
    hrefs = [a["href"] for a in page.select("table#runs tbody a")]
    assert hrefs[0] == "runs/synthetic-00012/index.html"


def test_run_page_shows_metadata_checklist_tables_charts_notes_and_downloads(tmp_path, write_run):
    calls = [
        call_record(phase="cold", first_delta_ms=900.0, ttft_ms=900.0, total_duration_ms=1500.0)
    ]
    calls += [
        call_record(run_idx=i, first_delta_ms=100.0 + 10 * i, ttft_ms=100.0 + 10 * i)
        for i in range(5)
    ]
    write_run(
        ledger=[meta_record(), *calls, end_record()],
        run__md="# Notes\n\nMeasured on a **quiet** machine. [docs](https://example.org/x)\n",
        run__log="log line\n",
    )
    build(tmp_path)
    page = soup(tmp_path / "site" / "runs" / "r1" / "index.html")
    assert page.h1.get_text() == "Run r1"
    checklist = page.select(".checklist tbody tr")
    # The fixture's digest is 64 zeros, and it records no contention sample
    # and no prime-time statement: those three items fail, every other holds.
    failing = {tr["data-check"] for tr in checklist if "ok" not in tr["class"]}
    assert len(checklist) == 11 and failing == {"model_digests", "exclusive", "prime_time"}
    # The key figures open the page: warm TTFT p50 [IQR] of 100..140, the cold call's.
    strip = {dd["data-kf"]: dd.get_text(" ", strip=True) for dd in page.select(".kf-strip dd")}
    assert strip["ttft"] == "120 [110–130]" and strip["cold"] == "900"
    warm_row = page.select("table.stats")[1].select_one("tbody tr")
    cells = [td.get_text(strip=True) for td in warm_row.select("td")]
    # n, errors, TTFT p50 [p25–p75] and p95 of 100..140, rounded for reading
    assert cells[:4] == ["5", "0", "120[110–130]", "138"]
    svgs = page.select("figure.chart svg")
    assert len(svgs) == 2
    assert {s["id"] for s in svgs} == {"chart-ttft", "chart-tps"}
    for svg in svgs:
        assert svg["role"] == "img"
        assert svg.find("title").get_text() and svg.find("desc").get_text()
    assert page.select_one("aside.publisher-note strong").get_text() == "quiet"
    links = {a.get_text(): a["href"] for a in page.select("table.files a")}
    assert set(links) == {"metadata.json", "run.jsonl", "run.log", "run.md"}
    for href in links.values():
        assert (tmp_path / "site" / "runs" / "r1" / href).is_file()
    assert page.select_one("code.digest").get_text().startswith("sha256:")


def test_untrusted_text_is_escaped_and_notes_are_sanitised(tmp_path, write_run):
    evil = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    write_run(
        md=metadata(title=f"Title {evil}", description=evil, tags=[evil]),
        run__md=(
            f"{evil}\n\n[click](javascript:alert(3))\n\n"
            "<a href='https://x.org' onclick='alert(4)'>x</a>\n"
        ),
    )
    build(tmp_path)
    html = (tmp_path / "site" / "runs" / "r1" / "index.html").read_text()
    page = BeautifulSoup(html, "html.parser")
    # The only scripts are the theme's own files (copy buttons, search), none from the
    # run's text.
    scripts = page.find_all("script")
    assert [(s.get("src"), s.get_text()) for s in scripts] == [
        ("../../assets/copy.js", ""),
        ("../../assets/search.js", ""),
    ]
    for tag in page.find_all(True):
        assert not any(attr.startswith("on") for attr in tag.attrs), tag
        for value in tag.attrs.values():
            assert not str(value).strip().lower().startswith("javascript:"), tag
    assert "Title <script>" in page.h1.get_text()  # shown as text, not markup


def test_nothing_is_loaded_from_other_hosts(synthetic_archive: Path):
    build(synthetic_archive)
    for path in (synthetic_archive / "site").rglob("*.html"):
        page = soup(path)
        for tag in page.find_all(["script", "link", "img", "iframe", "source"]):
            url = tag.get("src") or tag.get("href") or ""
            assert not re.match(r"^(https?:)?//", url), (path, url)


def test_a_failed_render_leaves_the_previous_site(tmp_path, write_run):
    write_run()
    build(tmp_path)
    before = tree(tmp_path / "site")
    catalogue = (tmp_path / "catalogue.json").read_bytes()
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "run.html").write_text(
        "{% extends 'base.html' %}{% block main %}{{ nope( }}{% endblock %}"
    )
    write_run("r2", md=metadata("r2"), ledger=[meta_record("r2"), call_record(), end_record()])
    with pytest.raises(BuildError, match=r"templates/run.html:1"):
        build(tmp_path)
    assert tree(tmp_path / "site") == before
    assert (tmp_path / "catalogue.json").read_bytes() == catalogue
    assert not list((tmp_path / ".site.builds").glob("build-*"))[1:]  # no staging left over


def test_publisher_templates_override_single_files(tmp_path, write_run):
    write_run()
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "index.html").write_text(
        "{% extends 'base.html' %}"
        "{% block main %}<p id='mine'>{{ runs|length }} runs</p>{% endblock %}"
    )
    build(tmp_path)
    index = soup(tmp_path / "site" / "index.html")
    assert index.select_one("#mine").get_text() == "1 runs"
    run_page = soup(tmp_path / "site" / "runs" / "r1" / "index.html")
    assert run_page.select(".checklist tbody tr")  # default theme still renders the rest


def test_methodology_page_is_rendered(tmp_path, write_run):
    write_run()
    (tmp_path / "methodology.md").write_text("# How we measure\n\nLinear interpolation.\n")
    build(tmp_path)
    page = soup(tmp_path / "site" / "methodology" / "index.html")
    assert page.select_one("article h1").get_text() == "How we measure"


def test_catalogue_entry_has_what_researchers_need(tmp_path, write_run):
    write_run()
    build(tmp_path)
    catalogue = json.loads((tmp_path / "catalogue.json").read_text())
    assert catalogue["schema_version"] == "1.0"
    (entry,) = catalogue["runs"]
    assert entry["id"] == "r1" and entry["url"] == "runs/r1/"
    assert entry["cells"] == ["node-a:llamacpp:m1"] and entry["models"] == ["m1"]
    assert entry["counts"] == {"calls": 1, "errors": 0, "skipped": 0, "results": 0}
    files = {f["path"]: f for f in entry["files"]}
    assert set(files) == {"metadata.json", "run.jsonl"}
    raw = (tmp_path / "runs" / "r1" / "run.jsonl").read_bytes()
    import hashlib

    assert files["run.jsonl"] == {
        "path": "run.jsonl",
        "bytes": len(raw),
        "sha256": hashlib.sha256(raw).hexdigest(),
    }
    site_copy = json.loads((tmp_path / "site" / "catalogue.json").read_text())
    assert site_copy == catalogue


def test_missing_archive_is_a_clean_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "sitegen", "build", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "archive folder does not exist" in result.stderr and "Traceback" not in result.stderr


def test_the_program_ends_a_build_with_everything_written_and_said(tmp_path):
    # `python -m sitegen` ends a build without freeing its objects one by one: its exit
    # status, what it printed and what it wrote are as a normal exit leaves them.
    generate_archive.generate(tmp_path, 3, warm=2, cells=1, prompts=1, seed=5)
    done = sitegen_process(tmp_path, "build")
    assert done.returncode == 0, done.stderr
    assert "3 run(s)" in done.stdout and "wrote " in done.stdout.splitlines()[-1]
    assert json.loads((tmp_path / "catalogue.json").read_text())["runs"]
    assert sitegen_process(tmp_path, "build").stdout.startswith("nothing changed")
    ledger = next((tmp_path / "runs").glob("*/run.jsonl"))
    ledger.write_text(ledger.read_text() + "{broken\n")
    failed = sitegen_process(tmp_path, "build")
    assert failed.returncode == 1 and "error: runs/" in failed.stderr


@pytest.mark.slow
def test_wheel_ships_the_default_theme_and_schemas(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("sitegen-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "sitegen/templates/base.html" in names
    assert "sitegen/templates/assets/style.css" in names
    assert "sitegen/schemas/ledger-call.v1.json" in names
    assert "sitegen/default_methodology.md" in names


def test_a_broken_internal_link_fails_the_build_and_keeps_the_previous_site(tmp_path, write_run):
    write_run()
    build(tmp_path)
    before = tree(tmp_path / "site")
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "page.html").write_text(
        "{% extends 'base.html' %}{% block main %}<a href='nowhere/index.html'>x</a>{% endblock %}"
    )
    broken = r"methodology/index.html:\d+: broken link 'nowhere/index.html'"
    with pytest.raises(BuildError, match=broken):
        build(tmp_path)
    assert tree(tmp_path / "site") == before


def test_a_rebuild_with_nothing_changed_is_skipped_and_any_change_rebuilds(tmp_path, write_run):
    from click.testing import CliRunner

    from sitegen.cli import main

    write_run()
    runner = CliRunner()
    first = runner.invoke(main, ["build", str(tmp_path)])
    assert first.exit_code == 0 and "wrote" in first.output
    second = runner.invoke(main, ["build", str(tmp_path)])
    assert second.exit_code == 0 and "nothing changed" in second.output
    write_run("r2", md=metadata("r2"), ledger=[meta_record("r2"), call_record(), end_record()])
    third = runner.invoke(main, ["build", str(tmp_path)])
    assert "nothing changed" not in third.output and "2 run(s)" in third.output
    forced = runner.invoke(main, ["build", str(tmp_path), "--force"])
    assert "wrote" in forced.output


def test_a_url_with_an_unsafe_scheme_in_any_attribute_fails_the_build(tmp_path, write_run):
    write_run()
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "page.html").write_text(
        "{% extends 'base.html' %}{% block main %}<a href='data:text/html,x'>x</a>{% endblock %}"
    )
    with pytest.raises(BuildError, match=r"methodology/index\.html:\d+: unsafe URL scheme"):
        build(tmp_path)
