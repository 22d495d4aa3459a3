"""A worker process that runs exactly one procedure CALL.

Started ahead of time by the server's pool (`python -m dbt_atomic_local.snowflake.worker FD`):
it imports Snowpark and requests, reports ready on the socket FD, waits for one job, runs
`handler(session, *args)` with `_snowflake` and the egress guard in place, sends the
result back and exits. stdout and stderr go to the server's log.
"""

from __future__ import annotations

import datetime
import decimal
import json
import linecache
import sys
import threading
import traceback
import types
from multiprocessing.connection import Connection
from typing import Any

from dbt_atomic_local.snowflake.egress import EgressGuard


class UsernamePassword:
    def __init__(self, username: str, password: str):
        self.username = username
        self.password = password

    def __repr__(self) -> str:
        return "UsernamePassword(username=..., password=...)"


def make_snowflake_module(secrets: dict[str, dict[str, Any]]) -> types.ModuleType:
    """The `_snowflake` module a handler imports, serving exactly the procedure's SECRETS aliases."""
    module = types.ModuleType("_snowflake")

    def lookup(alias: str, expected: str) -> dict[str, Any]:
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("Secrets can be read only from the handler's main thread")
        secret = secrets.get(alias)
        if secret is None:
            raise ValueError(f"Secret alias '{alias}' is not in this procedure's SECRETS")
        if secret["type"] != expected:
            raise ValueError(f"Secret alias '{alias}' is of type {secret['type']}, not {expected}")
        return secret

    def get_generic_secret_string(alias: str) -> str:
        return lookup(alias, "GENERIC_STRING")["secret_string"]

    def get_username_password(alias: str) -> UsernamePassword:
        secret = lookup(alias, "PASSWORD")
        return UsernamePassword(secret["username"], secret["password"])

    def get_oauth_access_token(alias: str) -> str:
        raise NotImplementedError("OAUTH2 secrets are not emulated by the local Snowflake")

    module.get_generic_secret_string = get_generic_secret_string  # type: ignore[attr-defined]
    module.get_username_password = get_username_password  # type: ignore[attr-defined]
    module.get_oauth_access_token = get_oauth_access_token  # type: ignore[attr-defined]
    module.UsernamePassword = UsernamePassword  # type: ignore[attr-defined]
    return module


def _scalar(value: Any) -> Any:
    """A JSON-safe form of one returned value."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (datetime.date, datetime.datetime, datetime.time)):
        return value.isoformat()
    if isinstance(value, (dict, list, tuple)):
        return json.loads(json.dumps(value, default=str))
    return str(value)


def convert_result(value: Any, returns: str) -> dict[str, Any]:
    if returns.startswith("TABLE") and hasattr(value, "collect"):
        rows = value.collect()
        columns = list(value.schema.names)
        return {"ok": True, "table": {"columns": columns, "rows": [[_scalar(v) for v in r] for r in rows]}}
    return {"ok": True, "value": _scalar(value)}


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    from snowflake.snowpark import Session

    proc, handler_name = job["procedure"], job["handler"]
    session = Session.builder.configs(
        {
            "host": job["server_host"],
            "port": job["server_port"],
            "protocol": "http",
            "account": "fakesnow",
            "user": "procedure",
            "password": "local",
            "database": job["database"],
            "schema": job["schema"],
            "login_timeout": 30,
            "network_timeout": job.get("network_timeout", 600),
        }
    ).create()
    try:
        sys.modules["_snowflake"] = make_snowflake_module(job["secrets"])
        guard = EgressGuard(
            allowed=[(h, p) for h, p in job["allowed"]],
            always=[(job["server_host"], job["server_port"])],
        )
        guard.install()

        filename = f"<procedure {proc}>"
        linecache.cache[filename] = (len(job["body"]), None, job["body"].splitlines(True), filename)
        module = types.ModuleType("__procedure__")
        module.__file__ = filename
        sys.modules["__procedure__"] = module
        try:
            exec(compile(job["body"], filename, "exec"), module.__dict__)  # noqa: S102
            handler = module.__dict__.get(handler_name)
            if handler is None:
                raise NameError(f"handler '{handler_name}' is not defined in the procedure body")
            result = handler(session, *job["args"])
            return convert_result(result, job["returns"])
        except BaseException as e:  # noqa: BLE001 - every failure is reported to the caller
            frames = traceback.extract_tb(e.__traceback__)
            user = [f for f in frames if f.filename == filename]
            lines = traceback.format_list(user) + traceback.format_exception_only(type(e), e)
            message = (
                "Python Interpreter Error:\nTraceback (most recent call last):\n"
                + "".join(lines)
                + f" in function {job['name']} with handler {handler_name}"
            )
            return {"ok": False, "error": message}
    finally:
        try:
            session.close()
        except Exception as e:  # noqa: BLE001 - closing is best effort
            print(f"closing the Snowpark session failed: {e}", file=sys.stderr)


def main() -> None:
    conn = Connection(int(sys.argv[1]))
    # the imports a CALL needs, paid before the job arrives
    import requests  # noqa: F401
    import snowflake.snowpark  # noqa: F401

    conn.send_bytes(json.dumps({"ready": True}).encode())
    try:
        job = json.loads(conn.recv_bytes())
    except EOFError:
        return
    try:
        result = run_job(job)
    except BaseException as e:  # noqa: BLE001 - report setup failures too
        result = {"ok": False, "error": f"Procedure setup failed: {type(e).__name__}: {e}"}
    conn.send_bytes(json.dumps(result).encode())
    sys.stdout.flush()
    sys.stderr.flush()


if __name__ == "__main__":
    main()
