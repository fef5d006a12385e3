"""schemathesis against the gateway's own OpenAPI document: generated requests, valid and invalid, never get a 5xx
the document does not list, a status it does not list, or a body that breaks its schema."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.gateway.conftest import MASTER, serving

pytest.importorskip("schemathesis", reason="schema fuzzing needs schemathesis (the 'dev' extra)")


def test_schemathesis_finds_nothing(tmp_path: Path) -> None:
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    assert st is not None
    config = {"models": {"echo": {"model": "mock"}}, "master_key": MASTER, "database_url": f"sqlite:///{tmp_path}/s.db"}
    with serving(config) as base:
        result = subprocess.run(
            [
                st, "run", f"{base}/openapi.json",
                "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
                "response_schema_conformance",
                "--header", f"Authorization: Bearer {MASTER}",
                "--max-examples", "25", "--seed", "1", "--workers", "1",
                "--phases", "examples,coverage,fuzzing", "--request-timeout", "20",
            ],
            capture_output=True, text=True, timeout=600, cwd=tmp_path,  # its cache stays out of the checkout
        )  # fmt: skip
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
