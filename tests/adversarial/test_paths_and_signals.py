"""Adversarial output paths, signals and `sitegen serve` requests, typed as a user would.

Each `--out` case must exit 1 with a message naming the path, and leave every
file where it was; each signal must leave the live site as it was; the server
must answer only requests addressed to itself and never list a folder.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import signal
import time
from pathlib import Path

import pytest
from conftest import add_run, serving, sitegen_process

ROOT = Path(__file__).resolve().parents[2]


sitegen = sitegen_process


def everything(top: Path) -> dict[str, str]:
    """Every file and symlink under ``top`` (not followed), with its content or target."""
    found = {}
    for dirpath, dirs, names in os.walk(top):
        for name in names + [d for d in dirs if (Path(dirpath) / d).is_symlink()]:
            path = Path(dirpath) / name
            rel = path.relative_to(top).as_posix()
            if path.is_symlink():
                found[rel] = f"-> {path.readlink()}"
            else:
                found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small archive, built once, beside a user's folder of documents."""
    top = tmp_path_factory.mktemp("paths")
    archive = top / "archive"
    archive.mkdir()
    (archive / "sitegen.toml").write_text("[site]\nsearch = false\n")
    add_run(archive, "r1")
    done = sitegen(archive, "build", "--quiet")
    assert done.returncode == 0, done.stderr
    return archive


def _setup_documents(top: Path) -> None:
    docs = top / "my-documents"
    docs.mkdir(exist_ok=True)
    (docs / "thesis.txt").write_text("three years of work\n")
    (top / "notes.txt").write_text("a plain file\n")
    (top / "foreign").mkdir(exist_ok=True)
    (top / "foreign" / "index.html").write_text("<p>someone else's site</p>\n")
    link = top / "docs-link"
    if not link.is_symlink():
        link.symlink_to(docs)


OUT_REFUSED = {
    "my-documents with a user file": ("../my-documents", "sitegen did not make"),
    "the runs folder": ("runs", "overlaps the archive's runs"),
    "a run inside runs": ("runs/r1", "overlaps the archive's runs"),
    "a new folder inside runs": ("runs/new-site", "overlaps the archive's runs"),
    "the archive itself": (".", "archive folder"),
    "the archive's parent": ("..", "archive folder or holds it"),
    "the file system root": ("/", "archive folder or holds it"),
    "a plain file": ("../notes.txt", "is a file"),
    "catalogue.json": ("catalogue.json", "catalogue.json"),
    "the cache": (".sitegen-cache", ".sitegen-cache"),
    "templates (absent)": ("templates", "templates"),
    "methodology.md (absent)": ("methodology.md", "methodology.md"),
    "a non-empty foreign site": ("../foreign", "sitegen did not make"),
    "a symlink to the documents": ("../docs-link", "symlink that sitegen did not make"),
    "inside the builds folder": (".site.builds/x", "earlier sitegen builds"),
    "runs through a trailing slash": ("runs/", "overlaps the archive's runs"),
    "runs through ./../archive": ("../archive/runs", "overlaps the archive's runs"),
}


@pytest.mark.parametrize("case", list(OUT_REFUSED))
@pytest.mark.parametrize("command", ["build", "serve"])
def test_out_refuses_what_sitegen_did_not_make(built: Path, case: str, command: str):
    top = built.parent
    _setup_documents(top)
    out, reason = OUT_REFUSED[case]
    before = everything(top)
    result = sitegen(built, command, "--out", out)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert f"refusing to write the site to {Path(out)}:" in result.stderr, result.stderr
    assert reason in result.stderr
    assert "Traceback" not in result.stderr
    assert everything(top) == before  # nothing deleted, moved or added


OUT_ACCEPTED = {
    "an empty folder": "../empty",
    "a new folder beside the archive": "../public/site",
    "a new folder in the archive": "public",
}


@pytest.mark.parametrize("case", list(OUT_ACCEPTED))
def test_out_builds_into_a_new_or_empty_folder_and_rebuilds_there(built: Path, case: str):
    (built.parent / "empty").mkdir(exist_ok=True)
    out = OUT_ACCEPTED[case]
    for _ in range(2):  # the second build replaces what the first made
        result = sitegen(built, "build", "--quiet", "--force", "--out", out)
        assert result.returncode == 0, result.stderr
    site = built / out
    assert site.is_symlink() and (site / ".sitegen-site").is_file()
    assert (site / "catalogue.json").read_bytes() == (built / "catalogue.json").read_bytes()


def test_gate_scans_the_folder_the_last_build_wrote(built: Path):
    result = sitegen(built, "build", "--quiet", "--force", "--out", "../gated/site")
    assert result.returncode == 0, result.stderr
    page = built.parent / "gated" / "site" / "index.html"
    target = page.resolve()
    target.unlink()  # a hand edit after the build, as a deploy script might make
    target.write_text("<p>box at 10.7.7.7</p>\n")
    report = sitegen(built, "gate")
    assert report.returncode == 1 and "site/index.html" in report.stdout, report.stdout
    assert sitegen(built, "gate", "--out", "site").returncode == 0  # the default site is clean


@pytest.mark.parametrize(
    ("point", "sig", "status"),
    [
        ("loaded", "INT", 130),
        ("rendered", "TERM", 143),
        ("staged", "INT", 130),
        ("links-checked", "TERM", 143),
        ("before-swap", "INT", 0),  # held during the commit: the build completes
        ("rendered", "KILL", -signal.SIGKILL),
        ("before-swap", "KILL", -signal.SIGKILL),
    ],
)
def test_a_signal_before_the_commit_leaves_the_live_site(
    tmp_path: Path, point: str, sig: str, status: int
):
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "sitegen.toml").write_text("[site]\nsearch = false\n")
    add_run(archive, "r1")
    assert sitegen(archive, "build", "--quiet").returncode == 0
    site = everything((archive / "site").resolve())
    catalogue = (archive / "catalogue.json").read_bytes()
    add_run(archive, "r2")
    result = sitegen(archive, "build", "--quiet", fault=f"{point}:{sig}")
    if status == 0:
        # A signal during the commit waits for it: a complete new pair, then the stop.
        assert result.returncode == 130, result.stderr
        assert "r2" in (archive / "site" / "catalogue.json").read_text()
    else:
        assert result.returncode == status, result.stderr
        assert everything((archive / "site").resolve()) == site
        assert (archive / "catalogue.json").read_bytes() == catalogue
    assert (archive / "site" / "catalogue.json").read_bytes() == (
        archive / "catalogue.json"
    ).read_bytes()


def _request(port: int, path: str, host: str | None) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.putrequest("GET", path, skip_host=True)
    if host is not None:
        conn.putheader("Host", host)
    conn.endheaders()
    status = conn.getresponse().status
    conn.close()
    return status


@pytest.fixture
def served(tmp_path: Path):
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "sitegen.toml").write_text("[site]\nsearch = false\n")
    add_run(archive, "r1")
    with serving(archive) as server:
        yield archive, server.port, server.messages


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("127.0.0.1:{port}", 200),
        ("localhost:{port}", 200),
        ("LOCALHOST:{port}", 200),
        ("evil.example:{port}", 403),
        ("127.0.0.1", 403),
        ("127.0.0.1:1", 403),
        ("attacker.test", 403),
        (None, 400),
    ],
)
def test_serve_answers_only_requests_addressed_to_it(served, host: str | None, status: int):
    _archive, port, _messages = served
    header = host.format(port=port) if host is not None else None
    assert _request(port, "/index.html", header) == status


def test_serve_lists_no_folder(served):
    _archive, port, _messages = served
    host = f"127.0.0.1:{port}"
    assert _request(port, "/", host) == 200  # index.html
    assert _request(port, "/assets/", host) == 404  # a folder without index.html


def test_serve_keeps_answering_from_the_previous_site_after_a_failed_rebuild(served):
    archive, port, messages = served
    host = f"127.0.0.1:{port}"
    add_run(archive, "r2", **{"run.md": "See [the notes](missing.txt).\n"})
    deadline = time.time() + 60
    while not any("rebuild failed" in m for m in messages) and time.time() < deadline:
        time.sleep(0.1)
    assert any("broken link 'missing.txt'" in m for m in messages), messages
    for path in ("/", "/index.html", "/runs/r1/", "/catalogue.json"):
        assert _request(port, path, host) == 200, path
    assert _request(port, "/runs/r2/", host) == 404
