"""A call's retry budget runs out on count or on time, whichever comes first; backoff grows."""

from __future__ import annotations

import pytest
from client_helpers import ExtremeJitter, FakeClock

from wecom_assets.wecom.retry import RATE_LIMIT_BACKOFF_FACTOR, Backoff, RetryBudget


def test_fresh_budget_has_all_its_retries_and_time() -> None:
    clock = FakeClock()
    budget = RetryBudget(3, 10.0, clock)
    assert not budget.exhausted()
    assert budget.retries == 0
    assert budget.remaining_seconds() == 10.0


def test_budget_is_exhausted_after_max_retries() -> None:
    budget = RetryBudget(2, 10.0, FakeClock())
    assert budget.take() == 1
    assert not budget.exhausted()
    assert budget.take() == 2
    assert budget.exhausted()


def test_budget_is_exhausted_when_its_time_runs_out_with_retries_left() -> None:
    clock = FakeClock()
    budget = RetryBudget(100, 5.0, clock)
    clock.advance(4.5)
    assert not budget.exhausted()
    assert budget.remaining_seconds() == pytest.approx(0.5)
    clock.advance(0.5)
    assert budget.exhausted()
    assert budget.retries == 0


def test_remaining_time_never_goes_negative() -> None:
    clock = FakeClock()
    budget = RetryBudget(1, 1.0, clock)
    clock.advance(30)
    assert budget.remaining_seconds() == 0.0


def test_zero_retries_means_exhausted_from_the_start() -> None:
    assert RetryBudget(0, 60.0, FakeClock()).exhausted()


def test_busy_backoff_ceiling_doubles_per_retry_up_to_the_cap() -> None:
    backoff = Backoff(0.5, 4.0, ExtremeJitter(top=True))
    delays = [backoff.delay(retry, rate_limited=False) for retry in range(6)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_busy_backoff_may_be_anywhere_from_zero_to_the_ceiling() -> None:
    assert Backoff(0.5, 4.0, ExtremeJitter(top=False)).delay(3, rate_limited=False) == 0.0


def test_rate_limit_backoff_is_longer_and_at_least_half_its_ceiling() -> None:
    highest = Backoff(0.5, 4.0, ExtremeJitter(top=True))
    lowest = Backoff(0.5, 4.0, ExtremeJitter(top=False))
    ceilings = [highest.delay(retry, rate_limited=True) for retry in range(5)]
    floors = [lowest.delay(retry, rate_limited=True) for retry in range(5)]
    factor = RATE_LIMIT_BACKOFF_FACTOR
    assert factor > 1
    assert ceilings == [min(4.0 * factor, 0.5 * factor * 2**retry) for retry in range(5)]
    assert floors == [ceiling / 2 for ceiling in ceilings]
