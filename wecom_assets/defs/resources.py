"""Dagster resources: configuration in, plain clients out.

The resources hold settings that show in the launchpad and hand out the Dagster-free WeCom client
and DuckDB connections; every behaviour (tokens, retries, atomic writes) lives in those plain
modules so it can be tested and reused without Dagster.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import Field

from wecom_assets.defs import settings
from wecom_assets.warehouse import pg_sync, sync, tag_sync
from wecom_assets.warehouse.connection import ConnectionConfig, WarehouseError, connect
from wecom_assets.warehouse.pii import PiiPolicy, resolve_policy
from wecom_assets.warehouse.postgres import DEFAULT_SCHEMA, display_url, is_postgres_url
from wecom_assets.wecom import ClientConfig, WeComClient
from wecom_assets.wecom.config import DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_SECRET_VARIABLE
from wecom_assets.wecom.corps import Corp
from wecom_assets.wecom.limits import PER_API_PER_HOUR, PER_IP_PER_HOUR, PER_IP_PER_MINUTE
from wecom_assets.wecom.redact import shown_url


class WeComResource(dg.ConfigurableResource):
    """Access to one WeCom app's contact API: token cache, retries, rate limit, concurrency.

    Set ``corp_id`` and ``corp_secret`` from the environment (``WECOM_CORP_ID``,
    ``WECOM_CORP_SECRET``); the secret is never logged or shown in run config.
    """

    corp_id: str = Field(
        default="",
        description=(
            "Corp id (企业ID, starts with `ww`); set from the env var WECOM_CORP_ID. Empty when "
            "the corps come from WECOM_CORPS_FILE."
        ),
    )
    corp_secret: str = Field(
        default="",
        description=(
            "Secret of the self-built app whose visible range is synced; set from the env var "
            "WECOM_CORP_SECRET. Never logged. Empty when the corps come from WECOM_CORPS_FILE, "
            "which names each corp's secret variable."
        ),
    )
    base_url: str = Field(
        default="",
        description=(
            "API root. Empty means $WECOM_API_BASE_URL, else https://qyapi.weixin.qq.com. Set it "
            "for private deployments, proxies or the bundled sandbox."
        ),
    )
    token_cache_dir: str = Field(
        default="",
        description=(
            "Directory of the cross-process access_token cache. Empty means "
            "$WECOM_TOKEN_CACHE_DIR, else $DAGSTER_HOME/.wecom, else ~/.cache/wecom_assets."
        ),
    )
    max_concurrency: int = Field(
        default=24,
        ge=1,
        le=64,
        description=(
            "Parallel user/list calls, to hide network latency. At 20 ms a client is CPU-bound "
            "from about 24 on (~700 calls/s); raise it for slower links. The per-minute limit "
            "is kept by the rate limiter, whatever this is."
        ),
    )
    request_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description=(
            "Longest time one HTTP request may take in all: connecting, waiting and reading the "
            "body. A server that trickles its answer is cut off here."
        ),
    )
    max_retries: int = Field(
        default=5,
        ge=0,
        le=20,
        description="Extra tries of one call on transient failures (-1, 45009, 5xx, timeouts).",
    )
    retry_max_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Upper bound on the time one call may spend retrying before the step fails.",
    )
    rate_limit_per_minute: int = Field(
        default=10_000,
        ge=1,
        description=(
            "Client-side ceiling of calls per API per minute. WeCom publishes 10,000 per corp; "
            "lower it when other tools share the corp's quota."
        ),
    )
    rate_limit_window_seconds: float = Field(
        default=60.0,
        gt=0,
        description=(
            "Window, in seconds, that `rate_limit_per_minute` counts calls in. WeCom counts per "
            "minute, so keep 60 against WeCom; only a simulator with a compressed clock needs "
            "a shorter one."
        ),
    )

    rate_limit_per_hour: int = Field(
        default=PER_API_PER_HOUR,
        ge=1,
        description=(
            "Client-side ceiling of calls per API per hour. WeCom publishes 150,000 per corp and "
            "blocks the API for an hour past it; a sync that would wait for that fails at once "
            "saying when it can run again."
        ),
    )
    ip_rate_limit_per_minute: int = Field(
        default=PER_IP_PER_MINUTE,
        ge=1,
        description=(
            "Calls of every corp and run on this machine together per minute (WeCom: 20,000 per "
            "IP); counted in a file beside the token cache, shared by all run processes."
        ),
    )
    ip_rate_limit_per_hour: int = Field(
        default=PER_IP_PER_HOUR,
        ge=1,
        description="The same per hour (WeCom: 600,000 per IP).",
    )
    max_response_bytes: int = Field(
        default=DEFAULT_MAX_RESPONSE_BYTES,
        ge=1024,
        description=(
            "Largest answer accepted, compressed and decompressed alike; a larger one (a gzip "
            "bomb, a misrouted download) fails the call instead of filling the memory."
        ),
    )

    def client_config(self, corp: Corp | None = None) -> ClientConfig:
        """The plain client's configuration, with defaults resolved from the environment.

        Args:
            corp: A corp of the corps file; None means the one corp of ``corp_id`` and
                ``corp_secret``.

        Raises:
            WeComConfigError: corp id or secret is empty; the message names the env var to set.
        """
        if corp is None:
            corp_id, secret, base_url = (
                self.corp_id.strip(),
                self.corp_secret.strip(),
                self.base_url,
            )
        else:
            corp_id, secret = corp.corp_id, corp.secret(os.environ)
            base_url = corp.base_url or self.base_url
        return ClientConfig(
            corp_id=corp_id,
            corp_secret=secret,
            base_url=settings.base_url(base_url),
            token_cache_dir=settings.token_cache_dir(self.token_cache_dir),
            max_concurrency=self.max_concurrency,
            request_timeout=self.request_timeout_seconds,
            max_retries=self.max_retries,
            retry_max_seconds=self.retry_max_seconds,
            rate_limit_per_minute=self.rate_limit_per_minute,
            rate_limit_window=self.rate_limit_window_seconds,
            rate_limit_per_hour=self.rate_limit_per_hour,
            ip_rate_limit_per_minute=self.ip_rate_limit_per_minute,
            ip_rate_limit_per_hour=self.ip_rate_limit_per_hour,
            max_response_bytes=self.max_response_bytes,
            userids_case_sensitive=corp is not None and corp.userids_case_sensitive,
            secret_variable=corp.secret_env if corp is not None else DEFAULT_SECRET_VARIABLE,
        )

    def effective_settings(self, corp: Corp | None = None) -> dict[str, Any]:
        """The settings a step runs with, defaults resolved, for run metadata; never the secret."""
        config = self.client_config(corp)
        return {
            "wecom/base_url": shown_url(config.base_url),
            "wecom/token_cache_dir": str(config.token_cache_dir),
            "wecom/max_concurrency": config.max_concurrency,
            "wecom/request_timeout_seconds": config.request_timeout,
            "wecom/max_retries": config.max_retries,
            "wecom/retry_max_seconds": config.retry_max_seconds,
            "wecom/rate_limit_per_minute": config.rate_limit_per_minute,
        }

    @contextmanager
    def get_client(self, corp: Corp | None = None) -> Iterator[WeComClient]:
        """A client for the duration of one step; its HTTP pool is closed afterwards."""
        client = WeComClient(self.client_config(corp))
        try:
            yield client
        finally:
            client.close()


class WarehouseResource(DuckDBResource):
    """The warehouse the assets write (a DuckDB file or PostgreSQL), and what may be in it.

    ``url`` (``$WECOM_WAREHOUSE_URL``) selects PostgreSQL; empty means the DuckDB file.

    DuckDB allows one writing process per file and an analyst's open session blocks writers, so
    connections wait up to ``lock_timeout_seconds`` and then fail naming the process holding the
    lock. Connections are always closed, also when the block raises. The PII policy lives here
    because it decides what reaches the tables: contact fields are hashed or dropped before
    anything is written.
    """

    database: str = Field(
        default="",
        description=(
            "Path of the DuckDB file. Empty means $WECOM_DUCKDB_PATH, else data/wecom.duckdb. "
            "A relative path starts at the project root (the directory with pyproject.toml "
            "above the installed package), else at $DAGSTER_HOME; never at the working "
            "directory. The parent directory is created."
        ),
    )
    url: str = Field(
        default="",
        description=(
            "postgresql://user@host:port/dbname puts every table in PostgreSQL. Empty means "
            "$WECOM_WAREHOUSE_URL, else the DuckDB file. A password (in the URL or PGPASSWORD) "
            "is never shown or logged."
        ),
    )
    schema_name: str = Field(
        default=DEFAULT_SCHEMA,
        description="PostgreSQL schema of the tables and views; created when missing.",
    )
    lock_timeout_seconds: float = Field(
        default=120.0,
        ge=0,
        description="How long a step waits for another process to release the DuckDB file.",
    )
    memory_limit: str = Field(
        default=settings.DEFAULT_DUCKDB_MEMORY_LIMIT,
        min_length=1,
        description=(
            "DuckDB's memory cap while a sync writes the file (e.g. 128MB, 1GB); larger work "
            "spills to disk. A memory_limit in connection_config takes precedence."
        ),
    )

    pii_policy: dict[str, str] = Field(
        default={},
        description=(
            "What to do with members' contact fields before anything is written: field -> "
            "keep | hash | drop, for mobile, email, biz_mail, telephone, address, avatar, "
            "thumb_avatar, qr_code (unlisted fields are kept). Empty means $WECOM_PII_POLICY "
            "(e.g. `mobile=hash,email=hash,address=drop`). hash = SHA-256 of the secret salt "
            "plus the value."
        ),
    )
    pii_salt: str = Field(
        default="",
        description=(
            "Secret salt of hashed fields, at least 16 characters; set from the env var "
            "WECOM_PII_SALT. Never shown."
        ),
    )

    @property
    def warehouse_url(self) -> str:
        """The PostgreSQL URL, or empty for the DuckDB file."""
        return settings.warehouse_url(self.url)

    @property
    def backend(self) -> str:
        """``postgres`` or ``duckdb``.

        Raises:
            WarehouseError: the URL is set but is not PostgreSQL's; it is never quoted.
        """
        url = self.warehouse_url
        if not url:
            return "duckdb"
        if not is_postgres_url(url):
            raise WarehouseError(
                f"{settings.WAREHOUSE_URL_ENV} (or the resource's url) must be a "
                "postgresql://user@host:port/dbname URL, or empty for the DuckDB file."
            )
        return "postgres"

    def write_sync(self, snapshot: sync.Snapshot) -> sync.SyncReport:
        """Write one corp's sync into the chosen warehouse; visible only if every check passed.

        Raises:
            SyncRejectedError: a check, the shrink guard or the history refused it.
            WarehouseError: the warehouse cannot be written (never quoting a password).
        """
        if self.backend == "postgres":
            return pg_sync.write_and_commit(self.warehouse_url, snapshot, schema=self.schema_name)
        return sync.write_and_publish(
            self.path,
            snapshot,
            lock_timeout=self.lock_timeout_seconds,
            config=self.connection_settings(),
        )

    def write_tag_sync(self, snapshot: tag_sync.TagSnapshot) -> sync.SyncReport:
        """Write one corp's tag sync into the chosen warehouse, as :meth:`write_sync` does."""
        if self.backend == "postgres":
            return pg_sync.write_tags_and_commit(
                self.warehouse_url, snapshot, schema=self.schema_name
            )
        return tag_sync.write_and_publish_tags(
            self.path,
            snapshot,
            lock_timeout=self.lock_timeout_seconds,
            config=self.connection_settings(),
        )

    def department_ids(self, corp_id: str) -> list[int]:
        """Ids of a corp's departments in the warehouse, for a users-only sync."""
        if self.backend == "postgres":
            return pg_sync.current_department_ids(
                self.warehouse_url, corp_id, schema=self.schema_name
            )
        return sync.department_ids(
            self.path,
            corp_id,
            lock_timeout=self.lock_timeout_seconds,
            config=self.connection_settings(),
        )

    @property
    def path(self) -> Path:
        """The resolved DuckDB file path."""
        return settings.duckdb_path(self.database)

    def pii(self) -> PiiPolicy:
        """The PII policy: ``pii_policy``, else ``$WECOM_PII_POLICY``, with the salt.

        Raises:
            PiiPolicyError: unknown field or action, a field given twice, or hashing without a
                usable salt (names the env var).
        """
        return resolve_policy(self.pii_policy, settings.pii_policy_text(), self.pii_salt)

    def effective_settings(self) -> dict[str, Any]:
        """The warehouse settings a step runs with, for run metadata; never the salt.

        The path is absolute, and ``dagster/uri`` is the UI's storage location of the asset, so
        every materialization says exactly which file it wrote.
        """
        if self.backend == "postgres":
            url = display_url(self.warehouse_url)
            return {
                "dagster/uri": url,
                "warehouse/backend": "postgres",
                "postgres/url": url,
                "postgres/schema": self.schema_name,
            }
        return {
            "dagster/uri": self.path.as_uri(),
            "warehouse/backend": "duckdb",
            "duckdb/path": str(self.path),
            "duckdb/lock_timeout_seconds": self.lock_timeout_seconds,
        }

    def connection_settings(self) -> ConnectionConfig:
        """DuckDB settings of every connection the assets open."""
        return {
            "custom_user_agent": "wecom_assets",
            "memory_limit": self.memory_limit,
            **self.connection_config,
        }

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection to the DuckDB file, closed on exit whatever happens inside.

        Raises:
            WarehouseError: the warehouse is PostgreSQL; a DuckDB connection would read a file
                the syncs no longer write.
        """
        if self.backend == "postgres":
            raise WarehouseError(
                "The warehouse is PostgreSQL (WECOM_WAREHOUSE_URL is set), so there is no DuckDB "
                f"file to connect to; query schema {self.schema_name} with a PostgreSQL client."
            )
        conn = connect(
            self.path, lock_timeout=self.lock_timeout_seconds, config=self.connection_settings()
        )
        try:
            yield conn
        finally:
            conn.close()
