"""The shape of a table declaration, and what is derived from one.

:mod:`wecom_assets.warehouse.tables` declares every table with these classes. The DuckDB DDL, the
Arrow schema of a bulk load, the history table that keeps a table's versions and (in
:mod:`wecom_assets.defs`) the Dagster column schema, check specs and metadata are all computed
from a declaration, so none of them can drift from it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from wecom_assets.warehouse.connection import quote
from wecom_assets.warehouse.quality import Rule

CORP_ID = "corp_id"
SYNCED_AT = "synced_at"
UTC_TIMESTAMP = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True, slots=True)
class Column:
    """One column: its DuckDB type, the matching Arrow type and what it means to an analyst.

    ``attribute`` names the field of the WeCom record a snapshot reads the column from, where it
    differs from the column name (``sort_order`` comes from the API's ``order``).
    """

    name: str
    sql_type: str
    arrow_type: pa.DataType
    description: str
    attribute: str | None = None

    @property
    def source_attribute(self) -> str:
        """The record attribute that holds this column's value."""
        return self.attribute or self.name


@dataclass(frozen=True, slots=True)
class Tracking:
    """That a table's versions are kept (type 2) in a history table, and what one row is."""

    table: str
    one_row: str


@dataclass(frozen=True, slots=True)
class TableSpec:
    """A table or view the package writes, named as its asset.

    Attributes:
        name: Table and asset name.
        columns: Columns in table order.
        primary_key: Columns that identify a row.
        description: What one row is, for analysts and the Dagster catalog.
        rules: Data-quality rules a new snapshot must pass before it replaces the table.
        upstream: Tables this one is computed from (its lineage in the catalog).
        view: A view over other tables rather than a stored table.
        tracking: Where the table's versions are kept, if they are.
        nullable_key: Key columns that are NULL where they do not apply (a view's key can
            hold them); every other key column is never NULL.
    """

    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    description: str
    rules: tuple[Rule, ...] = ()
    upstream: tuple[str, ...] = ()
    view: bool = False
    tracking: Tracking | None = None
    nullable_key: tuple[str, ...] = ()

    @property
    def arrow_schema(self) -> pa.Schema:
        """Arrow schema of a snapshot, in column order."""
        return pa.schema([pa.field(column.name, column.arrow_type) for column in self.columns])

    @property
    def column_names(self) -> tuple[str, ...]:
        """Column names in table order."""
        return tuple(column.name for column in self.columns)

    def create_sql(self, table_name: str | None = None) -> str:
        """``CREATE TABLE`` statement for this schema, under ``table_name`` (default its name)."""
        columns = [f"{quote(column.name)} {column.sql_type}" for column in self.columns]
        key = ", ".join(quote(name) for name in self.primary_key)
        target = quote(table_name or self.name)
        return f"CREATE TABLE {target} ({', '.join(columns)}, PRIMARY KEY ({key}))"

    @property
    def history(self) -> TableSpec | None:
        """The type-2 history table of this table, when its versions are kept."""
        if self.tracking is None:
            return None
        business = tuple(column for column in self.columns if column.name != SYNCED_AT)
        return TableSpec(
            name=self.tracking.table,
            description=(
                f"{self.tracking.one_row} Current versions have `valid_to` NULL; the org as of X "
                "is `WHERE valid_from <= X AND (valid_to IS NULL OR valid_to > X)`."
            ),
            primary_key=(*self.primary_key, VALID_FROM.name),
            columns=(*business, *VERSION_COLUMNS),
            upstream=(self.name,),
        )


CORP_ID_COLUMN = Column(
    CORP_ID,
    "VARCHAR",
    pa.string(),
    "Corp id (企业ID) the row belongs to; one warehouse can hold many corps.",
)
SYNCED_AT_COLUMN = Column(
    SYNCED_AT,
    "TIMESTAMPTZ",
    UTC_TIMESTAMP,
    "When this snapshot was fetched from WeCom (start of the fetch, UTC).",
)


VALID_FROM = Column(
    "valid_from",
    "TIMESTAMPTZ",
    UTC_TIMESTAMP,
    "Snapshot time from which this version holds (`snapshot_at` of the sync that first saw it).",
)
VALID_TO = Column(
    "valid_to",
    "TIMESTAMPTZ",
    UTC_TIMESTAMP,
    "Snapshot time of the first sync that saw the row changed or gone; NULL while current.",
)
ROW_HASH = Column(
    "row_hash",
    "VARCHAR",
    pa.string(),
    "md5 of the business columns as JSON; a new version starts exactly when it changes.",
)
# The columns a history table adds to its source's business columns, in this order.
VERSION_COLUMNS = (VALID_FROM, VALID_TO, ROW_HASH)


@dataclass(frozen=True, slots=True)
class Tracked:
    """A current relation and the history table that keeps its versions."""

    source: TableSpec
    history: TableSpec

    @classmethod
    def of(cls, source: TableSpec) -> Tracked:
        """The pair for a table declared with ``tracking``."""
        if source.history is None:
            raise ValueError(f"{source.name} is not declared with tracking")
        return cls(source, source.history)

    @property
    def key(self) -> tuple[str, ...]:
        """Columns identifying one row of the source."""
        return self.source.primary_key

    @property
    def business_columns(self) -> tuple[str, ...]:
        """Columns whose values make up a version (all but the history's own columns)."""
        return tuple(c.name for c in self.history.columns[: -len(VERSION_COLUMNS)])
