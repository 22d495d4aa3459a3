"""Constants and a small HTTP client for the local Atomic tests."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import requests

from dbt_atomic_local.atomic import presets

TIMEOUT = 10

SIGNED_TOKEN = "conn-signed-5f1c9a7e2b8d4c60a3"
UNSIGNED_TOKEN = "conn-unsigned-9b2e7d41f0c3a856"
TEST_MODE_TOKEN = "conn-testmode-0d8a3f6c1e9b2754"
SIGNING_SECRET = "sign-secret-c0ffee1234abcd"
CLIENT_ID = "client-abc"
CLIENT_SECRET = "client-secret-7e3d9c1b55aa"
ENVIRONMENT = "env-123"

SHARED_HEADER_SIGNING = presets.tutorial_signing(SIGNING_SECRET)
MAPPING = {"user_id": "targetUserId", "variables": {"balance": "balance"}}

BASE_CONFIG: dict[str, Any] = {
    "triggers": {
        SIGNED_TOKEN: {"name": "signed", "mode": "live", "signing": SHARED_HEADER_SIGNING, "mapping": MAPPING},
        UNSIGNED_TOKEN: {"name": "unsigned", "mode": "live", "signing": None, "mapping": MAPPING},
        TEST_MODE_TOKEN: {
            "name": "testmode",
            "mode": "test",
            "test_users": ["tester-1", "tester-2"],
            "mapping": MAPPING,
        },
    },
    "clients": {CLIENT_ID: CLIENT_SECRET},
    "token": {"expires_in": 3600, "rate_limit": {"requests": 100, "per_seconds": 60}},
    "analytics": {"environments": [ENVIRONMENT]},
}


def sign(secret: str, body: bytes, ts: str, algorithm: str = "sha256", digest: str = "hex") -> str:
    """HMAC over `<ts>.<body>`, computed here independently of the server's code."""
    mac = hmac.new(secret.encode(), ts.encode() + b"." + body, getattr(hashlib, algorithm)).digest()
    return mac.hex() if digest == "hex" else base64.b64encode(mac).decode()


def signed_headers(body: bytes, ts: int | None = None, secret: str = SIGNING_SECRET) -> dict[str, str]:
    stamp = str(int(time.time()) if ts is None else ts)
    return {"Content-Type": "application/json", "x-signature": f"v1={sign(secret, body, stamp)}, t={stamp}"}


class Atomic:
    """A thin client for the local Atomic under test."""

    def __init__(self, url: str):
        self.url = url
        self.http = requests.Session()

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.http.post(self.url + path, timeout=kwargs.pop("timeout", TIMEOUT), **kwargs)

    def put(self, path: str, **kwargs: Any) -> requests.Response:
        return self.http.put(self.url + path, timeout=TIMEOUT, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.http.get(self.url + path, timeout=TIMEOUT, **kwargs)

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        response = self.http.request(method, f"{self.url}/_admin/{path}", json=body, timeout=TIMEOUT)
        response.raise_for_status()
        return response.json()

    def configure(self, config: dict[str, Any]) -> None:
        self.admin("PUT", "config", config)

    def hook(self, token: str, payload: Any, *, signed: bool = True, ts: int | None = None) -> requests.Response:
        body = json.dumps(payload).encode()
        headers = signed_headers(body, ts) if signed else {"Content-Type": "application/json"}
        return self.post(f"/hooks/v1/connector/{token}", data=body, headers=headers)

    def get_token(self, client_id: str = CLIENT_ID, secret: str = CLIENT_SECRET) -> requests.Response:
        return self.post(
            f"/oauth2/token?grant_type=client_credentials&client_id={client_id}",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            auth=(client_id, secret),
        )

    def access_token(self) -> str:
        response = self.get_token()
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    def send_events(self, events: list[Any] | Any, token: str | None, **headers: Any) -> requests.Response:
        body = events if isinstance(events, dict) else {"data": events}
        all_headers = {"User-Agent": "dbt-atomic-tests"}
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        all_headers.update(headers)
        return self.post(f"/v1/{ENVIRONMENT}/analytics", json=body, headers=all_headers)

    def fault(self, **spec: Any) -> None:
        self.admin("POST", "faults", spec)

    def log(self, **params: Any) -> list[dict[str, Any]]:
        response = self.get("/_admin/requests", params=params)
        response.raise_for_status()
        return response.json()["requests"]
