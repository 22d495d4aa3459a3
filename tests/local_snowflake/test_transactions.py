"""Errors are query errors, and never wedge a session."""

from __future__ import annotations

import pytest
import snowflake.connector.errors

from .helpers import rows


def test_error_inside_transaction_does_not_wedge_session(cur):
    cur.execute("create table t (a int)")
    cur.execute("begin")
    with pytest.raises(snowflake.connector.errors.ProgrammingError, match="NOSUCH"):
        cur.execute("select * from nosuch")
    cur.execute("insert into t values (2)")
    cur.execute("commit")
    assert rows(cur, "select a from t") == [(2,)]
    cur.execute("begin")
    cur.execute("insert into t values (3)")
    cur.execute("rollback")
    assert rows(cur, "select a from t order by a") == [(2,)]


def test_unsupported_statement_is_a_query_error_not_http_500(cur):
    # fakesnow raises an unhandled exception here, which it would answer with HTTP 500
    with pytest.raises(snowflake.connector.errors.ProgrammingError, match="NotImplementedError"):
        cur.execute("select object_keys(parse_json('{}'))")
    assert rows(cur, "select 1") == [(1,)]


def test_syntax_error_in_emulated_statement(cur):
    with pytest.raises(snowflake.connector.errors.ProgrammingError, match="SQL compilation error"):
        cur.execute("CREATE NETWORK RULE r MODE = EGRESS TYPE = HOST_PORT VALUE_LIST = ('a'")
    assert rows(cur, "select 2") == [(2,)]
