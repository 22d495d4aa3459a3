"""The handlers in-process, against fakesnow (Snowpark) and the local Atomic emulator."""

from __future__ import annotations

import datetime
import decimal
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from handler_env import (
    CLIENT_ID,
    CLIENT_SECRET,
    ENVIRONMENT,
    SIGNING_SECRET,
    WEBHOOK_TOKEN,
    WRONG_WEBHOOK_TOKEN,
)

from dbt_atomic_handlers import atomic_handler as h

USERS_COLUMNS = "USER_ID varchar, BALANCE number(10,2), NOTIFY_DATE date"
TODAY = datetime.date(2026, 12, 4)


def make_settings(warehouse, atomic, http=None, batch=None) -> str:
    return json.dumps(
        {
            "package_version": "0.1.0-test",
            "tables": warehouse.tables,
            "http": {
                "timeout_seconds": 5,
                "max_attempts": 3,
                "backoff_base_seconds": 0.01,
                "backoff_max_seconds": 0.2,
                "concurrency": 2,
                **(http or {}),
            },
            "batch": {"max_rows": 500, "max_bytes": 1000000, **(batch or {})},
            "destinations": {
                "low_balance": {
                    "kind": "webhook",
                    "url_secret": "low_balance_url",
                    "signing_secret": "low_balance_signing_secret",
                    "user_id_field": "targetUserId",
                },
                "wrong_secret": {
                    "kind": "webhook",
                    "url_secret": "wrong_url",
                    "signing_secret": "low_balance_signing_secret",
                    "user_id_field": "targetUserId",
                },
                "balance_events": {
                    "kind": "events",
                    "api_url": f"{atomic.url}/v1/{ENVIRONMENT}/analytics",
                    "oauth_url": f"{atomic.url}/oauth2/token",
                    "credentials_secret": "balance_events_credentials",
                    "event_name": "low-balance",
                    "max_events_per_request": 100,
                    "token_margin_seconds": 300,
                },
            },
        }
    )


@pytest.fixture
def env(warehouse, atomic, secrets):
    secrets["low_balance_url"] = f"{atomic.url}/hooks/connector/{WEBHOOK_TOKEN}"
    secrets["wrong_url"] = f"{atomic.url}/hooks/connector/{WRONG_WEBHOOK_TOKEN}"
    secrets["low_balance_signing_secret"] = SIGNING_SECRET
    secrets["balance_events_credentials"] = (CLIENT_ID, CLIENT_SECRET)
    return warehouse


def users_source(warehouse, n=3, name="USERS", extra=()):
    rows = [(f"user-{i}", decimal.Decimal(f"{i}.50"), TODAY) for i in range(1, n + 1)]
    return warehouse.source(name, USERS_COLUMNS, rows + list(extra))


def webhook_request(source, destination="low_balance", **extra):
    return json.dumps(
        {
            "destination": destination,
            "source": source,
            "user_id_column": "USER_ID",
            "payload_columns": ["BALANCE", "NOTIFY_DATE"],
            "dedupe_columns": ["NOTIFY_DATE"],
            "invocation_id": "inv-1",
            **extra,
        }
    )


def events_request(source, **extra):
    return json.dumps(
        {
            "destination": "balance_events",
            "source": source,
            "user_id_column": "USER_ID",
            "payload_columns": ["BALANCE"],
            "dedupe_columns": ["NOTIFY_DATE"],
            "invocation_id": "inv-ev",
            **extra,
        }
    )


def statuses(warehouse) -> dict:
    out: dict = {}
    for row in warehouse.outcomes():
        out.setdefault(row["STATUS"], []).append(row["USER_ID"])
    return {k: sorted(v, key=str) for k, v in out.items()}


# ------------------------------------------------------------------ webhook


def test_signed_batch_is_verified_and_delivered(env, atomic, snow):
    source = users_source(env, 3)
    summary = json.loads(h.send(snow, webhook_request(source), make_settings(env, atomic)))
    assert summary["status"] == "ok"
    assert (summary["sent"], summary["batches"], summary["failed"], summary["skipped"]) == (3, 1, 0, 0)
    assert summary["kind"] == "webhook" and summary["destination"] == "low_balance"

    [req] = atomic.requests("webhook")
    assert (req["status"], req["verdict"]) == (200, "accepted")
    body = req["body"]
    assert sorted(body, key=lambda o: o["targetUserId"]) == [
        {"targetUserId": f"user-{i}", "balance": float(f"{i}.5"), "notify_date": "2026-12-04"} for i in (1, 2, 3)
    ]
    assert atomic.admin("GET", "users")["webhook"]["low_balance"] == {"user-1": 1, "user-2": 1, "user-3": 1}
    assert statuses(env) == {"delivered": ["user-1", "user-2", "user-3"]}
    outcome = env.outcomes()[0]
    assert outcome["DEDUPE_KEY"] == f"user-1|{TODAY.isoformat()}"
    assert outcome["INVOCATION_ID"] == "inv-1" and outcome["RUN_ID"] == summary["run_id"]
    [attempt] = env.attempts()
    assert (attempt["ATTEMPT"], attempt["HTTP_STATUS"], attempt["ROWS_IN_BATCH"]) == (1, 200, 3)
    assert attempt["BYTES_IN_BATCH"] == len(json.dumps(body, separators=(",", ":")))


def test_wrong_signing_secret_is_recorded_as_failed(env, atomic, snow):
    source = users_source(env, 2)
    summary = json.loads(h.send(snow, webhook_request(source, "wrong_secret"), make_settings(env, atomic)))
    assert (summary["status"], summary["failed"], summary["sent"]) == ("failed", 2, 0)
    [req] = atomic.requests("webhook")
    assert req["status"] == 401
    assert statuses(env) == {"failed": ["user-1", "user-2"]}
    reasons = {r["REASON"] for r in env.outcomes()}
    assert len(reasons) == 1 and reasons.pop().startswith("HTTP 401")
    assert len(env.attempts()) == 1  # a 401 is not retried


def test_batches_are_bounded_by_rows(env, atomic, snow):
    source = users_source(env, 10)
    settings = make_settings(env, atomic, batch={"max_rows": 3})
    summary = json.loads(h.send(snow, webhook_request(source), settings))
    assert (summary["sent"], summary["batches"]) == (10, 4)
    sizes = sorted(len(r["users"]) for r in atomic.requests("webhook"))
    assert sizes == [1, 3, 3, 3]
    assert len({r["BATCH_ID"] for r in env.outcomes()}) == 4


def test_batches_are_bounded_by_bytes(env, atomic, snow):
    source = users_source(env, 10)
    one = len('{"targetUserId":"user-1","balance":1.5,"notify_date":"2026-12-04"}')
    max_bytes = 2 + 3 * one + 2  # three objects, their commas and brackets
    settings = make_settings(env, atomic, batch={"max_bytes": max_bytes})
    summary = json.loads(h.send(snow, webhook_request(source), settings))
    assert summary["sent"] == 10
    reqs = atomic.requests("webhook")
    assert len(reqs) == summary["batches"] >= 4
    sizes = [int(r["headers"]["content-length"]) for r in reqs]
    assert max(sizes) <= max_bytes and max(sizes) > max_bytes - one  # full batches, none over the bound
    assert max(len(r["users"]) for r in reqs) == 3


def test_429_then_success_is_retried(env, atomic, snow):
    atomic.fault(endpoint="webhook", kind="429", count=2, retry_after=0)
    source = users_source(env, 2)
    summary = json.loads(h.send(snow, webhook_request(source), make_settings(env, atomic)))
    assert (summary["status"], summary["sent"], summary["batches"]) == ("ok", 2, 1)
    assert [r["status"] for r in atomic.requests("webhook")] == [429, 429, 200]
    assert [(a["ATTEMPT"], a["HTTP_STATUS"]) for a in env.attempts()] == [(1, 429), (2, 429), (3, 200)]
    assert statuses(env) == {"delivered": ["user-1", "user-2"]}


def test_failure_then_success_on_the_next_call_then_nothing(env, atomic, snow):
    atomic.fault(endpoint="webhook", kind="5xx", status=503, count=3)
    source = users_source(env, 2)
    settings = make_settings(env, atomic)
    first = json.loads(h.send(snow, webhook_request(source), settings))
    assert (first["status"], first["failed"], first["sent"]) == ("failed", 2, 0)
    assert all("503" in r["REASON"] and "after 3 attempts" in r["REASON"] for r in env.outcomes())

    second = json.loads(h.send(snow, webhook_request(source), settings))
    assert (second["status"], second["sent"], second["skipped"]) == ("ok", 2, 0)

    before = len(atomic.requests("webhook"))
    third = json.loads(h.send(snow, webhook_request(source), settings))
    assert (third["sent"], third["skipped"], third["batches"]) == (0, 2, 0)
    assert len(atomic.requests("webhook")) == before
    skipped = [r for r in env.outcomes() if r["RUN_ID"] == third["run_id"]]
    assert {(r["STATUS"], r["REASON"]) for r in skipped} == {("skipped", "already_delivered")}


def test_duplicates_in_source_are_skipped(env, atomic, snow):
    dupes = [("user-1", decimal.Decimal("9.99"), TODAY), ("user-1", decimal.Decimal("8.88"), TODAY)]
    other_day = [("user-1", decimal.Decimal("7.77"), TODAY - datetime.timedelta(days=1))]
    source = users_source(env, 2, extra=dupes + other_day)
    summary = json.loads(h.send(snow, webhook_request(source), make_settings(env, atomic)))
    assert (summary["sent"], summary["skipped"]) == (3, 2)
    skipped = [r for r in env.outcomes() if r["STATUS"] == "skipped"]
    assert {(r["USER_ID"], r["REASON"]) for r in skipped} == {("user-1", "duplicate_in_source")}
    assert atomic.admin("GET", "users")["webhook"]["low_balance"] == {"user-1": 2, "user-2": 1}


def test_invalid_rows_are_reported_and_valid_ones_delivered(env, atomic, snow):
    bad = [(None, decimal.Decimal("1"), TODAY), ("  ", decimal.Decimal("2"), TODAY)]
    source = users_source(env, 2, extra=bad)
    summary = json.loads(h.send(snow, webhook_request(source), make_settings(env, atomic)))
    assert (summary["status"], summary["sent"], summary["invalid"]) == ("ok", 2, 2)
    invalid = [r for r in env.outcomes() if r["STATUS"] == "invalid"]
    assert [r["REASON"] for r in invalid] == ["missing user id", "missing user id"]
    assert statuses(env)["delivered"] == ["user-1", "user-2"]


def test_timeout_is_failed_with_unknown_outcome(env, atomic, snow):
    atomic.fault(endpoint="webhook", kind="delay", delay_seconds=2, count=1)
    source = users_source(env, 1)
    settings = make_settings(env, atomic, http={"timeout_seconds": 0.5, "max_attempts": 1})
    summary = json.loads(h.send(snow, webhook_request(source), settings))
    assert summary["failed"] == 1
    [outcome] = env.outcomes()
    assert "outcome unknown" in outcome["REASON"]
    assert WEBHOOK_TOKEN not in outcome["REASON"]


def test_dropped_connection_leaves_no_secret_anywhere(env, atomic, snow):
    atomic.fault(endpoint="webhook", kind="drop", count=1)
    source = users_source(env, 1)
    settings = make_settings(env, atomic, http={"max_attempts": 1})
    result = h.send(snow, webhook_request(source), settings)
    summary = json.loads(result)
    assert summary["failed"] == 1
    texts = [result] + [str(v) for row in env.outcomes() + env.attempts() for v in row.values()]
    assert "outcome unknown" in env.outcomes()[0]["REASON"]
    for secret in (WEBHOOK_TOKEN, SIGNING_SECRET, CLIENT_SECRET):
        assert not any(secret in t for t in texts)


def test_post_signs_the_payload_verbatim(env, atomic, snow):
    payload = '{"targetUserId": "user-123",  "balance": 1500}'
    result = h.post(snow, "low_balance", payload, make_settings(env, atomic))
    assert result.startswith("200: ")
    [req] = atomic.requests("webhook")
    assert req["verdict"] == "accepted"  # the signature over the bytes sent was verified
    assert req["body"] == json.loads(payload)
    assert int(req["headers"]["content-length"]) == len(payload.encode())  # sent verbatim


def test_post_connection_error_hides_the_url(env, atomic, snow, secrets):
    secrets["low_balance_url"] = f"http://127.0.0.1:9/hooks/connector/{WEBHOOK_TOKEN}"
    with pytest.raises(h.AtomicError) as info:
        h.post(snow, "low_balance", "{}", make_settings(env, atomic))
    assert WEBHOOK_TOKEN not in str(info.value)
    assert "ConnectionError" in str(info.value)


def test_unset_secret_is_a_clear_error(env, atomic, snow, secrets):
    secrets["low_balance_signing_secret"] = "dbt_atomic:unset"
    with pytest.raises(h.AtomicError, match=r"low_balance_signing_secret.*not set"):
        h.send(snow, webhook_request(users_source(env, 1)), make_settings(env, atomic))
    assert atomic.requests("webhook") == []


def test_request_errors_name_the_problem(env, atomic, snow):
    settings = make_settings(env, atomic)
    with pytest.raises(h.AtomicError, match="unknown destination 'nope'"):
        h.send(snow, webhook_request('"DB"."S"."T"', "nope"), settings)
    with pytest.raises(h.AtomicError, match="source must be a table name"):
        h.send(snow, webhook_request("t; drop table x"), settings)
    with pytest.raises(h.AtomicError, match="event_name applies to events"):
        h.send(snow, webhook_request('"DB"."S"."T"', event_name="x"), settings)


# ------------------------------------------------------------------ events


def token_row(warehouse) -> dict:
    [row] = warehouse.rows(warehouse.tables["token_cache"])
    return row


def test_events_many_calls_share_one_token(env, atomic, snow):
    settings = make_settings(env, atomic)
    for day in range(3):
        rows = [(f"user-{i}", decimal.Decimal(i), TODAY + datetime.timedelta(days=day)) for i in range(3)]
        source = env.source(f"EV{day}", USERS_COLUMNS, rows)
        summary = json.loads(h.send(snow, events_request(source), settings))
        assert (summary["status"], summary["sent"], summary["kind"]) == ("ok", 3, "events")
    assert h.store_event(snow, "balance_events", "user-9", None, '{"x": 1}', settings).startswith("200: ")
    stats = atomic.stats()
    assert (stats["token_requests"], stats["analytics_requests"]) == (1, 4)
    reqs = atomic.requests("analytics")
    event = reqs[0]["body"]["data"][0]
    assert event["eventName"] == "low-balance" and event["eventType"] == "custom"
    balances = sorted(e["properties"]["balance"] for e in reqs[0]["body"]["data"])
    assert balances == [0, 1, 2] and all(isinstance(b, int) for b in balances)
    assert event["timestamp"].endswith("Z") and len(event["timestamp"]) == len("2026-12-04T10:00:00.000Z")
    assert reqs[0]["headers"]["user-agent"] == "dbt_atomic/0.1.0-test"
    assert reqs[-1]["body"]["data"][0]["properties"] == {"x": 1}


def test_events_batches_up_to_max_events_per_request(env, atomic, snow):
    settings = json.loads(make_settings(env, atomic))
    settings["destinations"]["balance_events"]["max_events_per_request"] = 4
    source = users_source(env, 10)
    summary = json.loads(h.send(snow, events_request(source), json.dumps(settings)))
    assert (summary["sent"], summary["batches"]) == (10, 3)
    assert sorted(len(r["body"]["data"]) for r in atomic.requests("analytics")) == [2, 4, 4]


def test_events_token_near_expiry_is_replaced(env, atomic, snow):
    settings = make_settings(env, atomic)
    source = users_source(env, 1)
    h.send(snow, events_request(source), settings)
    old = token_row(env)
    snow.sql(
        f"update {env.tables['token_cache']} set expires_at_epoch = ?",
        params=[int(time.time()) + 100],  # within the 300 s margin
    ).collect()
    h.store_event(snow, "balance_events", "user-1", "other-event", None, settings)
    new = token_row(env)
    assert atomic.stats()["token_requests"] == 2
    assert new["ACCESS_TOKEN"] != old["ACCESS_TOKEN"]
    assert new["EXPIRES_AT_EPOCH"] > time.time() + 3000
    assert new["LEASE_OWNER"] is None


def test_events_token_429_then_success(env, atomic, snow):
    atomic.fault(endpoint="token", kind="429", count=1, retry_after=0)
    summary = json.loads(h.send(snow, events_request(users_source(env, 2)), make_settings(env, atomic)))
    assert (summary["status"], summary["sent"]) == ("ok", 2)
    assert [r["status"] for r in atomic.requests("token")] == [429, 200]


def test_events_401_refreshes_the_token_once(env, atomic, snow):
    settings = make_settings(env, atomic)
    h.send(snow, events_request(users_source(env, 1, name="FIRST")), settings)
    atomic.admin("POST", "tokens/expire")
    summary = json.loads(h.send(snow, events_request(users_source(env, 2, name="SECOND")), settings))
    assert (summary["status"], summary["sent"]) == ("ok", 1)  # user-1 was delivered by the first call
    assert [r["status"] for r in atomic.requests("analytics")] == [200, 401, 200]
    assert atomic.stats()["token_requests"] == 2
    run = [a for a in env.attempts() if a["RUN_ID"] == summary["run_id"]]
    assert [(a["ATTEMPT"], a["HTTP_STATUS"]) for a in run] == [(1, 401), (2, 200)]


def test_events_invalid_rows(env, atomic, snow):
    columns = "USER_ID varchar, NOTIFY_DATE date, EVENT varchar, PROPS varchar"
    rows = [
        ("user-1", TODAY, "good-event", '{"a": 1}'),
        ("user-2", TODAY, "9bad", None),
        ("user-3", TODAY, "good-event", "[1, 2]"),
        ("", TODAY, "good-event", None),
        ("user-5", TODAY, "good_event", None),
    ]
    source = env.source("EVENTS", columns, rows)
    request = events_request(source, payload_columns=None, event_name_column="EVENT", properties_column="PROPS")
    summary = json.loads(h.send(snow, request, make_settings(env, atomic)))
    assert (summary["sent"], summary["invalid"]) == (2, 3)
    reasons = {r["USER_ID"]: r["REASON"] for r in env.outcomes() if r["STATUS"] == "invalid"}
    assert "does not match" in reasons["user-2"]
    assert reasons["user-3"] == "properties is not a JSON object"
    assert reasons[""] == "missing user id"
    events = atomic.requests("analytics")[0]["body"]["data"]
    by_user = {e["endUserId"]: e for e in events}
    assert by_user["user-1"]["properties"] == {"notify_date": "2026-12-04", "a": 1}
    assert by_user["user-5"]["eventName"] == "good_event"


def test_events_no_secret_in_results_or_audit(env, atomic, snow):
    settings = make_settings(env, atomic)
    results = [h.send(snow, events_request(users_source(env, 2)), settings)]
    atomic.admin("POST", "tokens/expire")
    atomic.fault(endpoint="token", kind="5xx", status=500, count=10)
    results.append(
        h.send(snow, events_request(users_source(env, 2, name="AGAIN"), dedupe_columns=["BALANCE"]), settings)
    )
    assert json.loads(results[-1])["status"] == "failed"
    cached = token_row(env)["ACCESS_TOKEN"]  # the token of the first call, expired since
    texts = results + [str(v) for row in env.outcomes() + env.attempts() for v in row.values()]
    for secret in [CLIENT_SECRET, cached]:
        assert not any(secret in t for t in texts)
    assert any("no access token" in t for t in texts)


def fetch_token(atomic) -> str:
    response = requests.post(
        f"{atomic.url}/oauth2/token?grant_type=client_credentials&client_id={CLIENT_ID}",
        auth=(CLIENT_ID, CLIENT_SECRET),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    response.raise_for_status()
    return response.json()["access_token"]


def test_events_wait_for_the_lease_holder(env, atomic, snow, other_session):
    table = env.tables["token_cache"]
    snow.sql(
        f"insert into {table} (cache_key, lease_owner, lease_until_epoch) values (?, 'other', ?)",
        params=[CLIENT_ID, int(time.time()) + 30],
    ).collect()
    token = fetch_token(atomic)

    # The caller runs in a thread; this thread plays the lease holder that finishes later.
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(h.send, snow, events_request(users_source(env, 2)), make_settings(env, atomic))
        time.sleep(1.0)
        assert not future.done()  # still waiting for the holder
        other_session.sql(
            f"update {table} set access_token = ?, expires_at_epoch = ?, lease_owner = null, "
            "lease_until_epoch = null where cache_key = ?",
            params=[token, int(time.time()) + 3600, CLIENT_ID],
        ).collect()
        summary = json.loads(future.result(timeout=30))
    assert summary["sent"] == 2
    assert time.monotonic() - started >= 1.0
    assert atomic.stats()["token_requests"] == 1  # only the holder's (this test's) request


def test_events_take_over_an_expired_lease(env, atomic, snow):
    snow.sql(
        f"insert into {env.tables['token_cache']} (cache_key, lease_owner, lease_until_epoch) values (?, 'gone', ?)",
        params=[CLIENT_ID, int(time.time()) - 5],
    ).collect()
    summary = json.loads(h.send(snow, events_request(users_source(env, 1)), make_settings(env, atomic)))
    assert summary["sent"] == 1
    row = token_row(env)
    assert atomic.stats()["token_requests"] == 1
    assert row["ACCESS_TOKEN"] and row["LEASE_OWNER"] is None and row["LEASE_UNTIL_EPOCH"] is None
