"""The objects fakesnow does not have: network rules, secrets, integrations, procedures,
alerts, tasks and grants. In memory, shared by every session of the server."""

from __future__ import annotations

import datetime
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from dbt_atomic_local.snowflake.sqltokens import Ident

# (database, schema, name) for schema objects; ("", "", name) for account objects
Key = tuple[str, str, str]


class CatalogError(Exception):
    """A statement that Snowflake would reject; the message is safe to show and log."""

    def __init__(self, message: str, errno: int = 2003, sqlstate: str = "02000"):
        super().__init__(message)
        self.message = message
        self.errno = errno
        self.sqlstate = sqlstate


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f %z")


def normal(ident: Ident) -> str:
    return ident.normal


def resolve(name: tuple[Ident, ...], database: str | None, schema: str | None, what: str) -> Key:
    """Resolve a schema object's name against the session's current database and schema."""
    parts = [normal(i) for i in name]
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    if len(parts) == 2:
        if not database:
            raise CatalogError(
                f"Cannot perform {what}. This session does not have a current database. "
                "Call 'USE DATABASE', or use a qualified name.",
                errno=90105,
                sqlstate="22000",
            )
        return database, parts[0], parts[1]
    if not database or not schema:
        raise CatalogError(
            f"Cannot perform {what}. This session does not have a current database or schema. "
            "Call 'USE SCHEMA', or use a qualified name.",
            errno=90106,
            sqlstate="22000",
        )
    return database, schema, parts[0]


def resolve_account(name: tuple[Ident, ...]) -> Key:
    if len(name) != 1:
        raise CatalogError("Account objects such as integrations have unqualified names.", errno=2003)
    return "", "", normal(name[0])


def qualified(key: Key) -> str:
    return ".".join(p for p in key if p)


def like_match(pattern: str | None, value: str) -> bool:
    """SHOW ... LIKE: SQL wildcards, case-insensitive."""
    if pattern is None:
        return True
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE | re.DOTALL) is not None


@dataclass
class NetworkRule:
    key: Key
    mode: str
    type: str
    values: list[str]
    comment: str | None
    created_on: str = field(default_factory=now)

    def host_ports(self) -> list[tuple[str, int]]:
        """VALUE_LIST entries as (host, port); a host without a port means 443."""
        out = []
        for value in self.values:
            host, _, port = value.strip().rpartition(":") if ":" in value else (value.strip(), "", "443")
            out.append((host.lower(), int(port)))
        return out


@dataclass
class Secret:
    key: Key
    type: str
    # never shown by SHOW or DESCRIBE, never logged
    secret_string: str | None = field(default=None, repr=False)
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    comment: str | None = None
    created_on: str = field(default_factory=now)


@dataclass
class Integration:
    key: Key
    network_rules: list[Key]
    secrets: list[Key]
    enabled: bool
    comment: str | None
    created_on: str = field(default_factory=now)


@dataclass
class Argument:
    name: str
    type: str
    default_sql: str | None
    default_tokens: Any = None


@dataclass
class Procedure:
    key: Key
    args: list[Argument]
    returns: str
    language: str
    runtime_version: str | None
    packages: list[str]
    imports: list[str]
    handler: str
    integrations: list[Key]
    secrets: dict[str, Key]  # alias -> secret
    execute_as: str
    comment: str | None
    body: str
    created_on: str = field(default_factory=now)

    @property
    def signature(self) -> str:
        return "(" + ", ".join(f"{a.name} {a.type}" for a in self.args) + ")"

    @property
    def arg_types(self) -> str:
        return "(" + ", ".join(a.type for a in self.args) + ")"


@dataclass
class Runnable:
    """An alert or a task, and the outcome of its last execution."""

    kind: str  # ALERT or TASK
    key: Key
    props: dict[str, Any]
    condition: str | None  # alert: the query; task: the WHEN expression
    action: str  # alert: the THEN statement; task: the AS statement
    after: list[Key] = field(default_factory=list)
    state: str = "suspended"
    created_on: str = field(default_factory=now)
    last_run_at: str | None = None
    last_run_state: str | None = None  # SUCCEEDED, FAILED, CONDITION_FALSE, SKIPPED
    last_run_message: str | None = None
    run_count: int = 0


@dataclass
class GrantRecord:
    privilege: str
    granted_on: str
    name: str
    granted_to: str
    grantee_name: str
    grant_option: bool
    created_on: str = field(default_factory=now)


class Catalog:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.network_rules: dict[Key, NetworkRule] = {}
        self.secrets: dict[Key, Secret] = {}
        self.integrations: dict[Key, Integration] = {}
        self.procedures: dict[Key, Procedure] = {}
        self.alerts: dict[Key, Runnable] = {}
        self.tasks: dict[Key, Runnable] = {}
        self.grants: list[GrantRecord] = []

    def table(self, kind: str) -> dict[Key, Any]:
        return {
            "NETWORK RULE": self.network_rules,
            "SECRET": self.secrets,
            "INTEGRATION": self.integrations,
            "PROCEDURE": self.procedures,
            "ALERT": self.alerts,
            "TASK": self.tasks,
        }[kind]

    def get(self, kind: str, key: Key) -> Any:
        obj = self.table(kind).get(key)
        if obj is None:
            raise CatalogError(f"{kind.title()} '{qualified(key)}' does not exist or not authorized.")
        return obj

    def put(self, kind: str, obj: Any, or_replace: bool, if_not_exists: bool) -> str:
        """Store obj; return the status message Snowflake would give."""
        with self.lock:
            table = self.table(kind)
            label = kind.title().replace("Integration", "Integration")
            name = obj.key[2]
            if obj.key in table:
                if if_not_exists:
                    return f"{name} already exists, statement succeeded."
                if not or_replace:
                    raise CatalogError(f"Object '{name}' already exists.", errno=2002, sqlstate="42710")
            table[obj.key] = obj
            return f"{label} {name} successfully created."

    def drop(self, kind: str, key: Key, if_exists: bool) -> str:
        with self.lock:
            table = self.table(kind)
            if key not in table:
                if if_exists:
                    return "Drop statement executed successfully (object does not exist)."
                raise CatalogError(f"{kind.title()} '{qualified(key)}' does not exist or not authorized.")
            del table[key]
            return f"{key[2]} successfully dropped."

    def in_scope(self, key: Key, scope: str | None, scope_key: tuple[str, ...] | None) -> bool:
        if scope in (None, "ACCOUNT") or not key[0]:
            return True
        if scope == "DATABASE":
            return scope_key is None or key[0] == scope_key[0]
        return scope_key is None or (key[0], key[1]) == scope_key

    def add_grant(self, record: GrantRecord) -> None:
        with self.lock:
            for g in self.grants:
                if (g.privilege, g.granted_on, g.name, g.granted_to, g.grantee_name) == (
                    record.privilege,
                    record.granted_on,
                    record.name,
                    record.granted_to,
                    record.grantee_name,
                ):
                    g.grant_option = g.grant_option or record.grant_option
                    return
            self.grants.append(record)

    def revoke(self, privilege: str, granted_on: str, name: str, granted_to: str, grantee: str) -> None:
        with self.lock:
            self.grants = [
                g
                for g in self.grants
                if not (
                    (privilege in ("ALL", "ALL PRIVILEGES") or g.privilege == privilege)
                    and g.granted_on == granted_on
                    and g.name == name
                    and g.granted_to == granted_to
                    and g.grantee_name == grantee
                )
            ]
