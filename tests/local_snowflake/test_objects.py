"""Network rules, secrets and external access integrations."""

from __future__ import annotations

import pytest
import snowflake.connector.errors

from .helpers import as_dicts, rows

SECRET_VALUE = "value-that-must-stay-hidden-1"
SECRET_PASSWORD = "password-that-must-stay-hidden-2"


def setup_objects(cur) -> None:
    cur.execute(
        "CREATE OR REPLACE NETWORK RULE atomic_rule MODE = EGRESS TYPE = HOST_PORT "
        "VALUE_LIST = ('example.customer-api.atomic.io', 'localhost:8086')"
    )
    cur.execute(f"CREATE OR REPLACE SECRET url_secret TYPE = GENERIC_STRING SECRET_STRING = '{SECRET_VALUE}'")
    cur.execute(f"CREATE OR REPLACE SECRET creds TYPE = PASSWORD USERNAME = 'client-id' PASSWORD = '{SECRET_PASSWORD}'")
    cur.execute(
        "CREATE OR REPLACE EXTERNAL ACCESS INTEGRATION atomic_int_objects ALLOWED_NETWORK_RULES = (atomic_rule) "
        "ALLOWED_AUTHENTICATION_SECRETS = (url_secret, creds) ENABLED = TRUE"
    )


def test_network_rule_show_describe_drop(cur, schema):
    setup_objects(cur)
    shown = as_dicts(cur, "SHOW NETWORK RULES LIKE 'atomic%'")
    assert [(r["name"], r["schema_name"], r["mode"], r["type"]) for r in shown] == [
        ("ATOMIC_RULE", schema, "EGRESS", "HOST_PORT")
    ]
    assert shown[0]["entries_in_valuelist"] == 2
    desc = as_dicts(cur, "DESCRIBE NETWORK RULE atomic_rule")
    assert desc[0]["value_list"] == "example.customer-api.atomic.io,localhost:8086"
    assert as_dicts(cur, f"SHOW NETWORK RULES IN SCHEMA TESTDB.{schema}")[0]["name"] == "ATOMIC_RULE"
    assert rows(cur, "SHOW NETWORK RULES LIKE 'nomatch%'") == []
    cur.execute("DROP NETWORK RULE atomic_rule")
    assert rows(cur, f"SHOW NETWORK RULES IN SCHEMA {schema}") == []
    cur.execute("DROP NETWORK RULE IF EXISTS atomic_rule")
    with pytest.raises(snowflake.connector.errors.ProgrammingError, match="does not exist"):
        cur.execute("DROP NETWORK RULE atomic_rule")


def test_create_variants(cur):
    setup_objects(cur)
    with pytest.raises(snowflake.connector.errors.ProgrammingError, match="already exists"):
        cur.execute("CREATE NETWORK RULE atomic_rule MODE = EGRESS TYPE = HOST_PORT VALUE_LIST = ('a.b')")
    assert (
        "already exists"
        in rows(
            cur, "CREATE NETWORK RULE IF NOT EXISTS atomic_rule MODE = EGRESS TYPE = HOST_PORT VALUE_LIST = ('a.b')"
        )[0][0]
    )
    # quoted names keep their case; unquoted ones are upper-cased
    cur.execute("""CREATE SECRET "MixedCase" TYPE = GENERIC_STRING SECRET_STRING = 'x'""")
    names = {r["name"] for r in as_dicts(cur, "SHOW SECRETS IN SCHEMA")}
    assert names == {"URL_SECRET", "CREDS", "MixedCase"}
    with pytest.raises(snowflake.connector.errors.ProgrammingError, match="does not exist"):
        cur.execute("CREATE EXTERNAL ACCESS INTEGRATION bad_int ALLOWED_NETWORK_RULES = (no_such_rule) ENABLED = TRUE")


def test_secrets_never_shown(cur, schema):
    setup_objects(cur)
    for sql in ("SHOW SECRETS", f"SHOW SECRETS IN SCHEMA {schema}", "DESCRIBE SECRET url_secret", "DESC SECRET creds"):
        cur.execute(sql)
        text = repr(cur.fetchall()) + repr(cur.description)
        assert SECRET_VALUE not in text
        assert SECRET_PASSWORD not in text
    shown = {r["name"]: r["secret_type"] for r in as_dicts(cur, "SHOW SECRETS IN SCHEMA")}
    assert shown == {"URL_SECRET": "GENERIC_STRING", "CREDS": "PASSWORD"}


def test_alter_secret_and_integration(cur):
    setup_objects(cur)
    cur.execute("ALTER SECRET url_secret SET SECRET_STRING = 'rotated-value'")
    cur.execute("ALTER SECRET creds SET USERNAME = 'other-id' PASSWORD = 'other-password'")
    with pytest.raises(snowflake.connector.errors.ProgrammingError, match="GENERIC_STRING"):
        cur.execute("ALTER SECRET creds SET SECRET_STRING = 'x'")
    cur.execute("ALTER EXTERNAL ACCESS INTEGRATION atomic_int_objects SET ENABLED = FALSE")
    props = {r["property"]: r["property_value"] for r in as_dicts(cur, "DESC INTEGRATION atomic_int_objects")}
    assert props["ENABLED"] == "false"
    assert props["ALLOWED_NETWORK_RULES"].endswith(".ATOMIC_RULE")


def test_integrations_are_account_objects(connect, cur, schema):
    setup_objects(cur)
    other = connect(schema=schema + "_OTHER").cursor()
    for sql in (
        "SHOW INTEGRATIONS LIKE 'atomic_int_objects'",
        "SHOW EXTERNAL ACCESS INTEGRATIONS LIKE 'ATOMIC_INT_O%'",
    ):
        shown = as_dicts(other, sql)
        assert [(r["name"], r["type"], r["enabled"]) for r in shown] == [
            ("ATOMIC_INT_OBJECTS", "EXTERNAL_ACCESS", "true")
        ]
    # secrets are schema objects: another schema does not see them
    assert rows(other, "SHOW SECRETS IN SCHEMA") == []
    cur.execute("DROP INTEGRATION atomic_int_objects")
    assert rows(other, "SHOW INTEGRATIONS LIKE 'atomic_int_objects'") == []


def test_malformed_secret_statement_does_not_echo_value(cur):
    with pytest.raises(snowflake.connector.errors.ProgrammingError) as info:
        cur.execute(f"CREATE SECRET broken TYPE = GENERIC_STRING SECRET_STRING '{SECRET_VALUE}'")
    assert SECRET_VALUE not in str(info.value)


def test_server_log_never_holds_secret_values(cur, server_log):
    setup_objects(cur)
    cur.execute(f"ALTER SECRET url_secret SET SECRET_STRING = '{SECRET_VALUE}'")
    with pytest.raises(snowflake.connector.errors.ProgrammingError):
        cur.execute(f"CREATE SECRET url_secret TYPE = GENERIC_STRING SECRET_STRING = '{SECRET_VALUE}'")
    log = server_log.read_text()
    assert "emulated: CREATE OR REPLACE SECRET" in log
    assert SECRET_VALUE not in log
    assert SECRET_PASSWORD not in log
