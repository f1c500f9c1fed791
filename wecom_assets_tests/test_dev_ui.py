import subprocess
import time
from collections.abc import Callable, Iterator

import psutil
import pytest

from wecom_assets.dev.dev_ui import live_group_members


def _until(condition: Callable[[], bool]) -> None:
    """Wait for a state change of another process; fail instead of hanging."""
    for _ in range(1000):
        if condition():
            return
        time.sleep(0.01)
    pytest.fail("the process never reached the expected state")


@pytest.fixture
def group_of_two() -> Iterator[subprocess.Popen[bytes]]:
    """A shell leading its own process group, with one ``sleep`` child in it."""
    leader = subprocess.Popen(["sh", "-c", "sleep 60 & wait"], start_new_session=True)
    _until(lambda: len(psutil.Process(leader.pid).children()) == 1)
    yield leader
    for process in psutil.Process(leader.pid).children():
        process.kill()
    leader.kill()
    leader.wait()


def test_live_group_members_lists_every_running_process_of_the_group(
    group_of_two: subprocess.Popen[bytes],
) -> None:
    child = psutil.Process(group_of_two.pid).children()[0]

    assert live_group_members(group_of_two.pid) == sorted([group_of_two.pid, child.pid])


def test_live_group_members_leaves_out_a_process_that_exited_but_was_not_reaped() -> None:
    leader = subprocess.Popen(["true"], start_new_session=True)
    try:
        _until(lambda: psutil.Process(leader.pid).status() == psutil.STATUS_ZOMBIE)

        assert live_group_members(leader.pid) == []
    finally:
        leader.wait()
