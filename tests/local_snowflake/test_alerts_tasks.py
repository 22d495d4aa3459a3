"""Alerts and tasks: created suspended, EXECUTE runs them once, outcomes recorded."""

from __future__ import annotations

from .helpers import as_dicts, rows

NOTIFY_PROC = """
CREATE OR REPLACE PROCEDURE notify(tag STRING)
RETURNS STRING LANGUAGE PYTHON RUNTIME_VERSION = '3.12'
PACKAGES = ('snowflake-snowpark-python', 'requests') HANDLER = 'run'
AS $$
def run(session, tag):
    session.sql("insert into notified select user_id, ? from accounts where balance < 100", params=[tag]).collect()
    return 'notified'
$$"""


def setup(cur) -> None:
    cur.execute("create table accounts (user_id string, balance number)")
    cur.execute("create table notified (user_id string, tag string)")
    cur.execute(NOTIFY_PROC)


def test_alert_runs_action_only_when_condition_has_rows(cur):
    setup(cur)
    cur.execute("""
CREATE OR REPLACE ALERT balance_alert
  WAREHOUSE = my_wh
  SCHEDULE = '5 MINUTE'
  IF (EXISTS (
    SELECT 1 FROM accounts WHERE balance < 100
  ))
  THEN
    CALL notify('alert');""")
    shown = as_dicts(cur, "SHOW ALERTS IN SCHEMA")
    assert [(a["name"], a["state"], a["schedule"]) for a in shown] == [("BALANCE_ALERT", "suspended", "5 MINUTE")]
    cur.execute("ALTER ALERT balance_alert RESUME")
    assert as_dicts(cur, "SHOW ALERTS LIKE 'balance%'")[0]["state"] == "started"

    assert rows(cur, "EXECUTE ALERT balance_alert")[0][1] == "CONDITION_FALSE"
    assert rows(cur, "select count(*) from notified") == [(0,)]

    cur.execute("insert into accounts values ('u1', 50), ('u2', 500)")
    assert rows(cur, "EXECUTE ALERT balance_alert")[0][1] == "SUCCEEDED"
    assert rows(cur, "select user_id, tag from notified") == [("u1", "alert")]
    alert = as_dicts(cur, "SHOW ALERTS IN SCHEMA")[0]
    assert (alert["last_run_state"], alert["last_run_message"], alert["run_count"]) == ("SUCCEEDED", "notified", 2)

    cur.execute("ALTER ALERT balance_alert SUSPEND")
    assert as_dicts(cur, "DESCRIBE ALERT balance_alert")[0]["state"] == "suspended"
    cur.execute("DROP ALERT balance_alert")
    assert rows(cur, "SHOW ALERTS IN SCHEMA") == []


def test_task_runs_body_and_records_failures(cur):
    setup(cur)
    cur.execute("insert into accounts values ('u9', 1)")
    cur.execute("CREATE OR REPLACE TASK notify_task WAREHOUSE = my_wh SCHEDULE = '60 MINUTE' AS CALL notify('task')")
    assert as_dicts(cur, "SHOW TASKS IN SCHEMA")[0]["state"] == "suspended"
    assert rows(cur, "EXECUTE TASK notify_task")[0][1] == "SUCCEEDED"
    assert rows(cur, "select user_id, tag from notified") == [("u9", "task")]

    cur.execute("CREATE OR REPLACE TASK broken_task SCHEDULE = '1 MINUTE' AS insert into no_such_table values (1)")
    status = rows(cur, "EXECUTE TASK broken_task")[0]
    assert status[1] == "FAILED" and "NO_SUCH_TABLE" in status[2].upper()
    task = as_dicts(cur, "SHOW TASKS LIKE 'BROKEN%'")[0]
    assert task["last_run_state"] == "FAILED"
    assert task["definition"] == "insert into no_such_table values (1)"

    cur.execute("CREATE OR REPLACE TASK guarded WHEN 1 = 0 AS insert into notified values ('never', 'x')")
    assert rows(cur, "EXECUTE TASK guarded")[0][1] == "SKIPPED"
    cur.execute("ALTER TASK notify_task RESUME")
    assert as_dicts(cur, "SHOW TASKS LIKE 'notify_task'")[0]["state"] == "started"
    cur.execute("DROP TASK notify_task")
    assert {t["name"] for t in as_dicts(cur, "SHOW TASKS IN SCHEMA")} == {"BROKEN_TASK", "GUARDED"}
