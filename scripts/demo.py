"""The demo: the whole dbt_atomic path on the local stack, with a readable summary.

    seed -> atomic_setup -> set the secrets -> dbt build (sends on-run-end)
         -> the local Atomic verifies and records every batch
         -> the audit model shows each user delivered
    then a second dbt build, which sends nothing.

Run it through `scripts/demo.sh`. Ports: ATOMIC_LOCAL_SNOWFLAKE_PORT (8085) and
ATOMIC_LOCAL_ATOMIC_PORT (8086). `--keep-running` leaves both servers up so you
can point your own dbt project at them.
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from dbt_atomic_local import stack
from dbt_atomic_local.atomic import presets

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ROOT / "integration_tests"
BIN = Path(sys.executable).parent
DBT_TIMEOUT = 600


def say(text: str = "") -> None:
    print(text, flush=True)


def dbt(env: dict[str, str], *args: str) -> str:
    """Runs one dbt command in the example project; fails the demo with dbt's output on error."""
    cmd = [str(BIN / "dbt"), *args, "--profiles-dir", str(PROJECT), "--project-dir", str(PROJECT)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=DBT_TIMEOUT, check=False)
    if proc.returncode != 0:
        say(proc.stdout[-5000:])
        say(proc.stderr[-2000:])
        raise SystemExit(f"demo: `dbt {' '.join(args)}` failed (exit {proc.returncode})")
    return proc.stdout


def atomic_config(webhook_tokens: dict[str, str], signing_secret: str, client_id: str, client_secret: str) -> dict:
    """The local Atomic, set up as a workbench user would: two triggers and an API key."""
    return {
        "triggers": {
            webhook_tokens["low_balance"]: presets.trigger(
                "low_balance", signing_secret=signing_secret, variables={"balance": "balance"}
            ),
            webhook_tokens["statement_ready"]: presets.trigger("statement_ready", variables={"account": "account_id"}),
        },
        "clients": {client_id: client_secret},
        "token": {"expires_in": 3600, "rate_limit": {"requests": 5, "per_seconds": 60}},
        "analytics": {"environments": ["demo-env"]},
    }


def query(port: int, sql: str) -> list[tuple]:
    conn = stack.connect_snowflake(port, "atomic_demo", "analytics")
    try:
        return conn.cursor().execute(sql).fetchall()
    finally:
        conn.close()


def print_status(port: int, atomic_url: str) -> None:
    rows = query(
        port,
        "select destination, status, count(*) from analytics_atomic.atomic_delivery_status "
        "group by destination, status order by destination, status",
    )
    say("  audit (atomic_delivery_status):")
    for destination, status, count in rows:
        say(f"    {destination:<16} {status:<10} {count}")
    users = requests.get(f"{atomic_url}/_admin/users", timeout=10).json()
    say("  local Atomic received:")
    for trigger, counts in sorted(users.get("webhook", {}).items()):
        say(f"    webhook {trigger:<16} {sum(counts.values())} users: {', '.join(sorted(counts))}")
    signed = [
        r
        for r in requests.get(f"{atomic_url}/_admin/requests?endpoint=webhook", timeout=10).json()["requests"]
        if r.get("trigger") == "low_balance"
    ]
    verified = sum(1 for r in signed if r["status"] == 200)
    say(f"    low_balance requests: {len(signed)}, signature verified and accepted: {verified}")
    events = users.get("events", {})
    say(f"    events   {'':<16} {sum(sum(e.values()) for e in events.values())} events for {len(events)} users")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep-running", action="store_true", help="leave the local servers running")
    args = parser.parse_args()

    snowflake_port = int(os.environ.get("ATOMIC_LOCAL_SNOWFLAKE_PORT", "8085"))
    atomic_port = int(os.environ.get("ATOMIC_LOCAL_ATOMIC_PORT", "8086"))
    logs = ROOT / ".local-stack"
    logs.mkdir(exist_ok=True)

    # What a workbench user would copy out of Atomic: made up fresh, never printed.
    tokens = {name: secrets.token_urlsafe(24) for name in ("low_balance", "statement_ready")}
    signing_secret = secrets.token_urlsafe(32)
    client_id, client_secret = "demo-client", secrets.token_urlsafe(32)

    say("dbt_atomic demo on the local stack")
    started = time.monotonic()
    snow = stack.start("snowflake", port=snowflake_port, log_path=str(logs / "snowflake.log"))
    atomic = stack.start("atomic", port=atomic_port, log_path=str(logs / "atomic.log"))
    try:
        requests.put(
            f"{atomic.url}/_admin/config",
            json=atomic_config(tokens, signing_secret, client_id, client_secret),
            timeout=10,
        ).raise_for_status()
        say(f"  local Snowflake on {snow.url}, local Atomic on {atomic.url}")

        with tempfile.TemporaryDirectory() as work:
            env = {
                **os.environ,
                "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
                "ATOMIC_LOCAL_SNOWFLAKE_PORT": str(snowflake_port),
                "ATOMIC_LOCAL_ATOMIC_PORT": str(atomic_port),
                "DBT_LOG_PATH": str(Path(work) / "logs"),
                "DBT_TARGET_PATH": str(Path(work) / "target"),
            }
            say("1. dbt deps, dbt seed")
            dbt(env, "deps")
            dbt(env, "seed")
            say("2. dbt run-operation atomic_setup")
            dbt(env, "run-operation", "atomic_setup")
            say("3. set the secrets (outside dbt)")
            set_secrets(env, atomic.url, tokens, signing_secret, client_id, client_secret)
            say("4. dbt build: models, tests, then the on-run-end hook sends")
            out = dbt(env, "build")
            for line in out.splitlines():
                if "dbt_atomic:" in line:
                    say("   " + line.split("dbt_atomic:", 1)[1].strip())
            print_status(snowflake_port, atomic.url)
            say("5. dbt build again: nothing new to send")
            out = dbt(env, "build")
            for line in out.splitlines():
                if "dbt_atomic:" in line:
                    say("   " + line.split("dbt_atomic:", 1)[1].strip())
            print_status(snowflake_port, atomic.url)
        say(f"done in {time.monotonic() - started:.0f}s; server logs in .local-stack/")
        if args.keep_running:
            say("servers left running; stop them with: kill " + f"{snow.process.pid} {atomic.process.pid}")
            snow.process = atomic.process = None  # type: ignore[assignment]
    finally:
        for server in (snow, atomic):
            if server.process is not None:
                server.stop()
    return 0


def set_secrets(env, atomic_url, tokens, signing_secret, client_id, client_secret) -> None:
    """Sets the secrets through scripts/atomic_secrets.py, the way a user would."""
    values = {
        "ATOMIC_DEMO_LOW_BALANCE_URL": f"{atomic_url}/demo-org/connector/{tokens['low_balance']}",
        "ATOMIC_DEMO_STATEMENT_READY_URL": f"{atomic_url}/demo-org/connector/{tokens['statement_ready']}",
        "ATOMIC_DEMO_SIGNING_SECRET": signing_secret,
        "ATOMIC_DEMO_CLIENT_ID": client_id,
        "ATOMIC_DEMO_CLIENT_SECRET": client_secret,
    }
    schema = "atomic_demo.analytics_atomic"
    commands = [
        ["set", f"{schema}.atomic_low_balance_url", "--from-env", "ATOMIC_DEMO_LOW_BALANCE_URL"],
        ["set", f"{schema}.atomic_low_balance_signing_secret", "--from-env", "ATOMIC_DEMO_SIGNING_SECRET"],
        ["set", f"{schema}.atomic_statement_ready_url", "--from-env", "ATOMIC_DEMO_STATEMENT_READY_URL"],
        [
            "set",
            f"{schema}.atomic_balance_events_credentials",
            "--username-env",
            "ATOMIC_DEMO_CLIENT_ID",
            "--password-env",
            "ATOMIC_DEMO_CLIENT_SECRET",
        ],
    ]
    for command in commands:
        cmd = [sys.executable, str(ROOT / "scripts" / "atomic_secrets.py"), "--project-dir", str(PROJECT), *command]
        proc = subprocess.run(cmd, env={**env, **values}, capture_output=True, text=True, timeout=120, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"demo: setting {command[1]} failed: {proc.stderr.strip()[-500:]}")
    say(f"   {len(commands)} secrets set")


if __name__ == "__main__":
    raise SystemExit(main())
