"""Access-token provider: one ``gettoken`` per (corp id, secret) per token lifetime.

WeCom intercepts apps that call ``gettoken`` often, and every Dagster step runs in its own
process, so the token is cached in memory (shared by the client's threads) and in a JSON file
(shared by processes on the host). A file lock makes concurrent processes wait for the one that
is fetching instead of stampeding ``gettoken``.

The cache file holds the token, its expiry and fetch time, never the secret; its name is derived
from the corp id and a SHA-256 of the secret, so apps of one corp do not share a token.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import filelock

from wecom_assets.wecom.errors import WeComAuthError, WeComError

logger = logging.getLogger(__name__)

# WeCom blocks an IP for an hour after repeated wrong secrets: one extra try at most, ever.
MAX_AUTH_ATTEMPTS = 2
# Waiting longer than this for another process's gettoken means it is stuck; fetch ourselves.
DEFAULT_LOCK_TIMEOUT = 60.0
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class TokenGrant:
    """What ``gettoken`` answered."""

    token: str = field(repr=False)
    expires_in: float


@dataclass(frozen=True)
class _CachedToken:
    token: str = field(repr=False)
    expires_at: float
    fetched_at: float

    def refresh_at(self, margin: float) -> float:
        # A short-lived token (the sandbox, or WeCom answering with the remaining life of a
        # token it already issued) must not be considered stale on arrival: cap the margin at a
        # quarter of its life.
        lifetime = max(self.expires_at - self.fetched_at, 0.0)
        return self.expires_at - min(margin, lifetime / 4)


def _copy(error: WeComError) -> WeComError:
    # Raising one exception object again (and from several threads) would keep growing its
    # traceback; each caller gets its own copy.
    return type(error)(str(error), path=error.path, errcode=error.errcode, errmsg=error.errmsg)


def cache_file_name(corp_id: str, corp_secret: str) -> str:
    """Return the cache file name for one app: readable corp id, hashed secret.

    Args:
        corp_id: The corp id.
        corp_secret: The app secret (only its SHA-256 prefix is used).

    Returns:
        A file name safe on every platform.
    """
    digest = hashlib.sha256(corp_secret.encode()).hexdigest()[:16]
    return f"token-{_SAFE_NAME.sub('_', corp_id)[:64]}-{digest}.json"


class TokenProvider:
    """Hands out a valid access token, fetching one only when no fresh token is cached.

    Thread-safe. Safe across processes when ``cache_dir`` is given.
    """

    def __init__(
        self,
        fetch: Callable[[], TokenGrant],
        *,
        corp_id: str,
        corp_secret: str,
        cache_dir: Path | None,
        refresh_margin: float,
        clock: Callable[[], float] = time.time,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    ) -> None:
        """Create a provider.

        Args:
            fetch: Performs ``gettoken`` (with its own transient retries) and returns the grant.
            corp_id: Corp id, used for the cache file name.
            corp_secret: App secret; only its hash is used, for the cache file name.
            cache_dir: Directory of the cross-process cache file; None keeps tokens in memory.
            refresh_margin: Seconds before expiry at which a token counts as stale.
            clock: Wall clock in epoch seconds (the file is shared between processes, so a
                monotonic clock would not do).
            lock_timeout: Longest wait for another process holding the cache lock.
        """
        self._fetch = fetch
        self._margin = refresh_margin
        self._clock = clock
        self._lock = threading.Lock()
        self._memory: _CachedToken | None = None
        self._auth_failures = 0
        self._auth_error: WeComAuthError | None = None
        self._failures = 0
        self._last_error: WeComError | None = None
        self._path: Path | None = None
        self._file_lock: filelock.FileLock | None = None
        self._dir_ready = False
        if cache_dir is not None:
            self._path = Path(cache_dir) / cache_file_name(corp_id, corp_secret)
            self._file_lock = filelock.FileLock(
                str(self._path) + ".lock", timeout=lock_timeout, mode=0o600, thread_local=False
            )

    def __repr__(self) -> str:
        return f"TokenProvider(cache_file={self._path!s})"

    @property
    def cache_path(self) -> Path | None:
        """The cache file in use, or None when tokens are kept in memory only."""
        return self._path

    def get(self) -> str:
        """Return a token that is valid for at least the refresh margin.

        Returns:
            The access token.

        Raises:
            WeComAuthError: The corp id or secret was rejected (now or on an earlier try).
            WeComError: ``gettoken`` failed otherwise (transient retries exhausted, IP not
                trusted, ...).
        """
        cached = self._memory
        if cached is not None and self._is_fresh(cached):
            return cached.token
        failures_before_wait = self._failures
        with self._lock:
            cached = self._memory
            if cached is not None and self._is_fresh(cached):
                return cached.token
            if self._auth_error is not None and self._auth_failures >= MAX_AUTH_ATTEMPTS:
                raise _copy(self._auth_error)
            if self._failures != failures_before_wait and self._last_error is not None:
                # A gettoken failed while this thread waited for it: share that outcome, as
                # waiters share a success, instead of calling gettoken once per worker thread.
                raise _copy(self._last_error)
            if self._path is not None:
                token = self._get_via_file()
                if token is not None:
                    return token
            return self._fetch_into_memory().token

    def invalidate(self, token: str) -> None:
        """Forget ``token`` after WeCom rejected it (40014/42001/41001).

        Only that exact token is dropped: if memory or the file already hold a newer one
        (another thread or process refreshed first), it stays.

        Args:
            token: The token the failed call used.
        """
        with self._lock:
            if self._memory is not None and self._memory.token == token:
                self._memory = None
            if self._path is None or self._file_lock is None:
                return
            try:
                with self._file_lock:
                    stored = self._read_file()
                    if stored is not None and stored.token == token:
                        self._path.unlink(missing_ok=True)
            except (OSError, filelock.Timeout) as exc:
                self._disable_file_cache(f"cannot update it ({type(exc).__name__}: {exc})")

    def _is_fresh(self, cached: _CachedToken) -> bool:
        return self._clock() < cached.refresh_at(self._margin)

    def _fetch_into_memory(self) -> _CachedToken:
        try:
            grant = self._fetch()
        except WeComError as exc:
            self._failures += 1
            self._last_error = exc
            if isinstance(exc, WeComAuthError):
                self._auth_failures += 1
                self._auth_error = exc
            raise
        now = self._clock()
        cached = _CachedToken(grant.token, expires_at=now + grant.expires_in, fetched_at=now)
        self._memory = cached
        return cached

    def _get_via_file(self) -> str | None:
        """Return a token through the file cache, or None if the file cache became unusable."""
        assert self._path is not None and self._file_lock is not None
        stored = self._read_file()
        if stored is not None and self._is_fresh(stored):
            self._memory = stored
            return stored.token
        try:
            self._ensure_dir()
            self._file_lock.acquire()
        except (OSError, filelock.Timeout) as exc:
            self._disable_file_cache(f"cannot lock it ({type(exc).__name__}: {exc})")
            return None
        try:
            # Another process may have fetched while we waited for the lock.
            stored = self._read_file()
            if stored is not None and self._is_fresh(stored):
                self._memory = stored
                return stored.token
            cached = self._fetch_into_memory()
            try:
                self._write_file(cached)
            except OSError as exc:
                self._disable_file_cache(f"cannot write it ({type(exc).__name__}: {exc})")
            return cached.token
        finally:
            with contextlib.suppress(OSError):
                self._file_lock.release()

    def _ensure_dir(self) -> None:
        assert self._path is not None
        if not self._dir_ready:
            # 0700: the token is a credential; other local users must not read it.
            self._path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._dir_ready = True

    def _read_file(self) -> _CachedToken | None:
        assert self._path is not None
        try:
            text = self._path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            logger.warning(
                "WeCom token cache %s is unreadable (%s); treating it as empty",
                self._path,
                type(exc).__name__,
            )
            return None
        try:
            data = json.loads(text)
            token = data["token"]
            expires_at = float(data["expires_at"])
            fetched_at = float(data["fetched_at"])
            if not isinstance(token, str) or not token:
                raise ValueError("token is not text")
        except (ValueError, TypeError, KeyError):
            logger.warning("WeCom token cache %s is malformed; treating it as empty", self._path)
            return None
        return _CachedToken(token, expires_at=expires_at, fetched_at=fetched_at)

    def _write_file(self, cached: _CachedToken) -> None:
        assert self._path is not None
        content = json.dumps(
            {
                "token": cached.token,
                "expires_at": cached.expires_at,
                "fetched_at": cached.fetched_at,
            }
        )
        # Write a private temp file and rename it over the cache, so readers that skip the
        # lock never see half a file and the token is never briefly world-readable.
        # mkstemp creates the file with mode 0600 (os.open with O_EXCL).
        fd, temp_name = tempfile.mkstemp(prefix=".token-", dir=self._path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(content)
            os.replace(temp_name, self._path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp_name)
            raise

    def _disable_file_cache(self, reason: str) -> None:
        logger.warning(
            "WeCom token cache %s disabled: %s; keeping tokens in memory for this process",
            self._path,
            reason,
        )
        self._path = None
        self._file_lock = None
