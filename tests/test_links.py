"""The link check of a built site: messages, the page cache, and the fast URL scan
(which must find exactly what a scan of every tag finds)."""

from __future__ import annotations

import html
import random
import sqlite3
from pathlib import Path

import pytest

from sitegen import links
from sitegen.buildstate import STATE_FILE
from sitegen.links import check_links, page_urls


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


SITE = {
    "index.html": (
        '<html><body>\n<a href="runs/a/index.html">a</a>\n'
        '<a href="runs/b/">b</a> <img src="logo.png">\n'
        '<a href="https://example.org/x">out</a> <a href="#top">top</a>\n'
        "</body></html>\n"
    ),
    "runs/a/index.html": '<a href="../../index.html">home</a>\n<a href="files/run.jsonl">l</a>\n',
    "runs/a/files/run.jsonl": "{}\n",
    "runs/b/index.html": '<a href="../a/index.html">a</a>\n',
    "logo.png": "png",
}


@pytest.fixture
def counted(monkeypatch) -> list[str]:
    """The pages whose text is scanned for links, in order."""
    seen: list[str] = []
    summary = links._summary

    def spy(page_rel: str, text: str, *rest: str):
        seen.append(page_rel)
        return summary(page_rel, text, *rest)

    monkeypatch.setattr(links, "_summary", spy)
    return seen


def test_a_sound_site_has_no_problems(tmp_path):
    write(tmp_path, SITE)
    assert check_links(tmp_path) == []


def test_broken_links_and_unsafe_schemes_name_the_page_and_line(tmp_path):
    write(tmp_path, SITE)
    write(
        tmp_path,
        {
            "runs/b/index.html": (
                '<a href="../a/index.html">a</a>\n<p>\n<a href="../c/index.html">c</a>\n'
                '<a href="javascript:alert(1)">x</a> <a href="../../../etc/passwd">up</a>\n'
            )
        },
    )
    assert check_links(tmp_path) == [
        "runs/b/index.html:3: broken link '../c/index.html'",
        "runs/b/index.html:4: unsafe URL scheme in 'javascript:alert(1)'",
        "runs/b/index.html:4: broken link '../../../etc/passwd'",
    ]


def test_a_second_check_reads_no_page_and_a_changed_page_is_read_again(tmp_path, counted):
    site, cache = tmp_path / "site", tmp_path / "cache"
    write(site, SITE)
    assert check_links(site, cache) == []
    assert sorted(counted) == ["index.html", "runs/a/index.html", "runs/b/index.html"]
    assert (cache / STATE_FILE).is_file()
    counted.clear()
    assert check_links(site, cache) == []
    assert counted == []
    write(site, {"runs/b/index.html": '<a href="../a/index.html">a</a>\n<a href="x.html">x</a>\n'})
    assert check_links(site, cache) == ["runs/b/index.html:2: broken link 'x.html'"]
    assert counted == ["runs/b/index.html"]


def test_a_cached_page_whose_target_disappeared_is_still_reported(tmp_path, counted):
    site, cache = tmp_path / "site", tmp_path / "cache"
    write(site, SITE)
    assert check_links(site, cache) == []
    (site / "runs" / "a" / "files" / "run.jsonl").unlink()
    counted.clear()
    assert check_links(site, cache) == ["runs/a/index.html:2: broken link 'files/run.jsonl'"]
    assert counted == []  # the cached summary said what it links to


def test_unsafe_schemes_are_reported_from_the_cache_too(tmp_path):
    site, cache = tmp_path / "site", tmp_path / "cache"
    write(site, {"index.html": '<a href="data:text/html,x">x</a>\n<a href="vbscript:y">y</a>\n'})
    first = check_links(site, cache)
    assert first == [
        "index.html:1: unsafe URL scheme in 'data:text/html,x'",
        "index.html:2: unsafe URL scheme in 'vbscript:y'",
    ]
    assert check_links(site, cache) == first


def test_the_same_bytes_at_another_path_are_checked_at_that_path(tmp_path):
    site, cache = tmp_path / "site", tmp_path / "cache"
    page = '<a href="../other.html">o</a>\n'
    write(site, {"a/index.html": page, "other.html": ""})
    assert check_links(site, cache) == []
    write(site, {"a/b/index.html": page})
    assert check_links(site, cache) == ["a/b/index.html:1: broken link '../other.html'"]


def test_a_cache_of_another_version_or_unreadable_is_ignored(tmp_path, counted):
    site, cache = tmp_path / "site", tmp_path / "cache"
    write(site, SITE)
    check_links(site, cache)
    with sqlite3.connect(cache / STATE_FILE) as db:  # as if written by another sitegen
        db.execute("UPDATE meta SET value = 'older' WHERE name = 'code'")
    db.close()
    counted.clear()
    assert check_links(site, cache) == []
    assert len(counted) == 3
    (cache / STATE_FILE).write_text("{not a database")
    counted.clear()
    assert check_links(site, cache) == []
    assert len(counted) == 3


# --- the URL scan against a scan of every tag ------------------------------------------------


def every_tag(text: str) -> list[tuple[int, str]]:
    """The straightforward scan (what check_links did before it was made fast).

    Attributes without a value are left out: their URL is empty, never a problem.
    """
    out = []
    for tag in links._TAG.finditer(text):
        body = tag.group(0)[1:-1]
        name_end = links._TAG_NAME.match(body)
        for match in links._ATTR.finditer(body, name_end.end() if name_end else len(body)):
            raw = next((g for g in match.groups()[1:] if g is not None), None)
            if match.group(1).lower() in links._URL_ATTRS and raw is not None:
                out.append((text.count("\n", 0, tag.start()) + 1, html.unescape(raw)))
    return out


TRICKY = [
    '<a title="see href=x.html" href="y.html">t</a>',
    "<A HREF='UP.html'>u</A><img\nsrc=plain.png alt=x>",
    "<p>text href=not-a-tag.html and src = no</p>",
    '<svg><a xlink:href="#p"/><a href = "spaced.html"></a></svg>',
    '<object data="d.svg"></object><form action="/f"><button formaction="g">',
    '<video poster="p.jpg"></video><a data-href="no.html" href="&amp;x=1&lt;">e</a>',
    "<a href=\"x\"title='y'href=z>two</a>",
    "İİ<a href='after-wide-lowercase.html'>w</a>\n<a\n\nhref='line3.html'>",
    '<a title="a>b" href="cut.html">',
]


@pytest.mark.parametrize("text", TRICKY)
def test_the_fast_scan_finds_what_a_scan_of_every_tag_finds(text):
    assert page_urls(text) == every_tag(text)


def test_the_fast_scan_agrees_on_random_pages():
    rng = random.Random(7)
    pieces = [
        "<a href='a.html'>",
        '<img src="i.png" alt="href=q">',
        "</a>",
        "\n",
        "text ",
        "data=",
        '<div class="x" data-x="1">',
        "<A HREF=b.html>",
        "&lt;a href=c&gt;",
        "<",
        ">",
        "'",
        '"',
        "=",
        " SRC",
        "<a/",
        "<form action=f>",
        "İ",
        "<link rel=stylesheet href='s.css'>",
    ]
    for _ in range(2000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 40)))
        assert page_urls(text) == every_tag(text), text


def test_many_unread_pages_are_read_in_workers_with_the_same_report(tmp_path, monkeypatch, counted):
    """A first build reads every page: many are shared among worker processes.
    The report is the one a single process gives, and the next check reads none."""
    site = tmp_path / "site"
    pages = {
        f"runs/r{i:03d}/index.html": (
            f'<a href="../../index.html">home</a>\n<a href="../r{(i + 1) % 300:03d}/">next</a>\n'
            + ('<a href="gone.html">x</a>\n' if i % 50 == 7 else "")
            + ('<a href="javascript:void(0)">y</a>\n' if i == 123 else "")
        )
        for i in range(300)
    }
    write(site, {**SITE, **pages})
    assert len(pages) > links.POOL_ABOVE
    monkeypatch.setenv("SITEGEN_WORKERS", "1")
    alone = check_links(site)
    assert len(counted) == len(pages) + 3  # every page read here
    assert alone[0] == "runs/r007/index.html:3: broken link 'gone.html'"
    assert "runs/r123/index.html:3: unsafe URL scheme in 'javascript:void(0)'" in alone
    assert len(alone) == 7
    monkeypatch.setenv("SITEGEN_WORKERS", "2")
    counted.clear()
    assert check_links(site, tmp_path / "cache") == alone
    assert counted == []  # every page read in a worker
    counted.clear()
    assert check_links(site, tmp_path / "cache") == alone
    assert counted == []  # every summary from the store
