"""Python procedures: CALL in a worker process, secrets, Snowpark session, egress, errors."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator

import pytest
import snowflake.connector.errors

from dbt_atomic_local.stack import free_port

from .conftest import CALL_TIMEOUT
from .helpers import as_dicts, rows

PROC_HEADER = """RETURNS STRING LANGUAGE PYTHON RUNTIME_VERSION = '3.12'
PACKAGES = ('snowflake-snowpark-python', 'requests') HANDLER = 'run'"""


class _Recorder(http.server.BaseHTTPRequestHandler):
    received: list[tuple[str, bytes]] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.received.append((self.path, body))
        self.send_response(202)
        self.end_headers()
        self.wfile.write(b"accepted")

    def log_message(self, *args):
        pass


@pytest.fixture
def http_target() -> Iterator[tuple[int, list]]:
    """A tiny local HTTP server: (port, the requests it received)."""
    handler = type("Recorder", (_Recorder,), {"received": []})
    httpd = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1], handler.received
    httpd.shutdown()
    httpd.server_close()


def make_access(cur, name: str, values: list[str], secret_value: str = "unused") -> None:  # noqa: S107
    value_list = ", ".join(f"'{v}'" for v in values)
    cur.execute(
        f"CREATE OR REPLACE NETWORK RULE {name}_rule MODE = EGRESS TYPE = HOST_PORT VALUE_LIST = ({value_list})"
    )
    cur.execute(f"CREATE OR REPLACE SECRET {name}_secret TYPE = GENERIC_STRING SECRET_STRING = '{secret_value}'")
    cur.execute(f"CREATE OR REPLACE SECRET {name}_creds TYPE = PASSWORD USERNAME = 'client-1' PASSWORD = 'pw-1'")
    cur.execute(
        f"CREATE OR REPLACE EXTERNAL ACCESS INTEGRATION {name}_int ALLOWED_NETWORK_RULES = ({name}_rule) "
        f"ALLOWED_AUTHENTICATION_SECRETS = ({name}_secret, {name}_creds) ENABLED = TRUE"
    )


def test_handler_reads_secrets_and_queries_its_session(cur, schema, server_log):
    make_access(cur, "p1", ["localhost:1"], secret_value="the-url-secret")
    cur.execute("create table accounts (user_id string, balance number)")
    cur.execute("insert into accounts values ('u1', 50), ('u2', 500), ('u3', 20)")
    cur.execute(
        """
CREATE OR REPLACE PROCEDURE send_pending(threshold NUMBER)
"""
        + PROC_HEADER
        + """
EXTERNAL_ACCESS_INTEGRATIONS = (p1_int)
SECRETS = ('atomic_url' = p1_secret, 'creds' = p1_creds)
AS $$
import _snowflake
import json

def run(session, threshold):
    url = _snowflake.get_generic_secret_string('atomic_url')
    creds = _snowflake.get_username_password('creds')
    found = session.sql(
        "select user_id from accounts where balance < ? order by user_id", params=[threshold]
    ).collect()
    session.sql("insert into accounts values (?, ?)", params=["from-proc", 1]).collect()
    print("handler output line")
    return json.dumps({
        "users": [r["USER_ID"] for r in found],
        "url_len": len(url),
        "user": creds.username,
        "db": session.get_current_database().strip('"'),
        "schema": session.get_current_schema().strip('"'),
    })
$$"""
    )
    cur.execute("CALL send_pending(100)")
    assert [d[0] for d in cur.description] == ["SEND_PENDING"]
    (result,) = cur.fetchone()
    assert json.loads(result) == {
        "users": ["u1", "u3"],
        "url_len": len("the-url-secret"),
        "user": "client-1",
        "db": "TESTDB",
        "schema": schema,
    }
    assert rows(cur, "select balance from accounts where user_id = 'from-proc'") == [(1,)]
    time.sleep(0.3)
    assert "handler output line" in server_log.read_text()


def test_default_arguments_and_literals(cur):
    cur.execute(f"""
CREATE OR REPLACE PROCEDURE echo(a STRING, n NUMBER, flag BOOLEAN DEFAULT TRUE,
  settings STRING DEFAULT '{{"http": {{"timeout_seconds": 30}}, "name": "it''s"}}')
{PROC_HEADER}
AS $$
import json
def run(session, a, n, flag, settings):
    return json.dumps([a, n, flag, json.loads(settings)])
$$""")
    assert json.loads(rows(cur, "CALL echo('it''s', 42)")[0][0]) == [
        "it's",
        42,
        True,
        {"http": {"timeout_seconds": 30}, "name": "it's"},
    ]
    assert json.loads(rows(cur, "call echo(NULL, -1.5, FALSE, '{}')")[0][0]) == [None, -2, False, {}]
    assert json.loads(rows(cur, "CALL echo(n => 7, a => 'x' || 'y')")[0][0])[:2] == ["xy", 7]
    with pytest.raises(snowflake.connector.errors.ProgrammingError, match="Invalid argument"):
        cur.execute("CALL echo('only one')")


def test_bound_arguments_and_parse_json(cur):
    cur.execute(
        "CREATE OR REPLACE PROCEDURE bound(request STRING, payload VARIANT) "
        + PROC_HEADER
        + """
AS $$
import json
def run(session, request, payload):
    return json.dumps({"request": request, "payload": payload})
$$"""
    )
    out = json.loads(rows(cur, "CALL bound(?, PARSE_JSON(?))", ("a'b", '{"k": [1, 2]}'))[0][0])
    assert out == {"request": "a'b", "payload": {"k": [1, 2]}}
    out = json.loads(rows(cur, "CALL bound('x', PARSE_JSON('[1]'))")[0][0])
    assert out == {"request": "x", "payload": [1]}


def test_egress_allowed_only_to_rule_hosts(cur, http_target):
    port, received = http_target
    refused_port = free_port()
    make_access(cur, "eg", [f"localhost:{port}"], secret_value=f"http://localhost:{port}/hook/token")
    cur.execute(f"""
CREATE OR REPLACE PROCEDURE post_to(url STRING)
{PROC_HEADER}
EXTERNAL_ACCESS_INTEGRATIONS = (eg_int)
SECRETS = ('url' = eg_secret)
AS $$
import _snowflake
import requests
def run(session, url):
    target = url or _snowflake.get_generic_secret_string('url')
    resp = requests.post(target, data='{{"hello": 1}}', timeout=5)
    return f"{{resp.status_code}}: {{resp.text}}"
$$""")
    assert rows(cur, "CALL post_to(NULL)") == [("202: accepted",)]
    assert received == [("/hook/token", b'{"hello": 1}')]
    # the same port by IP address
    cur.execute(
        f"CREATE OR REPLACE NETWORK RULE eg_rule MODE = EGRESS TYPE = HOST_PORT VALUE_LIST = ('127.0.0.1:{port}')"
    )
    assert rows(cur, f"CALL post_to('http://127.0.0.1:{port}/ip')") == [("202: accepted",)]
    with pytest.raises(snowflake.connector.errors.ProgrammingError) as info:
        cur.execute(f"CALL post_to('http://127.0.0.1:{refused_port}/other')")
    assert "127.0.0.1" in str(info.value) and str(refused_port) in str(info.value)
    assert "not allowed" in str(info.value)
    with pytest.raises(snowflake.connector.errors.ProgrammingError, match=r"'example\.org' port 443"):
        cur.execute("CALL post_to('https://example.org/x')")
    # a disabled integration allows nothing
    cur.execute("ALTER EXTERNAL ACCESS INTEGRATION eg_int SET ENABLED = FALSE")
    with pytest.raises(snowflake.connector.errors.ProgrammingError, match="not allowed"):
        cur.execute(f"CALL post_to('http://127.0.0.1:{port}/ip')")
    assert len(received) == 2


def test_handler_exception_is_a_query_error(cur):
    cur.execute(f"""
CREATE OR REPLACE PROCEDURE fails()
{PROC_HEADER}
AS 'def run(session):\\n    raise ValueError(''bad destination'')\\n'""")
    started = time.monotonic()
    with pytest.raises(snowflake.connector.errors.ProgrammingError) as info:
        cur.execute("CALL fails()")
    assert time.monotonic() - started < CALL_TIMEOUT
    message = str(info.value)
    assert "Python Interpreter Error" in message
    assert "ValueError: bad destination" in message
    assert "in function FAILS with handler run" in message
    assert rows(cur, "select 1") == [(1,)]


def test_secret_rules_in_handler(cur):
    make_access(cur, "sr", ["localhost:1"])
    cur.execute(f"""
CREATE OR REPLACE PROCEDURE secret_rules()
{PROC_HEADER}
EXTERNAL_ACCESS_INTEGRATIONS = (sr_int)
SECRETS = ('known' = sr_secret)
AS $$
import _snowflake
import threading
def run(session):
    out = []
    try:
        _snowflake.get_generic_secret_string('unknown')
    except Exception as e:
        out.append('unknown alias refused')
    box = []
    def read():
        try:
            _snowflake.get_generic_secret_string('known')
        except Exception as e:
            box.append('thread refused')
    t = threading.Thread(target=read)
    t.start()
    t.join()
    out.extend(box)
    out.append('main ok' if _snowflake.get_generic_secret_string('known') else 'main empty')
    return ', '.join(out)
$$""")
    assert rows(cur, "CALL secret_rules()") == [("unknown alias refused, thread refused, main ok",)]


def test_secret_must_be_allowed_by_integration(cur):
    make_access(cur, "na", ["localhost:1"])
    cur.execute("CREATE SECRET stray TYPE = GENERIC_STRING SECRET_STRING = 'x'")
    with pytest.raises(snowflake.connector.errors.ProgrammingError, match="not allowed"):
        cur.execute(f"""
CREATE PROCEDURE needs_stray() {PROC_HEADER} EXTERNAL_ACCESS_INTEGRATIONS = (na_int)
SECRETS = ('s' = stray) AS 'def run(session): return 1'""")


def test_call_timeout_kills_worker(cur):
    cur.execute(f"""
CREATE OR REPLACE PROCEDURE sleeper()
{PROC_HEADER}
AS $$
import time
def run(session):
    time.sleep(120)
    return 'woke'
$$""")
    started = time.monotonic()
    with pytest.raises(snowflake.connector.errors.ProgrammingError, match="timed out"):
        cur.execute("CALL sleeper()")
    assert time.monotonic() - started < CALL_TIMEOUT + 10


def test_show_describe_drop_procedure(cur, schema):
    cur.execute(f"""
CREATE OR REPLACE PROCEDURE shown(a STRING, settings STRING DEFAULT '{{}}')
{PROC_HEADER}
EXECUTE AS OWNER
AS $$
def run(session, a, settings):
    return a
$$""")
    shown = as_dicts(cur, "SHOW PROCEDURES LIKE 'SHOWN'")
    assert [(r["name"], r["schema_name"], r["min_num_arguments"], r["max_num_arguments"]) for r in shown] == [
        ("SHOWN", schema, 1, 2)
    ]
    assert shown[0]["arguments"] == "SHOWN(STRING, STRING) RETURN STRING"
    desc = dict(rows(cur, "DESCRIBE PROCEDURE shown(STRING, STRING)"))
    assert "return a" in desc["body"]
    assert desc["handler"] == "run"
    assert desc["runtime_version"] == "3.12"
    cur.execute("DROP PROCEDURE shown(STRING, STRING)")
    assert rows(cur, "SHOW PROCEDURES LIKE 'SHOWN'") == []
    with pytest.raises(snowflake.connector.errors.ProgrammingError, match="does not exist"):
        cur.execute("CALL shown('x')")


def test_returns_types(cur):
    cur.execute("""
CREATE OR REPLACE PROCEDURE answer() RETURNS NUMBER LANGUAGE PYTHON RUNTIME_VERSION = '3.12'
PACKAGES = ('snowflake-snowpark-python') HANDLER = 'run' AS 'def run(session):\n    return 42'""")
    assert rows(cur, "CALL answer()") == [(42,)]
    cur.execute("""
CREATE OR REPLACE PROCEDURE obj() RETURNS VARIANT LANGUAGE PYTHON RUNTIME_VERSION = '3.12'
PACKAGES = ('snowflake-snowpark-python') HANDLER = 'run' AS 'def run(session):\n    return {"a": [1]}'""")
    assert json.loads(rows(cur, "CALL obj()")[0][0]) == {"a": [1]}
