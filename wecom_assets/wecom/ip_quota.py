"""WeCom's per-IP limits, counted by every process of the machine in one small file.

WeCom counts each IP's calls, 20,000 a minute and 600,000 an hour, across every corp and app.
Many corps sync from one code location, each run in its own process, so no process can keep that
budget alone: the count lives in a file in the token cache directory, one file per API host,
changed under an exclusive ``flock`` of the file.

A lock per call would put a file read and write in front of every request. Instead a process
reserves a batch of slots at once (a lease) and hands them to its calls without I/O. A call may
start up to one lease after its slot was counted, so a slot counts for its window plus a lease:
any real window of calls then stays within the limit. Slots a lease did not use are given back
at the process's next reservation or when its client closes.

The file holds counts per time bucket (the end of the bucket in epoch seconds, and the slots
reserved in it), never a secret. Content that is not what :class:`_FileStore` writes is a
corrupt count: it is replaced, with a warning.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from wecom_assets.wecom.limits import Limit
from wecom_assets.wecom.token_cache import UntrustedCache, open_private_directory

logger = logging.getLogger(__name__)

# A lease covers a sixtieth of the shortest window (1 s of WeCom's minute): what a slot may
# outlive its count by costs under 2% of the limit.
_LEASE_FRACTION = 60
# Slots per reservation: 1/200 of the smallest limit, so that a handful of processes leasing at
# once cannot starve the rest, and at most this many (100 for WeCom's 20,000 a minute).
_MAX_BATCH = 100
_BATCH_FRACTION = 200
_MAX_FILE_BYTES = 4 * 1024 * 1024
# An update holds the lock for about 20 µs; one held for seconds belongs to a stopped process.
_LOCK_TIMEOUT = 10.0
_LOCK_POLL = 0.001
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")

Buckets = dict[float, int]


def quota_file_name(base_url: str) -> str:
    """The count file of the API host ``base_url`` names: each host keeps its own IP limits.

    Not ``.json``, though it holds JSON: the token cache files are the directory's ``.json``.
    """
    parts = urlsplit(base_url)
    host = f"{parts.hostname or 'unknown'}-{parts.port or parts.scheme}"
    return f"ip-calls-{_SAFE_NAME.sub('_', host)[:96]}.counts"


@dataclass(frozen=True)
class _Grant:
    slots: int
    wait: float
    binding: Limit | None


class _Store(Protocol):
    def update(self, change: Callable[[Buckets], _Grant]) -> _Grant: ...

    def close(self) -> None: ...


class _MemoryStore:
    """The counts of this process alone: no cache directory, or the file became unusable."""

    def __init__(self) -> None:
        self._buckets: Buckets = {}

    def update(self, change: Callable[[Buckets], _Grant]) -> _Grant:
        return change(self._buckets)

    def close(self) -> None:
        """Nothing to release."""


class _FileStore:
    """The count file shared by the machine's processes, locked with ``flock``.

    The file stays open between updates and is rewritten in place: opening a lock file and
    renaming a new copy per update cost 3.4 ms here, against 0.02 ms this way. A process that
    dies mid-write leaves a malformed file, which the next reader counts afresh from.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._pid = 0

    def update(self, change: Callable[[Buckets], _Grant]) -> _Grant:
        """Apply ``change`` to the counts under an exclusive lock of the file.

        Raises:
            OSError: The file or its directory cannot be used.
            UntrustedCache: The directory or the file belongs to someone else.
        """
        fd = self._open()
        self._lock(fd)
        try:
            buckets = self._read(fd)
            before = dict(buckets)
            grant = change(buckets)
            if buckets != before:
                content = json.dumps({"buckets": sorted(buckets.items())}).encode()
                os.pwrite(fd, content, 0)
                os.ftruncate(fd, len(content))
            return grant
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _lock(self, fd: int) -> None:
        """Lock the file, waiting at most :data:`_LOCK_TIMEOUT` for another process.

        Raises:
            TimeoutError: Another process held the lock that long (it is stopped, not dead: a
                dead process's lock is released by the kernel).
        """
        deadline = time.monotonic() + _LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"another process held the lock for {_LOCK_TIMEOUT:g} s"
                    ) from None
                time.sleep(_LOCK_POLL)

    def close(self) -> None:
        """Close the file (the next update opens it again)."""
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = None

    def _open(self) -> int:
        # A forked child shares the parent's open file, and with it the lock: it opens its own.
        if self._fd is not None and self._pid == os.getpid():
            return self._fd
        open_private_directory(self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o600)
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
            os.close(fd)
            raise UntrustedCache(f"{self.path} is not a regular file of this user")
        self._fd, self._pid = fd, os.getpid()
        return fd

    def _read(self, fd: int) -> Buckets:
        content = os.pread(fd, _MAX_FILE_BYTES + 1, 0)
        if not content:
            return {}
        try:
            return _parse(content)
        except (ValueError, TypeError, KeyError, RecursionError) as exc:
            logger.warning(
                "WeCom per-IP call count %s is malformed (%s); counting afresh",
                self.path,
                type(exc).__name__,
            )
            return {}


def _parse(content: bytes) -> Buckets:
    if len(content) > _MAX_FILE_BYTES:
        raise ValueError("file too large")
    buckets: Buckets = {}
    for end, slots in json.loads(content.decode("utf-8"))["buckets"]:
        if isinstance(end, bool) or not isinstance(end, int | float) or not math.isfinite(end):
            raise TypeError("bucket end is not a time")
        if isinstance(slots, bool) or not isinstance(slots, int) or slots < 0:
            raise TypeError("slot count is not a count")
        buckets[float(end)] = slots
    return buckets


class SharedQuota:
    """The machine's per-IP budget: a call takes a slot, from a lease or a new reservation.

    Thread-safe; safe across processes when ``path`` is given.
    """

    def __init__(
        self,
        limits: Sequence[Limit],
        *,
        path: Path | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Create the budget; nothing on disk is touched before the first call.

        Args:
            limits: The per-IP limits (WeCom: 20,000 a minute, 600,000 an hour).
            path: The count file shared with the machine's other processes; None counts this
                process's calls only.
            clock: Epoch clock (the file outlives processes, and is read by many).

        Raises:
            ValueError: No limits.
        """
        if not limits:
            raise ValueError("at least one limit is needed")
        self._limits = tuple(limits)
        self._shortest = min(limit.window for limit in limits)
        self._lease = self._shortest / _LEASE_FRACTION
        self._batch = max(1, min(_MAX_BATCH, min(lim.calls for lim in limits) // _BATCH_FRACTION))
        self._horizon = max(limit.window for limit in limits) + self._lease
        self._clock = clock
        self._lock = threading.Lock()
        self._store: _Store = _MemoryStore() if path is None else _FileStore(path)
        self._path = path
        self._leased = 0
        self._lease_end = -math.inf
        self._lease_bucket = 0.0
        self.reservations = 0

    @property
    def limits(self) -> tuple[Limit, ...]:
        """The limits kept."""
        return self._limits

    def take(self) -> tuple[float, Limit | None]:
        """Take a slot for a call that starts now, if one is free.

        Returns:
            ``(0.0, None)`` when the slot is taken; else the seconds until one may free and
            the limit that binds, with nothing taken.
        """
        with self._lock:
            now = self._clock()
            if self._leased and now < self._lease_end:
                self._leased -= 1
                return 0.0, None
            grant = self._update(now, reserve=True)
            if not grant.slots:
                return grant.wait, grant.binding
            self.reservations += 1
            self._leased = grant.slots - 1
            self._lease_end = now + self._lease
            self._lease_bucket = self._bucket_end(now)
            return 0.0, None

    def next_slot(self) -> tuple[float, Limit | None]:
        """The seconds until a slot may be free and the limit that binds; nothing is taken."""
        with self._lock:
            now = self._clock()
            if self._leased and now < self._lease_end:
                return 0.0, None
            grant = self._update(now, reserve=False)
            return grant.wait, grant.binding

    def reached(self) -> list[Limit]:
        """The limits the machine's count has reached (see :meth:`Limit.reached_by`)."""
        with self._lock:
            now = self._clock()
            counted: dict[Limit, int] = {}

            def count(buckets: Buckets) -> _Grant:
                self._forget(buckets, now)
                counted.update({lim: self._counted(buckets, lim, now) for lim in self._limits})
                return _Grant(0, 0.0, None)

            self._apply(count)
            return [limit for limit, calls in counted.items() if limit.reached_by(calls)]

    def close(self) -> None:
        """Give back the slots of the current lease that no call used, and close the file."""
        with self._lock:
            if self._leased:
                self._apply(self._give_back)
            self._store.close()

    def _update(self, now: float, *, reserve: bool) -> _Grant:
        def change(buckets: Buckets) -> _Grant:
            self._give_back(buckets)
            self._forget(buckets, now)
            free = {lim: lim.calls - self._counted(buckets, lim, now) for lim in self._limits}
            room = min(free.values())
            if room > 0:
                if not reserve:
                    return _Grant(0, 0.0, None)
                slots = min(self._batch, room)
                end = self._bucket_end(now)
                buckets[end] = buckets.get(end, 0) + slots
                return _Grant(slots, 0.0, None)
            waits = {lim: self._wait(buckets, lim, now) for lim, left in free.items() if left <= 0}
            binding = max(waits, key=waits.__getitem__)
            return _Grant(0, waits[binding], binding)

        return self._apply(change)

    def _apply(self, change: Callable[[Buckets], _Grant]) -> _Grant:
        try:
            return self._store.update(change)
        except (OSError, UntrustedCache) as exc:
            logger.warning(
                "WeCom per-IP call count %s disabled (%s: %s); counting this process's calls "
                "only, so other runs on this machine are not coordinated with it",
                self._path,
                type(exc).__name__,
                exc,
            )
            with contextlib.suppress(OSError):
                self._store.close()
            self._store = _MemoryStore()
            return self._store.update(change)

    def _give_back(self, buckets: Buckets) -> _Grant:
        """Return the unused slots of the last lease to the bucket they were counted in."""
        unused, self._leased = self._leased, 0
        left = buckets.get(self._lease_bucket, 0) - unused
        if left > 0:
            buckets[self._lease_bucket] = left
        else:
            buckets.pop(self._lease_bucket, None)
        return _Grant(0, 0.0, None)

    def _bucket_end(self, now: float) -> float:
        return round((math.floor(now / self._lease) + 1) * self._lease, 6)

    def _forget(self, buckets: Buckets, now: float) -> None:
        """Drop buckets no window counts any more, and any from the future (a clock set back).

        "The future" starts a shortest window ahead, so that processes counting in buckets of
        another width (another window setting) do not drop each other's current bucket.
        """
        latest = now + self._shortest
        for end in [end for end in buckets if end + self._horizon <= now or end > latest]:
            del buckets[end]

    def _counted(self, buckets: Buckets, limit: Limit, now: float) -> int:
        # A slot counted in the bucket ending at `end` starts its call by end + lease, so it
        # shares a window with a call starting now while end + lease > now - window.
        horizon = now - limit.window - self._lease
        return sum(slots for end, slots in buckets.items() if end > horizon)

    def _wait(self, buckets: Buckets, limit: Limit, now: float) -> float:
        """Seconds until enough of the oldest counted slots leave ``limit``'s window for one."""
        horizon = now - limit.window - self._lease
        excess = self._counted(buckets, limit, now) - limit.calls + 1
        for end in sorted(end for end in buckets if end > horizon):
            excess -= buckets[end]
            if excess <= 0:
                return max(end + self._lease + limit.window - now, self._lease)
        return self._lease
