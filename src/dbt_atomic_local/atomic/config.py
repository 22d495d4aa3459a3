"""The local Atomic's configuration: parsed and validated from plain JSON.

The JSON format is described in this directory's README. Parsing turns it into
frozen dataclasses so that request handlers only read precomputed values
(compiled patterns, template parts, header names in lower case).
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from typing import Any

ALGORITHMS = ("sha1", "sha256", "sha512")
DIGESTS = ("hex", "base64")
MODES = ("test", "live")
DEFAULT_EVENT_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,127}$"
MASK = "***"


class ConfigError(ValueError):
    """The configuration is not valid; the message names the offending field."""


@dataclass(frozen=True)
class HeaderField:
    """Where one value (signature or timestamp) is found: a header and a prefix."""

    header: str  # lower case
    prefix: str


@dataclass(frozen=True)
class Signing:
    secret: bytes
    algorithm: str
    digest: str
    signature: HeaderField
    timestamp: HeaderField | None
    template_parts: tuple[str | bytes, ...]  # literal bytes, or "timestamp" / "payload"
    tolerance_seconds: float | None


@dataclass(frozen=True)
class Mapping:
    user_id: tuple[str, ...]  # path into each body object
    user_id_name: str
    variables: tuple[tuple[str, tuple[str, ...]], ...]


@dataclass(frozen=True)
class Trigger:
    token: str
    name: str
    mode: str
    test_users: frozenset[str]
    signing: Signing | None
    mapping: Mapping | None


@dataclass(frozen=True)
class RateLimit:
    requests: int
    per_seconds: float
    retry_after: bool


@dataclass(frozen=True)
class TokenSettings:
    expires_in: int = 3600
    rate_limit: RateLimit | None = RateLimit(requests=10, per_seconds=60, retry_after=False)


@dataclass(frozen=True)
class AnalyticsSettings:
    environments: frozenset[str] | None = None  # None: any environment id
    event_name_pattern: re.Pattern[str] = re.compile(DEFAULT_EVENT_NAME_PATTERN)
    strict_timestamp: bool = True
    max_events_per_request: int | None = None


@dataclass(frozen=True)
class Limits:
    webhook_body_bytes: int | None = None
    webhook_users: int | None = None


@dataclass(frozen=True)
class RequestLogSettings:
    limit: int = 10000
    body_bytes: int = 1_000_000


@dataclass(frozen=True)
class Config:
    triggers: dict[str, Trigger] = field(default_factory=dict)
    clients: dict[str, str] = field(default_factory=dict)
    token: TokenSettings = field(default_factory=TokenSettings)
    analytics: AnalyticsSettings = field(default_factory=AnalyticsSettings)
    limits: Limits = field(default_factory=Limits)
    request_log: RequestLogSettings = field(default_factory=RequestLogSettings)
    raw: dict[str, Any] = field(default_factory=dict)  # the JSON it was parsed from

    @property
    def signature_headers(self) -> frozenset[str]:
        """Every header name that carries a signature or a timestamp."""
        names = set()
        for trigger in self.triggers.values():
            if trigger.signing is not None:
                names.add(trigger.signing.signature.header)
                if trigger.signing.timestamp is not None:
                    names.add(trigger.signing.timestamp.header)
        return frozenset(names)

    def masked(self) -> dict[str, Any]:
        """The raw configuration with every secret replaced, for display."""
        raw = copy.deepcopy(self.raw)
        triggers = raw.get("triggers") or {}
        masked_triggers = {}
        for index, (token, spec) in enumerate(triggers.items(), start=1):
            if isinstance(spec, dict) and isinstance(spec.get("signing"), dict) and "secret" in spec["signing"]:
                spec["signing"]["secret"] = MASK
            trigger = self.triggers.get(token)
            name = trigger.name if trigger else str(index)
            key = f"{MASK}{name}"
            if key in masked_triggers:
                key = f"{key}#{index}"
            masked_triggers[key] = spec
        if triggers:
            raw["triggers"] = masked_triggers
        if isinstance(raw.get("clients"), dict):
            raw["clients"] = {client_id: MASK for client_id in raw["clients"]}
        return raw


# --- parsing helpers -------------------------------------------------------


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: must be a JSON object")
    return value


def _check_keys(value: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


def _str(value: Any, where: str, *, empty: bool = False) -> str:
    if not isinstance(value, str) or (not empty and not value):
        raise ConfigError(f"{where}: must be a {'' if empty else 'non-empty '}string")
    return value


def _positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}: must be a positive integer")
    return value


def _optional_positive_int(value: Any, where: str) -> int | None:
    return None if value is None else _positive_int(value, where)


def _positive_number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(f"{where}: must be a positive number")
    return float(value)


def _path(value: Any, where: str) -> tuple[str, ...]:
    """A field path: a key, or dotted keys into nested objects."""
    text = _str(value, where)
    return tuple(text.split("."))


_TEMPLATE_TOKEN = re.compile(r"\[(timestamp|payload)\]")


def _template(template: str, where: str) -> tuple[str | bytes, ...]:
    parts: list[str | bytes] = []
    pos = 0
    for match in _TEMPLATE_TOKEN.finditer(template):
        if match.start() > pos:
            parts.append(template[pos : match.start()].encode())
        parts.append(match.group(1))
        pos = match.end()
    if pos < len(template):
        parts.append(template[pos:].encode())
    if "payload" not in parts:
        raise ConfigError(f"{where}: must contain [payload]")
    return tuple(parts)


def _header_field(value: Any, where: str) -> HeaderField:
    spec = _obj(value, where)
    _check_keys(spec, {"header", "parsePrefix"}, where)
    header = _str(spec.get("header"), f"{where}.header").strip().lower()
    prefix = _str(spec.get("parsePrefix", ""), f"{where}.parsePrefix", empty=True)
    return HeaderField(header=header, prefix=prefix)


def parse_signing(value: Any, where: str) -> Signing | None:
    if value is None:
        return None
    spec = _obj(value, where)
    _check_keys(spec, {"secret", "algorithm", "digest", "data", "template", "tolerance_seconds"}, where)
    secret = _str(spec.get("secret"), f"{where}.secret")
    algorithm = spec.get("algorithm", "sha256")
    if algorithm not in ALGORITHMS:
        raise ConfigError(f"{where}.algorithm: must be one of {', '.join(ALGORITHMS)}")
    digest = spec.get("digest", "hex")
    if digest not in DIGESTS:
        raise ConfigError(f"{where}.digest: must be one of {', '.join(DIGESTS)}")
    data = _obj(spec.get("data"), f"{where}.data")
    _check_keys(data, {"signature", "timestamp"}, f"{where}.data")
    signature = _header_field(data.get("signature"), f"{where}.data.signature")
    timestamp = None
    if data.get("timestamp") is not None:
        timestamp = _header_field(data["timestamp"], f"{where}.data.timestamp")
    default_template = "[timestamp].[payload]" if timestamp else "[payload]"
    template = _template(_str(spec.get("template", default_template), f"{where}.template"), f"{where}.template")
    if "timestamp" in template and timestamp is None:
        raise ConfigError(f"{where}.template: uses [timestamp] but data.timestamp is not set")
    if timestamp and signature.header == timestamp.header and signature.prefix == timestamp.prefix:
        raise ConfigError(f"{where}.data: signature and timestamp share a header, so they need different prefixes")
    tolerance = spec.get("tolerance_seconds", 300)
    tolerance = None if tolerance is None else _positive_number(tolerance, f"{where}.tolerance_seconds")
    return Signing(
        secret=secret.encode(),
        algorithm=algorithm,
        digest=digest,
        signature=signature,
        timestamp=timestamp,
        template_parts=template,
        tolerance_seconds=tolerance,
    )


def parse_mapping(value: Any, where: str) -> Mapping | None:
    if value is None:
        return None
    spec = _obj(value, where)
    _check_keys(spec, {"user_id", "variables"}, where)
    user_id = _str(spec.get("user_id"), f"{where}.user_id")
    variables = _obj(spec.get("variables") or {}, f"{where}.variables")
    return Mapping(
        user_id=_path(user_id, f"{where}.user_id"),
        user_id_name=user_id,
        variables=tuple(
            (_str(name, f"{where}.variables"), _path(path, f"{where}.variables.{name}"))
            for name, path in variables.items()
        ),
    )


def parse_trigger(token: str, value: Any, where: str, default_name: str) -> Trigger:
    if not isinstance(token, str) or not token or "/" in token:
        raise ConfigError(f"{where}: the connector token must be a non-empty string without '/'")
    spec = _obj(value, where)
    _check_keys(spec, {"name", "mode", "test_users", "signing", "mapping"}, where)
    name = _str(spec.get("name", default_name), f"{where}.name")
    where = f"triggers[{name}]"
    mode = str(spec.get("mode", "test")).lower()
    if mode not in MODES:
        raise ConfigError(f"{where}.mode: must be one of {', '.join(MODES)}")
    test_users = spec.get("test_users") or []
    if not isinstance(test_users, list) or not all(isinstance(u, str) and u for u in test_users):
        raise ConfigError(f"{where}.test_users: must be a list of non-empty strings")
    return Trigger(
        token=token,
        name=name,
        mode=mode,
        test_users=frozenset(test_users),
        signing=parse_signing(spec.get("signing"), f"{where}.signing"),
        mapping=parse_mapping(spec.get("mapping"), f"{where}.mapping"),
    )


def _parse_token(value: Any) -> TokenSettings:
    spec = _obj(value or {}, "token")
    _check_keys(spec, {"expires_in", "rate_limit"}, "token")
    expires_in = _positive_int(spec.get("expires_in", 3600), "token.expires_in")
    if "rate_limit" not in spec:
        return TokenSettings(expires_in=expires_in)
    rate_limit = None
    if spec["rate_limit"] is not None:
        rl = _obj(spec["rate_limit"], "token.rate_limit")
        _check_keys(rl, {"requests", "per_seconds", "retry_after"}, "token.rate_limit")
        rate_limit = RateLimit(
            requests=_positive_int(rl.get("requests"), "token.rate_limit.requests"),
            per_seconds=_positive_number(rl.get("per_seconds"), "token.rate_limit.per_seconds"),
            retry_after=bool(rl.get("retry_after", False)),
        )
    return TokenSettings(expires_in=expires_in, rate_limit=rate_limit)


def _parse_analytics(value: Any) -> AnalyticsSettings:
    spec = _obj(value or {}, "analytics")
    _check_keys(
        spec,
        {"environments", "event_name_pattern", "strict_timestamp", "max_events_per_request"},
        "analytics",
    )
    environments = spec.get("environments")
    if environments is not None:
        if not isinstance(environments, list) or not all(isinstance(e, str) and e for e in environments):
            raise ConfigError("analytics.environments: must be a list of non-empty strings, or null (any)")
        environments = frozenset(environments)
    pattern_text = _str(spec.get("event_name_pattern", DEFAULT_EVENT_NAME_PATTERN), "analytics.event_name_pattern")
    try:
        pattern = re.compile(pattern_text)
    except re.error as exc:
        raise ConfigError(f"analytics.event_name_pattern: not a valid regular expression ({exc})") from exc
    return AnalyticsSettings(
        environments=environments,
        event_name_pattern=pattern,
        strict_timestamp=bool(spec.get("strict_timestamp", True)),
        max_events_per_request=_optional_positive_int(
            spec.get("max_events_per_request"), "analytics.max_events_per_request"
        ),
    )


def _parse_limits(value: Any) -> Limits:
    spec = _obj(value or {}, "limits")
    _check_keys(spec, {"webhook_body_bytes", "webhook_users"}, "limits")
    return Limits(
        webhook_body_bytes=_optional_positive_int(spec.get("webhook_body_bytes"), "limits.webhook_body_bytes"),
        webhook_users=_optional_positive_int(spec.get("webhook_users"), "limits.webhook_users"),
    )


def _parse_request_log(value: Any) -> RequestLogSettings:
    spec = _obj(value or {}, "request_log")
    _check_keys(spec, {"limit", "body_bytes"}, "request_log")
    return RequestLogSettings(
        limit=_positive_int(spec.get("limit", 10000), "request_log.limit"),
        body_bytes=_positive_int(spec.get("body_bytes", 1_000_000), "request_log.body_bytes"),
    )


TOP_LEVEL_KEYS = {"triggers", "clients", "token", "analytics", "limits", "request_log"}


def parse_config(value: Any) -> Config:
    """Validate a configuration (the parsed JSON) and return it as a Config."""
    spec = _obj(value, "configuration")
    _check_keys(spec, TOP_LEVEL_KEYS, "configuration")
    triggers_spec = _obj(spec.get("triggers") or {}, "triggers")
    triggers = {}
    for index, (token, trigger_spec) in enumerate(triggers_spec.items(), start=1):
        triggers[token] = parse_trigger(token, trigger_spec, f"triggers[#{index}]", f"trigger_{index}")
    clients = _obj(spec.get("clients") or {}, "clients")
    for client_id, secret in clients.items():
        if not client_id:
            raise ConfigError("clients: a client id must be a non-empty string")
        _str(secret, "clients[<id>]: the client secret")
    return Config(
        triggers=triggers,
        clients=dict(clients),
        token=_parse_token(spec.get("token")),
        analytics=_parse_analytics(spec.get("analytics")),
        limits=_parse_limits(spec.get("limits")),
        request_log=_parse_request_log(spec.get("request_log")),
        raw=copy.deepcopy(spec),
    )


def load_config(path: str | None) -> Config:
    """Read a configuration file (JSON); no path gives the empty configuration."""
    if not path:
        return parse_config({})
    with open(path, encoding="utf-8") as handle:
        try:
            value = json.load(handle)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not valid JSON ({exc})") from exc
    return parse_config(value)


def with_trigger(config: Config, token: str, spec: Any) -> Config:
    """A copy of config with one trigger added or replaced."""
    raw = copy.deepcopy(config.raw)
    raw.setdefault("triggers", {})
    raw["triggers"] = dict(raw["triggers"] or {})
    raw["triggers"][token] = spec
    return parse_config(raw)


def without_trigger(config: Config, token: str) -> Config:
    raw = copy.deepcopy(config.raw)
    (raw.get("triggers") or {}).pop(token, None)
    return parse_config(raw)
