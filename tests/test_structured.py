"""Structured output: JSON extraction, partial streaming on every prefix, re-asks, mode fallback."""

from __future__ import annotations

import json
from enum import StrEnum

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from llmkit import BadRequestError, PromptTemplate, PydanticProgramMode, ScriptedLLM, StructuredOutputError
from llmkit.structured import extract_json, parse_partial


class Color(StrEnum):
    RED = "red"
    BLUE = "blue"


class Item(BaseModel):
    name: str
    qty: int


class Order(BaseModel):
    id: int
    color: Color
    items: list[Item]
    note: str | None = None


PROMPT = PromptTemplate("Make an order about {topic}")


def test_extract_json_tolerates_fences_and_prose() -> None:
    assert extract_json('Sure! ```json\n{"a": 1}\n``` hope it helps') == {"a": 1}
    assert extract_json('Here: {"a": {"b": [1, 2]}} and {"c": 3}') == {"a": {"b": [1, 2]}}
    assert extract_json("prefix {broken then [1, 2]") == [1, 2]
    with pytest.raises(ValueError, match="no JSON"):
        extract_json("no json here")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=10,
)


@given(st.dictionaries(st.text(max_size=5), json_values, max_size=4))
def test_partial_json_never_raises_on_any_prefix(value: dict[str, object]) -> None:
    text = "Answer: " + json.dumps(value)
    for end in range(len(text) + 1):
        parse_partial(text[:end])
    assert parse_partial(text) == value


def test_native_json_schema_mode_with_nested_enum_list_optional() -> None:
    order = ScriptedLLM().structured_predict(Order, PROMPT, topic="paint")
    assert order == Order(id=0, color=Color.RED, items=[Item(name="string", qty=0)])


def test_function_mode_and_alias() -> None:
    llm = ScriptedLLM(pydantic_program_mode=PydanticProgramMode.OPENAI)
    assert llm.structured_predict(Item, PROMPT, topic="x") == Item(name="string", qty=0)
    _, kwargs = llm.requests[-1]
    assert kwargs["tool_choice"] == "Item"


def test_llm_mode_parses_prose_and_reasks_with_errors() -> None:
    llm = ScriptedLLM(
        responses=['Sure: {"name": "nail", "qty": "many"}', 'Fixed: ```json\n{"name": "nail", "qty": 3}```'],
        is_function_calling_model=False,
        pydantic_program_mode=PydanticProgramMode.LLM,
    )
    assert llm.structured_predict(Item, PROMPT, topic="x") == Item(name="nail", qty=3)
    messages, _ = llm.requests[-1]
    assert "not valid" in (messages[-1].content or "")
    assert "qty" in (messages[-1].content or "")


def test_validation_failure_after_reasks_raises_with_raw_and_errors() -> None:
    llm = ScriptedLLM(responses=['{"name": 1}'], pydantic_program_mode=PydanticProgramMode.LLM)
    with pytest.raises(StructuredOutputError) as info:
        llm.structured_predict(Item, PROMPT, topic="x")
    assert info.value.raw == '{"name": 1}'
    assert {e["loc"] for e in info.value.errors} >= {("name",), ("qty",)}
    assert len(llm.requests) == 3  # first try + 2 re-asks


class RefusesJsonSchema(ScriptedLLM):
    def _chat(self, messages, **kwargs):  # type: ignore[no-untyped-def]
        if "json_schema" in kwargs:
            raise BadRequestError("json_schema unsupported", status_code=400)
        return super()._chat(messages, **kwargs)


def test_default_mode_falls_back_and_remembers() -> None:
    llm = RefusesJsonSchema()
    assert llm.structured_predict(Item, PROMPT, topic="x") == Item(name="string", qty=0)
    assert PydanticProgramMode.JSON_SCHEMA in llm._refused_modes
    llm.requests.clear()
    llm.structured_predict(Item, PROMPT, topic="x")
    assert len(llm.requests) == 1
    assert "tools" in llm.requests[0][1]


def test_explicit_mode_does_not_fall_back() -> None:
    with pytest.raises(BadRequestError):
        RefusesJsonSchema(pydantic_program_mode=PydanticProgramMode.JSON_SCHEMA).structured_predict(
            Item, PROMPT, topic="x"
        )


def test_stream_partials_end_validated() -> None:
    llm = ScriptedLLM(responses=['{"name": "bolt", "qty": 12}'], pydantic_program_mode=PydanticProgramMode.LLM)
    outputs = list(llm.stream_structured_predict(Item, PROMPT, topic="x"))
    assert outputs[-1] == Item(name="bolt", qty=12)
    assert all(hasattr(o, "name") for o in outputs)


def test_stream_invalid_final_raises() -> None:
    llm = ScriptedLLM(responses=['{"name": "bolt"}'], pydantic_program_mode=PydanticProgramMode.LLM)
    with pytest.raises(StructuredOutputError):
        list(llm.stream_structured_predict(Item, PROMPT, topic="x"))


async def test_structured_llm_chat_carries_the_object() -> None:
    from llmkit import ChatMessage

    sllm = ScriptedLLM().as_structured_llm(Item)
    response = sllm.chat([ChatMessage(role="user", content="x")])
    assert response.raw == Item(name="string", qty=0)
    assert json.loads(response.content or "") == {"name": "string", "qty": 0}
    assert (await sllm.achat([ChatMessage(role="user", content="x")])).raw == Item(name="string", qty=0)
    chunks = list(sllm.stream_chat([ChatMessage(role="user", content="x")]))
    assert chunks[-1].raw == Item(name="string", qty=0)
