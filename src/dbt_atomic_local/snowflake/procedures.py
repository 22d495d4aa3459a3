"""CALL: argument binding and the pool of worker processes that run Python handlers."""

from __future__ import annotations

import decimal
import json
import logging
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from dbt_atomic_local.snowflake.catalog import CatalogError, Procedure
from dbt_atomic_local.snowflake.sqltokens import Token

logger = logging.getLogger("dbt_atomic_local.snowflake")


class NotLiteral(Exception):
    """The argument is an expression: the server evaluates it with SQL."""


def literal_value(tokens: list[Token], params: Iterator[Any]) -> Any:
    """Value of a literal argument: 'string', number, NULL, TRUE/FALSE, ?, PARSE_JSON('...')."""
    if len(tokens) == 1:
        tok = tokens[0]
        if tok.kind == "string":
            return tok.value
        if tok.kind == "number":
            return _number(tok.value)
        if tok.kind == "param":
            try:
                return next(params)
            except StopIteration:
                raise CatalogError("Not enough bind values for the CALL's ? placeholders", 2049, "07002") from None
        if tok.is_word("NULL"):
            return None
        if tok.is_word("TRUE", "FALSE"):
            return tok.value == "TRUE"
    if len(tokens) == 2 and tokens[0].is_punct("-") and tokens[1].kind == "number":
        return -_number(tokens[1].value)
    if (
        len(tokens) == 4
        and tokens[0].is_word("PARSE_JSON")
        and tokens[1].is_punct("(")
        and tokens[2].kind in ("string", "param")
        and tokens[3].is_punct(")")
    ):
        text = tokens[2].value if tokens[2].kind == "string" else next(params)
        try:
            return None if text is None else json.loads(text)
        except ValueError:
            raise CatalogError("Error parsing JSON in PARSE_JSON argument", 100069, "22P02") from None
    raise NotLiteral


def _number(text: str) -> int | float:
    return float(text) if any(c in text for c in ".eE") else int(text)


def coerce(value: Any, type_: str, arg: str) -> Any:
    """Convert an argument to the Python type a handler receives for the declared SQL type."""
    if value is None:
        return None
    base = type_.split("(")[0].strip().split(" ")[0]
    if base in ("STRING", "VARCHAR", "TEXT", "CHAR", "CHARACTER", "NCHAR", "NVARCHAR"):
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (dict, list)):
            return json.dumps(value)
        return str(value)
    try:
        if base in ("NUMBER", "NUMERIC", "DECIMAL", "INT", "INTEGER", "BIGINT", "SMALLINT", "TINYINT", "BYTEINT"):
            scale = 0
            if "," in type_:
                scale = int(type_.split(",")[1].strip(" )"))
            # NUMBER without a scale is NUMBER(38, 0): Snowflake rounds half away from zero
            number = decimal.Decimal(str(value)).quantize(decimal.Decimal(1).scaleb(-scale), decimal.ROUND_HALF_UP)
            return int(number) if scale == 0 else float(number)
        if base in ("FLOAT", "FLOAT4", "FLOAT8", "DOUBLE", "REAL"):
            return float(value)
        if base == "BOOLEAN":
            if isinstance(value, str):
                lowered = value.strip().lower()
                if lowered in ("true", "t", "yes", "y", "on", "1"):
                    return True
                if lowered in ("false", "f", "no", "n", "off", "0"):
                    return False
                raise ValueError(value)
            return bool(value)
        if base in ("OBJECT", "ARRAY") and isinstance(value, str):
            return json.loads(value)
    except (ValueError, TypeError, decimal.InvalidOperation):
        raise CatalogError(f"Argument {arg} of type {type_} cannot take the given value", 100038, "22018") from None
    return value


def bind_arguments(
    proc: Procedure,
    args: list[Any],  # statements.CallArg
    params: list[Any] | None,
    evaluate: Callable[[str, list[Any]], Any],
    convert: bool = True,
) -> list[Any]:
    """Match CALL arguments (positional or `name => value`) to the procedure's, fill defaults."""
    param_iter = iter(params or [])
    values: dict[str, Any] = {}
    positional = True
    names = [a.name for a in proc.args]
    for index, call_arg in enumerate(args):
        if call_arg.name is not None:
            positional = False
            if call_arg.name not in names:
                raise CatalogError(f"Procedure {proc.key[2]} has no argument {call_arg.name}", 1044, "42P13")
            target = call_arg.name
        else:
            if not positional:
                raise CatalogError("Positional arguments cannot follow named arguments", 1044, "42P13")
            if index >= len(names):
                raise _signature_error(proc, len(args))
            target = names[index]
        values[target] = _value(call_arg.tokens, call_arg.sql, param_iter, evaluate)
    out = []
    for arg in proc.args:
        if arg.name in values:
            value = values[arg.name]
        elif arg.default_sql is not None:
            value = _value(arg.default_tokens, arg.default_sql, iter(()), evaluate)
        else:
            raise _signature_error(proc, len(args))
        out.append(coerce(value, arg.type, arg.name) if convert else value)
    return out


def _value(tokens: list[Token], sql: str, params: Iterator[Any], evaluate: Callable[[str, list[Any]], Any]) -> Any:
    try:
        return literal_value(tokens, params)
    except NotLiteral:
        bound = [next(params, None) for t in tokens if t.kind == "param"]
        return evaluate(sql, bound)


def _signature_error(proc: Procedure, given: int) -> CatalogError:
    return CatalogError(
        f"SQL compilation error: Invalid argument types for procedure '{proc.key[2]}' called with {given} "
        f"argument(s); it takes {proc.arg_types}",
        1044,
        "42P13",
    )


# ---------------------------------------------------------------- worker pool


@dataclass
class Worker:
    process: subprocess.Popen
    conn: Connection
    started: float

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            logger.warning("worker %s did not exit after kill", self.process.pid)
        self.conn.close()


class WorkerPool:
    """Keeps `size` worker processes started, each used for exactly one CALL."""

    def __init__(self, size: int = 2, ready_timeout: float = 60):
        self.size = max(1, size)
        self.ready_timeout = ready_timeout
        self.ready: queue.Queue[Worker] = queue.Queue()
        self.lock = threading.Lock()
        self.closed = False

    def start(self) -> None:
        for _ in range(self.size):
            self._spawn_async()

    def _spawn_async(self) -> None:
        threading.Thread(target=self._spawn_ready, daemon=True, name="worker-spawn").start()

    def _spawn_ready(self) -> None:
        try:
            worker = self._spawn()
            if not worker.conn.poll(self.ready_timeout):
                raise RuntimeError("worker did not become ready in time")
            message = json.loads(worker.conn.recv_bytes())
            if not message.get("ready"):
                raise RuntimeError(f"unexpected worker message {message}")
        except Exception as e:  # noqa: BLE001 - a broken spawn is logged; acquire() waits for another
            logger.error("starting a procedure worker failed: %s", e)
            time.sleep(1)
            if not self.closed:
                self._spawn_async()
            return
        if self.closed:
            worker.kill()
        else:
            self.ready.put(worker)

    def _spawn(self) -> Worker:
        parent, child = socket.socketpair()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("FAKESNOW_DEBUG", None)
        process = subprocess.Popen(
            [sys.executable, "-m", "dbt_atomic_local.snowflake.worker", str(child.fileno())],
            pass_fds=[child.fileno()],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
        )
        child.close()
        conn = Connection(parent.detach())
        threading.Thread(target=self._forward_output, args=(process,), daemon=True, name="worker-log").start()
        return Worker(process, conn, time.monotonic())

    @staticmethod
    def _forward_output(process: subprocess.Popen) -> None:
        assert process.stdout is not None
        for line in iter(process.stdout.readline, b""):
            logger.info("[procedure worker %s] %s", process.pid, line.decode(errors="replace").rstrip())
        process.stdout.close()

    def acquire(self, timeout: float) -> Worker:
        """A ready worker; a replacement starts right away."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CatalogError("No procedure worker became available in time", 100357, "P0001")
            try:
                worker = self.ready.get(timeout=remaining)
            except queue.Empty:
                continue
            self._spawn_async()
            if worker.process.poll() is None:
                return worker
            logger.warning("procedure worker %s had exited; using another", worker.process.pid)

    def run(self, job: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Run one job in a fresh worker; kill it on timeout."""
        worker = self.acquire(timeout=60)
        try:
            worker.conn.send_bytes(json.dumps(job).encode())
            if not worker.conn.poll(timeout):
                logger.warning(
                    "procedure %s timed out after %ss; killing worker %s", job["name"], timeout, worker.process.pid
                )
                return {
                    "ok": False,
                    "error": f"Procedure {job['name']} timed out after {timeout:g} seconds and was cancelled",
                }
            try:
                return json.loads(worker.conn.recv_bytes())
            except EOFError:
                code = worker.process.wait(timeout=5)
                return {"ok": False, "error": f"The procedure's worker process exited with code {code}"}
        finally:
            try:
                worker.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            worker.kill()

    def close(self) -> None:
        self.closed = True
        while True:
            try:
                self.ready.get_nowait().kill()
            except queue.Empty:
                break
