"""FunctionTool's one validation layer (issue #21.8): unknown arguments are a typed error, ``*args`` is refused,
``**kwargs`` passes extras through, partials and callable objects are tools."""

from __future__ import annotations

import functools

import pytest

from llmkit import ConfigurationError, FunctionTool, ScriptedLLM, ToolArgumentsError, ToolMetadata


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def test_unknown_arguments_are_a_typed_error_naming_them() -> None:
    tool = FunctionTool.from_defaults(add)
    with pytest.raises(ToolArgumentsError, match=r"does not take: c, d \(it takes: a, b\)") as caught:
        tool.call(a=1, b=2, c=99, d=0)
    assert caught.value.unknown == ["c", "d"]
    assert isinstance(caught.value, ValueError)
    with pytest.raises(ToolArgumentsError, match="Invalid arguments") as invalid:
        tool.call(a="x", b=1)
    assert invalid.value.errors[0]["loc"] == ("a",)


def test_var_positional_is_refused_and_var_keyword_passes_extras() -> None:
    def total(*numbers: int) -> int:
        return sum(numbers)

    with pytest.raises(ConfigurationError, match=r"\*numbers cannot be filled by a model"):
        FunctionTool.from_defaults(total)

    def tag(name: str, **labels: str) -> str:
        return name + "".join(f" {k}={v}" for k, v in sorted(labels.items()))

    tool = FunctionTool.from_defaults(tag)
    assert tool.call(name="x", env="prod").content == "x env=prod"
    assert tool.metadata.get_parameters_dict()["required"] == ["name"]


def test_partial_and_callable_objects_are_tools() -> None:
    def power(base: int, exp: int) -> int:
        """Raise base to exp."""
        return base**exp

    square = FunctionTool.from_defaults(functools.partial(power, exp=2))
    assert square.metadata.name == "power"
    assert square.metadata.description.endswith("Raise base to exp.")
    assert square.call(base=4).raw_output == 16

    class Multiplier:
        """Multiply by a factor."""

        def __init__(self, factor: int) -> None:
            self.factor = factor

        def __call__(self, x: int) -> int:
            return x * self.factor

    triple = FunctionTool.from_defaults(Multiplier(3))
    assert triple.metadata.name == "Multiplier"
    assert triple.metadata.get_parameters_dict()["properties"]["x"]["type"] == "integer"
    assert triple.call(x=5).raw_output == 15
    with pytest.raises(ToolArgumentsError, match="does not take: y"):
        triple.call(x=1, y=2)


def test_openai_dict_tools_work_wherever_tools_are_taken() -> None:
    spec = FunctionTool.from_defaults(add).metadata.to_openai_tool()
    metadata = ToolMetadata.from_openai_tool(spec)
    assert (metadata.name, metadata.get_parameters_dict()) == ("add", spec["function"]["parameters"])
    response = ScriptedLLM().chat("2 + 3?", tools=[spec])
    assert response.message.additional_kwargs["tool_calls"][0]["function"]["name"] == "add"
    assert ScriptedLLM().chat_with_tools([spec], "2 + 3?").message.additional_kwargs["tool_calls"]
