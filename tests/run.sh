#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what is missing, lints, type-checks,
# then runs every test against a real Kafka broker that tests/conftest.py starts.
#   --fast  the offline tier for quick local loops: ruff, mypy and the unit tests only;
#           no install, no broker (needs the .venv that a first full run creates).
# Any other arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
fast=false
if [ "${1:-}" = "--fast" ]; then
  fast=true
  shift
fi
if $fast; then
  if [ ! -x .venv/bin/pytest ]; then
    echo "no .venv yet: run 'bash deploy/local/install.sh' (or tests/run.sh) once" >&2
    exit 2
  fi
else
  bash deploy/local/install.sh
  echo "== the local model server: llama.cpp with SmolLM2-135M (built once into ~/.cache/catalogflow)"
  .venv/bin/catalogflow model fetch
fi
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy (strict, on the code folders and the tests)"
.venv/bin/mypy -p catalogflow -p tests
if $fast; then
  echo "== pytest (unit tests, no broker)"
  .venv/bin/pytest tests/unit "$@"
else
  echo "== pytest"
  .venv/bin/pytest "$@"
fi
echo "== all checks passed in $(( $(date +%s) - started ))s"
