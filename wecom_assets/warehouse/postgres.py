"""A PostgreSQL connection that speaks the warehouse's DuckDB SQL, and the URL's safe form.

The warehouse modules are written against the few DuckDB connection methods they use:
``execute(sql, params)`` with ``fetchone``/``fetchall``, ``BEGIN``/``COMMIT``/``ROLLBACK`` as
statements, and ``register`` of an Arrow table. :class:`PostgresConnection` offers the same over
psycopg 3, translating each statement once (:mod:`wecom_assets.warehouse.dialect`), so the
history engine, the views and the checks exist in one copy.

A sync of one corp is one PostgreSQL transaction (:func:`corp_transaction`): the ``BEGIN`` and
``COMMIT`` the table and history steps issue for DuckDB become savepoints inside it.

The password is a secret: :func:`display_url` drops it, and a failed connection is reported with
that form only, never with psycopg's message, which can quote the connection string.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa

from wecom_assets.warehouse.connection import WarehouseError, quote
from wecom_assets.warehouse.copy_text import copy_text
from wecom_assets.wecom.redact import shown_url

DEFAULT_SCHEMA = "wecom"
INSTALL_HINT = "pip install 'wecom_assets[postgres]'"
_TEMP_TABLE = re.compile(r'^\s*CREATE\s+TEMP(?:ORARY)?\s+TABLE\s+("(?:[^"]|"")+"|\w+)', re.I)
_TRANSACTION = re.compile(r"^\s*(BEGIN(?: TRANSACTION)?|COMMIT|ROLLBACK)\s*;?\s*$", re.IGNORECASE)
_STAGING_STATISTICS_TARGET = 10
# Arrow types of the snapshots, as the PostgreSQL types of the staging table they are copied into.
_ARROW_TYPES: dict[pa.DataType, str] = {
    pa.string(): "TEXT",
    pa.int64(): "BIGINT",
    pa.int32(): "INTEGER",
    pa.bool_(): "BOOLEAN",
    pa.timestamp("us", tz="UTC"): "TIMESTAMPTZ",
}


class PostgresConnectError(WarehouseError):
    """The PostgreSQL warehouse could not be reached; the message never holds the password."""


def is_postgres_url(url: str) -> bool:
    """Whether ``url`` selects the PostgreSQL warehouse (``postgresql://`` or ``postgres://``)."""
    return urlsplit(url).scheme in ("postgresql", "postgres")


def display_url(url: str) -> str:
    """``url`` without its password (and without query options, which may carry one)."""
    return shown_url(url, keep_user=True)


def _postgres_extra() -> tuple[Any, Callable[[str], str]]:
    """The driver (psycopg) and the SQL translator, imported only when PostgreSQL is used.

    Both come with the ``postgres`` extra; importing them with the package would make a DuckDB
    install without it fail to load, and cost every DuckDB run SQLGlot's import time.
    """
    try:
        import psycopg

        from wecom_assets.warehouse.dialect import to_postgres
    except ImportError as error:
        raise WarehouseError(
            f"WECOM_WAREHOUSE_URL selects PostgreSQL, but {error.name or 'its driver'} is not "
            f"installed: {INSTALL_HINT}"
        ) from None
    return psycopg, to_postgres


def _arrow_sql_type(arrow_type: pa.DataType) -> str:
    if pa.types.is_list(arrow_type):
        return f"{_arrow_sql_type(arrow_type.value_type)}[]"
    try:
        return _ARROW_TYPES[arrow_type]
    except KeyError:
        raise WarehouseError(f"No PostgreSQL type for Arrow type {arrow_type}") from None


class _Rows:
    """The rows of one statement, read as DuckDB's connection returns them."""

    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self._rows = rows

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._rows


class PostgresConnection:
    """A psycopg connection in autocommit mode that runs DuckDB SQL translated to PostgreSQL."""

    dialect = "postgres"

    def __init__(self, raw: Any, schema: str, translate: Callable[[str], str]) -> None:
        self.raw = raw
        self.schema = schema
        self._translate = translate
        self._outer = False
        self._savepoints = 0

    def execute(self, query: str, parameters: object = None) -> _Rows:
        """Run one DuckDB statement; transaction statements nest as savepoints in a corp's sync."""
        control = _TRANSACTION.match(query)
        if control:
            return self._transaction(control.group(1).split()[0].upper())
        params: Sequence[object] | Mapping[str, object] | None = None
        if isinstance(parameters, Mapping):
            params = dict(parameters)
        elif isinstance(parameters, Sequence) and not isinstance(parameters, str):
            params = list(parameters) or None
        cursor = self.raw.execute(self._translate(query), params)
        rows = _Rows(cursor.fetchall() if cursor.description else [])
        staged = _TEMP_TABLE.match(query)
        if staged:
            self._analyze(staged.group(1))
        return rows

    def _analyze(self, table: str) -> None:
        """Give a staging table statistics, which autovacuum never does for temporary tables.

        Without them the planner guesses a staging table's rows from its size on disk, and a
        wrong guess turns the history's anti-joins into nested loops (see ``pg_sync.prepare``).
        The sync's statements need row counts and distinct counts, not the detail analysts'
        queries are planned with, so a small sample does: statistics target 10 reads 3,000 rows
        instead of 30,000, and takes 0.1 s instead of 1 s for 20,000 users, whose list and
        JSON columns cost the most. The setting is restored in the same statement string, which
        PostgreSQL runs as one transaction when no transaction is open.
        """
        self.raw.execute(
            f"SET default_statistics_target = {_STAGING_STATISTICS_TARGET}; "
            f"ANALYZE {table}; RESET default_statistics_target"
        )

    def _transaction(self, verb: str) -> _Rows:
        if not self._outer:
            self.raw.execute(verb)
        elif verb == "BEGIN":
            self._savepoints += 1
            self.raw.execute(f"SAVEPOINT s{self._savepoints}")
        elif self._savepoints:
            name = f"s{self._savepoints}"
            if verb == "ROLLBACK":
                self.raw.execute(f"ROLLBACK TO SAVEPOINT {name}")
            self.raw.execute(f"RELEASE SAVEPOINT {name}")
            self._savepoints -= 1
        return _Rows([])

    def register(self, view_name: str, python_object: pa.Table) -> None:
        """Copy an Arrow table into a temporary table named ``view_name``, as DuckDB would scan it.

        The rows travel as ``COPY`` text that Arrow formats a column at a time (:func:`copy_text`).
        """
        columns = [(field.name, _arrow_sql_type(field.type)) for field in python_object.schema]
        self.raw.execute(f"DROP TABLE IF EXISTS {quote(view_name)}")
        self.raw.execute(
            f"CREATE TEMP TABLE {quote(view_name)} "
            f"({', '.join(f'{quote(name)} {kind}' for name, kind in columns)})"
        )
        names = ", ".join(quote(name) for name, _ in columns)
        with self.raw.cursor() as cursor:
            with cursor.copy(f"COPY {quote(view_name)} ({names}) FROM STDIN") as copy:
                for batch in python_object.to_batches():
                    copy.write(copy_text(batch))
        self._analyze(quote(view_name))

    def unregister(self, view_name: str) -> None:
        """Drop the temporary table :meth:`register` made."""
        self.raw.execute(f"DROP TABLE IF EXISTS {quote(view_name)}")

    def close(self) -> None:
        """Close the connection; an open transaction is rolled back by the server."""
        self.raw.close()

    @contextmanager
    def corp_transaction(self, corp_id: str) -> Iterator[None]:
        """One transaction for a corp's whole sync, taken in turns with other syncs of the corp.

        The advisory lock is the transaction's, so it is released by ``COMMIT`` or ``ROLLBACK``;
        syncs of different corps do not wait for each other.
        """
        self.raw.execute("BEGIN")
        self._outer = True
        try:
            self.raw.execute(
                "SELECT pg_advisory_xact_lock(hashtext('wecom_assets.corp:' || %s))", [corp_id]
            )
            yield
            self.raw.execute("COMMIT")
        except BaseException:
            # A lost connection cannot roll back, and the server discards its transaction.
            with suppress(Exception):
                self.raw.execute("ROLLBACK")
            raise
        finally:
            self._outer = False
            self._savepoints = 0


def connect_postgres(url: str, *, schema: str = DEFAULT_SCHEMA) -> PostgresConnection:
    """Open the PostgreSQL warehouse at ``url`` with ``schema`` first on the search path.

    The password comes from the URL or from ``PGPASSWORD`` (libpq reads it). JSON values are read
    back as text, as DuckDB returns them.

    Raises:
        PostgresConnectError: the server refused or could not be reached; the message names the
            URL without its password and never quotes the server's answer.
        WarehouseError: psycopg or SQLGlot (the ``postgres`` extra) is not installed.
    """
    psycopg, translate = _postgres_extra()
    try:
        # UTF-8 whatever PGCLIENTENCODING says: register() sends Arrow's UTF-8 text as it is.
        raw = psycopg.connect(url, autocommit=True, client_encoding="UTF8")
    except psycopg.Error as error:
        raise PostgresConnectError(
            f"Cannot connect to the PostgreSQL warehouse {display_url(url)} "
            f"({type(error).__name__}, SQLSTATE {error.sqlstate or 'none'}). Check the host, "
            "port, user and database in WECOM_WAREHOUSE_URL and the password (in the URL or "
            "PGPASSWORD), and that the server accepts this client."
        ) from None
    from psycopg.types.string import TextLoader

    for json_type in ("json", "jsonb"):
        raw.adapters.register_loader(json_type, TextLoader)
    raw.execute(f"SET search_path TO {quote(schema)}")
    return PostgresConnection(raw, schema, translate)
