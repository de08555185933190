"""The publisher's note of a run page, from the run's ``run.md``.

``sitegen run`` writes ``run.md`` as a report of the run (its facts, then a
table of warm TTFT and per-cell tables), which the run page already shows
from the ledger; a publisher adds their own words to it as block quotes
(``> **Note:** ...``). So of a runner report only the block quotes are the
note; any other ``run.md`` is the publisher's own text, all of it a note (a
first heading that repeats the run's title is left out: the page has it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from markdown_it import MarkdownIt
from markupsafe import Markup

from sitegen.pages.markup import markdown

_PARSER = MarkdownIt("commonmark").enable("table")
_QUOTE = re.compile(r"^ {0,3}> ?")
_REPORT_LINES = 15  # the runner's facts list starts within these lines


@dataclass(frozen=True)
class Note:
    html: Markup | None  # the note, sanitised; None when the file holds none
    report: bool  # run.md is the runner's report, whose tables the page shows


def is_runner_report(text: str, run_id: str) -> bool:
    """The runner's report names the run in its facts list: ``- Run id: `<id>` ``."""
    line = re.compile(r"^- Run id: `" + re.escape(run_id) + r"`\s*$")
    return any(line.match(x) for x in text.splitlines()[:_REPORT_LINES])


def publisher_note(text: str, run_id: str, title: str, demote: int = 2) -> Note:
    lines = text.splitlines()
    if is_runner_report(text, run_id):
        # The quotes' text, without the quote marks: the notice is the quote.
        quotes = [
            "\n".join(_QUOTE.sub("", x) for x in lines[t.map[0] : t.map[1]])
            for t in _PARSER.parse(text)
            if t.type == "blockquote_open" and t.level == 0 and t.map
        ]
        body = "\n\n".join(quotes)
        return Note(markdown(body, demote=demote) if body.strip() else None, True)
    if lines and lines[0].lstrip("# ").strip() == title.strip() and lines[0].startswith("# "):
        lines = lines[1:]
    body = "\n".join(lines)
    return Note(markdown(body, demote=demote) if body.strip() else None, False)
