"""A stale page is impossible by construction.

For each kind of input (a run, a template override, a setting, the retractions,
the gate allowlist, the methodology, sitegen's own code and theme), a built
archive is changed and rebuilt the way a publisher does it: ``python -m sitegen
build`` run in the archive folder, with its default arguments. Then:

(a) ``site/``, ``catalogue.json`` and ``runs.lock`` hold, file for file and byte
    for byte, what a cold build of a fresh copy of the same inputs writes (no
    ``.sitegen-cache/``, no ``site/``, no ``.site.builds/``);
(b) the rebuild replaced exactly the files whose content differs between the
    cold builds before and after the change: every changed file is a new file
    in the live site, every other one is the very file (same inode) the
    previous build published; and the count of pages the build says it
    rendered covers every generated output that changed.

The guarantee of (b) is the one the code makes: a file of the site is written
only when its content differs from the spare build's copy (``docs/performance.md``).
Each measured rebuild therefore starts from a settled archive (``build --force``
with nothing changed, which renders nothing and leaves the spare build equal to
the live one). ``pagefind/`` is left out of (b): a search bundle is re-indexed
whole when one of its pages changes, and ``pagefind/bundles.json`` is written by
every build into its own folder; (a) covers it like every other file.

``sitegen serve`` is held to (a) too: while it serves, inputs change, and after
each rebuild the files written and the files served equal a cold build.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import call_record, end_record, lines, meta_record, metadata, sitegen_process

from sitegen.layout import INPUTS as ARCHIVE_INPUTS
from sitegen.layout import LOCK

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
# What a fresh clone of an archive holds besides caches and the built site.
INPUTS = (*ARCHIVE_INPUTS, LOCK)
RUNS = ("r1", "r2", "r3")
Files = dict[str, bytes]


# --- the archive --------------------------------------------------------------------


def write_run(archive: Path, run_id: str, day: int, model: str = "m1", notes: str = "") -> None:
    """A tiny run of three warm calls on ``node-a:llamacpp:<model>``, started on day ``day``."""
    cell = f"node-a:llamacpp:{model}"
    start, end = f"2026-05-0{day}T10:00:00Z", f"2026-05-0{day}T10:05:00Z"
    calls = [
        call_record(cell_id=cell, run_idx=k, first_delta_ms=100.0 + 7 * k + day) for k in range(3)
    ]
    ledger = lines(
        meta_record(run_id, started_at_utc=start, cells_planned=[cell]),
        *calls,
        end_record(finished_at_utc=end, calls=len(calls)),
    )
    md = metadata(run_id, started_at_utc=start, finished_at_utc=end)
    md["targets"][0] |= {"cell_id": cell, "model": model}
    folder = archive / "runs" / run_id
    folder.mkdir(parents=True)
    (folder / "run.jsonl").write_text(ledger, encoding="utf-8")
    (folder / "metadata.json").write_text(json.dumps(md, indent=2), encoding="utf-8")
    (folder / "run.md").write_text(notes or f"# Notes\n\nRun {run_id} went well.\n")


def make_archive(root: Path) -> Path:
    """Three runs (two of model m1, one of m2), settings and a methodology of its own."""
    root.mkdir(parents=True, exist_ok=True)
    for day, run_id in enumerate(RUNS, start=1):
        write_run(root, run_id, day, model="m2" if run_id == "r3" else "m1")
    (root / "sitegen.toml").write_text('[archive]\ntitle = "Dependency archive"\n')
    (root / "methodology.md").write_text("# Methodology\n\nEvery number is a median.\n")
    return root


def replace_file(path: Path, text: str) -> None:
    """Write ``path`` in one step (as editors save), so a watcher never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def edited(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"{old!r} should occur once"
    return text.replace(old, new)


# --- running sitegen ----------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    """What ``sitegen build`` printed, and the counts a publisher reads in it."""

    output: str
    rendered: int  # "pages: N rendered, ..."
    reused: int  # "..., M unchanged and reused"
    search_cached: int  # "search: ..., K from cache, ..."


def build(archive: Path, *args: str, code: Path = ROOT) -> Report:
    done = sitegen_process(archive, "build", *args, code=code)
    assert done.returncode == 0, done.stdout + done.stderr
    pages = re.search(r"^pages: (\d+) rendered, (\d+) unchanged and reused$", done.stdout, re.M)
    search = re.search(r"^search: .*, (\d+) from cache, \d+ indexed$", done.stdout, re.M)
    assert pages and search, done.stdout
    return Report(done.stdout, int(pages[1]), int(pages[2]), int(search[1]))


def failed_build(archive: Path, code: Path = ROOT) -> list[str]:
    """The errors of a build that has to fail."""
    done = sitegen_process(archive, "build", code=code)
    assert done.returncode == 1, done.stdout + done.stderr
    return sorted(line for line in done.stderr.splitlines() if line.startswith("error: "))


def outputs(archive: Path) -> Files:
    """Every file the build publishes: the site (by path under ``site/``) and the
    archive files written with it."""
    files = {name: (archive / name).read_bytes() for name in ("catalogue.json", "runs.lock")}
    for rel, path in _site_files(archive):
        files[rel] = path.read_bytes()
    return files


def identities(archive: Path) -> dict[str, tuple[int, int]]:
    """(device, inode) of each published file: which file it is, not what it holds."""
    paths = [(n, archive / n) for n in ("catalogue.json", "runs.lock")] + _site_files(archive)
    return {rel: (path.stat().st_dev, path.stat().st_ino) for rel, path in paths}


def _site_files(archive: Path) -> list[tuple[str, Path]]:
    site = archive / "site"
    assert site.is_symlink(), "site/ is the symlink a build swaps"
    found = []
    for dirpath, _dirs, names in os.walk(site):
        for name in names:
            path = Path(dirpath, name)
            found.append(("site/" + path.relative_to(site).as_posix(), path))
    return found


def copy_inputs(archive: Path, dest: Path) -> Path:
    """A fresh copy of the archive's inputs: what a clone of it holds, no caches, no site."""
    dest.mkdir(parents=True)
    for name in INPUTS:
        source = archive / name
        if source.is_dir():
            shutil.copytree(source, dest / name, symlinks=True)
        elif source.exists():
            shutil.copy2(source, dest / name)
    return dest


def changed(before: Files, after: Files) -> set[str]:
    """Paths added, removed, or holding other bytes."""
    return {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}


def assert_same_files(actual: Files, expected: Files, what: str) -> None:
    differ = sorted(changed(actual, expected))
    assert not differ, f"{what}: differs from a cold build in {differ[:20]}"


def generated(rel: str) -> bool:
    """Outputs the build renders (counted in "pages: N rendered"), not copies of files
    (run files, theme assets, data downloads), the search index or the site marker."""
    if rel == "site/data/index.html":
        return True
    if not rel.startswith("site/") or rel == "site/.sitegen-site":
        return False
    if re.match(r"site/runs/[^/]+/files/", rel):
        return False
    return not rel.startswith(("site/assets/", "site/data/", "site/pagefind/"))


# Generated outputs keyed by their own bytes: made by every build, counted as rendered
# only when those bytes differ from the live file's.
BY_CONTENT = {
    "site/catalogue.json",
    "site/CITATION.cff",
    "site/feeds/runs.atom",
    "site/feeds/regressions.atom",
    "site/sitemap.xml",
    "site/robots.txt",
}


def html_pages(paths: set[str]) -> set[str]:
    return {p for p in paths if p.endswith(".html")}


def run_pages(files: Files) -> set[str]:
    return {p for p in files if re.fullmatch(r"site/runs/[^/]+/index\.html", p)}


# --- one change, rebuilt -----------------------------------------------------------


@dataclass
class Rebuild:
    before: Files  # a cold build of the inputs before the change
    after: Files  # a cold build of the inputs after it
    live: Files  # what the rebuild left in the archive
    rewritten: set[str]  # published files that are new files after the rebuild
    report: Report  # what the rebuild printed
    cold_report: Report  # what the cold build after the change printed

    @property
    def changed(self) -> set[str]:
        return changed(self.before, self.after)

    def changed_pages(self) -> set[str]:
        return html_pages(self.changed)


Change = Callable[[Path], object]


def rebuild(
    archive: Path, before: Files, change: Change, scratch: Path, code: Path = ROOT
) -> Rebuild:
    """Settle the archive, apply ``change``, rebuild it, and cold-build a copy of its inputs.

    ``before`` is a cold build of the archive's current inputs; ``scratch`` a folder
    for the cold copy.
    """
    settled = build(archive, "--force", code=code)
    assert settled.rendered == 0, "a forced build with nothing changed renders nothing"
    assert_same_files(outputs(archive), before, "the site before the change")
    previous = identities(archive)
    change(archive)
    cold_copy = copy_inputs(archive, scratch)  # the inputs as the rebuild finds them
    with ThreadPoolExecutor(max_workers=1) as pool:  # the two builds share nothing
        cold_build = pool.submit(build, cold_copy, code=code)
        report = build(archive, code=code)
        cold = cold_build.result()
    live = outputs(archive)
    rewritten = {p for p, ident in identities(archive).items() if previous.get(p) != ident}
    return Rebuild(before, outputs(cold_copy), live, rewritten, report, cold)


def assert_up_to_date(r: Rebuild) -> None:
    """(a) the rebuild equals a cold build; (b) it replaced exactly what changed."""
    assert_same_files(r.live, r.after, "the rebuilt site")
    assert r.changed, "the change should show in the site"

    def checked(paths: set[str]) -> set[str]:
        return {p for p in paths if p in r.after and not p.startswith("site/pagefind/")}

    rewritten, changed_files = checked(r.rewritten), checked(r.changed)
    assert not changed_files - rewritten, f"changed, yet not replaced: {changed_files - rewritten}"
    assert not rewritten - changed_files, f"replaced, yet unchanged: {rewritten - changed_files}"
    fresh = {p for p in changed_files if generated(p)}
    assert r.report.rendered >= len(fresh), (r.report.rendered, sorted(fresh))


def assert_untouched(r: Rebuild, prefixes: tuple[str, ...]) -> None:
    """Nothing under these paths changed or was written again."""
    touched = {p for p in r.changed | r.rewritten if p.startswith(prefixes)}
    assert not touched, touched


# --- fixtures -----------------------------------------------------------------------


@dataclass(frozen=True)
class Seed:
    archive: Path
    cold: Files  # its cold build
    report: Report


@pytest.fixture(scope="module")
def seed(tmp_path_factory: pytest.TempPathFactory) -> Seed:
    """The base archive, built cold once for the whole module."""
    archive = make_archive(tmp_path_factory.mktemp("seed") / "archive")
    report = build(archive)
    return Seed(archive, outputs(archive), report)


@pytest.fixture
def archive(seed: Seed, tmp_path: Path) -> Path:
    """A copy of the base archive with the seed's caches (keyed by content, so they
    carry over), built once: its site is then the seed's cold build."""
    path = copy_inputs(seed.archive, tmp_path / "archive")
    shutil.copytree(seed.archive / ".sitegen-cache", path / ".sitegen-cache")
    build(path)
    assert_same_files(outputs(path), seed.cold, "a build with caches copied from elsewhere")
    return path


class Scratch:
    """Numbered fresh folders for the cold builds of one test."""

    def __init__(self, root: Path):
        self.root, self.count = root, 0

    def __call__(self) -> Path:
        self.count += 1
        return self.root / f"cold-{self.count}"


@pytest.fixture
def cold(tmp_path: Path) -> Scratch:
    return Scratch(tmp_path)


# --- 1. run files ---------------------------------------------------------------------


def test_a_new_run(archive: Path, seed: Seed, cold: Scratch):
    r = rebuild(archive, seed.cold, lambda a: write_run(a, "r4", 4, model="m2"), cold())
    assert_up_to_date(r)
    assert {
        "site/runs/r4/index.html",
        "site/runs/r4/files/run.md",
        "site/index.html",
        "site/models/m2/index.html",
        "site/data/calls.csv",
        "catalogue.json",
        "runs.lock",
    } <= r.changed
    # Other runs' pages, citations and files stay the very files they were.
    assert_untouched(r, ("site/runs/r1/", "site/runs/r2/", "site/runs/r3/"))
    assert not {"site/methodology/index.html", "site/404.html", "site/assets/style.css"} & r.changed
    # ... and were not even rendered: a cold build renders them, this one reused them.
    others = 3 * len(RUNS)  # index.html, cite.bib and CITATION.cff of each other run
    assert r.report.rendered <= r.cold_report.rendered - others, r.report.output


def test_editing_a_published_runs_notes_fails_like_a_cold_build(
    archive: Path, seed: Seed, cold: Scratch
):
    """Published runs never change (runs.lock): an edit of notes fails the rebuild, as it
    fails a cold build of the same inputs, and the live site stays as it was."""
    previous = identities(archive)
    notes = archive / "runs" / "r1" / "run.md"
    replace_file(notes, notes.read_text() + "\nAn afterthought.\n")
    errors = failed_build(archive)
    assert any("runs/r1: published run differs from runs.lock" in e for e in errors), errors
    assert failed_build(copy_inputs(archive, cold())) == errors
    assert_same_files(outputs(archive), seed.cold, "the site after a failed build")
    assert identities(archive) == previous


# --- 2. template overrides ------------------------------------------------------------


def test_a_template_override(archive: Path, seed: Seed, cold: Scratch):
    theme = ROOT / "templates"
    own = archive / "templates"
    run_html = (theme / "run.html").read_text()
    heading = "<h1>{{ run.title }}</h1>"

    # The publisher overrides one file of the theme: every run page changes, nothing else.
    house = edited(run_html, heading, heading + '\n<p class="house">Reviewed in house.</p>')
    r = rebuild(archive, seed.cold, lambda a: replace_file(own / "run.html", house), cold())
    assert_up_to_date(r)
    assert r.changed_pages() == run_pages(r.after)
    assert all(b"Reviewed in house." in r.after[p] for p in run_pages(r.after))
    assert r.report.rendered >= len(RUNS)

    # Edits the override, and overrides a stylesheet too.
    def edit(a: Path) -> None:
        replace_file(own / "run.html", house.replace("Reviewed in house.", "Checked twice."))
        style = (theme / "assets" / "style.css").read_text()
        replace_file(own / "assets" / "style.css", style + "\n.house { color: teal; }\n")

    r = rebuild(archive, r.after, edit, cold())
    assert_up_to_date(r)
    assert r.changed_pages() == run_pages(r.after)
    assert "site/assets/style.css" in r.changed
    assert all(b"Checked twice." in r.after[p] for p in run_pages(r.after))

    # Moves both into a subfolder, where they override nothing: the theme's site again.
    def disable(a: Path) -> None:
        (own / "disabled").mkdir()
        (own / "run.html").rename(own / "disabled" / "run.html")
        (own / "assets").rename(own / "disabled" / "assets")

    r = rebuild(archive, r.after, disable, cold())
    assert_up_to_date(r)
    assert_same_files(r.after, seed.cold, "the site without overrides")


# --- 3. settings ----------------------------------------------------------------------


def test_the_archive_title_setting(archive: Path, seed: Seed, cold: Scratch):
    def rename(a: Path) -> None:
        replace_file(a / "sitegen.toml", '[archive]\ntitle = "Renamed archive"\n')

    r = rebuild(archive, seed.cold, rename, cold())
    assert_up_to_date(r)
    pages = html_pages(set(r.after))
    assert r.changed_pages() >= pages  # the title is on every page
    assert all(b"Renamed archive" in r.after[p] for p in pages)
    assert {"catalogue.json", "site/data/datapackage.json", "site/CITATION.cff"} <= r.changed


def test_the_run_charts_setting(archive: Path, seed: Seed, cold: Scratch):
    """``site.run_charts = 1``: only the newest run's page keeps its charts."""

    def fewer_charts(a: Path) -> None:
        settings = a / "sitegen.toml"
        replace_file(settings, settings.read_text() + "[site]\nrun_charts = 1\n")

    r = rebuild(archive, seed.cold, fewer_charts, cold())
    assert_up_to_date(r)
    assert r.changed_pages() == {"site/runs/r1/index.html", "site/runs/r2/index.html"}
    assert b"<svg" in r.after["site/runs/r3/index.html"]
    assert b"<svg" not in r.after["site/runs/r1/index.html"]
    assert_untouched(r, ("site/runs/r3/",))


# --- 4. retractions -------------------------------------------------------------------


RETRACTION = (
    '[r2]\nreason = "Recorded while another job shared the machine."\ndate = "2026-06-01"\n'
)


def test_retracting_a_run_and_taking_it_back(archive: Path, seed: Seed, cold: Scratch):
    retractions = archive / "retractions.toml"
    r = rebuild(archive, seed.cold, lambda a: replace_file(retractions, RETRACTION), cold())
    assert_up_to_date(r)
    assert {"site/runs/r2/index.html", "site/index.html", "site/data/archive.sqlite"} <= r.changed
    assert b"Retracted on 2026-06-01." in r.after["site/runs/r2/index.html"]
    assert_untouched(r, ("site/runs/r1/", "site/runs/r3/", "site/runs/r2/files/"))

    r = rebuild(archive, r.after, lambda a: retractions.unlink(), cold())
    assert_up_to_date(r)
    assert_same_files(r.after, seed.cold, "the site with the retraction taken back")


# --- 5. the gate allowlist ------------------------------------------------------------


ADDRESS = "10.1.2.3"
ALLOW = (
    "[[allow]]\n"
    f'fingerprint = "{hashlib.sha256(f"ipv4:{ADDRESS}".encode()).hexdigest()}"\n'
    'reason = "The lab\'s shared demo box, listed on its public page."\n'
)


def test_the_gate_allowlist(archive: Path, seed: Seed, cold: Scratch):
    allowlist = archive / "gate-allowlist.toml"

    def plant_then_allow(a: Path) -> None:
        # A new run whose notes name a private address fails the build, and a cold one.
        previous = identities(a)
        write_run(a, "r4", 4, notes=f"# Notes\n\nServed from {ADDRESS}.\n")
        errors = failed_build(a)
        assert any(re.match(r"error: runs/r4/run\.md:3:\d+: \[ipv4\]", e) for e in errors)
        assert failed_build(copy_inputs(a, cold())) == errors
        assert_same_files(outputs(a), seed.cold, "the site after a failed build")
        assert identities(a) == previous
        # The publisher allows that address.
        replace_file(allowlist, ALLOW)

    r = rebuild(archive, seed.cold, plant_then_allow, cold())
    assert_up_to_date(r)
    assert ADDRESS.encode() in r.after["site/runs/r4/index.html"]
    assert_untouched(r, ("site/runs/r1/", "site/runs/r2/", "site/runs/r3/"))

    # Taking the entry out fails the build again (no cached verdict lets it through),
    # exactly as a cold build of the same inputs fails; the live site stays.
    previous = identities(archive)
    replace_file(allowlist, "# nothing is allowed\n")
    errors = failed_build(archive)
    assert any("runs/r4/run.md:3" in e and "[ipv4]" in e for e in errors), errors
    assert failed_build(copy_inputs(archive, cold())) == errors
    assert_same_files(outputs(archive), r.after, "the site after a failed build")
    assert identities(archive) == previous


# --- 6. methodology -------------------------------------------------------------------


def test_the_methodology(archive: Path, seed: Seed, cold: Scratch):
    methodology = archive / "methodology.md"

    def edit(a: Path) -> None:
        replace_file(methodology, methodology.read_text() + "\n## Spread\n\nQuartiles.\n")

    r = rebuild(archive, seed.cold, edit, cold())
    assert_up_to_date(r)
    assert r.changed_pages() == {"site/methodology/index.html"}
    assert b"Quartiles." in r.after["site/methodology/index.html"]
    assert_untouched(r, ("site/runs/",))

    # Without one of its own, the archive publishes sitegen's default methodology.
    r = rebuild(archive, r.after, lambda a: methodology.unlink(), cold())
    assert_up_to_date(r)
    assert r.changed_pages() == {"site/methodology/index.html"}
    assert b"What a run is" in r.after["site/methodology/index.html"]


# --- 7. sitegen itself ----------------------------------------------------------------


@pytest.fixture
def code(tmp_path: Path) -> Path:
    """A copy of sitegen laid out as in this repository: the package, and beside it the
    default theme and methodology."""
    root = tmp_path / "code"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "sitegen", root / "sitegen", ignore=ignore)
    shutil.copytree(ROOT / "templates", root / "templates")
    shutil.copy2(ROOT / "methodology.md", root / "methodology.md")
    found = subprocess.run(
        [sys.executable, "-c", "import sitegen; print(sitegen.__file__)"],
        cwd=tmp_path,  # not this checkout, which `-c` would put first on the path
        env=dict(os.environ, PYTHONPATH=str(root)),
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(found.stdout.strip()).parent == root / "sitegen", "the copy runs, not the install"
    return root


def _edit_file(rel: str, old: str, new: str) -> Change:
    def change_code(code: Path) -> None:
        path = code / rel
        replace_file(path, edited(path.read_text(), old, new))

    return change_code


CODE_CHANGES = {
    "a string in a module": _edit_file(
        "sitegen/pages/archive_pages.py",
        'page_title="Methodology"',
        'page_title="Methodology and terms"',
    ),
    "a comment in a module": _edit_file(
        "sitegen/aggregate.py", "from __future__", "# A comment.\nfrom __future__"
    ),
    "a file of the default theme": _edit_file(
        "templates/base.html", "Built by sitegen {{ version }}.", "Built in house."
    ),
}


@pytest.mark.parametrize("what", list(CODE_CHANGES))
def test_a_change_to_sitegen(what: str, archive: Path, seed: Seed, cold: Scratch, code: Path):
    r = rebuild(archive, seed.cold, lambda a: CODE_CHANGES[what](code), cold(), code=code)
    # Every cache is salted with one digest of the package: every page and citation is
    # rendered again, and the search index made again, even for a comment.
    keyed = {p for p in r.after if generated(p) and p not in BY_CONTENT}
    assert r.report.rendered == len(keyed) + len(BY_CONTENT & r.changed), r.report.output
    assert r.cold_report.rendered == len(keyed) + len(BY_CONTENT)
    assert r.report.search_cached == 0, r.report.output
    if what == "a comment in a module":
        assert_same_files(r.live, r.after, "the rebuilt site")
        assert not {p for p in r.changed if not p.startswith("site/pagefind/")}
        assert not {p for p in r.rewritten if not p.startswith("site/pagefind/")}
        return
    assert_up_to_date(r)
    if what == "a string in a module":
        assert r.changed_pages() == {"site/methodology/index.html"}
        assert b"Methodology and terms" in r.after["site/methodology/index.html"]
    else:
        assert r.changed_pages() == html_pages(set(r.after))
        assert all(b"Built in house." in r.after[p] for p in html_pages(set(r.after)))


# --- sitegen serve --------------------------------------------------------------------


class Served:
    """``python -m sitegen serve --port 0`` running in an archive, its output collected."""

    def __init__(self, archive: Path):
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        env.pop("SITEGEN_FAULT", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sitegen", "serve", "--port", "0"],
            cwd=archive,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        wait_for(lambda: self.port is not None, "sitegen serve to start", self)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def port(self) -> int | None:
        for line in self.lines:
            found = re.search(r" at http://127\.0\.0\.1:(\d+)/", line)
            if found:
                return int(found[1])
        return None

    def builds(self) -> int:
        """Builds finished so far, the failed ones included."""
        return sum(1 for line in self.lines if line.startswith(("wrote ", "rebuild failed")))

    def fetch(self, rel: str) -> bytes:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/{rel}", timeout=10) as reply:
            return reply.read()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(15)
        self.reader.join(5)


def wait_for(done: Callable[[], bool], what: str, served: Served, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert served.process.poll() is None, "sitegen serve exited:\n" + "\n".join(served.lines)
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n" + "\n".join(
            served.lines[-20:]
        )
        time.sleep(0.05)


@contextmanager
def serving(archive: Path) -> Iterator[Served]:
    served = Served(archive)
    try:
        yield served
    finally:
        served.stop()


def test_serve_rebuilds_what_a_cold_build_makes(archive: Path, seed: Seed, cold: Scratch):
    theme_run = (ROOT / "templates" / "run.html").read_text()

    def retract(a: Path) -> None:
        replace_file(a / "retractions.toml", RETRACTION)

    def override(a: Path) -> None:
        # The whole folder appears at once, as a checkout or a move puts it there.
        staged = a / ".templates-new"
        replace_file(staged / "run.html", theme_run.replace("</h1>", "</h1><p>In house.</p>", 1))
        staged.rename(a / "templates")

    def edit_methodology(a: Path) -> None:
        replace_file(a / "methodology.md", "# Methodology\n\nEvery number is a mean.\n")

    def take_back(a: Path) -> None:
        (a / "retractions.toml").unlink()

    # (what, the change, a page it shows on, what that page then shows)
    changes: list[tuple[str, Change, str, Callable[[bytes], bool]]] = [
        ("retract r2", retract, "runs/r2/index.html", lambda p: b"Retracted on" in p),
        ("override run.html", override, "runs/r1/index.html", lambda p: b"In house." in p),
        ("edit methodology.md", edit_methodology, "methodology/index.html", lambda p: b"mean" in p),
        ("take it back", take_back, "runs/r2/index.html", lambda p: b"Retracted on" not in p),
    ]
    with serving(archive) as served:
        assert served.fetch("index.html") == seed.cold["site/index.html"]
        for what, change, page, shows in changes:
            finished = served.builds()
            change(archive)
            cold_copy = copy_inputs(archive, cold())
            with ThreadPoolExecutor(max_workers=1) as pool:
                cold_build = pool.submit(build, cold_copy)
                wait_for(lambda n=finished: served.builds() > n, f"the rebuild: {what}", served)
                cold_build.result()
            assert not served.lines[-1].startswith("rebuild failed"), served.lines[-20:]
            expected = outputs(cold_copy)
            assert_same_files(outputs(archive), expected, f"the site written after: {what}")
            in_site = {rel: data for rel, data in expected.items() if rel.startswith("site/")}
            served_files = {rel: served.fetch(rel.removeprefix("site/")) for rel in in_site}
            assert_same_files(served_files, in_site, f"the site served after: {what}")
            assert shows(served_files["site/" + page]), what
