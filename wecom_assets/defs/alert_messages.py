"""The alert as a WeCom markdown message: short lines a phone shows whole, within 4,096 bytes.

One message covers every problem of a tick. Each run gets a few lines: the job (and the corp of a
partitioned run), when it ended, what failed and why (the errcode and the client's hint, or the
check and its offending count) and a link to the run. Long reasons are cut; runs that do not fit
are counted at the end with a link to the run list. Only reasons and counts are quoted, never
offending ids, names or contact data, and the text is redacted before it leaves.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from wecom_assets.defs.alert_digest import Digest
from wecom_assets.defs.alert_events import CheckProblem, RunOutcome, StepProblem
from wecom_assets.wecom.robot import MAX_MARKDOWN_BYTES, cut_to_bytes

REASON_BYTES = 300
SECTION_BYTES = 1200
# Room kept for the line that counts the runs left out.
_FOOTER_BYTES = 200


def render(
    digest: Digest,
    *,
    run_url: Callable[[str], str],
    runs_url: str,
    timezone: str,
    redact: Callable[[str], str],
) -> str:
    """The markdown message for ``digest``, redacted, at most 4,096 bytes.

    Args:
        digest: What went wrong and what recovered this tick.
        run_url: The UI link of a run, from its id.
        runs_url: The UI's list of runs, linked when some runs do not fit.
        timezone: IANA name the times are shown in.
        redact: Masks secrets in one line of text.
    """
    zone = ZoneInfo(timezone)
    sections = [_problem(o, run_url, zone) for o in digest.problems]
    sections += [_recovery(o, run_url, zone) for o in digest.recoveries]
    body = _header(digest)
    for index, section in enumerate(sections):
        candidate = f"{body}\n\n{_redact_lines(section, redact)}"
        left = len(sections) - index - 1
        room = MAX_MARKDOWN_BYTES - (_FOOTER_BYTES if left else 0)
        if len(candidate.encode()) > room:
            more = f"…and {len(sections) - index} more: [all runs]({runs_url})"
            body += f"\n\n{_redact_lines(more, redact)}"
            break
        body = candidate
    return cut_to_bytes(body, MAX_MARKDOWN_BYTES)


def _redact_lines(text: str, redact: Callable[[str], str]) -> str:
    """``redact`` applied line by line: it escapes newlines, which the markdown needs."""
    return "\n".join(redact(line) for line in text.split("\n"))


def _header(digest: Digest) -> str:
    if not digest.problems:
        return '### <font color="info">WeCom sync recovered</font>'
    failed = sum(1 for outcome in digest.problems if outcome.failed)
    checks = len(digest.problems) - failed
    parts = [f"{failed} failed run(s)"] if failed else []
    if checks:
        parts.append(f"{checks} run(s) with failing checks")
    return f'### <font color="warning">WeCom sync alert</font>: {", ".join(parts)}'


def _when(timestamp: float, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(timestamp, zone).strftime(f"%Y-%m-%d %H:%M:%S ({zone.key})")


def _title(outcome: RunOutcome, verb: str, zone: ZoneInfo) -> str:
    corp = f" · corp `{outcome.partition}`" if outcome.partition else ""
    return f"**{outcome.job}**{corp} {verb} at {_when(outcome.ended_at, zone)}"


def _problem(outcome: RunOutcome, run_url: Callable[[str], str], zone: ZoneInfo) -> str:
    verb = "failed" if outcome.failed else "ran with failing checks"
    lines = [_title(outcome, verb, zone)]
    lines += [f"> {_step_line(step)}" for step in outcome.steps]
    lines += [f"> {_check_line(check)}" for check in outcome.failed_checks]
    section = cut_to_bytes("\n".join(lines), SECTION_BYTES)
    return f"{section}\n[Open run {outcome.run_id[:8]}]({run_url(outcome.run_id)})"


def _recovery(outcome: RunOutcome, run_url: Callable[[str], str], zone: ZoneInfo) -> str:
    title = _title(outcome, '<font color="info">recovered</font>: succeeded', zone)
    return f"{title}\n[Open run {outcome.run_id[:8]}]({run_url(outcome.run_id)})"


def _step_line(step: StepProblem) -> str:
    errcode = f"errcode {step.errcode} · " if step.errcode is not None else ""
    return f"`{step.step}`: {errcode}{_one_line(step.reason)}"


def _check_line(check: CheckProblem) -> str:
    line = f"check `{check.check}` on `{check.asset}`"
    if check.offending_count is not None:
        line += f": {check.offending_count} offending"
    if check.blocked_publish:
        line += ", blocked the publish (the last good tables stay)"
    return f"{line} · {_one_line(check.description)}" if check.description else line


def _one_line(text: str) -> str:
    """``text`` on one line and cut to :data:`REASON_BYTES`: quotes in markdown end at a newline."""
    return cut_to_bytes(" ".join(text.split()), REASON_BYTES)
