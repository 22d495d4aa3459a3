"""Ready-made local Atomic configuration: what a workbench user sets up by hand."""

from __future__ import annotations


def tutorial_signing(secret: str, tolerance_seconds: int = 300) -> dict:
    """Signature verification as the package signs by default:
    `x-signature: v1=<hex>, t=<unix seconds>`, HMAC-SHA256 over `[timestamp].[payload]`."""
    return {
        "secret": secret,
        "algorithm": "sha256",
        "digest": "hex",
        "data": {
            "signature": {"header": "x-signature", "parsePrefix": "v1="},
            "timestamp": {"header": "x-signature", "parsePrefix": "t="},
        },
        "template": "[timestamp].[payload]",
        "tolerance_seconds": tolerance_seconds,
    }


def trigger(
    name: str,
    *,
    signing_secret: str | None = None,
    mode: str = "live",
    test_users: list[str] | None = None,
    variables: dict[str, str] | None = None,
) -> dict:
    """A webhook trigger mapping `targetUserId` and the given variables; signed when a secret is given."""
    return {
        "name": name,
        "mode": mode,
        "test_users": list(test_users or []),
        "signing": tutorial_signing(signing_secret) if signing_secret else None,
        "mapping": {"user_id": "targetUserId", "variables": dict(variables or {})},
    }
