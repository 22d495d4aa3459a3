"""Webhook triggers: signatures, modes, samples, mapping."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

from local_atomic_helpers import (
    MAPPING,
    SIGNED_TOKEN,
    SIGNING_SECRET,
    TEST_MODE_TOKEN,
    UNSIGNED_TOKEN,
    sign,
    signed_headers,
)


def test_signed_request_is_accepted(atomic):
    response = atomic.hook(SIGNED_TOKEN, [{"targetUserId": "u1", "balance": 42.0}])
    assert response.status_code == 200, response.text
    assert response.json() == {"data": {"accepted": 1, "ignored": 0}}
    assert atomic.admin("GET", "users")["webhook"] == {"signed": {"u1": 1}}
    [entry] = atomic.log()
    assert entry["verdict"] == "accepted"
    assert entry["users"] == ["u1"]


def test_put_is_accepted_and_any_prefix_routes(atomic):
    body = json.dumps({"targetUserId": "u1"}).encode()
    response = atomic.put(f"/a/b/c/connector/{SIGNED_TOKEN}", data=body, headers=signed_headers(body))
    assert response.status_code == 200, response.text


def test_wrong_signature_is_rejected(atomic):
    body = json.dumps([{"targetUserId": "u1"}]).encode()
    wrong_secret = signed_headers(body, secret="not-the-secret")
    response = atomic.post(f"/x/connector/{SIGNED_TOKEN}", data=body, headers=wrong_secret)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "signature_invalid"
    # signed correctly, then the body is changed
    headers = signed_headers(body)
    tampered = json.dumps([{"targetUserId": "u2"}]).encode()
    response = atomic.post(f"/x/connector/{SIGNED_TOKEN}", data=tampered, headers=headers)
    assert response.status_code == 401
    assert atomic.admin("GET", "users")["webhook"] == {}


def test_payload_is_the_exact_bytes(atomic):
    # The same JSON with different whitespace is a different payload.
    body = b'[{"targetUserId": "u1"}]'
    headers = signed_headers(body)
    response = atomic.post(f"/x/connector/{SIGNED_TOKEN}", data=b'[{"targetUserId":"u1"}]', headers=headers)
    assert response.status_code == 401
    assert atomic.post(f"/x/connector/{SIGNED_TOKEN}", data=body, headers=headers).status_code == 200


def test_missing_signature_or_timestamp_is_rejected(atomic):
    response = atomic.hook(SIGNED_TOKEN, [{"targetUserId": "u1"}], signed=False)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "signature_missing"
    body = b'{"targetUserId": "u1"}'
    stamp = str(int(time.time()))
    only_signature = {"x-signature": f"v1={sign(SIGNING_SECRET, body, stamp)}"}
    response = atomic.post(f"/x/connector/{SIGNED_TOKEN}", data=body, headers=only_signature)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "timestamp_missing"


def test_too_old_signature_is_rejected(atomic):
    old = int(time.time()) - 1000
    response = atomic.hook(SIGNED_TOKEN, [{"targetUserId": "u1"}], ts=old)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "timestamp_out_of_tolerance"
    future = int(time.time()) + 1000
    assert atomic.hook(SIGNED_TOKEN, [{"targetUserId": "u1"}], ts=future).status_code == 401
    # inside the 300 s tolerance
    recent = int(time.time()) - 200
    assert atomic.hook(SIGNED_TOKEN, [{"targetUserId": "u1"}], ts=recent).status_code == 200


def test_tolerance_is_configurable(atomic):
    config = atomic.admin("GET", "config?reveal=true")
    config["triggers"][SIGNED_TOKEN]["signing"]["tolerance_seconds"] = 2000
    atomic.configure(config)
    old = int(time.time()) - 1000
    assert atomic.hook(SIGNED_TOKEN, [{"targetUserId": "u1"}], ts=old).status_code == 200


def test_separate_headers_sha512_base64(atomic):
    signing = {
        "secret": SIGNING_SECRET,
        "algorithm": "sha512",
        "digest": "base64",
        "data": {
            "signature": {"header": "X-Atomic-Signature", "parsePrefix": "sha512="},
            "timestamp": {"header": "X-Atomic-Timestamp", "parsePrefix": ""},
        },
        "template": "[timestamp]:[payload]",
    }
    atomic.admin(
        "PUT", f"triggers/{SIGNED_TOKEN}", {"name": "b64", "mode": "live", "signing": signing, "mapping": MAPPING}
    )
    body = b'{"targetUserId": "u9"}'
    stamp = str(int(time.time()))
    mac = hmac.new(SIGNING_SECRET.encode(), f"{stamp}:".encode() + body, hashlib.sha512).digest()
    headers = {"X-Atomic-Signature": "sha512=" + base64.b64encode(mac).decode(), "X-Atomic-Timestamp": stamp}
    response = atomic.post(f"/x/connector/{SIGNED_TOKEN}", data=body, headers=headers)
    assert response.status_code == 200, response.text
    # hex of the same MAC is not accepted when base64 is configured
    headers["X-Atomic-Signature"] = "sha512=" + mac.hex()
    assert atomic.post(f"/x/connector/{SIGNED_TOKEN}", data=body, headers=headers).status_code == 401


def test_sha1_payload_only_template(atomic):
    signing = {
        "secret": SIGNING_SECRET,
        "algorithm": "sha1",
        "digest": "hex",
        "data": {"signature": {"header": "x-hub-signature", "parsePrefix": "sha1="}},
        "template": "[payload]",
    }
    atomic.admin(
        "PUT", f"triggers/{SIGNED_TOKEN}", {"name": "sha1", "mode": "live", "signing": signing, "mapping": MAPPING}
    )
    body = b'{"targetUserId": "u1"}'
    good = hmac.new(SIGNING_SECRET.encode(), body, hashlib.sha1).hexdigest()
    response = atomic.post(f"/x/connector/{SIGNED_TOKEN}", data=body, headers={"x-hub-signature": f"sha1={good}"})
    assert response.status_code == 200, response.text
    bad = hmac.new(b"other", body, hashlib.sha1).hexdigest()
    response = atomic.post(f"/x/connector/{SIGNED_TOKEN}", data=body, headers={"x-hub-signature": f"sha1={bad}"})
    assert response.status_code == 401


def test_unsigned_trigger_needs_no_signature(atomic):
    response = atomic.hook(UNSIGNED_TOKEN, [{"targetUserId": "u1"}], signed=False)
    assert response.status_code == 200, response.text
    assert atomic.admin("GET", "users")["webhook"] == {"unsigned": {"u1": 1}}


def test_test_mode_ignores_other_users_and_live_mode_takes_all(atomic):
    rows = [{"targetUserId": "tester-1"}, {"targetUserId": "stranger"}, {"targetUserId": "tester-2"}]
    response = atomic.hook(TEST_MODE_TOKEN, rows, signed=False)
    assert response.status_code == 200
    assert response.json()["data"] == {"accepted": 2, "ignored": 1}
    assert atomic.admin("GET", "users")["webhook"]["testmode"] == {"tester-1": 1, "tester-2": 1}
    [entry] = atomic.log()
    assert entry["ignored"] == ["stranger"]

    atomic.admin("PUT", f"triggers/{TEST_MODE_TOKEN}", {"name": "testmode", "mode": "live", "mapping": MAPPING})
    response = atomic.hook(TEST_MODE_TOKEN, rows, signed=False)
    assert response.json()["data"] == {"accepted": 3, "ignored": 0}
    assert atomic.admin("GET", "users")["webhook"]["testmode"] == {"tester-1": 2, "tester-2": 2, "stranger": 1}


def test_get_new_sample_captures_the_next_request(atomic):
    assert atomic.get(f"/_admin/triggers/{UNSIGNED_TOKEN}/sample").status_code == 404
    atomic.admin("POST", f"triggers/{UNSIGNED_TOKEN}/sample")
    sample = [{"targetUserId": "u1", "balance": 7}]
    response = atomic.hook(UNSIGNED_TOKEN, sample, signed=False)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "sample_captured"
    assert atomic.admin("GET", f"triggers/{UNSIGNED_TOKEN}/sample")["body"] == sample
    # only the one request: the next is processed
    assert atomic.hook(UNSIGNED_TOKEN, sample, signed=False).status_code == 200
    assert atomic.admin("GET", "users")["webhook"] == {"unsigned": {"u1": 1}}


def test_sample_of_signed_trigger_still_needs_signature(atomic):
    atomic.admin("POST", f"triggers/{SIGNED_TOKEN}/sample")
    assert atomic.hook(SIGNED_TOKEN, {"targetUserId": "u1"}, signed=False).status_code == 401
    response = atomic.hook(SIGNED_TOKEN, {"targetUserId": "u1"})
    assert response.json()["error"]["code"] == "sample_captured"


def test_no_mapping_fails(atomic):
    atomic.admin("PUT", f"triggers/{UNSIGNED_TOKEN}", {"name": "new", "mode": "live", "mapping": None})
    response = atomic.hook(UNSIGNED_TOKEN, [{"targetUserId": "u1"}], signed=False)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "no_mapping"


def test_array_is_mapped_element_by_element(atomic):
    rows = [{"targetUserId": f"u{i}", "balance": i} for i in range(5)]
    response = atomic.hook(UNSIGNED_TOKEN, rows, signed=False)
    assert response.json()["data"] == {"accepted": 5, "ignored": 0}
    assert atomic.admin("GET", "users")["webhook"]["unsigned"] == {f"u{i}": 1 for i in range(5)}
    # a single object is one user
    assert atomic.hook(UNSIGNED_TOKEN, {"targetUserId": "u0"}, signed=False).json()["data"]["accepted"] == 1


def test_element_without_user_id_fails_the_request(atomic):
    rows = [{"targetUserId": "u1"}, {"balance": 3}, {"targetUserId": "u3"}]
    response = atomic.hook(UNSIGNED_TOKEN, rows, signed=False)
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "element 1" in message and "targetUserId" in message
    assert atomic.admin("GET", "users")["webhook"] == {}
    for bad in ([{"targetUserId": ""}], [{"targetUserId": None}], ["u1"], [{"targetUserId": ["u1"]}]):
        assert atomic.hook(UNSIGNED_TOKEN, bad, signed=False).status_code == 400, bad


def test_nested_mapping_paths(atomic):
    mapping = {"user_id": "user.id", "variables": {"balance": "account.balance"}}
    atomic.admin("PUT", f"triggers/{UNSIGNED_TOKEN}", {"name": "nested", "mode": "live", "mapping": mapping})
    response = atomic.hook(UNSIGNED_TOKEN, [{"user": {"id": "n1"}, "account": {"balance": 1}}], signed=False)
    assert response.status_code == 200, response.text
    assert atomic.admin("GET", "users")["webhook"] == {"nested": {"n1": 1}}


def test_body_not_json_fails(atomic):
    response = atomic.post(f"/x/connector/{UNSIGNED_TOKEN}", data=b"not json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


def test_unknown_token_is_404(atomic):
    response = atomic.hook("no-such-token", [{"targetUserId": "u1"}])
    assert response.status_code == 404
    assert atomic.get(f"/x/connector/{UNSIGNED_TOKEN}").status_code == 405


def test_body_and_user_limits(atomic):
    config = atomic.admin("GET", "config?reveal=true")
    config["limits"] = {"webhook_body_bytes": 200, "webhook_users": 2}
    atomic.configure(config)
    three = [{"targetUserId": f"u{i}"} for i in range(3)]
    response = atomic.hook(UNSIGNED_TOKEN, three, signed=False)
    assert response.status_code == 400 and response.json()["error"]["code"] == "too_many_users"
    big = [{"targetUserId": "u1", "pad": "x" * 300}]
    assert atomic.hook(UNSIGNED_TOKEN, big, signed=False).status_code == 413
    assert atomic.hook(UNSIGNED_TOKEN, three[:2], signed=False).status_code == 200
