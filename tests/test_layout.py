"""One map of the archive: sitegen.layout names every path, and every command uses it.

What a publisher would notice if a module kept its own idea of the layout: a
`sitegen gate` that scans `site/` after a build into `--out`, a `sitegen serve`
that does not rebuild when one input changes, a no-op check that misses one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import sitegen_process

from sitegen import layout as layout_module
from sitegen import serve, state
from sitegen.layout import Layout

ROOT = Path(__file__).resolve().parent.parent
NAMES = {
    value
    for name, value in vars(layout_module).items()
    if name.isupper() and isinstance(value, str)
}
# The package's own files (its default theme and methodology) are not the archive's.
NOT_ARCHIVE = {"layout.py", "codeversion.py"}


def _joins_of_layout_names(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        named = None
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            named = node.right
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Path" and node.args:
            named = node.args[0]
        if isinstance(named, ast.Constant) and named.value in NAMES:
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {named.value!r}")
    return found


def test_no_module_but_the_layout_joins_an_archive_path():
    assert {"runs", "templates", "sitegen.toml", "runs.lock", ".sitegen-cache"} <= NAMES
    found = [
        hit
        for path in sorted((ROOT / "sitegen").rglob("*.py"))
        if path.name not in NOT_ARCHIVE
        for hit in _joins_of_layout_names(path)
    ]
    assert found == []


@pytest.mark.parametrize("typed", [".", "arch", "arch/", "./arch"])
def test_paths_keep_the_form_the_user_typed(typed: str):
    lay = Layout.of(typed)
    assert lay.root == Path(typed)
    assert lay.site == Path(typed) / "site" and not lay.site_given
    assert lay.lock == Path(typed) / "runs.lock"
    other = Layout.of(typed, "../elsewhere")
    assert other.site == Path("../elsewhere") and other.site_given
    # A layout passes through; a later --out replaces only the site.
    assert Layout.of(lay) is lay
    assert Layout.of(lay, "out").site == Path("out") and Layout.of(lay, "out").root == lay.root


def _archive(tmp_path: Path, write_run) -> Path:
    write_run()
    (tmp_path / "sitegen.toml").write_text("[site]\nsearch = false\n", encoding="utf-8")
    return tmp_path


def test_gate_scans_the_site_the_last_build_wrote_with_out(tmp_path: Path, write_run):
    archive = _archive(tmp_path, write_run)
    out = f"../{tmp_path.name}-published"  # typed relative to the archive, as a user would
    done = sitegen_process(archive, "build", "--out", out, "-q")
    assert done.returncode == 0, done.stderr
    published = (archive / out).resolve()
    assert (published / "index.html").is_file() and not (archive / "site").exists()
    # Something private reaches the published site after the build (a hand edit):
    page = published / "index.html"
    page.write_text(page.read_text() + "<!-- box 10.9.9.9 -->", encoding="utf-8")
    report = sitegen_process(archive, "gate")
    shown = report.stdout + report.stderr
    assert report.returncode != 0, shown
    assert "site/index.html" in shown and "10.9.9.9" not in shown  # located, redacted


@pytest.mark.parametrize("name", sorted(layout_module.INPUTS))
def test_build_and_serve_watch_the_same_inputs(tmp_path: Path, write_run, name: str):
    archive = _archive(tmp_path, write_run)
    lay = Layout.of(archive)
    options = {"strict": False, "skip_invalid": False}
    before = (state.fingerprint(lay, options), serve.fingerprint(lay))
    target = archive / name
    if name in ("runs", "templates"):
        target.mkdir(exist_ok=True)
        (target / "added.txt").write_text("x", encoding="utf-8")
    else:
        target.write_text("# edited\n", encoding="utf-8")
    after = (state.fingerprint(lay, options), serve.fingerprint(lay))
    assert after[0] != before[0], f"the no-op check misses {name}"
    assert after[1] != before[1], f"sitegen serve misses {name}"
