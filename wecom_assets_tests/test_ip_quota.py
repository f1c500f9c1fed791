"""The per-IP budget is one count for every process of the machine, kept in a small file."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from client_helpers import FakeClock

from wecom_assets.wecom import ip_quota
from wecom_assets.wecom.ip_quota import SharedQuota, quota_file_name
from wecom_assets.wecom.limits import Limit

# Windows of 60 s make a lease (and a bucket) 1 s, as against WeCom.
MINUTE_LIMIT = Limit(10, 60.0, hourly=False, per_ip=True)
HOUR_LIMIT = Limit(15, 3600.0, hourly=True, per_ip=True)


def _quota(path: Path | None, clock: FakeClock, *limits: Limit) -> SharedQuota:
    return SharedQuota(limits or (MINUTE_LIMIT,), path=path, clock=clock)


def _take(quota: SharedQuota, times: int) -> list[float]:
    return [quota.take()[0] for _ in range(times)]


def test_calls_within_the_limit_take_a_slot_at_once(tmp_path: Path) -> None:
    quota = _quota(tmp_path / "ip.counts", FakeClock())
    assert _take(quota, 10) == [0.0] * 10


def test_two_processes_on_one_file_share_the_limit(tmp_path: Path) -> None:
    clock = FakeClock()
    first = _quota(tmp_path / "ip.counts", clock)
    second = _quota(tmp_path / "ip.counts", clock)
    assert _take(first, 6) == [0.0] * 6
    assert _take(second, 4) == [0.0] * 4
    assert first.take()[0] > 0
    assert second.take()[0] > 0


def test_a_full_budget_names_the_binding_limit_and_the_wait(tmp_path: Path) -> None:
    clock = FakeClock(start=1_000_000.0)
    quota = _quota(tmp_path / "ip.counts", clock)
    _take(quota, 10)
    clock.advance(0.5)
    # Counted in the bucket ending at 1,000,001, kept a window plus a lease (1 s) after it.
    assert quota.take() == (pytest.approx(61.5), MINUTE_LIMIT)


def test_a_slot_frees_a_window_and_a_lease_after_its_bucket(tmp_path: Path) -> None:
    clock = FakeClock(start=1_000_000.0)
    quota = _quota(tmp_path / "ip.counts", clock)
    _take(quota, 10)
    clock.advance(61.9)
    assert quota.take()[0] > 0
    clock.advance(0.1)
    assert quota.take() == (0.0, None)


def test_the_hour_limit_holds_after_the_minute_window_moves_on(tmp_path: Path) -> None:
    clock = FakeClock(start=1_000_000.0)
    quota = _quota(tmp_path / "ip.counts", clock, MINUTE_LIMIT, HOUR_LIMIT)
    _take(quota, 10)
    clock.advance(62)
    assert _take(quota, 5) == [0.0] * 5
    wait, binding = quota.take()
    assert binding == HOUR_LIMIT
    # The first ten leave the hour window an hour and a lease after their bucket's end.
    assert wait == pytest.approx(1 + 3600 + 1 - 62)


def test_unused_slots_of_a_lease_go_back_when_the_client_closes(tmp_path: Path) -> None:
    clock = FakeClock()
    big = Limit(2_000, 60.0, hourly=False, per_ip=True)
    first = _quota(tmp_path / "ip.counts", clock, big)
    second = _quota(tmp_path / "ip.counts", clock, big)
    first.take()
    first.close()
    assert _take(second, 1_999) == [0.0] * 1_999
    assert second.take()[0] > 0


def test_unused_slots_go_back_at_the_next_reservation_after_the_lease(tmp_path: Path) -> None:
    clock = FakeClock()
    big = Limit(2_000, 60.0, hourly=False, per_ip=True)
    quota = _quota(tmp_path / "ip.counts", clock, big)
    quota.take()
    clock.advance(1.0)
    quota.take()
    stored = json.loads((tmp_path / "ip.counts").read_text())["buckets"]
    assert sum(slots for _, slots in stored) == 1 + 10


def test_slots_are_reserved_in_batches_not_one_file_update_per_call(tmp_path: Path) -> None:
    clock = FakeClock()
    wecom = Limit(20_000, 60.0, hourly=False, per_ip=True)
    quota = _quota(tmp_path / "ip.counts", clock, wecom)
    assert _take(quota, 1_000) == [0.0] * 1_000
    assert quota.reservations == 10


def test_reached_names_the_limits_the_machine_has_used_up(tmp_path: Path) -> None:
    clock = FakeClock()
    quota = _quota(tmp_path / "ip.counts", clock, MINUTE_LIMIT, HOUR_LIMIT)
    _take(quota, 10)
    assert quota.reached() == [MINUTE_LIMIT]
    clock.advance(62)
    _take(quota, 5)
    assert quota.reached() == [HOUR_LIMIT]


def test_a_malformed_file_is_counted_afresh_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "ip.counts"
    path.write_text('{"buckets": [[1, "many"]]}')
    path.chmod(0o600)
    quota = _quota(path, FakeClock())
    with caplog.at_level(logging.WARNING):
        assert _take(quota, 10) == [0.0] * 10
    assert "malformed" in caplog.text


def test_the_file_is_private_to_this_user(tmp_path: Path) -> None:
    quota = _quota(tmp_path / "cache" / "ip.counts", FakeClock())
    quota.take()
    assert (tmp_path / "cache" / "ip.counts").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "cache").stat().st_mode & 0o777 == 0o700


def test_an_unusable_file_falls_back_to_this_process_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "ip.counts"
    os.mkfifo(path)
    quota = _quota(path, FakeClock())
    with caplog.at_level(logging.WARNING):
        assert _take(quota, 10) == [0.0] * 10
        assert quota.take()[0] > 0
    assert "counting this process's calls only" in caplog.text


def test_a_lock_held_by_a_stopped_process_falls_back_to_this_process_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ip_quota, "_LOCK_TIMEOUT", 0.0)
    path = tmp_path / "ip.counts"
    quota = _quota(path, FakeClock())
    quota.take()
    with path.open("rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        with caplog.at_level(logging.WARNING):
            assert _take(quota, 9) == [0.0] * 9
    assert "TimeoutError" in caplog.text
    assert "counting this process's calls only" in caplog.text


def test_counts_from_a_clock_set_back_are_ignored(tmp_path: Path) -> None:
    clock = FakeClock(start=1_000_000.0)
    path = tmp_path / "ip.counts"
    _take(_quota(path, clock), 10)
    earlier = FakeClock(start=1_000_000.0 - 3600)
    assert _take(_quota(path, earlier), 10) == [0.0] * 10


def test_each_api_host_has_its_own_count_file() -> None:
    wecom = quota_file_name("https://qyapi.weixin.qq.com")
    sandbox = quota_file_name("http://127.0.0.1:43123")
    assert wecom != sandbox
    assert wecom == "ip-calls-qyapi.weixin.qq.com-https.counts"
    assert quota_file_name("http://user:pass@proxy:8080/x") == "ip-calls-proxy-8080.counts"


_CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from wecom_assets.wecom.ip_quota import SharedQuota
    from wecom_assets.wecom.limits import Limit

    # Every process sees the same frozen instant, so no slot leaves the window meanwhile.
    quota = SharedQuota(
        [Limit(500, 60.0, hourly=False, per_ip=True)],
        path=Path(sys.argv[1]),
        clock=lambda: 1_000_000.0,
    )
    print(sum(1 for _ in range(200) if quota.take()[0] == 0.0))
    quota.close()
    """
)


def test_processes_together_stay_within_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "ip.counts"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(path)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    taken = [int(child.communicate(timeout=60)[0]) for child in children]
    # 600 tries for 500 slots: each process gets at least the 100 the others leave.
    assert sum(taken) == 500
    assert min(taken) >= 100
