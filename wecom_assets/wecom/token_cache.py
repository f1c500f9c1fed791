"""The token cache file one app's processes share, and the checks that make it safe to trust.

The file holds the token, its expiry and fetch time, never the secret; its name is derived
from the corp id and a SHA-256 of the secret, so apps of one corp do not share a token.

Everything in the cache directory is treated as hostile until checked, as ssh treats
``~/.ssh``: a directory others may write to is repaired (mode 0700) when it is ours, and not
used at all when it is not, since anyone could have planted a token there; a cache file must be
a regular file of ours. Any content that is not exactly what :meth:`TokenFile.write` writes
(other encodings, odd JSON, absurd times, a FIFO) is a corrupt cache: a miss, with a warning
naming the file, and the next write replaces it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import filelock

logger = logging.getLogger(__name__)

_SAFE_NAME = re.compile(r"[^A-Za-z0-9_-]")
# A cache file is about 120 bytes; reading more than this would only feed a hostile file.
_MAX_FILE_BYTES = 64 * 1024
# WeCom tokens are short printable ASCII; anything else did not come from gettoken.
_TOKEN = re.compile(r"[!-~]{1,512}")


class UntrustedCache(Exception):
    """The cache directory or file cannot be trusted or used; the message says why."""


@dataclass(frozen=True)
class CachedToken:
    """A token with its expiry and fetch time, in epoch seconds."""

    token: str = field(repr=False)
    expires_at: float
    fetched_at: float

    def refresh_at(self, margin: float) -> float:
        """When the token counts as stale, ``margin`` seconds before expiry.

        A short-lived token (the sandbox, or WeCom answering with the remaining life of a
        token it already issued) must not be stale on arrival: the margin is capped at a
        quarter of its life.
        """
        lifetime = max(self.expires_at - self.fetched_at, 0.0)
        return self.expires_at - min(margin, lifetime / 4)


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


def open_private_directory(directory: Path) -> None:
    """Create the cache directory (mode 0700) or check an existing one, repairing it if ours.

    Raises:
        UntrustedCache: The directory is not a directory, or belongs to someone else.
        OSError: It cannot be created or inspected.
    """
    # 0700: the token is a credential; other local users must not read it.
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = directory.stat()
    if not stat.S_ISDIR(info.st_mode):
        raise UntrustedCache(f"{directory} is not a directory")
    if info.st_uid != os.geteuid():
        raise UntrustedCache(
            f"{directory} belongs to uid {info.st_uid}, not to this process "
            f"(uid {os.geteuid()}); a file found there could have been planted"
        )
    if info.st_mode & 0o022:
        os.chmod(directory, 0o700)
        logger.warning(
            "WeCom token cache directory %s was writable by others (mode %04o); "
            "made it private (0700)",
            directory,
            stat.S_IMODE(info.st_mode),
        )


class TokenFile:
    """One app's cache file, its lock, and its directory. Not thread-safe: callers lock."""

    def __init__(self, path: Path, lock_timeout: float) -> None:
        """Create the handle; nothing on disk is touched until :meth:`open_directory`.

        Args:
            path: The cache file.
            lock_timeout: Longest wait for another process holding the lock.
        """
        self.path = path
        self.lock = filelock.FileLock(
            str(path) + ".lock", timeout=lock_timeout, mode=0o600, thread_local=False
        )

    def open_directory(self) -> None:
        """Create the directory (mode 0700) or check an existing one, repairing it if ours.

        Raises:
            UntrustedCache: The directory is not a directory, or belongs to someone else.
            OSError: It cannot be created or inspected.
        """
        open_private_directory(self.path.parent)

    def read(self) -> CachedToken | None:
        """Return the cached token, or None when there is none or it cannot be trusted."""
        try:
            content = self._read_bytes()
        except FileNotFoundError:
            return None
        except (OSError, UntrustedCache) as exc:
            logger.warning(
                "WeCom token cache %s is unusable (%s); fetching a new token",
                self.path,
                exc if isinstance(exc, UntrustedCache) else type(exc).__name__,
            )
            return None
        try:
            return _parse(content)
        except (ValueError, TypeError, KeyError, RecursionError, OverflowError) as exc:
            logger.warning(
                "WeCom token cache %s is malformed (%s); fetching a new token and rewriting it",
                self.path,
                type(exc).__name__,
            )
            return None

    def write(self, cached: CachedToken) -> None:
        """Replace the file with ``cached``, atomically and privately.

        Raises:
            OSError: The file cannot be written.
        """
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
        fd, temp_name = tempfile.mkstemp(prefix=".token-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(content)
            os.replace(temp_name, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp_name)
            raise

    def remove(self) -> None:
        """Delete the file if it exists.

        Raises:
            OSError: It exists but cannot be deleted.
        """
        self.path.unlink(missing_ok=True)

    def _read_bytes(self) -> bytes:
        # O_NOFOLLOW: a symlink could point anywhere; O_NONBLOCK: a FIFO must not hang us.
        fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise UntrustedCache("not a regular file")
            if info.st_uid != os.geteuid() or info.st_mode & 0o022:
                raise UntrustedCache(
                    f"owned by uid {info.st_uid} with mode {stat.S_IMODE(info.st_mode):04o}, "
                    "not written by this user"
                )
            return handle.read(_MAX_FILE_BYTES + 1)


def _parse(content: bytes) -> CachedToken:
    if len(content) > _MAX_FILE_BYTES:
        raise ValueError("file too large")
    data = json.loads(content.decode("utf-8"))
    token = data["token"]
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        raise ValueError("token is not printable ASCII text")
    expires_at = _finite(data["expires_at"])
    fetched_at = _finite(data["fetched_at"])
    if expires_at <= fetched_at:
        raise ValueError("token expires before it was fetched")
    return CachedToken(token, expires_at=expires_at, fetched_at=fetched_at)


def _finite(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("time is not a number")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError("time is not finite")
    return number
