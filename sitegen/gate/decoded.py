"""Decoded, normalised views of a file's text, with a map back to raw positions.

A secret can hide behind an HTML entity (``&#49;0.0.0.1``), a JSON escape
(``\\u0031``, ``\\/home\\/bob``), full-width digits or a zero-width space. The
rules match on a view where all of that is undone; every position in a view
maps back to an offset in the raw text, so a finding points at the line and
column the publisher sees in their editor.

Only lines that need it are rewritten: a pure-ASCII file without entities is
its own view, so the common case costs nothing here.
"""

from __future__ import annotations

import html
import re
import sys
import unicodedata
from bisect import bisect_right
from dataclasses import dataclass, field
from functools import cache, lru_cache

# Hangul fillers render as nothing but are letters (Lo), not format characters;
# they are a known way to smuggle invisible text, so they are rejected too.
_EXTRA_INVISIBLE = "\u115f\u1160\u3164\uffa0"
_BOM = "\ufeff"

_ENTITY = re.compile(r"&(?:#[0-9]{1,8};?|#[xX][0-9a-fA-F]{1,8};?|[A-Za-z][A-Za-z0-9]{1,31};?)")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")
_ASCII_BYTES = bytes(range(128))
_NON_ASCII_OR_ENTITY = re.compile(r"[^\x00-\x7f]|&")
_JSON_ESCAPE = re.compile(
    r"\\(?:u([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|([\"\\/bfnrt]))"
)
_SIMPLE_ESCAPES = {
    '"': '"',
    "\\": "\\",
    "/": "/",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
}


@cache
def invisible_re() -> re.Pattern[str]:
    """Every Unicode format character (category Cf) plus the Hangul fillers.

    Built from ``unicodedata`` once per process (about 0.1 s) and only when a
    file holds non-ASCII text, so it follows the running Python's Unicode
    version instead of a hand-copied table.
    """
    ranges: list[tuple[int, int]] = []
    for cp in range(sys.maxunicode + 1):
        if unicodedata.category(chr(cp)) == "Cf":
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1] = (ranges[-1][0], cp)
            else:
                ranges.append((cp, cp))
    parts = [
        re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
        for a, b in ranges
    ]
    parts.extend(re.escape(ch) for ch in _EXTRA_INVISIBLE)
    return re.compile("[" + "".join(parts) + "]")


def has_invisible(text: str) -> bool:
    """Whether ``text`` holds a character :func:`invisible_re` matches.

    Each of them is non-ASCII, and matching the class costs about 15 ns a
    character: only the non-ASCII characters are searched, found by dropping
    every ASCII byte of the UTF-8 encoding (a C loop; what is left decodes to
    exactly those characters, in order).
    """
    if text.isascii():
        return False
    rest = text.encode("utf-8", "surrogatepass").translate(None, _ASCII_BYTES)
    return invisible_re().search(rest.decode("utf-8", "surrogatepass")) is not None


@dataclass
class View:
    """Text to match on, plus the regions that differ from the raw text.

    Outside the regions the view is the raw text shifted by a constant; inside
    a region every character carries the raw offset it came from.
    """

    text: str
    invisibles: list[tuple[int, str]] = field(default_factory=list)  # (raw offset, char)
    _starts: list[int] = field(default_factory=list)
    _regions: list[tuple[int, int, list[int], int]] = field(default_factory=list)

    def add_region(self, n_start: int, offsets: list[int], raw_end: int) -> None:
        """Record that view[n_start : n_start + len(offsets)] came from ``offsets``."""
        self._starts.append(n_start)
        self._regions.append((n_start, n_start + len(offsets), offsets, raw_end))

    def raw_offset(self, pos: int) -> int:
        """Map a position in the view to the raw offset it came from."""
        i = bisect_right(self._starts, pos) - 1
        if i < 0:
            return pos
        n_start, n_end, offsets, raw_end = self._regions[i]
        if pos < n_end:
            return offsets[pos - n_start]
        return raw_end + (pos - n_end)


@lru_cache(maxsize=4096)
def _unescape_entity(entity: str) -> str:
    return html.unescape(entity)


def _decode_entities(s: str, offs: list[int]) -> tuple[str, list[int]]:
    out: list[str] = []
    new_offs: list[int] = []
    last = 0
    for m in _ENTITY.finditer(s):
        rep = _unescape_entity(m.group())
        if rep == m.group():
            continue
        out.append(s[last : m.start()])
        new_offs.extend(offs[last : m.start()])
        out.append(rep)
        new_offs.extend([offs[m.start()]] * len(rep))
        last = m.end()
    if not out:
        return s, offs
    out.append(s[last:])
    new_offs.extend(offs[last:])
    return "".join(out), new_offs


def _decode_json_escapes(s: str, offs: list[int]) -> tuple[str, list[int]]:
    out: list[str] = []
    new_offs: list[int] = []
    last = 0
    for m in _JSON_ESCAPE.finditer(s):
        hi, lo, single, simple = m.groups()
        if hi is not None:
            rep = chr(0x10000 + ((int(hi, 16) - 0xD800) << 10) + (int(lo, 16) - 0xDC00))
        elif single is not None:
            cp = int(single, 16)
            rep = "\ufffd" if 0xD800 <= cp <= 0xDFFF else chr(cp)
        else:
            rep = _SIMPLE_ESCAPES[simple]
        out.append(s[last : m.start()])
        new_offs.extend(offs[last : m.start()])
        out.append(rep)
        new_offs.append(offs[m.start()])
        last = m.end()
    out.append(s[last:])
    new_offs.extend(offs[last:])
    return "".join(out), new_offs


def _strip_invisible(
    s: str, offs: list[int], invisibles: list[tuple[int, str]]
) -> tuple[str, list[int]]:
    if not has_invisible(s):
        return s, offs
    pattern = invisible_re()
    out: list[str] = []
    new_offs: list[int] = []
    last = 0
    for m in pattern.finditer(s):
        off = offs[m.start()]
        if not (off == 0 and m.group() == _BOM):  # a BOM opening the file is fine
            invisibles.append((off, m.group()))
        out.append(s[last : m.start()])
        new_offs.extend(offs[last : m.start()])
        last = m.end()
    out.append(s[last:])
    new_offs.extend(offs[last:])
    return "".join(out), new_offs


def _nfkc(s: str, offs: list[int]) -> tuple[str, list[int]]:
    """NFKC per base character and its combining marks, keeping the offset map.

    Normalising cluster by cluster gives the same text as normalising the
    whole line for everything the rules look at, and lets every output
    character point at the raw character it came from. ASCII text between the
    clusters is copied as it is: only the non-ASCII runs are walked in Python,
    since built pages carry long lines with a single "…".
    """
    if unicodedata.is_normalized("NFKC", s):
        return s, offs
    combining, normalize = unicodedata.combining, unicodedata.normalize
    out: list[str] = []
    new_offs: list[int] = []
    last = 0  # s[:last] is done
    for m in _NON_ASCII_RUN.finditer(s):
        run_start, run_end = m.span()
        # a combining mark opening the run belongs to the ASCII character before it
        i = run_start - 1 if run_start > 0 and combining(s[run_start]) else run_start
        out.append(s[last:i])
        new_offs.extend(offs[last:i])
        while i < run_end:
            j = i + 1
            while j < run_end and combining(s[j]):
                j += 1
            norm = normalize("NFKC", s[i:j])
            out.append(norm)
            new_offs.extend([offs[i]] * len(norm))
            i = j
        last = run_end
    out.append(s[last:])
    new_offs.extend(offs[last:])
    return "".join(out), new_offs


def _normalise(
    s: str,
    offs: list[int],
    *,
    entities: bool,
    invisibles: list[tuple[int, str]],
    strip: bool = True,
) -> tuple[str, list[int]]:
    """Entities decoded (if asked), invisible characters removed, NFKC applied.

    ``strip=False`` says the caller knows the raw text holds no invisible
    character, which saves searching each line for one; a decoded reference
    (``&#8203;``) can still bring one, so a line with one is searched anyway.
    """
    if entities and "&" in s:
        raw = s
        s, offs = _decode_entities(s, offs)
        strip = strip or s is not raw
    if not s.isascii():
        if strip:
            s, offs = _strip_invisible(s, offs, invisibles)
        s, offs = _nfkc(s, offs)
    return s, offs


def _line_bounds(text: str, pos: int) -> tuple[int, int]:
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    return start, len(text) if end < 0 else end


def _entity_view(text: str) -> View:
    """Decode character references in text that is otherwise clean.

    One region per reference instead of one per line: built pages are full
    of ``&quot;`` and ``&amp;``, and copying offsets line by line would cost
    more than the matching itself.
    """
    view = View("")
    pieces: list[str] = []
    last = 0
    npos = 0
    for m in _ENTITY.finditer(text):
        ref = m.group()
        rep = _unescape_entity(ref)
        if rep == ref:
            continue
        start = m.start()
        if not rep.isascii():
            rep, _ = _strip_invisible(rep, [start] * len(rep), view.invisibles)
            rep = unicodedata.normalize("NFKC", rep)
        pieces.append(text[last:start])
        npos += start - last
        view.add_region(npos, [start] * len(rep), m.end())
        pieces.append(rep)
        npos += len(rep)
        last = m.end()
    if not pieces:
        view.text = text
        return view
    pieces.append(text[last:])
    view.text = "".join(pieces)
    return view


def raw_view(text: str, *, entities: bool) -> View:
    """The file's text with entities decoded (if asked), NFKC applied, invisibles removed."""
    needs_entities = entities and "&" in text
    hidden = has_invisible(text)  # searched once, not line by line: most texts hold none
    clean = not hidden and (text.isascii() or unicodedata.is_normalized("NFKC", text))
    if clean and not needs_entities:
        return View(text)
    if clean:
        return _entity_view(text)
    special = _NON_ASCII_OR_ENTITY if needs_entities else _NON_ASCII
    view = View("")
    pieces: list[str] = []
    last = 0  # raw offset copied up to
    npos = 0  # length of the view built so far
    pos = 0
    while (m := special.search(text, pos)) is not None:
        start, end = _line_bounds(text, m.start())
        pos = end + 1
        line = text[start:end]
        if not (
            hidden
            or (needs_entities and "&" in line)
            or not unicodedata.is_normalized("NFKC", line)
        ):
            continue  # what _normalise would give back untouched, without its offsets
        offs = list(range(start, end))
        new, new_offs = _normalise(
            line, offs, entities=entities, invisibles=view.invisibles, strip=hidden
        )
        if new != line or new_offs is not offs:
            pieces.append(text[last:start])
            npos += start - last
            view.add_region(npos, new_offs, end)
            pieces.append(new)
            npos += len(new)
            last = end
    if not view._regions:
        view.text = text
        return view
    pieces.append(text[last:])
    view.text = "".join(pieces)
    return view


def escape_view(text: str, *, entities: bool) -> View | None:
    """Only the lines holding JSON-style escapes, with the escapes decoded.

    An extra view, not a replacement: the raw view still sees the line as
    written. ``None`` when no line has an escape.
    """
    if "\\" not in text:
        return None
    view = View("")
    pieces: list[str] = []
    npos = 0
    pos = 0
    while (m := _JSON_ESCAPE.search(text, pos)) is not None:
        start, end = _line_bounds(text, m.start())
        s, offs = _decode_json_escapes(text[start:end], list(range(start, end)))
        s, offs = _normalise(s, offs, entities=entities, invisibles=view.invisibles)
        view.add_region(npos, offs, end)
        pieces.append(s)
        pieces.append("\n")
        npos += len(s) + 1
        pos = end + 1
    if not pieces:
        return None
    view.text = "".join(pieces)
    return view
