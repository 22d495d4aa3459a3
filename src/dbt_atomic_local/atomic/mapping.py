"""The webhook payload mapping: user id and variables out of each body object."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dbt_atomic_local.atomic.config import Mapping

_MISSING = object()


class MappingError(Exception):
    """A body element cannot be mapped; the message names the element and field."""


@dataclass(frozen=True)
class Mapped:
    user_id: str
    variables: dict[str, Any]


def _lookup(obj: dict[str, Any], path: tuple[str, ...]) -> Any:
    if len(path) == 1:
        return obj.get(path[0], _MISSING)
    joined = ".".join(path)
    if joined in obj:  # a key that itself contains dots
        return obj[joined]
    value: Any = obj
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return _MISSING
        value = value[key]
    return value


def map_body(mapping: Mapping, body: Any) -> list[Mapped]:
    """Map a JSON body: one object, or an array mapped element by element."""
    elements = body if isinstance(body, list) else [body]
    batched = isinstance(body, list)
    mapped = []
    for index, element in enumerate(elements):
        where = f"element {index}" if batched else "the body"
        if not isinstance(element, dict):
            raise MappingError(f"{where} is not a JSON object")
        user_id = _lookup(element, mapping.user_id)
        if user_id is _MISSING or user_id is None:
            raise MappingError(f"{where} has no user id (field {mapping.user_id_name!r})")
        if isinstance(user_id, bool) or not isinstance(user_id, (str, int)):
            raise MappingError(f"{where}: the user id (field {mapping.user_id_name!r}) must be a string")
        user_id = str(user_id)
        if not user_id.strip():
            raise MappingError(f"{where}: the user id (field {mapping.user_id_name!r}) is empty")
        variables = {}
        for name, path in mapping.variables:
            value = _lookup(element, path)
            variables[name] = None if value is _MISSING else value
        mapped.append(Mapped(user_id=user_id, variables=variables))
    return mapped
