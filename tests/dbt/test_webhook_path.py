"""The webhook path end to end: atomic_setup, dbt build sending on-run-end, the audit."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from harness import DATABASE, LOW_BALANCE_USERS, ROOT, STATEMENT_READY_USERS

pytestmark = pytest.mark.dbt


def webhook_requests(project, trigger: str | None = None) -> list[dict]:
    requests = [r for r in project.atomic_get("requests")["requests"] if r["endpoint"] == "webhook"]
    if trigger is None:
        return requests
    # the log masks the connector token; the emulator names the trigger it resolved
    return [r for r in requests if r.get("trigger") == trigger]


def delivered_counts(project, trigger: str) -> dict[str, int]:
    return project.atomic_get("users").get("webhook", {}).get(trigger, {})


def test_build_delivers_signed_batches_and_a_rerun_sends_nothing(project):
    project.deployed()
    out = project.dbt("build").stdout
    # low_balance_users sends from on-run-end, statement_ready_users from its own post-hook: once each
    assert out.count("low_balance_users -> low_balance: sent 4") == 1
    assert out.count("statement_ready_users -> statement_ready:") == 1

    assert project.status("low_balance") == dict.fromkeys(LOW_BALANCE_USERS, "delivered")
    assert project.status("statement_ready") == dict.fromkeys(STATEMENT_READY_USERS, "delivered")
    # the emulator verified the signature of every low_balance request and mapped each user once
    assert delivered_counts(project, "low_balance") == dict.fromkeys(LOW_BALANCE_USERS, 1)
    assert delivered_counts(project, "statement_ready") == dict.fromkeys(STATEMENT_READY_USERS, 1)
    sent = webhook_requests(project)
    assert sent and all(r["status"] == 200 for r in sent)

    # atomic_setup again: same objects, history intact; a second build, even a full
    # refresh, sends nothing and keeps the audit
    project.dbt("run-operation", "atomic_setup")
    out = project.dbt("build", "--full-refresh").stdout
    assert len(webhook_requests(project)) == len(sent)
    assert "low_balance_users -> low_balance: sent 0" in out
    assert project.status("low_balance") == dict.fromkeys(LOW_BALANCE_USERS, "delivered")
    skipped = [row for row in project.outcomes("low_balance") if row[1] == "skipped"]
    assert {row[0] for row in skipped} == LOW_BALANCE_USERS
    assert all(row[2] == "already_delivered" for row in skipped)


def test_setup_is_idempotent_and_dry_run_changes_nothing(project):
    project.configure_atomic()
    dry = project.dbt("run-operation", "atomic_setup", "--args", "{dry_run: true}").stdout
    assert re.search(r"1 of \d+ schema", dry)
    assert "create or replace procedure" in dry
    schemas = [row[1].lower() for row in project.query(f"show schemas in database {DATABASE}")]
    assert project.package_schema.lower() not in schemas

    first = project.dbt("run-operation", "atomic_setup").stdout
    planned = int(re.search(r"atomic_setup: (\d+) statements", first).group(1))
    assert f"{planned} of {planned}" in first

    def objects():
        where = f"in schema {DATABASE}.{project.package_schema}"
        return {
            "rules": sorted(r[1] for r in project.query(f"show network rules {where}")),
            "secrets": sorted(r[1] for r in project.query(f"show secrets {where}")),
            "procedures": sorted(r[1] for r in project.query(f"show procedures {where}")),
            "tables": sorted(r[1] for r in project.query(f"show tables {where}")),
        }

    before = objects()
    assert len(before["secrets"]) == 4
    assert {"ATOMIC_SEND", "ATOMIC_POST", "ATOMIC_STORE_EVENT"} <= {p.upper() for p in before["procedures"]}
    # a delivered row must survive the rerun
    project.set_secrets()
    project.dbt("seed")
    project.dbt("build", "--select", "statement_ready_users", "package:dbt_atomic")
    delivered = project.status("statement_ready")
    assert delivered == dict.fromkeys(STATEMENT_READY_USERS, "delivered")

    project.dbt("run-operation", "atomic_setup")
    assert objects() == before
    assert project.status("statement_ready") == delivered
    # the secret values set before the rerun are still there: sending still works
    project.dbt("build", "--select", "low_balance_users")
    assert project.status("low_balance") == dict.fromkeys(LOW_BALANCE_USERS, "delivered")


def test_wrong_signing_secret_is_recorded_as_failed_then_delivered_when_fixed(project):
    project.deployed()
    project.configure_atomic(signing_secret="not-the-shared-secret")
    proc = project.dbt("build", "--select", "low_balance_users", expect_ok=False)
    assert proc.returncode != 0  # atomic_on_failure: error (the default) fails the invocation
    assert "delivery failed for low_balance_users -> low_balance" in proc.stdout
    assert set(project.status("low_balance").values()) == {"failed"}
    attempts = project.query(
        f"select http_status, error from {DATABASE}.{project.package_schema}.atomic_attempts "
        "where destination = 'low_balance'"
    )
    assert attempts and all(status == 401 for status, _ in attempts)
    assert delivered_counts(project, "low_balance") == {}

    # the trigger is fixed: the next run retries the failed users and delivers them
    project.configure_atomic()
    project.dbt("build", "--select", "low_balance_users")
    assert project.status("low_balance") == dict.fromkeys(LOW_BALANCE_USERS, "delivered")
    assert delivered_counts(project, "low_balance") == dict.fromkeys(LOW_BALANCE_USERS, 1)


def test_on_failure_warn_keeps_the_invocation_green(project):
    project.deployed()
    project.atomic_post("faults", {"endpoint": "webhook", "kind": "5xx", "status": 503, "count": 100})
    proc = project.dbt("build", "--select", "statement_ready_users", vars={"atomic_on_failure": "warn"})
    assert "delivery failed for statement_ready_users -> statement_ready" in proc.stdout
    assert set(project.status("statement_ready").values()) == {"failed"}


def test_batches_are_bounded_by_rows_and_by_bytes(project):
    project.deployed()
    project.dbt("build", "--select", "low_balance_users", vars={"atomic_batch_max_rows": 3})
    sizes = sorted(len(r["body"]) for r in webhook_requests(project))
    assert sizes == [1, 3]  # four users, at most three a request

    project.atomic_post("reset")
    project.dbt(
        "build",
        "--select",
        "statement_ready_users",
        vars={"atomic_batch_max_bytes": 90},  # one user object is about 60 bytes
    )
    sizes = [len(r["body"]) for r in webhook_requests(project)]
    assert sizes == [1, 1, 1]
    assert project.status("statement_ready") == dict.fromkeys(STATEMENT_READY_USERS, "delivered")


def test_429s_are_retried_within_the_run(project):
    project.deployed()
    project.atomic_post("faults", {"endpoint": "webhook", "kind": "429", "count": 2, "retry_after": 0})
    project.dbt("build", "--select", "statement_ready_users")
    assert project.status("statement_ready") == dict.fromkeys(STATEMENT_READY_USERS, "delivered")
    statuses = [
        row[0]
        for row in project.query(
            f"select http_status from {DATABASE}.{project.package_schema}.atomic_attempts order by attempt"
        )
    ]
    assert statuses == [429, 429, 200]


def test_compile_and_docs_do_not_send(project):
    project.deployed()
    project.dbt("run", "--select", "low_balance_users", vars={"atomic_send_enabled": False})
    project.dbt("compile")
    project.dbt("run", "--select", "low_balance_users", vars={"atomic_send_targets": ["prod"]})
    assert webhook_requests(project) == []
    assert project.outcomes() == []


def test_run_operation_sends_one_model(project):
    project.deployed()
    project.dbt("run")  # the on-run-end hook sends everything ...
    project.configure_atomic()
    project.query(f"delete from {DATABASE}.{project.package_schema}.atomic_outcomes")
    # ... and a run-operation sends one model again, by hand
    out = project.dbt("run-operation", "atomic_send", "--args", "{models: [statement_ready_users]}").stdout
    assert "statement_ready_users -> statement_ready: sent 3" in out
    assert delivered_counts(project, "statement_ready") == dict.fromkeys(STATEMENT_READY_USERS, 1)
    assert delivered_counts(project, "low_balance") == {}


def test_deployed_procedure_body_is_the_handler_file(project):
    project.configure_atomic()
    project.dbt("run-operation", "atomic_setup")
    rows = project.query(f"describe procedure {DATABASE}.{project.package_schema}.atomic_send(varchar, varchar)")
    body = next(value for prop, value, *_ in rows if prop.lower() == "body")
    source = (ROOT / "src" / "dbt_atomic_handlers" / "atomic_handler.py").read_text()
    inner = "".join(source.splitlines(keepends=True)[1:-1])
    assert body.strip().rstrip("#").strip() == inner.strip()


def test_no_secret_value_in_logs_target_or_output(project):
    project.deployed()
    project.dbt("build")
    project.dbt("run-operation", "atomic_setup")
    assert project.status("low_balance")
    haystacks = list(project.outputs)
    for path in Path(project.workdir).rglob("*"):
        if path.is_file():
            haystacks.append(path.read_text(errors="replace"))
    assert len(haystacks) > 5
    for value in project.secrets.values():
        for text in haystacks:
            assert value not in text


def test_grants_survive_a_rerun_and_the_token_cache_stays_private(project):
    project.configure_atomic()
    project.vars = {"atomic_sender_role": "atomic_sender", "atomic_audit_reader_roles": ["analyst"]}
    project.dbt("run-operation", "atomic_setup")
    package = f"{DATABASE}.{project.package_schema}"

    def grants_on(kind: str, name: str) -> set[tuple[str, str]]:
        cursor_columns = ("privilege", "grantee_name")
        conn = project.connect()
        try:
            cur = conn.cursor()
            cur.execute(f"show grants on {kind} {name}")
            names = [c[0].lower() for c in cur.description]
            rows = cur.fetchall()
        finally:
            conn.close()
        index = [names.index(c) for c in cursor_columns]
        return {(row[index[0]].upper(), row[index[1]].upper()) for row in rows}

    send = f"{package}.atomic_send(varchar, varchar)"
    assert ("USAGE", "ATOMIC_SENDER") in grants_on("procedure", send)
    assert ("SELECT", "ANALYST") in grants_on("table", f"{package}.atomic_outcomes")

    # somebody grants the token cache away; the next atomic_setup takes it back
    project.query(f"grant select on table {package}.atomic_token_cache to role analyst")
    assert ("SELECT", "ANALYST") in grants_on("table", f"{package}.atomic_token_cache")
    out = project.dbt("run-operation", "atomic_setup").stdout
    assert "revoked SELECT on the token cache from role ANALYST" in out
    assert {g for g in grants_on("table", f"{package}.atomic_token_cache") if g[0] != "OWNERSHIP"} == set()
    # the procedures were replaced, and their grants made again
    assert ("USAGE", "ATOMIC_SENDER") in grants_on("procedure", send)


def test_post_by_hand_fills_the_sample_then_succeeds_once_mapped(project):
    """The tutorial's set-up loop: "Get new sample", a call that fails, a mapping, a call that works."""
    project.deployed()
    token = project.secrets.tokens["statement_ready"]
    project.atomic_post(f"triggers/{token}/sample")
    post = f"{DATABASE}.{project.package_schema}.atomic_post"
    payload = '{"targetUserId": "user-123", "balance": 1500}'
    first = project.query(f"call {post}(%s, %s)", ("statement_ready", payload))[0][0]
    assert first.startswith("400")
    assert project.atomic_get(f"triggers/{token}/sample")["body"] == {"targetUserId": "user-123", "balance": 1500}
    second = project.query(f"call {post}(%s, %s)", ("statement_ready", payload))[0][0]
    assert second.startswith("200")
    assert delivered_counts(project, "statement_ready") == {"user-123": 1}
    # Atomic's own error text comes back, never the trigger URL
    project.configure_atomic()
    project.atomic_post("faults", {"endpoint": "webhook", "kind": "5xx", "status": 502, "count": 1})
    failed = project.query(f"call {post}(%s, %s)", ("statement_ready", payload))[0][0]
    assert failed.startswith("502")
    assert token not in failed


def test_concurrent_runs_to_one_destination_never_send_twice(project):
    project.deployed()
    project.dbt("run", "--select", "statement_ready_users", vars={"atomic_send_enabled": False})
    # the first run's request is slow, so the second run starts while it is still sending
    project.atomic_post("faults", {"endpoint": "webhook", "kind": "delay", "delay_seconds": 2, "count": 1})
    with ThreadPoolExecutor(2) as pool:
        runs = list(
            pool.map(lambda _: project.call_send("statement_ready_users", "statement_ready", "user_id"), range(2))
        )
    assert sorted(run["sent"] for run in runs) == [0, 3]
    assert sorted(run["skipped"] for run in runs) == [0, 3]
    assert delivered_counts(project, "statement_ready") == dict.fromkeys(STATEMENT_READY_USERS, 1)
