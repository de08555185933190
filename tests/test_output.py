"""Output paths cannot escape the output folder, and two outputs cannot share a path."""

from __future__ import annotations

from pathlib import Path

import pytest

from sitegen.exceptions import BuildError
from sitegen.fsutil import safe_path
from sitegen.output import Outputs, stage


@pytest.mark.parametrize(
    "rel",
    [
        "../x.html",
        "a/../../x",
        "/etc/passwd",
        "~/x",
        "a\\..\\x",
        "",
        "runs/../../x",
        "..",
        "runs/..",
    ],
)
def test_paths_that_would_escape_are_refused(tmp_path, rel):
    with pytest.raises(BuildError, match="would escape the output folder"):
        safe_path(str(tmp_path), rel)


def test_ordinary_paths_stay_inside(tmp_path):
    joined = Path(safe_path(str(tmp_path), "runs/r1/index.html"))
    assert joined == tmp_path / "runs" / "r1" / "index.html"


def test_two_outputs_to_the_same_path_are_an_error(tmp_path):
    outputs = Outputs()
    outputs.add("runs/r1/index.html", "<p>one</p>")
    with pytest.raises(BuildError, match=r"two outputs claim the same path 'runs/r1/index\.html'"):
        outputs.copy("runs/r1/index.html", tmp_path / "other.html")


def test_an_escaping_output_fails_before_anything_is_published(tmp_path):
    outputs = Outputs()
    outputs.add("index.html", "ok")
    outputs.add("../outside.html", "no")
    with pytest.raises(BuildError):
        stage(outputs, tmp_path / "site")
    assert not (tmp_path / "outside.html").exists()
    assert not (tmp_path / "site").exists()
