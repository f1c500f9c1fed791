"""HTTP front of the sandbox: a threaded HTTP/1.1 server with keep-alive, and control endpoints.

Clients use a pooled ``requests.Session`` from many threads, so the server speaks HTTP/1.1 with
keep-alive, answers with exact Content-Length, disables Nagle (headers and body go out in
separate writes, which would otherwise stall on delayed ACKs) and has a deep accept backlog.
Each connection gets its own thread, so simulated latency never blocks other requests.

Control endpoints for tests that run the sandbox in another process:
``GET /sandbox/stats``, ``POST /sandbox/reset``, ``GET|POST /sandbox/config`` (JSON body of
SandboxConfig/FaultConfig fields to change), ``POST /sandbox/org`` (JSON org to serve instead),
``GET /sandbox/webhook`` (the messages group robots delivered).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from wecom_assets.sandbox.config import FaultConfig, SandboxConfig
from wecom_assets.sandbox.engine import (
    DROP,
    SANDBOX_NOTE,
    TRUNCATE,
    Reply,
    SandboxEngine,
    html_reply,
)
from wecom_assets.sandbox.index import encode

__all__ = ["FaultConfig", "SandboxConfig", "SandboxServer"]

logger = logging.getLogger(__name__)

_API_PREFIX = "/cgi-bin/"
_CONTROL_PREFIX = "/sandbox/"
_SECRET_PARAMS = re.compile(r"\b(access_token|corpsecret|key)=[^&\s'\"]*")


def exposure_warning(host: str) -> str | None:
    """The warning for a server bound to ``host``, or None when only this machine can reach it.

    The control endpoints exist for tests and take no authentication, so on a network they give
    the org away to anyone who asks.
    """
    try:
        if ipaddress.ip_address(host.split("%", 1)[0]).is_loopback:
            return None
    except ValueError:
        pass
    return (
        f"the WeCom sandbox listens on {host}, so other machines can reach it, and it has no "
        "authentication: GET /sandbox/stats lists every access token it issued, POST /sandbox/org "
        "and /sandbox/config replace its org and settings, and with a token anyone can read the "
        "org's names, mobiles and emails. Bind 127.0.0.1 unless other machines must use it."
    )


def _redact(text: str) -> str:
    """Hide tokens, secrets and robot keys: the sandbox's logs must not leak what tests look for."""
    return _SECRET_PARAMS.sub(r"\1=***", text)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # Many client threads connect at once; the default backlog of 5 makes the kernel drop SYNs,
    # which costs the client a one-second retransmit.
    request_queue_size = 512

    def __init__(self, address: tuple[str, int], engine: SandboxEngine) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.engine = engine
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN, which can stall without DNS.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up mid-answer are routine here (and caused on purpose by faults);
        # the default prints a traceback to stderr for each.
        logger.debug("connection from %s ended with an error", client_address, exc_info=True)

    def track(self, connection: socket.socket) -> None:
        with self._open_lock:
            self._open.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._open_lock:
            self._open.discard(connection)

    def close_connections(self) -> None:
        """End idle keep-alive connections, so a stopped server does not keep serving them."""
        with self._open_lock:
            connections = list(self._open)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "nginx"
    sys_version = ""
    disable_nagle_algorithm = True
    timeout = 120  # idle keep-alive connections are closed after this many seconds
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)
        self.server.engine.connection_opened()

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # Paths only: query strings carry the token and the secret. A malformed request line
        # leaves ``path`` unset.
        logger.debug('"%s %s" %s', self.command, urlsplit(getattr(self, "path", "")).path, code)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s", _redact(format % args))

    def _dispatch(self) -> None:
        body = self._read_body()
        if body is None:
            return
        split = urlsplit(self.path)
        query = {key: values[0] for key, values in parse_qs(split.query).items()}
        try:
            if split.path.startswith(_API_PREFIX):
                reply = self.server.engine.handle(
                    self.command,
                    split.path[len(_API_PREFIX) :],
                    query,
                    body,
                    self.client_address[0],
                )
            elif split.path.startswith(_CONTROL_PREFIX):
                reply = self._control(split.path[len(_CONTROL_PREFIX) :], body)
            else:
                reply = html_reply(404)
        except Exception:
            logger.exception("sandbox failed to answer %s %s", self.command, split.path)
            reply = Reply(
                500, encode({"errcode": -1, "errmsg": f"internal error ({SANDBOX_NOTE})"})
            )
        self._send(reply)

    def _read_body(self) -> bytes | None:
        if self.headers.get("Transfer-Encoding"):
            self._send(Reply(411, encode({"error": "send a Content-Length"})), close=True)
            return None
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self._send(Reply(400, encode({"error": "invalid Content-Length"})), close=True)
            return None
        return self.rfile.read(length) if length else b""

    def _send(self, reply: Reply, close: bool = False) -> None:
        if reply.action == DROP:
            self._abort()
            return
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if reply.action == TRUNCATE:
            self.wfile.write(reply.body[: len(reply.body) // 2])
            self._abort()
            return
        self.wfile.write(reply.body)

    def _abort(self) -> None:
        """Close the connection mid-exchange, as a reset or a dying proxy would."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _control(self, name: str, body: bytes) -> Reply:
        engine = self.server.engine
        post = self.command == "POST"
        try:
            if name == "stats" and not post:
                return Reply(200, encode(engine.stats()))
            if name == "reset" and post:
                engine.reset_stats()
                return Reply(200, encode({"ok": True}))
            if name == "config":
                if post:
                    engine.update_config(_json_object(body))
                return Reply(200, encode(engine.config.to_dict()))
            if name == "webhook" and not post:
                return Reply(200, encode({"messages": engine.webhook_messages()}))
            if name == "org" and post:
                org = _json_object(body)
                engine.replace_org(org)
                counts = {"departments": len(org["departments"]), "users": len(org["users"])}
                return Reply(200, encode({"ok": True, **counts}))
        except ValueError as exc:
            return Reply(400, encode({"error": str(exc)}))
        return Reply(404, encode({"error": f"no control endpoint {self.command} /sandbox/{name}"}))


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"body is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ValueError("body must be a JSON object")
    return value


class SandboxServer:
    """A WeCom contact-API simulator on a local port, served from a daemon thread.

    Use as ``with SandboxServer(org, config) as sandbox:`` and point the client's base URL at
    ``sandbox.url``; the API lives under ``/cgi-bin/`` as in WeCom.
    """

    def __init__(
        self,
        org: dict[str, Any],
        config: SandboxConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Prepare a server; nothing listens until :meth:`start`.

        Args:
            org: The org to serve (see :mod:`wecom_assets.sandbox.org`).
            config: Behaviour settings; defaults to a well-behaved API.
            host: Interface to listen on; anything but loopback logs a warning, as the
                sandbox serves tokens and org data without authentication.
            port: Port to listen on; 0 picks a free one.
            clock: Seconds for token lifetimes and rate-limit windows; tests pass a clock they
                move themselves, so two hours of token life pass without waiting.

        Raises:
            ValueError: When the org or the config is invalid.
        """
        self.engine = SandboxEngine(org, config, clock)
        self._address = (host, port)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> SandboxServer:
        """Bind the port and serve in a daemon thread; returns self.

        Raises:
            RuntimeError: When already started.
            OSError: When the port cannot be bound.
        """
        if self._httpd is not None:
            raise RuntimeError("sandbox server already started")
        httpd = _HTTPServer(self._address, self.engine)
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.02},
            name=f"wecom-sandbox-{httpd.server_port}",
            daemon=True,
        )
        self._httpd = httpd
        self._thread.start()
        logger.debug("WeCom sandbox listening on %s", self.url)
        warning = exposure_warning(str(httpd.server_address[0]))
        if warning is not None:
            logger.warning(warning)
        return self

    def stop(self) -> None:
        """Stop serving, close open connections and release the port. Idempotent."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._httpd = self._thread = None
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> SandboxServer:
        if self._httpd is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port.

        Raises:
            RuntimeError: Before :meth:`start`.
        """
        if self._httpd is None:
            raise RuntimeError("sandbox server not started")
        return self._httpd.server_port

    @property
    def url(self) -> str:
        """Base URL for clients, e.g. ``http://127.0.0.1:43123`` (API under ``/cgi-bin/``)."""
        host = self._address[0]
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    @property
    def config(self) -> SandboxConfig:
        """The current settings (a copy)."""
        return self.engine.config

    @property
    def org(self) -> dict[str, Any]:
        """The org being served (the whole org; see ``visible_view`` for what the app sees)."""
        return self.engine.org

    def stats(self) -> dict[str, Any]:
        """Exact counts since start or the last :meth:`reset_stats`.

        Keys: ``calls`` (API path -> requests, gettoken excluded), ``gettoken`` (requests),
        ``gettoken_failed`` (answered without a token), ``errcodes`` (non-zero errcode ->
        answers, including -1 from the busy fault and 45009), ``rate_limited`` (limit -> calls it
        refused with 45009, every limit present), ``faults`` (kind -> injected, every kind
        present), ``issued_tokens`` (every token issued since start; kept by reset),
        ``tokens_invalidated`` (early invalidations), ``connections`` (TCP connections accepted),
        ``max_in_flight`` (peak concurrent API requests).
        """
        return self.engine.stats()

    def reset_stats(self) -> None:
        """Zero the counts and forget robot messages (tokens, limits and settings stay)."""
        self.engine.reset_stats()

    def webhook_messages(self) -> list[dict[str, Any]]:
        """What group robots delivered, oldest first: ``msgtype``, ``content``, ``body``."""
        return self.engine.webhook_messages()

    def update_config(self, **changes: Any) -> SandboxConfig:
        """Change settings live: any SandboxConfig or FaultConfig field, e.g. ``busy_rate=0.03``.

        Raises:
            ValueError: On an unknown field or invalid value (nothing changes then).
        """
        return self.engine.update_config(changes)

    def replace_org(self, org: dict[str, Any]) -> None:
        """Serve another org from now on; tokens survive when the credentials are unchanged."""
        self.engine.replace_org(org)
