"""The local Snowflake: fakesnow's server with a layer in front of its query endpoint.

Every `/queries/v1/query-request` is looked at first:

- statements fakesnow lacks (network rules, secrets, integrations, Python procedures and
  CALL, alerts, tasks, grants; see statements.py) run here, against catalog.py;
- everything else goes to fakesnow, after the rewrites in rewrites.py;
- every failure comes back as a query error (never an HTTP 500, which the Snowflake
  connector retries for ever), and a failed statement never leaves the session in an
  aborted DuckDB transaction.

Statements that carry a secret value never reach fakesnow and are never logged.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import os
import uuid
from collections.abc import AsyncIterator
from contextvars import ContextVar
from typing import Any

import duckdb
import snowflake.connector.errors
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dbt_atomic_local.snowflake import statements
from dbt_atomic_local.snowflake.catalog import Catalog, CatalogError
from dbt_atomic_local.snowflake.emulator import Emulator, Result
from dbt_atomic_local.snowflake.procedures import WorkerPool
from dbt_atomic_local.snowflake.rewrites import rewrite, transaction_break
from dbt_atomic_local.snowflake.sqltokens import SqlSyntaxError

# fakesnow prints every statement to stderr when this is set; statements may carry values
os.environ.pop("FAKESNOW_DEBUG", None)

import fakesnow.server as fs
from fakesnow.converter import from_binding

logger = logging.getLogger("dbt_atomic_local.snowflake")

QUERY_PATH = "/queries/v1/query-request"
DEFAULT_CALL_TIMEOUT = 900.0
DEFAULT_WORKERS = 2

# exceptions fakesnow logs while handling the current request (to turn its 500s into errors)
_fakesnow_errors: ContextVar[list[BaseException] | None] = ContextVar("fakesnow_errors", default=None)


class _FakesnowLogFilter(logging.Filter):
    """Keep fakesnow's own query error lines out of the log (they quote statements and bound
    values); remember the exception so the response can carry its message."""

    def filter(self, record: logging.LogRecord) -> bool:
        holder = _fakesnow_errors.get()
        if holder is not None and record.exc_info and record.exc_info[1] is not None:
            holder.append(record.exc_info[1])
        return "sql_text=" not in str(record.msg)


def _column_info(name: str, type_: str, scale: int = 0) -> dict[str, Any]:
    info: dict[str, Any] = {
        "name": name,
        "database": "",
        "schema": "",
        "table": "",
        "nullable": True,
        "type": type_,
        "byteLength": None,
        "length": None,
        "scale": None,
        "precision": None,
        "collation": None,
    }
    if type_ in ("text", "variant"):
        info["byteLength"] = info["length"] = 16777216
    elif type_ == "fixed":
        info["precision"], info["scale"] = 38, scale
    return info


def _cell(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    return str(value)


def result_response(conn: Any, result: Result) -> JSONResponse:
    rows = [[_cell(v) for v in row] for row in result.rows]
    return JSONResponse(
        {
            "data": {
                "parameters": [{"name": "TIMEZONE", "value": "Etc/UTC"}],
                "rowtype": [_column_info(n, t, result.scales.get(n, 0)) for n, t in result.columns],
                "rowset": rows,
                "total": len(rows),
                "returned": len(rows),
                "queryId": str(uuid.uuid4()),
                "statementTypeId": result.statement_type,
                "finalDatabaseName": conn.database,
                "finalSchemaName": conn.schema,
                "queryResultFormat": "json",
            },
            "success": True,
        }
    )


def error_response(message: str, errno: int = 1003, sqlstate: str = "42000") -> JSONResponse:
    code = f"{errno:06d}"
    return JSONResponse(
        {
            "data": {"errorCode": code, "sqlState": sqlstate, "queryId": str(uuid.uuid4())},
            "code": code,
            "message": message,
            "success": False,
        }
    )


def recover_transaction(conn: Any) -> None:
    """After a failed statement DuckDB aborts the open transaction; Snowflake keeps the
    session usable. Roll the aborted transaction back and open a new one, so the client's
    COMMIT/ROLLBACK still works. (Earlier statements of
    that transaction are lost, which Snowflake would keep.)"""
    duck = conn._duck_conn
    try:
        duck.execute("select 1").fetchall()
    except duckdb.TransactionException:
        logger.info("rolling back an aborted transaction after a failed statement")
        with contextlib.suppress(duckdb.Error):
            duck.rollback()
        # only an explicit transaction can be left aborted: keep one open for its COMMIT
        duck.begin()
    except duckdb.Error as e:
        logger.warning("checking the session's transaction failed: %s", e)


def end_transaction(conn: Any) -> bool:
    """Commit the session's open transaction, if any (see rewrites.transaction_break).
    fakesnow tracks transactions only without autocommit, so ask DuckDB itself."""
    try:
        conn._duck_conn.commit()
    except duckdb.TransactionException:
        return False  # no transaction was open
    finally:
        conn._in_transaction = False
    return True


def begin_transaction(conn: Any) -> None:
    conn._duck_conn.begin()
    conn._in_transaction = not conn._autocommit


def _request_with_body(request: Request, body: bytes) -> Request:
    scope = dict(request.scope)
    scope["headers"] = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-encoding"]
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(scope, receive)


def _positional_params(body_json: dict[str, Any]) -> list[Any] | None:
    bindings = body_json.get("bindings")
    if not bindings or not all(k.isdigit() for k in bindings):
        return None
    if any(isinstance(b.get("value"), list) for b in bindings.values()):
        return None
    return [from_binding(bindings[str(pos)]) for pos in range(1, len(bindings) + 1)]


def _error_of(e: BaseException) -> tuple[str, int, str]:
    if isinstance(e, CatalogError):
        return e.message, e.errno, e.sqlstate
    if isinstance(e, snowflake.connector.errors.Error):
        return str(e.msg), e.errno or 1003, e.sqlstate or "42000"
    if isinstance(e, SqlSyntaxError):
        return f"SQL compilation error: {e}", 1003, "42000"
    return f"{type(e).__name__}: {e}", 1003, "42000"


class LocalSnowflake:
    def __init__(self, host: str, port: int, call_timeout: float, workers: int):
        self.catalog = Catalog()
        self.pool = WorkerPool(size=workers)
        back_host = "127.0.0.1" if host in ("0.0.0.0", "", "::", "localhost") else host  # noqa: S104
        self.emulator = Emulator(
            self.catalog,
            self.pool,
            server_host=back_host,
            server_port=port,
            call_timeout=call_timeout,
            connect=lambda db, schema: fs.shared_fs.connect(db, schema),
        )
        self.emulator.execute_sql = self.execute_sql
        logging.getLogger("fakesnow.server").addFilter(_FakesnowLogFilter())

    # ------------------------------------------------------------ internal execution

    async def execute_sql(self, conn: Any, sql: str, params: list[Any] | None) -> Result:
        """Run any statement on conn (alerts, tasks, CALL argument expressions)."""
        stmt = statements.parse(sql)
        if stmt is not None:
            return await self.emulator.execute(conn, stmt, params)
        sql = rewrite(sql)

        def run() -> Result:
            cur = conn.cursor()
            try:
                if params:
                    cur.execute(sql, binding_params=tuple(params), server=True)
                else:
                    cur.execute(sql)
                rows = [list(r) for r in cur.fetchall()]
            except Exception:
                recover_transaction(conn)
                raise
            width = len(rows[0]) if rows else 0
            return Result([(f"C{i}", "text") for i in range(width)], rows)

        return await run_in_threadpool(run)

    # ------------------------------------------------------------ the query endpoint

    async def query_request(self, request: Request) -> Response:
        try:
            conn = fs.to_conn(fs.to_token(request))
        except fs.ServerError as e:
            return JSONResponse(
                {"data": None, "code": e.code, "message": e.message, "success": False, "headers": None},
                status_code=e.status_code,
            )
        body = await request.body()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        body_json = json.loads(body)
        sql: str = body_json.get("sqlText") or ""
        describe_only = bool(body_json.get("describeOnly"))

        try:
            stmt = statements.parse(sql)
        except SqlSyntaxError as e:
            logger.info("rejected: %s: %s", statements.describe_for_log(sql)[:300], e)
            return error_response(f"SQL compilation error: {e}", 1003, "42000")

        if stmt is not None:
            if not describe_only:
                logger.info("emulated: %s", statements.describe_for_log(sql)[:300])
            try:
                result = await self.emulator.execute(conn, stmt, _positional_params(body_json), describe_only)
            except Exception as e:
                message, errno, sqlstate = _error_of(e)
                if not isinstance(e, (CatalogError, snowflake.connector.errors.Error)):
                    logger.exception("emulated statement failed unexpectedly")
                logger.info("failed: %s", message.splitlines()[0] if message else "")
                await run_in_threadpool(recover_transaction, conn)
                return error_response(message, errno, sqlstate)
            return result_response(conn, result)

        if statements.is_sensitive(sql):
            # a statement with a secret value that is not ours: never hand it to fakesnow
            return error_response("SQL compilation error: unsupported statement with a secret value", 1003, "42000")

        rewritten = rewrite(sql)
        if rewritten != sql:
            body_json["sqlText"] = rewritten
            body = json.dumps(body_json).encode()
        reopen = False
        if (brk := transaction_break(rewritten)) and await run_in_threadpool(end_transaction, conn):
            reopen = brk == "reopen"
        holder: list[BaseException] = []
        token = _fakesnow_errors.set(holder)
        try:
            response = await fs.query_request(_request_with_body(request, body))
        except Exception as e:  # noqa: BLE001 - never a 500
            holder.append(e)
            response = JSONResponse({"success": False}, status_code=500)
        finally:
            _fakesnow_errors.reset(token)
            if reopen:
                await run_in_threadpool(begin_transaction, conn)

        if response.status_code == 500:
            cause = holder[-1] if holder else None
            message, errno, sqlstate = (
                _error_of(cause) if cause is not None else ("Internal error in the local Snowflake", 1003, "42000")
            )
            logger.info(
                "failed (unsupported by fakesnow): %s: %s", rewritten[:300], message.splitlines()[0] if message else ""
            )
            await run_in_threadpool(recover_transaction, conn)
            return error_response(f"SQL execution error: {message}", errno, sqlstate)
        if response.status_code == 200:
            try:
                payload = json.loads(bytes(response.body))
            except ValueError:
                payload = {}
            if payload.get("success") is False:
                logger.info("failed: %s: %s", rewritten[:300], str(payload.get("message", "")).splitlines()[:1])
                await run_in_threadpool(recover_transaction, conn)
        return response

    def app(self) -> Starlette:
        routes = [Route(QUERY_PATH, self.query_request, methods=["POST"])]
        routes += [r for r in fs.routes if getattr(r, "path", None) != QUERY_PATH]

        @contextlib.asynccontextmanager
        async def lifespan(_: Starlette) -> AsyncIterator[None]:
            self.pool.start()
            try:
                yield
            finally:
                self.pool.close()

        return Starlette(routes=routes, lifespan=lifespan)


def serve(host: str = "127.0.0.1", port: int = 8085) -> None:
    """Run the local Snowflake until interrupted.

    ATOMIC_LOCAL_SNOWFLAKE_CALL_TIMEOUT: seconds a CALL may run (default 900);
    ATOMIC_LOCAL_SNOWFLAKE_WORKERS: pre-started procedure workers (default 2);
    ATOMIC_LOCAL_SNOWFLAKE_ACCESS_LOG=1: log every HTTP request.
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(message)s")
    logger.setLevel(logging.INFO)
    call_timeout = float(os.environ.get("ATOMIC_LOCAL_SNOWFLAKE_CALL_TIMEOUT", DEFAULT_CALL_TIMEOUT))
    workers = int(os.environ.get("ATOMIC_LOCAL_SNOWFLAKE_WORKERS", DEFAULT_WORKERS))
    server = LocalSnowflake(host, port, call_timeout, workers)
    logger.info("local Snowflake on http://%s:%s (CALL timeout %gs, %d workers)", host, port, call_timeout, workers)
    uvicorn.run(
        server.app(),
        host=host,
        port=port,
        log_level="info",
        access_log=os.environ.get("ATOMIC_LOCAL_SNOWFLAKE_ACCESS_LOG") == "1",
    )
