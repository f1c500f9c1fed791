"""The token provider fetches one token per lifetime and drops exactly the token that failed."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from client_helpers import CORP_ID, SECRET, FakeClock, FakeGettoken

from wecom_assets.wecom import WeComAuthError, WeComPermissionError, WeComTransientError
from wecom_assets.wecom.tokens import TokenProvider


def _provider(
    fetch: FakeGettoken,
    clock: FakeClock,
    cache_dir: Path | None = None,
    margin: float = 300.0,
) -> TokenProvider:
    return TokenProvider(
        fetch,
        corp_id=CORP_ID,
        corp_secret=SECRET,
        cache_dir=cache_dir,
        refresh_margin=margin,
        clock=clock,
    )


def test_token_is_fetched_once_and_reused() -> None:
    fetch, clock = FakeGettoken(), FakeClock()
    provider = _provider(fetch, clock)
    assert [provider.get() for _ in range(5)] == ["token-1"] * 5
    assert fetch.calls == 1


def test_token_is_refreshed_a_margin_before_it_expires() -> None:
    fetch, clock = FakeGettoken(expires_in=7200), FakeClock()
    provider = _provider(fetch, clock, margin=300)
    provider.get()
    clock.advance(7200 - 301)
    assert provider.get() == "token-1"
    clock.advance(2)
    assert provider.get() == "token-2"
    assert fetch.calls == 2


def test_margin_is_clamped_for_short_lived_tokens() -> None:
    fetch, clock = FakeGettoken(expires_in=60), FakeClock()
    provider = _provider(fetch, clock, margin=300)
    provider.get()
    assert provider.get() == "token-1"
    clock.advance(44)
    assert provider.get() == "token-1"
    clock.advance(2)
    assert provider.get() == "token-2"


def test_concurrent_threads_share_one_fetch() -> None:
    fetch, clock = FakeGettoken(delay=0.05), FakeClock()
    provider = _provider(fetch, clock)
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(provider.get())) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["token-1"] * 16
    assert fetch.calls == 1


def test_invalidate_drops_the_failed_token() -> None:
    fetch, clock = FakeGettoken(), FakeClock()
    provider = _provider(fetch, clock)
    provider.invalidate(provider.get())
    assert provider.get() == "token-2"


def test_invalidating_an_older_token_keeps_the_newer_one() -> None:
    fetch, clock = FakeGettoken(), FakeClock()
    provider = _provider(fetch, clock)
    old = provider.get()
    provider.invalidate(old)
    assert provider.get() == "token-2"
    provider.invalidate(old)
    assert provider.get() == "token-2"
    assert fetch.calls == 2


def test_auth_errors_stop_fetching_after_two_tries() -> None:
    fetch, clock = FakeGettoken(), FakeClock()
    fetch.error = WeComAuthError("check WECOM_CORP_SECRET", errcode=40001)
    provider = _provider(fetch, clock)
    for _ in range(5):
        with pytest.raises(WeComAuthError):
            provider.get()
    assert fetch.calls == 2


def test_other_fetch_errors_propagate_and_are_tried_again_later() -> None:
    fetch, clock = FakeGettoken(), FakeClock()
    fetch.error = WeComTransientError("gettoken busy", path="gettoken")
    provider = _provider(fetch, clock)
    with pytest.raises(WeComTransientError):
        provider.get()
    fetch.error = None
    assert provider.get() == "token-2"


def test_threads_waiting_on_a_failed_gettoken_share_the_failure() -> None:
    fetch, clock = FakeGettoken(delay=0.05), FakeClock()
    fetch.error = WeComPermissionError("add this host to the trusted IPs", errcode=60020)
    provider = _provider(fetch, clock)
    errors: list[BaseException] = []
    lock = threading.Lock()

    def call() -> None:
        try:
            provider.get()
        except WeComPermissionError as exc:
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(errors) == 8
    assert fetch.calls == 1
    assert len({id(error) for error in errors}) == 8
    assert all(getattr(error, "errcode", None) == 60020 for error in errors)
