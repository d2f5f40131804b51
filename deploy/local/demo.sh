#!/usr/bin/env bash
# The main job on the embedded default: installs what is missing, starts a local Kafka
# broker and a worker, imports a sample catalog and shows it flowing. Extra arguments
# go to `catalogflow demo` (try --help).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash deploy/local/install.sh
exec .venv/bin/catalogflow demo "$@"
