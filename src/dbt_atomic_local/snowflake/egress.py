"""Egress control for a procedure's worker process.

An audit hook (`sys.addaudithook`) checks every `socket.getaddrinfo` and `socket.connect`
against the host:port pairs of the procedure's network rules, plus the local Snowflake
server itself (the Snowpark session's connection back). Anything else fails inside the
handler with `EgressDenied`, an `OSError`, so HTTP clients report it as a connection error.
Audit hooks cannot be removed: a worker process runs one CALL and exits.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import sys


class EgressDenied(PermissionError):
    def __init__(self, host: str, port: object):
        super().__init__(
            errno.EACCES,
            f"Egress to host '{host}' port {port} is not allowed: no network rule of this "
            "procedure's external access integrations permits it",
        )
        self.host = host
        self.port = port


_SERVICES = {"http": 80, "https": 443}


def _port(port: object) -> int | None:
    if port is None:
        return None
    if isinstance(port, bytes):
        port = port.decode()
    if isinstance(port, str):
        if port.isdigit():
            return int(port)
        return _SERVICES.get(port.lower())
    if isinstance(port, int):
        return port
    return None


def _host(host: object) -> str:
    if isinstance(host, bytes):
        host = host.decode()
    return str(host).strip("[]").lower()


class EgressGuard:
    def __init__(self, allowed: list[tuple[str, int]], always: list[tuple[str, int]]):
        self.names: set[tuple[str, int]] = set()
        self.addresses: set[tuple[str, int]] = set()
        for host, port in [*allowed, *always]:
            self.names.add((_host(host), port))
            self.addresses.add((_host(host), port))
            # resolve now: the hook must not resolve names itself. Unknown hosts (offline) just
            # stay unresolved; connecting to them then fails on its own.
            with contextlib.suppress(OSError, UnicodeError):
                for info in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP):
                    self.addresses.add((_host(info[4][0]), port))
        self.hosts = {h for h, _ in self.names}

    def check_name(self, host: object, port: object) -> None:
        if host is None:
            return
        h, p = _host(host), _port(port)
        if p is None:
            if h in self.hosts:
                return
        elif (h, p) in self.names or (h, p) in self.addresses:
            return
        raise EgressDenied(h, port if p is None else p)

    def check_address(self, address: object) -> None:
        if not isinstance(address, tuple) or len(address) < 2:
            return  # unix sockets and the like
        h, p = _host(address[0]), _port(address[1])
        if p is not None and (h, p) in self.addresses:
            return
        # an IPv4-mapped IPv6 address
        if h.startswith("::ffff:") and p is not None and (h[7:], p) in self.addresses:
            return
        raise EgressDenied(h, address[1])

    def hook(self, event: str, args: tuple) -> None:
        if event == "socket.getaddrinfo":
            self.check_name(args[0], args[1])
        elif event == "socket.connect":
            sock, address = args
            if getattr(sock, "family", None) in (socket.AF_INET, socket.AF_INET6):
                self.check_address(address)

    def install(self) -> None:
        sys.addaudithook(self.hook)
