"""OpenAI's strict structured output: every schema sent with ``strict: true`` follows OpenAI's documented rules
(checked by a walker over the schema, as the request reaches a real loopback server), schemas that cannot follow
them go with ``strict: false``, and a ``null`` for an optional field parses back into the user's class."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field

from llmkit import OpenAILike, PromptTemplate, PydanticProgramMode
from llmkit.output import output_type
from llmkit.wire.openai import STRICT_KEYWORDS, response_format, strict_schema
from tests.servers.fault import chat_body
from tests.servers.recording import Recorded, RecordingHandler, RecordingServer, start

PROMPT = PromptTemplate("Tell me about {topic}")


def assert_strict_valid(schema: dict[str, Any]) -> None:
    """OpenAI's rules for ``strict: true`` (structured outputs guide, "Supported schemas"): an object root that is
    not ``anyOf``; every object has ``additionalProperties: false`` and lists every property in ``required``; only
    supported keywords; every ``$ref`` points into ``$defs`` (or is ``#``)."""
    assert schema.get("type") == "object", "the root must be an object"
    assert "anyOf" not in schema, "the root must not be anyOf"
    defs = schema.get("$defs", {})

    def walk(node: Any, where: str) -> None:
        assert isinstance(node, dict), where
        unknown = set(node) - STRICT_KEYWORDS
        assert not unknown, f"{where}: unsupported keywords {unknown}"
        if "$ref" in node:
            assert set(node) == {"$ref"}, f"{where}: $ref with siblings"
            ref = node["$ref"]
            assert ref == "#" or ref.removeprefix("#/$defs/") in defs, f"{where}: dangling {ref}"
        if node.get("type") == "object" or "properties" in node:
            assert node.get("additionalProperties") is False, f"{where}: additionalProperties must be false"
            assert set(node.get("required", [])) == set(node.get("properties", {})), f"{where}: all required"
            for name, prop in node.get("properties", {}).items():
                walk(prop, f"{where}.{name}")
        if "items" in node:
            walk(node["items"], f"{where}[]")
        for index, branch in enumerate(node.get("anyOf", [])):
            walk(branch, f"{where}|{index}")

    walk(schema, "$")
    for name, definition in defs.items():
        walk(definition, f"$defs.{name}")


class Kind(StrEnum):
    CAT = "cat"
    DOG = "dog"


class Owner(BaseModel):
    name: str
    phone: str | None = None


class Pet(BaseModel):
    """A pet."""

    name: str = Field(min_length=1, max_length=40, description="The pet's name")
    kind: Kind
    age: int = Field(default=1, ge=0)  # optional, not nullable: a null must give back the default
    nickname: str | None = None  # optional and nullable
    owner: Owner | None = None  # a $ref inside anyOf
    friends: list[Owner] = []  # $ref in items, with a default
    born: date | None = None
    mood: Literal["calm", "wild"] = "calm"


class Tree(BaseModel):
    value: int
    children: list[Tree] = []  # recursive


@dataclass
class Point:
    x: int
    y: int = 0


class WithDict(BaseModel):
    scores: dict[str, int]  # free-form keys: strict mode cannot express it


class WithTuple(BaseModel):
    pair: tuple[int, str]  # prefixItems


@pytest.mark.parametrize("target", [Pet, Tree, Owner, Point, list[Pet], int, dict[str, int] | None])
def test_strict_schemas_follow_openais_rules(target: Any) -> None:
    spec = {"name": "x", "schema": output_type(target).schema, "strict": True}
    fmt = response_format(spec)["json_schema"]
    if fmt["strict"]:
        assert_strict_valid(fmt["schema"])
    else:
        assert target == dict[str, int] | None


@pytest.mark.parametrize("target", [WithDict, WithTuple])
def test_schemas_that_cannot_be_strict_are_not_sent_as_strict(target: type[BaseModel]) -> None:
    assert strict_schema(target.model_json_schema()) is None
    fmt = response_format({"name": target.__name__, "schema": target.model_json_schema(), "strict": True})
    assert fmt["json_schema"]["strict"] is False
    assert fmt["json_schema"]["schema"] == target.model_json_schema()  # sent as the user wrote it


def test_the_checker_catches_what_pydantic_emits() -> None:
    with pytest.raises(AssertionError, match="additionalProperties"):
        assert_strict_valid(Pet.model_json_schema())


def test_strict_schema_keeps_defs_and_refs_and_makes_optional_fields_nullable() -> None:
    schema = strict_schema(Pet.model_json_schema())
    assert schema is not None
    assert set(schema["$defs"]) == {"Kind", "Owner"}
    props = schema["properties"]
    assert props["kind"] == {"$ref": "#/$defs/Kind"}  # required: not nullable
    assert props["age"]["anyOf"][-1] == {"type": "null"}
    assert props["nickname"]["anyOf"].count({"type": "null"}) == 1  # already nullable: not doubled
    assert {"$ref": "#/$defs/Owner"} in props["owner"]["anyOf"]
    assert "default" not in json.dumps(schema)
    assert strict_schema(schema) == schema  # idempotent: a schema already strict is sent unchanged


class _OpenAIHandler(RecordingHandler):
    def route(self, request: Recorded) -> None:
        self.reply(200, chat_body(self.server.next_output("{}")))


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    server = start(RecordingServer(_OpenAIHandler))
    yield server
    server.stop()


def test_request_is_strict_valid_and_nulls_for_optional_fields_parse_back(server: RecordingServer) -> None:
    llm = OpenAILike(model="m", api_base=server.url, pydantic_program_mode=PydanticProgramMode.JSON_SCHEMA)
    # What a strict-mode model sends: every key present, null for the fields it leaves out.
    answer = {"name": "Rex", "kind": "dog", "age": None, "nickname": None, "owner": {"name": "Ada", "phone": None},
              "friends": [{"name": "Bo", "phone": None}], "born": None, "mood": "wild"}  # fmt: skip
    server.outputs.append(json.dumps(answer))
    pet = llm.structured_predict(Pet, PROMPT, topic="a dog")
    assert pet == Pet(
        name="Rex", kind=Kind.DOG, age=1, owner=Owner(name="Ada"), friends=[Owner(name="Bo")], mood="wild"
    )
    sent = server.requests[-1].json()["response_format"]
    assert sent["type"] == "json_schema"
    assert sent["json_schema"]["strict"] is True
    assert_strict_valid(sent["json_schema"]["schema"])


def test_non_object_and_dataclass_outputs_are_strict_too(server: RecordingServer) -> None:
    llm = OpenAILike(model="m", api_base=server.url, pydantic_program_mode=PydanticProgramMode.JSON_SCHEMA)
    server.outputs.append(json.dumps({"value": [{"x": 1, "y": None}]}))
    assert llm.structured_predict(list[Point], PROMPT, topic="points") == [Point(1, 0)]
    sent = server.requests[-1].json()["response_format"]["json_schema"]
    assert sent["strict"] is True
    assert_strict_valid(sent["schema"])
