"""The llmkit command, through a real subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest


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


def test_usage_errors_exit_2_in_one_line(tmp_path: Path) -> None:
    for args, stdin in ((["chat", "--model", "mock"], ""), (["complete", "x", "--max-tokens", "-5"], None),
                        (["complete", "x", "--temperature", "nan"], None)):  # fmt: skip
        result = run(*args, stdin=stdin)
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr
    (tmp_path / "broken_schema.py").write_text("raise RuntimeError('boom at import')\n")
    result = subprocess.run(
        [sys.executable, "-m", "llmkit.cli", "chat", "--model", "mock", "--schema", "broken_schema:X", "hi"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 2
    expected = "llmkit: error: cannot import 'broken_schema' for --schema: RuntimeError: boom at import"
    assert result.stderr.strip() == expected


def test_an_interactive_session_survives_a_failed_turn(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from llmkit.cli import _interactive
    from llmkit.errors import ServerError
    from llmkit.providers.function import FunctionLLM

    def answer(messages: list[Any], kwargs: dict[str, Any]) -> str:
        if messages[-1].content == "second":
            raise ServerError("upstream down", status_code=503)
        return f"seen {len(messages)}"

    lines = iter(["first", "second", "third"])

    def fake_input(prompt: str) -> str:
        try:
            return next(lines)
        except StopIteration:
            raise EOFError from None

    monkeypatch.setattr("builtins.input", fake_input)
    llm = FunctionLLM(chat_fn=answer)
    assert _interactive(llm) == 0
    out, err = capsys.readouterr()
    assert "upstream down" in err
    assert out.splitlines() == ["seen 1", "seen 3"]  # the failed turn left the history as it was


def test_cache_flag_stats_and_clear(tmp_path: Path) -> None:
    import os

    env = {**os.environ, "LLMKIT_CACHE_DIR": str(tmp_path)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "llmkit.cli", *args]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)

    first = cli("chat", "--model", "mock", "--cache", "hello")
    again = cli("chat", "--model", "mock", "--cache", "hello")
    assert first.returncode == again.returncode == 0
    assert first.stdout == again.stdout
    stats = cli("cache", "stats")
    assert "entries:  1" in stats.stdout
    assert str(tmp_path) in stats.stdout
    cleared = cli("cache", "clear", "--namespace", "default")
    assert cleared.stdout.startswith("removed 1 cached response from namespace 'default'")
    assert "entries:  0" in cli("cache", "stats").stdout
    (tmp_path / "damaged.sqlite").write_bytes(b"not a database" * 100)
    broken = cli("cache", "stats", "--path", str(tmp_path / "damaged.sqlite"))
    assert broken.returncode == 1
    assert broken.stderr.startswith("llmkit: error: response cache:")
    assert "Traceback" not in broken.stderr


def test_chat_usage_prints_tokens_cost_and_time(usage_server: Any) -> None:
    pytest.importorskip("genai_prices", reason="prices need the 'cost' extra: pip install 'llmkit[cost]'")
    env = {**__import__("os").environ, "OPENAI_API_KEY": "sk-test"}
    args = ["chat", "Capital of France?", "--model", "openai/gpt-4o", "--api-base", usage_server.url, "--usage"]
    result = subprocess.run(
        [sys.executable, "-m", "llmkit.cli", *args], capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode == 0, result.stderr
    assert "Paris" in result.stdout
    assert "tokens" not in result.stdout
    # gpt-4o: 1,000 uncached input at $2.50, 200 cached at $1.25, 300 output at $10 per million.
    assert "tokens: 1200 in (200 cached), 300 out | cost: $0.00575 | time: " in result.stderr
    unknown = subprocess.run(
        [
            sys.executable,
            "-m",
            "llmkit.cli",
            "chat",
            "hi",
            "--model",
            "openai-like/house",
            "--api-base",
            usage_server.url,
            "--usage",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert unknown.returncode == 0, unknown.stderr
    assert "cost: unknown (no price for provider 'openai_compatible'" in unknown.stderr
