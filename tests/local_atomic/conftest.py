"""One local Atomic for the whole directory, reset and reconfigured before each test."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import pytest
from local_atomic_helpers import BASE_CONFIG, Atomic

from dbt_atomic_local import stack


@pytest.fixture(scope="session")
def atomic_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[stack.Server, Path]]:
    log_path = tmp_path_factory.mktemp("local_atomic") / "server.log"
    server = stack.start("atomic", log_path=str(log_path), startup_timeout=30)
    try:
        yield server, log_path
    finally:
        server.stop()


@pytest.fixture
def atomic(atomic_server: tuple[stack.Server, Path]) -> Iterator[Atomic]:
    client = Atomic(atomic_server[0].url)
    client.configure(copy.deepcopy(BASE_CONFIG))
    client.admin("POST", "reset")
    try:
        yield client
    finally:
        client.http.close()
