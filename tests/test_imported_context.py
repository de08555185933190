"""Imported results keep their context: the run page of an imported run shows
how many samples each value stands on (n), its spread (±), the tool and
harness versions, the settings and the original file; values are rounded for
reading; the citation names the original authors and tool and the archive's
publisher as the one who republished them, never as their author.

Built twice: the bundled archive (runs imported before this page existed,
unchanged on disk) and a fresh archive importing the bundled reference
examples and the test samples with ``sitegen import --author`` from inside it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import bibtexparser
import pytest
import yaml
from bs4 import BeautifulSoup, Tag
from conftest import ROOT, sitegen_process

from sitegen.build import build
from sitegen.cite import cff_errors

SAMPLES = ROOT / "tests" / "data" / "import"
MLX = "mlx-benchmarks-v1-20260424-a015dcf452"
LLAMA_JSONL = "llama-bench-20261123-a182048b61"
LLAMA_JSON = "llama-bench-20261123-1cf573aff7"
PLACEHOLDER = "sitegen developers"  # the bundled archive's publisher


def soup(path: Path) -> BeautifulSoup:
    return BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


def tree_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def bundled(tmp_path_factory) -> Path:
    """A copy of the bundled archive, built; returns the archive folder."""
    root = tmp_path_factory.mktemp("bundled")
    shutil.copytree(ROOT / "runs", root / "runs", ignore=shutil.ignore_patterns(".*"))
    for name in ("sitegen.toml", "methodology.md"):
        shutil.copy(ROOT / name, root / name)
    before = tree_digest(root / "runs")
    build(root, skip_invalid=True)
    assert tree_digest(root / "runs") == before, "a build never changes published runs"
    return root


def run_page(archive: Path, run_id: str) -> BeautifulSoup:
    return soup(archive / "site" / "runs" / run_id / "index.html")


def source_rows(page: BeautifulSoup) -> list[dict[str, str]]:
    """The Source section's results table as {column header: cell text} rows."""
    table = page.select_one("section.source-context table.source-results")
    assert table is not None, "an imported run's page has a Source section with its results"
    heads = [th.get_text(" ", strip=True) for th in table.select("thead th")]
    return [
        dict(zip(heads, (td.get_text(" ", strip=True) for td in tr.select("td")), strict=True))
        for tr in table.select("tbody tr")
    ]


def versions(page: BeautifulSoup) -> dict[str, str]:
    table = page.select_one("section.source-context table.versions")
    assert isinstance(table, Tag)
    return {
        tr.select("td")[1].get_text(strip=True): tr.select("td")[2].get_text(strip=True)
        for tr in table.select("tbody tr")
    }


def facts(page: BeautifulSoup, selector: str) -> dict[str, str]:
    dl = page.select_one(f"section.source-context {selector}")
    assert isinstance(dl, Tag)
    return {
        dt.get_text(strip=True): dd.get_text(" ", strip=True)
        for dt, dd in zip(dl.select("dt"), dl.select("dd"), strict=True)
    }


def citations(page: BeautifulSoup) -> tuple[str, str, str]:
    text, bib, cff = (pre.get_text() for pre in page.select("section.cite pre.citation"))
    return text, bib, cff


def bib_fields(bib: str) -> dict[str, str]:
    library = bibtexparser.parse_string(bib)
    assert not library.failed_blocks
    (entry,) = library.entries
    return {k: str(v.value) for k, v in entry.fields_dict.items()}


# ------------------------------------------------------------ bundled archive


def test_mlx_page_shows_the_question_limit_and_the_harness_version(bundled: Path):
    page = run_page(bundled, MLX)
    (row,) = source_rows(page)
    assert row["Name"] == "gsm8k_cot_zeroshot"
    assert row["Value"] == "0.8"
    assert row["n"] == "10 questions (n_limit)", "the score stands on 10 questions"
    shown = versions(page)
    assert shown["lm-eval"] == "0.4.11", "the harness version the envelope records"
    assert shown["mlx-benchmarks"] == "not recorded"
    settings = facts(page, "dl.settings")
    assert settings["gen_kwargs.temperature"] == "0.0"
    assert settings["gen_kwargs.max_gen_toks"] == "4096"


def test_llama_bench_page_fills_spread_and_repetitions_with_readable_values(bundled: Path):
    source = json.loads(
        (bundled / "runs" / LLAMA_JSONL / "source" / "llama-bench-tiny.jsonl")
        .read_text()
        .splitlines()[0]
    )
    assert source["avg_ts"] == 10726.857838 and source["stddev_ts"] == 302.419879
    page = run_page(bundled, LLAMA_JSONL)
    rows = {r["Name"]: r for r in source_rows(page)}
    assert rows["pp64"]["Value"] == "10,727"
    assert rows["pp64"]["±"] == "± 302 sd"
    assert rows["pp64"]["n"] == "3 repetitions"
    assert rows["tg32"]["±"] == "± 284 sd"
    assert "10726.857838" not in page.get_text(), "exact values stay in the downloads"
    other = {r["Name"]: r for r in source_rows(run_page(bundled, LLAMA_JSON))}
    assert (other["pp64"]["Value"], other["pp64"]["±"]) == ("9,761", "± 48.4 sd")
    settings = facts(page, "dl.settings")
    assert settings["n_threads"] == "2" and settings["n_batch"] == "2048"


def test_source_section_names_the_kept_file_with_its_digest(bundled: Path):
    page = run_page(bundled, LLAMA_JSONL)
    kept = bundled / "runs" / LLAMA_JSONL / "source" / "llama-bench-tiny.jsonl"
    origin = facts(page, "dl.origin")
    assert origin["File"].startswith("llama-bench-tiny.jsonl")
    assert origin["sha256"] == hashlib.sha256(kept.read_bytes()).hexdigest()
    assert origin["Authors"] == "not recorded"
    link = page.select_one("section.source-context dl.origin a[download]")
    assert link is not None
    target = bundled / "site" / "runs" / LLAMA_JSONL / link["href"]
    assert target.read_bytes() == kept.read_bytes()


def test_bundled_import_is_cited_to_its_tool_not_to_the_archive(bundled: Path):
    page = run_page(bundled, MLX)
    text, bib, cff = citations(page)
    assert text.startswith("Authors not recorded (2026).")
    assert "Results of mlx-benchmarks" in text
    assert f"Republished in sitegen benchmark archive by {PLACEHOLDER}." in text
    fields = bib_fields(bib)
    assert fields["author"] == "{Authors not recorded}"
    assert PLACEHOLDER not in fields["author"]
    assert "mlx-benchmarks" in fields["howpublished"]
    doc = yaml.safe_load(cff)
    assert cff_errors(doc) == []
    assert [a["name"] for a in doc["authors"]] == ["Authors not recorded"]
    # the downloadable files say the same as the page
    folder = bundled / "site" / "runs" / MLX
    assert (folder / "cite.bib").read_text() == bib
    assert (folder / "CITATION.cff").read_text() == cff


def test_own_runs_are_still_cited_to_their_authors(bundled: Path):
    entries = json.loads((bundled / "site" / "catalogue.json").read_text())["runs"]
    own = next(e for e in entries if not e["source"])
    text, bib, _ = citations(run_page(bundled, own["id"]))
    assert text.startswith(", ".join(own["authors"] or [PLACEHOLDER]) + " (")
    assert "Republished" not in text and "Republished" not in bib


# ------------------------------------------------------------ fresh imports


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> Path:
    """An archive whose publisher is not the placeholder, importing the bundled
    reference examples and test samples with --author from inside the archive."""
    root = tmp_path_factory.mktemp("fresh")
    (root / "sitegen.toml").write_text(
        '[archive]\ntitle = "Lab results"\nauthors = ["Archive Keeper"]\n'
        'base_url = "https://example.org/lab/"\nlicense = "CC-BY-4.0"\n'
    )
    incoming = root / "incoming"
    incoming.mkdir()
    shutil.copy(
        ROOT / "runs" / MLX / "source" / "mlx-benchmarks-schema-v1.example.json",
        incoming / "mlx-example.json",
    )
    for name in (
        "llama-bench-rtx4070.json",
        "results_2026-01-20T09-14-55.812345.json",
        "mlx-throughput.json",
    ):
        shutil.copy(SAMPLES / name, incoming / name)
    done = sitegen_process(
        root,
        "import",
        "incoming/mlx-example.json",
        "incoming/llama-bench-rtx4070.json",
        "incoming/results_2026-01-20T09-14-55.812345.json",
        "incoming/mlx-throughput.json",
        "--author",
        "Dana Example",
        "--author",
        "Lee Sample",
    )
    assert done.returncode == 0, done.stderr
    build(root)
    return root


def _run_id(archive: Path, prefix: str) -> str:
    (run_id,) = [p.name for p in (archive / "runs").iterdir() if p.name.startswith(prefix)]
    return run_id


def test_author_option_is_stored_in_the_source_metadata(fresh: Path):
    run = fresh / "runs" / MLX
    metadata = json.loads((run / "metadata.json").read_text())
    assert metadata["source"]["authors"] == ["Dana Example", "Lee Sample"]
    assert "authors" not in metadata, "the run's own authors are not invented"
    page = run_page(fresh, run.name)
    assert facts(page, "dl.origin")["Authors"] == "Dana Example, Lee Sample"


def test_fresh_import_is_cited_to_its_authors_and_tool_republished_by_the_publisher(
    fresh: Path,
):
    run_id = _run_id(fresh, "llama-bench-")
    text, bib, cff = citations(run_page(fresh, run_id))
    assert text.startswith("Dana Example, Lee Sample (2026).")
    assert "Results of llama-bench b6415 (6c9e3d1a)" in text
    assert "Republished in Lab results by Archive Keeper." in text
    sha = hashlib.sha256((SAMPLES / "llama-bench-rtx4070.json").read_bytes()).hexdigest()
    assert f"llama-bench-rtx4070.json (sha256 {sha})" in text
    fields = bib_fields(bib)
    assert fields["author"] == "Dana Example and Lee Sample"
    assert "republished in Lab results by Archive Keeper" in fields["howpublished"]
    assert fields["publisher"] == "Archive Keeper"
    doc = yaml.safe_load(cff)
    assert cff_errors(doc) == []
    assert [a["name"] for a in doc["authors"]] == ["Dana Example", "Lee Sample"]
    for form in (text, bib, cff):
        assert PLACEHOLDER not in form
        assert "Archive Keeper" in form, "the publisher is named as republisher"


def test_fresh_llama_bench_shows_its_build_and_spreads(fresh: Path):
    page = run_page(fresh, _run_id(fresh, "llama-bench-"))
    assert versions(page)["llama-bench"] == "b6415 (6c9e3d1a)"
    rows = {r["Name"]: r for r in source_rows(page)}
    assert rows["pp512"]["n"] == "5 repetitions"
    assert rows["tg128"]["±"].startswith("± ") and rows["tg128"]["±"].endswith(" sd")


def test_fresh_lm_eval_shows_stderr_samples_and_batch_size(fresh: Path):
    page = run_page(fresh, _run_id(fresh, "lm-eval-"))
    source = json.loads((SAMPLES / "results_2026-01-20T09-14-55.812345.json").read_text())
    rows = {(r["Name"], r["Metric"]): r for r in source_rows(page)}
    arc = rows[("arc_easy", "acc")]
    assert arc["±"] == "± 0.00997 stderr"
    assert source["results"]["arc_easy"]["acc_stderr,none"] == pytest.approx(0.00997, rel=1e-3)
    assert arc["n"] == f"{source['n-samples']['arc_easy']['effective']:,} samples"
    assert versions(page)["lm-evaluation-harness"] == source["lm_eval_version"]
    assert facts(page, "dl.settings")["batch_size"] == str(source["config"]["batch_size"])


def test_fresh_mlx_shows_its_package_versions_and_generation_settings(fresh: Path):
    source = json.loads((SAMPLES / "mlx-throughput.json").read_text())
    (run_id,) = [
        p.name
        for p in (fresh / "runs").iterdir()
        if p.name.startswith("mlx-benchmarks-v1-") and p.name != MLX
    ]
    page = run_page(fresh, run_id)
    table = page.select("section.source-context table.versions tbody tr")
    names = [tr.select("td")[1].get_text(strip=True) for tr in table]
    shown = versions(page)
    assert shown["MLX"] == source["system"]["mlx_version"]
    assert shown["mlx-lm"] == source["system"]["mlx_lm_version"]
    assert shown["vllm-mlx"] == source["system"]["vllm_mlx_version"]
    assert names.count("vllm-mlx") == 1, "the engine's version is listed once"
    settings = facts(page, "dl.settings")
    for key, value in source["gen_kwargs"].items():
        assert settings[f"gen_kwargs.{key}"] == json.dumps(value)


def test_a_malformed_file_still_gives_a_located_error(tmp_path: Path):
    shutil.copy(SAMPLES / "mlx-bad.json", tmp_path / "mlx-bad.json")
    done = sitegen_process(tmp_path, "import", "mlx-bad.json", "--author", "Dana Example")
    assert done.returncode != 0
    assert "error: mlx-bad.json: $.trigger: expected one of" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_an_empty_author_is_refused(tmp_path: Path):
    shutil.copy(SAMPLES / "nexus-record.json", tmp_path / "nexus.json")
    done = sitegen_process(tmp_path, "import", "nexus.json", "--author", " ")
    assert done.returncode != 0
    assert "--author" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
