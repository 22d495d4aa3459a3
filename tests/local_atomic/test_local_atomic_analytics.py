"""The Analytics API: authentication, User-Agent and event validation."""

from __future__ import annotations

import pytest
from local_atomic_helpers import ENVIRONMENT
from urllib3.util import SKIP_HEADER


def event(**changes):
    base = {
        "eventName": "low-balance",
        "eventType": "custom",
        "endUserId": "u1",
        "timestamp": "2026-12-04T10:00:00.000Z",
        "properties": {"balance": 12.5},
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not ...}


def test_valid_events_are_recorded_per_user(atomic):
    token = atomic.access_token()
    events = [event(), event(endUserId="u2"), event(eventName="other", properties=...)]
    response = atomic.send_events(events, token)
    assert response.status_code == 200, response.text
    assert response.json() == {"data": {"accepted": 3}}
    assert atomic.admin("GET", "users")["events"] == {"u1": {"low-balance": 1, "other": 1}, "u2": {"low-balance": 1}}
    assert atomic.admin("GET", "stats")["analytics_requests"] == 1


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (event(eventName=...), "eventName"),
        (event(eventName=""), "eventName"),
        (event(eventName="has spaces!"), "eventName"),
        (event(eventName=7), "eventName"),
        (event(eventType=...), "eventType"),
        (event(eventType="track"), "eventType"),
        (event(endUserId=...), "endUserId"),
        (event(endUserId=""), "endUserId"),
        (event(endUserId=123), "endUserId"),
        (event(timestamp=...), "timestamp"),
        (event(timestamp="2026-12-04T10:00:00.000000Z"), "timestamp"),
        (event(timestamp="2026-12-04T10:00:00Z"), "timestamp"),
        (event(timestamp="2026-12-04T10:00:00.000+00:00"), "timestamp"),
        (event(timestamp="2026-12-04 10:00:00.000Z"), "timestamp"),
        (event(timestamp="2026-13-04T10:00:00.000Z"), "timestamp"),
        (event(timestamp=1764842400000), "timestamp"),
        (event(properties="balance=1"), "properties"),
        (event(properties=[1, 2]), "properties"),
        ("not an object", "data[1]"),
    ],
)
def test_bad_event_fails_naming_field_and_index(atomic, bad, field):
    token = atomic.access_token()
    response = atomic.send_events([event(), bad], token)
    assert response.status_code == 400, response.text
    message = response.json()["error"]["message"]
    assert "data[1]" in message and field in message
    assert atomic.admin("GET", "users")["events"] == {}


def test_event_name_pattern_is_configurable(atomic):
    config = atomic.admin("GET", "config?reveal=true")
    config["analytics"]["event_name_pattern"] = "^atomic_[a-z]+$"
    atomic.configure(config)
    token = atomic.access_token()
    assert atomic.send_events([event()], token).status_code == 400
    assert atomic.send_events([event(eventName="atomic_ok")], token).status_code == 200


def test_body_shape(atomic):
    token = atomic.access_token()
    for body in ({"data": []}, {"data": {"eventName": "x"}}, {"events": [event()]}):
        response = atomic.send_events(body, token)
        assert response.status_code == 400, body
        assert "data" in response.json()["error"]["message"]
    response = atomic.post(
        f"/v1/{ENVIRONMENT}/analytics",
        data=b"{not json",
        headers={"Authorization": f"Bearer {token}", "User-Agent": "t"},
    )
    assert response.status_code == 400


def test_user_agent_is_required(atomic):
    token = atomic.access_token()
    response = atomic.send_events([event()], token, **{"User-Agent": SKIP_HEADER})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "user_agent_missing"
    assert atomic.log()[-1]["headers"].get("user-agent") is None
    assert atomic.send_events([event()], token, **{"User-Agent": ""}).status_code == 400
    assert atomic.admin("GET", "users")["events"] == {}


def test_bearer_token_is_required_and_checked(atomic):
    assert atomic.send_events([event()], None).status_code == 401
    assert atomic.send_events([event()], "made-up-token").status_code == 401
    response = atomic.post(
        f"/v1/{ENVIRONMENT}/analytics",
        json={"data": [event()]},
        headers={"Authorization": "Basic abc", "User-Agent": "t"},
    )
    assert response.status_code == 401
    assert atomic.admin("GET", "users")["events"] == {}


def test_unknown_environment_is_404(atomic):
    token = atomic.access_token()
    response = atomic.post(
        "/v1/other-env/analytics", json={"data": [event()]}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 404


def test_max_events_per_request(atomic):
    config = atomic.admin("GET", "config?reveal=true")
    config["analytics"]["max_events_per_request"] = 2
    atomic.configure(config)
    token = atomic.access_token()
    assert atomic.send_events([event()] * 3, token).status_code == 400
    assert atomic.send_events([event()] * 2, token).status_code == 200


def test_loose_timestamps_when_not_strict(atomic):
    config = atomic.admin("GET", "config?reveal=true")
    config["analytics"]["strict_timestamp"] = False
    atomic.configure(config)
    token = atomic.access_token()
    assert atomic.send_events([event(timestamp="2026-12-04T10:00:00.123456Z")], token).status_code == 200
    assert atomic.send_events([event(timestamp="2026-12-04T10:00:00+01:00")], token).status_code == 400
