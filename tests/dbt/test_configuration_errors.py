"""Bad configuration stops with a message that names the problem, before anything is sent."""

from __future__ import annotations

import pytest
from harness import DATABASE

pytestmark = pytest.mark.dbt


def failure(project, *args, vars=None) -> str:
    proc = project.dbt(*args, expect_ok=False, vars=vars)
    assert proc.returncode != 0, proc.stdout[-3000:]
    return proc.stdout + proc.stderr


def test_configuration_errors_name_the_problem(project):
    project.configure_atomic()
    out = failure(project, "run-operation", "atomic_setup", vars={"atomic_object_prefix": "atomic-; drop"})
    assert "atomic_object_prefix must be a plain identifier" in out
    out = failure(project, "run-operation", "atomic_setup", vars={"atomic_destinations": {"x": {"kind": "sms"}}})
    assert "destination 'x' needs kind: webhook or kind: events" in out
    out = failure(project, "run-operation", "atomic_setup", vars={"atomic_destinations": {}})
    assert "no destinations configured" in out
    out = failure(project, "run-operation", "atomic_setup", vars={"atomic_batch_max_rows": 0})
    assert "atomic_batch_max_rows must be a positive number" in out
    # nothing was created by the refused runs
    schemas = [row[1].lower() for row in project.query(f"show schemas in database {DATABASE}")]
    assert project.package_schema.lower() not in schemas

    project.dbt("seed")
    project.dbt("run-operation", "atomic_setup")
    project.dbt("run", "--select", "statement_ready_users", vars={"atomic_send_enabled": False})
    out = failure(
        project,
        "run-operation",
        "atomic_send",
        "--args",
        "{models: [statement_ready_users]}",
        vars={"atomic_destinations": {"low_balance": {"kind": "webhook"}}},
    )
    assert "sends to destination 'statement_ready', which is not in atomic_destinations" in out
    out = failure(project, "run-operation", "atomic_send", "--args", "{models: [no_such_model]}")
    assert "no model named no_such_model" in out


def test_an_unset_secret_stops_the_send_and_names_the_secret(project):
    project.configure_atomic()
    project.dbt("seed")
    project.dbt("run-operation", "atomic_setup")  # secrets hold their placeholder
    out = failure(project, "build", "--select", "statement_ready_users")
    assert "'statement_ready_url' is not set" in out
    assert project.atomic_get("requests")["requests"] == []
