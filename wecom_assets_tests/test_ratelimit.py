"""The rate limiter admits bursts up to the per-minute limit and then waits, per API path."""

from __future__ import annotations

import threading

import pytest
from client_helpers import FakeClock

from wecom_assets.wecom.ratelimit import RateLimiter


def _limiter(limit: int, clock: FakeClock) -> RateLimiter:
    return RateLimiter(limit, clock=clock, sleep=clock.sleep)


def test_calls_within_the_limit_start_at_once() -> None:
    clock = FakeClock()
    limiter = _limiter(100, clock)
    assert [limiter.acquire("user/list") for _ in range(100)] == [0.0] * 100
    assert clock.sleeps == []


def test_call_over_the_limit_waits_until_the_oldest_leaves_the_window() -> None:
    clock = FakeClock()
    limiter = _limiter(3, clock)
    for _ in range(3):
        limiter.acquire("user/list")
        clock.advance(1.0)
    assert limiter.acquire("user/list") == pytest.approx(57.0)


def test_window_slides_rather_than_resetting() -> None:
    clock = FakeClock()
    limiter = _limiter(2, clock)
    limiter.acquire("p")
    clock.advance(30)
    limiter.acquire("p")
    clock.advance(31)
    assert limiter.acquire("p") == 0.0
    assert limiter.acquire("p") == pytest.approx(29.0)


def test_each_path_has_its_own_window() -> None:
    clock = FakeClock()
    limiter = _limiter(1, clock)
    limiter.acquire("user/list")
    assert limiter.acquire("department/list") == 0.0
    assert limiter.acquire("user/list") == pytest.approx(60.0)


def test_slow_down_halves_the_calls_of_the_current_window() -> None:
    clock = FakeClock()
    limiter = _limiter(1000, clock)
    for _ in range(400):
        limiter.acquire("user/list")
    limiter.slow_down("user/list")
    assert limiter.limit_for("user/list") == 200
    assert limiter.limit_for("department/list") == 1000


def test_slowed_path_waits_until_the_window_drains() -> None:
    clock = FakeClock()
    limiter = _limiter(1000, clock)
    for _ in range(400):
        limiter.acquire("user/list")
    limiter.slow_down("user/list")
    assert limiter.acquire("user/list") == pytest.approx(60.0)


def test_allowance_recovers_after_a_quiet_window() -> None:
    clock = FakeClock()
    limiter = _limiter(1000, clock)
    for _ in range(400):
        limiter.acquire("p")
    limiter.slow_down("p")
    clock.advance(60)
    assert limiter.limit_for("p") == 1000


def test_simultaneous_slow_downs_count_once() -> None:
    clock = FakeClock()
    limiter = _limiter(1000, clock)
    for _ in range(400):
        limiter.acquire("p")
    for _ in range(16):
        limiter.slow_down("p")
    assert limiter.limit_for("p") == 200
    clock.advance(5)
    limiter.slow_down("p")
    assert limiter.limit_for("p") == 100


def test_slow_down_never_goes_below_a_sixteenth_of_the_limit() -> None:
    clock = FakeClock()
    limiter = _limiter(1600, clock)
    limiter.acquire("p")
    for _ in range(10):
        limiter.slow_down("p")
        clock.advance(5)
    assert limiter.limit_for("p") == 100


def test_short_windows_are_supported() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2, window=0.5, clock=clock, sleep=clock.sleep)
    limiter.acquire("p")
    limiter.acquire("p")
    assert limiter.acquire("p") == pytest.approx(0.5)


def test_threads_share_one_window() -> None:
    clock = FakeClock()

    class MustWait(Exception):
        pass

    def refuse_to_wait(seconds: float) -> None:
        raise MustWait

    limiter = RateLimiter(10, clock=clock, sleep=refuse_to_wait)
    admitted: list[float] = []
    refused: list[int] = []
    lock = threading.Lock()

    def call() -> None:
        try:
            waited = limiter.acquire("user/list")
        except MustWait:
            with lock:
                refused.append(1)
        else:
            with lock:
                admitted.append(waited)

    threads = [threading.Thread(target=call) for _ in range(25)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert admitted == [0.0] * 10
    assert len(refused) == 15


def test_limit_below_one_is_rejected() -> None:
    with pytest.raises(ValueError):
        RateLimiter(0)


def test_window_must_be_positive() -> None:
    with pytest.raises(ValueError):
        RateLimiter(1, window=0)
