"""The SQL rewrites and the statement parser, without a server."""

from __future__ import annotations

import pytest

from dbt_atomic_local.snowflake import statements
from dbt_atomic_local.snowflake.rewrites import rewrite, transaction_break
from dbt_atomic_local.snowflake.sqltokens import SqlSyntaxError


def test_temporary_view_becomes_plain_view():
    sql = '/* {"app": "dbt"} */\ncreate or replace  temporary view DB.S.m__dbt_tmp\n  as (select 1)'
    assert rewrite(sql) == '/* {"app": "dbt"} */\ncreate or replace view DB.S.m__dbt_tmp\n  as (select 1)'
    assert rewrite("create or replace view v as select 1") == "create or replace view v as select 1"


def test_merge_values_are_qualified_with_the_source():
    sql = (
        "merge into DB.S.M as DBT_INTERNAL_DEST using DB.S.M__dbt_tmp as DBT_INTERNAL_SOURCE "
        "on (DBT_INTERNAL_SOURCE.id = DBT_INTERNAL_DEST.id) "
        'when matched then update set "ID" = DBT_INTERNAL_SOURCE."ID" '
        'when not matched then insert ("ID", "NAME") values ("ID", "NAME")'
    )
    out = rewrite(sql)
    assert 'VALUES (DBT_INTERNAL_SOURCE."ID", DBT_INTERNAL_SOURCE."NAME")' in out
    assert transaction_break(out) == "reopen"
    assert transaction_break("create temporary table t as select 1") == "close"
    assert transaction_break("insert into t values (1)") is None


def test_parser_handles_bodies_and_escapes():
    stmt = statements.parse(
        "create or replace procedure p(a string default 'it''s; $$', b number default 1) returns string "
        "language python runtime_version = 3.12 packages = ('snowflake-snowpark-python') handler = 'run' "
        "secrets = ('u' = db.s.sec) as $$ def run(session, a, b):\n    return ')' $$;"
    )
    assert isinstance(stmt, statements.CreateProcedure)
    assert [(a.name, a.type, a.default_sql) for a in stmt.args] == [
        ("A", "STRING", "'it''s; $$'"),
        ("B", "NUMBER", "1"),
    ]
    assert stmt.runtime_version == "3.12"
    assert stmt.secrets[0].key == "u" and [i.normal for i in stmt.secrets[0].name] == ["DB", "S", "SEC"]
    assert "return ')'" in stmt.body
    assert statements.parse("select 1") is None
    assert statements.parse("create table t (a int)") is None


def test_sensitive_statements_are_never_logged():
    sql = "CREATE SECRET s TYPE = GENERIC_STRING SECRET_STRING = 'hidden-value'"
    assert "hidden-value" not in statements.describe_for_log(sql)
    with pytest.raises(SqlSyntaxError) as info:
        statements.parse("CREATE SECRET s TYPE = GENERIC_STRING SECRET_STRING 'hidden-value'")
    assert "hidden-value" not in str(info.value)
