#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what is missing, lints, type-checks,
# then runs every test against a real Kafka broker that tests/conftest.py starts.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
bash deploy/local/install.sh
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy (strict, on the code folders)"
.venv/bin/mypy -p catalogflow
echo "== pytest"
.venv/bin/pytest "$@"
echo "== all checks passed in $(( $(date +%s) - started ))s"
