"""Names and secrets shared by the handler tests and their fixtures."""

from __future__ import annotations

from dbt_atomic_local.atomic import presets

DATABASE = "ATOMIC_TEST"
SCHEMA = "HANDLER"
WEBHOOK_TOKEN = "conn-tok-5f2a9c81d7e34b"
WRONG_WEBHOOK_TOKEN = "conn-tok-wrong-signing-77"
SIGNING_SECRET = "whsec-handler-test-secret"
CLIENT_ID = "client-handler-test"
CLIENT_SECRET = "client-secret-handler-test-9d1e"
ENVIRONMENT = "env-test"
HTTP_TIMEOUT = 10


def atomic_config() -> dict:
    mapping = {"user_id": "targetUserId", "variables": {"balance": "balance"}}
    return {
        "triggers": {
            WEBHOOK_TOKEN: {
                "name": "low_balance",
                "mode": "live",
                "signing": presets.tutorial_signing(SIGNING_SECRET),
                "mapping": mapping,
            },
            WRONG_WEBHOOK_TOKEN: {
                "name": "other_secret",
                "mode": "live",
                "signing": presets.tutorial_signing("a-different-secret"),
                "mapping": mapping,
            },
        },
        "clients": {CLIENT_ID: CLIENT_SECRET},
        "token": {"expires_in": 3600, "rate_limit": None},
        "analytics": {"environments": [ENVIRONMENT], "event_name_pattern": "^[A-Za-z][A-Za-z0-9_-]{0,127}$"},
    }
