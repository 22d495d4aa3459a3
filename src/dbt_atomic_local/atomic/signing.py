"""Signed-request verification in Atomic's "Verify incoming request" format.

The sender computes HMAC(secret, template) where the template's `[timestamp]`
is the timestamp it sends and `[payload]` the exact bytes of the body, encodes
it as lowercase hex or base64, and sends it (and the timestamp) in headers,
each value after its `parsePrefix`. Signature and timestamp may share one
header, separated by commas: `x-signature: v1=<hex>, t=<unix seconds>`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping

from dbt_atomic_local.atomic.config import HeaderField, Signing

_HASHES = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}


class SignatureError(Exception):
    """The request's signature is missing, malformed, wrong or out of date."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def compute(signing: Signing, payload: bytes, timestamp: str | None) -> str:
    """The signature a sender must send for this payload and timestamp."""
    pieces = []
    for part in signing.template_parts:
        if part == "payload":
            pieces.append(payload)
        elif part == "timestamp":
            pieces.append((timestamp or "").encode())
        else:
            pieces.append(part)
    mac = hmac.new(signing.secret, b"".join(pieces), _HASHES[signing.algorithm]).digest()
    if signing.digest == "hex":
        return mac.hex()
    return base64.b64encode(mac).decode("ascii")


def _find(headers: Mapping[str, str], where: HeaderField, other: HeaderField | None) -> str | None:
    """The value of one field: the header's comma-separated part after its prefix."""
    value = headers.get(where.header)
    if value is None:
        return None
    shares = other is not None and other.header == where.header
    if not shares:
        value = value.strip()
        if where.prefix:
            return value[len(where.prefix) :].strip() if value.startswith(where.prefix) else None
        return value
    parts = [part.strip() for part in value.split(",")]
    for part in parts:
        if where.prefix and part.startswith(where.prefix):
            return part[len(where.prefix) :].strip()
    if not where.prefix:
        for part in parts:
            if not (other.prefix and part.startswith(other.prefix)):
                return part
    return None


def verify(signing: Signing, headers: Mapping[str, str], payload: bytes, now: float | None = None) -> None:
    """Raise SignatureError unless the request is correctly signed and recent enough."""
    signature = _find(headers, signing.signature, signing.timestamp)
    if not signature:
        raise SignatureError(
            "signature_missing",
            f"no signature: expected header {signing.signature.header!r} with prefix {signing.signature.prefix!r}",
        )
    timestamp = None
    if signing.timestamp is not None:
        timestamp = _find(headers, signing.timestamp, signing.signature)
        if not timestamp:
            raise SignatureError(
                "timestamp_missing",
                f"no timestamp: expected header {signing.timestamp.header!r} with prefix {signing.timestamp.prefix!r}",
            )
        try:
            sent_at = float(timestamp)
        except ValueError:
            raise SignatureError("timestamp_invalid", "the timestamp is not a number of Unix seconds") from None
        if signing.tolerance_seconds is not None:
            skew = (time.time() if now is None else now) - sent_at
            if abs(skew) > signing.tolerance_seconds:
                raise SignatureError(
                    "timestamp_out_of_tolerance",
                    f"the timestamp is {abs(skew):.0f}s {'old' if skew > 0 else 'in the future'}; "
                    f"tolerance is {signing.tolerance_seconds:g}s",
                )
    expected = compute(signing, payload, timestamp)
    if signing.digest == "hex":
        signature = signature.lower()
    if not hmac.compare_digest(expected.encode("ascii"), signature.encode("utf-8", "replace")):
        raise SignatureError("signature_invalid", "the signature does not match the payload")


def sign_headers(signing: Signing, payload: bytes, timestamp: str | None = None) -> dict[str, str]:
    """The headers a correct sender would send (used by tests and the benchmark)."""
    if signing.timestamp is not None and timestamp is None:
        timestamp = str(int(time.time()))
    signature = compute(signing, payload, timestamp)
    headers: dict[str, str] = {}
    sig_value = f"{signing.signature.prefix}{signature}"
    if signing.timestamp is None:
        headers[signing.signature.header] = sig_value
        return headers
    ts_value = f"{signing.timestamp.prefix}{timestamp}"
    if signing.timestamp.header == signing.signature.header:
        headers[signing.signature.header] = f"{sig_value}, {ts_value}"
    else:
        headers[signing.signature.header] = sig_value
        headers[signing.timestamp.header] = ts_value
    return headers
