#!/usr/bin/env bash
# Installs what catalogflow needs on a fresh Debian machine: Java 17 and Maven (for the
# local Kafka broker's jars), PostgreSQL (the tests' read-model server,
# deploy/local/postgres.py), Prometheus and promtool (the alert-rule tests and the
# real-Prometheus test), Chromium (the web console's browser tests drive it through
# Playwright, which never downloads a browser of its own), a Python virtualenv in .venv with the project and its
# dev tools. Safe to run again; it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."

need_apt=()
command -v java >/dev/null 2>&1 || need_apt+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need_apt+=(maven)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null 2>&1 \
  || need_apt+=(postgresql)
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)  # the console's browser tests
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "== installing ${need_apt[*]} (apt)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
echo "== installing catalogflow and its dependencies into .venv"
.venv/bin/python -m pip install -q --upgrade pip
# strict editable mode: a link tree that mypy and the tests both see, since the code
# folders are mapped into the catalogflow namespace (see pyproject.toml).
.venv/bin/python -m pip install -q -e '.[dev]' --config-settings editable_mode=strict
echo "== fetching the Kafka broker jars (cached after the first time)"
.venv/bin/catalogflow broker fetch
