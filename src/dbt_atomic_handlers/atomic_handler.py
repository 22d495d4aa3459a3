# {% macro _atomic_handler_source() %}{% raw %}
"""Handlers of the dbt_atomic stored procedures: send rows of a table to Atomic.

Deployed unchanged as the body of every procedure, each with its own HANDLER:

* ``send(session, request, settings)``: batched, audited delivery of a source
  table to a webhook trigger or to the Analytics API (custom events).
* ``post(session, destination, payload, settings)``: one ad-hoc webhook call.
* ``store_event(session, destination, user_id, event_name, properties, settings)``:
  one ad-hoc custom event.

Only the standard library, ``requests`` and Snowflake's ``_snowflake`` module
(imported where a secret is read) are used; the Snowpark session is passed in.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import email.utils
import hashlib
import hmac
import json
import math
import random
import re
import time
import urllib.parse
import uuid
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

import requests
from requests.adapters import HTTPAdapter

UNSET_SECRET = "dbt_atomic:unset"  # noqa: S105 - the placeholder, not a secret
EVENT_NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,127}$")
MAX_ERROR_CHARS = 500
MAX_RESPONSE_CHARS = 2000
MAX_ROWS_PER_INSERT = 1000
SCRUBBED = "***"

DEFAULT_HTTP = {
    "timeout_seconds": 30,
    "max_attempts": 5,
    "backoff_base_seconds": 1.0,
    "backoff_max_seconds": 60,
    "concurrency": 4,
}
DEFAULT_BATCH = {"max_rows": 500, "max_bytes": 1000000}
DEFAULT_SIGNING = {
    "algorithm": "sha256",
    "digest": "hex",
    "signature_header": "x-signature",
    "signature_prefix": "v1=",
    "timestamp_header": "x-signature",
    "timestamp_prefix": "t=",
    "template": "[timestamp].[payload]",
}
HASH_ALGORITHMS = {"sha256": hashlib.sha256, "sha1": hashlib.sha1, "sha512": hashlib.sha512}

# Internal column names of the streamed query; chosen so they cannot clash with
# ordinary source columns.
COL_USER = "__ATOMIC_USER_ID"
COL_KEY = "__ATOMIC_DEDUPE_KEY"
COL_RN = "__ATOMIC_RN"
COL_EVENT = "__ATOMIC_EVENT_NAME"
COL_PROPS = "__ATOMIC_PROPERTIES"
INTERNAL_COLUMNS = {COL_USER, COL_KEY, COL_RN, COL_EVENT, COL_PROPS}

_IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
TABLE_NAME = re.compile(rf"^{_IDENT}(?:\.{_IDENT}){{0,2}}$")


class AtomicError(Exception):
    """An error meant for the person calling the procedure; never carries a secret."""


# ---------------------------------------------------------------- configuration


def _load_json(value, what):
    """Settings and requests arrive as JSON text (or already parsed)."""
    if isinstance(value, dict):
        return value
    if not isinstance(value, str) or not value.strip():
        raise AtomicError(f"{what} must be a JSON object, got {type(value).__name__}")
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise AtomicError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise AtomicError(f"{what} must be a JSON object")
    return parsed


def _positive_number(section, name, value, integer=True):
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or value <= 0:
        raise AtomicError(f"settings: {section}.{name} must be a positive number, got {value!r}")
    return value


def _with_defaults(defaults, given):
    """A section of the settings; a null value takes the default."""
    given = given or {}
    return {k: (given[k] if given.get(k) is not None else v) for k, v in defaults.items()}


def _parse_settings(raw):
    """Settings JSON with defaults filled in and every value checked."""
    settings = _load_json(raw, "settings")
    http = _with_defaults(DEFAULT_HTTP, settings.get("http"))
    for name in ("timeout_seconds", "backoff_base_seconds", "backoff_max_seconds"):
        _positive_number("http", name, http[name], integer=False)
    for name in ("max_attempts", "concurrency"):
        _positive_number("http", name, http[name])
    batch = _with_defaults(DEFAULT_BATCH, settings.get("batch"))
    for name in ("max_rows", "max_bytes"):
        _positive_number("batch", name, batch[name])
    tables = settings.get("tables") or {}
    for name in ("attempts", "outcomes", "token_cache", "locks"):
        _check_table_name(tables.get(name), f"settings: tables.{name}")
    destinations = settings.get("destinations")
    if not isinstance(destinations, dict) or not destinations:
        raise AtomicError("settings: no destinations are configured")
    return {
        "package_version": str(settings.get("package_version") or "0"),
        "http": http,
        "batch": batch,
        "tables": tables,
        "destinations": destinations,
    }


def _destination(settings, name, kind=None):
    """The configuration of one destination, checked for its kind."""
    if not isinstance(name, str) or not name:
        raise AtomicError("a destination name is required")
    dest = settings["destinations"].get(name)
    if not isinstance(dest, dict):
        known = ", ".join(sorted(settings["destinations"]))
        raise AtomicError(f"unknown destination {name!r}; configured destinations: {known}")
    dest_kind = dest.get("kind")
    if dest_kind not in ("webhook", "events"):
        raise AtomicError(f"destination {name!r}: kind must be 'webhook' or 'events', got {dest_kind!r}")
    if kind and dest_kind != kind:
        raise AtomicError(f"destination {name!r} is of kind {dest_kind!r}, this procedure needs {kind!r}")
    required = {
        "webhook": ("url_secret",),
        "events": ("api_url", "oauth_url", "credentials_secret"),
    }[dest_kind]
    for field in required:
        if not isinstance(dest.get(field), str) or not dest[field]:
            raise AtomicError(f"destination {name!r}: {field} is required")
    return {"name": name, **dest}


def _check_table_name(value, what):
    """Table names are pasted into SQL, so they must be plain (possibly quoted) identifiers."""
    if not isinstance(value, str) or not TABLE_NAME.match(value):
        raise AtomicError(f"{what} must be a table name like DB.SCHEMA.TABLE, got {value!r}")
    return value


def _quote_column(name, what):
    """Column names are matched exactly: always double-quoted."""
    if not isinstance(name, str) or not name:
        raise AtomicError(f"request: {what} must be a non-empty column name, got {name!r}")
    return '"' + name.replace('"', '""') + '"'


def _column_list(value, what):
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(c, str) and c for c in value):
        raise AtomicError(f"request: {what} must be a list of column names or null")
    return list(value)


def _parse_request(raw, settings):
    """The request JSON of `send`, checked against the settings."""
    req = _load_json(raw, "request")
    dest = _destination(settings, req.get("destination"))
    _check_table_name(req.get("source"), "request: source")
    _quote_column(req.get("user_id_column"), "user_id_column")
    parsed = {
        "destination": dest,
        "source": req["source"],
        "user_id_column": req["user_id_column"],
        "payload_columns": _column_list(req.get("payload_columns"), "payload_columns"),
        "dedupe_columns": _column_list(req.get("dedupe_columns"), "dedupe_columns") or [],
        "event_name": req.get("event_name"),
        "event_name_column": req.get("event_name_column"),
        "properties_column": req.get("properties_column"),
        "invocation_id": req.get("invocation_id"),
    }
    event_fields = ("event_name", "event_name_column", "properties_column")
    if dest["kind"] == "webhook":
        for field in event_fields:
            if parsed[field] is not None:
                raise AtomicError(f"request: {field} applies to events destinations only")
    else:
        for field in ("event_name_column", "properties_column"):
            if parsed[field] is not None:
                _quote_column(parsed[field], field)
        if parsed["event_name"] is not None and not isinstance(parsed["event_name"], str):
            raise AtomicError("request: event_name must be a string or null")
        name = parsed["event_name"] or dest.get("event_name")
        if parsed["event_name_column"] is None and not name:
            raise AtomicError(
                f"request: destination {dest['name']!r} has no event_name; give event_name or event_name_column"
            )
        if name and not EVENT_NAME_PATTERN.match(name):
            raise AtomicError(f"request: event name {name!r} does not match {EVENT_NAME_PATTERN.pattern}")
    if parsed["invocation_id"] is not None and not isinstance(parsed["invocation_id"], str):
        parsed["invocation_id"] = str(parsed["invocation_id"])
    return parsed


# ---------------------------------------------------------------- secrets


def _snowflake_module():
    # Snowflake provides this module inside procedures only.
    import _snowflake

    return _snowflake


def _check_secret(value, dest_name, alias):
    if value is None or value == "" or value == UNSET_SECRET:
        raise AtomicError(
            f"destination {dest_name!r}: the secret with alias {alias!r} is not set; "
            "set its value (see the README, section Secrets) before sending"
        )
    return value


def _read_secret_string(dest_name, alias):
    try:
        value = _snowflake_module().get_generic_secret_string(alias)
    except Exception as exc:  # noqa: BLE001 - the message of a missing secret is safe to show
        raise AtomicError(
            f"destination {dest_name!r}: cannot read the secret with alias {alias!r} "
            f"({type(exc).__name__}); is it in the procedure's SECRETS? "
            "Run `dbt run-operation atomic_setup` after adding a destination"
        ) from None
    return _check_secret(value, dest_name, alias)


def _read_credentials(dest_name, alias):
    """(client id, client secret) of an events destination."""
    try:
        creds = _snowflake_module().get_username_password(alias)
    except Exception as exc:  # noqa: BLE001
        raise AtomicError(
            f"destination {dest_name!r}: cannot read the secret with alias {alias!r} "
            f"({type(exc).__name__}); is it in the procedure's SECRETS? "
            "Run `dbt run-operation atomic_setup` after adding a destination"
        ) from None
    _check_secret(creds.username, dest_name, alias)
    _check_secret(creds.password, dest_name, alias)
    return creds.username, creds.password


def _webhook_secrets(dest):
    """Read on the main thread: Snowflake serves secrets to that thread only."""
    url = _read_secret_string(dest["name"], dest["url_secret"])
    signing_alias = dest.get("signing_secret")
    signing_key = _read_secret_string(dest["name"], signing_alias) if signing_alias else None
    return url, signing_key


# ---------------------------------------------------------------- scrubbing


class Scrubber:
    """Removes secret values (and the secret path of a webhook URL) from texts."""

    def __init__(self, *secrets):
        self._secrets = []
        for secret in secrets:
            self.add(secret)

    def add(self, secret):
        if not secret or not isinstance(secret, str):
            return
        candidates = [secret]
        if "://" in secret:
            parts = urllib.parse.urlsplit(secret)
            if len(parts.path) > 1:
                candidates.append(parts.path + ("?" + parts.query if parts.query else ""))
                candidates.append(parts.path)
                candidates.append(urllib.parse.quote(parts.path))
        for value in candidates:
            if len(value) >= 4 and value not in self._secrets:
                self._secrets.append(value)
        # Longest first, so a URL goes before its own path.
        self._secrets.sort(key=len, reverse=True)

    def __call__(self, text):
        text = str(text)
        for secret in self._secrets:
            text = text.replace(secret, SCRUBBED)
        return text


def _truncate(text, limit=MAX_ERROR_CHARS):
    text = str(text)
    return text if len(text) <= limit else text[:limit] + "..."


def _exception_text(exc, scrub):
    """requests' exceptions quote the URL: always scrub them."""
    return _truncate(scrub(f"{type(exc).__name__}: {exc}"))


# ---------------------------------------------------------------- encoding


def _json_value(value):
    """Snowflake values as JSON values: numbers stay numbers, dates become ISO strings."""
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            return None
        if value == value.to_integral_value():
            return int(value)
        return float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    return value


def _encode_json(obj):
    """The exact bytes sent (and signed)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def _utc_timestamp(now=None):
    """UTC ISO 8601 with milliseconds and Z, as the Analytics API expects."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    now = now.astimezone(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


# ---------------------------------------------------------------- signing


def _signing_config(dest):
    given = dest.get("signing") or {}
    # A null timestamp header means "no timestamp"; any other null takes the default.
    signing = {k: (given[k] if given.get(k) is not None else v) for k, v in DEFAULT_SIGNING.items()}
    if "timestamp_header" in given and not given["timestamp_header"]:
        signing["timestamp_header"] = None
    if signing["algorithm"] not in HASH_ALGORITHMS:
        raise AtomicError(
            f"destination {dest['name']!r}: signing.algorithm must be one of "
            f"{', '.join(HASH_ALGORITHMS)}, got {signing['algorithm']!r}"
        )
    if signing["digest"] not in ("hex", "base64"):
        raise AtomicError(f"destination {dest['name']!r}: signing.digest must be 'hex' or 'base64'")
    if not signing["signature_header"]:
        raise AtomicError(f"destination {dest['name']!r}: signing.signature_header is required")
    return signing


def _signed_message(template, timestamp, body):
    """The template with [timestamp] and [payload] (the exact body bytes) filled in."""
    parts = re.split(r"(\[timestamp\]|\[payload\])", template)
    out = bytearray()
    for part in parts:
        if part == "[timestamp]":
            out += timestamp.encode("ascii")
        elif part == "[payload]":
            out += body
        else:
            out += part.encode("utf-8")
    return bytes(out)


def compute_signature(secret, message, algorithm="sha256", digest="hex"):
    mac = hmac.new(secret.encode("utf-8"), message, HASH_ALGORITHMS[algorithm])
    if digest == "hex":
        return mac.hexdigest()
    return base64.b64encode(mac.digest()).decode("ascii")


def signature_headers(body, secret, signing, timestamp):
    """Signature (and timestamp) headers; one shared header when both use the same name."""
    ts = str(int(timestamp))
    message = _signed_message(signing["template"], ts, body)
    signature = compute_signature(secret, message, signing["algorithm"], signing["digest"])
    sig_header = signing["signature_header"]
    ts_header = signing.get("timestamp_header")
    sig_value = f"{signing.get('signature_prefix') or ''}{signature}"
    ts_value = f"{signing.get('timestamp_prefix') or ''}{ts}"
    if not ts_header:
        return {sig_header: sig_value}
    if ts_header.lower() == sig_header.lower():
        return {sig_header: f"{sig_value}, {ts_value}"}
    return {sig_header: sig_value, ts_header: ts_value}


# ---------------------------------------------------------------- batching


class Batch:
    """One request body and the users it carries."""

    def __init__(self, batch_id, rows, body):
        self.batch_id = batch_id
        self.rows = rows  # [(dedupe_key, user_id)]
        self.body = body
        self.token_refreshed = False
        self.attempts_used = 0


class Batcher:
    """Cuts encoded items into bodies bounded by rows and bytes.

    The body is `prefix + item,item,... + suffix`; its size is known exactly
    before it is built, so no body ever exceeds max_bytes.
    """

    def __init__(self, max_rows, max_bytes, prefix, suffix, id_prefix):
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.prefix = prefix
        self.suffix = suffix
        self.id_prefix = id_prefix
        self.count = 0
        self._items = []
        self._rows = []
        self._size = len(prefix) + len(suffix)

    def fits_alone(self, item):
        return len(self.prefix) + len(self.suffix) + len(item) <= self.max_bytes

    def add(self, item, row):
        """Add one item; returns the batch it closed, if any."""
        closed = None
        extra = len(item) + (1 if self._items else 0)
        if self._items and (len(self._items) >= self.max_rows or self._size + extra > self.max_bytes):
            closed = self.flush()
            extra = len(item)
        self._items.append(item)
        self._rows.append(row)
        self._size += extra
        return closed

    def flush(self):
        if not self._items:
            return None
        self.count += 1
        body = self.prefix + b",".join(self._items) + self.suffix
        batch = Batch(f"{self.id_prefix}-{self.count:05d}", self._rows, body)
        self._items, self._rows = [], []
        self._size = len(self.prefix) + len(self.suffix)
        return batch


# ---------------------------------------------------------------- retry policy


def parse_retry_after(value, now=None):
    """Seconds to wait from a Retry-After header (delta seconds or an HTTP date)."""
    if value is None:
        return None
    value = str(value).strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.timezone.utc)
        now = now if now is not None else time.time()
        seconds = when.timestamp() - now
    if math.isnan(seconds):
        return None
    return max(0.0, seconds)


def backoff_delay(attempt, base, cap, retry_after=None, rng=random):
    """Wait before the next attempt: Retry-After when given, else full jitter; always capped."""
    if retry_after is not None:
        return min(retry_after, cap)
    ceiling = min(cap, base * (2 ** max(0, attempt - 1)))
    return rng.uniform(0, ceiling)


def is_retryable_status(status):
    return status == 429 or 500 <= status <= 599


class Attempt:
    def __init__(self, number, status, latency_ms, error):
        self.number = number
        self.status = status
        self.latency_ms = latency_ms
        self.error = error


class Delivery:
    """What became of one batch: its attempts and the final verdict."""

    def __init__(self):
        self.attempts = []
        self.delivered = False
        self.reason = None
        self.unauthorized = False
        self.token = None


def _response_error(response):
    return _truncate(f"HTTP {response.status_code}: {response.text}")


def _request_error(exc, scrub):
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "connect timeout, not delivered: " + _exception_text(exc, scrub)
    if isinstance(exc, requests.exceptions.Timeout):
        return "timeout, outcome unknown: " + _exception_text(exc, scrub)
    return "connection error, outcome unknown: " + _exception_text(exc, scrub)


def post_with_retries(
    http, url, body, make_headers, policy, scrub, first_attempt=1, stop_on_401=False, sleep=time.sleep
):
    """POST body until a 2xx, a non-retryable answer or max_attempts; never raises."""
    delivery = Delivery()
    last = first_attempt + max(1, policy["max_attempts"] - first_attempt + 1) - 1
    for number in range(first_attempt, last + 1):
        started = time.monotonic()
        retry_after = None
        try:
            response = http.post(url, data=body, headers=make_headers(), timeout=policy["timeout_seconds"])
        except requests.exceptions.RequestException as exc:
            error = _request_error(exc, scrub)
            delivery.attempts.append(Attempt(number, None, _elapsed_ms(started), error))
            delivery.reason = error
        else:
            status = response.status_code
            if 200 <= status <= 299:
                delivery.attempts.append(Attempt(number, status, _elapsed_ms(started), None))
                delivery.delivered = True
                delivery.reason = None
                return delivery
            error = scrub(_response_error(response))
            delivery.attempts.append(Attempt(number, status, _elapsed_ms(started), error))
            delivery.reason = error
            if status == 401 and stop_on_401:
                delivery.unauthorized = True
                return delivery
            if not is_retryable_status(status):
                return delivery
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if number < last:
            sleep(backoff_delay(number, policy["backoff_base_seconds"], policy["backoff_max_seconds"], retry_after))
    if len(delivery.attempts) > 1:
        delivery.reason = f"after {len(delivery.attempts)} attempts: {delivery.reason}"
    return delivery


def _elapsed_ms(started):
    return int((time.monotonic() - started) * 1000)


def _http_session(concurrency):
    """One session for all workers; its pool holds a connection per worker."""
    http = requests.Session()
    adapter = HTTPAdapter(pool_connections=2, pool_maxsize=max(2, concurrency))
    http.mount("https://", adapter)
    http.mount("http://", adapter)
    return http


# ---------------------------------------------------------------- transports


class WebhookTransport:
    """Signed JSON arrays to a webhook trigger URL (itself a secret)."""

    def __init__(self, http, url, signing_key, signing, policy, scrub):
        self.http = http
        self.url = url
        self.signing_key = signing_key
        self.signing = signing
        self.policy = policy
        self.scrub = scrub

    def headers(self, body):
        headers = {"Content-Type": "application/json"}
        if self.signing_key:
            # Signed per attempt, so a retry after a long wait carries a fresh timestamp.
            headers.update(signature_headers(body, self.signing_key, self.signing, time.time()))
        return headers

    def deliver(self, batch, token=None):
        return post_with_retries(
            self.http,
            self.url,
            batch.body,
            lambda: self.headers(batch.body),
            self.policy,
            self.scrub,
            first_attempt=batch.attempts_used + 1,
        )

    def post_once(self, body):
        return self.http.post(self.url, data=body, headers=self.headers(body), timeout=self.policy["timeout_seconds"])


class EventsTransport:
    """`{"data": [...]}` to the Analytics API with a bearer token."""

    def __init__(self, http, api_url, package_version, policy, scrub):
        self.http = http
        self.api_url = api_url
        self.user_agent = f"dbt_atomic/{package_version}"
        self.policy = policy
        self.scrub = scrub

    def headers(self, token):
        return {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "User-Agent": self.user_agent,
        }

    def deliver(self, batch, token):
        delivery = post_with_retries(
            self.http,
            self.api_url,
            batch.body,
            lambda: self.headers(token),
            self.policy,
            self.scrub,
            first_attempt=batch.attempts_used + 1,
            stop_on_401=not batch.token_refreshed,
        )
        delivery.token = token
        return delivery

    def post_once(self, body, token):
        return self.http.post(
            self.api_url, data=body, headers=self.headers(token), timeout=self.policy["timeout_seconds"]
        )


def _deliver_safely(transport, batch, token, scrub):
    """Worker body: a worker never raises, so no batch can lose its outcome."""
    try:
        return transport.deliver(batch, token)
    except Exception as exc:  # noqa: BLE001 - turned into a failed outcome
        delivery = Delivery()
        delivery.token = token
        delivery.reason = "internal error: " + _exception_text(exc, scrub)
        return delivery


# ---------------------------------------------------------------- leases


class Lease:
    """A row lease shared by concurrent callers through a table.

    One conditional UPDATE decides who holds `key` until `lease_until_epoch`;
    a holder that dies simply lets its lease expire. The table has the columns
    `<key_column>, lease_owner, lease_until_epoch, updated_at`.
    """

    def __init__(self, session, table, key_column, key, seconds):
        self.session = session
        self.table = table
        self.key_column = key_column
        self.key = key
        self.seconds = int(seconds)
        self.owner = uuid.uuid4().hex

    def take(self):
        """True when this caller now holds the lease."""
        from snowflake.snowpark.exceptions import SnowparkSQLException

        now = int(time.time())
        self.session.sql(
            f"INSERT INTO {self.table} ({self.key_column}, updated_at) SELECT ?, CURRENT_TIMESTAMP() "
            f"WHERE NOT EXISTS (SELECT 1 FROM {self.table} WHERE {self.key_column} = ?)",
            params=[self.key, self.key],
        ).collect()
        try:
            result = self.session.sql(
                f"UPDATE {self.table} SET lease_owner = ?, lease_until_epoch = ?, updated_at = CURRENT_TIMESTAMP() "
                f"WHERE {self.key_column} = ? AND (lease_until_epoch IS NULL OR lease_until_epoch < ?)",
                params=[self.owner, now + self.seconds, self.key, now],
            ).collect()
        except SnowparkSQLException:
            # A concurrent caller's UPDATE won (a write conflict or lock timeout): not ours.
            return False
        return bool(result) and int(result[0][0]) > 0

    def renew(self):
        self.session.sql(
            f"UPDATE {self.table} SET lease_until_epoch = ?, updated_at = CURRENT_TIMESTAMP() "
            f"WHERE {self.key_column} = ? AND lease_owner = ?",
            params=[int(time.time()) + self.seconds, self.key, self.owner],
        ).collect()

    def release(self):
        self.session.sql(
            f"UPDATE {self.table} SET lease_owner = NULL, lease_until_epoch = NULL, updated_at = CURRENT_TIMESTAMP() "
            f"WHERE {self.key_column} = ? AND lease_owner = ?",
            params=[self.key, self.owner],
        ).collect()


# ---------------------------------------------------------------- token cache


class TokenCache:
    """OAuth access tokens shared by all callers through the token cache table.

    A token is reused while it has more than `margin` seconds left. To refresh,
    a caller takes a lease with one conditional UPDATE; only the lease holder
    calls the token endpoint, the others poll the table.
    """

    POLL_SECONDS = 0.5

    def __init__(self, session, table, dest, client_id, client_secret, http, policy, scrub, sleep=time.sleep):
        self.session = session
        self.table = table
        self.oauth_url = dest["oauth_url"]
        margin = dest.get("token_margin_seconds")
        self.margin = float(300 if margin is None else margin)
        self.client_id = client_id
        self.client_secret = client_secret
        self.http = http
        self.policy = policy
        self.scrub = scrub
        self.sleep = sleep
        # Long enough for the holder's own retries; an abandoned lease expires.
        self.lease_seconds = int(policy["timeout_seconds"] * 2 + 30)
        self.lease = Lease(session, table, "cache_key", client_id, self.lease_seconds)

    def get(self, force=False, stale=None):
        """A usable token; with force, any token but `stale`, ignoring the margin."""
        deadline = time.monotonic() + self.lease_seconds * 2
        while True:
            token = self._cached(force, stale)
            if token:
                return token
            if self.lease.take():
                # Another caller may have refreshed between our read and our lease.
                token = self._cached(force, stale)
                if token:
                    self.lease.release()
                    return token
                return self._refresh()
            if time.monotonic() > deadline:
                raise AtomicError("timed out waiting for another caller to refresh the access token")
            self.sleep(self.POLL_SECONDS)

    def _cached(self, force, stale):
        rows = self.session.sql(
            f"SELECT access_token, expires_at_epoch FROM {self.table} WHERE cache_key = ?",
            params=[self.client_id],
        ).collect()
        if not rows or not rows[0][0] or rows[0][1] is None:
            return None
        token, expires_at = rows[0][0], float(rows[0][1])
        self.scrub.add(token)
        left = expires_at - time.time()
        if force:
            return token if token != stale and left > 0 else None
        return token if left > self.margin else None

    def _refresh(self):
        try:
            token, expires_in = self._request_token()
        except Exception:
            self.lease.release()
            raise
        self.scrub.add(token)
        self.session.sql(
            f"UPDATE {self.table} SET access_token = ?, expires_at_epoch = ?, lease_owner = NULL, "
            "lease_until_epoch = NULL, updated_at = CURRENT_TIMESTAMP() WHERE cache_key = ?",
            params=[token, int(time.time() + expires_in), self.client_id],
        ).collect()
        return token

    def _request_token(self):
        """Client-credentials grant; 429 and 5xx are retried with backoff."""
        basic = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode("ascii")
        query = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": self.client_id})
        url = f"{self.oauth_url}{'&' if '?' in self.oauth_url else '?'}{query}"
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Authorization": f"Basic {basic}",
        }
        attempts = self.policy["max_attempts"]
        error = None
        for number in range(1, attempts + 1):
            retry_after = None
            try:
                response = self.http.post(url, headers=headers, timeout=self.policy["timeout_seconds"])
            except requests.exceptions.RequestException as exc:
                error = _exception_text(exc, self.scrub)
            else:
                if response.status_code == 200:
                    return self._parse_token(response)
                error = self.scrub(_response_error(response))
                if not is_retryable_status(response.status_code):
                    break
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if number < attempts:
                self.sleep(
                    backoff_delay(
                        number,
                        self.policy["backoff_base_seconds"],
                        self.policy["backoff_max_seconds"],
                        retry_after,
                    )
                )
        raise AtomicError(f"token request failed: {error}")

    def _parse_token(self, response):
        # Never quote this body: it carries the token.
        try:
            data = response.json()
            token = data["access_token"]
            expires_in = float(data.get("expires_in") or 3600)
        except (ValueError, KeyError, TypeError):
            raise AtomicError("token response has no access_token") from None
        if not isinstance(token, str) or not token:
            raise AtomicError("token response has no access_token")
        return token, expires_in


def _token_cache(session, settings, dest, http, scrub):
    client_id, client_secret = _read_credentials(dest["name"], dest["credentials_secret"])
    scrub.add(client_secret)
    return TokenCache(
        session, settings["tables"]["token_cache"], dest, client_id, client_secret, http, settings["http"], scrub
    )


# ---------------------------------------------------------------- audit


class AuditWriter:
    """Set-based writes of attempts and outcomes; called from the main thread only."""

    def __init__(self, session, tables, run_id, invocation_id, destination):
        self.session = session
        self.tables = tables
        self.run_id = run_id
        self.invocation_id = invocation_id
        self.destination = destination

    def outcomes(self, rows):
        """rows: [(dedupe_key, user_id, status, reason, batch_id)]."""
        for start in range(0, len(rows), MAX_ROWS_PER_INSERT):
            chunk = rows[start : start + MAX_ROWS_PER_INSERT]
            values = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, CURRENT_TIMESTAMP())"] * len(chunk))
            params = []
            for key, user, status, reason, batch_id in chunk:
                params += [self.run_id, self.invocation_id, self.destination, key, user, status, reason, batch_id]
            self.session.sql(
                f"INSERT INTO {self.tables['outcomes']} (run_id, invocation_id, destination, dedupe_key, "
                f"user_id, status, reason, batch_id, recorded_at) VALUES {values}",
                params=params,
            ).collect()

    def attempts(self, batch, attempts):
        if not attempts:
            return
        values = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, CURRENT_TIMESTAMP())"] * len(attempts))
        params = []
        for a in attempts:
            params += [
                self.run_id,
                self.invocation_id,
                self.destination,
                batch.batch_id,
                a.number,
                a.status,
                a.latency_ms,
                len(batch.rows),
                len(batch.body),
                a.error,
            ]
        self.session.sql(
            f"INSERT INTO {self.tables['attempts']} (run_id, invocation_id, destination, batch_id, "
            "attempt, http_status, latency_ms, rows_in_batch, bytes_in_batch, error, attempted_at) "
            f"VALUES {values}",
            params=params,
        ).collect()


class OutcomeBuffer:
    """Outcomes of rows that never reach a batch (invalid ones), flushed in bounded chunks."""

    def __init__(self, audit, limit=MAX_ROWS_PER_INSERT):
        self.audit = audit
        self.limit = limit
        self.rows = []

    def add(self, row):
        self.rows.append(row)
        if len(self.rows) >= self.limit:
            self.flush()

    def flush(self):
        if self.rows:
            self.audit.outcomes(self.rows)
            self.rows = []


# ---------------------------------------------------------------- source queries


class SourceQuery:
    """SQL over the source: each row with its dedupe key and its rank among equal keys."""

    def __init__(self, req, outcomes_table):
        self.req = req
        self.outcomes_table = outcomes_table

    def _keyed(self):
        uid = "s." + _quote_column(self.req["user_id_column"], "user_id_column")
        parts = [f"COALESCE(CAST({uid} AS VARCHAR), '')"]
        for col in self.req["dedupe_columns"]:
            parts.append(f"COALESCE(CAST(s.{_quote_column(col, 'dedupe_columns')} AS VARCHAR), '')")
        key = " || '|' || ".join(parts)
        if self.req["payload_columns"] is None:
            payload = "s.*"
        else:
            payload = ", ".join(f"s.{_quote_column(c, 'payload_columns')}" for c in self.req["payload_columns"])
        extra = ""
        if self.req["event_name_column"]:
            extra += f', s.{_quote_column(self.req["event_name_column"], "event_name_column")} AS "{COL_EVENT}"'
        if self.req["properties_column"]:
            extra += f', s.{_quote_column(self.req["properties_column"], "properties_column")} AS "{COL_PROPS}"'
        inner = (
            f'SELECT CAST({uid} AS VARCHAR) AS "{COL_USER}", {key} AS "{COL_KEY}"'
            + (f", {payload}" if payload else "")
            + f"{extra} FROM {self.req['source']} s"
        )
        return (
            f'SELECT i.*, ROW_NUMBER() OVER (PARTITION BY i."{COL_KEY}" ORDER BY i."{COL_KEY}") '
            f'AS "{COL_RN}" FROM ({inner}) i'
        )

    def _joined(self):
        # Keys already delivered to this destination, joined to every source row.
        return (
            f"FROM ({self._keyed()}) k LEFT JOIN (SELECT DISTINCT dedupe_key FROM {self.outcomes_table} "
            "WHERE destination = ? AND status = 'delivered') d "
            f'ON d.dedupe_key = k."{COL_KEY}"'
        )

    def _has_user(self):
        return f'(k."{COL_USER}" IS NOT NULL AND TRIM(k."{COL_USER}") <> \'\')'

    def skipped_insert(self, run_id, invocation_id):
        """One INSERT ... SELECT recording every skipped row; params to bind."""
        sql = (
            f"INSERT INTO {self.outcomes_table} (run_id, invocation_id, destination, dedupe_key, user_id, "
            "status, reason, batch_id, recorded_at) "
            f'SELECT ?, ?, ?, k."{COL_KEY}", k."{COL_USER}", \'skipped\', '
            "CASE WHEN d.dedupe_key IS NOT NULL THEN 'already_delivered' ELSE 'duplicate_in_source' END, "
            f"NULL, CURRENT_TIMESTAMP() {self._joined()} "
            f'WHERE {self._has_user()} AND (d.dedupe_key IS NOT NULL OR k."{COL_RN}" > 1)'
        )
        dest = self.req["destination"]["name"]
        return sql, [run_id, invocation_id, dest, dest]

    def remaining(self):
        """Rows to validate and send: every row not skipped above."""
        sql = f'SELECT k.* {self._joined()} WHERE NOT {self._has_user()} OR (d.dedupe_key IS NULL AND k."{COL_RN}" = 1)'
        return sql, [self.req["destination"]["name"]]


# ---------------------------------------------------------------- rows to items


def _payload_of(row, req):
    """Payload columns of a row, keys lower-cased, values JSON-ready."""
    excluded = set(INTERNAL_COLUMNS)
    if req["payload_columns"] is None:
        excluded.add(req["user_id_column"])
        for col in (req["event_name_column"], req["properties_column"]):
            if col:
                excluded.add(col)
    return {name.lower(): _json_value(value) for name, value in row.items() if name not in excluded}


def _parse_properties(value):
    """Properties column: a JSON object (VARIANT arrives as JSON text) or null."""
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if value is None:
        return {}
    return value if isinstance(value, dict) else None


def _missing_user(user_id):
    return user_id is None or not str(user_id).strip()


def webhook_item(row, req, user_id_field):
    """(encoded item, None) or (None, reason why the row is invalid)."""
    user_id = row.get(COL_USER)
    if _missing_user(user_id):
        return None, "missing user id"
    obj = {user_id_field: user_id}
    for key, value in _payload_of(row, req).items():
        if key != user_id_field:
            obj[key] = value
    return _encode_json(obj), None


def event_item(row, req, dest, now=None):
    """(encoded event, None) or (None, reason why the row is invalid)."""
    user_id = row.get(COL_USER)
    if _missing_user(user_id):
        return None, "missing user id"
    name = req["event_name"] or (row.get(COL_EVENT) if req["event_name_column"] else None)
    name = name or dest.get("event_name")
    if not isinstance(name, str) or not EVENT_NAME_PATTERN.match(name):
        return None, _truncate(f"event name {name!r} does not match {EVENT_NAME_PATTERN.pattern}")
    properties = _payload_of(row, req)
    if req["properties_column"]:
        extra = _parse_properties(row.get(COL_PROPS))
        if extra is None:
            return None, "properties is not a JSON object"
        properties.update(_json_value(extra))
    event = {
        "eventName": name,
        "eventType": "custom",
        "endUserId": user_id,
        "timestamp": _utc_timestamp(now),
        "properties": properties,
    }
    return _encode_json(event), None


# ---------------------------------------------------------------- send


class Sender:
    """One run of `send`: streams rows, batches them, delivers on a thread pool, audits."""

    def __init__(self, session, req, settings, scrub):
        self.session = session
        self.req = req
        self.settings = settings
        self.dest = req["destination"]
        self.kind = self.dest["kind"]
        self.policy = settings["http"]
        self.run_id = uuid.uuid4().hex
        self.audit = AuditWriter(session, settings["tables"], self.run_id, req["invocation_id"], self.dest["name"])
        self.invalid = OutcomeBuffer(self.audit)
        self.counts = {"batches": 0, "sent": 0, "skipped": 0, "invalid": 0, "failed": 0}
        self.scrub = scrub
        self.http = _http_session(self.policy["concurrency"])
        self.token_cache = None
        self.token = None
        self.token_error = None
        self.transport = self._transport()
        self.batcher = self._batcher()

    def _transport(self):
        if self.kind == "webhook":
            signing = _signing_config(self.dest)
            url, key = _webhook_secrets(self.dest)
            self.scrub.add(url)
            self.scrub.add(key)
            return WebhookTransport(self.http, url, key, signing, self.policy, self.scrub)
        self.token_cache = _token_cache(self.session, self.settings, self.dest, self.http, self.scrub)
        return EventsTransport(
            self.http, self.dest["api_url"], self.settings["package_version"], self.policy, self.scrub
        )

    def _batcher(self):
        batch = self.settings["batch"]
        if self.kind == "webhook":
            return Batcher(batch["max_rows"], batch["max_bytes"], b"[", b"]", self.run_id)
        max_rows = min(batch["max_rows"], int(self.dest.get("max_events_per_request") or batch["max_rows"]))
        return Batcher(max_rows, batch["max_bytes"], b'{"data":[', b"]}", self.run_id)

    LOCK_POLL_SECONDS = 1.0

    def run(self):
        """Sends under the destination's lock: concurrent runs to one destination take turns,
        so the later one sees what the earlier one delivered and skips it."""
        key = f"send:{self.dest['name']}"
        lock = Lease(self.session, self.settings["tables"]["locks"], "lock_key", key, self._lock_seconds())
        deadline = time.monotonic() + lock.seconds + 5
        while not lock.take():
            if time.monotonic() > deadline:
                self.http.close()
                raise AtomicError(
                    f"destination {self.dest['name']!r}: another run has been sending to it for too long; "
                    "nothing was sent, try again later"
                )
            time.sleep(self.LOCK_POLL_SECONDS)
        self.lock = lock
        try:
            return self._run_locked()
        finally:
            lock.release()

    def _lock_seconds(self):
        """Longer than one batch's worst case (every attempt timing out, every backoff at its cap);
        renewed after each batch, so only a run that died lets it lapse."""
        policy = self.policy
        return int(policy["max_attempts"] * (policy["timeout_seconds"] + policy["backoff_max_seconds"]) + 60)

    def _run_locked(self):
        query = SourceQuery(self.req, self.settings["tables"]["outcomes"])
        sql, params = query.skipped_insert(self.run_id, self.req["invocation_id"])
        result = self.session.sql(sql, params=params).collect()
        self.counts["skipped"] = int(result[0][0]) if result else 0
        try:
            with ThreadPoolExecutor(max_workers=self.policy["concurrency"]) as pool:
                self.pool = pool
                self.pending = {}
                sql, params = query.remaining()
                for row in self.session.sql(sql, params=params).to_local_iterator():
                    self._take_row(row.as_dict())
                self._submit(self.batcher.flush())
                self.invalid.flush()
                self._drain(0)
        finally:
            self.http.close()
        return self._summary()

    def _take_row(self, row):
        key, user = row.get(COL_KEY), row.get(COL_USER)
        try:
            if self.kind == "webhook":
                item, reason = webhook_item(row, self.req, self.dest.get("user_id_field") or "targetUserId")
            else:
                item, reason = event_item(row, self.req, self.dest)
        except (TypeError, ValueError) as exc:
            item, reason = None, _truncate(f"row cannot be encoded as JSON: {exc}")
        if item is not None and not self.batcher.fits_alone(item):
            item, reason = None, f"row is {len(item)} bytes, more than batch.max_bytes allows"
        if item is None:
            self.counts["invalid"] += 1
            self.invalid.add((key, user, "invalid", reason, None))
            return
        self._submit(self.batcher.add(item, (key, user)))

    def _submit(self, batch):
        """Hands a batch to the pool, keeping at most 2 x concurrency in flight."""
        if batch is None:
            return
        self._drain(self.policy["concurrency"] * 2 - 1)
        if self.kind == "events":
            if self.token is None and self.token_error is None:
                self._fetch_token(force=False)
            if self.token_error is not None:
                self._finish(batch, self._no_token_delivery())
                return
        future = self.pool.submit(_deliver_safely, self.transport, batch, self.token, self.scrub)
        self.pending[future] = batch

    def _fetch_token(self, force, stale=None):
        try:
            self.token = self.token_cache.get(force=force, stale=stale)
            self.scrub.add(self.token)
        except AtomicError as exc:
            self.token_error = f"no access token: {self.scrub(exc)}"
        except Exception as exc:  # noqa: BLE001 - recorded as the reason of every batch
            self.token_error = "no access token: " + _exception_text(exc, self.scrub)

    def _no_token_delivery(self):
        delivery = Delivery()
        delivery.reason = self.token_error
        return delivery

    def _drain(self, limit):
        """Wait for finished batches until at most `limit` are in flight; audit them here."""
        while len(self.pending) > limit:
            done, _ = wait(list(self.pending), return_when=FIRST_COMPLETED)
            for future in done:
                batch = self.pending.pop(future)
                self._finished(batch, future.result())

    def _finished(self, batch, delivery):
        if delivery.unauthorized and not batch.token_refreshed:
            # A 401 from the analytics API: refresh once (ignoring the margin) and retry.
            self.audit.attempts(batch, delivery.attempts)
            batch.attempts_used += len(delivery.attempts)
            batch.token_refreshed = True
            if self.token == delivery.token:
                self._fetch_token(force=True, stale=delivery.token)
            if self.token_error is not None:
                self._outcomes(batch, False, self.token_error)
                return
            future = self.pool.submit(_deliver_safely, self.transport, batch, self.token, self.scrub)
            self.pending[future] = batch
            return
        self._finish(batch, delivery, write_attempts=True)

    def _finish(self, batch, delivery, write_attempts=False):
        if write_attempts:
            self.audit.attempts(batch, delivery.attempts)
        self._outcomes(batch, delivery.delivered, delivery.reason)

    def _outcomes(self, batch, delivered, reason):
        self.lock.renew()
        self.counts["batches"] += 1
        status = "delivered" if delivered else "failed"
        reason = None if delivered else _truncate(self.scrub(reason or "not delivered"))
        self.audit.outcomes([(key, user, status, reason, batch.batch_id) for key, user in batch.rows])
        self.counts["sent" if delivered else "failed"] += len(batch.rows)

    def _summary(self):
        return json.dumps(
            {
                "run_id": self.run_id,
                "destination": self.dest["name"],
                "kind": self.kind,
                **self.counts,
                "status": "failed" if self.counts["failed"] else "ok",
            }
        )


def _guarded(run, scrub_holder):
    """Runs a handler body; any error leaves with its secrets scrubbed and no chained context."""
    try:
        return run()
    except AtomicError as exc:
        raise AtomicError(scrub_holder(str(exc))) from None
    except Exception as exc:  # noqa: BLE001 - re-raised, scrubbed
        raise AtomicError(_exception_text(exc, scrub_holder)) from None


def send(session, request, settings):
    """Handler of `<prefix>send`: returns the JSON summary of the run."""
    scrub = Scrubber()

    def run():
        parsed_settings = _parse_settings(settings)
        req = _parse_request(request, parsed_settings)
        return Sender(session, req, parsed_settings, scrub).run()

    return _guarded(run, scrub)


# ---------------------------------------------------------------- ad hoc calls


def _status_text(response, scrub):
    return f"{response.status_code}: {_truncate(scrub(response.text), MAX_RESPONSE_CHARS)}"


def post(session, destination, payload, settings):
    """Handler of `<prefix>post`: the payload, verbatim and signed, once; "<status>: <body>"."""
    scrub = Scrubber()

    def run():
        parsed = _parse_settings(settings)
        dest = _destination(parsed, destination, kind="webhook")
        if not isinstance(payload, str):
            raise AtomicError("payload must be a string")
        signing = _signing_config(dest)
        url, key = _webhook_secrets(dest)
        scrub.add(url)
        scrub.add(key)
        http = _http_session(1)
        try:
            transport = WebhookTransport(http, url, key, signing, parsed["http"], scrub)
            response = transport.post_once(payload.encode("utf-8"))
        finally:
            http.close()
        return _status_text(response, scrub)

    return _guarded(run, scrub)


def store_event(session, destination, user_id, event_name, properties, settings):
    """Handler of `<prefix>store_event`: one custom event; "<status>: <body>"."""
    scrub = Scrubber()

    def run():
        parsed = _parse_settings(settings)
        dest = _destination(parsed, destination, kind="events")
        if _missing_user(user_id):
            raise AtomicError("user_id is required")
        name = event_name or dest.get("event_name")
        if not isinstance(name, str) or not EVENT_NAME_PATTERN.match(name):
            raise AtomicError(f"event name {name!r} does not match {EVENT_NAME_PATTERN.pattern}")
        props = _parse_properties(properties)
        if props is None:
            raise AtomicError("properties must be a JSON object")
        body = _encode_json(
            {
                "data": [
                    {
                        "eventName": name,
                        "eventType": "custom",
                        "endUserId": str(user_id),
                        "timestamp": _utc_timestamp(),
                        "properties": props,
                    }
                ]
            }
        )
        http = _http_session(1)
        try:
            cache = _token_cache(session, parsed, dest, http, scrub)
            transport = EventsTransport(http, dest["api_url"], parsed["package_version"], parsed["http"], scrub)
            token = cache.get()
            response = transport.post_once(body, token)
            if response.status_code == 401:
                # The cached token was revoked or expired early: refresh once.
                token = cache.get(force=True, stale=token)
                response = transport.post_once(body, token)
        finally:
            http.close()
        return _status_text(response, scrub)

    return _guarded(run, scrub)


# {% endraw %}{% endmacro %}
