"""The SQL atomic_setup generates is Snowflake SQL that sqlfluff parses."""

from __future__ import annotations

import itertools
import json
import re

import pytest
import sqlfluff
from sqlfluff.api.simple import APIParsingError

pytestmark = pytest.mark.dbt

# sqlfluff's Snowflake dialect has no grammar for these statements (sqlfluff 4.5).
UNPARSEABLE = re.compile(r"^((create|alter) external access integration|alter network rule)\b", re.IGNORECASE)


def planned_statements(project) -> list[tuple[str, str]]:
    """(description, sql) of every planned statement, read from dbt's JSON log of a dry run."""
    out = project.dbt("--log-format", "json", "run-operation", "atomic_setup", "--args", "{dry_run: true}").stdout
    messages = [json.loads(line)["info"]["msg"] for line in out.splitlines() if line.startswith("{")]
    statements = []
    for header, body in itertools.pairwise(messages):
        if re.match(r"^\d+ of \d+ ", header):
            statements.append((header, body.strip().rstrip(";")))
    return statements


def test_every_setup_statement_parses_as_snowflake_sql(project):
    project.configure_atomic()
    statements = planned_statements(project)
    assert len(statements) >= 12
    skipped = []
    for header, sql in statements:
        if UNPARSEABLE.match(sql):
            skipped.append(header)
            continue
        try:
            sqlfluff.parse(sql, dialect="snowflake")
        except APIParsingError as exc:
            pytest.fail(f"{header}: sqlfluff cannot parse it: {exc}")
    # only these are left to Snowflake itself: the integration's create and alter, the rule's alter
    assert len(skipped) == 3, skipped
