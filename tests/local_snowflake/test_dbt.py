"""dbt against the local Snowflake, through the dbt CLI: seed, run (twice, incremental merge),
test, hooks, grants and run-operation, with the Snowflake SQL dbt sends unchanged."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from .helpers import as_dicts, rows

PROJECT = Path(__file__).parent / "dbt_project"
DBT = Path(sys.executable).parent / "dbt"


def dbt(args: list[str], env: dict[str, str], tmp: Path) -> str:
    proc = subprocess.run(
        [
            str(DBT),
            *args,
            "--profiles-dir",
            str(PROJECT),
            "--target-path",
            str(tmp / "target"),
            "--log-path",
            str(tmp / "logs"),
        ],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, f"dbt {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}"
    return proc.stdout


@pytest.mark.dbt
def test_dbt_project(server, connect, tmp_path):
    schema = f"DBT_{uuid.uuid4().hex[:8].upper()}"
    env = {
        **os.environ,
        "LOCAL_SNOWFLAKE_PORT": str(server.port),
        "LOCAL_SNOWFLAKE_SCHEMA": schema,
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }

    dbt(["seed"], env, tmp_path)
    dbt(["run"], env, tmp_path)
    cur = connect(database="DBT_TEST", schema=schema).cursor()
    assert rows(cur, "select id, batch from events_incremental order by id") == [(1, 1), (2, 1), (3, 1)]

    dbt(["run", "--vars", "{batch: 2}"], env, tmp_path)
    # merged: ids 1 and 2 updated, 3 kept, 99 inserted
    assert rows(cur, "select id, name, batch from events_incremental order by id") == [
        (1, "alice", 2),
        (2, "bob", 2),
        (3, "carol", 1),
        (99, "dave", 2),
    ]
    assert rows(cur, "select id from low_balance order by id") == [(1,), (3,)]

    out = dbt(["test"], env, tmp_path)
    assert "PASS=6" in out and "ERROR=0" in out  # 4 data tests and the 2 project hooks

    hooks = rows(cur, "select event, command from hook_log order by event, command")
    assert ("post_hook", "people_table") in hooks
    assert ("end", "run") in hooks and ("end", "seed") in hooks and ("end", "test") in hooks
    grants = {(g["privilege"], g["grantee_name"]) for g in as_dicts(cur, "show grants on table people_table")}
    assert grants == {("SELECT", "REPORTER")}

    out = dbt(["run-operation", "report_counts"], env, tmp_path)
    assert "events_incremental rows: 4" in out
    assert "network rules: DBT_RULE" in out
