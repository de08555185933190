"""An XSS corpus in metadata, notes, ledgers and imported files: rendered in a
real Chromium, no script runs, no on* attribute and no javascript: URL
survives, and nothing is requested from another host."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import ROOT, call_record, end_record, meta_record, metadata

from sitegen.build import build
from sitegen.serve import make_server

PAYLOADS = [
    line
    for line in (ROOT / "tests" / "data" / "xss" / "payloads.txt").read_text().splitlines()
    if line
]
# In notes, this one becomes a relative link to "java%09script:..." (the tab is
# percent-encoded, so it is no longer a scheme): harmless, but a broken link,
# which the build's link check refuses. It has its own test below.
BROKEN_LINK = "[click](java&#x09;script:alert('xss-13'))"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed"),
]


def hostile_archive(root: Path, write_run) -> None:
    """Every payload in every field a reader sees."""
    for i, payload in enumerate(PAYLOADS):
        run_id = f"x{i:02d}"
        md = metadata(
            run_id,
            title=f"Run {i} {payload}",
            description=payload,
            tags=[payload, "plain"],
            authors=[payload],
            license=payload,
            started_at_utc=f"2026-05-{1 + i % 28:02d}T10:00:00Z",
            finished_at_utc=f"2026-05-{1 + i % 28:02d}T10:05:00Z",
        )
        md["targets"][0]["model"] = payload
        md["targets"][0]["quantization"] = payload
        md["nodes"] = {"node-a": {"cpu": payload, "os": payload}}
        ledger = [
            meta_record(run_id),
            call_record(error=None, finish_reason=payload),
            call_record(
                run_idx=1, error=f"Boom: {payload}", first_delta_ms=None, total_duration_ms=None
            ),
            {"type": "skip", "cell_id": f"node-b:ollama:{payload}", "reason": payload},
            {"type": "result", "name": payload, "metric": payload, "value": 0.5, "unit": payload},
            end_record(),
        ]
        notes = "" if payload == BROKEN_LINK else f"{payload}\n\ntext {payload} text\n"
        write_run(run_id, md=md, ledger=ledger, run__md=f"# Notes {i}\n\n{notes}")


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
            ],
        )
        yield b
        b.close()


DOM_CHECK = """() => {
  const bad = [];
  for (const el of document.querySelectorAll('*')) {
    for (const attr of el.attributes) {
      const name = attr.name.toLowerCase();
      const value = attr.value.replace(/[\\s\\u0000-\\u001f]/g, '').toLowerCase();
      if (name.startsWith('on')) bad.push(el.tagName + ' ' + name);
      const urlAttr = ['href', 'src', 'action', 'data', 'formaction', 'xlink:href'].includes(name);
      const scheme = /^(javascript|vbscript|data:text[/]html)/.test(value);
      if (urlAttr && scheme) bad.push(el.tagName + ' ' + name + '=' + value);
    }
    if (el.tagName === 'SCRIPT' && !el.src) bad.push('inline script');
    const tag = el.tagName;
    if (['IFRAME', 'OBJECT', 'EMBED', 'BASE'].includes(tag)) bad.push('element ' + tag);
    const equiv = (el.httpEquiv || '').toLowerCase();
    if (tag === 'META' && equiv === 'refresh') bad.push('meta refresh');
  }
  return bad;
}"""


def test_no_payload_executes_or_survives_in_chromium(tmp_path, write_run, browser):
    hostile_archive(tmp_path, write_run)
    build(tmp_path)
    site = tmp_path / "site"
    pages = sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html"))
    assert len(pages) > len(PAYLOADS)
    server = make_server(site, 0)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    context = browser.new_context()
    dialogs: list[str] = []
    foreign: list[str] = []

    def route(route_obj):
        host = urlsplit(route_obj.request.url).hostname
        if host != "127.0.0.1":
            foreign.append(route_obj.request.url)
            route_obj.abort()
        else:
            route_obj.continue_()

    context.route("**/*", route)
    page = context.new_page()
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    problems: dict[str, list[str]] = {}
    try:
        for rel in pages:
            page.goto(f"http://127.0.0.1:{port}/{rel}", wait_until="load")
            page.wait_for_timeout(20)
            # Hover and focus everything once, so mouse/focus handlers would fire.
            page.evaluate(
                "() => document.querySelectorAll('a,button,input,summary').forEach(e => e.focus())"
            )
            bad = page.evaluate(DOM_CHECK)
            if bad:
                problems[rel] = bad
    finally:
        context.close()
        server.shutdown()
        server.server_close()
    assert not dialogs, f"scripts ran: {dialogs}"
    assert not problems, json.dumps(problems, indent=1)[:3000]
    assert not foreign, f"requests left 127.0.0.1: {foreign[:5]}"


def test_payload_text_is_shown_as_text(tmp_path, write_run):
    """Escaping keeps the words visible: readers see what the metadata says."""
    from bs4 import BeautifulSoup

    hostile_archive(tmp_path, write_run)
    build(tmp_path)
    page = BeautifulSoup(
        (tmp_path / "site" / "runs" / "x00" / "index.html").read_text(), "html.parser"
    )
    assert page.h1.get_text() == f"Run 0 {PAYLOADS[0]}"
    assert "{{ 7*7 }}" in (tmp_path / "site" / "runs" / "x19" / "index.html").read_text()


def test_an_encoded_tab_in_a_link_scheme_becomes_a_broken_relative_link(tmp_path, write_run):
    from sitegen.exceptions import BuildError

    write_run(run__md=f"{BROKEN_LINK}\n")
    with pytest.raises(BuildError, match=r"runs/r1/index\.html:\d+: broken link \"java%09script:"):
        build(tmp_path)
