"""The throwaway PostgreSQL server: started fresh, reachable only with its password."""

from __future__ import annotations

import psycopg
import pytest

from wecom_assets.dev.postgres_cluster import PostgresServer, start_postgres


def test_throwaway_server_answers_with_its_password(postgres: PostgresServer) -> None:
    with psycopg.connect(postgres.url) as connection:
        row = connection.execute("SELECT current_user, current_database()").fetchone()
    assert row == (postgres.user, postgres.database)


def test_throwaway_server_refuses_a_wrong_password(postgres: PostgresServer) -> None:
    url = postgres.url.replace(postgres.password, "wrong-password")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(url)


def test_each_test_can_take_a_database_of_its_own(postgres: PostgresServer) -> None:
    url = postgres.create_database("private_one")
    with psycopg.connect(url) as connection:
        tables = connection.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
    assert tables == (0,)


def test_settings_given_at_start_override_the_fast_defaults() -> None:
    server = start_postgres({"fsync": "on", "log_min_duration_statement": "0"})
    try:
        with psycopg.connect(server.url) as connection:
            fsync = connection.execute("SHOW fsync").fetchone()
            connection.execute("SELECT 'logged statement'")
        assert fsync == ("on",)
        assert "logged statement" in server.log_path.read_text(encoding="utf-8")
    finally:
        server.stop()
