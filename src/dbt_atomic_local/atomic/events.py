"""Validation of Analytics API bodies: `{"data": [event, ...]}`."""

from __future__ import annotations

import datetime
import re
from typing import Any

from dbt_atomic_local.atomic.config import AnalyticsSettings

_STRICT_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
_LOOSE_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")
EXAMPLE_TIMESTAMP = "2026-12-04T10:00:00.000Z"


class EventError(Exception):
    """The body or one event is invalid; the message names the field and the index."""


def _check_timestamp(value: Any, where: str, strict: bool) -> None:
    pattern = _STRICT_TIMESTAMP if strict else _LOOSE_TIMESTAMP
    what = "with milliseconds " if strict else ""
    if not isinstance(value, str) or not pattern.match(value):
        raise EventError(f"{where}.timestamp: must be a UTC ISO 8601 time {what}ending in Z, like {EXAMPLE_TIMESTAMP}")
    try:
        datetime.datetime.strptime(value[:19], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        raise EventError(f"{where}.timestamp: {value!r} is not a valid date and time") from None


def validate(settings: AnalyticsSettings, body: Any) -> list[dict[str, Any]]:
    """Return the events of a valid body; raise EventError at the first problem."""
    if not isinstance(body, dict):
        raise EventError('the body must be a JSON object {"data": [...]}')
    events = body.get("data")
    if not isinstance(events, list):
        raise EventError("data: must be an array of events")
    if not events:
        raise EventError("data: must contain at least one event")
    limit = settings.max_events_per_request
    if limit is not None and len(events) > limit:
        raise EventError(f"data: {len(events)} events; at most {limit} per request")
    for index, event in enumerate(events):
        where = f"data[{index}]"
        if not isinstance(event, dict):
            raise EventError(f"{where}: must be an object")
        name = event.get("eventName")
        if not isinstance(name, str) or not name:
            raise EventError(f"{where}.eventName: required, a non-empty string")
        if not settings.event_name_pattern.search(name):
            raise EventError(f"{where}.eventName: {name!r} does not match {settings.event_name_pattern.pattern}")
        if event.get("eventType") != "custom":
            raise EventError(f'{where}.eventType: must be "custom"')
        user = event.get("endUserId")
        if not isinstance(user, str) or not user.strip():
            raise EventError(f"{where}.endUserId: required, a non-empty string")
        _check_timestamp(event.get("timestamp"), where, settings.strict_timestamp)
        if "properties" in event and not isinstance(event["properties"], dict):
            raise EventError(f"{where}.properties: must be an object when present")
    return events
