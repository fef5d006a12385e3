#!/usr/bin/env bash
# Installs, then runs the whole suite: lint, strict typing, tests (servers are started by the test fixtures).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/ruff check src tests bench
.venv/bin/mypy
.venv/bin/pytest -m "slow or not slow" "$@"
