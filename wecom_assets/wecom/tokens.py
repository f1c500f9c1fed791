"""Access-token provider: one ``gettoken`` per (corp id, secret) per token lifetime.

WeCom intercepts apps that call ``gettoken`` often, and every Dagster step runs in its own
process, so the token is cached in memory (shared by the client's threads) and in a JSON file
(shared by processes on the host). A file lock makes concurrent processes wait for the one that
is fetching instead of stampeding ``gettoken``. The file and the checks that make it safe to
trust are in :mod:`~wecom_assets.wecom.token_cache`.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import filelock

from wecom_assets.wecom.errors import WeComAuthError, WeComError
from wecom_assets.wecom.token_cache import (
    CachedToken,
    TokenFile,
    UntrustedCache,
    cache_file_name,
)

__all__ = ["TokenGrant", "TokenProvider", "cache_file_name"]

logger = logging.getLogger(__name__)

# WeCom blocks an IP for an hour after repeated wrong secrets: one extra try at most, ever.
MAX_AUTH_ATTEMPTS = 2
# Waiting longer than this for another process's gettoken means it is stuck; fetch ourselves.
DEFAULT_LOCK_TIMEOUT = 60.0


@dataclass(frozen=True)
class TokenGrant:
    """What ``gettoken`` answered."""

    token: str = field(repr=False)
    expires_in: float


def _copy(error: WeComError) -> WeComError:
    # Raising one exception object again (and from several threads) would keep growing its
    # traceback; each caller gets its own copy, attributes and all, without the traceback.
    return copy.copy(error)


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
        self._memory: CachedToken | None = None
        self._auth_failures = 0
        self._auth_error: WeComAuthError | None = None
        self._failures = 0
        self._last_error: WeComError | None = None
        self._file: TokenFile | None = None
        self._directory_checked = False
        if cache_dir is not None:
            path = Path(cache_dir) / cache_file_name(corp_id, corp_secret)
            self._file = TokenFile(path, lock_timeout)

    def __repr__(self) -> str:
        return f"TokenProvider(cache_file={self.cache_path!s})"

    @property
    def cache_path(self) -> Path | None:
        """The cache file in use, or None when tokens are kept in memory only."""
        return None if self._file is None else self._file.path

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
            file = self._trusted_file()
            if file is not None:
                token = self._get_via_file(file)
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
            file = self._trusted_file()
            if file is None:
                return
            try:
                with file.lock:
                    stored = file.read()
                    if stored is not None and stored.token == token:
                        file.remove()
            except (OSError, filelock.Timeout) as exc:
                self._disable_file_cache(f"cannot update it ({type(exc).__name__}: {exc})")

    def _is_fresh(self, cached: CachedToken) -> bool:
        return self._clock() < cached.refresh_at(self._margin)

    def _trusted_file(self) -> TokenFile | None:
        """The cache file, once its directory is checked; None if there is none to trust."""
        if self._file is not None and not self._directory_checked:
            try:
                self._file.open_directory()
            except (OSError, UntrustedCache) as exc:
                self._disable_file_cache(f"{type(exc).__name__}: {exc}")
            self._directory_checked = True
        return self._file

    def _fetch_into_memory(self) -> CachedToken:
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
        cached = CachedToken(grant.token, expires_at=now + grant.expires_in, fetched_at=now)
        self._memory = cached
        return cached

    def _get_via_file(self, file: TokenFile) -> str | None:
        """Return a token through the file cache, or None if the file cache became unusable."""
        stored = file.read()
        if stored is not None and self._is_fresh(stored):
            self._memory = stored
            return stored.token
        try:
            file.lock.acquire()
        except (OSError, filelock.Timeout) as exc:
            self._disable_file_cache(f"cannot lock it ({type(exc).__name__}: {exc})")
            return None
        try:
            # Another process may have fetched while we waited for the lock.
            stored = file.read()
            if stored is not None and self._is_fresh(stored):
                self._memory = stored
                return stored.token
            cached = self._fetch_into_memory()
            try:
                file.write(cached)
            except OSError as exc:
                self._disable_file_cache(f"cannot write it ({type(exc).__name__}: {exc})")
            return cached.token
        finally:
            with contextlib.suppress(OSError):
                file.lock.release()

    def _disable_file_cache(self, reason: str) -> None:
        logger.warning(
            "WeCom token cache %s disabled: %s; keeping tokens in memory for this process",
            self.cache_path,
            reason,
        )
        self._file = None
