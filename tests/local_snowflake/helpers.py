"""Small helpers for the local Snowflake tests."""

from __future__ import annotations


def rows(cur, sql: str, params=None) -> list[tuple]:
    cur.execute(sql, params) if params is not None else cur.execute(sql)
    return cur.fetchall()


def as_dicts(cur, sql: str) -> list[dict]:
    cur.execute(sql)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
