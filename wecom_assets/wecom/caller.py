"""One API call under the errcode policy: attempt, classify the answer, then act on it.

Each piece has one job: :meth:`Caller._attempt` sends one request (token, limiter, transport)
and reports what came back; :func:`~wecom_assets.wecom.errcodes.classify` decides what an
errcode means; :meth:`Caller._replace_token` and :meth:`Caller._wait_for_retry` carry out the
two kinds of second try, bounded by :data:`MAX_TOKEN_REFRESHES_PER_CALL` and the call's
:class:`~wecom_assets.wecom.retry.RetryBudget`.

A 45009 once the client's own count has reached an hour limit is WeCom's 60-minute block: no
retry within a call's budget can outlast it, so the call fails at once, saying when a run can
call again. WeCom's errmsg for 45009 ("api freq out of limit") names no limit, so the count is
what tells an hour block from a minute one, and a per-IP limit from a per-API one.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from wecom_assets.wecom.config import DEFAULT_SECRET_VARIABLE
from wecom_assets.wecom.directory import FetchCancelled
from wecom_assets.wecom.errcodes import Action, classify, errcode_of, error_for
from wecom_assets.wecom.errors import (
    TransientFailure,
    WeComApiError,
    WeComBlockedError,
    WeComTransientError,
)
from wecom_assets.wecom.limits import Limit, local_time
from wecom_assets.wecom.ratelimit import RateLimiter
from wecom_assets.wecom.redact import Redactor
from wecom_assets.wecom.retry import Backoff, RetryBudget
from wecom_assets.wecom.stats import StatsRecorder
from wecom_assets.wecom.transport import Params, Transport

logger = logging.getLogger(__name__)

# A fresh token rejected this many times in one call means something other than expiry
# (clock skew, a proxy rewriting the query); more refreshes would only hammer gettoken.
MAX_TOKEN_REFRESHES_PER_CALL = 3
_RETRIED = frozenset({Action.RETRY_BUSY, Action.BACK_OFF})
# The errcode of WeCom's call limits (45033, concurrency, has no window to count).
FREQUENCY_LIMITED = 45009
# The budget of the call running in this thread: a gettoken made on its behalf must end in time
# for it, so the nested call gets at most what is left of it.
_running: contextvars.ContextVar[RetryBudget | None] = contextvars.ContextVar(
    "wecom_running_call", default=None
)


class Tokens(Protocol):
    """The part of the token provider a call needs."""

    def get(self) -> str:
        """Return a valid access token."""
        ...

    def invalidate(self, token: str) -> None:
        """Forget ``token`` after WeCom rejected it."""
        ...


@dataclass(frozen=True)
class Call:
    """One API call as the caller asked for it.

    Attributes:
        method: ``"GET"`` or ``"POST"``.
        path: API path below ``/cgi-bin/``.
        params: Query parameters without the access token.
        body: JSON body for POST.
        subject: What the call is about (``"department 7"``), named in messages.
        authenticated: Whether the access token is added (all calls but ``gettoken``).
    """

    method: str
    path: str
    params: Params = field(default_factory=dict)
    body: Mapping[str, Any] | None = None
    subject: str = ""
    authenticated: bool = True

    @property
    def about(self) -> str:
        """`` for <subject>``, or nothing, to append to the path in messages."""
        return f" for {self.subject}" if self.subject else ""


@dataclass(frozen=True)
class _Setback:
    """An attempt that did not succeed: what to do about it and how to describe it."""

    action: Action
    problem: str
    errcode: int | None = None
    errmsg: str | None = None


class Caller:
    """Runs API calls: retries, token refreshes, rate limiting and stats, for every thread."""

    def __init__(
        self,
        transport: Transport,
        tokens: Tokens,
        limiter: RateLimiter,
        stats: StatsRecorder,
        redact: Redactor,
        *,
        max_retries: int,
        retry_max_seconds: float,
        backoff: Backoff,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        wall_clock: Callable[[], float],
        secret_variable: str = DEFAULT_SECRET_VARIABLE,
    ) -> None:
        """Create a caller.

        Args:
            transport: Sends one HTTP request.
            tokens: Hands out and forgets access tokens.
            limiter: Keeps each path under its rate limit.
            stats: Counts retries and errcodes.
            redact: Masks credentials in WeCom's errmsg.
            max_retries: Retries per call after busy, rate-limit and transport failures.
            retry_max_seconds: Time budget of one call.
            backoff: Wait before each retry.
            clock: Monotonic clock of the retry budget.
            sleep: Sleep between attempts.
            wall_clock: Epoch clock, for saying when a blocked call can run again.
            secret_variable: The variable the secret came from, named in auth and permission
                errors.
        """
        self._transport = transport
        self._tokens = tokens
        self._limiter = limiter
        self._stats = stats
        self._redact = redact
        self._max_retries = max_retries
        self._retry_max_seconds = retry_max_seconds
        self._backoff = backoff
        self._clock = clock
        self._sleep = sleep
        self._wall_clock = wall_clock
        self._secret_variable = secret_variable

    def run(self, call: Call, cancel: threading.Event | None = None) -> dict[str, Any]:
        """Make ``call`` until it succeeds or the errcode policy gives up.

        The whole call, attempts and waits alike, ends within ``retry_max_seconds``; a call
        made on behalf of another one in this thread (the gettoken of an API call) gets at
        most what is left of the outer call's budget.

        Args:
            call: The call.
            cancel: Set when the call's result is no longer wanted (a sibling fetch failed).

        Returns:
            The decoded answer (errcode 0 or absent).

        Raises:
            FetchCancelled: ``cancel`` was set before an attempt.
            WeComTransientError: The retry budget ran out (the attempt in flight and a
                rate-limiter wait count against it too).
            WeComBlockedError: An hour limit blocks the call (a 45009 at the client's own
                count of it, or a rate-limiter wait for it beyond the budget); not retried.
            WeComApiError: Too many fresh tokens were rejected, or another failure.
            WeComError: The errcode's own error (:func:`~wecom_assets.wecom.errcodes.error_for`).
        """
        budget = self._budget()
        running = _running.set(budget)
        try:
            return self._run(call, budget, cancel)
        finally:
            _running.reset(running)

    def _budget(self) -> RetryBudget:
        seconds = self._retry_max_seconds
        outer = _running.get()
        if outer is not None:
            seconds = min(seconds, outer.remaining_seconds())
        return RetryBudget(self._max_retries, seconds, self._clock)

    def _run(
        self, call: Call, budget: RetryBudget, cancel: threading.Event | None
    ) -> dict[str, Any]:
        refreshes = 0
        while True:
            if cancel is not None and cancel.is_set():
                raise FetchCancelled(call.path)
            token = self._tokens.get() if call.authenticated else None
            outcome = self._attempt(call, token, budget)
            if not isinstance(outcome, _Setback):
                return outcome
            if outcome.action is Action.REFRESH_TOKEN and token is not None:
                refreshes += 1
                self._replace_token(call, outcome, token, refreshes)
            elif outcome.errcode is None or outcome.action in _RETRIED:
                # No errcode: the request itself failed (HTTP 5xx, timeout, reset), transient.
                self._wait_for_retry(call, outcome, budget)
            else:
                raise error_for(
                    call.path,
                    outcome.errcode,
                    outcome.errmsg or "",
                    call.subject,
                    secret_variable=self._secret_variable,
                )

    def _attempt(
        self, call: Call, token: str | None, budget: RetryBudget
    ) -> dict[str, Any] | _Setback:
        """Send the call once, within the budget; return the answer, else what went wrong."""
        query: dict[str, str | int] = dict(call.params)
        if token is not None:
            # Tokens read from the file cache were fetched by another process.
            self._redact.add(token)
            query["access_token"] = token
        if self._limiter.acquire(call.path, max_wait=budget.remaining_seconds()) is None:
            raise self._refusal(call, budget)
        try:
            payload = self._transport.send(
                call.method, call.path, query, call.body, time_limit=budget.remaining_seconds()
            )
        except TransientFailure as failure:
            return _Setback(Action.RETRY_BUSY, str(failure))
        errcode = errcode_of(call.path, payload)
        action = classify(errcode)
        if action is Action.SUCCEED:
            return payload
        self._stats.record_errcode(errcode)
        errmsg = self._redact(str(payload.get("errmsg", "")))
        return _Setback(action, f"errcode {errcode}: {errmsg}", errcode, errmsg)

    def _refusal(self, call: Call, budget: RetryBudget) -> WeComTransientError:
        """The error of a call the rate limiter would make wait beyond its budget."""
        wait, binding = self._limiter.next_start(call.path)
        if binding is not None and binding.hourly:
            retry_at = self._wall_clock() + wait
            return WeComBlockedError(
                f"WeCom {call.path}{call.about}: not called, as it would go over WeCom's "
                f"limit of {binding} (the client's own count), after which WeCom blocks "
                f"{_blocked(binding)} for an hour. It can run again after "
                f"{local_time(retry_at)}",
                retry_at=retry_at,
                path=call.path,
            )
        if binding is not None and binding.per_ip:
            keeping = f"WeCom's limit of {binding}"
        else:
            keeping = f"{self._limiter.limit_for(call.path)} calls per window"
        return WeComTransientError(
            f"WeCom {call.path}{call.about}: the client's rate limiter admits no call to this "
            f"API within the {budget.remaining_seconds():.3g} s left of the call's "
            f"{budget.max_seconds:g} s budget ({keeping}); lower the concurrency or raise "
            "retry_max_seconds",
            path=call.path,
        )

    def _replace_token(self, call: Call, setback: _Setback, token: str, refreshes: int) -> None:
        """Drop the rejected token so the next attempt fetches a fresh one, within a bound."""
        # Drop exactly the token that failed: another thread or process may already have
        # cached a newer one, which must survive.
        self._tokens.invalidate(token)
        if refreshes > MAX_TOKEN_REFRESHES_PER_CALL:
            raise WeComApiError(
                f"WeCom {call.path}{call.about} rejected {refreshes} access tokens in a row "
                f"(last {setback.problem}); check the host clock and that no proxy rewrites "
                "the query string",
                path=call.path,
                errcode=setback.errcode,
                errmsg=setback.errmsg,
            )
        self._stats.record_retry()
        logger.warning(
            "WeCom %s%s: access token rejected (errcode %s); fetching a new one",
            call.path,
            call.about,
            setback.errcode,
        )

    def _wait_for_retry(self, call: Call, setback: _Setback, budget: RetryBudget) -> None:
        """Back off before the next attempt, or raise when the budget allows none."""
        rate_limited = setback.action is Action.BACK_OFF
        reached: list[Limit] = []
        if setback.errcode == FREQUENCY_LIMITED:
            reached = self._limiter.reached(call.path)
            if reached and reached[0].hourly:
                raise self._blocked_error(call, setback, reached[0])
        if rate_limited:
            self._limiter.slow_down(call.path)
        delay = self._backoff.delay(budget.retries, rate_limited=rate_limited)
        # A retry that could only start when the budget is spent would have no time to run.
        if budget.exhausted() or delay >= budget.remaining_seconds():
            raise WeComTransientError(
                f"WeCom {call.path}{call.about} failed after {budget.retries + 1} attempts "
                f"({budget.max_retries} retries, {budget.max_seconds:g} s budget); "
                f"last error: {setback.problem}{_reached_note(reached)}",
                path=call.path,
                errcode=setback.errcode,
                errmsg=setback.errmsg,
            )
        retry = budget.take()
        self._stats.record_retry()
        logger.warning(
            "WeCom %s%s: %s; retry %d/%d in %.2f s",
            call.path,
            call.about,
            setback.problem,
            retry,
            budget.max_retries,
            delay,
        )
        self._sleep(delay)

    def _blocked_error(self, call: Call, setback: _Setback, limit: Limit) -> WeComBlockedError:
        """The error of a 45009 that is an hour limit's block, saying when to run again."""
        # WeCom's block lasts the limit's window from the call that went over, at most now.
        retry_at = self._wall_clock() + limit.window
        return WeComBlockedError(
            f"WeCom {call.path}{call.about} answered errcode 45009 ({setback.errmsg}) once the "
            f"client's own count had reached WeCom's limit of {limit}: WeCom now blocks "
            f"{_blocked(limit)} for an hour, so the call is not retried. It can run again after "
            f"{local_time(retry_at)}",
            retry_at=retry_at,
            path=call.path,
            errcode=setback.errcode,
            errmsg=setback.errmsg,
        )


def _blocked(limit: Limit) -> str:
    return "every call from this IP" if limit.per_ip else "this API for the corp"


def _reached_note(reached: list[Limit]) -> str:
    """What the client's own count says about a 45009 that retries could not get past."""
    if not reached:
        return ""
    limits = " and ".join(str(limit) for limit in reached)
    return f" (the client's own count has reached WeCom's limit of {limits})"
