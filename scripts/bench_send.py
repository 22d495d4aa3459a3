"""Benchmark: one sender run for audiences of growing size, on the local stack.

For each size it fills a source table, CALLs the batched sender the way
`atomic_send` does, and prints users per second and the peak memory of the
procedure's worker process, so you can see whether memory grows with the
audience. Everything stays on loopback; sizes and durations are bounded.

    .venv/bin/python scripts/bench_send.py --sizes 1000 10000 30000
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

from dbt_atomic_local import stack
from dbt_atomic_local.atomic import presets

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ROOT / "integration_tests"
DATABASE, SCHEMA = "atomic_demo", "bench"
MAX_USERS = 200_000


def children_of(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class PeakMemory:
    """Samples the RSS of the server's worker processes while a CALL runs."""

    def __init__(self, server_pid: int):
        self.server_pid = server_pid
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            for child in children_of(self.server_pid):
                self.peak = max(self.peak, rss_mb(child))
            time.sleep(0.05)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)


def connect(port: int):
    return stack.connect_snowflake(port, DATABASE, SCHEMA, network_timeout=900)


def fill(cur, table: str, users: int) -> None:
    cur.execute(f"create or replace table {table} (user_id varchar, balance number(12, 2), notify_date date)")
    chunk = 2000
    for start in range(0, users, chunk):
        values = ", ".join(
            f"('{table}-{i:07d}', {i % 100}.5, current_date)" for i in range(start, min(users, start + chunk))
        )
        cur.execute(f"insert into {table} values {values}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 30000])
    parser.add_argument("--batch-rows", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    if max(args.sizes) > MAX_USERS:
        parser.error(f"at most {MAX_USERS} users a run")

    token, signing_secret = secrets.token_urlsafe(24), secrets.token_urlsafe(32)
    with tempfile.TemporaryDirectory() as work:
        snow = stack.start("snowflake", log_path=os.path.join(work, "snowflake.log"))
        atomic = stack.start("atomic", log_path=os.path.join(work, "atomic.log"))
        try:
            requests.put(
                f"{atomic.url}/_admin/config",
                json={
                    "triggers": {
                        token: presets.trigger("low_balance", signing_secret=signing_secret),
                    },
                    "request_log": {"limit": 1000, "body_bytes": 256},
                },
                timeout=10,
            ).raise_for_status()
            env = {
                **os.environ,
                "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
                "ATOMIC_LOCAL_SNOWFLAKE_PORT": str(snow.port),
                "ATOMIC_LOCAL_ATOMIC_PORT": str(atomic.port),
                "DBT_SCHEMA": SCHEMA,
                "DBT_LOG_PATH": os.path.join(work, "logs"),
                "DBT_TARGET_PATH": os.path.join(work, "target"),
            }
            dbt = [str(Path(sys.executable).parent / "dbt"), "--quiet"]
            where = ["--project-dir", str(PROJECT), "--profiles-dir", str(PROJECT)]
            # the procedures' deployed settings carry the benchmark's batch size and concurrency
            setup_vars = json.dumps(
                {"atomic_batch_max_rows": args.batch_rows, "atomic_http_concurrency": args.concurrency}
            )
            for command in (["deps"], ["run-operation", "atomic_setup", "--vars", setup_vars]):
                subprocess.run([*dbt, *command, *where], env=env, check=True, timeout=600, capture_output=True)
            package = f"{DATABASE}.{SCHEMA}_atomic"
            conn = connect(snow.port)
            cur = conn.cursor()
            cur.execute(
                f"alter secret {package}.atomic_low_balance_url set secret_string = %s",
                (f"{atomic.url}/bench/connector/{token}",),
            )
            cur.execute(
                f"alter secret {package}.atomic_low_balance_signing_secret set secret_string = %s", (signing_secret,)
            )
            print(f"{'users':>8} {'batches':>8} {'seconds':>8} {'users/s':>9} {'worker peak MB':>15}")
            for size in args.sizes:
                table = f"bench_{size}"
                fill(cur, table, size)
                request = {
                    "destination": "low_balance",
                    "source": f'"{DATABASE.upper()}"."{SCHEMA.upper()}"."{table.upper()}"',
                    "user_id_column": "USER_ID",
                    "payload_columns": ["BALANCE"],
                    "dedupe_columns": ["NOTIFY_DATE"],
                    "invocation_id": None,
                }
                with PeakMemory(snow.process.pid) as memory:
                    started = time.monotonic()
                    (result,) = cur.execute(f"call {package}.atomic_send(%s)", (json.dumps(request),)).fetchone()
                    elapsed = time.monotonic() - started
                summary = json.loads(result)
                if summary["sent"] != size:
                    print(f"unexpected summary: {summary}", file=sys.stderr)
                    return 1
                print(f"{size:>8} {summary['batches']:>8} {elapsed:>8.1f} {size / elapsed:>9.0f} {memory.peak:>15.0f}")
            conn.close()
        finally:
            snow.stop()
            atomic.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
