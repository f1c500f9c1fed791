"""The warehouse SQL is written once, in DuckDB's dialect; this turns it into PostgreSQL's.

SQLGlot parses each statement as DuckDB and writes it as PostgreSQL (``$name`` and ``?``
parameters become psycopg's ``%(name)s`` and ``%s``, ``QUALIFY`` a filtered subquery, ``ANTI
JOIN`` a ``NOT EXISTS``, list functions array functions). Two rewrites SQLGlot does not make are
added here: a struct literal becomes ``json_build_object`` (PostgreSQL has no anonymous structs;
``row_hash`` hashes one as JSON) and ``JSON`` columns and casts become ``JSONB``, the type
analysts index and query. The source SQL avoids what has no PostgreSQL form (``GROUP BY ALL``,
``ASOF`` joins, lambdas, unaliased subqueries), so these two rewrites are all it needs.
"""

from __future__ import annotations

from functools import lru_cache

import sqlglot
from sqlglot import exp


def _rewrite(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.Struct):
        arguments: list[exp.Expression] = []
        for field in node.expressions:
            if not isinstance(field, exp.PropertyEQ):
                raise ValueError(
                    f"A struct literal needs named fields to become JSON: {node.sql()}"
                )
            arguments.extend((exp.Literal.string(field.this.name), field.expression))
        return exp.Anonymous(this="json_build_object", expressions=arguments)
    if isinstance(node, exp.DataType) and node.this == exp.DataType.Type.JSON:
        return exp.DataType.build("JSONB")
    return node


@lru_cache(maxsize=1024)
def to_postgres(sql: str) -> str:
    """``sql`` (DuckDB, one statement) as PostgreSQL, computed once per distinct statement."""
    statements = sqlglot.parse(sql, read="duckdb")
    if len(statements) != 1 or statements[0] is None:
        raise ValueError(f"Expected one SQL statement, got {len(statements)}")
    return statements[0].transform(_rewrite).sql(dialect="postgres")
