"""Publishing a whole sync at once by replacing the DuckDB file, so readers never block it.

DuckDB lets one process write a file, and any open session, even read-only, holds a lock that
blocks a writer. Analysts leave sessions open, so a sync never writes the published file in
place: it copies the file's bytes (no DuckDB lock needed), writes every table and the history in
the copy, checkpoints it and renames it over the published path. The rename is atomic: an open
session keeps the snapshot it opened, a new connection sees the new one, and a failure or a
``kill -9`` at any point before the rename leaves the published file exactly as it was.

A read-write session with unsaved changes keeps them in a WAL beside the path; once the file is
replaced, DuckDB refuses to open the path with that WAL ("WAL checkpoint iteration does not match
the database file"). Such a WAL belongs to the previous snapshot, so it is moved aside at once,
and the README says that analysts' own tables belong in a file of their own. Tables analysts did
save into the file are carried over with the copy.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import filelock

from wecom_assets.warehouse.connection import (
    ConnectionConfig,
    WarehouseDamagedError,
    WarehouseLockedError,
    connect,
)

logger = logging.getLogger(__name__)

_WORK_PREFIX = ".sync-"


@dataclass(frozen=True, slots=True)
class Published:
    """What publishing a snapshot did."""

    path: Path
    bytes: int
    copy_seconds: float
    publish_seconds: float
    orphaned_wal: Path | None


def _sidecar(path: Path, suffix: str) -> Path:
    return path.with_name(f"{path.name}{suffix}")


def _work_path(path: Path) -> Path:
    return path.with_name(f".{path.name}{_WORK_PREFIX}{os.getpid()}")


class SnapshotSession:
    """A private copy of the warehouse that becomes the published file on :meth:`publish`."""

    def __init__(
        self, path: Path, work: Path, conn: duckdb.DuckDBPyConnection, copy_seconds: float
    ):
        self.path = path
        self.work = work
        self.conn = conn
        self.copy_seconds = copy_seconds
        self.published: Published | None = None

    def publish(self) -> Published:
        """Make the copy the published file: checkpoint, close, fsync, rename over the path.

        Raises:
            WarehouseError: checkpointing or renaming failed; the published file is unchanged.
        """
        started = time.monotonic()
        # No WAL may travel with the copy: the checkpoint folds it into the file.
        self.conn.execute("CHECKPOINT")
        self.conn.close()
        with self.work.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(self.work, self.path)
        _fsync_dir(self.path.parent)
        orphan = _move_aside_foreign_wal(self.path)
        self.published = Published(
            path=self.path,
            bytes=self.path.stat().st_size,
            copy_seconds=self.copy_seconds,
            publish_seconds=time.monotonic() - started,
            orphaned_wal=orphan,
        )
        return self.published


@contextmanager
def snapshot_session(
    path: Path, *, lock_timeout: float, config: ConnectionConfig | None = None
) -> Iterator[SnapshotSession]:
    """Open a private copy of the warehouse at ``path``; publish it with ``session.publish()``.

    Two syncs of one file take turns through a lock file beside it, waiting up to
    ``lock_timeout`` seconds; readers never take part. Leaving the block without publishing (an
    error, a rejected check) discards the copy.

    Raises:
        WarehouseLockedError: another sync held the file longer than ``lock_timeout``.
        WarehouseDamagedError: the published file is not a readable DuckDB database.
    """
    path = path.expanduser().absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(str(_sidecar(path, ".sync.lock")), timeout=lock_timeout)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise WarehouseLockedError(
            f"Another sync has been writing {path} for over {lock_timeout:.0f}s; this one gives "
            "up. Raise lock_timeout_seconds if syncs of this file overlap by design."
        ) from None
    work = _work_path(path)
    try:
        _remove_stale_work_files(path)
        _settle_wal(path, config)
        copy_seconds = _copy(path, work)
        conn = connect(work, lock_timeout=0, config=config)
        session = SnapshotSession(path, work, conn, copy_seconds)
        try:
            yield session
        finally:
            if session.published is None:
                with contextlib.suppress(duckdb.Error):
                    conn.close()
    finally:
        for leftover in (work, _sidecar(work, ".wal")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
        lock.release()


def _copy(path: Path, work: Path) -> float:
    """Copy the published file's bytes; a copy torn by a reader's checkpoint is taken again."""
    started = time.monotonic()
    if not path.exists():
        return 0.0
    for attempt in range(3):
        before = path.stat()
        shutil.copyfile(path, work)
        after = path.stat()
        if (before.st_size, before.st_mtime_ns) == (after.st_size, after.st_mtime_ns):
            return time.monotonic() - started
        logger.info("%s changed while it was copied (attempt %d); copying again", path, attempt + 1)
    raise WarehouseDamagedError(
        f"{path} kept changing while it was copied: a session is writing to it. Nothing was "
        "written. Close read-write sessions that change the file, or keep their tables in a "
        "file of their own."
    )


def _settle_wal(path: Path, config: ConnectionConfig | None) -> None:
    """Fold a WAL beside the published file into it, or move it aside when it cannot be.

    A session that ended without a checkpoint (a crashed notebook) leaves committed changes in
    the WAL: opening the file replays them, so they are in the copy too. A WAL left from before an
    earlier replacement is refused by DuckDB and moved aside. While a session still holds the
    file, its unsaved changes stay in its WAL and are moved aside after publishing.
    """
    if not _sidecar(path, ".wal").exists():
        return
    try:
        conn = connect(path, lock_timeout=0, config=config)
    except WarehouseLockedError:
        return
    except WarehouseDamagedError as error:
        if "WAL" not in str(error):
            raise
        _move_aside_foreign_wal(path)
        return
    try:
        conn.execute("CHECKPOINT")
    finally:
        conn.close()


def _move_aside_foreign_wal(path: Path) -> Path | None:
    """Move a WAL left beside the published file by a reader's session to ``*.wal.orphaned-*``.

    Only sessions of analysts write a WAL beside the published file (syncs write their copy), and
    after a replacement that WAL belongs to the previous snapshot: DuckDB would refuse to open
    the new file with it.
    """
    wal = _sidecar(path, ".wal")
    if not wal.exists():
        return None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    orphan = _sidecar(path, f".wal.orphaned-{stamp}")
    try:
        wal.rename(orphan)
    except FileNotFoundError:
        return None
    logger.warning(
        "A read-write session on %s had unsaved changes (%s); they belong to the previous "
        "snapshot and were moved to %s. Keep your own tables in a file of your own.",
        path,
        wal.name,
        orphan.name,
    )
    return orphan


def _remove_stale_work_files(path: Path) -> None:
    """Delete copies left by syncs that were killed; only the lock holder writes copies."""
    for stale in path.parent.glob(f".{path.name}{_WORK_PREFIX}*"):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
