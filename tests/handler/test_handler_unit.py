"""Unit tests of the pure parts of the handler module (no Snowflake, no network)."""

from __future__ import annotations

import datetime
import decimal
import email.utils
import hashlib
import hmac
import json
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from dbt_atomic_handlers import atomic_handler as h

SOURCE = Path(h.__file__)


# ------------------------------------------------------------------ file format


def test_file_is_also_a_dbt_macro():
    lines = SOURCE.read_text().splitlines()
    assert lines[0] == "# {% macro _atomic_handler_source() %}{% raw %}"
    assert lines[-1] == "# {% endraw %}{% endmacro %}"
    body = "\n".join(lines[1:-1])
    assert "$$" not in body  # the procedure body is dollar-quoted
    assert "{% endraw" not in body  # would end the raw block early


def test_module_imports_without_snowflake_module():
    code = (
        "import importlib.util, sys; assert importlib.util.find_spec('_snowflake') is None; "
        f"spec = importlib.util.spec_from_file_location('m', {str(SOURCE)!r}); "
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
        "assert '_snowflake' not in sys.modules and callable(m.send)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# ------------------------------------------------------------------ signing


def test_default_signature_matches_a_hand_computed_hmac():
    body = b'[{"targetUserId":"u1","balance":42.5}]'
    headers = h.signature_headers(body, "s3cret", dict(h.DEFAULT_SIGNING), 1700000000)
    expected = hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert headers == {"x-signature": f"v1={expected}, t=1700000000"}
    assert expected == expected.lower()


def test_signature_with_separate_headers_base64_and_sha512():
    signing = {
        **h.DEFAULT_SIGNING,
        "algorithm": "sha512",
        "digest": "base64",
        "signature_header": "X-Sig",
        "signature_prefix": "",
        "timestamp_header": "X-Ts",
        "timestamp_prefix": "",
        "template": "[payload]|[timestamp]",
    }
    body = '[{"n":"é"}]'.encode()
    headers = h.signature_headers(body, "k", signing, 12.9)
    import base64

    mac = hmac.new(b"k", body + b"|12", hashlib.sha512).digest()
    assert headers == {"X-Sig": base64.b64encode(mac).decode(), "X-Ts": "12"}


def test_payload_placeholder_inside_the_body_is_not_substituted():
    body = b'["[timestamp]"]'
    assert h._signed_message("[timestamp].[payload]", "7", body) == b'7.["[timestamp]"]'


def test_signing_config_rejects_unknown_algorithm():
    with pytest.raises(h.AtomicError, match="algorithm"):
        h._signing_config({"name": "d", "signing": {"algorithm": "md5"}})


# ------------------------------------------------------------------ batching


def items(n, size=10):
    return [(b"x" * size, (f"k{i}", f"u{i}")) for i in range(n)]


def run_batcher(batcher, rows):
    batches = [b for item, row in rows if (b := batcher.add(item, row))]
    if last := batcher.flush():
        batches.append(last)
    return batches


def test_batches_bounded_by_rows():
    batches = run_batcher(h.Batcher(3, 10**6, b"[", b"]", "r"), items(7))
    assert [len(b.rows) for b in batches] == [3, 3, 1]
    assert batches[0].body == b"[" + b",".join([b"x" * 10] * 3) + b"]"
    assert [b.batch_id for b in batches] == ["r-00001", "r-00002", "r-00003"]
    assert [r for b in batches for r in b.rows] == [row for _, row in items(7)]


def test_batches_bounded_by_bytes_exactly():
    # '{"data":[' + 3 items of 10 bytes + 2 commas + ']}' = 9 + 30 + 2 + 2 = 43
    batcher = h.Batcher(100, 43, b'{"data":[', b"]}", "r")
    batches = run_batcher(batcher, items(7))
    assert [len(b.rows) for b in batches] == [3, 3, 1]
    assert all(len(b.body) <= 43 for b in batches)
    assert len(batches[0].body) == 43
    assert json.loads(b'{"data":[1,2]}') == {"data": [1, 2]}  # the frame is valid JSON


def test_batcher_with_one_byte_less_cuts_earlier():
    batches = run_batcher(h.Batcher(100, 42, b'{"data":[', b"]}", "r"), items(4))
    assert [len(b.rows) for b in batches] == [2, 2]


def test_oversized_item_does_not_fit_alone():
    batcher = h.Batcher(10, 20, b"[", b"]", "r")
    assert batcher.fits_alone(b"x" * 18)
    assert not batcher.fits_alone(b"x" * 19)


# ------------------------------------------------------------------ retry policy


def test_retry_after_seconds_and_http_date():
    assert h.parse_retry_after("3") == 3.0
    assert h.parse_retry_after(" 1.5 ") == 1.5
    assert h.parse_retry_after("-4") == 0.0
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert h.parse_retry_after(date, now=now) == pytest.approx(30, abs=1)
    past = email.utils.formatdate(now - 30, usegmt=True)
    assert h.parse_retry_after(past, now=now) == 0.0
    assert h.parse_retry_after(None) is None
    assert h.parse_retry_after("soon") is None
    assert h.parse_retry_after("") is None


def test_backoff_full_jitter_bounds():
    rng = random.Random(1)
    for attempt in range(1, 10):
        ceiling = min(8.0, 0.5 * 2 ** (attempt - 1))
        delays = [h.backoff_delay(attempt, 0.5, 8.0, rng=rng) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8  # jitter spans the range
    assert h.backoff_delay(1, 0.5, 8.0, retry_after=3) == 3
    assert h.backoff_delay(1, 0.5, 8.0, retry_after=300) == 8.0  # capped


def test_retryable_statuses():
    assert [s for s in (200, 400, 401, 404, 408, 429, 500, 502, 503, 599) if h.is_retryable_status(s)] == [
        429,
        500,
        502,
        503,
        599,
    ]


class FakeResponse:
    def __init__(self, status, text="", headers=None):
        self.status_code = status
        self.text = text
        self.headers = headers or {}


class FakeHttp:
    def __init__(self, answers):
        self.answers = list(answers)
        self.calls = []

    def post(self, url, data=None, headers=None, timeout=None):
        self.calls.append((url, data, headers, timeout))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


POLICY = {"max_attempts": 3, "timeout_seconds": 1, "backoff_base_seconds": 1, "backoff_max_seconds": 10}


def test_post_with_retries_honours_retry_after_then_succeeds():
    http = FakeHttp([FakeResponse(429, "slow down", {"Retry-After": "2"}), FakeResponse(200, "ok")])
    sleeps = []
    delivery = h.post_with_retries(http, "u", b"b", dict, POLICY, h.Scrubber(), sleep=sleeps.append)
    assert delivery.delivered and sleeps == [2.0]
    assert [(a.number, a.status) for a in delivery.attempts] == [(1, 429), (2, 200)]


def test_post_with_retries_gives_up_after_max_attempts_and_keeps_atomics_text():
    http = FakeHttp([FakeResponse(503, "busy")] * 3)
    delivery = h.post_with_retries(http, "u", b"b", dict, POLICY, h.Scrubber(), sleep=lambda s: None)
    assert not delivery.delivered and len(http.calls) == 3
    assert delivery.reason == "after 3 attempts: HTTP 503: busy"


def test_post_with_retries_does_not_retry_a_400():
    http = FakeHttp([FakeResponse(400, "x" * 5000)])
    delivery = h.post_with_retries(http, "u", b"b", dict, POLICY, h.Scrubber(), sleep=lambda s: None)
    assert len(http.calls) == 1 and len(delivery.reason) < 600  # truncated


def test_timeout_is_reported_as_unknown_outcome_without_the_url():
    url = "https://org.customer-api.atomic.io/abc/connector/SECRET-TOKEN-123"
    exc = requests.exceptions.ReadTimeout("HTTPSConnectionPool: Read timed out. (url: /abc/connector/SECRET-TOKEN-123)")
    http = FakeHttp([exc])
    policy = {**POLICY, "max_attempts": 1}
    delivery = h.post_with_retries(http, url, b"b", dict, policy, h.Scrubber(url), sleep=lambda s: None)
    assert delivery.reason.startswith("timeout, outcome unknown")
    assert "SECRET-TOKEN-123" not in delivery.reason


def test_events_401_stops_for_a_token_refresh():
    http = FakeHttp([FakeResponse(401, "expired")])
    delivery = h.post_with_retries(http, "u", b"b", dict, POLICY, h.Scrubber(), stop_on_401=True, sleep=lambda s: None)
    assert delivery.unauthorized and len(http.calls) == 1


# ------------------------------------------------------------------ scrubbing


def test_scrubber_removes_url_path_and_secrets():
    url = "https://org.customer-api.atomic.io/x/connector/TOKEN-abcdef"
    scrub = h.Scrubber(url, "signing-secret")
    text = (
        f"HTTPSConnectionPool(host='org.customer-api.atomic.io', port=443): Max retries exceeded with url: "
        f"/x/connector/TOKEN-abcdef (Caused by ...) {url} signing-secret"
    )
    cleaned = scrub(text)
    assert "TOKEN-abcdef" not in cleaned and "signing-secret" not in cleaned
    assert "org.customer-api.atomic.io" in cleaned  # the host alone is not secret


def test_exception_text_is_scrubbed_and_truncated():
    url = "http://h/c/connector/TOK-999"
    exc = requests.exceptions.ConnectionError(f"failed for {url} " + "y" * 2000)
    text = h._exception_text(exc, h.Scrubber(url))
    assert "TOK-999" not in text and len(text) <= h.MAX_ERROR_CHARS + 3
    assert text.startswith("ConnectionError: ")


# ------------------------------------------------------------------ encoding and rows


def test_json_values_of_snowflake_types():
    assert h._json_value(decimal.Decimal("12.50")) == 12.5
    assert isinstance(h._json_value(decimal.Decimal("3.00")), int)
    assert h._json_value(decimal.Decimal("NaN")) is None
    assert h._json_value(datetime.date(2026, 12, 4)) == "2026-12-04"
    assert h._json_value(datetime.datetime(2026, 12, 4, 10, 0, 1)) == "2026-12-04T10:00:01"
    tz = datetime.timezone(datetime.timedelta(hours=2))
    assert h._json_value(datetime.datetime(2026, 12, 4, 10, tzinfo=tz)) == "2026-12-04T10:00:00+02:00"
    assert h._json_value(float("inf")) is None
    assert h._json_value({"a": [decimal.Decimal("1")]}) == {"a": [1]}


def test_utc_timestamp_has_milliseconds_and_z():
    tz = datetime.timezone(datetime.timedelta(hours=-5))
    when = datetime.datetime(2026, 12, 4, 5, 6, 7, 891234, tzinfo=tz)
    assert h._utc_timestamp(when) == "2026-12-04T10:06:07.891Z"


REQ = {
    "user_id_column": "USER_ID",
    "payload_columns": None,
    "event_name": None,
    "event_name_column": None,
    "properties_column": None,
}


def row(**values):
    return {h.COL_USER: values.pop("uid", "u1"), h.COL_KEY: "u1|", h.COL_RN: 1, "USER_ID": "u1", **values}


def test_webhook_item_lowercases_columns_and_drops_internal_ones():
    item, reason = h.webhook_item(row(BALANCE=decimal.Decimal("1.5"), Mixed=1), REQ, "targetUserId")
    assert reason is None
    assert json.loads(item) == {"targetUserId": "u1", "balance": 1.5, "mixed": 1}


@pytest.mark.parametrize("uid", [None, "", "   "])
def test_webhook_item_without_user_is_invalid(uid):
    assert h.webhook_item(row(uid=uid), REQ, "targetUserId") == (None, "missing user id")


def test_event_item_names_and_properties():
    dest = {"event_name": "low-balance"}
    req = {**REQ, "properties_column": "P", "event_name_column": "E"}
    item, _ = h.event_item(row(A=1, **{h.COL_PROPS: '{"b": 2}', h.COL_EVENT: None}), req, dest)
    event = json.loads(item)
    assert (event["eventName"], event["eventType"], event["endUserId"]) == ("low-balance", "custom", "u1")
    assert event["properties"] == {"a": 1, "b": 2}
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", event["timestamp"])
    _, reason = h.event_item(row(**{h.COL_PROPS: "[1]", h.COL_EVENT: "ok"}), req, dest)
    assert reason == "properties is not a JSON object"
    _, reason = h.event_item(row(**{h.COL_PROPS: None, h.COL_EVENT: "1bad"}), req, dest)
    assert "does not match" in reason
    _, reason = h.event_item(row(**{h.COL_PROPS: None, h.COL_EVENT: "x" * 129}), req, dest)
    assert "does not match" in reason


def test_request_event_name_wins_over_column_and_destination():
    req = {**REQ, "event_name": "from-request", "event_name_column": "E"}
    item, _ = h.event_item(row(**{h.COL_EVENT: "from-column"}), req, {"event_name": "from-dest"})
    assert json.loads(item)["eventName"] == "from-request"


# ------------------------------------------------------------------ configuration


SETTINGS = {
    "tables": {"attempts": '"D"."S"."A"', "outcomes": "D.S.O", "token_cache": "T", "locks": "L"},
    "destinations": {"w": {"kind": "webhook", "url_secret": "w_url"}},
}


def test_settings_defaults_and_checks():
    parsed = h._parse_settings(json.dumps(SETTINGS))
    assert parsed["http"]["max_attempts"] == 5 and parsed["batch"]["max_rows"] == 500
    with pytest.raises(h.AtomicError, match=r"http.concurrency must be a positive number"):
        h._parse_settings({**SETTINGS, "http": {"concurrency": 0}})
    with pytest.raises(h.AtomicError, match=r"tables\.outcomes"):
        h._parse_settings({**SETTINGS, "tables": {**SETTINGS["tables"], "outcomes": "x; drop"}})
    with pytest.raises(h.AtomicError, match="not valid JSON"):
        h._parse_settings("{")


def test_request_checks():
    settings = h._parse_settings(SETTINGS)
    ok = {"destination": "w", "source": '"D"."S"."U"', "user_id_column": "USER_ID"}
    assert h._parse_request(json.dumps(ok), settings)["dedupe_columns"] == []
    with pytest.raises(h.AtomicError, match="user_id_column"):
        h._parse_request({**ok, "user_id_column": ""}, settings)
    with pytest.raises(h.AtomicError, match="payload_columns"):
        h._parse_request({**ok, "payload_columns": "BALANCE"}, settings)


def test_quoted_columns_cannot_break_out():
    assert h._quote_column('a"b', "c") == '"a""b"'


def test_unset_secret_names_destination_and_alias(monkeypatch):
    import types

    fake = types.ModuleType("_snowflake")
    fake.get_generic_secret_string = lambda alias: "dbt_atomic:unset"
    monkeypatch.setitem(sys.modules, "_snowflake", fake)
    with pytest.raises(h.AtomicError, match=r"destination 'w'.*alias 'w_url' is not set"):
        h._read_secret_string("w", "w_url")
