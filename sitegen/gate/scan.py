"""Scanning text, bytes and folders: findings located in the raw file.

Each file is matched twice at most: once on its raw view (entities decoded
for HTML and Markdown, NFKC applied, invisible characters removed) and once
on the lines that hold JSON escapes, decoded. Findings from both are merged
by (line, column, rule), so one leak is reported once.
"""

from __future__ import annotations

import hashlib
import operator
import os
import re
import unicodedata
import zlib
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate, compress, repeat
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from sitegen.discover import MAX_WALK_DEPTH
from sitegen.exceptions import BuildError, Problem, ValidationFailed
from sitegen.gate.decoded import View, escape_view, raw_view
from sitegen.gate.findings_cache import ScanCache
from sitegen.gate.rules import CREDENTIAL_RULES, FINDERS, Hit
from sitegen.layout import ALLOWLIST
from sitegen.workers import spawned_map, workers_for

if TYPE_CHECKING:
    from sitegen.gate.allowlist import Allowlist
    from sitegen.sitefiles import SiteFiles

KINDS = frozenset({"text", "markdown", "log", "json", "jsonl", "html", "yaml", "csv"})
_ENTITY_KINDS = frozenset({"html", "markdown"})
_JSON_KINDS = frozenset({"json", "jsonl"})

_KIND_BY_SUFFIX = {
    ".json": "json", ".geojson": "json", ".ipynb": "json", ".map": "json", ".webmanifest": "json",
    ".jsonl": "jsonl", ".ndjson": "jsonl",
    ".html": "html", ".htm": "html", ".xhtml": "html", ".xml": "html", ".svg": "html",
    ".md": "markdown", ".markdown": "markdown",
    ".log": "log", ".out": "log", ".err": "log",
    ".yaml": "yaml", ".yml": "yaml", ".cff": "yaml",
    ".csv": "csv", ".tsv": "csv",
}  # fmt: skip

# Version-control folders are never published.
SKIPPED_DIRS = frozenset({".git", ".hg", ".svn"})
_SNIFF_BYTES = 8192

# A text file this large (the site's catalogue.json, data/calls.csv) is scanned
# in chunks of whole lines, each cached by its bytes: adding a run changes the
# chunk it falls in, not the whole file (chunk ends are chosen by content, see
# chunk_ends). Exact because every rule reads within one line; a file with a
# private key, whose body spans lines, is scanned whole.
CHUNKED_MIN_BYTES = 1 << 20
_CHUNK_BYTES = 1 << 18


@dataclass(frozen=True, order=True)
class Finding:
    """One thing the gate refuses to publish, located in the raw file."""

    path: str  # display path, e.g. "runs/x/run.jsonl" or "site/runs/x/index.html"
    line: int  # 1-based
    column: int  # 1-based, in characters of the raw line
    rule: str
    redacted: str  # safe to print: never the whole secret
    fingerprint: str  # sha256 hex of f"{rule}:{matched_text}"

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: [{self.rule}] {self.redacted}"

    def to_problem(self) -> Problem:
        """The same location and text as a :class:`Problem`, for error reports."""
        return Problem(self.path, self.line, self.column, f"[{self.rule}] {self.redacted}")

    def allowlist_entry(self) -> str:
        """A ``[[allow]]`` table to paste into gate-allowlist.toml (reason left to fill)."""
        return (
            f"[[allow]]  # {self.path}:{self.line}:{self.column} [{self.rule}] {self.redacted}\n"
            f'fingerprint = "{self.fingerprint}"\n'
            'reason = ""\n'
        )


def fingerprint(rule: str, matched: str) -> str:
    """sha256 hex of ``rule:matched``: what an allowlist entry names."""
    return hashlib.sha256(f"{rule}:{matched}".encode("utf-8", "surrogatepass")).hexdigest()


class _Locator:
    """Raw offset -> (line, column), building the line table only when needed."""

    def __init__(self, text: str):
        self._text = text
        self._starts: list[int] | None = None

    def __call__(self, offset: int) -> tuple[int, int]:
        if self._starts is None:
            starts = [0]
            find = self._text.find
            i = find("\n")
            while i >= 0:
                starts.append(i + 1)
                i = find("\n", i + 1)
            self._starts = starts
        line = bisect_right(self._starts, offset)
        return line, offset - self._starts[line - 1] + 1


def _hits(view: View) -> list[Hit]:
    hits: list[Hit] = []
    for finder in FINDERS:
        hits.extend(finder(view.text))
    creds = [(h.start, h.end) for h in hits if h.rule in CREDENTIAL_RULES]
    if creds:
        hits = [
            h
            for h in hits
            if h.rule != "generic-secret" or not any(s < h.end and h.start < e for s, e in creds)
        ]
    return hits


def _invisible_label(ch: str) -> str:
    name = unicodedata.name(ch, "FORMAT CHARACTER")
    return f"U+{ord(ch):04X} {name}"


def scan_text(text: str, path: str, *, kind: str = "text") -> list[Finding]:
    """Every finding in ``text``, sorted by line, column and rule.

    ``kind`` says how the text is published: ``html`` and ``markdown`` have
    their character references decoded before matching.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {sorted(KINDS)}")
    entities = kind in _ENTITY_KINDS
    locate = _Locator(text)
    seen: set[tuple[int, int, str]] = set()
    findings: list[Finding] = []

    def add(raw_offset: int, rule: str, matched: str, redacted: str) -> None:
        line, col = locate(raw_offset)
        key = (line, col, rule)
        if key in seen:
            return
        seen.add(key)
        findings.append(Finding(path, line, col, rule, redacted, fingerprint(rule, matched)))

    views = [raw_view(text, entities=entities)]
    decoded = escape_view(text, entities=entities)
    if decoded is not None:
        views.append(decoded)
    for view in views:
        # an escaped \u200b is an invisible character once a JSON reader decodes it;
        # in a log or a source file it stays six visible characters
        if view is views[0] or kind in _JSON_KINDS:
            for off, ch in view.invisibles:
                add(off, "invisible-char", ch, _invisible_label(ch))
        for hit in _hits(view):
            add(view.raw_offset(hit.start), hit.rule, hit.matched, hit.redacted)
    findings.sort()
    return findings


def _suffix(name: str) -> str:
    """Lower-cased last suffix of a display path ("" when none): ".jsonl", ".html".

    What PurePosixPath(name).suffix gives, with string operations: a site
    scan asks for every one of tens of thousands of files.
    """
    path = name.replace("\\", "/")
    base = path.rpartition("/")[2]
    if base in ("", "."):  # a trailing "/" or "/.": pathlib's normalisation decides
        return PurePosixPath(path).suffix.lower()
    dot = base.rfind(".")
    return base[dot:].lower() if 0 < dot < len(base) - 1 else ""


def kind_for(name: str) -> str:
    """The scan kind for a file name (by its last suffix; ``text`` when unknown)."""
    return _kind_of_suffix(_suffix(name))


def _kind_of_suffix(suffix: str) -> str:
    return _KIND_BY_SUFFIX.get(suffix, "text")


def scan_bytes(data: bytes, path: str) -> list[Finding]:
    """Scan a file's bytes; invalid UTF-8 is replaced, never fatal."""
    text = data.decode("utf-8", errors="replace")
    return scan_text(text, path, kind=kind_for(path))


def _walk(root: Path, rel: str, out: list[tuple[str, Path]]) -> None:
    if rel.count("/") > MAX_WALK_DEPTH:
        return  # refused by discovery (runs) or never written (site); not walked
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as exc:
        raise BuildError(
            f"{root}: cannot list for the publication gate: {exc.strerror or exc}"
        ) from exc
    for entry in entries:
        if entry.is_symlink():
            continue  # never follow a link out of the published tree
        child_rel = f"{rel}/{entry.name}" if rel else entry.name
        if not (entry.is_dir(follow_symlinks=False) or entry.is_file(follow_symlinks=False)):
            continue  # a FIFO, socket or device is never opened (it could block forever)
        if entry.is_dir(follow_symlinks=False):
            if entry.name not in SKIPPED_DIRS:
                _walk(Path(entry.path), child_rel, out)
        elif entry.is_file(follow_symlinks=False):
            if not rel and entry.name == ALLOWLIST:
                continue  # the publisher's own exemptions, not published content
            out.append((child_rel, Path(entry.path)))


def scan_tree(
    root: Path,
    display_prefix: str,
    allowlist: Allowlist,
    cache: ScanCache | None = None,
    files: SiteFiles | None = None,
) -> list[Finding]:
    """Every finding in the regular files under ``root``, minus allowlisted ones.

    Symbolic links inside the tree are skipped, never followed (``root``
    itself may be one: the caller named it, e.g. a ``site`` link to the
    current build), and so are FIFOs, sockets and devices. A file whose first
    8 KiB hold a NUL byte is binary and not matched, whatever its name. Each
    path is matched too: a name can leak as much as a line.
    Paths are shown as ``display_prefix/relative/path``.

    ``files``, a listing of ``root`` shared with other steps, replaces the
    walk, and its known digests let ``cache`` answer without reading a file.
    """
    root = Path(root)
    if not root.is_dir():
        raise BuildError(f"{root}: the publication gate needs a folder to scan")
    listing: list[tuple[str, Path]] = []
    if files is None:
        _walk(root, "", listing)
    else:
        # the caller's list (for run folders, exactly what discovery accepted,
        # which never holds a hidden name), with the walk's exclusions for sites
        listing = [(rel, root) for rel in files.sorted() if _listed(rel)]
    prefix = display_prefix.strip("/")
    findings: list[Finding] = []
    names: list[tuple[str, str]] = []
    unknown: list[_Pending] = []  # to read: their bytes may still be in the cache
    unscanned: list[_Pending] = []  # to read and scan: not in the cache
    for rel, path in listing:
        suffix = _suffix(rel)
        display = f"{prefix}/{rel}" if prefix else rel
        names.append((rel, display))  # the name is published too (in the URL, the file list)
        # with a shared listing, ``path`` is the root: the file's Path is made
        # only when it is read (tens of thousands of Path objects cost seconds)
        source = path if files is None else (path, rel)
        digest = files.digest(rel) if files is not None and cache is not None else None
        cuts = files.cuts.get(rel) if files is not None else None
        known = _cached(display, suffix, cache, digest) if digest is not None else None
        if known is not None:
            findings.extend(known)
        else:
            pending = _Pending(source, display, suffix, digest, cuts)
            (unscanned if cache is None or digest is not None else unknown).append(pending)
    findings.extend(_scan_unscanned(unscanned, cache))
    for p in unknown:
        findings.extend(_scan_cached(p.source, p.display, p.suffix, cache, p.digest, p.cuts))
    findings.extend(names_findings(names, cache))
    return sorted(allowlist.filter(findings))


@dataclass(frozen=True)
class _Pending:
    """A file the scan has to read."""

    source: Path | tuple[Path, str]
    display: str
    suffix: str
    digest: str | None
    cuts: Sequence[int] | None


# Files to scan above which they are shared among worker processes. Starting
# two and stopping them took 0.12 s here, some 80 built pages' worth of scanning
# in one process (1.5 ms a page): below this, a build scans in its own process.
POOL_ABOVE = 256
_POOL_CHUNK = 16  # files a worker is sent at a time


def _scan_unscanned(pending: list[_Pending], cache: ScanCache | None) -> Iterator[Finding]:
    """Findings of files not in the cache: scanned in worker processes when many.

    A first build or a changed template leaves every page unscanned, and the
    scan is CPU work on independent files. A worker is sent each file's path,
    reads it and sends back its rows; a large text file comes back unscanned
    (None) and is scanned here, in cached chunks. Found the same as one by one.
    """
    workers = workers_for(len(pending), POOL_ABOVE, _POOL_CHUNK)
    jobs = [(str(_path(p.source)), p.display, p.suffix, cache is not None) for p in pending]
    with spawned_map(_scan_job, jobs, workers, chunksize=_POOL_CHUNK) as answers:
        for p, rows in zip(pending, answers, strict=True):
            if rows is None:
                yield from _scan_cached(p.source, p.display, p.suffix, cache, p.digest, p.cuts)
                continue
            if cache is not None and p.digest is not None:
                cache.put(cache.key(_kind_of_suffix(p.suffix), p.digest), rows)
            yield from (Finding(p.display, *row) for row in rows)


def _scan_job(job: tuple[str, str, str, bool]) -> list[list[Any]] | None:
    """One file's finding rows, in a worker; None for a large text file when
    ``chunked`` (the build scans it chunk by chunk, each chunk cached)."""
    path, display, suffix, chunked = job
    source = Path(path)
    # judged from the size and the first bytes: the build reads such a file itself
    large = chunked and _size(source) >= CHUNKED_MIN_BYTES
    if large and not is_binary(_read(source, _SNIFF_BYTES)):
        return None
    return _rows(_scan_file(_read(source), display, suffix))


def _listed(rel: str) -> bool:
    """What the walk would scan: not in a version-control folder, not the root allowlist."""
    if rel == ALLOWLIST:
        return False
    if not rel.startswith(".") and "/." not in rel:
        return True  # every skipped folder's name starts with a dot: most paths need no split
    return not any(p in SKIPPED_DIRS for p in rel.split("/")[:-1])


def _path(source: Path | tuple[Path, str]) -> Path:
    return source if isinstance(source, Path) else source[0].joinpath(source[1])


def _read(source: Path | tuple[Path, str], limit: int = -1) -> bytes:
    """The file's bytes (its first ``limit`` bytes when given)."""
    path = _path(source)
    try:
        with path.open("rb") as fh:
            return fh.read(limit)
    except OSError as exc:
        raise _unreadable(path, exc) from exc


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError as exc:
        raise _unreadable(path, exc) from exc


def _unreadable(path: Path, exc: OSError) -> BuildError:
    return BuildError(f"{path}: cannot read for the publication gate: {exc.strerror or exc}")


def is_binary(data: bytes) -> bool:
    """Judged by content, never by name: a NUL byte in the first 8 KiB.

    Text never holds NUL; images, archives, Parquet and model files do within
    their first bytes. So a text file named ``.bin`` is read and scanned.
    """
    return b"\x00" in data[:_SNIFF_BYTES]


def _scan_file(data: bytes, display: str, suffix: str) -> list[Finding]:
    """scan_bytes, except that a file whose content is binary is not read as text."""
    if is_binary(data):
        return []
    return scan_bytes(data, display)


def _name_findings(rel: str, display: str) -> list[Finding]:
    """Findings in a file's relative path (``10.0.0.5.log``, ``alice@build-box.txt``),
    reported at line 1, column 1 of the file they name."""
    return [
        Finding(display, 1, 1, f.rule, f"file name: {f.redacted}", f.fingerprint)
        for f in scan_text(rel, display)
    ]


# What may end a line for the rules or the locator: a name holding one is scanned alone.
_LINE_BREAKS = re.compile("[\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")


def names_findings(
    names: list[tuple[str, str]], cache: ScanCache | None = None, size: int = _CHUNK_BYTES
) -> list[Finding]:
    """:func:`_name_findings` of every (relative path, display) pair, in one scan.

    A site at 10,000 runs has 78,000 file names; scanned one by one, they took a
    second of every build. The rules read within one line (what the chunked scan
    of large files rests on), so the names are scanned one per line in a single
    text, and only a name whose line has a hit is scanned again alone, for the
    exact findings: the same as scanning each name alone, at a fraction of the cost.
    With ``cache``, that text is scanned in chunks like a large file, so a build
    that adds a run scans the chunks its new names fall in.
    """
    single: list[tuple[str, str]] = []
    batched: list[tuple[str, str]] = []
    for rel, display in names:
        alone = _LINE_BREAKS.search(rel) or (not rel.isascii() and not _utf8(rel))
        (single if alone else batched).append((rel, display))
    text = "\n".join(rel for rel, _ in batched)
    chunked = None
    if cache is not None:
        chunked = scan_chunks(text.encode("utf-8"), "", "text", cache, size)
    found = chunked[0] if chunked is not None else scan_text(text, "")
    hit_lines = {f.line for f in found}
    out: list[Finding] = []
    for rel, display in single + [batched[line - 1] for line in sorted(hit_lines)]:
        out.extend(_name_findings(rel, display))
    return out


def _utf8(text: str) -> bool:
    """Whether ``text`` encodes as UTF-8 (a name undecodable on disk holds surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _scan_cached(
    source: Path | tuple[Path, str],
    display: str,
    suffix: str,
    cache: ScanCache | None,
    digest: str | None,
    cuts: Sequence[int] | None = None,
) -> list[Finding]:
    """_scan_file, answered from ``cache`` when these bytes were scanned before.

    With the file's ``digest`` known, a cache hit never reads the file.
    ``cuts`` are where the writer suggests a large file be cut (see :func:`chunk_ends`).
    """
    if cache is None:
        return _scan_file(_read(source), display, suffix)
    data = None
    if digest is None:
        data = _read(source)
        digest = hashlib.sha256(data).hexdigest()
    known = _cached(display, suffix, cache, digest)
    if known is not None:
        return known
    kind = _kind_of_suffix(suffix)  # kind_for(display), its suffix already known
    data = _read(source) if data is None else data
    if len(data) >= CHUNKED_MIN_BYTES and not is_binary(data):
        chunked = scan_chunks(data, display, kind, cache, cuts=cuts)
        if chunked is not None:
            found, index = chunked
            cache.put(cache.key(f"{kind}/chunks", digest), index)
            return found
    found = _scan_file(data, display, suffix)
    cache.put(cache.key(kind, digest), _rows(found))
    return found


def _cached(
    display: str, suffix: str, cache: ScanCache | None, digest: str
) -> list[Finding] | None:
    """The findings of a file whose bytes have ``digest``, if the cache holds them."""
    if cache is None:
        return None
    kind = _kind_of_suffix(suffix)  # kind_for(display), its suffix already known
    rows = cache.get(cache.key(kind, digest))
    if rows is not None:
        return [Finding(display, *row) for row in rows]
    index = cache.get(cache.key(f"{kind}/chunks", digest))
    return _from_chunks(index, display, cache) if index is not None else None


def _rows(found: list[Finding]) -> list[list[Any]]:
    return [[f.line, f.column, f.rule, f.redacted, f.fingerprint] for f in found]


_BLOCK_BYTES = 1 << 22  # lines are judged a block at a time, to bound the memory of a large file


def _chosen_among(data: bytes, size: int, cuts: Sequence[int]) -> Iterator[int]:
    """:func:`_chosen` over the pieces between ``cuts`` instead of over lines.

    A cut is kept only where a line ends (right after a newline), in order; the
    others are passed over, so a wrong suggestion costs speed, never a finding.
    """
    step = (1 << 32) // size
    last, n, view = 0, len(data), memoryview(data)
    for cut in cuts:
        if last < cut <= n and data[cut - 1] == 10:  # b"\n"
            if zlib.crc32(view[last:cut]) < (cut - last) * step:
                yield cut
            last = cut


def _chosen(data: bytes, size: int) -> Iterator[int]:
    """The end offsets (after the newline) of the lines chosen as chunk ends, in order.

    A line is chosen with a chance proportional to its length: its CRC-32
    against a threshold. Every step over the lines runs in C (a Python loop per
    line would cost a second per hundred megabytes), a block of whole lines at
    a time.
    """
    step = (1 << 32) // size
    start, n = 0, len(data)
    while start < n:
        stop = data.find(b"\n", min(start + _BLOCK_BYTES, n) - 1)
        stop = n if stop < 0 else stop + 1
        lines = data[start:stop].split(b"\n")
        lengths = list(map(len, lines))
        chosen = compress(
            range(len(lines) - 1),  # the last piece has no newline after it
            map(operator.lt, map(zlib.crc32, lines), map(operator.mul, lengths, repeat(step))),
        )
        before = list(accumulate(lengths))  # bytes of lines 0..i, newlines not counted
        for i in chosen:
            yield start + before[i] + i + 1
        start = stop


def chunk_ends(
    data: bytes, size: int = _CHUNK_BYTES, cuts: Sequence[int] | None = None
) -> list[int]:
    """Where each chunk of ``data`` ends: right after a newline, chosen by content.

    Chunks average ``size`` bytes whatever the line lengths, and the same lines
    give the same ends wherever they sit in the file (see :func:`_chosen`).
    Chosen lines closer than ``size // 8`` to the last end are passed over; a
    stretch of ``4 * size`` with none is cut at a newline.

    ``cuts``, from the file's writer, are where its own pieces end (each entry
    of ``catalogue.json``): choosing among a few thousand pieces instead of
    millions of lines cut the 107 MB catalogue of 10,000 runs in a fraction of
    the 0.8 s it took. Any choice of line ends gives the same findings.
    """
    ends: list[int] = []
    last = 0

    def cut_until(stop: int) -> int:
        """Cut the stretch from ``last`` to ``stop`` where it runs too long."""
        nonlocal last
        while stop - last > 4 * size:
            newline = data.find(b"\n", last + 2 * size - 1, stop - 1)
            if newline < 0:
                break
            ends.append(newline + 1)
            last = newline + 1
        return last

    for end in _chosen(data, size) if cuts is None else _chosen_among(data, size, cuts):
        if end - cut_until(end) >= size // 8:
            ends.append(end)
            last = end
    if cut_until(len(data)) < len(data):
        ends.append(len(data))
    return ends


def scan_chunks(
    data: bytes,
    display: str,
    kind: str,
    cache: ScanCache,
    size: int = _CHUNK_BYTES,
    cuts: Sequence[int] | None = None,
) -> tuple[list[Finding], list[list[Any]]] | None:
    """Findings of a large text file, chunk by chunk; None when it must be scanned whole.

    A chunk after the first is scanned behind a line break, which is all a rule
    that reads within one line can see of what precedes it (and a BOM there is
    not the file's opening one). Returns the findings and the file's index:
    each chunk's key and line count.
    """
    found: list[Finding] = []
    index: list[list[Any]] = []
    start = 0
    lines = 0
    for end in chunk_ends(data, size, cuts):
        chunk = data[start:end]
        first = start == 0
        key = cache.key(f"{kind}/chunk{'0' if first else ''}", hashlib.sha256(chunk).hexdigest())
        rows = cache.get(key)
        if rows is None:
            text = chunk.decode("utf-8", errors="replace")
            shift = 0 if first else 1
            local = scan_text(text if first else "\n" + text, display, kind=kind)
            rows = [[f.line - shift, f.column, f.rule, f.redacted, f.fingerprint] for f in local]
            cache.put(key, rows)
        if any(row[2] == "private-key" for row in rows):
            return None
        found.extend(Finding(display, lines + row[0], *row[1:]) for row in rows)
        index.append([key, chunk.count(b"\n")])
        lines += index[-1][1]
        start = end
    return found, index


def _from_chunks(index: list[Any], display: str, cache: ScanCache) -> list[Finding] | None:
    """A chunked file's findings from its stored chunks (None if one is gone)."""
    found: list[Finding] = []
    lines = 0
    for key, count in index:
        rows = cache.get(key)
        if rows is None:
            return None
        found.extend(Finding(display, lines + row[0], *row[1:]) for row in rows)
        lines += count
    return found


def format_report(findings: list[Finding], *, fingerprints: bool = False) -> str:
    """A human report: one finding per line, optionally with each fingerprint.

    Fingerprints of short values (an IPv4 address, a user name) can be
    reversed by brute force, so they are off unless asked for.
    """
    lines = []
    for f in findings:
        lines.append(str(f))
        if fingerprints:
            lines.append(f"    fingerprint {f.fingerprint}")
    return "\n".join(lines)


def fail_on_findings(findings: list[Finding]) -> None:
    """Raise :class:`ValidationFailed` listing every finding; do nothing when there are none."""
    if findings:
        raise ValidationFailed([f.to_problem() for f in findings])
