"""A total deadline for each HTTP request, however slowly the server trickles its answer.

``requests`` timeouts bound each socket read, not a request: a server that sends a byte every
few seconds keeps a call alive for ever. Here a watchdog thread shuts the request's socket down
when its deadline passes, which ends any read blocked on it, in the headers or the body. The
socket is handed to the watchdog by the connection class the client's session uses
(:class:`DeadlineAdapter`), when the response is awaited.
"""

from __future__ import annotations

import contextlib
import contextvars
import heapq
import itertools
import math
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from requests import PreparedRequest
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.response import HTTPResponse

if TYPE_CHECKING:
    from requests.adapters import _HostParams, _PoolKwargs

_current: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar(
    "wecom_request_deadline", default=None
)


class Deadline:
    """The moment one request must be over by, in real (monotonic) time.

    Real time, not the client's injectable clock: it bounds real socket reads.
    """

    def __init__(self, seconds: float) -> None:
        """Start a deadline ``seconds`` from now.

        Args:
            seconds: Time the request may take in all.
        """
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._expired = False
        self._finished = False

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.at - time.monotonic())

    @property
    def expired(self) -> bool:
        """Whether the deadline has passed (the socket is then shut down)."""
        return self._expired or time.monotonic() >= self.at

    def watch(self, sock: socket.socket) -> None:
        """Shut ``sock`` down at the deadline (at once if it has passed)."""
        with self._lock:
            if self._finished:
                return
            self._socket = sock
            if time.monotonic() >= self.at:
                self._shut_down()

    def expire(self) -> None:
        """Called by the watchdog at the deadline: end the request's reads."""
        with self._lock:
            if not self._finished:
                self._shut_down()

    def finish(self) -> None:
        """The request is over: never touch its socket again (it may serve the next request)."""
        with self._lock:
            self._finished = True
            self._socket = None

    def _shut_down(self) -> None:
        self._expired = True
        if self._socket is not None:
            # shutdown, not close: it wakes a recv blocked in another thread at once, and the
            # file descriptor stays owned (and later closed) by urllib3.
            with contextlib.suppress(OSError):
                self._socket.shutdown(socket.SHUT_RDWR)


class _Watchdog:
    """One daemon thread per process that expires deadlines in time order.

    Requests only append their deadline to a queue, with no lock: a shared lock taken by every
    request of 24 worker threads cost more than the rest of the bookkeeping. The heap belongs
    to the watchdog thread alone. A request wakes it only when its deadline is earlier than the
    one it sleeps towards, which with one timeout per client is almost never.
    """

    def __init__(self) -> None:
        self._reset()
        # A forked child has no watchdog thread (and maybe a lock held by another thread of
        # the parent): start afresh there on first use.
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._incoming: deque[Deadline] = deque()
        self._wake = threading.Event()
        # When the watchdog next looks at its heap on its own; read by requests without a lock.
        self._next_wake = -math.inf
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, deadline: Deadline) -> None:
        # Append before reading _next_wake, as the watchdog writes it before it looks at the
        # queue a last time: one of the two always sees the other's change.
        self._incoming.append(deadline)
        if self._thread is None:
            self._start()
        if deadline.at < self._next_wake:
            self._wake.set()

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="wecom-deadlines", daemon=True)
                thread.start()
                self._thread = thread

    def _run(self) -> None:
        heap: list[tuple[float, int, Deadline]] = []
        order = itertools.count()
        while True:
            self._wake.clear()
            while self._incoming:
                deadline = self._incoming.popleft()
                heapq.heappush(heap, (deadline.at, next(order), deadline))
            now = time.monotonic()
            while heap and heap[0][0] <= now:
                heapq.heappop(heap)[2].expire()
            self._next_wake = heap[0][0] if heap else math.inf
            if self._incoming:
                continue
            self._wake.wait(None if not heap else self._next_wake - now)


_watchdog = _Watchdog()


@contextlib.contextmanager
def deadline_of(seconds: float) -> Iterator[Deadline]:
    """Bound every request made in this block (in this thread) to ``seconds`` from now.

    Args:
        seconds: Time the request may take in all.

    Yields:
        The deadline, to check between reads.
    """
    deadline = Deadline(seconds)
    _watchdog.add(deadline)
    token = _current.set(deadline)
    try:
        yield deadline
    finally:
        _current.reset(token)
        deadline.finish()


def _watch_current(connection: HTTPConnection) -> None:
    deadline = _current.get()
    if deadline is not None and connection.sock is not None:
        deadline.watch(connection.sock)


class _WatchedHTTPConnection(HTTPConnection):
    # urllib3 narrows http.client's return type the same way.
    def getresponse(self) -> HTTPResponse:  # type: ignore[override]
        _watch_current(self)
        return super().getresponse()


class _WatchedHTTPSConnection(HTTPSConnection):
    # urllib3 narrows http.client's return type the same way.
    def getresponse(self) -> HTTPResponse:  # type: ignore[override]
        _watch_current(self)
        return super().getresponse()


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_POOL_CLASSES = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class DeadlineAdapter(HTTPAdapter):
    """An adapter whose connections report their sockets to the request's :class:`Deadline`.

    It also remembers each host's connection-pool key: requests recomputes it per request,
    parsing the URL and asking the file system whether a CA bundle path is a directory.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Create the adapter (``HTTPAdapter``'s arguments)."""
        self._pool_keys: dict[tuple[str, Any, Any], tuple[_HostParams, _PoolKwargs]] = {}
        super().__init__(*args, **kwargs)

    def build_connection_pool_key_attributes(
        self, request: PreparedRequest, verify: Any, cert: Any = None
    ) -> tuple[_HostParams, _PoolKwargs]:
        """The pool key of the request's scheme, host and port with these TLS settings."""
        # urlsplit caches its answers, and without the query the URL repeats across calls.
        parts = urlsplit((request.url or "").partition("?")[0])
        key = (f"{parts.scheme}://{parts.netloc}", verify, cert)
        known = self._pool_keys.get(key)
        if known is None:
            known = super().build_connection_pool_key_attributes(request, verify, cert)
            self._pool_keys[key] = known
        host, pool = known
        return host.copy(), pool.copy()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        """Create the pool manager with watched connection pools."""
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOL_CLASSES

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        """Return the proxy's pool manager, with watched pools unless it is a SOCKS proxy."""
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        # SOCKS managers bring their own pool classes; their requests keep the read-level
        # bound of the transport only.
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = _POOL_CLASSES
        return manager
