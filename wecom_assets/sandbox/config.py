"""Sandbox settings: how the simulated WeCom behaves (latency, limits, token life, faults).

Settings can change while the server runs (tests turn faults on mid-run), so changes go through
:func:`apply_changes`, which validates them and returns a new config instead of mutating one
that request threads may be reading.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FaultConfig:
    """Faults injected into API calls, each with its own probability per call.

    ``gettoken`` is exempt unless ``gettoken_faults`` is set, so that fault tests exercise the
    client's handling of data calls without also starving it of tokens.

    Attributes:
        busy_rate: Answer errcode -1, "system busy".
        http_5xx_rate: Answer HTTP 502 or 503 with an HTML body, as a gateway does.
        drop_rate: Close the connection without answering.
        truncate_rate: Send the headers (with the full Content-Length) and half the body, then
            close the connection.
        bad_json_rate: Answer HTTP 200 with a complete response whose body is cut-off JSON.
        fail_after: Every call after this many (counted from when it was set) answers HTTP 503.
        gettoken_faults: Apply the faults above to ``gettoken`` too.
    """

    busy_rate: float = 0.0
    http_5xx_rate: float = 0.0
    drop_rate: float = 0.0
    truncate_rate: float = 0.0
    bad_json_rate: float = 0.0
    fail_after: int | None = None
    gettoken_faults: bool = False


@dataclass
class SandboxConfig:
    """How the sandbox behaves.

    WeCom's limits (频率限制) are per corp and API, 10,000 calls a minute and 150,000 an hour,
    and per IP, 20,000 a minute and 600,000 an hour; a call beyond one answers errcode 45009.
    Each limit here is off (None) unless set, and only calls that are let through count. WeCom
    then blocks the API or the IP for the limit's window (60 s, 60 minutes): with
    ``rate_limit_blocks`` the sandbox does so too; without, a call is let through again as soon
    as the oldest counted call leaves the window.

    Attributes:
        latency_ms: Delay before each ``/cgi-bin/`` answer (slept in the request's own thread).
        rate_limit_per_minute: Calls allowed per API path in a sliding window (``gettoken`` has
            its own); beyond it the answer is errcode 45009. None: unlimited.
        rate_limit_window: Length of that window in seconds (60 in WeCom; shorter in tests).
        rate_limit_per_hour: Calls allowed per API path in the hour window. None: unlimited.
        rate_limit_hour_window: Length of the hour window in seconds (3600 in WeCom).
        ip_rate_limit_per_minute: Calls allowed from one client IP, all API paths and
            ``gettoken`` together, in the minute window. None: unlimited.
        ip_rate_limit_per_hour: The same in the hour window. None: unlimited.
        rate_limit_blocks: Going over a limit blocks what it limits (the API path, or the IP)
            for the whole window, as WeCom documents.
        new_app: The app was created after 2022-06-20: ``user/list`` and ``user/get`` leave out
            avatar, thumb_avatar, mobile, email, biz_mail, qr_code and address and answer
            gender ``"0"`` (see :func:`~wecom_assets.sandbox.org.as_new_app_sees`).
        tags_forbidden: The app has no access to tags: ``tag/list`` and ``tag/get`` answer
            48002 "api forbidden", as WeCom does.
        token_ttl: Seconds a token lives (``expires_in``).
        invalidate_every: Invalidate the current token after this many API calls made with it,
            as WeCom sometimes does early; later calls with it get 40014.
        visible_department_ids: Roots of the app's visible range; None: the whole org.
        faults: Injected faults.
        seed: Seed of the fault generator.
        webhook_keys: Keys of the group robots that exist; ``webhook/send`` answers 93000 to
            any other key.
        webhook_limit_per_minute: Messages one robot delivers per window (WeCom: 20); beyond
            it the answer is errcode 45009.
        webhook_limit_window: Length of that window in seconds (60 in WeCom).
    """

    latency_ms: float = 0.0
    rate_limit_per_minute: int | None = None
    rate_limit_window: float = 60.0
    rate_limit_per_hour: int | None = None
    rate_limit_hour_window: float = 3600.0
    ip_rate_limit_per_minute: int | None = None
    ip_rate_limit_per_hour: int | None = None
    rate_limit_blocks: bool = False
    new_app: bool = False
    tags_forbidden: bool = False
    token_ttl: int = 7200
    invalidate_every: int | None = None
    visible_department_ids: list[int] | None = None
    faults: FaultConfig = field(default_factory=FaultConfig)
    seed: int = 0
    webhook_keys: list[str] = field(default_factory=list)
    webhook_limit_per_minute: int = 20
    webhook_limit_window: float = 60.0

    def to_dict(self) -> dict[str, Any]:
        """The config as JSON-able data (as ``POST /sandbox/config`` answers it)."""
        return dataclasses.asdict(self)


_SANDBOX_FIELDS = {f.name for f in dataclasses.fields(SandboxConfig)} - {"faults"}
_FAULT_FIELDS = {f.name for f in dataclasses.fields(FaultConfig)}
_RATES = ("busy_rate", "http_5xx_rate", "drop_rate", "truncate_rate", "bad_json_rate")


def apply_changes(config: SandboxConfig, changes: Mapping[str, Any]) -> SandboxConfig:
    """Return a copy of ``config`` with ``changes`` applied and validated.

    ``changes`` may name fields of SandboxConfig and of FaultConfig side by side (``busy_rate=0.1``)
    or give ``faults`` as a FaultConfig or a mapping of its fields.

    Raises:
        ValueError: On an unknown field or an invalid value (the message names it).
    """
    top: dict[str, Any] = {}
    fault_changes: dict[str, Any] = {}
    for key, value in changes.items():
        if key == "faults":
            if isinstance(value, FaultConfig):
                fault_changes.update(dataclasses.asdict(value))
            elif isinstance(value, Mapping):
                unknown = set(value) - _FAULT_FIELDS
                if unknown:
                    raise ValueError(f"unknown fault setting(s): {', '.join(sorted(unknown))}")
                fault_changes.update(value)
            else:
                raise ValueError("faults must be a FaultConfig or a mapping of its fields")
        elif key in _FAULT_FIELDS:
            fault_changes[key] = value
        elif key in _SANDBOX_FIELDS:
            top[key] = value
        else:
            raise ValueError(f"unknown sandbox setting: {key}")
    faults = dataclasses.replace(config.faults, **fault_changes)
    if "visible_department_ids" in top and top["visible_department_ids"] is not None:
        top["visible_department_ids"] = list(top["visible_department_ids"])
    if isinstance(top.get("webhook_keys"), list | tuple):
        top["webhook_keys"] = list(top["webhook_keys"])
    result = dataclasses.replace(config, faults=faults, **top)
    validate(result)
    return result


def validate(config: SandboxConfig) -> None:
    """Check every setting's type and range.

    Raises:
        ValueError: Naming the first invalid setting.
    """
    _number(config.latency_ms, "latency_ms", minimum=0)
    _number(config.rate_limit_window, "rate_limit_window", minimum=0, exclusive=True)
    _number(config.rate_limit_hour_window, "rate_limit_hour_window", minimum=0, exclusive=True)
    _integer(config.token_ttl, "token_ttl", minimum=1)
    _integer(config.seed, "seed", minimum=None)
    _optional_integer(config.rate_limit_per_minute, "rate_limit_per_minute", minimum=1)
    _optional_integer(config.rate_limit_per_hour, "rate_limit_per_hour", minimum=1)
    _optional_integer(config.ip_rate_limit_per_minute, "ip_rate_limit_per_minute", minimum=1)
    _optional_integer(config.ip_rate_limit_per_hour, "ip_rate_limit_per_hour", minimum=1)
    _optional_integer(config.invalidate_every, "invalidate_every", minimum=1)
    _optional_integer(config.faults.fail_after, "fail_after", minimum=0)
    _integer(config.webhook_limit_per_minute, "webhook_limit_per_minute", minimum=1)
    _number(config.webhook_limit_window, "webhook_limit_window", minimum=0, exclusive=True)
    keys = config.webhook_keys
    if not isinstance(keys, list) or not all(isinstance(k, str) and k for k in keys):
        raise ValueError("webhook_keys must be a list of non-empty strings")
    for name, flag in (
        ("gettoken_faults", config.faults.gettoken_faults),
        ("rate_limit_blocks", config.rate_limit_blocks),
        ("new_app", config.new_app),
        ("tags_forbidden", config.tags_forbidden),
    ):
        if not isinstance(flag, bool):
            raise ValueError(f"{name} must be true or false")
    ids = config.visible_department_ids
    if ids is not None and not all(type(i) is int for i in ids):
        raise ValueError("visible_department_ids must be a list of integers or null")
    total = 0.0
    for name in _RATES:
        rate = getattr(config.faults, name)
        _number(rate, name, minimum=0)
        if rate > 1:
            raise ValueError(f"{name} must be between 0 and 1, got {rate}")
        total += rate
    if total > 1 + 1e-9:
        raise ValueError(f"fault rates add up to {total:g}; their sum must not exceed 1")


def _number(value: Any, name: str, minimum: float, exclusive: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if value < minimum or (exclusive and value == minimum):
        bound = f"> {minimum}" if exclusive else f">= {minimum}"
        raise ValueError(f"{name} must be {bound}, got {value}")


def _integer(value: Any, name: str, minimum: int | None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def _optional_integer(value: Any, name: str, minimum: int) -> None:
    if value is not None:
        _integer(value, name, minimum)
