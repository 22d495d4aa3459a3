"""Fixtures of the handler tests: a fakesnow server with a Snowpark session, the
local Atomic emulator, and a stand-in for Snowflake's `_snowflake` module."""

from __future__ import annotations

import atexit
import json
import sys
import types
import uuid

import fakesnow
import pytest
import requests
from handler_env import DATABASE, HTTP_TIMEOUT, SCHEMA, atomic_config
from snowflake.snowpark import Session

from dbt_atomic_local import stack


class Atomic:
    """The running emulator and its admin API."""

    def __init__(self, url: str):
        self.url = url

    def admin(self, method: str, path: str, body=None):
        response = requests.request(method, f"{self.url}/_admin/{path}", json=body, timeout=HTTP_TIMEOUT)
        response.raise_for_status()
        return response.json()

    def reset(self) -> None:
        self.admin("PUT", "config", atomic_config())
        self.admin("POST", "reset")

    def fault(self, **spec) -> None:
        self.admin("POST", "faults", spec)

    def requests(self, endpoint: str) -> list[dict]:
        return [r for r in self.admin("GET", "requests")["requests"] if r["endpoint"] == endpoint]

    def stats(self) -> dict:
        return self.admin("GET", "stats")


@pytest.fixture(scope="session")
def atomic_server(tmp_path_factory):
    path = tmp_path_factory.mktemp("atomic") / "atomic.json"
    path.write_text(json.dumps(atomic_config()))
    server = stack.start("atomic", extra_args=["--config", str(path)], startup_timeout=30)
    try:
        yield Atomic(server.url)
    finally:
        server.stop()


@pytest.fixture
def atomic(atomic_server):
    atomic_server.reset()
    return atomic_server


@pytest.fixture(scope="session")
def snowflake_server():
    with fakesnow.server() as kwargs:
        yield kwargs


def connect(snowflake_server, **extra) -> Session:
    return Session.builder.configs(
        {
            "host": "localhost",
            "port": snowflake_server["port"],
            "protocol": "http",
            "account": "fakesnow",
            "user": "u",
            "password": "p",
            "database": DATABASE,
            "schema": SCHEMA,
            **extra,
        }
    ).create()


def close(session: Session) -> None:
    try:
        session.close()
    except Exception:  # noqa: BLE001 - fakesnow lacks SYSTEM$CANCEL_ALL_QUERIES; the connection closes anyway
        pass
    finally:
        # Snowpark closes sessions again at exit, when the server is gone: the connector would retry forever.
        atexit.unregister(session._close_at_exit)


@pytest.fixture(scope="session")
def snow(snowflake_server):
    # fakesnow answers some failures with HTTP 500, which the connector retries without end.
    session = connect(snowflake_server, network_timeout=20)
    session.sql(f"CREATE DATABASE IF NOT EXISTS {DATABASE}").collect()
    session.sql(f"CREATE SCHEMA IF NOT EXISTS {DATABASE}.{SCHEMA}").collect()
    yield session
    close(session)


@pytest.fixture
def other_session(snowflake_server, snow):
    """A second connection, as another caller of the procedures would have.

    Without network_timeout: its query timer would outlive the session and fire at exit."""
    session = connect(snowflake_server)
    yield session
    close(session)


def owned_tables_sql(qualified) -> list[str]:
    return [
        f"create table {qualified('_ATTEMPTS')} (run_id varchar, invocation_id varchar, destination varchar, "
        "batch_id varchar, attempt number, http_status number, latency_ms number, rows_in_batch number, "
        "bytes_in_batch number, error varchar, attempted_at timestamp_ltz)",
        f"create table {qualified('_OUTCOMES')} (run_id varchar, invocation_id varchar, destination varchar, "
        "dedupe_key varchar, user_id varchar, status varchar, reason varchar, batch_id varchar, "
        "recorded_at timestamp_ltz)",
        f"create table {qualified('_TOKEN_CACHE')} (cache_key varchar, access_token varchar, "
        "expires_at_epoch number, lease_owner varchar, lease_until_epoch number, updated_at timestamp_ltz)",
        f"create table {qualified('_LOCKS')} (lock_key varchar, lease_owner varchar, lease_until_epoch number, "
        "updated_at timestamp_ltz)",
    ]


class Warehouse:
    """Per-test owned tables and source tables in the fake Snowflake."""

    def __init__(self, session: Session, prefix: str):
        self.session = session
        self.prefix = prefix
        for sql in owned_tables_sql(self.qualified):
            session.sql(sql).collect()

    def qualified(self, name: str) -> str:
        return f'"{DATABASE}"."{SCHEMA}"."{self.prefix}{name}"'

    @property
    def tables(self) -> dict:
        return {
            "attempts": self.qualified("_ATTEMPTS"),
            "outcomes": self.qualified("_OUTCOMES"),
            "token_cache": self.qualified("_TOKEN_CACHE"),
            "locks": self.qualified("_LOCKS"),
        }

    def source(self, name: str, columns: str, rows: list[tuple]) -> str:
        table = self.qualified(f"_{name}")
        self.session.sql(f"create table {table} ({columns})").collect()
        if rows:
            marks = ", ".join("(" + ", ".join("?" * len(rows[0])) + ")" for _ in rows)
            # Bound as text (the columns cast it): fakesnow cannot bind Decimal or date values.
            params = [v if v is None or isinstance(v, (str, int)) else str(v) for row in rows for v in row]
            self.session.sql(f"insert into {table} values {marks}", params=params).collect()
        return table

    def rows(self, table: str, order: str = "1") -> list[dict]:
        return [r.as_dict() for r in self.session.sql(f"select * from {table} order by {order}").collect()]

    def outcomes(self) -> list[dict]:
        return self.rows(self.tables["outcomes"], "user_id, recorded_at")

    def attempts(self) -> list[dict]:
        return self.rows(self.tables["attempts"], "batch_id, attempt")


@pytest.fixture
def warehouse(snow):
    return Warehouse(snow, "T" + uuid.uuid4().hex[:10].upper())


@pytest.fixture
def secrets(monkeypatch):
    """Snowflake's `_snowflake` module, serving secret values by alias."""
    values: dict = {}
    module = types.ModuleType("_snowflake")

    def get_generic_secret_string(alias):
        value = values[alias]
        assert isinstance(value, str)
        return value

    def get_username_password(alias):
        username, password = values[alias]
        return types.SimpleNamespace(username=username, password=password)

    module.get_generic_secret_string = get_generic_secret_string
    module.get_username_password = get_username_password
    monkeypatch.setitem(sys.modules, "_snowflake", module)
    return values
