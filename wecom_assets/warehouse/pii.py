"""PII policy: keep, hash or drop members' contact fields before anything is written.

The policy maps a field to an action. ``hash`` replaces a value with the hex SHA-256 of
``salt + value`` (UTF-8), the same as DuckDB's ``sha256(salt || value)``, so a known value can
still be matched (``WHERE email = sha256('<salt>' || 'a@example.com')``) while the table holds
no readable contact data; empty strings and NULLs stay as they are. ``drop`` stores NULL.
The salt is a secret read from ``WECOM_PII_SALT``; without it a hashed phone number could be
reversed by hashing every possible number, which is also why it must be long.
No Dagster import: the resource resolves the policy, the asset applies it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, cast

from wecom_assets.wecom.models import User

Action = Literal["keep", "hash", "drop"]
ACTIONS: tuple[Action, ...] = ("keep", "hash", "drop")
PII_FIELDS: tuple[str, ...] = (
    "mobile",
    "email",
    "biz_mail",
    "telephone",
    "address",
    "avatar",
    "thumb_avatar",
    "qr_code",
)
SALT_ENV = "WECOM_PII_SALT"
POLICY_ENV = "WECOM_PII_POLICY"
MIN_SALT_LENGTH = 16


class PiiPolicyError(ValueError):
    """The PII policy is invalid or its salt is missing; the message says what to set."""


@dataclass(frozen=True, slots=True)
class PiiPolicy:
    """What to do with each PII field; fields not listed are kept."""

    actions: Mapping[str, Action] = field(default_factory=dict)
    salt: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.actions) - set(PII_FIELDS))
        if unknown:
            raise PiiPolicyError(
                f"Unknown PII field(s) {', '.join(unknown)}; the policy covers "
                f"{', '.join(PII_FIELDS)}."
            )
        bad = {f: a for f, a in self.actions.items() if a not in ACTIONS}
        if bad:
            raise PiiPolicyError(
                f"Unknown PII action(s) {bad}; use one of {', '.join(ACTIONS)} per field."
            )
        if "hash" in self.actions.values() and len(self.salt) < MIN_SALT_LENGTH:
            hashed = ", ".join(sorted(f for f, a in self.actions.items() if a == "hash"))
            raise PiiPolicyError(
                f"The PII policy hashes {hashed}, which needs a secret salt of at least "
                f"{MIN_SALT_LENGTH} characters in the environment variable {SALT_ENV}"
                f"{' (it is not set)' if not self.salt else ' (it is too short)'}. Keep it "
                "stable: a new salt changes every hash and so starts a new history version."
            )

    @property
    def changes_anything(self) -> bool:
        """Whether any field is hashed or dropped."""
        return any(action != "keep" for action in self.actions.values())

    def describe(self) -> dict[str, str]:
        """Action per PII field, for run metadata (never the salt)."""
        return {name: self.actions.get(name, "keep") for name in PII_FIELDS}

    def hash_value(self, value: str) -> str:
        """Hex SHA-256 of the salt followed by the value."""
        return hashlib.sha256((self.salt + value).encode("utf-8")).hexdigest()

    def apply(self, users: Sequence[User]) -> tuple[User, ...]:
        """The users with every hashed field replaced by its hash and every dropped field NULL."""
        return tuple(self.apply_each(users))

    def apply_each(self, users: Iterable[User]) -> Iterator[User]:
        """As :meth:`apply`, one user at a time, for users streamed from the API."""
        if not self.changes_anything:
            yield from users
            return
        active = [(name, action) for name, action in self.actions.items() if action != "keep"]
        for user in users:
            changes: dict[str, str | None] = {}
            for name, action in active:
                value = getattr(user, name)
                if action == "drop":
                    if value is not None:
                        changes[name] = None
                elif value:
                    changes[name] = self.hash_value(value)
            # Only str | None fields are changed; mypy cannot see that through **changes.
            changed = dataclasses.replace(user, **changes) if changes else user  # type: ignore[arg-type]
            yield changed


def parse_policy(text: str) -> dict[str, str]:
    """Parse ``"mobile=hash,email=hash,address=drop"`` (the ``WECOM_PII_POLICY`` format).

    Raises:
        PiiPolicyError: An entry is not ``field=action``.
    """
    result: dict[str, str] = {}
    for entry in text.replace(";", ",").split(","):
        if not entry.strip():
            continue
        name, sep, action = entry.partition("=")
        if not sep or not name.strip() or not action.strip():
            raise PiiPolicyError(
                f"{POLICY_ENV} entry {entry.strip()!r} is not field=action, e.g. "
                "'mobile=hash,email=hash,address=drop'."
            )
        result[name.strip()] = action.strip().lower()
    return result


def resolve_policy(
    configured: Mapping[str, str], environ: Mapping[str, str] | None = None
) -> PiiPolicy:
    """The policy from the resource setting, else ``WECOM_PII_POLICY``, with the env salt.

    Raises:
        PiiPolicyError: Unknown field or action, or hashing without a usable salt.
    """
    env = os.environ if environ is None else environ
    actions = dict(configured) if configured else parse_policy(env.get(POLICY_ENV, ""))
    normalized = {name: action.strip().lower() for name, action in actions.items()}
    return PiiPolicy(actions=cast(dict[str, Action], normalized), salt=env.get(SALT_ENV, "") or "")
