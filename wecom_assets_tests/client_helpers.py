"""Shared helpers of the WeCom client tests: fake time, credentials, small configs."""

from __future__ import annotations

import contextlib
import json
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pytest_httpserver import HTTPServer

from wecom_assets.wecom import ClientConfig, WeComClient
from wecom_assets.wecom.tokens import TokenGrant

CORP_ID = "ww0123456789abcdef"
SECRET = "S3cr3t-Corp-Secret-Value-9f8e7d6c5b4a"
TOKEN = "ACCESS-TOKEN-first-1a2b3c4d5e6f7a8b9c0d"
TOKEN_2 = "ACCESS-TOKEN-second-0f1e2d3c4b5a69788796"


class FakeClock:
    """A clock that only moves when someone sleeps on it; thread-safe."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


class ExtremeJitter(random.Random):
    """Backoff jitter that always picks the top (or the bottom) of its range."""

    def __init__(self, top: bool) -> None:
        super().__init__()
        self._top = top

    def uniform(self, a: float, b: float) -> float:
        return b if self._top else a


class FakeGettoken:
    """Stands in for the gettoken call: hands out token-1, token-2, ... and counts calls."""

    def __init__(self, expires_in: float = 7200.0, delay: float = 0.0) -> None:
        self.calls = 0
        self.expires_in = expires_in
        self.delay = delay
        self.error: Exception | None = None
        self._lock = threading.Lock()

    def __call__(self) -> TokenGrant:
        with self._lock:
            self.calls += 1
            number = self.calls
        if self.delay:
            time.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return TokenGrant(f"token-{number}", self.expires_in)


def token_answer(token: str = TOKEN, expires_in: int = 7200) -> dict[str, Any]:
    return {"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": expires_in}


def expect_token(server: HTTPServer, token: str = TOKEN, expires_in: int = 7200) -> None:
    server.expect_request("/cgi-bin/gettoken").respond_with_json(token_answer(token, expires_in))


def config_for(base_url: str, **overrides: Any) -> ClientConfig:
    """A config with tiny backoff so retry tests take milliseconds."""
    settings: dict[str, Any] = {
        "corp_id": CORP_ID,
        "corp_secret": SECRET,
        "base_url": base_url,
        "request_timeout": 2.0,
        "max_retries": 3,
        "retry_base_delay": 0.001,
        "retry_max_delay": 0.01,
    }
    settings.update(overrides)
    return ClientConfig(**settings)


def client_for(server: HTTPServer, clock: FakeClock | None = None, **overrides: Any) -> WeComClient:
    base_url = server.url_for("/").rstrip("/")
    if clock is None:
        return WeComClient(config_for(base_url, **overrides))
    return WeComClient(config_for(base_url, **overrides), sleep=clock.sleep, clock=clock)


def calls_to(server: HTTPServer, path: str) -> int:
    return sum(1 for request, _ in server.log if request.path == f"/cgi-bin/{path}")


Respond = Callable[[socket.socket, bytes, threading.Event], None]


def read_request(conn: socket.socket) -> bytes:
    """Read one HTTP request's head (enough for the GETs the client sends)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def request_path(request: bytes) -> str:
    """The path of a request head, without its query string."""
    target = request.split(b" ", 2)[1].decode() if request.count(b" ") >= 2 else ""
    return target.split("?", 1)[0]


def json_answer(payload: dict[str, Any], status: str = "200 OK") -> bytes:
    body = json.dumps(payload).encode()
    # One answer per connection: the server closes it after answering.
    head = f"HTTP/1.1 {status}\r\nConnection: close\r\nContent-Type: application/json\r\n"
    return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


def trickle(conn: socket.socket, head: bytes, stop: threading.Event, interval: float) -> None:
    """Send ``head``, then one byte per ``interval`` until the client hangs up or the test ends."""
    with contextlib.suppress(OSError):
        conn.sendall(head)
        while not stop.wait(interval):
            conn.sendall(b" ")


@contextmanager
def raw_server(respond: Respond) -> Iterator[str]:
    """Serve on localhost, calling ``respond(conn, request, stop)`` per connection in a thread.

    ``stop`` is set when the block ends; every connection is closed then.
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.05)
    stop = threading.Event()
    handlers: list[threading.Thread] = []

    def handle(conn: socket.socket) -> None:
        with conn:
            request = read_request(conn)
            if request:
                respond(conn, request, stop)

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            handler = threading.Thread(target=handle, args=(conn,), daemon=True)
            handlers.append(handler)
            handler.start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    host, port = listener.getsockname()
    try:
        yield f"http://{host}:{port}"
    finally:
        stop.set()
        thread.join(timeout=2)
        for handler in handlers:
            handler.join(timeout=2)
        listener.close()


@contextmanager
def closing_server() -> Iterator[str]:
    """Serve on localhost and drop every connection right after reading the request."""
    with raw_server(lambda conn, request, stop: None) as url:
        yield url


def wait_for_file_length(path: Path, length: int, timeout: float = 30.0) -> bool:
    """Wait until child processes have appended ``length`` bytes to ``path``; False on timeout.

    The timeout only keeps a broken test from hanging; passing never depends on it.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.stat().st_size >= length:
            return True
        time.sleep(0.01)
    return False
