"""Fixtures for the end-to-end tests: the local servers, `dbt deps`, one project per test."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from harness import DBT, DBT_TIMEOUT, PROJECT, Project, Secrets, next_schema

from dbt_atomic_local import stack


@pytest.fixture(scope="session")
def servers(tmp_path_factory):
    logs = tmp_path_factory.mktemp("server-logs")
    snow = stack.start("snowflake", log_path=str(logs / "snowflake.log"))
    atomic = stack.start("atomic", log_path=str(logs / "atomic.log"))
    try:
        yield snow, atomic
    finally:
        snow.stop()
        atomic.stop()


@pytest.fixture(scope="session")
def dbt_deps(servers):
    """`dbt deps` once: integration_tests installs the package from ../"""
    proc = subprocess.run(
        [DBT, "deps", "--project-dir", str(PROJECT), "--profiles-dir", str(PROJECT)],
        capture_output=True,
        text=True,
        timeout=DBT_TIMEOUT,
        env={**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"},
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture
def project(servers, dbt_deps, tmp_path) -> Project:
    snow, atomic = servers
    schema = next_schema()
    proj = Project(snow=snow, atomic=atomic, schema=schema, workdir=tmp_path / "dbt", secrets=Secrets())
    proj.workdir.mkdir()
    yield proj
    shutil.rmtree(proj.workdir, ignore_errors=True)
