"""One validation layer for constructor arguments: every mistake is a ConfigurationError naming the fix, never a
pydantic error carrying the values given; unknown keywords never vanish; keys never appear in errors."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

import llmkit
from llmkit import ChatMessage, LiteLLM, OpenAILike, ScriptedLLM
from llmkit.errors import AuthenticationError, ConfigurationError

KEY = "sk-very-secret-key-123"
HI = [ChatMessage(role="user", content="hi")]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"temprature": 0}, "unknown argument 'temprature'; did you mean 'temperature'"),
        ({"max_token": 5}, "did you mean 'max_tokens'"),
        ({"temperature": float("nan")}, "temperature: Input should be a finite number"),
        ({"timeout": -1}, "timeout: Input should be greater than 0"),
        ({"api_base": "localhost:8000/v1"}, "has no scheme"),
        ({"api_base": "http://[::1"}, "is not valid"),
    ],
)
def test_mistakes_are_configuration_errors_naming_the_fix(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(")):
        OpenAILike(model="m", api_key=KEY, **kwargs)  # type: ignore[arg-type]


def test_no_key_in_any_construction_error() -> None:
    for kwargs in ({"server": "vLLM"}, {"temprature": KEY}, {"max_tokens": KEY}):
        with pytest.raises(ConfigurationError) as info:
            llmkit.create("openai-like/qwen", api_key=KEY, **kwargs)
        assert KEY not in str(info.value)
        assert KEY not in repr(info.value)
        assert info.value.__cause__ is None  # no pydantic error with the inputs chained behind it


def test_a_validator_error_is_llmkits_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        llmkit.create("openai/gpt-4o-mini")


def test_the_cli_says_it_in_one_line() -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    result = subprocess.run(
        [sys.executable, "-m", "llmkit.cli", "chat", "--model", "openai/gpt-4o-mini", "hi"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "OPENAI_API_KEY" in result.stderr


def test_base_url_is_an_alias_so_the_key_goes_where_asked() -> None:
    hosts: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        hosts.append(request.url.host)
        return httpx.Response(200, json={"choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}]})

    llm = OpenAILike(model="m", base_url="https://private.example.test/v1", api_key=KEY)  # type: ignore[call-arg]
    llm.with_http_clients(transport=httpx.MockTransport(handler))
    llm.chat(HI)
    assert hosts == ["private.example.test"]


def test_a_key_echoed_by_the_server_is_redacted() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": {"message": f"invalid key {request.headers['authorization']}"}})

    llm = OpenAILike(model="m", api_base="https://api.example.test/v1", api_key=KEY, max_retries=0)
    llm.with_http_clients(transport=httpx.MockTransport(handler))
    with pytest.raises(AuthenticationError) as info:
        llm.chat(HI)
    assert KEY not in str(info.value)
    assert KEY not in str(info.value.body)
    assert "[redacted]" in str(info.value)


def test_litellm_keeps_unknown_keywords_for_litellm() -> None:
    llm = LiteLLM(model="openai/m", custom_llm_provider="openai", drop_params=True)  # type: ignore[call-arg]
    assert llm.additional_kwargs == {"custom_llm_provider": "openai", "drop_params": True}


def test_callback_manager_none_means_the_default() -> None:
    assert ScriptedLLM(callback_manager=None).callback_manager.handlers == []  # type: ignore[arg-type]
