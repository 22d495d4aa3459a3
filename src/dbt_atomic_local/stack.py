"""Start and stop the local servers as child processes (tests, demo, scripts)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(host: str, port: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    """Wait until host:port accepts connections; fail early if proc exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


@dataclass
class Server:
    kind: str
    host: str
    port: int
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self, timeout: float = 10) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)


def start(
    kind: str,
    port: int | None = None,
    host: str = "127.0.0.1",
    extra_args: list[str] | None = None,
    log_path: str | None = None,
    startup_timeout: float = 60,
) -> Server:
    """Start `atomic-local <kind>` ("snowflake" or "atomic") and wait until it listens."""
    port = port or free_port()
    cmd = [sys.executable, "-m", "dbt_atomic_local", kind, "--host", host, "--port", str(port)]
    cmd += extra_args or []
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=os.environ.copy())
    if log_path:
        out.close()
    try:
        wait_for_port(host, port, startup_timeout, proc)
    except Exception:
        proc.kill()
        raise
    return Server(kind=kind, host=host, port=port, process=proc)


@contextlib.contextmanager
def running(kind: str, **kwargs) -> Iterator[Server]:
    server = start(kind, **kwargs)
    try:
        yield server
    finally:
        server.stop()


def connect_snowflake(port: int, database: str, schema: str, host: str = "127.0.0.1", **options):
    """A Snowflake connector connection to the local Snowflake, always with timeouts."""
    import snowflake.connector

    settings = {
        "host": host,
        "port": port,
        "protocol": "http",
        "account": "fakesnow",
        "user": "local",
        "password": "local",  # the local Snowflake accepts any user and password
        "database": database,
        "schema": schema,
        "login_timeout": 30,
        "network_timeout": 120,
        **options,
    }
    return snowflake.connector.connect(**settings)
