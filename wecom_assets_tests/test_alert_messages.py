"""Alert messages: markdown a phone shows whole, within WeCom's 4,096 bytes, never a secret."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from wecom_assets.defs.alert_digest import Digest
from wecom_assets.defs.alert_events import CheckProblem, RunOutcome, StepProblem
from wecom_assets.defs.alert_messages import REASON_BYTES, render
from wecom_assets.wecom.redact import Redactor
from wecom_assets.wecom.robot import MAX_MARKDOWN_BYTES

UI = "http://dagster.example.com:3000"
ENDED = datetime(2026, 5, 1, 2, 0, 13, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()


def outcome(
    n: int = 1,
    *,
    failed: bool = True,
    steps: tuple[StepProblem, ...] = (),
    checks: tuple[CheckProblem, ...] = (),
    partition: str | None = None,
) -> RunOutcome:
    return RunOutcome(
        storage_id=n,
        run_id=f"{n:08d}-aaaa-bbbb-cccc-dddddddddddd",
        job="wecom_sync",
        partition=partition,
        failed=failed,
        ended_at=ENDED,
        steps=steps,
        failed_checks=checks,
        passed_checks=(),
    )


def message(*problems: RunOutcome, recoveries: tuple[RunOutcome, ...] = ()) -> str:
    return render(
        Digest(problems, recoveries),
        run_url=lambda run_id: f"{UI}/runs/{run_id}",
        runs_url=f"{UI}/runs",
        timezone="Asia/Shanghai",
        redact=Redactor(("robot-key-123",)),
    )


def test_a_failed_run_shows_job_time_errcode_reason_and_link() -> None:
    step = StepProblem("wecom_org", 40001, "WeCom rejected the corp secret.\nCheck it.")
    text = message(outcome(steps=(step,)))
    assert text.splitlines() == [
        '### <font color="warning">WeCom sync alert</font>: 1 failed run(s)',
        "",
        "**wecom_sync** failed at 2026-05-01 02:00:13 (Asia/Shanghai)",
        "> `wecom_org`: errcode 40001 · WeCom rejected the corp secret. Check it.",
        f"[Open run 00000001]({UI}/runs/00000001-aaaa-bbbb-cccc-dddddddddddd)",
    ]


def test_a_failed_check_shows_its_offending_count_and_that_it_blocked_the_publish() -> None:
    check = CheckProblem("wecom_users", "unique_userids", 3, "3 userids appear twice.", True)
    text = message(outcome(checks=(check,)))
    assert (
        "> check `unique_userids` on `wecom_users`: 3 offending, blocked the publish "
        "(the last good tables stay) · 3 userids appear twice." in text
    )


def test_a_partitioned_run_names_its_corp() -> None:
    assert "**wecom_sync** · corp `ww0123` failed at " in message(outcome(partition="ww0123"))


def test_a_recovery_alone_says_so_in_the_header() -> None:
    text = message(recoveries=(outcome(failed=False),))
    assert text.startswith('### <font color="info">WeCom sync recovered</font>')
    assert '**wecom_sync** <font color="info">recovered</font>: succeeded at ' in text


def test_a_long_reason_is_cut_on_one_line() -> None:
    step = StepProblem("wecom_org", None, "组织" * 2000)
    (line,) = [line for line in message(outcome(steps=(step,))).splitlines() if "组织" in line]
    assert line.endswith("…")
    assert len(line.encode()) <= REASON_BYTES + len(b"> `wecom_org`: ")


def test_many_runs_fit_in_4096_bytes_and_the_rest_are_counted_with_a_link() -> None:
    step = StepProblem("wecom_org", -1, "WeCom is busy " * 40)
    text = message(*(outcome(n, steps=(step,)) for n in range(1, 41)))
    shown = text.count("[Open run ")
    assert len(text.encode()) <= MAX_MARKDOWN_BYTES
    assert 1 < shown < 40
    assert text.endswith(f"…and {40 - shown} more: [all runs]({UI}/runs)")
    assert "40 failed run(s)" in text


def test_secrets_in_a_reason_are_masked() -> None:
    reason = "GET /cgi-bin/user/list?access_token=tok-999&id=1 failed; key robot-key-123"
    text = message(outcome(steps=(StepProblem("wecom_org", None, reason),)))
    assert "tok-999" not in text
    assert "robot-key-123" not in text
    assert "access_token=***" in text
