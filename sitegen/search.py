"""Site search with Pagefind, run on the staging folder once every page is written.

Every page is indexed unless it opts out: base.html marks each page's ``<main>``
``data-pagefind-body`` (header, navigation and footer are outside it), and a
template overrides the ``main_attrs`` block to leave a page out (the 404 page,
the blocks of older runs) or to give it a kind (``data-pagefind-meta``: run,
model, node, engine; "page" otherwise). Anything marked ``data-pagefind-ignore``
is left out (numeric tables, charts, digests, citations, the front page's run
table), and so are table headers, buttons and cells holding only a number;
cells, terms and badges are set apart so that excerpts never glue two into one
word. The site's own ``assets/search.js`` drives the search box in every
page's header, so Pagefind's UI bundles are removed. Pagefind's output depends
only on the HTML it reads (names are content hashes, no timestamps), which
keeps builds byte-identical; the build's determinism test covers it.

Indexing a whole large site costs tens of seconds, so the work is cut down
and cached:

- *Search documents.* Most of Pagefind's time goes into parsing whole pages,
  charts and tables included. It is handed instead a small document per page
  holding only the indexed elements, cut out of the page with string searches
  (the pages are sitegen's own, well-formed output): the same indexed text,
  read several times faster. Meta and filter attributes must sit on or inside
  an indexed element. Which document a page gives is cached by the page's
  sha256, so an unchanged page is not even read.
- *Bundles.* Run pages are spread over ``2**k`` bundles by a stable hash of
  the run id (at most ``SHARD_DOCS`` each); every other indexed page goes to
  the ``pages`` bundle. A bundle is cached under the hash of its documents,
  the Pagefind version and this module's code, and hardlinked into the site;
  adding a run re-indexes one bundle (and ``pages`` when the text of a model,
  node or engine page changed). When the run count crosses a power of two
  times ``SHARD_DOCS`` the bundles are cut anew, once. Each bundle's documents
  also stay in the cache as Pagefind's input, so re-indexing it writes only
  the documents that changed.
- In the browser, ``assets/search.js`` reads ``pagefind/bundles.json``, loads
  the first bundle's ``pagefind.js`` and merges the others with Pagefind's
  ``mergeIndex``: one search over all of them. Each bundle brings its own
  copy of the WebAssembly (about 75 KB), fetched on the first search.

- Pagefind's result URLs are site-relative (``/runs/x/index.html``, its
  ``baseUrl`` set to ``/``); ``search.js`` turns them into links relative to
  the page, so they work at any depth and under any base path.

Search fetches files, so it works when the site is served over http (``sitegen
serve`` or any static host); from file:// the box stays hidden and a note
says how to serve the site, and the run table's filter still works.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from sitegen.buildstate import BuildState, Memo
from sitegen.codeversion import code_version
from sitegen.exceptions import BuildError
from sitegen.sitefiles import SiteFiles

BUNDLE = "pagefind"
MANIFEST = "bundles.json"
# Pagefind's own UI: not used (assets/search.js talks to pagefind.js directly).
UNUSED = (
    "pagefind-ui.js",
    "pagefind-ui.css",
    "pagefind-component-ui.js",
    "pagefind-component-ui.css",
    "pagefind-modular-ui.js",
    "pagefind-modular-ui.css",
    "pagefind-highlight.js",
)
TIMEOUT_S = 600
# Run pages per bundle, at most: Pagefind indexes one bundle of this many
# documents in about 0.6 s of one core. 16 bundles hold 10,000 runs.
SHARD_DOCS = 640
PAGES_BUNDLE = "pages"
_INPUTS_DIR = "inputs"
_BUNDLES_DIR = "bundles"


# --- search documents: the indexed elements of a page --------------------------------

_START_TAG = re.compile(r"""<([A-Za-z][A-Za-z0-9:-]*)((?:[^>"']|"[^"]*"|'[^']*')*)>""")
_QUOTED = re.compile(r""""[^"]*"|'[^']*'""")
_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
     "track", "wbr"}
)  # fmt: skip
# Cells, terms, badges and line breaks that a browser sets apart but Pagefind joins into one
# word when no whitespace separates them ("<th>Cell</th><th>Node</th>" would be
# indexed and shown in excerpts as "CellNode"): a space is put after each.
_SEPARATE = re.compile(
    r"</(?:th|td|dt|dd|caption|figcaption|summary|li|tr|span)\s*>|<br\s*/?>", re.IGNORECASE
)
# Elements left out of every search document, whatever their attributes.
_DROPPED = re.compile(r"<(?:thead|button)(?=[\s>])", re.IGNORECASE)
# Table cells holding nothing but a number or a dash (the statistics tables of
# run notes): nobody searches for "552.9", and they crowd the words out of excerpts.
_NUMBER_CELL = re.compile(
    r"<td(?:\s[^>]*)?>\s*(?:[-+−]?\d[\d.,]*\s*%?|[-–—])\s*</td>", re.IGNORECASE
)
_DOC_HEAD = '<!doctype html><html lang="en"><head><meta charset="utf-8"></head><body>\n'
_DOC_TAIL = "\n</body></html>\n"


@functools.lru_cache(maxsize=64)
def _same_name(name: str) -> re.Pattern[str]:
    return re.compile(rf"<(/?){re.escape(name)}(?=[\s/>])", re.IGNORECASE)


def _has_attribute(attrs: str, name: str) -> bool:
    bare = _QUOTED.sub('""', attrs)  # a name inside a quoted value is not an attribute
    return re.search(rf"(?:^|\s){re.escape(name)}(?=[\s=/]|$)", bare) is not None


def _element_end(text: str, tag: re.Match[str]) -> int:
    """Offset just past the end tag matching the start tag ``tag`` (or the page's end)."""
    name = tag.group(1).lower()
    if name in _VOID or tag.group(0).endswith("/>"):
        return tag.end()
    same = _same_name(name)
    depth, pos = 1, tag.end()
    while depth:
        found = same.search(text, pos)
        if found is None:
            return len(text)
        close = text.find(">", found.end())
        if close < 0:
            return len(text)
        if found.group(1):
            depth -= 1
        elif text[close - 1] != "/":  # <g/> in SVG opens nothing
            depth += 1
        pos = close + 1
    return pos


def _elements(text: str, attribute: str, start: int = 0, end: int | None = None) -> list[range]:
    """Spans of the elements within text[start:end] whose start tag has ``attribute``
    (written in lower case, as the templates do); nested matches are inside a span."""
    end = len(text) if end is None else end
    spans: list[range] = []
    pos = start
    while (hit := text.find(attribute, pos, end)) >= 0:
        lt = text.rfind("<", start, hit)
        tag = _START_TAG.match(text, lt) if lt >= 0 else None
        if tag is None or tag.end() <= hit or not _has_attribute(tag.group(2), attribute):
            pos = hit + len(attribute)
            continue
        stop = min(_element_end(text, tag), end)
        spans.append(range(lt, stop))
        pos = stop
    return spans


def _named(text: str, names: re.Pattern[str], start: int, end: int) -> list[range]:
    """Spans of the elements within text[start:end] whose tag name ``names`` matches."""
    spans: list[range] = []
    for found in names.finditer(text, start, end):
        if spans and found.start() < spans[-1].stop:
            continue  # inside the previous one
        tag = _START_TAG.match(text, found.start())
        if tag is not None:
            spans.append(range(found.start(), min(_element_end(text, tag), end)))
    return spans


def search_document(page: str) -> str | None:
    """The page's indexed elements, ignored parts cut out, as a small HTML document.

    Cut out with what is marked ``data-pagefind-ignore``: table headers (the
    same column labels on every page, noise in every excerpt) and buttons (the
    page's controls, not its text) and table cells holding only a number.
    Table cells, terms and badges are set apart by a space, so that no two of
    them read as one word.

    None when nothing on the page is marked ``data-pagefind-body``.
    """
    bodies = _elements(page, "data-pagefind-body")
    if not bodies:
        return None
    parts = []
    for body in bodies:
        pos = body.start
        cut = _elements(page, "data-pagefind-ignore", body.start, body.stop)
        cut += _named(page, _DROPPED, body.start, body.stop)
        for ignored in sorted(cut, key=lambda span: span.start):
            if ignored.start < pos:
                continue  # inside a part already cut
            if ignored.start > pos:  # nothing between two cut parts adds nothing
                parts.append(page[pos : ignored.start])
            pos = ignored.stop
            # A cut part alone on its line goes with its line break. So the document
            # does not depend on how many such parts a page has: a run page whose
            # charts (ignored) are left out once newer runs have them keeps its
            # document, and its search bundle is not indexed again.
            if page.startswith("\n", pos) and page[ignored.start - 1 : ignored.start] == "\n":
                pos += 1
        parts.append(page[pos : body.stop])
    text = _NUMBER_CELL.sub("", "\n".join(parts))
    return _DOC_HEAD + _SEPARATE.sub(r"\g<0> ", text) + _DOC_TAIL


# --- the Pagefind command -------------------------------------------------------------


def pagefind_executable() -> list[str]:
    """Pagefind's binary (from the pagefind_bin wheel); else the Python launcher (slower)."""
    try:
        from pagefind_bin import get_executable

        return [str(get_executable())]
    except (ImportError, FileNotFoundError):
        return [sys.executable, "-m", "pagefind"]


def pagefind_command(site: Path, output: Path) -> list[str]:
    """Index the pages under ``site`` into the bundle folder ``output``."""
    return [
        *pagefind_executable(),
        "--site",
        str(site),
        "--output-path",
        str(output),
        "--keep-index-url",
        "--force-language",
        "en",
        "--silent",
    ]


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a Pagefind command; a failure or a timeout is a BuildError."""
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        raise BuildError(f"search indexing (pagefind) took longer than {TIMEOUT_S} s") from None
    except OSError as exc:
        raise BuildError(f"search indexing (pagefind) failed: {exc}") from None
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        hint = "is pagefind installed? pip install 'pagefind[bin]'"
        raise BuildError("search indexing (pagefind) failed: " + ("; ".join(detail[-5:]) or hint))
    return result


def pagefind_version() -> str:
    """What ``pagefind --version`` prints: part of every bundle's cache key."""
    return _run([*pagefind_executable(), "--version"]).stdout.strip()


# --- bundles ----------------------------------------------------------------------------


def shard_count(run_pages: int) -> int:
    """Bundles for ``run_pages`` run pages: the smallest power of two that keeps
    each under SHARD_DOCS (a power of two, so the count changes rarely)."""
    count = 1
    while count * SHARD_DOCS < run_pages:
        count *= 2
    return count


def _run_id(rel: str) -> str | None:
    """The run id of a run page's path (``runs/<id>/index.html``), else None."""
    parts = rel.split("/")
    if len(parts) != 3 or parts[0] != "runs" or parts[2] != "index.html":
        return None
    return parts[1]


def bundle_of(rel: str, shards: int) -> str:
    """The bundle a page's document goes to: ``runs-NN`` by run id, else ``pages``."""
    run_id = _run_id(rel)
    if run_id is None:
        return PAGES_BUNDLE
    bucket = int.from_bytes(hashlib.sha256(run_id.encode()).digest()[:8], "big") % shards
    return f"runs-{bucket:0{len(str(shards - 1))}d}"


@dataclass
class _Bundle:
    name: str
    docs: dict[str, str]  # page rel -> sha256 of its search document
    key: str = ""

    def compute_key(self, salt: str) -> None:
        listing = json.dumps([salt, self.name, sorted(self.docs.items())])
        self.key = hashlib.sha256(listing.encode()).hexdigest()


@dataclass
class IndexStats:
    """What one indexing did: documents, bundles, and how many came from the cache."""

    documents: int
    bundles: int
    reused: int
    pages_read: int

    def __str__(self) -> str:
        return (
            f"search: {self.documents} page(s) in {self.bundles} bundle(s), "
            f"{self.reused} from cache, {self.bundles - self.reused} indexed"
        )


class _Documents:
    """page sha256 -> sha256 of its search document ("" for none), kept in the build
    state between builds, with the documents cut during this build kept in
    memory for indexing."""

    def __init__(self, memo: Memo):
        self.memo = memo
        self.text: dict[str, str] = {}  # page rel -> document, for pages read this build
        self.read = 0

    def digest(self, files: SiteFiles, rel: str) -> str:
        page_sha = files.digest(rel)
        found = self.memo.get(page_sha)
        if not isinstance(found, str):
            doc = self.cut(files, rel)
            found = "" if doc is None else hashlib.sha256(doc.encode()).hexdigest()
            self.memo.put(page_sha, found)
        return found

    def cut(self, files: SiteFiles, rel: str) -> str | None:
        if rel not in self.text:
            self.read += 1
            doc = search_document(files.read(rel).decode("utf-8", errors="replace"))
            if doc is None:
                return None
            self.text[rel] = doc
        return self.text[rel]

    def save(self) -> None:
        self.memo.save()


def _plan(files: SiteFiles, documents: _Documents) -> list[_Bundle]:
    """Every indexed page's document digest, grouped into bundles (sorted by name)."""
    digests = {}
    for rel in files.sorted(".html"):
        if rel.startswith(BUNDLE + "/"):
            continue
        doc = documents.digest(files, rel)
        if doc:
            digests[rel] = doc
    runs = sum(1 for rel in digests if _run_id(rel) is not None)
    shards = shard_count(runs)
    bundles: dict[str, _Bundle] = {}
    for rel, doc in digests.items():
        name = bundle_of(rel, shards)
        bundles.setdefault(name, _Bundle(name, {})).docs[rel] = doc
    return [bundles[name] for name in sorted(bundles)]


def _read_listing(path: Path) -> dict[str, str] | None:
    """A JSON object of strings written by this module, or None when absent or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _sync_inputs(bundle: _Bundle, inputs: Path, files: SiteFiles, documents: _Documents) -> None:
    """Make ``inputs/<name>/`` hold exactly the bundle's documents, at their page paths.

    The folder outlives the build with a listing beside it (page rel -> document
    sha256), so re-indexing a bundle after one run was added writes one
    document, not hundreds (creating and deleting files is most of the cost
    on a slow disk). The listing is removed while the folder changes: after
    a crash the folder is rebuilt from nothing.
    """
    folder, listing = inputs / bundle.name, inputs / f"{bundle.name}.json"
    held = _read_listing(listing)
    if held is None:
        shutil.rmtree(folder, ignore_errors=True)
        held = {}
    listing.unlink(missing_ok=True)
    for rel, sha in held.items():
        if bundle.docs.get(rel) != sha:
            (folder / rel).unlink(missing_ok=True)
    for rel, sha in bundle.docs.items():
        if held.get(rel) != sha:
            target = folder / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(documents.cut(files, rel) or "", encoding="utf-8")
    folder.mkdir(parents=True, exist_ok=True)
    listing.write_text(json.dumps(bundle.docs, sort_keys=True), encoding="utf-8")


def _index_bundle(bundle: _Bundle, inputs: Path, store: Path) -> None:
    """Run Pagefind over the bundle's synced inputs into ``store/<key>`` (atomically)."""
    work = Path(tempfile.mkdtemp(prefix=f".{bundle.name}-", dir=store))
    try:
        output = work / "bundle"
        _run(pagefind_command(inputs / bundle.name, output))
        if not (output / "pagefind.js").is_file():
            raise BuildError("search indexing (pagefind) wrote no pagefind.js")
        for name in UNUSED:
            (output / name).unlink(missing_ok=True)
        shutil.rmtree(output / "playground", ignore_errors=True)
        listing = {rel: _sha256(output / rel) for rel in _walk(output)}
        (work / "files.json").write_text(json.dumps(listing, sort_keys=True), encoding="utf-8")
        final = store / bundle.key
        shutil.rmtree(final, ignore_errors=True)
        os.replace(work, final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def _walk(root: Path) -> list[str]:
    out = []
    for dirpath, _dirs, names in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        out += [name if rel == "." else f"{rel}/{name}" for name in names]
    return sorted(out)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _place(source: Path, listing: dict[str, str], target: Path) -> None:
    """Hardlink (or copy) a cached bundle's files into ``target``.

    Plain string paths: a large site places over ten thousand files.
    """
    src_root, dest_root = str(source), str(target)
    made: set[str] = set()
    for rel in sorted(listing):
        src, dest = f"{src_root}/{rel}", f"{dest_root}/{rel}"
        folder = dest.rpartition("/")[0]
        if folder not in made:
            Path(folder).mkdir(parents=True, exist_ok=True)
            made.add(folder)
        try:
            os.link(src, dest)
        except OSError:  # another file system, or no hardlinks
            shutil.copyfile(src, dest)


def _index_missing(
    bundles: list[_Bundle],
    files: SiteFiles,
    documents: _Documents,
    root: Path,
    jobs: int,
) -> None:
    """Index the bundles the cache lacks: inputs synced one by one, Pagefind in parallel."""
    inputs, store = root / _INPUTS_DIR, root / _BUNDLES_DIR
    for bundle in bundles:
        _sync_inputs(bundle, inputs, files, documents)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(_index_bundle, b, inputs, store) for b in bundles]
        for future in futures:
            future.result()


def _drop_unused(folder: Path, keep: set[str], trash: Path) -> None:
    """Move every entry of ``folder`` whose name is not in ``keep`` into ``trash``.

    A rename is instant; deleting a bundle's hundreds of files is not (about a
    second on a busy disk), so that is left to :func:`_empty_trash`.
    """
    for entry in os.scandir(folder):
        if entry.name not in keep:
            (trash / folder.name).mkdir(parents=True, exist_ok=True)
            os.replace(entry.path, trash / folder.name / entry.name)


def _empty_trash(trash: Path) -> None:
    """Delete the trash in a background thread: the build never waits for it.

    The thread is a daemon, so an exiting process may leave part of the trash
    behind; the next indexing deletes the rest.
    """
    if trash.is_dir():
        threading.Thread(
            target=shutil.rmtree, args=(trash,), kwargs={"ignore_errors": True}, daemon=True
        ).start()


def _placed_keys(out: Path) -> dict[str, str]:
    """Bundle name -> cache key of what ``out`` (a recycled build's index) holds."""
    try:
        keys = json.loads((out / MANIFEST).read_text(encoding="utf-8")).get("keys", {})
    except (OSError, ValueError, AttributeError):
        return {}
    return keys if isinstance(keys, dict) else {}


def _holds(folder: Path, listing: dict[str, str]) -> bool:
    """Whether ``folder`` holds exactly the files of ``listing`` (by name: the files
    are hardlinks of cache entries, which nothing writes into)."""
    return folder.is_dir() and set(_walk(folder)) == set(listing)


def _publish(site: Path, bundles: list[_Bundle], store: Path, files: SiteFiles) -> None:
    """Place every bundle under ``site/pagefind/<name>/`` and write the manifest.

    ``site`` may be a recycled build folder whose index is older: a bundle
    folder that already holds the wanted cache entry stays, anything else
    there is removed, and no file is written into (its inode may be shared
    with the live site).
    """
    out = site / BUNDLE
    placed_keys = _placed_keys(out)
    listings: dict[str, dict[str, str]] = {}
    for bundle in bundles:
        listing = _read_listing(store / bundle.key / "files.json")
        if listing is None:
            raise BuildError(f"search bundle {bundle.name}: its cache entry vanished")
        listings[bundle.name] = listing
    wanted = {b.name: b.key for b in bundles}
    kept = {
        name
        for name, key in wanted.items()
        if placed_keys.get(name) == key and _holds(out / name, listings[name])
    }
    if out.is_dir():
        for entry in os.scandir(out):
            if entry.name not in kept:
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    Path(entry.path).unlink()
    files.forget(BUNDLE)
    for bundle in bundles:
        listing = listings[bundle.name]
        if bundle.name not in kept:
            _place(store / bundle.key / "bundle", listing, out / bundle.name)
        files.add_all((f"{BUNDLE}/{bundle.name}/{rel}", sha) for rel, sha in listing.items())
    manifest = {"bundles": [f"{b.name}/" for b in bundles], "keys": wanted}
    text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).write_text(text, encoding="utf-8")
    files.add(f"{BUNDLE}/{MANIFEST}", hashlib.sha256(text.encode()).hexdigest())


def index_site(
    site: Path,
    cache: Path | None = None,
    files: SiteFiles | None = None,
    *,
    jobs: int | None = None,
    state: BuildState | None = None,
) -> IndexStats:
    """Write the search bundles into ``site/pagefind``; a failure is a BuildError.

    ``cache`` is a folder (created when missing, safe to delete) for the
    bundles' inputs and the bundles; the document digests go into the build
    state ``state``, else into one in ``cache``. Without a cache folder, every
    bundle is indexed. ``files`` is the caller's listing of ``site`` (the files
    written here are added to it). ``jobs`` Pagefind processes run at once
    (default: the CPU count).
    """
    site = Path(site)
    files = files if files is not None else SiteFiles(site)
    with tempfile.TemporaryDirectory(prefix=".search-", dir=site.parent) as scratch:
        root = Path(cache) if cache is not None else Path(scratch)
        store = root / _BUNDLES_DIR
        store.mkdir(parents=True, exist_ok=True)
        (root / _INPUTS_DIR).mkdir(exist_ok=True)
        salt = f"{code_version()}\0{pagefind_version()}"
        if state is None:
            state = BuildState(Path(cache) if cache is not None else None)
        documents = _Documents(state.memo("search-document"))
        bundles = _plan(files, documents)
        for bundle in bundles:
            bundle.compute_key(salt)
        missing = [b for b in bundles if _read_listing(store / b.key / "files.json") is None]
        _index_missing(missing, files, documents, root, jobs or os.cpu_count() or 1)
        _publish(site, bundles, store, files)
        documents.save()
        if cache is not None:  # a scratch cache goes away with its folder
            trash = Path(tempfile.mkdtemp(prefix=".trash-", dir=root))
            _drop_unused(store, {b.key for b in bundles}, trash)
            names = {b.name for b in bundles}
            _drop_unused(root / _INPUTS_DIR, names | {f"{n}.json" for n in names}, trash)
            for old in root.glob(".trash-*"):
                _empty_trash(old)
    return IndexStats(
        documents=sum(len(b.docs) for b in bundles),
        bundles=len(bundles),
        reused=len(bundles) - len(missing),
        pages_read=documents.read,
    )
