"""PII policy: keep, hash or drop members' contact fields before anything is written.

The policy maps a field to an action. ``hash`` replaces a value with the hex SHA-256 of
``salt + value`` (UTF-8), the same as DuckDB's ``sha256(salt || value)``, so a known value can
still be matched (``WHERE email = sha256('<salt>' || 'a@example.com')``) while the table holds
no readable contact data; empty strings and NULLs stay as they are. ``drop`` stores NULL.
The salt is a secret (``WECOM_PII_SALT``, handed in by the warehouse resource); without it a
hashed phone number could be reversed by hashing every possible number, which is also why it must
be long. No Dagster import and no environment look-up: the resource resolves both settings and
builds the policy, the users snapshot applies it.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Iterator, Mapping
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
        if "hash" in self.actions.values() and not _strong(self.salt):
            hashed = ", ".join(sorted(f for f, a in self.actions.items() if a == "hash"))
            raise PiiPolicyError(
                f"The PII policy hashes {hashed}, which needs a secret salt of at least "
                f"{MIN_SALT_LENGTH} characters, not blank and not one character repeated, in the "
                f"environment variable {SALT_ENV}"
                f"{' (it is not set)' if not self.salt else ' (it is too short or too weak)'}. "
                "Keep it stable: a new salt changes every hash and so starts a new history version."
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

    def apply_each(self, users: Iterable[User]) -> Iterator[User]:
        """Hash or drop the policy's fields of each user, one at a time as users stream in.

        Streaming keeps a 100k-user sync from holding every record twice.
        """
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


def _strong(salt: str) -> bool:
    """Whether a salt is long enough to resist hashing every phone number, blanks not counted."""
    return len(salt.strip()) >= MIN_SALT_LENGTH and len(set(salt)) > 1


def parse_policy(text: str) -> dict[str, str]:
    """Parse ``"mobile=hash,email=hash,address=drop"`` (the ``WECOM_PII_POLICY`` format).

    Raises:
        PiiPolicyError: An entry is not ``field=action``, or a field is given two actions.
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
        field_name, chosen = name.strip(), action.strip().lower()
        earlier = result.setdefault(field_name, chosen)
        if earlier != chosen:
            raise PiiPolicyError(
                f"{POLICY_ENV} gives {field_name} two actions ({earlier} and {chosen}); "
                "give each field once."
            )
    return result


def resolve_policy(configured: Mapping[str, str], env_text: str, salt: str) -> PiiPolicy:
    """The policy from the resource setting, else from ``WECOM_PII_POLICY``'s text, with the salt.

    Args:
        configured: The resource's ``pii_policy`` (field -> action); wins when not empty.
        env_text: The value of ``WECOM_PII_POLICY`` (empty when unset).
        salt: The secret salt (empty when unset).

    Raises:
        PiiPolicyError: Unknown field or action, a field given twice, or hashing without a usable
            salt.
    """
    actions = dict(configured) if configured else parse_policy(env_text)
    normalized = {name: action.strip().lower() for name, action in actions.items()}
    return PiiPolicy(actions=cast(dict[str, Action], normalized), salt=salt)
