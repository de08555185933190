"""The build state: one SQLite database of everything derived from the archive.

Each derived artefact (a file's digest, a ledger's pre-pass summary, a
validated metadata file, a file's gate findings, a page's link summary, a
page's search document) is a row ``(kind, key, value)``, where the key is made
of the digests of exactly the inputs the value was computed from. So a row
can never be stale: a changed input has a different key. The whole database
is salted with :func:`sitegen.codeversion.code_version`; a different sitegen
finds an empty store. Rows a build did not use are dropped when it saves, so
the store holds what the archive needs now and nothing more. Deleting the
file gives a cold build with identical output.

Large blobs (the call store, chart SVGs, downloads, search bundles) stay as
files beside it, named by such keys; the database is the index of the small ones.

Values are JSON data (what ``json.loads`` gives back), stored in ``marshal``
form: a build that adds a run to 10,000 reads back every run's rows, and
marshal decodes them two to thirty times faster than JSON text (a stored
catalogue entry, itself JSON text, decodes in a thirtieth of the time). The
store is written and read by this sitegen only (the code version salts it),
so the format never crosses a trust boundary.
"""

from __future__ import annotations

import json
import marshal
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sitegen.codeversion import code_version

STATE_FILE = "state.sqlite"
SINGLE_READS = 256  # values of a kind read one by one before all its rows are read
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS artefacts (
  kind TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY (kind, key)
) WITHOUT ROWID;
"""


class Memo:
    """One kind of artefact: key -> JSON value.

    The stored rows are read on first use, and a value is decoded only when
    asked for and never kept decoded: at 10,000 runs the comparisons alone are
    a quarter of a gigabyte, and a build that held every row decoded (besides
    the objects made from them) ran out of its memory budget. Until a value is
    asked for, only the keys are read (marking a comparison as used, for one).
    A new value is encoded when it is put, so what waits to be written is
    compact (a first build at 10,000 runs puts every comparison) and reads
    back exactly as a stored one does. ``get`` and ``put`` mark a key as used
    by this build; ``save`` writes the new values and drops the rows of this
    kind that were not used.
    """

    def __init__(self, state: BuildState, kind: str):
        self._state = state
        self.kind = kind
        self._known: dict[str, bytes] | None = None
        self._keys: set[str] | None = None
        self.used: set[str] = set()
        self._new: dict[str, bytes] = {}  # key -> a value put by this build, encoded
        self.hits = 0
        self.misses = 0
        self._singles = 0  # values read one by one so far
        # Told the keys of the rows ``save`` drops: a kind whose rows index files
        # (sitegen.copies) deletes those files with them.
        self.on_drop: Callable[[list[str]], None] | None = None

    @property
    def known(self) -> dict[str, bytes]:
        """key -> the stored value, encoded."""
        if self._known is None:
            self._known = self._state.read(self.kind)
            self._keys = None
        return self._known

    def _stored(self, key: str) -> bool:
        if self._known is not None:
            return key in self._known
        if self._keys is None:
            self._keys = self._state.keys(self.kind)
        return key in self._keys

    def release(self) -> None:
        """Let go of the stored values read, keeping their keys (for ``save``): for a
        kind only one step reads. Asked for again, they are read again. Not for a
        state kept in memory only, whose values are nowhere else."""
        if self._state.path is not None and self._known is not None:
            self._keys, self._known = set(self._known), None

    def stored_keys(self) -> frozenset[str]:
        """The keys of every value stored or put so far."""
        if self._known is not None:
            return frozenset(self._known.keys() | self._new.keys())
        if self._keys is None:
            self._keys = self._state.keys(self.kind)
        return frozenset(self._keys | self._new.keys())

    def peek(self, key: str) -> Any | None:
        """The stored value, without marking the key used (nor counting a hit)."""
        blob = self._new.get(key)
        return _decode(blob if blob is not None else self._stored_value(key))

    def _stored_value(self, key: str) -> bytes | None:
        """The first values asked for are read one by one; past ``SINGLE_READS``, every
        row at once. A build that adds a run reads a hundred of the 10,000 stored
        comparisons (167 MiB in all at 10,000 runs); one that renders every page
        reads them all."""
        if self._known is None and self._state.path is not None and self._singles < SINGLE_READS:
            self._singles += 1
            if self._keys is not None and key not in self._keys:
                return None
            return self._state.read_one(self.kind, key)
        return self.known.get(key)

    def get(self, key: str) -> Any | None:
        found = self.peek(key)
        if found is not None:
            self.hits += 1
            self.used.add(key)
        return found

    def hold(self, key: str) -> bool:
        """Mark a stored value used, and count a hit, without reading it (a page may
        ``peek`` at it later); False when none is stored."""
        if key not in self._new and not self._stored(key):
            return False
        self.hits += 1
        self.used.add(key)
        return True

    def keep(self, key: str, value: Any, *, plain: bool = False) -> None:
        """Mark a value as used without counting a hit (it was computed from known rows)."""
        self.used.add(key)
        if self.peek(key) != value:
            self._new[key] = _encode(value, plain=plain)

    def put(self, key: str, value: Any, *, plain: bool = False) -> None:
        """Store a value; ``plain``: it holds only what JSON gives (dicts with string
        keys, lists, strings, numbers, booleans, None), as parsed JSON does."""
        self.misses += 1
        self.used.add(key)
        self._new[key] = _encode(value, plain=plain)

    def flush(self) -> None:
        """Write what was computed so far; keep every row (later steps may use them)."""
        self._write([])

    def save(self) -> None:
        """Write what this build computed; forget rows of this kind it did not use.

        Only at the end of a build: rows a later step would have used count as unused.
        """
        stored = self._known if self._known is not None else self._keys
        if stored is None:  # only written to: the rows it replaces must still go
            stored = self._keys = self._state.keys(self.kind)
        stale = [k for k in stored if k not in self.used]
        self._write(stale)
        if stale and self.on_drop is not None:
            self.on_drop(stale)
        for key in stale:
            if self._known is not None:
                del self._known[key]
            if self._keys is not None:
                self._keys.discard(key)

    def _write(self, stale: list[str]) -> None:
        if not self._new and not stale:
            return
        blobs = {k: self._new[k] for k in sorted(self._new)}
        self._state.write(self.kind, [(self.kind, k, b) for k, b in blobs.items()], stale)
        if self._known is not None:
            self._known.update(blobs)
        elif self._keys is not None:
            self._keys.update(blobs)
        self._new.clear()


def _encode(value: Any, *, plain: bool = False) -> bytes:
    """The stored form of a value: exactly what a JSON round trip gives back (lists,
    string keys), so a value read from the store equals the one a cold build reads.
    A ``plain`` value already is what the round trip would give: it is spared it."""
    return marshal.dumps(value if plain else json.loads(json.dumps(value)))


def _decode(blob: object) -> Any | None:
    if not isinstance(blob, bytes):
        return None  # absent, or not written by this code
    try:
        return marshal.loads(blob)
    except (ValueError, EOFError, TypeError, OverflowError, MemoryError):
        return None  # a damaged row only costs computing the value again


class BuildState:
    """The database under a cache folder; ``None`` keeps everything in memory only.

    A connection is opened per read or write and closed at once: a build reads
    each kind once and writes it once or twice, and no handle outlives them.
    """

    def __init__(self, folder: Path | None):
        self.path = None if folder is None else Path(folder) / STATE_FILE
        self._memos: dict[str, Memo] = {}
        self._reader: tuple[int, sqlite3.Connection] | None = None  # for read_one

    def memo(self, kind: str) -> Memo:
        if kind not in self._memos:
            self._memos[kind] = Memo(self, kind)
        return self._memos[kind]

    def flush(self) -> None:
        """Write every new row, dropping none (mid-build)."""
        for memo in self._memos.values():
            memo.flush()

    def save(self) -> None:
        """Write every new row and drop those this build did not use (end of a build)."""
        for memo in self._memos.values():
            memo.save()
        if self._reader is not None:
            self._reader[1].close()
            self._reader = None

    # --- storage --------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return self._open()
        except sqlite3.DatabaseError:
            # A damaged store only costs a cold build: start a new one.
            for stale in (self.path, *self.path.parent.glob(self.path.name + "-*")):
                stale.unlink(missing_ok=True)
            return self._open()

    def _open(self) -> sqlite3.Connection:
        assert self.path is not None
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            # Derived data only: a crash may lose the last writes, never correctness.
            db.execute("PRAGMA synchronous=OFF")
            db.executescript(_SCHEMA)
            version = code_version()
            found = db.execute("SELECT value FROM meta WHERE name = 'code'").fetchone()
            if found is None or found[0] != version:
                db.execute("BEGIN IMMEDIATE")
                db.execute("DELETE FROM artefacts")
                db.execute("INSERT OR REPLACE INTO meta VALUES ('code', ?)", (version,))
                db.execute("COMMIT")
        except BaseException:
            db.close()
            raise
        return db

    def read_one(self, kind: str, key: str) -> bytes | None:
        """The stored value of one row, through a connection this process keeps open
        for such reads (a connection per row would cost more than the row)."""
        if self.path is None:
            return None
        try:
            pid, db = self._reader if self._reader is not None else (None, None)
            if db is None or pid != os.getpid():  # never a connection made before a fork
                db = self._connect()
                self._reader = (os.getpid(), db)
            rows = db.execute(
                "SELECT value FROM artefacts WHERE kind = ? AND key = ?", (kind, key)
            ).fetchall()
        except sqlite3.DatabaseError:
            return None
        return rows[0][0] if rows else None

    def read(self, kind: str) -> dict[str, bytes]:
        """key -> stored value of every row of ``kind``."""
        return dict(self._select("SELECT key, value FROM artefacts WHERE kind = ?", kind))

    def keys(self, kind: str) -> set[str]:
        """The keys of ``kind``'s rows, without their values."""
        return {key for (key,) in self._select("SELECT key FROM artefacts WHERE kind = ?", kind)}

    def _select(self, query: str, kind: str) -> list[Any]:
        if self.path is None:
            return []
        try:
            db = self._connect()
        except sqlite3.DatabaseError:
            return []
        try:
            return db.execute(query, (kind,)).fetchall()
        except sqlite3.DatabaseError:
            return []
        finally:
            db.close()

    def write(self, kind: str, rows: list[tuple[str, str, bytes]], stale: list[str]) -> None:
        if self.path is None:
            return
        try:
            db = self._connect()
        except sqlite3.DatabaseError:
            return  # not saved: the next build recomputes these rows
        try:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(
                "DELETE FROM artefacts WHERE kind = ? AND key = ?", [(kind, k) for k in stale]
            )
            db.executemany("INSERT OR REPLACE INTO artefacts VALUES (?, ?, ?)", rows)
            db.execute("COMMIT")
        except sqlite3.DatabaseError:
            pass  # not saved: the next build recomputes these rows
        finally:
            db.close()
