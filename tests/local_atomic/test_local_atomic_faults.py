"""Fault injection: 429, 5xx, delay and dropped connections, per endpoint."""

from __future__ import annotations

import time

import pytest
import requests
from local_atomic_helpers import UNSIGNED_TOKEN


def hook(atomic):
    return atomic.hook(UNSIGNED_TOKEN, [{"targetUserId": "u1"}], signed=False)


def test_429_with_retry_after(atomic):
    atomic.fault(endpoint="webhook", kind="429", count=2, retry_after=7)
    for _ in range(2):
        response = hook(atomic)
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "7"
    assert hook(atomic).status_code == 200
    # faulted requests deliver nothing
    assert atomic.admin("GET", "users")["webhook"] == {"unsigned": {"u1": 1}}


def test_429_without_retry_after(atomic):
    atomic.fault(endpoint="token", kind="429")
    response = atomic.get_token()
    assert response.status_code == 429
    assert "Retry-After" not in response.headers
    assert atomic.get_token().status_code == 200
    assert atomic.admin("GET", "stats")["token_requests"] == 2


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx(atomic, status):
    atomic.fault(endpoint="analytics", kind="5xx", status=status)
    token = atomic.access_token()
    event = {"eventName": "e", "eventType": "custom", "endUserId": "u1", "timestamp": "2026-12-04T10:00:00.000Z"}
    assert atomic.send_events([event], token).status_code == status
    assert atomic.send_events([event], token).status_code == 200
    assert atomic.admin("GET", "users")["events"] == {"u1": {"e": 1}}


def test_delay(atomic):
    atomic.fault(endpoint="webhook", kind="delay", delay_seconds=0.6)
    start = time.monotonic()
    response = hook(atomic)
    assert response.status_code == 200
    assert time.monotonic() - start >= 0.55
    # a delay longer than the client's timeout is a timeout
    atomic.fault(endpoint="webhook", kind="delay", delay_seconds=1.5)
    with pytest.raises(requests.Timeout):
        atomic.post(f"/x/connector/{UNSIGNED_TOKEN}", json={"targetUserId": "u1"}, timeout=0.3)
    start = time.monotonic()
    assert hook(atomic).status_code == 200
    assert time.monotonic() - start < 0.5


@pytest.mark.parametrize("endpoint", ["webhook", "token", "analytics"])
def test_drop_closes_the_connection_without_a_response(atomic, endpoint):
    atomic.fault(endpoint=endpoint, kind="drop", count=2)
    token = atomic.access_token() if endpoint == "analytics" else None
    event = {"eventName": "e", "eventType": "custom", "endUserId": "u1", "timestamp": "2026-12-04T10:00:00.000Z"}

    def call():
        if endpoint == "webhook":
            return hook(atomic)
        if endpoint == "token":
            return atomic.get_token()
        return atomic.send_events([event], token)

    for _ in range(2):
        with pytest.raises(requests.ConnectionError):
            call()
    assert call().status_code == 200
    dropped = [e for e in atomic.log(endpoint=endpoint) if e["verdict"] == "fault_drop"]
    assert len(dropped) == 2 and all(e["status"] is None for e in dropped)


def test_faults_queue_in_order_and_can_be_listed_and_cleared(atomic):
    atomic.fault(endpoint="webhook", kind="5xx", status=500)
    atomic.fault(endpoint="webhook", kind="429")
    pending = atomic.admin("GET", "faults")["pending"]["webhook"]
    assert [f["kind"] for f in pending] == ["5xx", "429"]
    assert hook(atomic).status_code == 500
    assert hook(atomic).status_code == 429
    assert hook(atomic).status_code == 200
    atomic.fault(endpoint="webhook", kind="429", count=5)
    atomic.admin("DELETE", "faults")
    assert hook(atomic).status_code == 200


def test_faults_are_per_endpoint(atomic):
    atomic.fault(endpoint="token", kind="5xx")
    assert hook(atomic).status_code == 200
    assert atomic.get_token().status_code == 503


@pytest.mark.parametrize(
    "spec",
    [
        {"endpoint": "nowhere", "kind": "429"},
        {"endpoint": "webhook", "kind": "teapot"},
        {"endpoint": "webhook", "kind": "5xx", "status": 404},
        {"endpoint": "webhook", "kind": "delay"},
        {"endpoint": "webhook", "kind": "429", "count": 0},
    ],
)
def test_bad_fault_is_rejected(atomic, spec):
    response = atomic.post("/_admin/faults", json=spec)
    assert response.status_code == 400
    assert atomic.admin("GET", "faults")["pending"]["webhook"] == []
