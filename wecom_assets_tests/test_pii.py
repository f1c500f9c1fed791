"""PII policy: hash or drop members' contact fields before anything reaches DuckDB."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest
from dagster_support import resources, table_rows

from wecom_assets.defs.assets import build_org_assets
from wecom_assets.sandbox.server import SandboxServer
from wecom_assets.warehouse.pii import (
    PII_FIELDS,
    PiiPolicy,
    PiiPolicyError,
    parse_policy,
    resolve_policy,
)
from wecom_assets.wecom.models import User

SALT = "a-long-enough-secret-salt"
ASSETS = [build_org_assets()]


def _user(**fields: Any) -> User:
    return User.from_api({"userid": "ZhangSan", "name": "张三", **fields})


def _apply(policy: PiiPolicy, *users: User) -> list[User]:
    return list(policy.apply_each(users))


def test_apply_each_changes_users_one_at_a_time_as_they_are_streamed() -> None:
    policy = PiiPolicy({"email": "hash", "mobile": "drop"}, salt=SALT)
    users = [_user(userid=f"u{i}", email=f"u{i}@example.com", mobile="138") for i in range(3)]
    source = iter(users)
    changed = policy.apply_each(source)
    first = next(changed)
    assert next(source).userid == "u1"
    assert (first.mobile, first.email) == (None, policy.hash_value("u0@example.com"))
    assert [u.userid for u in changed] == ["u2"]


def test_hash_is_the_sha256_of_salt_and_value_and_matches_duckdb() -> None:
    policy = PiiPolicy({"mobile": "hash"}, salt=SALT)
    (user,) = _apply(policy, _user(mobile="13800138000"))
    expected = hashlib.sha256(f"{SALT}13800138000".encode()).hexdigest()
    assert user.mobile == expected
    with duckdb.connect() as conn:
        assert conn.execute("SELECT sha256($s || '13800138000')", {"s": SALT}).fetchone() == (
            expected,
        )


def test_the_same_value_and_salt_always_give_the_same_hash() -> None:
    first = _apply(PiiPolicy({"email": "hash"}, salt=SALT), _user(email="a@example.com"))
    second = _apply(PiiPolicy({"email": "hash"}, salt=SALT), _user(email="a@example.com"))
    other = _apply(PiiPolicy({"email": "hash"}, salt=SALT + "x"), _user(email="a@example.com"))
    assert first[0].email == second[0].email != other[0].email


def test_drop_stores_null_and_unlisted_fields_are_kept() -> None:
    policy = PiiPolicy({"address": "drop", "avatar": "drop"})
    (user,) = _apply(policy, _user(address="北京市", avatar="https://a/0", email="a@example.com"))
    assert (user.address, user.avatar, user.email) == (None, None, "a@example.com")


def test_missing_and_empty_values_stay_as_they_are_when_hashed() -> None:
    policy = PiiPolicy({"telephone": "hash", "mobile": "hash"}, salt=SALT)
    (user,) = _apply(policy, _user(telephone=""))
    assert (user.telephone, user.mobile) == ("", None)


def test_the_default_policy_keeps_every_field() -> None:
    user = _user(mobile="13800138000", email="a@example.com")
    policy = resolve_policy({}, "", "")
    assert _apply(policy, user) == [user]
    assert set(policy.describe().values()) == {"keep"}
    assert tuple(policy.describe()) == PII_FIELDS


def test_hashing_without_a_salt_fails_naming_the_variable() -> None:
    with pytest.raises(PiiPolicyError, match=r"WECOM_PII_SALT.*not set"):
        resolve_policy({"mobile": "hash"}, "", "")
    with pytest.raises(PiiPolicyError, match=r"WECOM_PII_SALT.*too short"):
        resolve_policy({"mobile": "hash"}, "", "short")


@pytest.mark.parametrize("salt", [" " * 16, " " * 20 + "abc", "x" * 32])
def test_a_blank_or_one_character_salt_is_refused(salt: str) -> None:
    with pytest.raises(PiiPolicyError, match=r"WECOM_PII_SALT.*too short or too weak"):
        resolve_policy({"mobile": "hash"}, "", salt)


def test_a_field_given_two_actions_is_refused_naming_both() -> None:
    with pytest.raises(PiiPolicyError, match=r"mobile two actions \(hash and keep\)"):
        parse_policy("mobile=hash,email=drop,mobile=keep")


def test_a_field_repeated_with_the_same_action_is_accepted() -> None:
    assert parse_policy("mobile=hash, mobile=HASH") == {"mobile": "hash"}


def test_unknown_fields_and_actions_are_refused() -> None:
    with pytest.raises(PiiPolicyError, match=r"Unknown PII field.*phone"):
        PiiPolicy({"phone": "drop"})
    with pytest.raises(PiiPolicyError, match="Unknown PII action"):
        resolve_policy({"mobile": "encrypt"}, "", "")


def test_the_policy_text_is_parsed_when_no_policy_is_configured() -> None:
    policy = resolve_policy({}, "mobile=hash, email=HASH;address=drop", SALT)
    assert policy.describe()["mobile"] == "hash"
    assert policy.describe()["email"] == "hash"
    assert policy.describe()["address"] == "drop"
    with pytest.raises(PiiPolicyError, match="field=action"):
        parse_policy("mobile")


def test_the_salt_is_never_shown() -> None:
    policy = PiiPolicy({"mobile": "hash"}, salt=SALT)
    assert SALT not in repr(policy)
    assert SALT not in str(policy.describe())


def _raw_values(org: dict[str, Any], fields: tuple[str, ...]) -> set[str]:
    return {u[f] for u in org["users"] for f in fields if len(u.get(f) or "") >= 6}


def _file_bytes(database: Path) -> bytes:
    with duckdb.connect(str(database)) as conn:
        conn.execute("CHECKPOINT")
    return database.read_bytes() + b"".join(
        p.read_bytes() for p in database.parent.glob(f"{database.name}.wal")
    )


def test_hashed_and_dropped_values_never_reach_the_duckdb_file(
    sandbox_org: dict[str, Any],
    sandbox: SandboxServer,
    tmp_path: Path,
) -> None:
    policy = {"mobile": "hash", "email": "hash", "biz_mail": "hash", "address": "drop"}
    settings = resources(sandbox_org, sandbox.url, tmp_path, pii_policy=policy, pii_salt=SALT)
    result = dg.materialize(ASSETS, resources=settings)
    assert result.success
    database = tmp_path / "wecom.duckdb"
    hashed = PiiPolicy({"mobile": "hash"}, salt=SALT).hash_value
    expected = {
        (u["userid"], hashed(u["mobile"]) if u.get("mobile") else u.get("mobile"))
        for u in sandbox_org["users"]
    }
    assert table_rows(database, "SELECT userid, mobile FROM wecom_users") == expected
    assert table_rows(database, "SELECT DISTINCT address FROM wecom_users_history") == {(None,)}
    raw = _raw_values(sandbox_org, ("mobile", "email", "biz_mail", "address"))
    assert raw
    content = _file_bytes(database)
    assert [value for value in raw if value.encode() in content] == []


def test_kept_values_are_found_by_the_same_file_scan(
    sandbox_org: dict[str, Any], sandbox: SandboxServer, tmp_path: Path
) -> None:
    assert dg.materialize(ASSETS, resources=resources(sandbox_org, sandbox.url, tmp_path)).success
    raw = _raw_values(sandbox_org, ("mobile", "email"))
    content = _file_bytes(tmp_path / "wecom.duckdb")
    assert all(value.encode() in content for value in raw)


def test_hashing_without_the_salt_fails_before_any_api_call_or_write(
    sandbox_org: dict[str, Any],
    sandbox: SandboxServer,
    tmp_path: Path,
) -> None:
    settings = resources(sandbox_org, sandbox.url, tmp_path, pii_policy={"email": "hash"})
    result = dg.materialize(ASSETS, resources=settings, raise_on_error=False)
    assert not result.success
    failure = result.failure_data_for_node("wecom_org")
    assert failure is not None and failure.error is not None
    assert "WECOM_PII_SALT" in failure.error.message
    assert sum(sandbox.stats()["calls"].values()) == 0
    assert not (tmp_path / "wecom.duckdb").exists()
