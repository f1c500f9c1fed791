"""The plain sequential recipe, as most WeCom sync scripts are written: the baseline to beat.

``gettoken``, ``department/list``, then ``user/list`` for each department, one call after another,
merging users by userid. It uses one ``requests.Session`` (keep-alive), which makes it a fair
baseline: a script opening a new connection per call would be slower still. It has no retries
and no rate limiter, which a clean sandbox run does not need.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import requests


@dataclass(frozen=True)
class ReferenceResult:
    """What the sequential fetch did and how long it took."""

    seconds: float
    calls: dict[str, int]
    departments: int
    users: int
    cpu_seconds: float


def _get(session: requests.Session, url: str, params: dict[str, Any]) -> dict[str, Any]:
    response = session.get(url, params=params, timeout=30)
    response.raise_for_status()
    payload: dict[str, Any] = response.json()
    if payload.get("errcode", 0) != 0:
        raise RuntimeError(f"{url.rsplit('/cgi-bin/', 1)[-1]}: errcode {payload['errcode']}")
    return payload


def fetch_sequentially(base_url: str, corp_id: str, corp_secret: str) -> ReferenceResult:
    """Fetch the whole org one call at a time and time it (the fetch only, no storage)."""
    api = base_url.rstrip("/") + "/cgi-bin/"
    calls = {"gettoken": 0, "department/list": 0, "user/list": 0}
    started, cpu_started = time.monotonic(), time.process_time()
    with requests.Session() as session:
        token = _get(session, api + "gettoken", {"corpid": corp_id, "corpsecret": corp_secret})[
            "access_token"
        ]
        calls["gettoken"] += 1
        departments = _get(session, api + "department/list", {"access_token": token})["department"]
        calls["department/list"] += 1
        users: dict[str, dict[str, Any]] = {}
        for department in departments:
            payload = _get(
                session,
                api + "user/list",
                {"access_token": token, "department_id": department["id"]},
            )
            calls["user/list"] += 1
            for user in payload["userlist"]:
                users.setdefault(user["userid"].lower(), user)
    return ReferenceResult(
        seconds=time.monotonic() - started,
        calls=calls,
        departments=len(departments),
        users=len(users),
        cpu_seconds=time.process_time() - cpu_started,
    )
