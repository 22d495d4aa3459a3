"""Custom events end to end: the Analytics API, OAuth client credentials and the token cache."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from harness import DATABASE, LOW_BALANCE_USERS

pytestmark = pytest.mark.dbt


def token_requests(project) -> int:
    return project.atomic_get("stats")["token_requests"]


def store_event(project, user_id: str, event: str = "balance-checked", properties: str | None = None) -> str:
    proc = f"{DATABASE}.{project.package_schema}.atomic_store_event"
    rows = project.query(f"call {proc}(%s, %s, %s, %s)", ("balance_events", user_id, event, properties))
    return rows[0][0]


def test_build_records_an_event_per_eligible_user(project):
    project.deployed()
    project.dbt("build", "--select", "low_balance_users")
    events = project.atomic_get("users")["events"]
    assert set(events) == LOW_BALANCE_USERS
    assert all(counts == {"low-balance-detected": 1} for counts in events.values())
    assert project.status("balance_events") == dict.fromkeys(LOW_BALANCE_USERS, "delivered")
    analytics = [r for r in project.atomic_get("requests")["requests"] if r["endpoint"] == "analytics"]
    assert len(analytics) == 1  # four events, one request
    event = analytics[0]["body"]["data"][0]
    assert event["eventType"] == "custom"
    assert set(event["properties"]) == {"balance"}
    assert analytics[0]["headers"]["user-agent"].startswith("dbt_atomic/")
    assert token_requests(project) == 1


def test_many_calls_share_one_token_and_a_token_near_expiry_is_replaced(project):
    project.deployed()
    for user in ("user-001", "user-002", "user-003"):
        assert store_event(project, user).startswith("200")
    # three concurrent callers with a warm cache: still the one token
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda u: store_event(project, u), ["user-004", "user-005", "user-006"]))
    assert all(r.startswith("200") for r in results)
    assert token_requests(project) == 1

    # a token with less than the margin (5 minutes) of life left is replaced before use
    cache = f"{DATABASE}.{project.package_schema}.atomic_token_cache"
    project.query(f"update {cache} set expires_at_epoch = %s", (int(time.time()) + 60,))
    assert store_event(project, "user-007").startswith("200")
    assert token_requests(project) == 2
    (expires,) = project.query(f"select max(expires_at_epoch) from {cache}")[0]
    assert expires > time.time() + 3000


def test_concurrent_callers_with_an_empty_cache_fetch_one_token(project):
    project.deployed()
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda u: store_event(project, u), ["user-001", "user-002", "user-003"]))
    assert all(r.startswith("200") for r in results), results
    assert token_requests(project) == 1


def test_token_429_is_retried_and_a_401_refreshes_the_token(project):
    project.deployed()
    project.atomic_post("faults", {"endpoint": "token", "kind": "429", "count": 1, "retry_after": 0})
    assert store_event(project, "user-001").startswith("200")
    assert token_requests(project) == 2  # the 429, then the token

    project.atomic_post("tokens/expire")  # Atomic now answers 401 to the cached token
    assert store_event(project, "user-002").startswith("200")
    assert token_requests(project) == 3
    statuses = [r["status"] for r in project.atomic_get("requests")["requests"] if r["endpoint"] == "analytics"]
    assert statuses == [200, 401, 200]


def test_invalid_rows_are_reported_and_the_valid_ones_delivered(project):
    project.deployed()
    project.query("create or replace table risk_changes (user_id varchar, event varchar, props varchar, score number)")
    rows = [
        ("user-001", "risk-changed", '{"band": "high"}', 80),
        ("", "risk-changed", None, 10),
        (None, "risk-changed", None, 20),
        ("user-002", "risk changed!", None, 30),
        ("user-003", "risk-changed", "[1, 2]", 40),
        ("user-004", "risk-changed", None, 50),
    ]
    conn = project.connect()
    try:
        conn.cursor().executemany("insert into risk_changes values (%s, %s, %s, %s)", rows)
    finally:
        conn.close()
    request = {
        "destination": "balance_events",
        "source": f'"{DATABASE.upper()}"."{project.schema.upper()}"."RISK_CHANGES"',
        "user_id_column": "USER_ID",
        "payload_columns": ["SCORE"],
        "dedupe_columns": [],
        "event_name": None,
        "event_name_column": "EVENT",
        "properties_column": "PROPS",
        "invocation_id": None,
    }
    proc = f"{DATABASE}.{project.package_schema}.atomic_send"
    summary = json.loads(project.query(f"call {proc}(%s)", (json.dumps(request),))[0][0])
    assert summary["sent"] == 2
    assert summary["invalid"] == 4
    outcomes = project.query(
        f"select user_id, status, reason from {DATABASE}.{project.package_schema}.atomic_outcomes "
        "where destination = 'balance_events'"
    )
    by_status = {}
    for user, status, reason in outcomes:
        by_status.setdefault(status, []).append((user, reason))
    assert sorted(u for u, _ in by_status["delivered"]) == ["user-001", "user-004"]
    reasons = " | ".join(r for _, r in by_status["invalid"])
    assert "user id" in reasons and "event name" in reasons and "properties" in reasons
    events = project.atomic_get("users")["events"]
    assert set(events) == {"user-001", "user-004"}


def test_no_token_or_client_secret_anywhere(project):
    project.deployed()
    project.dbt("build")
    returned = store_event(project, "user-002")
    (token,) = project.query(f"select access_token from {DATABASE}.{project.package_schema}.atomic_token_cache")[0]
    assert token
    audit = json.dumps(
        project.query(f"select * from {DATABASE}.{project.package_schema}.atomic_attempts")
        + project.query(f"select * from {DATABASE}.{project.package_schema}.atomic_outcomes"),
        default=str,
    )
    haystacks = [*project.outputs, returned, audit, json.dumps(project.atomic_get("requests"))]
    for path in Path(project.workdir).rglob("*"):
        if path.is_file():
            haystacks.append(path.read_text(errors="replace"))
    for secret in (token, project.secrets.client_secret):
        for text in haystacks:
            assert secret not in text
