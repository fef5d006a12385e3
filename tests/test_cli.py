"""The llmkit command, through a real subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmkit.cli", *args], capture_output=True, text=True, input=stdin, timeout=120
    )


def test_chat_streams_an_answer(model_path: Path) -> None:
    result = run("chat", "What is the capital of France?", "--max-tokens", "12")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


def test_chat_json_and_schema(tmp_path: Path, model_path: Path) -> None:
    result = run("chat", "Hi", "--max-tokens", "4", "--json")
    assert result.returncode == 0
    assert '"message"' in result.stdout
    (tmp_path / "cli_schema.py").write_text("from pydantic import BaseModel\nclass City(BaseModel):\n    name: str\n")
    result = subprocess.run(
        [sys.executable, "-m", "llmkit.cli", "chat", "--schema", "cli_schema:City", "Paris"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert '"name"' in result.stdout


def test_interactive_keeps_history_and_exits_on_eof(model_path: Path) -> None:
    result = run("chat", "--max-tokens", "4", "--model", "mock", stdin="first\n")
    assert result.returncode == 0


def test_complete() -> None:
    assert run("complete", "hello world", "--model", "mock").stdout == "hello world\n"


def test_models(model_path: Path) -> None:
    models = run("models")
    assert "openai-like" in models.stdout
    assert ".gguf" in models.stdout


def test_errors_are_one_line_without_traceback() -> None:
    result = run("chat", "--model", "nope", "x")
    assert result.returncode == 2
    assert result.stderr.startswith("llmkit: error: Unknown model spec")
    assert "Traceback" not in result.stderr
    debug = run("--debug", "chat", "--model", "nope", "x")
    assert "Traceback" in debug.stderr
