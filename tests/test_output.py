"""Output paths cannot escape the output folder, two outputs cannot share a path, and
a build's pages wait on disk, not in memory, until they are staged."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import cli_in, generate_archive

from sitegen import build
from sitegen.exceptions import BuildError
from sitegen.fsutil import safe_path
from sitegen.output import Outputs, Spooled, spool_folder, stage


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


def pages(outputs: Outputs) -> None:
    outputs.add("index.html", "<p>CHART</p>", key="k-index")
    outputs.add("runs/r1/index.html", "<p>one CHART</p>", key="k-r1")
    outputs.add("runs/r1/data.json", b'{"a": 1}')  # keyed by its own sha256
    outputs.add("style.css", "p { color: black }", key="k-css")


def staged(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_spooled_pages_are_held_on_disk_and_stage_the_same_site_as_pages_in_memory(
    tmp_path: Path,
):
    """What a user sees is the same site; what the build holds is file names."""
    memory = Outputs()
    pages(memory)
    fill = lambda html: html.replace(b"CHART", b"<svg></svg>")  # noqa: E731
    memory.transform(fill, ".html")
    made = {rel: memory.sha256(rel) for rel in memory.fresh()}
    expected = staged(stage(memory, tmp_path / "a" / "site"))

    with spool_folder(tmp_path / "b" / "site") as spool:
        assert spool.parent == tmp_path / "b" / ".site.builds"  # beside staging: a rename
        spooled = Outputs(spool=spool)
        pages(spooled)
        assert all(isinstance(c, Spooled) for c in spooled.data.values())
        spooled.transform(fill, ".html")
        assert {rel: spooled.sha256(rel) for rel in spooled.fresh()} == made
        root = stage(spooled, tmp_path / "b" / "site")
        assert not [p for p in spool.rglob("*") if p.is_file()]  # every page moved to staging
    assert not spool.exists()
    assert staged(root) == expected
    assert b"<svg></svg>" in expected["runs/r1/index.html"]


def test_a_spool_is_removed_when_the_build_fails_while_rendering(tmp_path: Path):
    with pytest.raises(BuildError), spool_folder(tmp_path / "site") as spool:
        outputs = Outputs(spool=spool)
        outputs.add("index.html", "<p>one</p>", key="k")
        outputs.add("index.html", "<p>two</p>", key="k")
    assert list((tmp_path / ".site.builds").iterdir()) == []


def test_a_build_stages_every_page_it_made_from_the_spool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """``sitegen build`` as typed in the archive: no page's bytes are held in memory
    when the site is staged, and no spool is left behind."""
    root = tmp_path / "archive"
    generate_archive.generate(root, 4, warm=2, cells=2, prompts=2, seed=5)
    held: list[set[str]] = []
    real = build.stage

    def noted(outputs: Outputs, *args: object, **kwargs: object) -> Path:
        held.append({type(content).__name__ for content in outputs.data.values()})
        return real(outputs, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(build, "stage", noted)
    result = cli_in(root, "build")
    assert result.exit_code == 0, result.output
    assert "Spooled" in held[0] and "bytes" not in held[0], held
    assert [p.name[:6] for p in (root / ".site.builds").iterdir()] == ["build-"]
    assert (root / "site" / "index.html").read_bytes().startswith(b"<!doctype html>")


def test_transform_reads_back_only_the_spooled_pages_holding_a_mark(tmp_path: Path):
    """A build finishes the pages that hold a chart placeholder or inline SVG; the rest
    (tens of thousands at 10,000 runs) are not read back from the spool."""
    with spool_folder(tmp_path / "site") as spool:
        outputs = Outputs(spool=spool, mark=b"CHART")
        pages(outputs)
        outputs.add("about/index.html", "<p>no chart here</p>", key="k-about")
        seen: list[bytes] = []

        def fill(html: bytes) -> bytes:
            seen.append(html)
            return html.replace(b"CHART", b"<svg></svg>")

        outputs.transform(fill, ".html")
        assert sorted(seen) == [b"<p>CHART</p>", b"<p>one CHART</p>"]
        root = stage(outputs, tmp_path / "site")
    assert (root / "runs/r1/index.html").read_bytes() == b"<p>one <svg></svg></p>"
    assert (root / "about/index.html").read_bytes() == b"<p>no chart here</p>"


def test_deferred_pages_take_their_paths_at_once_and_their_content_when_rendered(
    tmp_path: Path,
):
    """``cached`` with a deferred list queues the page: its path is claimed at once (a
    clash is reported where it happens), its key is known, its content comes later."""
    outputs = Outputs(deferred=[])
    made: list[str] = []

    def page(text: str):
        return lambda: made.append(text) or f"<p>{text}</p>"

    assert outputs.cached("a/index.html", "key-a", page("a")) is False
    outputs.add("b.txt", "b")
    assert made == [] and outputs.keys["a/index.html"] == "key-a"
    with pytest.raises(BuildError, match=r"two outputs claim the same path 'a/index\.html'"):
        outputs.cached("a/index.html", "key-other", page("clash"))
    (job,) = outputs.deferred or []
    with pytest.raises(RuntimeError, match="staged before it was rendered"):
        stage(outputs, tmp_path / "early")
    outputs.fill(job, job.produce())
    assert made == ["a"]
    root = stage(outputs, tmp_path / "site")
    assert staged(root) == {
        "a/index.html": b"<p>a</p>",
        "b.txt": b"b",
        ".sitegen-site": staged(root)[".sitegen-site"],
    }


def test_a_forked_worker_spools_beside_the_build_without_taking_its_file_names(
    tmp_path: Path,
):
    """Workers render pages and spool them themselves (``Outputs.hold``), each from a
    copy of the build's counter: every page must still land in its own file."""
    import os
    import pickle

    with spool_folder(tmp_path / "site") as spool:
        outputs = Outputs(spool=spool, mark=b"CHART")
        outputs.add("first.html", "<p>build, before the fork</p>", key="k0")
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # a worker: holds two pages, sends back their records
            try:
                held = [outputs.hold(f"<p>worker {i} CHART</p>") for i in range(2)]
                os.write(write, pickle.dumps(held))
            finally:
                os._exit(0)
        os.close(write)
        with os.fdopen(read, "rb") as fh:
            from_worker = pickle.loads(fh.read())
        os.waitpid(pid, 0)
        outputs.add("mine.html", "<p>build, after the fork</p>", key="k1")
        for i, held in enumerate(from_worker):
            outputs.add(f"w{i}.html", held, key=f"kw{i}")
        paths = [c.path for c in outputs.data.values() if isinstance(c, Spooled)]
        assert len(set(paths)) == 4
        assert all(held.marked for held in from_worker)
        root = stage(outputs, tmp_path / "site")
    assert staged(root) | {".sitegen-site": b""} == {
        "first.html": b"<p>build, before the fork</p>",
        "mine.html": b"<p>build, after the fork</p>",
        "w0.html": b"<p>worker 0 CHART</p>",
        "w1.html": b"<p>worker 1 CHART</p>",
        ".sitegen-site": b"",
    }
