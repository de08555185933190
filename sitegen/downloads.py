"""Data downloads for researchers: the call records, the aggregates and the SQLite export.

What a build publishes under ``data/`` (``docs/data.md`` has the details):

- the call records, one row per call of every run (``run_id`` first): one
  ``data/calls.parquet`` and ``data/calls.csv`` while the archive holds at
  most ``data.split_calls_above`` calls, else one pair per calendar month of
  the runs' start, ``data/calls/2026-11.parquet`` (``undated`` for runs that
  state no start), so that adding a run rewrites one month's files only;
- ``data/aggregates.parquet`` and ``.csv``: one row per run, cell, prompt and
  phase, the numbers on the run pages;
- ``data/archive.sqlite`` (``sitegen.relational``): every table, with the
  ``calls`` table filled only while the call files are not split;
- ``data/datapackage.json``: a Frictionless Data Package (v1) describing every
  file above (path, format, media type, size, sha256) and every column of
  the tables, from ``COLUMNS``, the one table of column documentation (which
  also gives docs/data.md its column tables, see ``columns_markdown``).

Every file is written once into the cache folder, under a name made from a
digest of its inputs (the code that writes it, and the (run id, ledger
sha256) pairs of its runs, or for the SQLite export each run's content digest,
check and retraction), with a small JSON sidecar holding its sha256, size and
row count. A rebuild with unchanged inputs only reads sidecars; a new run
rewrites its month's call files, the aggregates (from cached per-month parts)
and the SQLite export (which copies the unchanged runs' rows from the previous
export). A ``Download`` points at the cached file, which the site links or
copies, so no file is held in memory. Entries a build no longer uses are
removed at its end, and the whole folder is safe to delete.

Parquet is written with fixed settings (zstd level 3, one row group per
100,000 rows, statistics on) and Polars writes no timestamp, so the same
archive gives the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from sitegen import aggregate as agg
from sitegen import relational, vocabulary
from sitegen.callstore import Calls, empty_calls
from sitegen.codeversion import code_version
from sitegen.exceptions import BuildError
from sitegen.fsutil import sha256_file, write_atomic

if TYPE_CHECKING:
    from sitegen.archive import Run
    from sitegen.domain import Loaded

ROW_GROUP = 100_000
SPLIT_SETTING = "data.split_calls_above"
UNDATED = "undated"
STORE = "downloads"  # folder of the cache entries, inside the cache folder
SQLITE_TABLES = ["runs", "calls", "skips", "run_model_metrics", "models", "prompts", "tasks"]
_MONTH = re.compile(r"^(\d{4}-\d{2})-")


# Every column of the published tables: (description, unit or None). The one
# place they are documented: datapackage.json and docs/data.md come from here, and
# the measured fields and their aggregates from sitegen.vocabulary, which the site's
# table headers share.
COLUMNS: dict[str, tuple[str, str | None]] = {
    "run_id": ("The run's id: its folder name and the last part of its page URL.", None),
    "cell_id": ("The cell measured, node:engine:model.", None),
    "prompt_id": ("The prompt sent, e.g. P-EASY.", None),
    "phase": ("cold (first calls after a load) or warm.", None),
    "run_idx": ("Index of the call within its cell, prompt and phase, from 0.", None),
    "http_status": ("HTTP status of the response.", None),
    "backend": ("The engine's API family: llamacpp, ollama, openai, ...", None),
    "error": ("The failure (Class: message); null for a successful call.", None),
    **vocabulary.column_docs(),
}
DATAPACKAGE = "data/datapackage.json"
_FORMATS = {  # extension: (format, media type)
    "parquet": ("parquet", "application/vnd.apache.parquet"),
    "csv": ("csv", "text/csv"),
    "sqlite": ("sqlite", "application/vnd.sqlite3"),
}
_TYPES = {"String": "string", "Int64": "integer", "Float64": "number", "UInt32": "integer"}


@dataclass(frozen=True)
class Download:
    """One published data file: where it goes in the site and the cached file it is."""

    rel: str  # output path
    title: str
    path: Path  # the file to publish (cached: never modified, only replaced)
    rows: int
    columns: list[str]
    sha256: str = ""
    size: int = -1
    month: str | None = None  # for call files split by month: "2026-11" or "undated"


def _digest(*parts: Any) -> str:
    text = json.dumps([code_version(), *parts], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- the cache of written files ------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    """A complete file in the store, and what its sidecar says about it."""

    path: Path
    info: dict[str, Any]

    def download(self, rel: str, title: str, month: str | None = None) -> Download:
        info = self.info
        return Download(
            rel,
            title,
            self.path,
            info["rows"],
            info["columns"],
            info["sha256"],
            info["size"],
            month,
        )


class Store:
    """Files named by the digest of their inputs, each with a JSON sidecar.

    A file is written under a temporary name and renamed into place; its
    sidecar is written after it, so a file without a valid sidecar (a build
    killed in between) is simply written again.
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.used: set[str] = set()

    def get(self, name: str) -> _Entry | None:
        """The complete entry of that name, marked as used by this build; else None."""
        entry = self._read(name)
        if entry is not None:
            self.used.add(name)
        return entry

    def _read(self, name: str) -> _Entry | None:
        path = self.folder / name
        try:
            info = json.loads((self.folder / f"{name}.json").read_text(encoding="utf-8"))
            size = path.stat().st_size
        except (OSError, ValueError):
            return None
        if not isinstance(info, dict) or info.get("size") != size:
            return None
        return _Entry(path, info)

    def put(
        self,
        name: str,
        write: Callable[[Path], object],
        rows: int,
        columns: list[str],
        **extra: Any,
    ) -> _Entry:
        """Write a file with ``write(path)`` and record it; the file is complete when seen."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / name
        tmp = self.folder / f".{name}.{os.getpid()}.tmp"
        try:
            write(tmp)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        info = {"sha256": sha256_file(path), "size": path.stat().st_size, "rows": rows}
        info |= {"columns": columns, **extra}
        write_atomic(self.folder / f"{name}.json", json.dumps(info, sort_keys=True), durable=False)
        self.used.add(name)
        return _Entry(path, info)

    def entries(self, pattern: str) -> Iterable[_Entry]:
        """Complete entries whose name matches the glob ``pattern`` (not marked as used)."""
        for path in sorted(self.folder.glob(pattern)):
            if not path.name.endswith(".json") and not path.name.startswith("."):
                entry = self._read(path.name)
                if entry is not None:
                    yield entry

    def prune(self) -> None:
        """Remove every file this build did not use (old versions, scratch files)."""
        if not self.folder.is_dir():
            return
        for path in self.folder.iterdir():
            name = path.name.removesuffix(".json")
            if name not in self.used:
                path.unlink(missing_ok=True)


# --- writers ---------------------------------------------------------------------


def write_parquet(frame: pl.DataFrame, path: Path) -> None:
    frame.write_parquet(
        path,
        compression="zstd",
        compression_level=3,
        statistics=True,
        row_group_size=ROW_GROUP,
    )


def write_csv(frame: pl.DataFrame, path: Path) -> None:
    frame.write_csv(path, line_terminator="\n", null_value="")


def _round_floats(frame: pl.DataFrame) -> pl.DataFrame:
    """Floats rounded to 3 decimals, like every page and catalogue.json."""
    floats = [name for name, dtype in frame.schema.items() if dtype.is_float()]
    return frame.with_columns(pl.col(floats).round(3))


# --- which runs go into which file -------------------------------------------------


def month_of(run: Run) -> str:
    """The calendar month (``YYYY-MM``, UTC) a run started in, or ``undated``."""
    match = _MONTH.match(run.started_at or "")
    return match.group(1) if match else UNDATED


@dataclass(frozen=True)
class _Group:
    """Runs whose calls share one file: all of them, or those of one month."""

    name: str  # "calls" or the month
    runs: tuple[tuple[str, str], ...]  # sorted (run id, ledger sha256)
    month: str | None

    @cached_property
    def key(self) -> str:
        return _digest("calls", self.name, self.runs)

    @property
    def run_ids(self) -> list[str]:
        return [rid for rid, _sha in self.runs]


def _groups(runs: Sequence[Run], split: bool) -> list[_Group]:
    """The call files' groups of runs, in publication order."""
    members: dict[str, list[tuple[str, str]]] = {}
    for run in runs:
        if run.ledger is not None and run.ledger.calls:
            name = month_of(run) if split else "calls"
            members.setdefault(name, []).append((run.run_id, run.ledger_sha256 or ""))
    if not split:
        return [_Group("calls", tuple(sorted(members.get("calls", []))), None)]
    # Months in time order, the runs without a start last.
    names = sorted(members, key=lambda m: (m == UNDATED, m))
    return [_Group(m, tuple(sorted(members[m])), m) for m in names]


# --- the call files and the aggregates ------------------------------------------------


def _call_files(
    store: Store, calls: Calls, groups: list[_Group]
) -> tuple[list[Download], dict[str, Path]]:
    """Each group's Parquet and CSV, and the path of each group's cached aggregates."""
    entries: dict[tuple[str, str], _Entry] = {}
    parts: dict[str, Path] = {}
    missing = []
    for group in groups:
        found = {ext: store.get(_name(group, ext)) for ext in ("parquet", "csv", "agg.parquet")}
        if all(found.values()):
            entries |= {(group.name, ext): e for ext, e in found.items() if e is not None}
        else:
            missing.append(group)
    for group in missing:
        # one group's rows at a time: a first build of a large archive makes every
        # month's files, and never holds every call to do it
        frame = calls.of(group.run_ids)
        published = frame.drop("type")  # always "call" here
        for ext, writer in (("parquet", write_parquet), ("csv", write_csv)):
            entries[(group.name, ext)] = _put_frame(store, _name(group, ext), published, writer)
        summary = agg.aggregate(frame)
        entries[(group.name, "agg.parquet")] = _put_frame(
            store, _name(group, "agg.parquet"), summary, _write_part
        )
    out = []
    for group in groups:
        parts[group.name] = entries[(group.name, "agg.parquet")].path
        for ext in ("parquet", "csv"):
            entry = entries[(group.name, ext)]
            if group.month is None:
                out.append(entry.download(f"data/calls.{ext}", "Every call record of every run"))
            else:
                rel, title = f"data/calls/{group.month}.{ext}", _month_title(group.month)
                out.append(entry.download(rel, title, group.month))
    return out, parts


def _put_frame(
    store: Store, name: str, frame: pl.DataFrame, writer: Callable[[pl.DataFrame, Path], None]
) -> _Entry:
    return store.put(name, lambda path: writer(frame, path), frame.height, frame.columns)


def _write_part(frame: pl.DataFrame, path: Path) -> None:
    """A group's unrounded aggregates: internal to the cache, never published."""
    frame.write_parquet(path, statistics=False)


def _name(group: _Group, ext: str) -> str:
    return f"calls-{group.name}-{group.key[:32]}.{ext}"


def _month_title(month: str) -> str:
    if month == UNDATED:
        return "Call records of the runs that state no start time"
    return f"Call records of the runs started in {month} (UTC)"


def _aggregate_files(store: Store, groups: list[_Group], parts: dict[str, Path]) -> list[Download]:
    """``data/aggregates.*``, assembled from the groups' cached aggregates.

    The aggregates are per run, so each group's part is exact, and adding a
    run recomputes only its group's part.
    """
    key = _digest("aggregates", [g.key for g in groups])[:32]
    names = {ext: f"aggregates-{key}.{ext}" for ext in ("parquet", "csv")}
    cached = {ext: store.get(name) for ext, name in names.items()}
    found = {ext: entry for ext, entry in cached.items() if entry is not None}
    title = "Aggregates per run, cell, prompt and phase"
    if len(found) < len(names):
        frame = _round_floats(
            pl.concat([pl.read_parquet(parts[g.name]) for g in groups], how="vertical")
            if groups
            else agg.aggregate(empty_calls())
        ).sort(agg.GROUP)
        for ext, writer in (("parquet", write_parquet), ("csv", write_csv)):
            found[ext] = _put_frame(store, names[ext], frame, writer)
    return [found[ext].download(f"data/aggregates.{ext}", title) for ext in ("parquet", "csv")]


# --- the SQLite export -------------------------------------------------------------


def sqlite_download(loaded: Loaded, cache_dir: Path, *, store: Store | None = None) -> Download:
    """``data/archive.sqlite``: from the cache when no run changed, else written anew.

    A new export copies the rows of unchanged runs from the previous one (see
    ``relational.write_sqlite``), so adding a run costs a fraction of a full
    export. The ``calls`` table is filled only while the call files are not
    split by month (``data.split_calls_above``). ``store`` is the one
    ``data_downloads`` shares between the files of a build.
    """
    store = store or Store(Path(cache_dir) / STORE)
    calls = not _split(loaded)
    keys = relational.run_keys(loaded)
    key = _digest("sqlite", calls, sorted(keys.items()))[:32]
    name = f"archive-{key}.sqlite"
    entry = store.get(name)
    if entry is None:
        base = _sqlite_base(store, calls, keys)

        def write(path: Path) -> None:
            try:
                relational.write_sqlite(path, loaded, calls=calls, base=base, keys=keys)
            except BuildError:
                if base is None:
                    raise
                # A damaged cache must not fail the build: write from scratch.
                relational.write_sqlite(path, loaded, calls=calls, keys=keys)

        entry = store.put(
            name,
            write,
            len(loaded.runs),
            SQLITE_TABLES,
            calls=calls,
            code=code_version(),
            runs=keys,
        )
    where = "" if calls else "; the calls are in data/calls/"
    title = (
        f"The whole archive as relational tables ({len(loaded.runs)} runs{where}; "
        "schema in docs/relational.md)"
    )
    return entry.download("data/archive.sqlite", title)


def _sqlite_base(store: Store, calls: bool, keys: dict[str, str]) -> relational.Base | None:
    """The earlier export with the most runs still unchanged, if any is reusable."""
    best, best_kept = None, 0
    for entry in store.entries("archive-*.sqlite"):
        info = entry.info
        if info.get("code") != code_version() or info.get("calls") != calls:
            continue
        held = info.get("runs") or {}
        kept = sum(1 for rid, k in keys.items() if held.get(rid) == k)
        if kept > best_kept:
            best, best_kept = relational.Base(entry.path, held), kept
    return best


# --- the description of the downloads ------------------------------------------------


def _field(name: str, dtype: pl.DataType) -> dict[str, Any]:
    description, unit = COLUMNS.get(name, ("", None))
    field = {"name": name, "type": _TYPES.get(str(dtype), "any"), "description": description}
    if unit:
        field["unit"] = unit
    return field


def _resource(item: Download, schemas: dict[str, dict[str, pl.DataType]]) -> dict[str, Any]:
    stem, ext = item.rel.rsplit(".", 1)
    fmt, mediatype = _FORMATS[ext]
    resource: dict[str, Any] = {
        "name": re.sub(r"[^a-z0-9._-]", "-", item.rel.removeprefix("data/").lower()),
        "path": item.rel.removeprefix("data/"),
        "title": item.title,
        "format": fmt,
        "mediatype": mediatype,
        "bytes": item.size,
        "hash": f"sha256:{item.sha256}",
    }
    schema = schemas.get(stem)
    if schema is not None:  # the Parquet file's types hold for its CSV twin too
        resource["profile"] = "tabular-data-resource"
        if fmt == "csv":
            resource["encoding"] = "utf-8"
            resource["dialect"] = {"delimiter": ",", "header": True, "lineTerminator": "\n"}
        resource["schema"] = {
            "fields": [_field(name, dtype) for name, dtype in schema.items()],
            "missingValues": [""],
        }
    return resource


def datapackage(files: Sequence[Download], archive: dict[str, Any]) -> bytes:
    """``data/datapackage.json``: every file of ``files``, described (deterministic bytes)."""
    schemas = {
        f.rel.rsplit(".", 1)[0]: pl.read_parquet_schema(f.path)
        for f in files
        if f.rel.endswith(".parquet")
    }
    title = archive.get("title") or ""
    package: dict[str, Any] = {
        "profile": "data-package",
        "name": re.sub(r"[^a-z0-9._-]+", "-", title.lower()).strip("-.") or "archive",
        "title": title,
    }
    if archive.get("description"):
        package["description"] = archive["description"]
    if archive.get("base_url"):
        package["homepage"] = archive["base_url"]
    if archive.get("license"):
        package["licenses"] = [{"name": archive["license"]}]
    if archive.get("authors"):
        package["contributors"] = [{"title": a, "role": "author"} for a in archive["authors"]]
    package["resources"] = [_resource(f, schemas) for f in files]
    text = json.dumps(package, ensure_ascii=False, indent=2) + "\n"
    return text.encode("utf-8")


def _datapackage_download(
    store: Store, files: Sequence[Download], archive: dict[str, Any]
) -> Download:
    data = datapackage(files, archive)
    # Named by its own digest; not ".json", which the store keeps for sidecars.
    name = f"datapackage-{hashlib.sha256(data).hexdigest()[:32]}.descriptor"
    entry = store.get(name) or store.put(
        name, lambda path: path.write_bytes(data), len(files), ["resources"]
    )
    return entry.download(DATAPACKAGE, "Description of these files (Frictionless Data Package)")


def columns_markdown(names: Iterable[str]) -> str:
    """A Markdown table of the given columns, for docs/data.md."""
    rows = ["| column | unit | meaning |", "| --- | --- | --- |"]
    for name in names:
        description, unit = COLUMNS[name]
        rows.append(f"| `{name}` | {unit or ''} | {description} |")
    return "\n".join(rows) + "\n"


# --- everything together ------------------------------------------------------------


def _split(loaded: Loaded) -> bool:
    limit: int = loaded.config.get(SPLIT_SETTING)  # validated as an integer
    return loaded.calls.height > limit


def data_downloads(loaded: Loaded, cache_dir: Path) -> list[Download]:
    """Every file under ``data/``, in the order the data page lists them.

    Files come from ``cache_dir/downloads`` when their inputs are unchanged;
    the ones this build does not use are removed from there at the end.
    """
    store = Store(Path(cache_dir) / STORE)
    # The SQLite export runs beside the Parquet and CSV files: both spend
    # most of their time in native code (SQLite, Polars) that releases the
    # GIL, so on two cores the slower one sets the time.
    with ThreadPoolExecutor(max_workers=1) as pool:
        database = pool.submit(sqlite_download, loaded, cache_dir, store=store)
        groups = _groups(loaded.runs, _split(loaded))
        call_files, parts = _call_files(store, loaded.calls, groups)
        aggregates = _aggregate_files(store, groups, parts)
        sqlite_file = database.result()
    files = [f for f in call_files if f.month is None]
    files += [*aggregates, sqlite_file]
    months = [f for f in call_files if f.month is not None]
    described = _datapackage_download(store, [*files, *months], loaded.catalogue["archive"])
    store.prune()
    return [*files, described, *months]
