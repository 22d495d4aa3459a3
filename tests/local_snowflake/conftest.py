"""The local Snowflake, started once for these tests, and connections to it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import snowflake.connector

from dbt_atomic_local import stack

# every CALL in these tests is short; a low limit keeps the timeout test quick
CALL_TIMEOUT = 6


@pytest.fixture(scope="session")
def server_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("local_snowflake") / "server.log"


@pytest.fixture(scope="session")
def server(server_log: Path) -> Iterator[stack.Server]:
    saved = os.environ.get("ATOMIC_LOCAL_SNOWFLAKE_CALL_TIMEOUT")
    os.environ["ATOMIC_LOCAL_SNOWFLAKE_CALL_TIMEOUT"] = str(CALL_TIMEOUT)
    try:
        srv = stack.start("snowflake", log_path=str(server_log), startup_timeout=60)
    finally:
        if saved is None:
            os.environ.pop("ATOMIC_LOCAL_SNOWFLAKE_CALL_TIMEOUT", None)
        else:
            os.environ["ATOMIC_LOCAL_SNOWFLAKE_CALL_TIMEOUT"] = saved
    yield srv
    srv.stop()


Connect = Callable[..., snowflake.connector.SnowflakeConnection]


@pytest.fixture
def connect(server: stack.Server) -> Iterator[Connect]:
    """Open connections to the server (closed after the test); always with timeouts."""
    opened: list[snowflake.connector.SnowflakeConnection] = []

    def _connect(database: str = "TESTDB", schema: str = "PUBLIC", **kwargs) -> snowflake.connector.SnowflakeConnection:
        conn = snowflake.connector.connect(
            host=server.host,
            port=server.port,
            protocol="http",
            account="fakesnow",
            user="u",
            password="p",
            database=database,
            schema=schema,
            login_timeout=15,
            network_timeout=30,
            paramstyle="qmark",
            **kwargs,
        )
        opened.append(conn)
        return conn

    yield _connect
    for conn in opened:
        conn.close()


@pytest.fixture
def schema() -> str:
    """A schema of its own for each test."""
    return f"S_{uuid.uuid4().hex[:10].upper()}"


@pytest.fixture
def cur(connect: Connect, schema: str):
    """A cursor on TESTDB.<a fresh schema>."""
    return connect(schema=schema).cursor()
