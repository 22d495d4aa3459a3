"""Rewrites of Snowflake SQL that fakesnow cannot run as sent.

dbt (and any other client) sends real Snowflake SQL; each rewrite here covers one gap of
fakesnow/DuckDB, server-side, so the SQL in the package stays what Snowflake runs.
"""

from __future__ import annotations

import re

import sqlglot
from sqlglot import exp

_LEADING = re.compile(r"^(\s|--[^\n]*(\n|$)|/\*.*?\*/)*", re.DOTALL)


def _split_head(sql: str) -> tuple[str, str]:
    """(leading comments and whitespace, the statement)."""
    m = _LEADING.match(sql)
    end = m.end() if m else 0
    return sql[:end], sql[end:]


_TEMP_VIEW = re.compile(
    r"^create\s+or\s+replace\s+(secure\s+)?(local\s+|global\s+)?(temporary|temp)\s+view\b", re.IGNORECASE
)


def temporary_view(sql: str) -> str:
    """dbt's incremental models create `temporary view <db>.<schema>.<x>__dbt_tmp`. DuckDB keeps
    temporary objects in its temp catalog, so the qualified name fails. Create a plain view
    instead: dbt drops it at the end of the model."""
    head, body = _split_head(sql)
    m = _TEMP_VIEW.match(body)
    if not m:
        return sql
    return head + "create or replace " + (m.group(1) or "") + "view" + body[m.end() :]


def merge_insert_values(sql: str) -> str:
    """dbt's MERGE ends with `when not matched then insert (a, b) values (a, b)`: Snowflake reads
    the unqualified values from the source, DuckDB finds them ambiguous. Qualify them with the
    source's alias."""
    head, body = _split_head(sql)
    if not re.match(r"merge\b", body, re.IGNORECASE):
        return sql
    try:
        tree = sqlglot.parse_one(body, read="snowflake")
    except sqlglot.errors.ParseError:
        return sql
    if not isinstance(tree, exp.Merge):
        return sql
    using = tree.args.get("using")
    alias = using.alias_or_name if using is not None else None
    if not alias:
        return sql
    changed = False
    for when in tree.find_all(exp.When):
        then = when.args.get("then")
        if not isinstance(then, exp.Insert) or not isinstance(then.expression, exp.Tuple):
            continue
        for value in then.expression.expressions:
            for column in value.find_all(exp.Column):
                if not column.table:
                    column.set("table", exp.to_identifier(alias))
                    changed = True
    if not changed:
        return sql
    return head + tree.sql(dialect="snowflake")


_CANCEL_ALL = re.compile(r"system\$cancel_all_queries\s*\([^)]*\)", re.IGNORECASE)


def cancel_all_queries(sql: str) -> str:
    """Snowpark's `Session.close()` runs `select system$cancel_all_queries(<session id>)`, which
    fakesnow lacks. Statements run synchronously here, so there is nothing to cancel."""
    return _CANCEL_ALL.sub("'0 queries cancelled'", sql)


_MERGE = re.compile(r"^merge\b", re.IGNORECASE)
_CREATE_TEMP_TABLE = re.compile(
    r"^create\s+(or\s+replace\s+)?(local\s+|global\s+)?(temporary|temp)\s+table\b", re.IGNORECASE
)


def transaction_break(sql: str) -> str | None:
    """Statements that fakesnow cannot run inside an explicit transaction (BEGIN ... COMMIT).

    fakesnow runs a MERGE through a temporary table, and DuckDB refuses to create a temporary
    table in a transaction that has touched another database. The server commits the open
    transaction before these statements (Snowflake, too, commits before DDL):
    "reopen" means open a new transaction after the statement (MERGE is DML), "close" means
    leave it closed (CREATE TEMPORARY TABLE is DDL). A later ROLLBACK cannot undo them.
    """
    _, body = _split_head(sql)
    if _MERGE.match(body):
        return "reopen"
    if _CREATE_TEMP_TABLE.match(body):
        return "close"
    return None


REWRITES = [temporary_view, merge_insert_values, cancel_all_queries]


def rewrite(sql: str) -> str:
    for fn in REWRITES:
        sql = fn(sql)
    return sql
