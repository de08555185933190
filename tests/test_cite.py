"""Citations: every run page has text, BibTeX and CITATION.cff that name the archive,
the run, its authors, date, permanent URL and content digest; the BibTeX parses
and every CITATION.cff validates against the CFF 1.2.0 schema."""

from __future__ import annotations

import hashlib
from pathlib import Path
from unittest import mock

import bibtexparser
import pytest
import yaml
from bs4 import BeautifulSoup
from conftest import metadata
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sitegen.build import build
from sitegen.cite import cff_errors

BASE = "https://example.org/bench/"


def soup(path: Path) -> BeautifulSoup:
    return BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


def manifest_digest(folder: Path) -> str:
    """Recompute a run's content digest from its files, as a reader would."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    text = "".join(
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.stat().st_size}  "
        f"{p.relative_to(folder).as_posix()}\n"
        for p in files
    )
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def cited(tmp_path, write_run) -> Path:
    (tmp_path / "sitegen.toml").write_text(
        f'[archive]\ntitle = "Bench & Co archive"\nbase_url = "{BASE}"\n'
        'authors = ["Ada Lovelace"]\nlicense = "CC-BY-4.0"\n'
    )
    write_run(
        md=metadata(
            title="Latency of m1 {fast} at 50% load_avg #1",
            authors=["Grace Hopper", "Edsger W. Dijkstra"],
        )
    )
    build(tmp_path)
    return tmp_path


def test_run_page_cites_archive_run_authors_date_url_and_digest(cited: Path):
    page = soup(cited / "site" / "runs" / "r1" / "index.html")
    section = page.select_one("section.cite")
    assert section.h2.get_text() == "Cite this run"
    text, bib, cff = (pre.get_text() for pre in section.select("pre.citation"))
    digest = manifest_digest(cited / "runs" / "r1")
    for needed in (
        "Bench & Co archive",
        "r1",
        "Latency of m1 {fast} at 50% load_avg #1",
        "Grace Hopper, Edsger W. Dijkstra",
        "2026",
        f"{BASE}runs/r1/",
        digest,
    ):
        assert needed in text, needed
    assert digest in bib and digest in cff
    # The page shows exactly the files offered for download.
    assert bib == (cited / "site" / "runs" / "r1" / "cite.bib").read_text()
    assert cff == (cited / "site" / "runs" / "r1" / "CITATION.cff").read_text()


def test_bibtex_parses_with_every_field(cited: Path):
    library = bibtexparser.parse_string((cited / "site/runs/r1/cite.bib").read_text())
    assert not library.failed_blocks
    (entry,) = library.entries
    assert entry.entry_type == "misc" and entry.key == "run-r1"
    fields = entry.fields_dict
    assert fields["author"].value == "Grace Hopper and Edsger W. Dijkstra"
    assert fields["title"].value == r"{Latency of m1 \{fast\} at 50\% load\_avg \#1}"
    assert fields["year"].value == "2026"
    assert fields["url"].value == f"{BASE}runs/r1/"
    assert r"Bench \& Co archive" in fields["howpublished"].value
    assert manifest_digest(cited / "runs" / "r1") in fields["note"].value


def test_run_and_archive_citation_cff_validate(cited: Path):
    run = yaml.safe_load((cited / "site/runs/r1/CITATION.cff").read_text())
    assert cff_errors(run) == []
    assert run["title"] == "Latency of m1 {fast} at 50% load_avg #1"
    assert run["authors"] == [{"name": "Grace Hopper"}, {"name": "Edsger W. Dijkstra"}]
    assert run["url"] == f"{BASE}runs/r1/" and run["date-released"] == "2026-05-01"
    assert {"type": "other", "value": manifest_digest(cited / "runs" / "r1")} in [
        {k: i[k] for k in ("type", "value")} for i in run["identifiers"]
    ]
    archive = yaml.safe_load((cited / "site" / "CITATION.cff").read_text())
    assert cff_errors(archive) == []
    assert archive["title"] == "Bench & Co archive" and archive["url"] == BASE
    assert archive["authors"] == [{"name": "Ada Lovelace"}] and archive["license"] == "CC-BY-4.0"
    # The checker is real: a broken document is reported.
    assert cff_errors({"cff-version": "1.2.0", "title": "x"})


def test_without_a_base_url_citations_say_so_and_stay_valid(tmp_path, write_run):
    write_run()
    build(tmp_path)
    page = soup(tmp_path / "site" / "runs" / "r1" / "index.html")
    section = page.select_one("section.cite").get_text(" ", strip=True)
    assert "no permanent URL yet" in section
    text = page.select_one("section.cite pre.citation").get_text()
    assert "runs/r1/ (path within the published site; the archive sets no archive.base_url)" in text
    cff = yaml.safe_load((tmp_path / "site/runs/r1/CITATION.cff").read_text())
    assert cff_errors(cff) == [] and "url" not in cff
    assert "archive.base_url" in cff["message"]
    bib = bibtexparser.parse_string((tmp_path / "site/runs/r1/cite.bib").read_text())
    assert "url" not in bib.entries[0].fields_dict
    assert cff_errors(yaml.safe_load((tmp_path / "site" / "CITATION.cff").read_text())) == []


def test_unknown_license_is_left_out_of_cff_not_made_invalid(tmp_path, write_run):
    write_run(md=metadata(license="LicenseRef-internal"))
    build(tmp_path)
    cff = yaml.safe_load((tmp_path / "site/runs/r1/CITATION.cff").read_text())
    assert cff_errors(cff) == [] and "license" not in cff


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
_VALUES = _JSON | st.sampled_from(
    ["2026-02-30", "2026-01-01", "not a date", "https://x.org/", "CC-BY-4.0", "MIT", "", "1.2.0"]
)


@settings(max_examples=300, deadline=None)
@example(changes=[("", "date-released", "2026-02-30")])  # a format only jsonschema checks
@example(changes=[("authors.0", "email", 3)])
@given(
    changes=st.lists(
        st.tuples(
            st.sampled_from(["", "authors.0", "identifiers.1", "references.0"]),
            st.text(max_size=12)
            | st.sampled_from(
                [
                    "title",
                    "date-released",
                    "url",
                    "license",
                    "type",
                    "name",
                    "value",
                    "cff-version",
                    "version",
                    "doi",
                    "repository-code",
                    "authors",
                    "email",
                ]
            ),
            _VALUES,
        ),
        max_size=4,
    )
)
@example(changes=[("", "authors", []), ("authors.0", "", "2026-02-30")])  # a path into []
def test_the_quick_cff_check_agrees_with_the_schema_on_any_document(changes):
    """cff_errors answers "valid" from a check compiled to Python (past the first
    documents a process checks) and asks jsonschema only on failure: for any
    document, it must be valid exactly when jsonschema says so, or a citation
    the schema rejects would be published."""
    from sitegen import cite
    from sitegen.cite import _cff_validator, run_cff

    entry = {
        "id": "r1",
        "title": "A run",
        "url": "runs/r1/",
        "digest": "sha256:" + "0" * 64,
        "started_at_utc": "2026-01-01T00:00:00Z",
        "authors": ["Ann Example"],
    }
    archive = {"title": "Archive", "base_url": BASE, "license": "CC-BY-4.0", "authors": ["X"]}
    doc = run_cff(entry, archive, BASE + "runs/r1/")
    doc["references"] = [{"type": "software", "title": "t", "authors": [{"name": "n"}]}]
    for where, key, value in changes:
        target = doc
        for step in [p for p in where.split(".") if p]:
            if isinstance(target, list):
                target = target[int(step)] if int(step) < len(target) else None
            else:
                target = target.get(step)
            if not isinstance(target, dict | list):
                break
        if isinstance(target, dict):
            target[key] = value
    expected = not list(_cff_validator().iter_errors(doc))
    for compile_after in (0, 10**9):  # the compiled check, then jsonschema alone
        with mock.patch.object(cite, "COMPILE_AFTER", compile_after):
            assert (cff_errors(doc) == []) == expected
