"""The token cache file lets processes share one token; a broken cache never breaks a sync."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import filelock
import pytest
from client_helpers import CORP_ID, SECRET, FakeClock, FakeGettoken, wait_for_file_length

from wecom_assets.wecom.tokens import TokenProvider, cache_file_name


def _provider(fetch: FakeGettoken, clock: FakeClock, cache_dir: Path) -> TokenProvider:
    return TokenProvider(
        fetch,
        corp_id=CORP_ID,
        corp_secret=SECRET,
        cache_dir=cache_dir,
        refresh_margin=300.0,
        clock=clock,
    )


def _provider_token(cache_dir: Path, clock: FakeClock) -> str:
    return _provider(FakeGettoken(), clock, cache_dir).get()


def _cache_file(cache_dir: Path) -> Path:
    return cache_dir / cache_file_name(CORP_ID, SECRET)


def test_cache_file_is_private_and_holds_token_and_times_only(tmp_path: Path) -> None:
    cache_dir = tmp_path / "wecom"
    clock = FakeClock()
    _provider(FakeGettoken(), clock, cache_dir).get()
    path = _cache_file(cache_dir)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache_dir.stat().st_mode) == 0o700
    data = json.loads(path.read_text())
    assert set(data) == {"token", "expires_at", "fetched_at"}
    assert data["token"] == "token-1"
    assert data["expires_at"] == clock.now + 7200
    assert SECRET not in path.name
    assert CORP_ID in path.name


def test_apps_with_different_secrets_use_different_files() -> None:
    assert cache_file_name(CORP_ID, "secret-a") != cache_file_name(CORP_ID, "secret-b")


def test_second_provider_reuses_the_cached_token(tmp_path: Path) -> None:
    clock = FakeClock()
    first, second = FakeGettoken(), FakeGettoken()
    assert _provider(first, clock, tmp_path).get() == "token-1"
    assert _provider(second, clock, tmp_path).get() == "token-1"
    assert second.calls == 0


def test_stale_cached_token_is_refetched_and_rewritten(tmp_path: Path) -> None:
    clock = FakeClock()
    _provider(FakeGettoken(), clock, tmp_path).get()
    clock.advance(7200)
    later = FakeGettoken()
    assert _provider(later, clock, tmp_path).get() == "token-1"
    assert later.calls == 1
    assert json.loads(_cache_file(tmp_path).read_text())["expires_at"] == clock.now + 7200


def _fresh_entry(token: str, clock: FakeClock) -> str:
    return json.dumps({"token": token, "expires_at": clock.now + 7200, "fetched_at": clock.now})


def _plant(cache_dir: Path, content: bytes, mode: int = 0o600) -> Path:
    path = _cache_file(cache_dir)
    path.write_bytes(content)
    path.chmod(mode)
    return path


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{not json",
        b"[]",
        b'"just text"',
        b'{"token": 5, "expires_at": 1, "fetched_at": 0}',
        b'{"token": "x"}',
        b"\xff\xfe\x00{garbage",
        b'{"token": "caf\xe9", "expires_at": 9e9, "fetched_at": 0}',
        b'{"token": "t\\ud800", "expires_at": 9e9, "fetched_at": 0}',
        b'{"token": "two words", "expires_at": 9e9, "fetched_at": 0}',
        b'{"token": "x", "expires_at": NaN, "fetched_at": 0}',
        b'{"token": "x", "expires_at": 1e999, "fetched_at": 0}',
        b'{"token": "x", "expires_at": 1' + b"0" * 400 + b', "fetched_at": 0}',
        b'{"token": "x", "expires_at": true, "fetched_at": 0}',
        b'{"token": "x", "expires_at": 5, "fetched_at": 9}',
        b"[" * 100_000,
        b'{"token": "x", "pad": "' + b"a" * 100_000 + b'"}',
    ],
    ids=[
        "empty",
        "not-json",
        "list",
        "string",
        "token-not-text",
        "no-times",
        "not-utf8",
        "latin1-token",
        "lone-surrogate-token",
        "token-with-space",
        "nan-expiry",
        "infinite-expiry",
        "huge-int-expiry",
        "bool-expiry",
        "expires-before-fetched",
        "deeply-nested",
        "oversized",
    ],
)
def test_any_broken_content_is_a_miss_that_is_rewritten_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes
) -> None:
    path = _plant(tmp_path, content)
    fetch = FakeGettoken()
    provider = _provider(fetch, FakeClock(), tmp_path)
    assert provider.get() == "token-1"
    assert provider.get() == "token-1"
    assert fetch.calls == 1
    assert f"WeCom token cache {path} is malformed" in caplog.text
    assert json.loads(path.read_text())["token"] == "token-1"


@pytest.mark.timeout(30)
def test_fifo_in_place_of_the_cache_file_is_replaced_without_blocking(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _cache_file(tmp_path)
    os.mkfifo(path, 0o600)
    provider = _provider(FakeGettoken(), FakeClock(), tmp_path)
    assert provider.get() == "token-1"
    assert str(path) in caplog.text
    assert stat.S_ISREG(path.stat().st_mode)


def test_cache_file_others_may_write_is_not_trusted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    path = _plant(tmp_path, _fresh_entry("planted", clock).encode(), mode=0o666)
    assert _provider_token(tmp_path, clock) == "token-1"
    assert f"WeCom token cache {path} is unusable" in caplog.text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_cache_file_of_another_user_is_not_trusted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    path = _plant(tmp_path, _fresh_entry("planted", clock).encode())
    os.chown(path, 54321, 54321)
    assert _provider_token(tmp_path, clock) == "token-1"
    assert "owned by uid 54321" in caplog.text
    assert path.stat().st_uid == 0


def test_cache_dir_others_may_write_is_made_private_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache_dir = tmp_path / "shared"
    cache_dir.mkdir()
    cache_dir.chmod(0o777)
    assert _provider_token(cache_dir, FakeClock()) == "token-1"
    assert stat.S_IMODE(cache_dir.stat().st_mode) == 0o700
    assert f"{cache_dir} was writable by others (mode 0777)" in caplog.text
    assert json.loads(_cache_file(cache_dir).read_text())["token"] == "token-1"


def test_cache_dir_of_another_user_is_not_used_and_tokens_stay_in_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    path = _plant(tmp_path, _fresh_entry("planted", clock).encode())
    owner = tmp_path.stat().st_uid
    monkeypatch.setattr(os, "geteuid", lambda: owner + 1)
    fetch = FakeGettoken()
    provider = _provider(fetch, clock, tmp_path)
    assert provider.get() == "token-1"
    assert provider.cache_path is None
    assert f"belongs to uid {owner}" in caplog.text
    assert json.loads(path.read_text())["token"] == "planted"


def test_unusable_cache_dir_falls_back_to_memory_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    fetch = FakeGettoken()
    provider = _provider(fetch, FakeClock(), blocker / "cache")
    with caplog.at_level(logging.WARNING):
        assert provider.get() == "token-1"
        assert provider.get() == "token-1"
        provider.invalidate("token-1")
        assert provider.get() == "token-2"
    assert fetch.calls == 2
    assert "disabled" in caplog.text
    assert provider.cache_path is None


def test_invalidate_removes_the_file_only_when_it_holds_that_token(tmp_path: Path) -> None:
    clock = FakeClock()
    ours = _provider(FakeGettoken(), clock, tmp_path)
    failed = ours.get()
    # Another process already replaced the failed token with a newer one.
    _plant(tmp_path, _fresh_entry("newer", clock).encode())
    ours.invalidate(failed)
    assert json.loads(_cache_file(tmp_path).read_text())["token"] == "newer"
    assert ours.get() == "newer"
    ours.invalidate("newer")
    assert not _cache_file(tmp_path).exists()


_CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import filelock
    from wecom_assets.wecom.tokens import TokenGrant, TokenProvider

    cache_dir, counter, waiting = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    acquire = filelock.FileLock.acquire

    def announce_then_acquire(self, *args, **kwargs):
        with waiting.open("a") as handle:
            handle.write("w")
        return acquire(self, *args, **kwargs)

    filelock.FileLock.acquire = announce_then_acquire

    def fetch():
        with counter.open("a") as handle:
            handle.write("x")
        time.sleep(0.2)
        return TokenGrant("shared-token", 7200)

    provider = TokenProvider(
        fetch, corp_id="ww1", corp_secret="s", cache_dir=cache_dir, refresh_margin=300
    )
    print(provider.get())
    """
)


def test_processes_waiting_on_the_lock_together_fetch_once(tmp_path: Path) -> None:
    cache_dir, counter, waiting = tmp_path / "cache", tmp_path / "fetches", tmp_path / "waiting"
    cache_dir.mkdir(mode=0o700)
    waiting.write_text("")
    lock = filelock.FileLock(str(cache_dir / cache_file_name("ww1", "s")) + ".lock")
    # Hold the cache lock until every child has found no token and queued for the lock, so all
    # of them contend for the one gettoken, however slowly they start.
    with lock:
        children = [
            subprocess.Popen(
                [sys.executable, "-c", _CHILD, str(cache_dir), str(counter), str(waiting)],
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(6)
        ]
        assert wait_for_file_length(waiting, 6), "not every child reached the lock"
    outputs = [child.communicate(timeout=30)[0].strip() for child in children]
    assert outputs == ["shared-token"] * 6
    assert counter.read_text() == "x"
