"""Adding a run folder to the archive: the one writer the runner and the importers share.

The folder is assembled as ``runs/.tmp-<id>-<random>/`` (discovery ignores
dot-names), every file synced, then renamed into place, so a reader or a
concurrent build never sees half a run and a failure leaves nothing behind.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Mapping
from pathlib import Path

from sitegen.exceptions import SitegenError


def write_run_folder(runs_dir: Path, run_id: str, files: Mapping[str, bytes]) -> Path:
    """Write ``runs_dir/run_id/`` holding ``files`` (relative name -> bytes).

    Raises ``FileExistsError`` when the run exists: a run is written once and
    never overwritten, even by a writer that raced this one.
    """
    final = runs_dir / run_id
    runs_dir.mkdir(parents=True, exist_ok=True)
    if final.exists() or final.is_symlink():
        raise FileExistsError(str(final))
    while True:
        staging = runs_dir / f".tmp-{run_id}-{secrets.token_hex(4)}"
        try:
            staging.mkdir()
            break
        except FileExistsError:
            continue
    try:
        for rel, data in sorted(files.items()):
            path = staging / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_synced(path, data)
        if final.exists() or final.is_symlink():
            raise FileExistsError(str(final))
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _sync_folder(runs_dir)
    return final


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable (where the platform allows syncing a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def refresh_catalogue(archive: Path) -> str | None:
    """Rebuild ``catalogue.json`` after a run was added; a note instead of an
    error when that fails, since the run itself is already safely written."""
    # Imported here: the build pulls in the whole site pipeline, which packaging
    # a run does not otherwise need.
    from sitegen.build import refresh_catalogue as rebuild

    try:
        rebuild(archive)
    except SitegenError as exc:
        return f"catalogue.json not refreshed (run `sitegen build`): {exc}"
    return None
