"""Runs the emulated statements (see statements.py) against the catalog and fakesnow."""

from __future__ import annotations

import datetime
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool

from dbt_atomic_local.snowflake import statements as st
from dbt_atomic_local.snowflake.catalog import (
    Argument,
    Catalog,
    CatalogError,
    GrantRecord,
    Integration,
    Key,
    NetworkRule,
    Procedure,
    Runnable,
    Secret,
    like_match,
    qualified,
    resolve,
    resolve_account,
)
from dbt_atomic_local.snowflake.procedures import WorkerPool, bind_arguments
from dbt_atomic_local.snowflake.sqltokens import Ident

logger = logging.getLogger("dbt_atomic_local.snowflake")

SELECT = 0x1000
SHOW = 0x4000 + 0x400
DESCRIBE = 0x4000 + 0x500
DDL = 0x6000
CALL_TYPE = 0x6000 + 0x100

TEXT = "text"
FIXED = "fixed"
BOOLEAN = "boolean"
VARIANT = "variant"
REAL = "real"


@dataclass
class Result:
    columns: list[tuple[str, str]]  # (name, Snowflake result type)
    rows: list[list[Any]] = field(default_factory=list)
    statement_type: int = SELECT
    scales: dict[str, int] = field(default_factory=dict)


def status(message: str) -> Result:
    return Result([("status", TEXT)], [[message]], DDL)


SHOW_COLUMNS: dict[str, list[str]] = {
    "NETWORK RULES": [
        "created_on",
        "name",
        "database_name",
        "schema_name",
        "owner",
        "comment",
        "type",
        "mode",
        "entries_in_valuelist",
        "owner_role_type",
    ],
    "SECRETS": [
        "created_on",
        "name",
        "schema_name",
        "database_name",
        "owner",
        "comment",
        "secret_type",
        "oauth_scopes",
        "owner_role_type",
    ],
    "INTEGRATIONS": ["name", "type", "category", "enabled", "comment", "created_on"],
    "PROCEDURES": [
        "created_on",
        "name",
        "schema_name",
        "is_builtin",
        "is_aggregate",
        "is_ansi",
        "min_num_arguments",
        "max_num_arguments",
        "arguments",
        "description",
        "catalog_name",
        "is_table_function",
        "valid_for_clustering",
        "is_secure",
        "secrets",
        "external_access_integrations",
    ],
    "ALERTS": [
        "created_on",
        "name",
        "database_name",
        "schema_name",
        "owner",
        "comment",
        "warehouse",
        "schedule",
        "state",
        "condition",
        "action",
        "last_run_at",
        "last_run_state",
        "last_run_message",
        "run_count",
    ],
    "TASKS": [
        "created_on",
        "name",
        "id",
        "database_name",
        "schema_name",
        "owner",
        "comment",
        "warehouse",
        "schedule",
        "predecessors",
        "state",
        "definition",
        "condition",
        "last_run_at",
        "last_run_state",
        "last_run_message",
        "run_count",
    ],
}
SHOW_COLUMNS["EXTERNAL ACCESS INTEGRATIONS"] = SHOW_COLUMNS["INTEGRATIONS"]
GRANT_COLUMNS = [
    "created_on",
    "privilege",
    "granted_on",
    "name",
    "granted_to",
    "grantee_name",
    "grant_option",
    "granted_by",
]
OWNER = "ACCOUNTADMIN"

# grant kinds whose names have three parts, and how SHOW GRANTS spells them
_SCHEMA_OBJECT_KINDS = {
    "",
    "TABLE",
    "VIEW",
    "SECRET",
    "NETWORK RULE",
    "PROCEDURE",
    "FUNCTION",
    "TASK",
    "ALERT",
    "STAGE",
    "SEQUENCE",
    "STREAM",
    "PIPE",
    "FILE FORMAT",
    "DYNAMIC TABLE",
    "EXTERNAL TABLE",
    "MATERIALIZED VIEW",
    "ICEBERG TABLE",
}
_EMULATED_KINDS = {"SECRET", "NETWORK RULE", "INTEGRATION", "PROCEDURE", "ALERT", "TASK"}


def _text_of(value: Any) -> str:
    if isinstance(value, tuple):
        return ".".join(i.normal for i in value)
    if isinstance(value, list):
        return ", ".join(_text_of(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _bool(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    text = _text_of(value).upper()
    if text in ("TRUE", "FALSE"):
        return text == "TRUE"
    raise CatalogError(f"{what} must be TRUE or FALSE", 1008, "22023")


def _string(props: dict[str, Any], key: str, what: str, required: bool = True) -> str | None:
    value = props.get(key)
    if value is None:
        if required:
            raise CatalogError(f"{what} requires {key}", 1008, "22023")
        return None
    if not isinstance(value, str):
        raise CatalogError(f"{key} must be a string literal", 1008, "22023")
    return value


class Session:
    """What an emulated statement needs from the caller: its fakesnow connection."""

    def __init__(self, conn: Any):
        self.conn = conn

    @property
    def database(self) -> str | None:
        return self.conn.database

    @property
    def schema(self) -> str | None:
        return self.conn.schema


Executor = Callable[[Any, str, list[Any] | None], Awaitable[Result]]


class Emulator:
    def __init__(
        self,
        catalog: Catalog,
        pool: WorkerPool,
        server_host: str,
        server_port: int,
        call_timeout: float,
        connect: Callable[[str | None, str | None], Any],
    ):
        self.catalog = catalog
        self.pool = pool
        self.server_host = server_host
        self.server_port = server_port
        self.call_timeout = call_timeout
        self.connect = connect  # opens a new fakesnow connection (for alerts and tasks)
        # runs any SQL on a connection, emulated or not; set by the server
        self.execute_sql: Executor | None = None

    # ------------------------------------------------------------ dispatch

    async def execute(
        self, conn: Any, stmt: st.Statement, params: list[Any] | None, describe_only: bool = False
    ) -> Result:
        s = Session(conn)
        if describe_only:
            return self.describe_result(s, stmt)
        if isinstance(stmt, st.CreateObject):
            return self.create_object(s, stmt)
        if isinstance(stmt, st.AlterObject):
            return self.alter_object(s, stmt)
        if isinstance(stmt, st.DropObject):
            return self.drop_object(s, stmt)
        if isinstance(stmt, st.ShowObjects):
            return self.show(s, stmt)
        if isinstance(stmt, st.ShowGrants):
            return self.show_grants(s, stmt)
        if isinstance(stmt, st.DescribeObject):
            return self.describe(s, stmt)
        if isinstance(stmt, st.CreateProcedure):
            return self.create_procedure(s, stmt)
        if isinstance(stmt, st.Call):
            return await self.call(s, stmt, params)
        if isinstance(stmt, (st.CreateAlert, st.CreateTask)):
            return self.create_runnable(s, stmt)
        if isinstance(stmt, st.Execute):
            return await self.execute_runnable(s, stmt)
        if isinstance(stmt, st.Grant):
            return self.grant(s, stmt)
        raise CatalogError(f"unsupported statement {type(stmt).__name__}")

    def describe_result(self, s: Session, stmt: st.Statement) -> Result:
        """The result columns of stmt without running it (describeOnly requests)."""
        if isinstance(stmt, st.ShowObjects):
            return Result([(c, TEXT) for c in SHOW_COLUMNS[stmt.kind]], [], SHOW)
        if isinstance(stmt, st.ShowGrants):
            return Result([(c, TEXT) for c in GRANT_COLUMNS], [], SHOW)
        if isinstance(stmt, st.DescribeObject):
            return Result(self.describe(s, stmt).columns, [], DESCRIBE)
        if isinstance(stmt, st.Call):
            proc = self.catalog.get("PROCEDURE", resolve(stmt.name, s.database, s.schema, "CALL"))
            result = self._call_result(proc, None)
            result.rows = []
            return result
        return Result([("status", TEXT)], [], DDL)

    # ------------------------------------------------------------ network rules, secrets, integrations

    def create_object(self, s: Session, stmt: st.CreateObject) -> Result:
        what = f"CREATE {stmt.kind}"
        props = stmt.props
        if stmt.kind == "NETWORK RULE":
            key = resolve(stmt.name, s.database, s.schema, what)
            obj: Any = self._network_rule(key, props)
        elif stmt.kind == "SECRET":
            key = resolve(stmt.name, s.database, s.schema, what)
            obj = self._secret(key, props)
        else:
            key = resolve_account(stmt.name)
            obj = self._integration(s, key, props)
        return status(self.catalog.put(stmt.kind, obj, stmt.or_replace, stmt.if_not_exists))

    def _network_rule(self, key: Key, props: dict[str, Any]) -> NetworkRule:
        mode = _text_of(props.get("MODE", "INGRESS")).upper()
        type_ = _text_of(props.get("TYPE", "")).upper()
        values = props.get("VALUE_LIST")
        if mode != "EGRESS" or type_ != "HOST_PORT":
            raise CatalogError("Only MODE = EGRESS TYPE = HOST_PORT network rules are emulated", 1008, "22023")
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise CatalogError("VALUE_LIST must be a list of 'host[:port]' strings", 1008, "22023")
        rule = NetworkRule(key, mode, type_, list(values), _string(props, "COMMENT", "", required=False))
        for value in values:
            host, _, port = value.rpartition(":")
            if "*" in value or (":" in value and not port.isdigit()) or (":" in value and not host):
                raise CatalogError(f"Invalid network rule value '{value}': expected host or host:port", 1008, "22023")
        return rule

    def _secret(self, key: Key, props: dict[str, Any]) -> Secret:
        type_ = _text_of(props.get("TYPE", "")).upper()
        comment = _string(props, "COMMENT", "", required=False)
        if type_ == "GENERIC_STRING":
            return Secret(
                key, type_, secret_string=_string(props, "SECRET_STRING", "A GENERIC_STRING secret"), comment=comment
            )
        if type_ == "PASSWORD":
            return Secret(
                key,
                type_,
                username=_string(props, "USERNAME", "A PASSWORD secret"),
                password=_string(props, "PASSWORD", "A PASSWORD secret"),
                comment=comment,
            )
        raise CatalogError("Only TYPE = GENERIC_STRING and TYPE = PASSWORD secrets are emulated", 1008, "22023")

    def _names(self, s: Session, value: Any, what: str) -> list[tuple[Ident, ...]]:
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, tuple) for v in value):
            raise CatalogError(f"{what} must be a list of names", 1008, "22023")
        return value

    def _integration(self, s: Session, key: Key, props: dict[str, Any]) -> Integration:
        rules = [
            resolve(n, s.database, s.schema, "CREATE EXTERNAL ACCESS INTEGRATION")
            for n in self._names(s, props.get("ALLOWED_NETWORK_RULES"), "ALLOWED_NETWORK_RULES")
        ]
        secrets = [
            resolve(n, s.database, s.schema, "CREATE EXTERNAL ACCESS INTEGRATION")
            for n in self._names(s, props.get("ALLOWED_AUTHENTICATION_SECRETS"), "ALLOWED_AUTHENTICATION_SECRETS")
        ]
        if "ENABLED" not in props:
            raise CatalogError("CREATE EXTERNAL ACCESS INTEGRATION requires ENABLED", 1008, "22023")
        for rule in rules:
            self.catalog.get("NETWORK RULE", rule)
        for secret in secrets:
            self.catalog.get("SECRET", secret)
        return Integration(
            key, rules, secrets, _bool(props["ENABLED"], "ENABLED"), _string(props, "COMMENT", "", False)
        )

    def alter_object(self, s: Session, stmt: st.AlterObject) -> Result:
        kind = stmt.kind
        key = (
            resolve_account(stmt.name)
            if kind == "INTEGRATION"
            else resolve(stmt.name, s.database, s.schema, f"ALTER {kind}")
        )
        with self.catalog.lock:
            obj = self.catalog.table(kind).get(key)
            if obj is None:
                if stmt.if_exists:
                    return status("Statement executed successfully.")
                self.catalog.get(kind, key)
            if stmt.action in ("RESUME", "SUSPEND"):
                obj.state = "started" if stmt.action == "RESUME" else "suspended"
                return status("Statement executed successfully.")
            if stmt.action == "UNSET":
                for prop in stmt.unset:
                    if prop == "COMMENT":
                        obj.comment = None
                return status("Statement executed successfully.")
            props = stmt.props
            if kind == "SECRET":
                if "SECRET_STRING" in props:
                    if obj.type != "GENERIC_STRING":
                        raise CatalogError("SECRET_STRING applies to GENERIC_STRING secrets only", 1008, "22023")
                    obj.secret_string = _string(props, "SECRET_STRING", "")
                if "USERNAME" in props or "PASSWORD" in props:
                    if obj.type != "PASSWORD":
                        raise CatalogError("USERNAME and PASSWORD apply to PASSWORD secrets only", 1008, "22023")
                    if "USERNAME" in props:
                        obj.username = _string(props, "USERNAME", "")
                    if "PASSWORD" in props:
                        obj.password = _string(props, "PASSWORD", "")
            elif kind == "NETWORK RULE":
                if "VALUE_LIST" in props:
                    obj.values = self._network_rule(key, {**props, "MODE": obj.mode, "TYPE": obj.type}).values
            elif kind == "INTEGRATION":
                merged = {
                    "ALLOWED_NETWORK_RULES": None,
                    "ALLOWED_AUTHENTICATION_SECRETS": None,
                    "ENABLED": obj.enabled,
                    **props,
                }
                new = self._integration(s, key, merged)
                if "ALLOWED_NETWORK_RULES" in props:
                    obj.network_rules = new.network_rules
                if "ALLOWED_AUTHENTICATION_SECRETS" in props:
                    obj.secrets = new.secrets
                obj.enabled = new.enabled
            elif kind in ("ALERT", "TASK"):
                obj.props.update({k: v for k, v in props.items()})
            if "COMMENT" in props and hasattr(obj, "comment"):
                obj.comment = _string(props, "COMMENT", "")
        return status("Statement executed successfully.")

    def drop_object(self, s: Session, stmt: st.DropObject) -> Result:
        key = (
            resolve_account(stmt.name)
            if stmt.kind == "INTEGRATION"
            else resolve(stmt.name, s.database, s.schema, f"DROP {stmt.kind}")
        )
        return status(self.catalog.drop(stmt.kind, key, stmt.if_exists))

    # ------------------------------------------------------------ SHOW / DESCRIBE

    def show(self, s: Session, stmt: st.ShowObjects) -> Result:
        scope, scope_key = stmt.scope, None
        if scope is None:
            scope, scope_key = ("DATABASE", (s.database,)) if s.database else ("ACCOUNT", None)
        elif scope == "DATABASE":
            scope_key = (stmt.scope_name[0].normal,) if stmt.scope_name else (s.database,)
        elif scope == "SCHEMA":
            if stmt.scope_name:
                parts = [i.normal for i in stmt.scope_name]
                scope_key = tuple(parts) if len(parts) == 2 else (s.database, parts[0])
            else:
                scope_key = (s.database, s.schema)
        kind = stmt.kind
        table: dict[Key, Any] = {
            "NETWORK RULES": self.catalog.network_rules,
            "SECRETS": self.catalog.secrets,
            "INTEGRATIONS": self.catalog.integrations,
            "EXTERNAL ACCESS INTEGRATIONS": self.catalog.integrations,
            "PROCEDURES": self.catalog.procedures,
            "ALERTS": self.catalog.alerts,
            "TASKS": self.catalog.tasks,
        }[kind]
        with self.catalog.lock:
            objs = [
                o
                for k, o in sorted(table.items())
                if self.catalog.in_scope(k, scope, scope_key)
                and like_match(stmt.like, k[2])
                and (stmt.starts_with is None or k[2].startswith(stmt.starts_with))
            ]
            rows = [self._show_row(kind, o) for o in objs]
        if stmt.limit is not None:
            rows = rows[: stmt.limit]
        columns = SHOW_COLUMNS[kind]
        return Result(
            [
                (
                    c,
                    FIXED
                    if c in ("entries_in_valuelist", "min_num_arguments", "max_num_arguments", "run_count")
                    else TEXT,
                )
                for c in columns
            ],
            rows,
            SHOW,
        )

    def _show_row(self, kind: str, o: Any) -> list[Any]:
        db, schema, name = o.key
        if kind == "NETWORK RULES":
            return [o.created_on, name, db, schema, OWNER, o.comment, o.type, o.mode, len(o.values), "ROLE"]
        if kind == "SECRETS":
            return [o.created_on, name, schema, db, OWNER, o.comment, o.type, None, "ROLE"]
        if kind in ("INTEGRATIONS", "EXTERNAL ACCESS INTEGRATIONS"):
            return [name, "EXTERNAL_ACCESS", "SECURITY", "true" if o.enabled else "false", o.comment, o.created_on]
        if kind == "PROCEDURES":
            required = sum(1 for a in o.args if a.default_sql is None)
            return [
                o.created_on,
                name,
                schema,
                "N",
                "N",
                "N",
                required,
                len(o.args),
                f"{name}{o.arg_types} RETURN {o.returns}",
                o.comment or "user-defined procedure",
                db,
                "N",
                "N",
                "N",
                json.dumps({alias: qualified(k) for alias, k in o.secrets.items()}) if o.secrets else None,
                "[" + ", ".join(qualified(k) for k in o.integrations) + "]" if o.integrations else None,
            ]
        r: Runnable = o
        common_tail = [r.last_run_at, r.last_run_state, r.last_run_message, r.run_count]
        if kind == "ALERTS":
            return [
                r.created_on,
                name,
                db,
                schema,
                OWNER,
                _text_of(r.props.get("COMMENT", "")) or None,
                _text_of(r.props.get("WAREHOUSE", "")) or None,
                _text_of(r.props.get("SCHEDULE", "")) or None,
                r.state,
                f"SELECT 1 WHERE EXISTS ({r.condition})",
                r.action,
                *common_tail,
            ]
        return [
            r.created_on,
            name,
            str(uuid.uuid5(uuid.NAMESPACE_OID, qualified(r.key))),
            db,
            schema,
            OWNER,
            _text_of(r.props.get("COMMENT", "")) or None,
            _text_of(r.props.get("WAREHOUSE", "")) or None,
            _text_of(r.props.get("SCHEDULE", "")) or None,
            json.dumps([qualified(k) for k in r.after]),
            r.state,
            r.action,
            r.condition,
            *common_tail,
        ]

    def describe(self, s: Session, stmt: st.DescribeObject) -> Result:
        kind = stmt.kind
        key = (
            resolve_account(stmt.name)
            if kind == "INTEGRATION"
            else resolve(stmt.name, s.database, s.schema, f"DESCRIBE {kind}")
        )
        obj = self.catalog.get(kind, key)
        if kind == "SECRET":
            # never the value: not SECRET_STRING, not USERNAME, not PASSWORD
            columns = [
                "created_on",
                "name",
                "schema_name",
                "database_name",
                "owner",
                "comment",
                "secret_type",
                "username",
                "oauth_access_token_expiry_time",
                "oauth_refresh_token_expiry_time",
                "oauth_scopes",
                "integration_name",
            ]
            row = [obj.created_on, key[2], key[1], key[0], OWNER, obj.comment, obj.type, None, None, None, None, None]
            return Result([(c, TEXT) for c in columns], [row], DESCRIBE)
        if kind == "NETWORK RULE":
            columns = [
                "created_on",
                "name",
                "database_name",
                "schema_name",
                "owner",
                "comment",
                "type",
                "mode",
                "value_list",
            ]
            row = [obj.created_on, key[2], key[0], key[1], OWNER, obj.comment, obj.type, obj.mode, ",".join(obj.values)]
            return Result([(c, TEXT) for c in columns], [row], DESCRIBE)
        if kind == "INTEGRATION":
            props = [
                ["ENABLED", "Boolean", "true" if obj.enabled else "false", "false"],
                ["ALLOWED_NETWORK_RULES", "List", ",".join(qualified(k) for k in obj.network_rules), "[]"],
                ["ALLOWED_AUTHENTICATION_SECRETS", "List", ",".join(qualified(k) for k in obj.secrets), "[]"],
                ["COMMENT", "String", obj.comment or "", ""],
            ]
            columns = ["property", "property_type", "property_value", "property_default"]
            return Result([(c, TEXT) for c in columns], props, DESCRIBE)
        if kind == "PROCEDURE":
            p: Procedure = obj
            rows = [
                ["signature", p.signature],
                ["returns", p.returns],
                ["language", p.language],
                ["null handling", "CALLED ON NULL INPUT"],
                ["volatility", "VOLATILE"],
                ["body", p.body],
                ["imports", "[" + ", ".join(p.imports) + "]"],
                ["handler", p.handler],
                ["runtime_version", p.runtime_version],
                ["packages", "[" + ", ".join(f"'{x}'" for x in p.packages) + "]"],
                ["installed_packages", "[]"],
                ["execute as", p.execute_as],
                ["secrets", json.dumps({alias: qualified(k) for alias, k in p.secrets.items()})],
                ["external_access_integrations", "[" + ", ".join(qualified(k) for k in p.integrations) + "]"],
            ]
            return Result([("property", TEXT), ("value", TEXT)], rows, DESCRIBE)
        plural = "ALERTS" if kind == "ALERT" else "TASKS"
        row = self._show_row(plural, obj)
        return Result([(c, FIXED if c == "run_count" else TEXT) for c in SHOW_COLUMNS[plural]], [row], DESCRIBE)

    # ------------------------------------------------------------ procedures

    def create_procedure(self, s: Session, stmt: st.CreateProcedure) -> Result:
        key = resolve(stmt.name, s.database, s.schema, "CREATE PROCEDURE")
        if stmt.language != "PYTHON":
            raise CatalogError("The local Snowflake runs LANGUAGE PYTHON procedures only", 2, "0A000")
        if not stmt.handler:
            raise CatalogError("A Python procedure requires HANDLER", 1008, "22023")
        if not stmt.runtime_version:
            raise CatalogError("A Python procedure requires RUNTIME_VERSION", 1008, "22023")
        if not any(p.split("==")[0].strip().lower() == "snowflake-snowpark-python" for p in stmt.packages):
            raise CatalogError("A Python procedure requires 'snowflake-snowpark-python' in PACKAGES", 1008, "22023")
        seen_default = False
        for arg in stmt.args:
            if arg.default_sql is not None:
                seen_default = True
            elif seen_default:
                raise CatalogError("Arguments with a DEFAULT must come after those without one", 1008, "22023")
        integrations = [resolve_account(n) for n in stmt.integrations]
        allowed_secrets: set[Key] = set()
        for ikey in integrations:
            allowed_secrets.update(self.catalog.get("INTEGRATION", ikey).secrets)
        secrets: dict[str, Key] = {}
        for pair in stmt.secrets:
            skey = resolve(pair.name, s.database, s.schema, "CREATE PROCEDURE")
            self.catalog.get("SECRET", skey)
            if skey not in allowed_secrets:
                raise CatalogError(
                    f"Secret '{qualified(skey)}' is not allowed by any of the procedure's external access integrations",
                    1008,
                    "22023",
                )
            secrets[pair.key] = skey
        proc = Procedure(
            key=key,
            args=[Argument(a.name, a.type, a.default_sql, a.default_tokens) for a in stmt.args],
            returns=stmt.returns,
            language=stmt.language,
            runtime_version=stmt.runtime_version,
            packages=stmt.packages,
            imports=stmt.imports,
            handler=stmt.handler,
            integrations=integrations,
            secrets=secrets,
            execute_as=stmt.execute_as,
            comment=stmt.comment,
            body=stmt.body,
        )
        message = self.catalog.put("PROCEDURE", proc, stmt.or_replace, stmt.if_not_exists)
        return status(message)

    def _call_result(self, proc: Procedure, value: Any) -> Result:
        name = proc.key[2]
        base = proc.returns.split("(")[0].strip().split(" ")[0]
        if base in ("NUMBER", "NUMERIC", "DECIMAL", "INT", "INTEGER", "BIGINT", "SMALLINT", "TINYINT", "BYTEINT"):
            scale = int(proc.returns.split(",")[1].strip(" )")) if "," in proc.returns else 0
            return Result([(name, FIXED)], [[value]], CALL_TYPE, scales={name: scale})
        if base in ("FLOAT", "FLOAT4", "FLOAT8", "DOUBLE", "REAL"):
            return Result([(name, REAL)], [[value]], CALL_TYPE)
        if base == "BOOLEAN":
            return Result([(name, BOOLEAN)], [[None if value is None else ("TRUE" if value else "FALSE")]], CALL_TYPE)
        if base in ("VARIANT", "OBJECT", "ARRAY"):
            return Result([(name, VARIANT)], [[None if value is None else json.dumps(value)]], CALL_TYPE)
        if value is not None and not isinstance(value, str):
            value = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
        return Result([(name, TEXT)], [[value]], CALL_TYPE)

    async def _evaluate(self, conn: Any, sql: str, params: list[Any]) -> Any:
        assert self.execute_sql is not None
        result = await self.execute_sql(conn, f"select {sql}", params or None)
        return result.rows[0][0] if result.rows else None

    async def call(self, s: Session, stmt: st.Call, params: list[Any] | None) -> Result:
        key = resolve(stmt.name, s.database, s.schema, "CALL")
        proc: Procedure = self.catalog.get("PROCEDURE", key)

        # expressions (not literals) are evaluated by SQL, collected first then bound
        pending: list[tuple[str, list[Any]]] = []

        def collect(sql: str, bound: list[Any]) -> Any:
            pending.append((sql, bound))
            return _Deferred(len(pending) - 1)

        bind_arguments(proc, stmt.args, params, collect, convert=False)
        values = [await self._evaluate(s.conn, sql, bound) for sql, bound in pending]
        args = bind_arguments(proc, stmt.args, params, _Replay(values))

        secrets: dict[str, dict[str, Any]] = {}
        allowed: list[tuple[str, int]] = []
        with self.catalog.lock:
            integrations = [self.catalog.get("INTEGRATION", k) for k in proc.integrations]
            allowed_secrets = {k for i in integrations for k in i.secrets}
            for alias, skey in proc.secrets.items():
                secret: Secret = self.catalog.get("SECRET", skey)
                if skey not in allowed_secrets:
                    raise CatalogError(
                        f"Secret '{qualified(skey)}' is no longer allowed by the procedure's integrations",
                        1008,
                        "22023",
                    )
                if secret.type == "GENERIC_STRING":
                    secrets[alias] = {"type": secret.type, "secret_string": secret.secret_string}
                else:
                    secrets[alias] = {"type": secret.type, "username": secret.username, "password": secret.password}
            for integration in integrations:
                if not integration.enabled:
                    continue
                for rkey in integration.network_rules:
                    rule = self.catalog.network_rules.get(rkey)
                    if rule is not None:
                        allowed.extend(rule.host_ports())
        job = {
            "name": key[2],
            "procedure": qualified(key),
            "handler": proc.handler,
            "body": proc.body,
            "returns": proc.returns,
            "args": args,
            "secrets": secrets,
            "allowed": allowed,
            "server_host": self.server_host,
            "server_port": self.server_port,
            "database": s.database,
            "schema": s.schema,
            "network_timeout": self.call_timeout,
        }
        started = datetime.datetime.now()
        logger.info("CALL %s: starting (%d argument(s))", qualified(key), len(args))
        outcome = await run_in_threadpool(self.pool.run, job, self.call_timeout)
        elapsed = (datetime.datetime.now() - started).total_seconds()
        if not outcome.get("ok"):
            logger.info("CALL %s: failed after %.2fs", qualified(key), elapsed)
            raise CatalogError(outcome.get("error") or "procedure failed", 100357, "P0000")
        logger.info("CALL %s: done in %.2fs", qualified(key), elapsed)
        if "table" in outcome:
            table = outcome["table"]
            return Result(
                [(c, TEXT) for c in table["columns"]], [[_text_value(v) for v in r] for r in table["rows"]], CALL_TYPE
            )
        return self._call_result(proc, outcome.get("value"))

    # ------------------------------------------------------------ alerts and tasks

    def create_runnable(self, s: Session, stmt: st.CreateAlert | st.CreateTask) -> Result:
        kind = "ALERT" if isinstance(stmt, st.CreateAlert) else "TASK"
        key = resolve(stmt.name, s.database, s.schema, f"CREATE {kind}")
        if isinstance(stmt, st.CreateAlert):
            obj = Runnable("ALERT", key, stmt.props, stmt.condition, stmt.action)
        else:
            after = [resolve(n, s.database, s.schema, "CREATE TASK") for n in stmt.after]
            obj = Runnable("TASK", key, stmt.props, stmt.when, stmt.body, after=after)
        return status(self.catalog.put(kind, obj, stmt.or_replace, stmt.if_not_exists))

    async def execute_runnable(self, s: Session, stmt: st.Execute) -> Result:
        """Run an alert or task once, now, in its own session; record the outcome on the object."""
        assert self.execute_sql is not None
        key = resolve(stmt.name, s.database, s.schema, f"EXECUTE {stmt.kind}")
        obj: Runnable = self.catalog.get(stmt.kind, key)
        conn = await run_in_threadpool(self.connect, key[0], key[1])
        state, message = "SUCCEEDED", None
        try:
            run_action = True
            if obj.kind == "ALERT":
                rows = (await self.execute_sql(conn, obj.condition or "select 1", None)).rows
                run_action = bool(rows)
                if not run_action:
                    state = "CONDITION_FALSE"
            elif obj.condition:
                rows = (await self.execute_sql(conn, f"select ({obj.condition})", None)).rows
                run_action = bool(rows and rows[0][0])
                if not run_action:
                    state = "SKIPPED"
            if run_action:
                result = await self.execute_sql(conn, obj.action, None)
                if result.rows and result.rows[0]:
                    message = _text_value(result.rows[0][0])
        except CatalogError as e:
            state, message = "FAILED", e.message
        except Exception as e:  # noqa: BLE001 - the outcome is recorded, as Snowflake does
            state, message = "FAILED", str(getattr(e, "msg", None) or e)
        finally:
            await run_in_threadpool(conn.close)
        with self.catalog.lock:
            obj.last_run_at = datetime.datetime.now(datetime.timezone.utc).isoformat()
            obj.last_run_state = state
            obj.last_run_message = message
            obj.run_count += 1
        logger.info("EXECUTE %s %s: %s", stmt.kind, qualified(key), state)
        return Result(
            [("status", TEXT), ("state", TEXT), ("message", TEXT)],
            [[f"{stmt.kind.title()} {key[2]} executed.", state, message]],
            DDL,
        )

    # ------------------------------------------------------------ grants

    def _grant_target(
        self, s: Session, kind: str, name: tuple[Ident, ...] | None, args: list[str] | None
    ) -> tuple[str, str]:
        """(granted_on, name) as SHOW GRANTS spells them."""
        if kind == "ACCOUNT" or name is None:
            return "ACCOUNT", ""
        granted_on = (kind or "TABLE").replace(" ", "_")
        if kind.startswith(("ALL ", "FUTURE ")):
            parts = [i.normal for i in name]
            if kind.endswith("IN SCHEMA") and len(parts) == 1:
                parts = [s.database or "", parts[0]]
            return kind.replace(" ", "_"), ".".join(parts)
        if kind in _SCHEMA_OBJECT_KINDS:
            key = resolve(name, s.database, s.schema, "GRANT")
            if kind in _EMULATED_KINDS:
                self.catalog.get(kind, key)
            text = qualified(key)
            if kind in ("PROCEDURE", "FUNCTION"):
                if kind == "PROCEDURE":
                    proc = self.catalog.procedures[key]
                    text += proc.arg_types if args is None else "(" + ", ".join(args) + ")"
                else:
                    text += "(" + ", ".join(args or []) + ")"
            return granted_on, text
        if kind == "SCHEMA":
            parts = [i.normal for i in name]
            if len(parts) == 1:
                if not s.database:
                    raise CatalogError("GRANT ON SCHEMA needs a current database or a qualified name", 90105, "22000")
                parts = [s.database, parts[0]]
            return granted_on, ".".join(parts)
        if kind == "INTEGRATION":
            key = resolve_account(name)
            self.catalog.get("INTEGRATION", key)
            return granted_on, key[2]
        return granted_on, ".".join(i.normal for i in name)

    def grant(self, s: Session, stmt: st.Grant) -> Result:
        granted_on, name = self._grant_target(s, stmt.on_kind, stmt.on_name, stmt.on_args)
        for privilege in stmt.privileges:
            for grantee in stmt.grantees:
                if stmt.revoke:
                    self.catalog.revoke(privilege, granted_on, name, stmt.grantee_kind, grantee)
                else:
                    self.catalog.add_grant(
                        GrantRecord(privilege, granted_on, name, stmt.grantee_kind, grantee, stmt.grant_option)
                    )
        return status("Statement executed successfully.")

    def show_grants(self, s: Session, stmt: st.ShowGrants) -> Result:
        with self.catalog.lock:
            records = list(self.catalog.grants)
        if stmt.on_account:
            records = [g for g in records if g.granted_on == "ACCOUNT"]
        elif stmt.on_name is not None:
            kind = stmt.on_kind or ""
            granted_on, name = self._grant_target(s, kind, stmt.on_name, None)
            if kind == "PROCEDURE":
                name = name.split("(")[0]
                records = [g for g in records if g.granted_on == "PROCEDURE" and g.name.split("(")[0] == name]
            elif kind in ("", "TABLE", "VIEW"):
                records = [g for g in records if g.granted_on in ("TABLE", "VIEW") and g.name == name]
            else:
                records = [g for g in records if g.granted_on == granted_on and g.name == name]
        elif stmt.to_name is not None:
            records = [g for g in records if g.granted_to == stmt.to_kind and g.grantee_name == stmt.to_name]
        elif stmt.of_role is not None:
            records = [g for g in records if g.granted_on == "ROLE" and g.name == stmt.of_role]
        rows = [
            [
                g.created_on,
                g.privilege,
                g.granted_on,
                g.name,
                g.granted_to,
                g.grantee_name,
                "true" if g.grant_option else "false",
                OWNER,
            ]
            for g in records
        ]
        return Result([(c, TEXT) for c in GRANT_COLUMNS], rows, SHOW)


def _text_value(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


class _Deferred:
    """Placeholder for an argument that SQL evaluates; never reaches a handler."""

    def __init__(self, index: int):
        self.index = index


class _Replay:
    def __init__(self, values: list[Any]):
        self.values = iter(values)

    def __call__(self, sql: str, bound: list[Any]) -> Any:
        return next(self.values)
