"""Helpers for the end-to-end tests. End to end: the integration_tests dbt project, run with the dbt CLI against the
local Snowflake and the local Atomic, as a user runs it.

Each test that needs a clean history gets its own schema (DBT_SCHEMA), so the
package's objects (`<schema>_atomic`) never collide between tests on one server.
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import requests

from dbt_atomic_local import stack
from dbt_atomic_local.atomic import presets

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ROOT / "integration_tests"
DBT = str(Path(sys.executable).parent / "dbt")
DATABASE = "atomic_demo"
DBT_TIMEOUT = 300
_schemas = itertools.count(1)


@dataclass
class Secrets:
    """What a workbench user copies out of Atomic: fresh per project, never printed."""

    tokens: dict[str, str] = field(
        default_factory=lambda: {n: secrets.token_urlsafe(24) for n in ("low_balance", "statement_ready")}
    )
    signing_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    client_id: str = field(default_factory=lambda: "client-" + secrets.token_hex(6))
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    def values(self) -> list[str]:
        return [*self.tokens.values(), self.signing_secret, self.client_secret]


@dataclass
class Project:
    """The example project on its own schema, with its own dbt log and target directories."""

    snow: stack.Server
    atomic: stack.Server
    schema: str
    workdir: Path
    secrets: Secrets
    vars: dict = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)

    @property
    def package_schema(self) -> str:
        return f"{self.schema}_atomic"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "ATOMIC_LOCAL_SNOWFLAKE_PORT": str(self.snow.port),
            "ATOMIC_LOCAL_ATOMIC_PORT": str(self.atomic.port),
            "DBT_SCHEMA": self.schema,
            "DBT_LOG_PATH": str(self.workdir / "logs"),
            "DBT_TARGET_PATH": str(self.workdir / "target"),
        }

    def dbt(self, *args: str, expect_ok: bool = True, vars: dict | None = None) -> subprocess.CompletedProcess:
        cmd = [DBT, *args, "--project-dir", str(PROJECT), "--profiles-dir", str(PROJECT)]
        merged = {**self.vars, **(vars or {})}
        if merged:
            cmd += ["--vars", json.dumps(merged)]
        proc = subprocess.run(cmd, env=self.env(), capture_output=True, text=True, timeout=DBT_TIMEOUT, check=False)
        self.outputs.append(proc.stdout + proc.stderr)
        if expect_ok:
            assert proc.returncode == 0, f"dbt {' '.join(args)} failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}"
        return proc

    # The local Atomic
    def atomic_get(self, path: str) -> dict:
        response = requests.get(f"{self.atomic.url}/_admin/{path}", timeout=10)
        response.raise_for_status()
        return response.json()

    def atomic_post(self, path: str, body: dict | None = None) -> None:
        requests.post(f"{self.atomic.url}/_admin/{path}", json=body or {}, timeout=10).raise_for_status()

    def configure_atomic(self, *, signing_secret: str | None = None, mode: str = "live") -> None:
        config = {
            "triggers": {
                self.secrets.tokens["low_balance"]: presets.trigger(
                    "low_balance",
                    signing_secret=signing_secret or self.secrets.signing_secret,
                    mode=mode,
                    variables={"balance": "balance"},
                ),
                self.secrets.tokens["statement_ready"]: presets.trigger("statement_ready", mode=mode),
            },
            "clients": {self.secrets.client_id: self.secrets.client_secret},
            "token": {"expires_in": 3600, "rate_limit": {"requests": 50, "per_seconds": 60}},
            "analytics": {"environments": ["demo-env"]},
        }
        requests.put(f"{self.atomic.url}/_admin/config", json=config, timeout=10).raise_for_status()
        self.atomic_post("reset")

    # The local Snowflake
    def connect(self):
        return stack.connect_snowflake(self.snow.port, DATABASE, self.schema, host=self.snow.host)

    def query(self, sql: str, params: tuple | None = None) -> list[tuple]:
        conn = self.connect()
        try:
            return conn.cursor().execute(sql, params).fetchall()
        finally:
            conn.close()

    def set_secrets(self) -> None:
        """Sets every secret's value the way scripts/atomic_secrets.py does: bound, never logged."""
        url = self.atomic.url
        values = {
            "atomic_low_balance_url": f"{url}/test-org/connector/{self.secrets.tokens['low_balance']}",
            "atomic_low_balance_signing_secret": self.secrets.signing_secret,
            "atomic_statement_ready_url": f"{url}/test-org/connector/{self.secrets.tokens['statement_ready']}",
        }
        conn = self.connect()
        try:
            cur = conn.cursor()
            for name, value in values.items():
                cur.execute(f"alter secret {DATABASE}.{self.package_schema}.{name} set secret_string = %s", (value,))
            cur.execute(
                f"alter secret {DATABASE}.{self.package_schema}.atomic_balance_events_credentials "
                "set username = %s password = %s",
                (self.secrets.client_id, self.secrets.client_secret),
            )
        finally:
            conn.close()

    def outcomes(self, destination: str | None = None) -> list[tuple]:
        sql = f"select user_id, status, reason from {DATABASE}.{self.package_schema}.atomic_outcomes"
        if destination:
            return self.query(sql + " where destination = %s order by user_id, status", (destination,))
        return self.query(sql + " order by user_id, status")

    def status(self, destination: str) -> dict[str, str]:
        rows = self.query(
            f"select user_id, status from {DATABASE}.{self.package_schema}.atomic_delivery_status "
            "where destination = %s",
            (destination,),
        )
        return dict(rows)

    def call_send(self, table: str, destination: str, user_id_column: str, **request) -> dict:
        """CALLs the sender procedure directly, as atomic_send does, with the deployed settings."""
        body = {
            "destination": destination,
            "source": f'"{DATABASE.upper()}"."{self.schema.upper()}"."{table.upper()}"',
            "user_id_column": user_id_column.upper(),
            "payload_columns": None,
            "dedupe_columns": [],
            "event_name": None,
            "event_name_column": None,
            "properties_column": None,
            "invocation_id": None,
            **request,
        }
        procedure = f"{DATABASE}.{self.package_schema}.atomic_send"
        return json.loads(self.query(f"call {procedure}(%s)", (json.dumps(body),))[0][0])

    def deployed(self) -> None:
        """seed -> atomic_setup -> secrets: ready to build and send."""
        self.configure_atomic()
        self.dbt("seed")
        self.dbt("run-operation", "atomic_setup")
        self.set_secrets()
        self.dbt("run", "--select", "package:dbt_atomic")  # the audit views


LOW_BALANCE_USERS = {"user-001", "user-003", "user-005", "user-007"}
STATEMENT_READY_USERS = {"user-001", "user-004", "user-006"}


def next_schema() -> str:
    return f"t{next(_schemas)}_{secrets.token_hex(3)}"
