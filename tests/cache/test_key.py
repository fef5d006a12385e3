"""The cache key: what changes an answer changes the key; order, secrets and transport settings never do."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, SecretStr

from llmkit import ChatMessage, ImageBlock, ScriptedLLM, TextBlock
from llmkit.cache.key import Uncacheable, request_key
from llmkit.providers.function import FunctionLLM
from llmkit.providers.openai import OpenAILike
from llmkit.wrapper import LLMCall

HI = [ChatMessage(content="hi")]


def key(llm: Any, messages: list[ChatMessage] = HI, namespace: str = "default", **kwargs: Any) -> str:
    return request_key(llm, LLMCall.chat(messages, kwargs), namespace)


def server(**settings: Any) -> OpenAILike:
    return OpenAILike(**{"model": "m", "api_base": "http://127.0.0.1:9/v1", **settings})


def test_argument_and_dict_order_do_not_matter() -> None:
    llm = ScriptedLLM()
    assert key(llm, temperature=0, top_p=1) == key(llm, top_p=1, temperature=0)
    assert key(llm, extra_body={"a": 1, "b": 2}) == key(llm, extra_body={"b": 2, "a": 1})


def test_what_changes_the_answer_changes_the_key() -> None:
    base = key(server())
    assert key(server(), temperature=0.5) != base
    assert key(server(), [ChatMessage(content="hi!")]) != base
    assert key(server(), [ChatMessage(role="system", content="hi")]) != base
    assert key(server(model="other")) != base
    assert key(server(api_base="http://127.0.0.1:10/v1")) != base
    assert key(server(system_prompt="Be brief")) != base
    assert key(server(temperature=0.3)) != base
    assert key(server(), namespace="other") != base
    assert request_key(server(), LLMCall.complete("hi", False, {}), "default") != base


def test_keys_timeouts_retries_and_headers_are_not_in_the_key() -> None:
    base = key(server(api_key="sk-one"))
    assert key(server(api_key="sk-two", timeout=5, max_retries=0, default_headers={"x-trace": "1"})) == base


def test_bytes_are_keyed_by_digest() -> None:
    llm = ScriptedLLM()
    image = ChatMessage(blocks=[TextBlock(text="what is it?"), ImageBlock(image=b"\x89PNG" + b"0" * 10_000)])
    other = ChatMessage(blocks=[TextBlock(text="what is it?"), ImageBlock(image=b"\x89PNG" + b"1" * 10_000)])
    assert key(llm, [image]) == key(llm, [image.model_copy(deep=True)])
    assert key(llm, [image]) != key(llm, [other])


def test_tools_and_output_classes_by_schema() -> None:
    class Invoice(BaseModel):
        total: float

    class Receipt(BaseModel):
        total: int

    llm = ScriptedLLM()
    assert key(llm, output_cls=Invoice) != key(llm, output_cls=Receipt)
    assert key(llm, output_cls=Invoice) == key(llm, output_cls=Invoice)


def test_functions_by_code_so_two_lambdas_never_share_answers() -> None:
    one = FunctionLLM(chat_fn=lambda messages, kwargs: "one")
    two = FunctionLLM(chat_fn=lambda messages, kwargs: "two")
    assert key(one) != key(two)
    assert key(one) == key(FunctionLLM(chat_fn=one.chat_fn))


def test_an_argument_without_canonical_form_is_uncacheable() -> None:
    with pytest.raises(Uncacheable):
        key(ScriptedLLM(), handle=object())


def test_secrets_never_reach_the_key_input() -> None:
    # A SecretStr among the arguments is dropped, never hashed in clear (the digest could be brute-forced).
    assert key(ScriptedLLM(), token=SecretStr("a")) == key(ScriptedLLM(), token=SecretStr("b"))
