#!/usr/bin/env bash
# The whole path on the local stack: seed -> atomic_setup -> dbt build -> the
# local Atomic receives signed batches -> the audit shows every user delivered;
# then a second build sends nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec timeout 900 .venv/bin/python scripts/demo.py "$@"
