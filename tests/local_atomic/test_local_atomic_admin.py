"""The admin API: request log and its masking, reset, configuration."""

from __future__ import annotations

import base64
import datetime
import json
import time

from local_atomic_helpers import (
    CLIENT_ID,
    CLIENT_SECRET,
    SIGNED_TOKEN,
    SIGNING_SECRET,
    TEST_MODE_TOKEN,
    UNSIGNED_TOKEN,
    signed_headers,
)

EVENT = {"eventName": "e", "eventType": "custom", "endUserId": "u1", "timestamp": "2026-12-04T10:00:00.000Z"}


def test_health(atomic):
    assert atomic.admin("GET", "health") == {"ok": True, "triggers": 3}


def test_request_log_masks_secrets(atomic, atomic_server):
    body = json.dumps([{"targetUserId": "u1", "balance": 1}]).encode()
    headers = signed_headers(body)
    signature = headers["x-signature"]
    assert atomic.post(f"/hooks/connector/{SIGNED_TOKEN}", data=body, headers=headers).status_code == 200
    assert atomic.hook(SIGNED_TOKEN, {"targetUserId": "u2"}, signed=False).status_code == 401
    token = atomic.access_token()
    assert atomic.send_events([EVENT], token).status_code == 200
    # a client secret sent in the form body is masked too
    form = {"grant_type": "client_credentials", "client_secret": CLIENT_SECRET}
    atomic.post(f"/oauth2/token?client_id={CLIENT_ID}", data=form, auth=(CLIENT_ID, CLIENT_SECRET))

    log = atomic.log()
    text = json.dumps(log)
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    for secret in (SIGNED_TOKEN, SIGNING_SECRET, signature, signature[3:67], CLIENT_SECRET, basic, token):
        assert secret not in text
    assert log[0]["path"] == "/hooks/connector/***"
    assert log[0]["headers"]["x-signature"] == "***"
    assert log[0]["body"] == [{"targetUserId": "u1", "balance": 1}]
    assert log[0]["trigger"] == "signed"
    assert log[0]["users"] == ["u1"]
    assert log[2]["headers"]["authorization"] == "Basic ***"
    assert log[3]["headers"]["authorization"] == "Bearer ***"
    assert log[3]["users"] == ["u1"]
    assert [e["status"] for e in log] == [200, 401, 200, 200, 200]
    # the configuration as shown hides secrets unless asked
    shown = atomic.get("/_admin/config").text
    for secret in (SIGNED_TOKEN, UNSIGNED_TOKEN, TEST_MODE_TOKEN, SIGNING_SECRET, CLIENT_SECRET):
        assert secret not in shown
    assert SIGNING_SECRET in atomic.get("/_admin/config?reveal=true").text
    # and the server's own output never carries them
    server_output = atomic_server[1].read_text(errors="replace") if atomic_server[1].exists() else ""
    for secret in (SIGNED_TOKEN, SIGNING_SECRET, CLIENT_SECRET, basic, token):
        assert secret not in server_output


def test_request_log_filters_and_cap(atomic):
    config = atomic.admin("GET", "config?reveal=true")
    config["request_log"] = {"limit": 5}
    atomic.configure(config)
    for i in range(8):
        atomic.hook(UNSIGNED_TOKEN, {"targetUserId": f"u{i}"}, signed=False)
    atomic.get_token()
    log = atomic.log()
    assert [e["id"] for e in log] == [5, 6, 7, 8, 9]
    assert [e["endpoint"] for e in atomic.log(endpoint="token")] == ["token"]
    assert [e["id"] for e in atomic.log(since=7)] == [8, 9]
    assert [e["id"] for e in atomic.log(limit=2)] == [8, 9]
    assert atomic.get("/_admin/requests?endpoint=nope").status_code == 400


def test_reset_forgets_everything_but_the_configuration(atomic):
    atomic.hook(UNSIGNED_TOKEN, [{"targetUserId": "u1"}], signed=False)
    token = atomic.access_token()
    atomic.send_events([EVENT], token)
    atomic.fault(endpoint="webhook", kind="429", count=3)
    atomic.admin("POST", f"triggers/{UNSIGNED_TOKEN}/sample")
    atomic.admin("POST", "reset")
    assert atomic.log() == []
    assert atomic.admin("GET", "users") == {"webhook": {}, "events": {}}
    stats = atomic.admin("GET", "stats")
    assert stats["token_requests"] == stats["webhook_requests"] == stats["tokens_issued"] == 0
    assert atomic.admin("GET", "faults")["pending"]["webhook"] == []
    assert atomic.send_events([EVENT], token).status_code == 401  # tokens forgotten
    # the configuration is kept, the sample disarmed, the fault gone
    assert atomic.hook(UNSIGNED_TOKEN, [{"targetUserId": "u1"}], signed=False).status_code == 200


def test_config_replace_validates(atomic):
    bad_configs = [
        {"triggers": {"t": {"mode": "staging"}}},
        {"triggers": {"t": {"signing": {"secret": "s", "algorithm": "md5", "data": {"signature": {"header": "h"}}}}}},
        {"triggers": {"t": {"signing": {"secret": "s", "data": {"signature": {"header": "h"}}, "template": "x"}}}},
        {"token": {"expires_in": 0}},
        {"analytics": {"event_name_pattern": "("}},
        {"surprise": 1},
    ]
    for bad in bad_configs:
        response = atomic.put("/_admin/config", json=bad)
        assert response.status_code == 400, bad
        assert response.json()["error"]
    assert atomic.admin("GET", "health")["triggers"] == 3  # unchanged
    atomic.configure({"triggers": {}})
    assert atomic.hook(UNSIGNED_TOKEN, {"targetUserId": "u1"}, signed=False).status_code == 404


def test_trigger_put_and_delete(atomic):
    atomic.admin("PUT", "triggers/new-token-1", {"name": "fresh", "mode": "live", "mapping": {"user_id": "id"}})
    assert atomic.hook("new-token-1", {"id": "a"}, signed=False).status_code == 200
    assert atomic.admin("GET", "users")["webhook"] == {"fresh": {"a": 1}}
    atomic.admin("DELETE", "triggers/new-token-1")
    assert atomic.hook("new-token-1", {"id": "a"}, signed=False).status_code == 404


def test_request_log_records_timing_fields(atomic):
    before = time.time()
    atomic.hook(UNSIGNED_TOKEN, {"targetUserId": "u1"}, signed=False)
    [entry] = atomic.log()
    at = datetime.datetime.fromisoformat(entry["at"]).timestamp()
    assert before - 1 <= at <= time.time() + 1
    assert entry["at"].endswith("+00:00")
    assert entry["method"] == "POST" and entry["endpoint"] == "webhook"
