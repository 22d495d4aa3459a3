"""The local Atomic as an ASGI application: Atomic's three endpoints and the admin API."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dbt_atomic_local.atomic import events, signing
from dbt_atomic_local.atomic.config import Config, ConfigError, parse_config, with_trigger, without_trigger
from dbt_atomic_local.atomic.mapping import MappingError, map_body
from dbt_atomic_local.atomic.state import ENDPOINTS, Entry, Fault, FaultError, State, parse_fault

RAW_SEND = "dbt_atomic_local.raw_send"
_JSON = "application/json"


def _json(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(value, separators=(",", ":")), status_code=status, headers=headers, media_type=_JSON)


def _finish(entry: Entry, status: int, verdict: str, message: str | None = None) -> None:
    entry.status = status
    entry.verdict = verdict
    entry.message = message


def _fail(entry: Entry, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    """An Atomic-style error answer, recorded in the request's log entry."""
    _finish(entry, status, code, message)
    return _json({"error": {"code": code, "message": message}}, status, headers)


def _oauth_fail(entry: Entry, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    """An OAuth2-style error answer (the token endpoint)."""
    _finish(entry, status, code, message)
    return _json({"error": code, "error_description": message}, status, headers)


async def _drop_connection(request: Request) -> bool:
    """Close the client's socket without any HTTP response. False if the server does not allow it."""
    send = request.scope.get(RAW_SEND)
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None or not hasattr(transport, "abort"):
        return False
    transport.abort()
    # Let the server notice the lost connection, so that it does not try to answer.
    for _ in range(100):
        if getattr(cycle, "disconnected", True):
            break
        await asyncio.sleep(0)
    return True


class _Dropped(Exception):
    """Raised to end a request whose connection was dropped on purpose."""


class LocalAtomic:
    """Route handlers over one State."""

    def __init__(self, config: Config):
        self.state = State(config)

    # --- faults ------------------------------------------------------------

    async def _apply_fault(self, request: Request, entry: Entry, fault: Fault) -> Response | None:
        """The fault's answer, or None when the request goes on (after a delay)."""
        if fault.kind == "delay":
            await asyncio.sleep(fault.delay_seconds)
            return None
        if fault.kind == "429":
            headers = None
            if fault.retry_after is not None:
                value = fault.retry_after
                headers = {"Retry-After": str(int(value)) if float(value).is_integer() else str(value)}
            return _fail(entry, 429, "fault_429", "too many requests (injected fault)", headers)
        if fault.kind == "5xx":
            return _fail(entry, fault.status, f"fault_{fault.status}", "server error (injected fault)")
        _finish(entry, None, "fault_drop", "connection dropped (injected fault)")  # type: ignore[arg-type]
        if await _drop_connection(request):
            return Response(status_code=204)  # never sent: the connection is gone
        raise _Dropped("the server cannot drop connections; answered 500 instead")

    async def _start(self, request: Request, endpoint: str) -> tuple[Entry, bytes, Response | None]:
        body = await request.body()
        entry = self.state.record(endpoint, request.scope, body)
        fault = self.state.take_fault(endpoint)
        if fault is not None:
            return entry, body, await self._apply_fault(request, entry, fault)
        return entry, body, None

    # --- webhook trigger ---------------------------------------------------

    async def webhook(self, request: Request) -> Response:
        entry, body, answer = await self._start(request, "webhook")
        if answer is not None:
            return answer
        state = self.state
        config = state.config
        token = request.path_params["token"]
        trigger = config.triggers.get(token)
        if trigger is None:
            return _fail(entry, 404, "unknown_trigger", "no webhook trigger has this connector token")
        entry.trigger = trigger.name
        limit = config.limits.webhook_body_bytes
        if limit is not None and len(body) > limit:
            return _fail(entry, 413, "payload_too_large", f"the body is {len(body)} bytes; at most {limit}")
        if trigger.signing is not None:
            try:
                signing.verify(trigger.signing, request.headers, body)
            except signing.SignatureError as exc:
                return _fail(entry, 401, exc.code, exc.message)
        if token in state.armed:
            state.capture_sample(token, entry)
            return _fail(entry, 400, "sample_captured", "captured as the new sample; not processed")
        try:
            parsed = json.loads(body)
        except ValueError:
            return _fail(entry, 400, "invalid_json", "the body is not valid JSON")
        if trigger.mapping is None:
            return _fail(entry, 400, "no_mapping", "the trigger has no payload mapping yet: get a sample and map it")
        try:
            mapped = map_body(trigger.mapping, parsed)
        except MappingError as exc:
            return _fail(entry, 400, "mapping_failed", f"mapping failed: {exc}")
        max_users = config.limits.webhook_users
        if max_users is not None and len(mapped) > max_users:
            return _fail(entry, 400, "too_many_users", f"{len(mapped)} users in one request; at most {max_users}")
        accepted: list[str] = []
        ignored: list[str] = []
        test_only = trigger.mode == "test"
        counts = state.webhook_counts[trigger.name]
        for item in mapped:
            if test_only and item.user_id not in trigger.test_users:
                ignored.append(item.user_id)
            else:
                accepted.append(item.user_id)
                counts[item.user_id] += 1
        entry.users = accepted
        entry.ignored = ignored
        state.stats["webhook_users_accepted"] += len(accepted)
        state.stats["webhook_users_ignored"] += len(ignored)
        _finish(entry, 200, "accepted")
        return _json({"data": {"accepted": len(accepted), "ignored": len(ignored)}})

    # --- OAuth2 token endpoint ---------------------------------------------

    async def token(self, request: Request) -> Response:
        entry, body, answer = await self._start(request, "token")
        if answer is not None:
            return answer
        state = self.state
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            return _oauth_fail(entry, 400, "invalid_request", "Content-Type must be application/x-www-form-urlencoded")
        params = dict(parse_qsl(body.decode("latin-1"), keep_blank_values=True))
        params.update(request.query_params)
        if params.get("grant_type") != "client_credentials":
            return _oauth_fail(entry, 400, "unsupported_grant_type", "grant_type must be client_credentials")
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic" or not credentials:
            return _oauth_fail(entry, 401, "invalid_client", "Basic authorization with client id and secret required")
        try:
            client_id, sep, secret = base64.b64decode(credentials.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            sep = ""
        if not sep:
            return _oauth_fail(entry, 401, "invalid_client", "the Basic credentials are not base64(id:secret)")
        if params.get("client_id", client_id) != client_id:
            return _oauth_fail(entry, 401, "invalid_client", "client_id does not match the Basic credentials")
        expected = state.config.clients.get(client_id)
        if expected is None or not hmac.compare_digest(expected.encode(), secret.encode()):
            return _oauth_fail(entry, 401, "invalid_client", "unknown client or wrong client secret")
        wait = state.rate_limited(client_id)
        if wait is not None:
            headers = None
            rate_limit = state.config.token.rate_limit
            if rate_limit is not None and rate_limit.retry_after:
                headers = {"Retry-After": str(max(1, int(wait + 0.999)))}
            return _oauth_fail(entry, 429, "too_many_requests", "too many token requests: cache tokens", headers)
        access_token, expires_in = state.issue_token(client_id)
        _finish(entry, 200, "issued")
        return _json({"access_token": access_token, "expires_in": expires_in, "token_type": "Bearer"})

    # --- Analytics API -----------------------------------------------------

    async def analytics(self, request: Request) -> Response:
        entry, body, answer = await self._start(request, "analytics")
        if answer is not None:
            return answer
        state = self.state
        settings = state.config.analytics
        environment = request.path_params["environment"]
        if settings.environments is not None and environment not in settings.environments:
            return _fail(entry, 404, "unknown_environment", "no such environment")
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _fail(entry, 401, "unauthorized", "a Bearer access token is required")
        problem = state.check_token(token.strip())
        if problem is not None:
            return _fail(entry, 401, "unauthorized", f"the access token is {problem}")
        if not request.headers.get("user-agent", "").strip():
            return _fail(entry, 400, "user_agent_missing", "a User-Agent header is required")
        try:
            parsed = json.loads(body)
        except ValueError:
            return _fail(entry, 400, "invalid_json", "the body is not valid JSON")
        try:
            accepted = events.validate(settings, parsed)
        except events.EventError as exc:
            return _fail(entry, 400, "invalid_event", str(exc))
        users = []
        for event in accepted:
            users.append(event["endUserId"])
            state.event_counts[event["endUserId"]][event["eventName"]] += 1
        entry.users = users
        state.stats["events_accepted"] += len(accepted)
        _finish(entry, 200, "accepted")
        return _json({"data": {"accepted": len(accepted)}})

    # --- admin API ---------------------------------------------------------

    async def health(self, request: Request) -> Response:
        return _json({"ok": True, "triggers": len(self.state.config.triggers)})

    async def get_config(self, request: Request) -> Response:
        config = self.state.config
        reveal = request.query_params.get("reveal", "").lower() in ("1", "true", "yes")
        return _json(config.raw if reveal else config.masked())

    async def _read_json(self, request: Request) -> Any:
        try:
            return json.loads(await request.body())
        except ValueError:
            raise ConfigError("the body is not valid JSON") from None

    async def put_config(self, request: Request) -> Response:
        try:
            config = parse_config(await self._read_json(request))
        except ConfigError as exc:
            return _json({"error": str(exc)}, 400)
        self.state.replace_config(config)
        return _json({"ok": True, "triggers": len(config.triggers)})

    async def put_trigger(self, request: Request) -> Response:
        token = request.path_params["token"]
        try:
            config = with_trigger(self.state.config, token, await self._read_json(request))
        except ConfigError as exc:
            return _json({"error": str(exc)}, 400)
        self.state.replace_config(config)
        return _json({"ok": True, "name": config.triggers[token].name})

    async def delete_trigger(self, request: Request) -> Response:
        token = request.path_params["token"]
        if token not in self.state.config.triggers:
            return _json({"error": "no such trigger"}, 404)
        self.state.replace_config(without_trigger(self.state.config, token))
        return _json({"ok": True})

    async def reset(self, request: Request) -> Response:
        self.state.reset()
        return _json({"ok": True})

    async def add_fault(self, request: Request) -> Response:
        try:
            endpoint, fault = parse_fault(json.loads(await request.body()))
        except ValueError as exc:
            message = str(exc) if isinstance(exc, FaultError) else "the body is not valid JSON"
            return _json({"error": message}, 400)
        self.state.add_fault(endpoint, fault)
        return _json({"ok": True, "pending": self.state.pending_faults()})

    async def get_faults(self, request: Request) -> Response:
        return _json({"pending": self.state.pending_faults()})

    async def clear_faults(self, request: Request) -> Response:
        for endpoint in ENDPOINTS:
            self.state.faults[endpoint].clear()
        return _json({"ok": True})

    async def requests(self, request: Request) -> Response:
        query = request.query_params
        endpoint = query.get("endpoint") or None
        if endpoint is not None and endpoint not in ENDPOINTS:
            return _json({"error": f"endpoint: must be one of {', '.join(ENDPOINTS)}"}, 400)
        try:
            since = int(query.get("since", 0))
            limit = int(query["limit"]) if "limit" in query else None
        except ValueError:
            return _json({"error": "since and limit must be integers"}, 400)
        return _json({"requests": self.state.requests(endpoint, since, limit)})

    async def users(self, request: Request) -> Response:
        return _json(self.state.users())

    async def stats(self, request: Request) -> Response:
        return _json(self.state.stats_report())

    async def arm_sample(self, request: Request) -> Response:
        token = request.path_params["token"]
        trigger = self.state.config.triggers.get(token)
        if trigger is None:
            return _json({"error": "no such trigger"}, 404)
        self.state.armed.add(token)
        return _json({"ok": True, "trigger": trigger.name, "armed": True})

    async def get_sample(self, request: Request) -> Response:
        token = request.path_params["token"]
        if token not in self.state.config.triggers:
            return _json({"error": "no such trigger"}, 404)
        sample = self.state.samples.get(token)
        if sample is None:
            armed = token in self.state.armed
            return _json({"error": "no sample captured yet", "armed": armed}, 404)
        return _json(sample)

    async def expire_tokens(self, request: Request) -> Response:
        return _json({"ok": True, "expired": self.state.expire_tokens()})

    def routes(self) -> list[Route]:
        return [
            Route("/_admin/health", self.health, methods=["GET"]),
            Route("/_admin/config", self.get_config, methods=["GET"]),
            Route("/_admin/config", self.put_config, methods=["PUT"]),
            Route("/_admin/reset", self.reset, methods=["POST"]),
            Route("/_admin/faults", self.add_fault, methods=["POST"]),
            Route("/_admin/faults", self.get_faults, methods=["GET"]),
            Route("/_admin/faults", self.clear_faults, methods=["DELETE"]),
            Route("/_admin/requests", self.requests, methods=["GET"]),
            Route("/_admin/users", self.users, methods=["GET"]),
            Route("/_admin/stats", self.stats, methods=["GET"]),
            Route("/_admin/tokens/expire", self.expire_tokens, methods=["POST"]),
            Route("/_admin/triggers/{token}", self.put_trigger, methods=["PUT"]),
            Route("/_admin/triggers/{token}", self.delete_trigger, methods=["DELETE"]),
            Route("/_admin/triggers/{token}/sample", self.arm_sample, methods=["POST"]),
            Route("/_admin/triggers/{token}/sample", self.get_sample, methods=["GET"]),
            Route("/oauth2/token", self.token, methods=["POST"]),
            Route("/v1/{environment}/analytics", self.analytics, methods=["POST"]),
            Route("/connector/{token}", self.webhook, methods=["POST", "PUT"]),
            Route("/{prefix:path}/connector/{token}", self.webhook, methods=["POST", "PUT"]),
        ]


class _KeepRawSend:
    """Keeps the server's own `send` in the scope, so a fault can reach the socket."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope[RAW_SEND] = send
        await self.app(scope, receive, send)


def create_app(config: Config) -> tuple[Any, LocalAtomic]:
    """The ASGI application and the handlers object that holds its state."""
    local = LocalAtomic(config)
    starlette = Starlette(routes=local.routes())
    return _KeepRawSend(starlette), local
