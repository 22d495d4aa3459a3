"""The OAuth2 client-credentials token endpoint."""

from __future__ import annotations

import base64
import time

from local_atomic_helpers import CLIENT_ID, CLIENT_SECRET

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
TOKEN_PATH = f"/oauth2/token?grant_type=client_credentials&client_id={CLIENT_ID}"


def test_token_is_issued_for_good_credentials(atomic):
    response = atomic.get_token()
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["token_type"] == "Bearer"
    assert data["expires_in"] == 3600
    assert len(data["access_token"]) >= 32
    assert atomic.admin("GET", "stats")["tokens_issued"] == 1


def test_bad_credentials_are_401(atomic):
    assert atomic.get_token(secret="wrong").status_code == 401
    assert atomic.get_token(client_id="nobody", secret=CLIENT_SECRET).status_code == 401
    assert atomic.post(TOKEN_PATH, headers=FORM).status_code == 401  # no Authorization
    other = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    mismatched = atomic.post(
        "/oauth2/token?grant_type=client_credentials&client_id=someone-else",
        headers={**FORM, "Authorization": f"Basic {other}"},
    )
    assert mismatched.status_code == 401
    assert mismatched.json()["error"] == "invalid_client"
    garbage = atomic.post(TOKEN_PATH, headers={**FORM, "Authorization": "Basic %%%"})
    assert garbage.status_code == 401
    stats = atomic.admin("GET", "stats")
    assert stats["token_requests"] == 5
    assert stats["tokens_issued"] == 0


def test_content_type_and_grant_type_are_checked(atomic):
    auth = (CLIENT_ID, CLIENT_SECRET)
    response = atomic.post(TOKEN_PATH, auth=auth, headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
    response = atomic.post(f"/oauth2/token?grant_type=password&client_id={CLIENT_ID}", auth=auth, headers=FORM)
    assert response.status_code == 400 and response.json()["error"] == "unsupported_grant_type"
    # grant_type in the form body is accepted too
    response = atomic.post(f"/oauth2/token?client_id={CLIENT_ID}", auth=auth, data={"grant_type": "client_credentials"})
    assert response.status_code == 200, response.text


def test_tokens_expire(atomic):
    config = atomic.admin("GET", "config?reveal=true")
    config["token"]["expires_in"] = 1
    atomic.configure(config)
    response = atomic.get_token()
    assert response.json()["expires_in"] == 1
    token = response.json()["access_token"]
    event = {"eventName": "e", "eventType": "custom", "endUserId": "u1", "timestamp": "2026-12-04T10:00:00.000Z"}
    assert atomic.send_events([event], token).status_code == 200
    time.sleep(1.1)
    response = atomic.send_events([event], token)
    assert response.status_code == 401
    assert "expired" in response.json()["error"]["message"]


def test_admin_expire_tokens(atomic):
    token = atomic.access_token()
    event = {"eventName": "e", "eventType": "custom", "endUserId": "u1", "timestamp": "2026-12-04T10:00:00.000Z"}
    assert atomic.send_events([event], token).status_code == 200
    assert atomic.admin("POST", "tokens/expire")["expired"] == 1
    assert atomic.send_events([event], token).status_code == 401
    assert atomic.send_events([event], atomic.access_token()).status_code == 200


def test_rate_limit_answers_429(atomic):
    config = atomic.admin("GET", "config?reveal=true")
    config["token"]["rate_limit"] = {"requests": 3, "per_seconds": 60}
    atomic.configure(config)
    assert [atomic.get_token().status_code for _ in range(3)] == [200, 200, 200]
    limited = atomic.get_token()
    assert limited.status_code == 429
    assert "Retry-After" not in limited.headers
    assert atomic.admin("GET", "stats")["token_requests"] == 4
    config["token"]["rate_limit"] = {"requests": 3, "per_seconds": 60, "retry_after": True}
    atomic.configure(config)
    limited = atomic.get_token()
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 60


def test_rate_limit_window_frees_up(atomic):
    config = atomic.admin("GET", "config?reveal=true")
    config["token"]["rate_limit"] = {"requests": 1, "per_seconds": 0.5}
    atomic.configure(config)
    assert atomic.get_token().status_code == 200
    assert atomic.get_token().status_code == 429
    time.sleep(0.6)
    assert atomic.get_token().status_code == 200
