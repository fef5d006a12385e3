"""Side virtual environments holding the released libraries llmkit is compared with (never llmkit dependencies).

A differential test asks for one with :func:`side_python`; the venv is built once under ``.diff-venvs/NAME`` (pip's
wheel cache makes rebuilds cheap) and reused while its requirements are unchanged. When it cannot be built (no
package index reachable), the test is skipped with the reason, never failed silently.

Example (in a test)::

    python = side_python("llamaindex", ["llama-index-core==0.14.25"])
    result = run_in(python, "print(1 + 1)")
"""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENVS = ROOT / ".diff-venvs"


def side_python(name: str, requirements: list[str], *, no_deps: tuple[str, ...] = ()) -> Path:
    """The python of the side venv NAME with exactly REQUIREMENTS installed (built on first use; skip if impossible)."""
    home = VENVS / name
    python = home / "bin" / "python"
    stamp = home / "requirements.json"
    wanted = json.dumps({"requirements": requirements, "no_deps": list(no_deps), "python": sys.version})
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    try:
        venv.create(home, with_pip=True, clear=True)
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, *requirements], check=True, capture_output=True, text=True, timeout=900)
        if no_deps:
            subprocess.run([*pip, "--no-deps", *no_deps], check=True, capture_output=True, text=True, timeout=900)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        pytest.skip(f"side venv {name!r} could not be built ({' '.join(requirements)}): {str(detail)[-500:]}")
    stamp.write_text(wanted)
    return python


def run_in(python: Path, code: str, *, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    """Run CODE with PYTHON (a side venv's interpreter) and return its stdout; its stderr is in the failure."""
    result = subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT
    )
    if result.returncode != 0:
        raise AssertionError(f"side program failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return result.stdout

