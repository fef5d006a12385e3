"""Tools the model can call: metadata and JSON schema from a function's signature, calls, outputs.

Example:
    >>> from llmkit.tools import FunctionTool
    >>> def add(a: int, b: int) -> int:
    ...     '''Add two integers.'''
    ...     return a + b
    >>> tool = FunctionTool.from_defaults(add)
    >>> tool.metadata.name, tool.metadata.description
    ('add', 'Add two integers.')
    >>> tool.call(a=1, b=2).raw_output
    3
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from llmkit.errors import ToolCallError


class ToolMetadata(BaseModel):
    """A tool's name, description and argument schema (a pydantic model)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str
    description: str
    fn_schema: type[BaseModel] | None = None

    def get_parameters_dict(self) -> dict[str, Any]:
        """The JSON schema of the arguments, as function-calling APIs take it."""
        if self.fn_schema is None:
            return {"type": "object", "properties": {}}
        schema = self.fn_schema.model_json_schema()
        schema.pop("title", None)
        return schema

    def to_openai_tool(self) -> dict[str, Any]:
        """The tool in OpenAI's ``tools`` format."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.get_parameters_dict()},
        }


class ToolSelection(BaseModel):
    """A call the model asked for: the call's id, the tool's name and its arguments."""

    tool_id: str
    tool_name: str
    tool_kwargs: dict[str, Any] = Field(default_factory=dict)


class ToolOutput(BaseModel):
    """What a tool returned (or the error it raised, with ``is_error=True``)."""

    content: str
    tool_name: str
    raw_input: dict[str, Any] = Field(default_factory=dict)
    raw_output: Any = None
    is_error: bool = False

    def __str__(self) -> str:
        return self.content


@dataclass
class AgentChatResponse:
    """The answer of ``predict_and_call``: the response text and the tool outputs it came from."""

    response: str = ""
    sources: list[ToolOutput] = field(default_factory=list)

    def __str__(self) -> str:
        return self.response


class BaseTool:
    """A tool: ``metadata`` plus ``call``/``acall`` with keyword arguments."""

    @property
    def metadata(self) -> ToolMetadata:
        """The tool's name, description and schema."""
        raise NotImplementedError

    def call(self, **kwargs: Any) -> ToolOutput:
        """Run the tool."""
        raise NotImplementedError

    async def acall(self, **kwargs: Any) -> ToolOutput:
        """Run the tool without blocking the event loop (a worker thread unless overridden)."""
        return await asyncio.to_thread(self.call, **kwargs)


def _schema_from_signature(fn: Callable[..., Any], name: str) -> type[BaseModel]:
    signature = inspect.signature(fn)
    hints = get_type_hints(fn, include_extras=True)
    fields: dict[str, Any] = {}
    for param in signature.parameters.values():
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        annotation = hints.get(param.name, Any)
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[param.name] = (annotation, default)
    model: type[BaseModel] = create_model(name, **fields)
    return model


class FunctionTool(BaseTool):
    """A tool made from a Python function, sync or async.

    The argument schema comes from the signature (pydantic-typed arguments included) and the description from the
    docstring, unless given.
    """

    def __init__(
        self,
        fn: Callable[..., Any] | None = None,
        metadata: ToolMetadata | None = None,
        async_fn: Callable[..., Coroutine[Any, Any, Any]] | None = None,
    ) -> None:
        if fn is None and async_fn is None:
            raise ValueError("FunctionTool needs fn or async_fn")
        if metadata is None:
            raise ValueError("FunctionTool needs metadata; use FunctionTool.from_defaults(fn)")
        self._fn = fn
        self._async_fn = async_fn
        self._metadata = metadata

    @classmethod
    def from_defaults(
        cls,
        fn: Callable[..., Any] | None = None,
        name: str | None = None,
        description: str | None = None,
        fn_schema: type[BaseModel] | None = None,
        async_fn: Callable[..., Coroutine[Any, Any, Any]] | None = None,
    ) -> FunctionTool:
        """Build a tool from a function (an ``async def`` works as ``fn`` too)."""
        source = fn or async_fn
        if source is None:
            raise ValueError("FunctionTool.from_defaults needs fn or async_fn")
        if inspect.iscoroutinefunction(source):
            fn, async_fn = None, source
        name = name or source.__name__
        if description is None:
            doc = inspect.getdoc(source) or ""
            description = doc.strip() or f"{name}{inspect.signature(source)}"
        schema = fn_schema or _schema_from_signature(source, name)
        return cls(
            fn=fn, async_fn=async_fn, metadata=ToolMetadata(name=name, description=description, fn_schema=schema)
        )

    @property
    def metadata(self) -> ToolMetadata:
        return self._metadata

    def _validated(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        schema = self._metadata.fn_schema
        if schema is None:
            return kwargs
        try:
            model = schema.model_validate(kwargs)
        except ValidationError as exc:
            raise ToolCallError(
                f"Invalid arguments for tool '{self._metadata.name}': {exc.errors(include_url=False)}",
                tool_name=self._metadata.name,
                arguments=kwargs,
            ) from exc
        # Keep nested pydantic models as models: the function's annotations ask for them.
        return {name: getattr(model, name) for name in type(model).model_fields}

    def _output(self, kwargs: dict[str, Any], raw: Any) -> ToolOutput:
        if isinstance(raw, str):
            content = raw
        elif isinstance(raw, BaseModel):
            content = raw.model_dump_json()
        else:
            content = json.dumps(raw, default=str)
        return ToolOutput(content=content, tool_name=self._metadata.name, raw_input=kwargs, raw_output=raw)

    def call(self, **kwargs: Any) -> ToolOutput:
        """Validate the arguments and run the function. Invalid arguments raise :class:`ToolCallError`."""
        args = self._validated(kwargs)
        if self._fn is not None:
            return self._output(kwargs, self._fn(**args))
        assert self._async_fn is not None
        return self._output(kwargs, asyncio.run(self._async_fn(**args)))

    async def acall(self, **kwargs: Any) -> ToolOutput:
        """Validate the arguments and run the function, awaiting an async one or threading a sync one."""
        args = self._validated(kwargs)
        if self._async_fn is not None:
            return self._output(kwargs, await self._async_fn(**args))
        assert self._fn is not None
        return self._output(kwargs, await asyncio.to_thread(self._fn, **args))


def find_tool(tools: list[BaseTool], selection: ToolSelection) -> BaseTool:
    """The tool a selection names, or :class:`ToolCallError` listing the known names."""
    for tool in tools:
        if tool.metadata.name == selection.tool_name:
            return tool
    known = ", ".join(t.metadata.name for t in tools)
    raise ToolCallError(
        f"The model called an unknown tool '{selection.tool_name}' (known: {known})",
        tool_name=selection.tool_name,
        arguments=selection.tool_kwargs,
    )


def error_output(selection: ToolSelection, error: Exception) -> ToolOutput:
    """A tool that raised becomes an output the caller (and the model) can see."""
    return ToolOutput(
        content=f"Error: {type(error).__name__}: {error}",
        tool_name=selection.tool_name,
        raw_input=selection.tool_kwargs,
        raw_output=error,
        is_error=True,
    )


def call_tool(tools: list[BaseTool], selection: ToolSelection) -> ToolOutput:
    """Run one selected tool. Unknown tools and invalid arguments raise; an exception inside the tool is an output."""
    tool = find_tool(tools, selection)
    try:
        return tool.call(**selection.tool_kwargs)
    except ToolCallError:
        raise
    except Exception as exc:
        return error_output(selection, exc)


async def acall_tool(tools: list[BaseTool], selection: ToolSelection) -> ToolOutput:
    """Async :func:`call_tool`."""
    tool = find_tool(tools, selection)
    try:
        return await tool.acall(**selection.tool_kwargs)
    except ToolCallError:
        raise
    except Exception as exc:
        return error_output(selection, exc)
