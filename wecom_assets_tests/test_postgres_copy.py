"""An Arrow snapshot copied into PostgreSQL (``register``) reads back exactly as it was."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pytest

from wecom_assets.dev.postgres_cluster import PostgresServer
from wecom_assets.warehouse.copy_text import copy_text
from wecom_assets.warehouse.postgres import PostgresConnection, connect_postgres

TRICKY_TEXT = [
    "plain",
    "",
    "tab\there",
    "line\nbreak and\r\ncrlf",
    "back\\slash \\N \\t \\\\ \\",
    "\\.",
    "quote \" and 'single'",
    "{braces}, commas, NULL",
    "  padded  ",
    "张伟 (研发部)",
    "emoji 👩‍💻🎉 and 𠮷",
    '{"key": "va\\"lue\\n", "list": [1, 2]}',
    None,
]

SCHEMA = pa.schema(
    [
        ("text", pa.string()),
        ("number", pa.int64()),
        ("small", pa.int32()),
        ("flag", pa.bool_()),
        ("at", pa.timestamp("us", tz="UTC")),
        ("texts", pa.list_(pa.string())),
        ("numbers", pa.list_(pa.int64())),
        ("flags", pa.list_(pa.bool_())),
    ]
)


def _tricky_rows() -> list[dict[str, Any]]:
    rows = []
    for index, text in enumerate(TRICKY_TEXT):
        rows.append(
            {
                "text": text,
                "number": [0, -1, 2**63 - 1, -(2**63), None][index % 5],
                "small": [2**31 - 1, -(2**31), None, 7][index % 4],
                "flag": [True, False, None][index % 3],
                "at": [
                    datetime(2026, 3, 1, 2, 0, 0, 123456, tzinfo=UTC),
                    datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
                    None,
                ][index % 3],
                "texts": [
                    [text] if text is not None else [None],
                    [],
                    None,
                    ["NULL", "null", "", " x ", "a,b", "{c}", 'd"e', "f\\g", "h\ti\nj"],
                    ["张伟", None, "👩‍💻"],
                ][index % 5],
                "numbers": [[1, None, -3], [], None, [2**63 - 1]][index % 4],
                "flags": [[True, False, None], [], None][index % 3],
            }
        )
    return rows


def _read_back(conn: PostgresConnection, name: str) -> list[dict[str, Any]]:
    columns = ", ".join(f'"{field.name}"' for field in SCHEMA)
    cursor = conn.raw.execute(f'SELECT {columns} FROM "{name}"')
    return [dict(zip(SCHEMA.names, row, strict=True)) for row in cursor.fetchall()]


def test_register_keeps_escapes_unicode_nulls_and_arrays_exactly(
    postgres_conn: PostgresConnection,
) -> None:
    rows = _tricky_rows()
    postgres_conn.register("tricky", pa.Table.from_pylist(rows, schema=SCHEMA))
    assert _read_back(postgres_conn, "tricky") == rows


def test_register_copies_every_batch_and_an_empty_one(
    postgres_conn: PostgresConnection,
) -> None:
    rows = _tricky_rows()
    batches = [
        pa.RecordBatch.from_pylist(rows[:4], schema=SCHEMA),
        pa.RecordBatch.from_pylist([], schema=SCHEMA),
        pa.RecordBatch.from_pylist(rows[4:], schema=SCHEMA),
    ]
    postgres_conn.register("batched", pa.Table.from_batches(batches, schema=SCHEMA))
    assert _read_back(postgres_conn, "batched") == rows


def test_a_sliced_batch_is_written_from_its_own_rows_only() -> None:
    rows = _tricky_rows()
    batch = pa.RecordBatch.from_pylist(rows, schema=SCHEMA)
    assert copy_text(batch.slice(3, 2)).to_pybytes() == b"".join(
        copy_text(pa.RecordBatch.from_pylist(rows[i : i + 1], schema=SCHEMA)).to_pybytes()
        for i in (3, 4)
    )


def test_copy_text_writes_nulls_escapes_and_array_literals() -> None:
    batch = pa.RecordBatch.from_pylist(
        [
            {"text": "a\tb\\", "texts": ['x"y', None], "numbers": [1, None]},
            {"text": None, "texts": [], "numbers": None},
        ],
        schema=pa.schema(
            [
                ("text", pa.string()),
                ("texts", pa.list_(pa.string())),
                ("numbers", pa.list_(pa.int64())),
            ]
        ),
    )
    assert copy_text(batch).to_pybytes() == (
        b'a\\tb\\\\\t{"x\\\\"y",NULL}\t{1,NULL}\n\\N\t{}\t\\N\n'
    )


def test_register_sends_utf8_whatever_the_client_encoding_setting(
    postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGCLIENTENCODING", "LATIN1")
    schema = f"test_{uuid.uuid4().hex[:12]}"
    conn = connect_postgres(postgres.url, schema=schema)
    try:
        conn.raw.execute(f"CREATE SCHEMA {schema}")
        rows = _tricky_rows()
        conn.register("encoded", pa.Table.from_pylist(rows, schema=SCHEMA))
        assert _read_back(conn, "encoded") == rows
    finally:
        conn.close()


def test_a_staging_tables_small_sample_leaves_the_sessions_statistics_target(
    postgres_conn: PostgresConnection,
) -> None:
    before = postgres_conn.raw.execute("SHOW default_statistics_target").fetchone()
    postgres_conn.register("sampled", pa.Table.from_pylist(_tricky_rows(), schema=SCHEMA))
    assert postgres_conn.raw.execute("SHOW default_statistics_target").fetchone() == before
    analyzed = postgres_conn.raw.execute(
        "SELECT reltuples FROM pg_class WHERE oid = 'pg_temp.sampled'::regclass"
    ).fetchone()
    assert analyzed == (len(TRICKY_TEXT),)
