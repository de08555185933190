"""Adversarial corpus for issue 11: published runs stay published, the gate scans
exactly what is published, its blind spots are closed, and no run file runs
script on the site's origin.

Every case starts from a copy of one small archive whose run ``r1`` is already
published (built once, so it is in ``runs.lock``), changes it the way a careless
or hostile publisher would, runs ``sitegen build`` from inside the archive as a
user types it, and checks the exit status, that the message names the file
(and line where there is one), and that nothing private reached ``site/``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import add_run, call_record, cli_in, end_record, lines, meta_record

TOKEN = "ghp_" + "Qx7Lm2Vb9Rt4Wz8Kp3Nd6Hs1Yc5Fj0Ga2Ue9"  # provider-shaped, made up
Setup = Callable[[Path], None]


def cli(root: Path, *args: str) -> tuple[int, str]:
    """``sitegen ARGS`` with the archive as the working folder, default arguments."""
    result = cli_in(root, *args)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    """An archive whose run r1 is built and locked."""
    root = tmp_path_factory.mktemp("published")
    add_run(root, "r1")
    code, out = cli(root, "build", "--quiet")
    assert code == 0, out
    assert "r1" in json.loads((root / "runs.lock").read_text())["runs"]
    return root


@pytest.fixture
def archive(published, tmp_path) -> Path:
    root = tmp_path / "archive"
    shutil.copytree(published, root, symlinks=True)
    return root


def site_bytes(root: Path) -> dict[str, bytes]:
    site = root / "site"
    out = {str(p.relative_to(site)): p.read_bytes() for p in site.rglob("*") if p.is_file()}
    out["<catalogue>"] = (root / "catalogue.json").read_bytes()
    out["<lock>"] = (root / "runs.lock").read_bytes()
    return out


def nothing_in_site(root: Path, secret: str) -> None:
    site = root / "site"
    for path in site.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
        assert secret not in path.name, path


# --- failing cases: (setup, build arguments, text the message must hold, private text)


def _edit(rel: str, old: str, new: str) -> Setup:
    def setup(root: Path) -> None:
        path = root / "runs" / "r1" / rel
        path.write_text(path.read_text().replace(old, new, 1))

    return setup


def _append(rel: str, data: str) -> Setup:
    def setup(root: Path) -> None:
        with (root / "runs" / "r1" / rel).open("a") as fh:
            fh.write(data)

    return setup


def _lock(text: str) -> Setup:
    def setup(root: Path) -> None:
        (root / "runs.lock").write_text(text)

    return setup


def _clash(root: Path) -> None:
    # a new run whose ledger claims the published run's id
    folder = add_run(root, "a0")
    (folder / "run.jsonl").write_text(lines(meta_record("r1"), call_record(), end_record()))


def _fifo(root: Path) -> None:
    os.mkfifo(add_run(root, "r2") / "pipe.log")


def _socket(root: Path) -> None:
    folder = add_run(root, "r2")
    sock = socket.socket(socket.AF_UNIX)
    cwd = Path.cwd()
    os.chdir(folder)  # AF_UNIX paths are limited to about 100 bytes: bind a short one
    try:
        sock.bind("agent.sock")
    finally:
        os.chdir(cwd)
        sock.close()


def _run_with(**files: str | bytes) -> Setup:
    return lambda root: add_run(root, "r2", **files) and None


def _bad_name(name: bytes) -> Setup:
    def setup(root: Path) -> None:
        folder = add_run(root, "r2")
        with open(os.fsencode(folder) + b"/" + name, "wb") as fh:
            fh.write(b"hello\n")

    return setup


FAILING: dict[str, tuple[Setup, tuple[str, ...], str, str | None]] = {
    # published is published
    "lock-status-edited-skip-invalid": (
        _edit("metadata.json", '"status": "complete"', '"status": "bogus"'),
        ("--skip-invalid",),
        "runs/r1/metadata.json",
        None,
    ),
    "lock-empty-line-appended-skip-invalid": (
        _append("run.jsonl", "\n"),
        ("--skip-invalid",),
        "runs/r1/run.jsonl:4",
        None,
    ),
    "lock-run-deleted-skip-invalid": (
        lambda root: shutil.rmtree(root / "runs" / "r1"),
        ("--skip-invalid",),
        "runs/r1: published run is missing",
        None,
    ),
    "lock-id-claimed-by-newcomer": (_clash, (), "runs/a0/run.jsonl:1", None),
    "lock-bad-json": (
        _lock('{\n  "format": "sitegen.runs-lock/1",\n  "runs": {\n'),
        (),
        "runs.lock:4",
        None,
    ),
    "lock-runs-not-an-object": (
        _lock('{\n  "format": "sitegen.runs-lock/1",\n  "runs": []\n}\n'),
        (),
        "runs.lock:3: $.runs",
        None,
    ),
    "lock-entry-bad-digest": (
        _lock(
            '{\n  "format": "sitegen.runs-lock/1",\n  "runs": {\n'
            '    "r1": {"digest": "x", "files": {}}\n  }\n}\n'
        ),
        (),
        "runs.lock:4: $.runs['r1']",
        None,
    ),
    "lock-deep-nesting": (
        _lock("[" * 10_000 + "]" * 10_000),
        (),
        "runs.lock:1:65: nesting deeper than 64 levels",
        None,
    ),
    # special files are refused by lstat, never opened
    "fifo": (_fifo, (), "runs/r2/pipe.log: is a FIFO", None),
    "socket": (_socket, (), "runs/r2/agent.sock: is a socket", None),
    # hidden files and folders
    "git-config-token": (
        _run_with(**{".git/config": f"[remote]\n  url = https://x:{TOKEN}@10.0.0.5/r\n"}),
        (),
        "runs/r2/.git: hidden folder",
        TOKEN,
    ),
    "dot-env": (_run_with(**{".env": f"GITHUB_TOKEN={TOKEN}\n"}), (), "runs/r2/.env", TOKEN),
    "ds-store-in-subfolder": (
        _run_with(**{"source/.DS_Store": "10.0.0.5\n"}),
        (),
        "runs/r2/source/.DS_Store: hidden file",
        "10.0.0.5",
    ),
    # name tricks
    "name-newline": (_bad_name(b"a\nb.txt"), (), "control character U+000A", None),
    "name-tab": (_bad_name(b"a\tb.txt"), (), "control character U+0009", None),
    "name-del": (_bad_name(b"a\x7fb.txt"), (), "control character U+007F", None),
    "name-not-utf8": (
        _bad_name(b"caf\xe9.txt"),
        (),
        "runs/r2/caf\\xe9.txt: file name is not valid UTF-8",
        None,
    ),
    "name-holds-private-address": (
        _run_with(**{"node-10.0.0.5.log": "ok\n"}),
        (),
        "runs/r2/node-10.0.0.5.log:1:1: [ipv4] file name",
        "10.0.0.5",
    ),
    # gate evasions
    "ipv4-glued-before": (
        _run_with(**{"run.md": "# n\n\nhost10.0.0.5 up\n"}),
        (),
        "runs/r2/run.md:3:5: [ipv4]",
        "10.0.0.5",
    ),
    "ipv4-glued-after": (
        _run_with(**{"run.md": "# n\n\nat 10.0.0.5abc\n"}),
        (),
        "runs/r2/run.md:3:4: [ipv4]",
        "10.0.0.5",
    ),
    "ipv4-cloud-dash": (
        _run_with(**{"run.log": "boot\njoined ip-10-0-0-5.ec2.internal\n"}),
        (),
        "runs/r2/run.log:2:8: [ipv4]",
        "ip-10-0-0-5",
    ),
    "ipv4-leading-zeros": (
        _run_with(**{"run.log": "peer 010.000.000.005\n"}),
        (),
        "runs/r2/run.log:1:6: [ipv4]",
        "010.000.000.005",
    ),
    "bare-login-name": (
        _run_with(**{"run.log": "as root@build-box\n"}),
        (),
        "runs/r2/run.log:1:4: [user-at-host]",
        "root@build-box",
    ),
    "bare-login-address": (
        _run_with(**{"run.log": "as alice@10.0.0.5\n"}),
        (),
        "runs/r2/run.log:1:4: [user-at-host]",
        "alice@10.0.0.5",
    ),
    "secret-in-bin-named-text": (
        _run_with(**{"dump.bin": f"token {TOKEN}\n"}),
        (),
        "runs/r2/dump.bin:1:7: [github-token]",
        TOKEN,
    ),
}


@pytest.mark.timeout(120)  # a build that opened the FIFO would hang here
@pytest.mark.parametrize("case", sorted(FAILING))
def test_refused_with_a_located_message_and_nothing_private_published(archive, case):
    setup, args, expected, private = FAILING[case]
    setup(archive)
    before = site_bytes(archive)
    code, out = cli(archive, "build", *args)
    assert code == 1, out
    assert expected in out, out
    assert "Traceback" not in out
    if private is not None:
        if private not in expected:  # a file name is its own location, shown as it is
            assert private not in out  # messages redact what they report
        nothing_in_site(archive, private)
    assert site_bytes(archive) == before  # the failed build left site, catalogue, lock as they were


def test_a_newcomer_claiming_a_published_id_is_left_out_not_the_published_run(archive):
    _clash(archive)
    code, out = cli(archive, "build", "--skip-invalid")
    assert code == 0, out
    assert "left out a0" in out and "runs/a0/run.jsonl:1" in out
    assert (archive / "site" / "runs" / "r1" / "index.html").is_file()
    assert not (archive / "site" / "runs" / "a0").exists()


def test_a_run_with_a_hidden_file_is_left_out_whole_with_skip_invalid(archive):
    add_run(archive, "r2", **{".env": f"T={TOKEN}\n", "run.md": "# fine\n"})
    code, out = cli(archive, "build", "--skip-invalid")
    assert code == 0, out
    assert "left out r2" in out and "runs/r2/.env: hidden file" in out
    assert not (archive / "site" / "runs" / "r2").exists()
    nothing_in_site(archive, TOKEN)


def test_check_warns_when_the_lock_lost_runs_the_catalogue_publishes(archive):
    (archive / "runs.lock").write_text('{"format": "sitegen.runs-lock/1", "runs": {}}\n')
    code, out = cli(archive, "check")
    assert code == 0, out
    assert "runs.lock: runs/r1 is published in catalogue.json but missing from runs.lock" in out


# --- cases that must build: look-alikes, odd names, script-in-files -----------------------

VERSIONS = (
    "# Stack\n\ncuDNN 9.1.0.70, CUDA 12.4.1.0, driver 550.54.15, torch 2.3.1.post0,\n"
    "TensorRT 10.0.1.6, built against cuda12.4.1.0; npm i react@latest\n"
)
SCRIPT = "<script>document.title='pwned';window.name='pwned'</script>"


@pytest.mark.parametrize(
    "files",
    [{"run.md": VERSIONS}, {"notes/stack.txt": VERSIONS.replace("#", "")}],
    ids=["versions-in-notes", "versions-in-a-text-file"],
)
def test_version_quads_after_a_library_name_build(archive, files):
    add_run(archive, "r2", **files)
    code, out = cli(archive, "build")
    assert code == 0, out


def test_a_file_named_with_query_and_fragment_characters_is_linked_percent_encoded(archive):
    add_run(archive, "r2", **{"a?b#c d.txt": "plain\n"})
    code, out = cli(archive, "build")
    assert code == 0, out  # the link check decoded the href and found the file
    page = (archive / "site" / "runs" / "r2" / "index.html").read_text()
    assert 'href="files/a%3Fb%23c%20d.txt"' in page
    assert (archive / "site" / "runs" / "r2" / "files" / "a?b#c d.txt").read_text() == "plain\n"


ACTIVE = {
    "notes.html": f"<html><body>{SCRIPT}</body></html>",
    "figure.svg": f'<svg xmlns="http://www.w3.org/2000/svg">{SCRIPT}</svg>',
    "data/feed.xml": '<?xml version="1.0"?><x/>',
    "README": f"<!DOCTYPE html>{SCRIPT}",  # no suffix: a host may sniff it as HTML
    "capture.log": f"  <html>{SCRIPT}",  # a name without a standard type: content decides
}


@pytest.mark.parametrize("rel", sorted(ACTIVE))
def test_a_file_a_browser_would_execute_is_published_as_text(archive, rel):
    add_run(archive, "r2", **{rel: ACTIVE[rel]})
    code, out = cli(archive, "build")
    assert code == 0, out
    files = archive / "site" / "runs" / "r2" / "files"
    assert not (files / rel).exists()
    assert (files / (rel + ".txt")).read_text() == ACTIVE[rel]
    page = (archive / "site" / "runs" / "r2" / "index.html").read_text()
    assert f'href="files/{rel}.txt"' in page and "shown as text" in page
    # the manifest (and so the digest readers cite) keeps the original name
    entry = json.loads((archive / "catalogue.json").read_text())["runs"]
    paths = {m["path"] for r in entry if r["id"] == "r2" for m in r["files"]}
    assert rel in paths


def test_a_text_name_beside_an_active_one_is_not_overwritten(archive):
    add_run(archive, "r2", **{"a.html": SCRIPT, "a.html.txt": "mine\n"})
    code, out = cli(archive, "build")
    assert code == 0, out
    files = archive / "site" / "runs" / "r2" / "files"
    assert (files / "a.html.txt").read_text() == "mine\n"
    assert (files / "a.html.txt.txt").read_text() == SCRIPT


@pytest.mark.parametrize("rel", ["notes.txt", "raw.json"])
def test_a_typed_text_file_starting_with_markup_keeps_its_name(archive, rel):
    # text/plain and application/json: Chromium never renders either as HTML
    add_run(archive, "r2", **{rel: f"<html>{SCRIPT}"})
    code, out = cli(archive, "build")
    assert code == 0, out
    assert (archive / "site" / "runs" / "r2" / "files" / rel).is_file()


# --- in a real browser ---------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed")
def test_no_script_from_run_files_runs_in_chromium(archive):
    sync_api = pytest.importorskip("playwright.sync_api")
    from sitegen.serve import make_server

    add_run(
        archive, "r2", **{"notes.html": ACTIVE["notes.html"], "figure.svg": ACTIVE["figure.svg"]}
    )
    code, out = cli(archive, "build")
    assert code == 0, out
    server = make_server(archive / "site", 0)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{port}/runs/r2/"
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
            )
            page = browser.new_page()
            foreign: list[str] = []
            page.route(
                "**/*",
                lambda r: (
                    (foreign.append(r.request.url), r.abort())
                    if urlsplit(r.request.url).hostname != "127.0.0.1"
                    else r.continue_()
                ),
            )
            page.goto(base + "index.html", wait_until="load")
            hrefs = page.eval_on_selector_all(
                "table.files a", "els => els.map(e => e.getAttribute('href'))"
            )
            assert "files/notes.html.txt" in hrefs and "files/figure.svg.txt" in hrefs
            for href in [h for h in hrefs if h.endswith(".txt")]:  # the rest download
                response = page.goto(base + href, wait_until="load")
                assert response is not None and response.ok, href
                page.wait_for_timeout(50)
                assert page.evaluate("document.title") != "pwned", href
                assert page.evaluate("window.name") != "pwned", href
            # the original names are not served at all
            assert page.goto(base + "files/notes.html").status == 404
            # control: the same bytes served as HTML do run, so the checks above can fail
            control = archive / "site" / "runs" / "r2" / "files" / "control.html"
            control.write_text(ACTIVE["notes.html"])
            page.goto(base + "files/control.html", wait_until="load")
            assert page.evaluate("document.title") == "pwned"
            browser.close()
            assert foreign == []
    finally:
        server.shutdown()
