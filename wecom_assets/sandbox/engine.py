"""The simulated WeCom service, independent of HTTP: one request in, one :class:`Reply` out.

The order of checks follows what a client of the real API sees: latency, then faults in front of
the API (gateway errors, resets, "system busy"), then the access token, then the call limits
(per API and per client IP, each a minute and an hour), then the endpoint itself. All mutable state (tokens, limits, fault generator, stats) sits
behind one lock, held only for bookkeeping, never while sleeping or encoding answers.
"""

from __future__ import annotations

import copy
import hmac
import itertools
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from wecom_assets.sandbox import faults as fault_kinds
from wecom_assets.sandbox.call_counts import Stats
from wecom_assets.sandbox.call_quota import (
    API_HOUR,
    API_MINUTE,
    IP_HOUR,
    IP_MINUTE,
    CallQuota,
    Quota,
)
from wecom_assets.sandbox.config import SandboxConfig, apply_changes, validate
from wecom_assets.sandbox.endpoints import ENDPOINTS, TAG_PATHS
from wecom_assets.sandbox.faults import FaultInjector
from wecom_assets.sandbox.index import ApiError, OrgIndex, encode
from wecom_assets.sandbox.org import check_org
from wecom_assets.sandbox.token_issuer import TokenRegistry
from wecom_assets.sandbox.webhook import WEBHOOK_PATH, WebhookInbox

JSON_TYPE = "application/json; charset=UTF-8"
HTML_TYPE = "text/html; charset=UTF-8"

API_FORBIDDEN = 48002

SEND = "send"
DROP = "drop"
TRUNCATE = "truncate"

ERRMSG: dict[int, str] = {
    -1: "system busy",
    40001: "invalid credential",
    40013: "invalid corpid",
    40014: "invalid access_token",
    40008: "invalid message type",
    40058: "invalid Request Parameter",
    41001: "access_token missing",
    42001: "access_token expired",
    43002: "require POST method",
    44004: "content is empty",
    40068: "invalid tagid",
    45009: "api freq out of limit",
    47001: "data format error",
    48002: "api forbidden",
    60003: "department not found",
    60011: "no privilege to access/modify contact/party/agent",
    60111: "userid not found",
    60123: "invalid party id",
    93000: "invalid webhook url",
}

# Someone who points real credentials (or a client meant for WeCom) at the sandbox gets 40013 for
# the corp id and would go and check it in the admin console: every errmsg says who answered.
SANDBOX_NOTE = "wecom_assets sandbox, not WeCom"
_CREDENTIALS_NOTE = f"{SANDBOX_NOTE}: it accepts only the corp id and secret of the org it serves"


def sandbox_errmsg(errcode: int) -> str:
    """WeCom's text for ``errcode``, marked as the sandbox's answer."""
    note = _CREDENTIALS_NOTE if errcode in (40001, 40013) else SANDBOX_NOTE
    return f"{ERRMSG.get(errcode, 'error')} ({note})"


_GATEWAY_PAGE = (
    "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
_REASONS = {404: "Not Found", 502: "Bad Gateway", 503: "Service Temporarily Unavailable"}


@dataclass(frozen=True)
class Reply:
    """An answer for the HTTP layer: what to send, and how (whole, cut off, or not at all)."""

    status: int
    body: bytes
    content_type: str = JSON_TYPE
    action: str = SEND
    errcode: int | None = None


@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    query: Mapping[str, str]
    body: bytes
    client_ip: str


def html_reply(status: int) -> Reply:
    """An nginx-style error page, as a gateway in front of the API answers."""
    page = _GATEWAY_PAGE.format(status=status, reason=_REASONS.get(status, "Error"))
    return Reply(status, page.encode(), HTML_TYPE)


def _same(given: str, expected: str) -> bool:
    """Constant-time comparison that also accepts non-ASCII input."""
    return hmac.compare_digest(given.encode(), expected.encode())


class SandboxEngine:
    """Answers WeCom API requests from an org; thread-safe."""

    def __init__(
        self,
        org: dict[str, Any],
        config: SandboxConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        check_org(org)
        self._config = config if config is not None else SandboxConfig()
        validate(self._config)
        self._lock = threading.Lock()
        self._org = org
        self._index = OrgIndex(org, self._config.visible_department_ids, self._config.new_app)
        self._tokens = TokenRegistry(clock)
        self._quota = CallQuota(clock)
        self._faults = FaultInjector(self._config.seed)
        self._stats = Stats()
        self._webhook = WebhookInbox(clock)
        self._hints = itertools.count(1)

    @property
    def config(self) -> SandboxConfig:
        """The current settings (a copy; change them with :meth:`update_config`)."""
        return copy.deepcopy(self._config)

    @property
    def org(self) -> dict[str, Any]:
        """The org being served (the whole org, not the visible view)."""
        return self._org

    def update_config(self, changes: Mapping[str, Any]) -> SandboxConfig:
        """Apply setting changes at once, for calls that start after this returns.

        Raises:
            ValueError: On an unknown setting or invalid value; nothing is changed then.
        """
        new = apply_changes(self._config, changes)
        index = None
        if (new.visible_department_ids, new.new_app) != (
            self._config.visible_department_ids,
            self._config.new_app,
        ):
            index = OrgIndex(self._org, new.visible_department_ids, new.new_app)
        with self._lock:
            if index is not None:
                self._index = index
            if "seed" in changes:
                self._faults.reseed(new.seed)
            if new.faults.fail_after != self._config.faults.fail_after:
                self._faults.restart_outage_count()
            if "invalidate_every" in changes:
                self._tokens.reset_uses()
            self._config = new
        return self.config

    def replace_org(self, org: dict[str, Any]) -> None:
        """Serve another org from now on (an org that changed between syncs).

        Tokens stay valid when the corp id and secret are unchanged, as they would in WeCom.

        Raises:
            ValueError: When ``org`` does not have the org shape.
        """
        check_org(org)
        index = OrgIndex(org, self._config.visible_department_ids, self._config.new_app)
        with self._lock:
            same_app = (org["corp_id"], org["corp_secret"]) == (
                self._org["corp_id"],
                self._org["corp_secret"],
            )
            if not same_app:
                self._tokens.invalidate_all()
            self._org = org
            self._index = index

    def stats(self) -> dict[str, Any]:
        """A snapshot of the counts (see :class:`~wecom_assets.sandbox.call_counts.Stats`)."""
        with self._lock:
            return self._stats.snapshot()

    def reset_stats(self) -> None:
        """Zero the counts and forget delivered robot messages; tokens, limits, settings stay."""
        with self._lock:
            self._stats.reset()
            self._faults.restart_outage_count()
            self._webhook.clear()

    def webhook_messages(self) -> list[dict[str, Any]]:
        """Messages the group robots delivered, oldest first (see :class:`WebhookInbox`)."""
        with self._lock:
            return self._webhook.messages()

    def connection_opened(self) -> None:
        """Count a client connection (keep-alive clients open few)."""
        with self._lock:
            self._stats.connections += 1

    def handle(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        body: bytes,
        client_ip: str = "127.0.0.1",
    ) -> Reply:
        """Answer one request to ``/cgi-bin/<path>``.

        Args:
            method: HTTP method.
            path: API path below ``/cgi-bin/``, e.g. ``"user/list"``.
            query: Query parameters (first value of each).
            body: Request body.
            client_ip: Shown in error messages, as WeCom does.
        """
        request = _Request(method, path, query, body, client_ip)
        is_token = path == "gettoken"
        if not is_token and path != WEBHOOK_PATH and path not in ENDPOINTS:
            return html_reply(404)
        config = self._config
        with self._lock:
            self._stats.begin_request()
        try:
            if config.latency_ms:
                time.sleep(config.latency_ms / 1000)
            with self._lock:
                if is_token:
                    self._stats.gettoken += 1
                else:
                    self._stats.calls[path] += 1
                fault = None
                if not is_token or config.faults.gettoken_faults:
                    fault = self._faults.pick(config.faults)
                if fault is not None:
                    self._stats.faults[fault] += 1
                gateway_status = (
                    self._faults.gateway_status() if fault == fault_kinds.HTTP_5XX else 503
                )
            reply = self._answer(request, fault, gateway_status)
            if is_token and reply.errcode != 0:
                with self._lock:
                    self._stats.gettoken_failed += 1
            return reply
        finally:
            with self._lock:
                self._stats.end_request()

    def _answer(self, request: _Request, fault: str | None, gateway_status: int) -> Reply:
        """The answer, with the chosen fault applied in front of or on top of it."""
        if fault in (fault_kinds.OUTAGE, fault_kinds.HTTP_5XX):
            return html_reply(gateway_status)
        if fault == fault_kinds.DROP:
            return Reply(0, b"", action=DROP)
        if fault == fault_kinds.BUSY:
            with self._lock:
                self._stats.errcodes[-1] += 1
            return Reply(200, encode({"errcode": -1, "errmsg": sandbox_errmsg(-1)}), errcode=-1)
        if request.path == "gettoken":
            reply = self._gettoken(request)
        elif request.path == WEBHOOK_PATH:
            reply = self._robot_post(request)
        else:
            reply = self._call(request)
        # A cut-off answer carries no errcode the client can read (a gettoken so answered failed).
        if fault == fault_kinds.TRUNCATE:
            return Reply(reply.status, reply.body, reply.content_type, TRUNCATE)
        if fault == fault_kinds.BAD_JSON:
            return Reply(reply.status, reply.body[: len(reply.body) // 2])
        return reply

    def _error(self, errcode: int, client_ip: str, refused_by: Quota | None = None) -> Reply:
        """An error answer in WeCom's format, counted. Caller must not hold the lock.

        A 45009 names the limit that refused the call; WeCom's own errmsg does not.
        """
        with self._lock:
            self._stats.errcodes[errcode] += 1
            if refused_by is not None:
                self._stats.rate_limited[refused_by.name] += 1
        text = sandbox_errmsg(errcode)
        if refused_by is not None:
            text = (
                f"{ERRMSG[errcode]} ({refused_by.name}: {refused_by.limit} calls per "
                f"{refused_by.window:g} s; {SANDBOX_NOTE})"
            )
        hint = f"{int(time.time())}_{next(self._hints)}"
        errmsg = (
            f"{text}, hint: [{hint}], from ip: {client_ip}, "
            f"more info at https://open.work.weixin.qq.com/devtool/query?e={errcode}"
        )
        return Reply(200, encode({"errcode": errcode, "errmsg": errmsg}), errcode=errcode)

    def _quotas(self, config: SandboxConfig, path: str, client_ip: str) -> list[Quota]:
        """The limits that apply to a call of ``path`` from ``client_ip``."""
        limits = (
            (f"api:{path}", config.rate_limit_per_minute, config.rate_limit_window, API_MINUTE),
            (f"api:{path}", config.rate_limit_per_hour, config.rate_limit_hour_window, API_HOUR),
            (
                f"ip:{client_ip}",
                config.ip_rate_limit_per_minute,
                config.rate_limit_window,
                IP_MINUTE,
            ),
            (
                f"ip:{client_ip}",
                config.ip_rate_limit_per_hour,
                config.rate_limit_hour_window,
                IP_HOUR,
            ),
        )
        return [Quota(key, limit, window, name) for key, limit, window, name in limits if limit]

    def _gettoken(self, request: _Request) -> Reply:
        config, query = self._config, request.query
        refused_by = None
        with self._lock:
            index = self._index
            if not _same(query.get("corpid", ""), index.corp_id):
                errcode = 40013
            elif not _same(query.get("corpsecret", ""), index.corp_secret):
                errcode = 40001
            else:
                refused_by = self._quota.admit(
                    self._quotas(config, "gettoken", request.client_ip),
                    blocks=config.rate_limit_blocks,
                )
                errcode = 45009 if refused_by is not None else 0
                if refused_by is None:
                    token, expires_in, is_new = self._tokens.issue(config.token_ttl)
                    if is_new:
                        self._stats.issued_tokens.append(token)
        if errcode:
            return self._error(errcode, request.client_ip, refused_by)
        payload = {"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": expires_in}
        return Reply(200, encode(payload), errcode=0)

    def _robot_post(self, request: _Request) -> Reply:
        """A group robot's message: the key instead of a token, 20 a minute per robot."""
        config = self._config
        with self._lock:
            errcode = self._webhook.receive(
                request.method,
                request.query.get("key", ""),
                request.body,
                keys=config.webhook_keys,
                limit_per_minute=config.webhook_limit_per_minute,
                window=config.webhook_limit_window,
            )
        if errcode:
            return self._error(errcode, request.client_ip)
        return Reply(200, encode({"errcode": 0, "errmsg": "ok"}), errcode=0)

    def _call(self, request: _Request) -> Reply:
        config, path = self._config, request.path
        endpoint = ENDPOINTS[path]
        token = request.query.get("access_token", "")
        refused_by = None
        with self._lock:
            index = self._index
            errcode = self._tokens.check(token) if token else 41001
            if errcode == 0:
                refused_by = self._quota.admit(
                    self._quotas(config, path, request.client_ip),
                    blocks=config.rate_limit_blocks,
                )
                if refused_by is not None:
                    errcode = 45009
                elif self._tokens.record_use(token, config.invalidate_every):
                    self._stats.tokens_invalidated += 1
        if errcode:
            return self._error(errcode, request.client_ip, refused_by)
        if endpoint.method == "POST" and request.method != "POST":
            return self._error(43002, request.client_ip)
        if config.tags_forbidden and path in TAG_PATHS:
            return self._error(API_FORBIDDEN, request.client_ip)
        try:
            answer = endpoint.handler(index, request.query, request.body)
        except ApiError as exc:
            return self._error(exc.errcode, request.client_ip)
        return Reply(200, answer, errcode=0)
