"""The runner's input files: canonical prompts, cells and nodes, and their errors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from sitegen.exceptions import RunnerError
from sitegen.prompts import load_prompts
from sitegen.runner.cells import host_node, load_cells, load_inventory, select_cells

ROOT = Path(__file__).resolve().parent.parent


def test_canonical_prompts_are_byte_identical_to_the_methodology() -> None:
    prompts = {p.id: p for p in load_prompts()}
    assert list(prompts) == ["P-EASY", "P-MEDIUM", "P-HARD"]
    assert prompts["P-EASY"].text == "hi\n"
    assert prompts["P-MEDIUM"].text == "Explain in 4 sentences why the sky appears blue at noon.\n"
    assert prompts["P-HARD"].text == (
        "Write a 200-word story about a fisherman who discovers a coin from a sunken empire.\n"
    )
    assert [p.max_tokens for p in prompts.values()] == [64, 512, 1024]
    assert prompts["P-EASY"].sha256 == hashlib.sha256(b"hi\n").hexdigest()


def test_example_files_load() -> None:
    cells = load_cells(ROOT / "docs/examples/cells.yaml")
    assert cells and all(c.cell_id.count(":") >= 2 for c in cells)
    inventory = load_inventory(ROOT / "docs/examples/nodes.yaml")
    assert host_node(inventory, None) in inventory.nodes


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_cells_parse_with_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "cells.yaml",
        """
cells:
  - node: mac
    engine: llama.cpp
    model: qwen3.5:0.8b
    endpoint: http://127.0.0.1:11436/v1
  - node: pavilion
    engine: ollama
    model: qwen3.5:0.8b
    endpoint: http://10.8.0.3:11434
    params: {temperature: 0}
""",
    )
    a, b = load_cells(path)
    assert a.cell_id == "mac:llamacpp:qwen3.5:0.8b"
    assert a.base_url == "http://127.0.0.1:11436"
    assert b.api == "native" and b.params == {"temperature": 0}


def test_cell_errors_carry_file_line_and_column(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "cells.yaml",
        """cells:
  - node: mac
    engine: olama
    model: m
    endpoint: http://127.0.0.1:1
  - node: "bad node"
    engine: llamacpp
    model: m
    endpoint: ftp://x
    colour: red
""",
    )
    with pytest.raises(RunnerError) as err:
        load_cells(path)
    text = str(err.value)
    assert f"{path}:3:5: unknown engine 'olama'" in text
    assert f"{path}:6:5: node name 'bad node'" in text
    assert f"{path}:9:5: endpoint 'ftp://x'" in text
    assert f"{path}:10:5: unknown cell key 'colour'" in text


def test_duplicate_cells_and_yaml_syntax_errors(tmp_path: Path) -> None:
    cell = "  - {node: a, engine: openai, model: m, endpoint: 'http://127.0.0.1:1'}\n"
    dup = write(tmp_path, "dup.yaml", "cells:\n" + cell + cell)
    with pytest.raises(RunnerError, match="duplicate cell 'a:openai:m'"):
        load_cells(dup)
    broken = write(tmp_path, "broken.yaml", "cells:\n  - node: [a\n")
    with pytest.raises(RunnerError, match=r"broken.yaml:\d+:\d+: invalid YAML"):
        load_cells(broken)
    with pytest.raises(RunnerError, match="file not found"):
        load_cells(tmp_path / "missing.yaml")


def test_prompt_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "prompts.yaml", "P-X:\n  prompt: ''\n  max_tokens: 0\n")
    with pytest.raises(RunnerError) as err:
        load_prompts(path)
    assert "'prompt' must be text" in str(err.value)
    assert ":3:3: P-X: 'max_tokens' must be an integer >= 1" in str(err.value)


def test_inventory_and_host_node(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "nodes.yaml",
        """
nodes:
  devbox: {cpu: AMD EPYC, cores: 2, memory_gb: 23.4, os: Linux}
  pavilion: {gpu: GTX 1050}
host: devbox
""",
    )
    inv = load_inventory(path)
    assert inv.nodes["devbox"]["cores"] == 2
    assert host_node(inv, None) == "devbox"
    assert host_node(inv, "other") == "other"
    assert host_node(load_inventory(None), None) == "local"
    bad = write(tmp_path, "bad.yaml", "nodes:\n  devbox: {cores: two}\n")
    with pytest.raises(RunnerError, match="cores must be an integer"):
        load_inventory(bad)


def test_select_unknown_cell_is_an_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "c.yaml",
        "- {node: a, engine: openai, model: m, endpoint: 'http://127.0.0.1:1'}\n",
    )
    cells = load_cells(path)
    assert select_cells(cells, ("a:openai:m",)) == cells
    with pytest.raises(RunnerError, match="unknown cell"):
        select_cells(cells, ("nope",))
