"""ScriptedLLM's schema-valid instances: recursive models end, constrained fields get valid values, the log is
bounded."""

from __future__ import annotations

from typing import Literal, Optional

import pytest
from pydantic import BaseModel, Field

from llmkit import ChatMessage, PromptTemplate, ScriptedLLM
from llmkit.errors import ConfigurationError


class Node(BaseModel):
    value: int
    children: list[Node]


class Tree(BaseModel):
    root: Node
    parent: Optional[Tree] = None  # noqa: UP045  (the Optional spelling is what users write)


class Constrained(BaseModel):
    age: int = Field(ge=18, le=99)
    negative: int = Field(le=-5)
    ratio: float = Field(gt=0, lt=1)
    step: int = Field(ge=3, multiple_of=4)
    zip_code: str = Field(pattern=r"^\d{5}$")
    tag: str = Field(pattern=r"^[A-Z]{2}-\d+$")
    short: str = Field(min_length=3, max_length=4)
    kind: Literal["a", "b"]
    scores: list[int] = Field(min_length=2)


@pytest.mark.parametrize("cls", [Node, Tree, Constrained])
def test_instances_validate(cls: type[BaseModel]) -> None:
    result = ScriptedLLM().structured_predict(cls, PromptTemplate("x"))
    assert isinstance(result, cls)


class Impossible(BaseModel):
    again: Impossible


def test_a_schema_without_finite_instances_is_a_typed_error() -> None:
    with pytest.raises(ConfigurationError, match="finite instance"):
        ScriptedLLM().structured_predict(Impossible, PromptTemplate("x"))


def test_the_request_log_is_bounded() -> None:
    llm = ScriptedLLM()
    for _ in range(1500):
        llm.chat([ChatMessage(role="user", content="hi")])
    assert len(llm.requests) == 1000
