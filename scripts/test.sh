#!/usr/bin/env bash
# The whole test suite: lint, SQL checks, dbt parse, and pytest against the
# local Snowflake and local Atomic (the tests start both themselves).
# Every step is bounded by a timeout: a hung server must fail the run, not stall it.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"
step() { echo "== $1"; }

step "ruff"
timeout 120 ruff check src tests scripts
timeout 120 ruff format --check src tests scripts

step "sqlfluff (dialect snowflake): models and analyses"
timeout 300 sqlfluff lint --dialect snowflake --templater jinja models analyses integration_tests/models

step "dbt parse: the package and integration_tests"
export DBT_SEND_ANONYMOUS_USAGE_STATS=false
(cd integration_tests && timeout 300 dbt deps --profiles-dir . >/dev/null && timeout 300 dbt parse --profiles-dir . --quiet)
timeout 300 dbt parse --project-dir . --profiles-dir integration_tests --profile dbt_atomic_integration_tests --quiet

step "pytest"
timeout 1500 pytest -q "$@"
