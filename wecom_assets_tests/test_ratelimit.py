"""The rate limiter admits bursts up to each limit and then waits: per API path, per IP."""

from __future__ import annotations

import threading

import pytest
from client_helpers import FakeClock

from wecom_assets.wecom.ip_quota import SharedQuota
from wecom_assets.wecom.limits import Limit
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
            assert waited is not None
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


# WeCom's hour limit per API, and the machine's per-IP budget --------------------------------


def _hourly(limit: int, hour_limit: int, clock: FakeClock) -> RateLimiter:
    return RateLimiter(limit, hour_limit=hour_limit, clock=clock, sleep=clock.sleep)


def test_the_hour_limit_waits_for_the_oldest_call_of_the_hour() -> None:
    clock = FakeClock()
    limiter = _hourly(10, 3, clock)
    for _ in range(3):
        limiter.acquire("user/list")
        clock.advance(100)
    assert limiter.acquire("user/list") == pytest.approx(3600 - 300)


def test_the_minute_limit_still_binds_below_the_hour_limit() -> None:
    clock = FakeClock()
    limiter = _hourly(2, 100, clock)
    limiter.acquire("p")
    limiter.acquire("p")
    assert limiter.acquire("p") == pytest.approx(60.0)


def test_each_path_has_its_own_hour_window() -> None:
    clock = FakeClock()
    limiter = _hourly(10, 1, clock)
    limiter.acquire("user/list")
    assert limiter.acquire("department/list") == 0.0


def test_next_start_names_the_hour_limit_when_it_binds() -> None:
    clock = FakeClock()
    limiter = _hourly(10, 2, clock)
    limiter.acquire("p")
    clock.advance(600)
    limiter.acquire("p")
    wait, binding = limiter.next_start("p")
    assert wait == pytest.approx(3000)
    assert binding is not None and (binding.hourly, binding.per_ip, binding.calls) == (
        True,
        False,
        2,
    )


def test_next_start_is_now_while_every_limit_has_room() -> None:
    clock = FakeClock()
    assert _hourly(10, 10, clock).next_start("p") == (0.0, None)


def test_reached_lists_the_hour_limit_first() -> None:
    clock = FakeClock()
    limiter = _hourly(3, 3, clock)
    for _ in range(3):
        limiter.acquire("p")
    assert [(limit.hourly, limit.calls) for limit in limiter.reached("p")] == [
        (True, 3),
        (False, 3),
    ]


def test_reached_is_empty_well_below_every_limit() -> None:
    clock = FakeClock()
    limiter = _hourly(1000, 1000, clock)
    limiter.acquire("p")
    assert limiter.reached("p") == []


def test_calls_wait_for_the_machines_per_ip_budget() -> None:
    clock = FakeClock(start=1_000_000.0)
    shared = SharedQuota([Limit(3, 60.0, hourly=False, per_ip=True)], path=None, clock=clock)
    limiter = RateLimiter(100, shared=shared, clock=clock, sleep=clock.sleep)
    assert [limiter.acquire(path) for path in ("a", "b", "c")] == [0.0] * 3
    # The three were counted in the bucket ending at 1,000,001, for a window and a lease (1 s).
    assert limiter.acquire("d") == pytest.approx(62.0)


def test_a_per_ip_wait_beyond_max_wait_is_refused_naming_the_per_ip_limit() -> None:
    clock = FakeClock()
    per_ip = Limit(1, 60.0, hourly=False, per_ip=True)
    shared = SharedQuota([per_ip], path=None, clock=clock)
    limiter = RateLimiter(100, shared=shared, clock=clock, sleep=clock.sleep)
    limiter.acquire("a")
    assert limiter.acquire("b", max_wait=5.0) is None
    assert limiter.next_start("b")[1] == per_ip
