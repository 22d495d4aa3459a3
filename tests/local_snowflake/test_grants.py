"""GRANT and REVOKE are recorded; SHOW GRANTS lists them."""

from __future__ import annotations

import pytest
import snowflake.connector.errors

from .helpers import as_dicts


def grants_on(cur, target: str) -> set[tuple[str, str, str]]:
    return {(g["privilege"], g["granted_on"], g["grantee_name"]) for g in as_dicts(cur, f"SHOW GRANTS ON {target}")}


def test_grants_on_emulated_objects_and_tables(cur, schema):
    cur.execute("CREATE NETWORK RULE g_rule MODE = EGRESS TYPE = HOST_PORT VALUE_LIST = ('a.example')")
    cur.execute("CREATE SECRET g_secret TYPE = GENERIC_STRING SECRET_STRING = 'x'")
    cur.execute(
        "CREATE OR REPLACE EXTERNAL ACCESS INTEGRATION g_int ALLOWED_NETWORK_RULES = (g_rule) "
        "ALLOWED_AUTHENTICATION_SECRETS = (g_secret) ENABLED = TRUE"
    )
    cur.execute("""CREATE PROCEDURE g_proc(a STRING) RETURNS STRING LANGUAGE PYTHON RUNTIME_VERSION = '3.12'
        PACKAGES = ('snowflake-snowpark-python') HANDLER = 'run' AS 'def run(session, a): return a'""")
    cur.execute("create table g_table (a int)")

    cur.execute("GRANT USAGE ON INTEGRATION g_int TO ROLE transformer")
    cur.execute("GRANT READ ON SECRET g_secret TO ROLE transformer")
    cur.execute("GRANT USAGE ON PROCEDURE g_proc(STRING) TO ROLE reporter")
    cur.execute("GRANT SELECT, INSERT ON TABLE g_table TO ROLE reporter")
    cur.execute(f"GRANT USAGE ON SCHEMA {schema} TO ROLE reporter")
    cur.execute("GRANT USAGE ON DATABASE testdb TO ROLE reporter")
    # dbt's form: no object kind, no ROLE keyword
    cur.execute(f'grant select on "TESTDB"."{schema}"."G_TABLE" to analyst')

    assert grants_on(cur, "INTEGRATION g_int") == {("USAGE", "INTEGRATION", "TRANSFORMER")}
    assert grants_on(cur, "SECRET g_secret") == {("READ", "SECRET", "TRANSFORMER")}
    assert grants_on(cur, "PROCEDURE g_proc(STRING)") == {("USAGE", "PROCEDURE", "REPORTER")}
    assert grants_on(cur, "TABLE g_table") == {
        ("SELECT", "TABLE", "REPORTER"),
        ("INSERT", "TABLE", "REPORTER"),
        ("SELECT", "TABLE", "ANALYST"),
    }
    assert grants_on(cur, f"SCHEMA TESTDB.{schema}") == {("USAGE", "SCHEMA", "REPORTER")}

    cur.execute("REVOKE INSERT ON TABLE g_table FROM ROLE reporter")
    cur.execute(f"revoke select on TESTDB.{schema}.g_table from analyst")
    assert grants_on(cur, f'"TESTDB"."{schema}"."G_TABLE"') == {("SELECT", "TABLE", "REPORTER")}

    to_role = {(g["privilege"], g["name"]) for g in as_dicts(cur, "SHOW GRANTS TO ROLE transformer")}
    assert to_role == {("USAGE", "G_INT"), ("READ", f"TESTDB.{schema}.G_SECRET")}

    with pytest.raises(snowflake.connector.errors.ProgrammingError, match="does not exist"):
        cur.execute("GRANT READ ON SECRET no_such_secret TO ROLE transformer")
    # a table fakesnow knows nothing about: recorded, never an error
    cur.execute("GRANT SELECT ON ALL TABLES IN SCHEMA somewhere TO ROLE reporter")
    cur.execute("GRANT SELECT ON FUTURE TABLES IN SCHEMA somewhere TO ROLE reporter")
