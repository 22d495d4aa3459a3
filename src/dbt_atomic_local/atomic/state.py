"""Everything the local Atomic remembers, in memory: requests, counts, tokens,
faults and samples. One event loop owns it, so no locks are needed.

The hot path only appends raw values to the request log; masking of secrets and
decoding of bodies happen when the log is read.
"""

from __future__ import annotations

import datetime
import json
import re
import secrets
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from dbt_atomic_local.atomic.config import MASK, Config

ENDPOINTS = ("webhook", "token", "analytics")
FAULT_KINDS = ("429", "5xx", "delay", "drop")

# Header names (lower case) whose values are secrets, and words that mark one.
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
SECRET_WORDS = ("signature", "secret", "token", "auth", "key", "hmac", "password", "credential")
_CONNECTOR_PATH = re.compile(r"(/connector/)[^/?#]+")


def mask_path(path: str) -> str:
    """The path with the connector token (a bearer secret) replaced."""
    return _CONNECTOR_PATH.sub(r"\g<1>" + MASK, path)


def _is_secret_name(name: str) -> bool:
    name = name.lower()
    return any(word in name for word in SECRET_WORDS)


def mask_headers(raw: list[tuple[bytes, bytes]], extra_secret: frozenset[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw_name, raw_value in raw:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        if name in ("authorization", "proxy-authorization"):
            scheme, _, rest = value.partition(" ")
            value = f"{scheme} {MASK}" if rest else MASK
        elif name in SECRET_HEADERS or name in extra_secret or _is_secret_name(name):
            value = MASK
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def _mask_pairs(pairs: list[tuple[str, str]]) -> dict[str, str]:
    return {key: (MASK if _is_secret_name(key) else value) for key, value in pairs}


def mask_query(query: bytes) -> dict[str, str]:
    return _mask_pairs(parse_qsl(query.decode("latin-1"), keep_blank_values=True))


def decode_body(endpoint: str, body: bytes, truncated: bool) -> Any:
    text = body.decode("utf-8", "replace")
    if truncated:
        return {"truncated": True, "text": text}
    if endpoint == "token":
        return _mask_pairs(parse_qsl(text, keep_blank_values=True))
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def iso(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).isoformat(timespec="milliseconds")


@dataclass(slots=True)
class Entry:
    """One request as received; masked when read."""

    id: int
    at: float
    endpoint: str
    method: str
    path: str
    query: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    truncated: bool
    status: int | None = None
    verdict: str = ""
    message: str | None = None
    trigger: str | None = None
    users: list[str] | None = None
    ignored: list[str] | None = None

    def public(self, secret_headers: frozenset[str]) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": iso(self.at),
            "endpoint": self.endpoint,
            "method": self.method,
            "path": mask_path(self.path),
            "query": mask_query(self.query),
            "headers": mask_headers(self.headers, secret_headers),
            "body": decode_body(self.endpoint, self.body, self.truncated),
            "status": self.status,
            "verdict": self.verdict,
            "message": self.message,
            "trigger": self.trigger,
            "users": self.users,
            "ignored": self.ignored,
        }


@dataclass(slots=True)
class Fault:
    kind: str
    remaining: int
    status: int = 503
    retry_after: float | None = None
    delay_seconds: float = 0.0

    def public(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "remaining": self.remaining,
            "status": self.status,
            "retry_after": self.retry_after,
            "delay_seconds": self.delay_seconds,
        }


class FaultError(ValueError):
    pass


def parse_fault(spec: Any) -> tuple[str, Fault]:
    if not isinstance(spec, dict):
        raise FaultError("the fault must be a JSON object")
    unknown = sorted(set(spec) - {"endpoint", "kind", "count", "retry_after", "status", "delay_seconds"})
    if unknown:
        raise FaultError(f"unknown key(s): {', '.join(unknown)}")
    endpoint = spec.get("endpoint")
    if endpoint not in ENDPOINTS:
        raise FaultError(f"endpoint: must be one of {', '.join(ENDPOINTS)}")
    kind = str(spec.get("kind"))
    if kind not in FAULT_KINDS:
        raise FaultError(f"kind: must be one of {', '.join(FAULT_KINDS)}")
    count = spec.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise FaultError("count: must be a positive integer")
    fault = Fault(kind=kind, remaining=count, status=429 if kind == "429" else 503)
    if kind == "429" and spec.get("retry_after") is not None:
        retry_after = spec["retry_after"]
        if isinstance(retry_after, bool) or not isinstance(retry_after, (int, float)) or retry_after < 0:
            raise FaultError("retry_after: must be a number of seconds >= 0")
        fault.retry_after = retry_after
    if kind == "5xx":
        status = spec.get("status", 503)
        if isinstance(status, bool) or not isinstance(status, int) or not 500 <= status <= 599:
            raise FaultError("status: must be an integer from 500 to 599")
        fault.status = status
    if kind == "delay":
        delay = spec.get("delay_seconds")
        if isinstance(delay, bool) or not isinstance(delay, (int, float)) or not 0 <= delay <= 600:
            raise FaultError("delay_seconds: required for a delay, a number of seconds from 0 to 600")
        fault.delay_seconds = float(delay)
    return endpoint, fault


class State:
    def __init__(self, config: Config):
        self.config = config
        self.reset()

    # --- lifecycle ---------------------------------------------------------

    def reset(self) -> None:
        self.log: deque[Entry] = deque(maxlen=self.config.request_log.limit)
        self.next_id = 1
        self.stats: dict[str, int] = defaultdict(int)
        self.webhook_counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.event_counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.tokens: dict[str, tuple[str, float]] = {}  # token -> (client id, expires at, monotonic)
        self.issued: dict[str, deque[float]] = defaultdict(deque)  # client id -> issue times
        self.faults: dict[str, deque[Fault]] = {endpoint: deque() for endpoint in ENDPOINTS}
        self.armed: set[str] = set()
        self.samples: dict[str, dict[str, Any]] = {}

    def replace_config(self, config: Config) -> None:
        self.config = config
        if self.log.maxlen != config.request_log.limit:
            self.log = deque(self.log, maxlen=config.request_log.limit)

    # --- request log -------------------------------------------------------

    def record(self, endpoint: str, scope: dict[str, Any], body: bytes) -> Entry:
        limit = self.config.request_log.body_bytes
        truncated = len(body) > limit
        entry = Entry(
            id=self.next_id,
            at=time.time(),
            endpoint=endpoint,
            method=scope["method"],
            path=scope["path"],
            query=scope.get("query_string", b""),
            headers=scope["headers"],
            body=body[:limit] if truncated else body,
            truncated=truncated,
        )
        self.next_id += 1
        self.log.append(entry)
        self.stats[f"{endpoint}_requests"] += 1
        return entry

    def requests(self, endpoint: str | None = None, since: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        secret_headers = self.config.signature_headers
        chosen = [e for e in self.log if e.id > since and (endpoint is None or e.endpoint == endpoint)]
        if limit is not None:
            chosen = chosen[-limit:] if limit > 0 else []
        return [entry.public(secret_headers) for entry in chosen]

    # --- faults ------------------------------------------------------------

    def add_fault(self, endpoint: str, fault: Fault) -> None:
        self.faults[endpoint].append(fault)

    def take_fault(self, endpoint: str) -> Fault | None:
        queue = self.faults[endpoint]
        if not queue:
            return None
        fault = queue[0]
        fault.remaining -= 1
        if fault.remaining <= 0:
            queue.popleft()
        self.stats[f"faults_{fault.kind}"] += 1
        return fault

    def pending_faults(self) -> dict[str, list[dict[str, Any]]]:
        return {endpoint: [f.public() for f in queue] for endpoint, queue in self.faults.items()}

    # --- tokens ------------------------------------------------------------

    def rate_limited(self, client_id: str) -> float | None:
        """Seconds until the client may have a token again, or None if it may now."""
        rate_limit = self.config.token.rate_limit
        if rate_limit is None:
            return None
        now = time.monotonic()
        window = self.issued[client_id]
        while window and window[0] <= now - rate_limit.per_seconds:
            window.popleft()
        if len(window) < rate_limit.requests:
            return None
        return max(0.0, window[0] + rate_limit.per_seconds - now)

    def issue_token(self, client_id: str) -> tuple[str, int]:
        now = time.monotonic()
        if len(self.tokens) > 10000:
            self.tokens = {t: v for t, v in self.tokens.items() if v[1] > now}
        token = secrets.token_urlsafe(32)
        expires_in = self.config.token.expires_in
        self.tokens[token] = (client_id, now + expires_in)
        self.issued[client_id].append(now)
        self.stats["tokens_issued"] += 1
        return token, expires_in

    def check_token(self, token: str) -> str | None:
        """None if the token is valid, else why not."""
        found = self.tokens.get(token)
        if found is None:
            return "unknown"
        if found[1] <= time.monotonic():
            return "expired"
        return None

    def expire_tokens(self) -> int:
        now = time.monotonic()
        for token, (client_id, _) in list(self.tokens.items()):
            self.tokens[token] = (client_id, now)
        return len(self.tokens)

    # --- samples -----------------------------------------------------------

    def capture_sample(self, token: str, entry: Entry) -> None:
        self.armed.discard(token)
        self.samples[token] = {
            "at": iso(entry.at),
            "request_id": entry.id,
            "body": decode_body("webhook", entry.body, entry.truncated),
        }

    # --- reports -----------------------------------------------------------

    def users(self) -> dict[str, Any]:
        return {
            "webhook": {name: dict(users) for name, users in self.webhook_counts.items()},
            "events": {user: dict(events) for user, events in self.event_counts.items()},
        }

    def stats_report(self) -> dict[str, int]:
        report = {key: 0 for key in ("token_requests", "tokens_issued", "webhook_requests", "analytics_requests")}
        report.update(self.stats)
        report["requests_logged"] = len(self.log)
        return report
