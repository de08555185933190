"""A failed, interrupted or killed build never changes the live site or catalogue.json.

Every build here is the CLI in a subprocess, run the way a user types it:
cwd is the archive, default arguments, relative paths. After each failure the
site (followed through its symlink) must hold exactly the files it held
before, byte for byte, and ``catalogue.json`` must be unchanged; the next
good build must then equal a cold build of the same inputs. Kills at named
points use the build's fault hook (``SITEGEN_FAULT``, see docs/deploying.md).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from conftest import add_run, sitegen_process

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def make_archive(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "sitegen.toml").write_text("[site]\nsearch = false\n")
    add_run(path, "r1", **{"run.md": "# Notes\n\nA first run.\n"})
    add_run(path, "r2")
    return path


sitegen = sitegen_process


def tree(site: Path) -> dict[str, str]:
    """{relpath: sha256} of every file of the site, its symlink followed."""
    site = site.resolve()
    found = {}
    for dirpath, _dirs, names in os.walk(site):
        for name in names:
            path = Path(dirpath) / name
            found[path.relative_to(site).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def snapshot(archive: Path, site: Path) -> tuple[dict[str, str], bytes, bytes]:
    return (
        tree(site),
        (archive / "catalogue.json").read_bytes(),
        (archive / "runs.lock").read_bytes(),
    )


def cold(archive: Path, tmp: Path) -> dict[str, str]:
    """The site a first build of the same inputs makes, in a fresh copy of the archive."""
    copy = tmp / f"cold-{len(list(tmp.glob('cold-*')))}"
    copy.mkdir()
    for name in ("runs", "sitegen.toml", "methodology.md", "runs.lock", "templates"):
        source = archive / name
        if source.is_dir():
            shutil.copytree(source, copy / name)
        elif source.exists():
            shutil.copy2(source, copy / name)
    done = sitegen(copy, "build", "--quiet")
    assert done.returncode == 0, done.stderr
    return tree(copy / "site")


def assert_untouched(before: tuple[dict[str, str], bytes, bytes], archive: Path, site: Path):
    after = snapshot(archive, site)
    assert after[0] == before[0], "the live site changed"
    assert after[1] == before[1], "catalogue.json changed"
    assert after[2] == before[2], "runs.lock changed"
    assert (site / "catalogue.json").read_bytes() == before[1]


def assert_pair(archive: Path, site: Path) -> None:
    assert (site / "catalogue.json").read_bytes() == (archive / "catalogue.json").read_bytes()


# Changes that make the second build fail, each at a different check.
def bad_ledger(a: Path) -> None:
    add_run(a, "r3")
    (a / "runs" / "r3" / "run.jsonl").write_text("not json\n")


def broken_link(a: Path) -> None:
    add_run(a, "r3", **{"run.md": "See [the notes](missing.txt).\n"})


def gate_in_run(a: Path) -> None:
    add_run(a, "r3", **{"run.md": "Server was at 10.1.2.3 during the run.\n"})


def gate_in_pages(a: Path) -> None:
    add_run(a, "r3")
    (a / "methodology.md").write_text("# Methodology\n\nThe box is at 10.4.4.4.\n")


def lock_violation(a: Path) -> None:
    with (a / "runs" / "r1" / "run.md").open("a") as fh:
        fh.write("An edit after publication.\n")


FAILURES = {
    "bad_ledger": (bad_ledger, "malformed JSON"),
    "broken_link": (broken_link, "broken link 'missing.txt'"),
    "gate_in_run": (gate_in_run, "runs/r3/run.md"),
    "gate_in_pages": (gate_in_pages, "site/methodology/index.html"),
    "lock_violation": (lock_violation, "differs from runs.lock"),
}
BEFORE_SWAP = ("loaded", "rendered", "staged", "links-checked", "checked", "before-swap")
AFTER_SWAP = ("after-swap", "after-catalogue")


def undo(archive: Path, saved: Path) -> None:
    """Put the archive's inputs back as they were before a failing change."""
    for name in ("runs", "methodology.md"):
        target = archive / name
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)
        if (saved / name).is_dir():
            shutil.copytree(saved / name, target)
        elif (saved / name).exists():
            shutil.copy2(saved / name, target)


def save_inputs(archive: Path, saved: Path) -> None:
    shutil.rmtree(saved, ignore_errors=True)
    saved.mkdir()
    shutil.copytree(archive / "runs", saved / "runs")
    if (archive / "methodology.md").exists():
        shutil.copy2(archive / "methodology.md", saved / "methodology.md")


def test_every_failure_and_kill_leaves_the_previous_site_then_a_good_build_is_complete(
    tmp_path: Path,
):
    archive = make_archive(tmp_path / "archive")
    site = archive / "site"
    assert sitegen(archive, "build", "--quiet").returncode == 0
    assert sitegen(archive, "build", "--quiet", "--force").returncode == 0  # a spare exists now
    saved = tmp_path / "saved"
    save_inputs(archive, saved)
    before = snapshot(archive, site)
    kept = sorted((archive / ".site.builds").iterdir())  # the live build and its spare

    for name, (change, message) in FAILURES.items():
        change(archive)
        failed = sitegen(archive, "build")
        assert failed.returncode == 1, (name, failed.stdout, failed.stderr)
        assert message in failed.stderr, (name, failed.stderr)
        assert "Traceback" not in failed.stderr
        assert_untouched(before, archive, site)
        # nothing of the failed build is left beside them (no staging, no spooled
        # pages); the spare it took and updated is deleted, not trusted
        left = set((archive / ".site.builds").iterdir())
        assert left <= set(kept) and len(left) >= 1, (name, left)
        checked = sitegen(archive, "check")  # check refuses exactly what build refuses
        assert checked.returncode == 1 and "ok:" not in checked.stdout, (name, checked.stdout)
        undo(archive, saved)

    # A valid change, then a kill, Ctrl-C or SIGTERM at each stage before the swap.
    add_run(archive, "r3")
    for point in BEFORE_SWAP:
        for sig, status in (("KILL", -signal.SIGKILL), ("INT", 130), ("TERM", 143)):
            if sig != "KILL" and point not in ("loaded", "staged", "checked"):
                continue
            died = sitegen(archive, "build", fault=f"{point}:{sig}")
            assert died.returncode == status, (point, sig, died.stderr)
            assert "Traceback" not in died.stderr
            assert_untouched(before, archive, site)
            if sig != "KILL":  # a clean stop removes its staging folder
                builds = list((archive / ".site.builds").iterdir())
                assert len(builds) == 1, (point, sig, builds)

    # A second build after failed ones succeeds and is the complete new site.
    done = sitegen(archive, "build", "--quiet")
    assert done.returncode == 0, done.stderr
    # what the killed builds left (staging folders, spooled pages) is gone too
    left = sorted(p.name for p in (archive / ".site.builds").iterdir())
    assert len(left) == 2 and all(name.startswith("build-") for name in left), left
    expected = cold(archive, tmp_path)
    assert tree(site) == expected
    assert_pair(archive, site)
    assert sitegen(archive, "check").returncode == 0


@pytest.mark.parametrize("point", AFTER_SWAP)
def test_a_kill_after_the_swap_leaves_the_new_site_and_the_next_build_finishes_the_pair(
    tmp_path: Path, point: str
):
    archive = make_archive(tmp_path / "archive")
    site = archive / "site"
    assert sitegen(archive, "build", "--quiet").returncode == 0
    add_run(archive, "r3")
    died = sitegen(archive, "build", fault=point)
    assert died.returncode == -signal.SIGKILL
    expected = cold(archive, tmp_path)
    assert tree(site) == expected  # the swap happened: the whole new site is live
    # The next build (even one that then fails) first finishes the interrupted commit.
    add_run(archive, "r4", **{"run.md": "See [the notes](missing.txt).\n"})
    again = sitegen(archive, "build")
    assert again.returncode == 1 and "broken link" in again.stderr, again.stderr
    assert_pair(archive, site)
    assert tree(site) == expected
    shutil.rmtree(archive / "runs" / "r4")
    assert sitegen(archive, "build", "--quiet").returncode == 0
    assert tree(site) == expected
    assert_pair(archive, site)


def test_ctrl_c_sent_while_rendering_keeps_the_live_site(tmp_path: Path):
    """A real SIGINT from outside, sent once the build says it has rendered pages."""
    archive = make_archive(tmp_path / "archive")
    site = archive / "site"
    assert sitegen(archive, "build", "--quiet").returncode == 0
    before = snapshot(archive, site)
    add_run(archive, "r3")
    (archive / "runs" / "r3" / "run.md").write_text("A run added before Ctrl-C.\n")
    for sig in (signal.SIGINT, signal.SIGTERM):
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        env.pop("SITEGEN_FAULT", None)
        proc = subprocess.Popen(
            [sys.executable, "-m", "sitegen", "build", "--force"],
            cwd=archive,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("pages:"):
                break
        time.sleep(0.05)
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=120)
        if proc.returncode == 0:  # finished before the signal landed: nothing to test
            continue
        assert proc.returncode in (130, 143), err
        assert "Traceback" not in err
        assert_untouched(before, archive, site)


FORMS = {
    "no argument": ((), "site"),
    "dot": ((".",), "site"),
    "dot slash": (("./",), "site"),
    "absolute": (("{archive}",), "site"),
    "symlinked archive": (("{link}",), "site"),
    "--out site": (("--out", "site"), "site"),
    "--out ../elsewhere/site": (("--out", "../elsewhere/site"), "../elsewhere/site"),
    "--out absolute": (("--out", "{tmp}/abs-out/site"), "{tmp}/abs-out/site"),
}


@pytest.mark.parametrize("form", list(FORMS))
def test_each_path_form_keeps_the_live_site_through_failures(tmp_path: Path, form: str):
    archive = make_archive(tmp_path / "archive")
    (tmp_path / "link").symlink_to(archive)
    (tmp_path / "elsewhere").mkdir()
    args_t, site_t = FORMS[form]
    fill = {"archive": str(archive), "link": str(tmp_path / "link"), "tmp": str(tmp_path)}
    args = [a.format(**fill) for a in args_t]
    site = archive / site_t.format(**fill)

    def build(*extra: str, fault: str | None = None) -> subprocess.CompletedProcess[str]:
        return sitegen(archive, "build", *args, *extra, fault=fault)

    assert build("--quiet").returncode == 0
    assert build("--quiet", "--force").returncode == 0
    before = snapshot(archive, site)
    broken_link(archive)
    failed = build()
    assert failed.returncode == 1 and "broken link" in failed.stderr, failed.stderr
    assert_untouched(before, archive, site)
    shutil.rmtree(archive / "runs" / "r3")
    add_run(archive, "r3")
    for point in ("staged", "before-swap"):
        assert build(fault=point).returncode == -signal.SIGKILL
        assert_untouched(before, archive, site)
    assert build(fault="checked:TERM").returncode == 143
    assert_untouched(before, archive, site)
    done = build("--quiet")
    assert done.returncode == 0, done.stderr
    assert tree(site) == cold(archive, tmp_path)
    assert_pair(archive, site)


def test_ctrl_c_while_the_command_line_loads_is_quiet(tmp_path: Path):
    """Ctrl-C in the first tenth of a second, while click and sitegen's modules are
    imported, ends as it does later: "interrupted", status 130, no traceback, the
    site as it was. The signal is real, sent when the import of click starts; the
    installed ``sitegen`` program starts at the same function."""
    archive = make_archive(tmp_path / "archive")
    site = archive / "site"
    assert sitegen(archive, "build", "--quiet").returncode == 0
    before = snapshot(archive, site)
    add_run(archive, "r3")
    code = (
        "import builtins, os, signal, sys\n"
        "real = builtins.__import__\n"
        "def hooked(name, *args, **kwargs):\n"
        "    if name == 'click':\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "    return real(name, *args, **kwargs)\n"
        "builtins.__import__ = hooked\n"
        "sys.argv = ['sitegen', 'build']\n"
        "from sitegen.__main__ import run\n"
        "run()\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=archive, env=env, capture_output=True, text=True
    )
    assert done.returncode == 130, done.stderr
    assert done.stderr == "interrupted\n"
    assert_untouched(before, archive, site)
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert scripts["project"]["scripts"]["sitegen"] == "sitegen.__main__:run"
