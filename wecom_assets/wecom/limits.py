"""WeCom's call limits (频率限制, doc 90454) as the client names them in its messages.

Per corp and API: 10,000 calls a minute and 150,000 an hour, shared by all of the corp's apps.
Per IP: 20,000 a minute and 600,000 an hour, across every corp. Going over a minute limit blocks
the API (or the IP) for 60 s, going over an hour limit for 60 minutes, so an hour limit is worth
a run's while to respect and not worth a retry once WeCom enforces it.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

MINUTE = 60.0
HOUR = 3600.0
PER_API_PER_MINUTE = 10_000
PER_API_PER_HOUR = 150_000
PER_IP_PER_MINUTE = 20_000
PER_IP_PER_HOUR = 600_000


@dataclass(frozen=True)
class Limit:
    """One limit the client keeps.

    Attributes:
        calls: Calls allowed in any window.
        window: Window length in seconds (WeCom: 60 or 3600; shorter against a simulator).
        hourly: Whether it is the hour limit, whose block lasts an hour.
        per_ip: Whether it counts the machine's calls to every corp, not one corp's API.
    """

    calls: int
    window: float
    hourly: bool
    per_ip: bool

    def __str__(self) -> str:
        span = "an hour" if self.hourly else "a minute"
        scope = (
            "per IP (every corp and run on this machine together)"
            if self.per_ip
            else "per corp and API"
        )
        text = f"{self.calls:,} calls {span} {scope}"
        if self.window != (HOUR if self.hourly else MINUTE):
            text += f", counted over {self.window:g} s"
        return text

    def reached_by(self, counted: int) -> bool:
        """Whether ``counted`` calls in the window explain a 45009 from this limit.

        WeCom also counts calls the client does not see (other tools, other hosts behind the
        same IP), so a count within 1% of the limit is taken as reaching it.
        """
        return counted >= self.calls - max(1, self.calls // 100)


def local_time(epoch: float) -> str:
    """An epoch time as the local wall-clock time with its UTC offset, to the second."""
    moment = datetime.datetime.fromtimestamp(epoch).astimezone()
    return moment.isoformat(sep=" ", timespec="seconds")
