"""output_cls: whatever pydantic's TypeAdapter accepts works in every mode and entry point; anything else is one
typed error naming what is accepted (the library and the CLI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, RootModel
from typing_extensions import TypedDict

from llmkit import ChatMessage, OutputTypeError, PromptTemplate, PydanticProgramMode, ScriptedLLM
from llmkit.output import output_type
from llmkit.providers.function import FunctionLLM
from llmkit.types import ChatResponse, text_message

PROMPT = PromptTemplate("Answer about {topic}")


class City(BaseModel):
    name: str
    population: int = 0


Tags = RootModel[list[str]]


@dataclass
class Point:
    x: int
    y: int


class Movie(TypedDict):
    title: str
    year: int


# type, the JSON a model sends for it (wrapped in {"value": ...} when the root is not an object), the expected result
CASES: list[tuple[Any, Any, Any]] = [
    (City, {"name": "Oslo", "population": 700000}, City(name="Oslo", population=700000)),
    (Tags, {"value": ["a", "b"]}, Tags(["a", "b"])),
    (list[str], {"value": ["a", "b"]}, ["a", "b"]),
    (int, {"value": 42}, 42),
    (Point, {"x": 1, "y": 2}, Point(1, 2)),
    (Movie, {"title": "Heat", "year": 1995}, {"title": "Heat", "year": 1995}),
]
IDS = ["model", "rootmodel", "list", "int", "dataclass", "typeddict"]


def _check(result: Any, target: Any, expected: Any) -> None:
    assert result == expected
    if isinstance(target, type) and not hasattr(target, "__required_keys__"):  # a TypedDict's instances are dicts
        assert isinstance(result, target)


def _text_llm(answer: Any) -> FunctionLLM:
    """A chat model without native structured output: LLM mode, the answer parsed from its text."""
    return FunctionLLM(chat_fn=lambda messages, kwargs: f"Here you go: {json.dumps(answer)}")


def _tool_llm(answer: Any) -> FunctionLLM:
    """A function-calling model: FUNCTION mode, the answer in a forced tool call's arguments."""

    def chat(messages: list[Any], kwargs: dict[str, Any]) -> ChatResponse:
        tool = kwargs["tools"][0]
        assert kwargs["tool_choice"] == tool.name
        assert tool.to_openai_tool()["function"]["parameters"]["type"] == "object"  # services want an object root
        call = {"id": "c1", "type": "function", "function": {"name": tool.name, "arguments": json.dumps(answer)}}
        return ChatResponse(message=text_message("", {"tool_calls": [call]}))

    return FunctionLLM(chat_fn=chat, function_calling=True)


@pytest.mark.parametrize(("target", "answer", "expected"), CASES, ids=IDS)
@pytest.mark.parametrize("make", [_text_llm, _tool_llm], ids=["llm-mode", "function-mode"])
def test_every_accepted_type_round_trips(make: Any, target: Any, answer: Any, expected: Any) -> None:
    llm = make(answer)
    _check(llm.structured_predict(target, PROMPT, topic="x"), target, expected)


@pytest.mark.parametrize(("target", "answer", "expected"), CASES, ids=IDS)
async def test_async_stream_and_structured_llm(target: Any, answer: Any, expected: Any) -> None:
    llm = _text_llm(answer)
    _check(await llm.astructured_predict(target, PROMPT, topic="x"), target, expected)
    _check(list(llm.stream_structured_predict(target, PROMPT, topic="x"))[-1], target, expected)
    _check([p async for p in await llm.astream_structured_predict(target, PROMPT, topic="x")][-1], target, expected)
    sllm = llm.as_structured_llm(target)
    response = sllm.chat([ChatMessage(role="user", content="x")])
    _check(response.raw, target, expected)
    assert json.loads(response.message.content or "") == json.loads(output_type(target).dump_json(expected))
    _check(list(sllm.stream_chat([ChatMessage(role="user", content="x")]))[-1].raw, target, expected)


def test_a_bare_answer_for_a_non_object_type_is_accepted() -> None:
    assert _text_llm([1, 2]).structured_predict(list[int], PROMPT, topic="x") == [1, 2]
    assert FunctionLLM(chat_fn=lambda m, k: "7").structured_predict(int, PROMPT, topic="x") == 7


@pytest.mark.parametrize(("target", "answer", "expected"), CASES, ids=IDS)
@pytest.mark.parametrize(
    "mode", [PydanticProgramMode.JSON_SCHEMA, PydanticProgramMode.FUNCTION, PydanticProgramMode.LLM]
)
def test_mock_llm_gives_schema_valid_instances(
    mode: PydanticProgramMode, target: Any, answer: Any, expected: Any
) -> None:
    llm = ScriptedLLM(pydantic_program_mode=mode, responses=[json.dumps(answer)])
    result = llm.structured_predict(target, PROMPT, topic="x")
    assert output_type(target).adapter.validate_python(result) == result
    if isinstance(target, type) and not hasattr(target, "__required_keys__"):
        assert isinstance(result, target)


def test_non_object_schemas_are_wrapped_for_services_that_want_an_object() -> None:
    schema = output_type(list[str]).schema
    assert schema == {
        "type": "object",
        "properties": {"value": {"type": "array", "items": {"type": "string"}}},
        "required": ["value"],
        "additionalProperties": False,
    }
    assert output_type(City).schema == City.model_json_schema()  # an object root is sent as it is


@pytest.mark.parametrize(
    "bad", [os.path, print, 3, "City", City(name="x")], ids=["module", "function", "int", "str", "instance"]
)
def test_an_unusable_output_cls_is_one_typed_error_before_any_call(bad: Any) -> None:
    llm = _text_llm({})
    with pytest.raises(OutputTypeError, match="output_cls must be a type pydantic can validate: a BaseModel or Root"):
        llm.structured_predict(bad, PROMPT, topic="x")
    with pytest.raises(OutputTypeError):
        llm.as_structured_llm(bad)
    with pytest.raises(OutputTypeError):
        list(llm.stream_structured_predict(bad, PROMPT, topic="x"))
    assert llm.calls == []


def test_embedded_model_grammar_mode_for_non_object_types(local_llm: Any) -> None:
    llm = local_llm.model_copy(update={"pydantic_program_mode": PydanticProgramMode.GRAMMAR})
    tags = llm.structured_predict(list[str], PromptTemplate("Three colours, as a list."))
    assert isinstance(tags, list)
    assert all(isinstance(tag, str) for tag in tags)
    assert isinstance(llm.structured_predict(int, PromptTemplate("How many legs has a cat?")), int)


def test_cli_schema_that_is_not_a_type_is_a_one_line_usage_error(tmp_path: Path) -> None:
    (tmp_path / "not_schema.py").write_text("import os\nthing = os.path\n")
    for spec in ("os:path", "not_schema:thing"):
        result = subprocess.run(
            [sys.executable, "-m", "llmkit.cli", "chat", "--model", "mock", "--schema", spec, "hi"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=60,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1
        assert lines[0].startswith(f"llmkit: error: --schema {spec}: output_cls must be a type pydantic can validate")


def test_cli_schema_accepts_a_non_model_type(tmp_path: Path) -> None:
    (tmp_path / "list_schema.py").write_text("Tags = list[str]\n")
    result = subprocess.run(
        [sys.executable, "-m", "llmkit.cli", "chat", "--model", "mock", "--schema", "list_schema:Tags", "hi"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["string"]


class Tree(BaseModel):
    value: int
    children: list[Tree] = []


def test_a_recursive_model_is_an_object_root_not_wrapped() -> None:
    out = output_type(Tree)
    assert not out.wrapped
    assert out.schema["type"] == "object"
    assert out.schema["properties"]["children"]["items"] == {"$ref": "#/$defs/Tree"}
    answer = {"value": 1, "children": [{"value": 2}]}
    assert _text_llm(answer).structured_predict(Tree, PROMPT, topic="x") == Tree.model_validate(answer)
