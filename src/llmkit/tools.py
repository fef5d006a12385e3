"""Tools the model can call: metadata and JSON schema from a function's signature, calls, outputs.

Example:
    >>> from llmkit.tools import FunctionTool
    >>> def add(a: int, b: int) -> int:
    ...     '''Add two integers.'''
    ...     return a + b
    >>> tool = FunctionTool.from_defaults(add)
    >>> tool.metadata.name, tool.metadata.description  # as LlamaIndex: the signature, then the docstring
    ('add', "add(a: 'int', b: 'int') -> 'int'\\nAdd two integers.")
    >>> tool.call(a=1, b=2).raw_output
    3
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, create_model

from llmkit.errors import ConfigurationError, ToolArgumentsError, ToolCallError

_SCHEMA_KEYS = ("type", "properties", "required", "definitions", "$defs")


class ToolMetadata(BaseModel):
    """A tool's name, description and argument schema (a pydantic model, or an OpenAI tool's JSON parameters)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str
    description: str
    fn_schema: type[BaseModel] | None = None
    return_direct: bool = False

    _parameters: dict[str, Any] | None = PrivateAttr(default=None)

    @classmethod
    def from_openai_tool(cls, spec: dict[str, Any]) -> ToolMetadata:
        """A tool in OpenAI's ``tools`` format (``{"type": "function", "function": {...}}``, or the bare function)."""
        function = spec.get("function", spec)
        if not isinstance(function, dict) or not function.get("name"):
            raise ConfigurationError(f"Not an OpenAI tool (no function name): {str(spec)[:200]}")
        metadata = cls(name=function["name"], description=function.get("description") or "")
        metadata._parameters = function.get("parameters") or {"type": "object", "properties": {}}
        return metadata

    def get_parameters_dict(self) -> dict[str, Any]:
        """The JSON schema of the arguments, as function-calling APIs take it (LlamaIndex's keys only)."""
        if self._parameters is not None:
            return self._parameters
        if self.fn_schema is None:
            return {"type": "object", "properties": {}}
        schema = self.fn_schema.model_json_schema()
        return {key: value for key, value in schema.items() if key in _SCHEMA_KEYS}

    def get_name(self) -> str:
        """The tool's name."""
        return self.name

    def to_openai_tool(self, skip_length_check: bool = False) -> dict[str, Any]:
        """The tool in OpenAI's ``tools`` format."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.get_parameters_dict()},
        }


def as_tool_metadata(tool: Any) -> ToolMetadata:
    """The metadata of anything llmkit takes as a tool: a :class:`BaseTool`, a :class:`ToolMetadata`, an OpenAI tool
    dict (``tool.metadata.to_openai_tool()``) or a plain function."""
    if isinstance(tool, ToolMetadata):
        return tool
    if isinstance(tool, dict):
        return ToolMetadata.from_openai_tool(tool)
    metadata = getattr(tool, "metadata", None)
    if isinstance(metadata, ToolMetadata):
        return metadata
    if callable(tool):
        return FunctionTool.from_defaults(tool).metadata
    raise ConfigurationError(
        f"Not a tool: {type(tool).__name__}; pass a FunctionTool, a ToolMetadata or an OpenAI dict"
    )


class ToolSelection(BaseModel):
    """A call the model asked for: the call's id, the tool's name and its arguments."""

    tool_id: str
    tool_name: str
    tool_kwargs: dict[str, Any] = Field(default_factory=dict)


class ToolOutput(BaseModel):
    """What a tool returned (or the error it raised, with ``is_error=True``; the exception is ``.exception``)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    content: str
    tool_name: str
    raw_input: dict[str, Any] = Field(default_factory=dict)
    raw_output: Any = None
    is_error: bool = False

    _exception: BaseException | None = PrivateAttr(default=None)

    def __init__(self, /, exception: BaseException | None = None, **data: Any) -> None:
        super().__init__(**data)
        self._exception = exception

    @property
    def exception(self) -> BaseException | None:
        """The exception the tool raised, for an error output."""
        return self._exception

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


def _target(fn: Callable[..., Any]) -> Any:
    """What a tool function really is, for its name, docstring and type hints: the function under
    ``functools.partial`` (nested too), or the class of a callable object."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.isfunction(fn) or inspect.ismethod(fn) or inspect.isbuiltin(fn) or inspect.isclass(fn):
        return fn
    return type(fn) if callable(fn) else fn


def tool_name_of(fn: Callable[..., Any]) -> str:
    """A tool's default name: the function's name (under ``functools.partial`` too), or a callable object's class."""
    target = _target(fn)
    return str(getattr(target, "__name__", type(fn).__name__))


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    target = _target(fn)
    source = target.__call__ if inspect.isclass(target) and not inspect.isclass(fn) else target
    try:
        return get_type_hints(source, include_extras=True)
    except (NameError, TypeError):  # an unresolvable forward reference: the parameter is Any
        return {}


def _schema_from_signature(fn: Callable[..., Any], name: str) -> type[BaseModel]:
    """The argument model of a tool function. ``**kwargs`` lets the model pass extra arguments through; ``*args``
    cannot be filled by keyword arguments, so such a function is refused unless it has an explicit ``fn_schema``."""
    signature = inspect.signature(fn)
    hints = _hints(fn)
    fields: dict[str, Any] = {}
    takes_any = False
    for param in signature.parameters.values():
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            raise ConfigurationError(
                f"Tool '{name}': *{param.name} cannot be filled by a model, which passes arguments by name; give the "
                "function named parameters (a list parameter for many values) or pass fn_schema=..."
            )
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            takes_any = True
            continue
        if param.kind is inspect.Parameter.POSITIONAL_ONLY:
            raise ConfigurationError(
                f"Tool '{name}': parameter '{param.name}' is positional-only; a model passes arguments by name"
            )
        annotation = hints.get(param.name, Any)
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[param.name] = (annotation, default)
    config = ConfigDict(extra="allow" if takes_any else "forbid")
    model: type[BaseModel] = create_model(name, __config__=config, **fields)
    return model


def _accepts_extra(schema: type[BaseModel]) -> bool:
    return schema.model_config.get("extra") == "allow"


def _content(raw: Any) -> str:
    """A tool's result as text, as LlamaIndex writes it (``str()``; blocks give their text)."""
    if isinstance(raw, str):
        return raw
    text = getattr(raw, "text", None)
    if isinstance(raw, BaseModel) and getattr(raw, "block_type", None) == "text" and isinstance(text, str):
        return text
    return str(raw)


class FunctionTool(BaseTool):
    """A tool made from a Python function (sync or async), a ``functools.partial`` or a callable object.

    The argument schema comes from the signature (pydantic-typed arguments included) and the description from the
    docstring, unless given. Arguments are validated before the call: a wrong type, a missing argument or one the
    function does not take is a :class:`~llmkit.errors.ToolArgumentsError` naming them (``**kwargs`` functions take
    extra arguments; ``*args`` functions need an explicit ``fn_schema``).

    Example:
        >>> import functools
        >>> def power(base: int, exp: int) -> int:
        ...     return base**exp
        >>> square = FunctionTool.from_defaults(functools.partial(power, exp=2))
        >>> square.metadata.name, square.call(base=3).content
        ('power', '9')
        >>> square.call(base=3, c=99)
        Traceback (most recent call last):
        llmkit.errors.ToolArgumentsError: Tool 'power' got arguments it does not take: c (it takes: base, exp)
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
        return_direct: bool = False,
        tool_metadata: ToolMetadata | None = None,
    ) -> FunctionTool:
        """Build a tool from a function (an ``async def`` works as ``fn`` too)."""
        source = fn or async_fn
        if source is None:
            raise ValueError("FunctionTool.from_defaults needs fn or async_fn")
        target = _target(source)
        call = vars(target).get("__call__") if inspect.isclass(target) else None
        if any(inspect.iscoroutinefunction(f) for f in (source, target, call)):
            fn, async_fn = None, source
        if tool_metadata is not None:
            name, description, fn_schema = tool_metadata.name, tool_metadata.description, tool_metadata.fn_schema
        name = name or tool_name_of(source)
        if description is None:  # as LlamaIndex: the signature, then the docstring
            doc = getattr(target if isinstance(source, functools.partial) else source, "__doc__", None)
            description = f"{name}{inspect.signature(source)}\n{doc or ''}".strip()
        schema = fn_schema or _schema_from_signature(source, name)
        metadata = tool_metadata or ToolMetadata(
            name=name, description=description, fn_schema=schema, return_direct=return_direct
        )
        return cls(fn=fn, async_fn=async_fn, metadata=metadata)

    @property
    def metadata(self) -> ToolMetadata:
        return self._metadata

    @property
    def fn(self) -> Callable[..., Any] | None:
        """The function the tool calls (None for an async-only tool)."""
        return self._fn

    @property
    def async_fn(self) -> Callable[..., Coroutine[Any, Any, Any]] | None:
        """The async function the tool awaits, when it has one."""
        return self._async_fn

    def _validated(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        schema = self._metadata.fn_schema
        if schema is None:
            return kwargs
        name = self._metadata.name
        if not _accepts_extra(schema):
            known = {key for field, info in schema.model_fields.items() for key in (field, info.alias) if key}
            unknown = [key for key in kwargs if key not in known]
            if unknown:
                takes = ", ".join(schema.model_fields) or "no arguments"
                raise ToolArgumentsError(
                    f"Tool '{name}' got arguments it does not take: {', '.join(unknown)} (it takes: {takes})",
                    tool_name=name,
                    arguments=kwargs,
                    unknown=unknown,
                )
        try:
            model = schema.model_validate(kwargs)
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_context=False)
            raise ToolArgumentsError(
                f"Invalid arguments for tool '{name}': {errors}", tool_name=name, arguments=kwargs, errors=errors
            ) from exc
        # Keep nested pydantic models as models: the function's annotations ask for them.
        args = {field: getattr(model, field) for field in type(model).model_fields}
        args.update(model.model_extra or {})
        return args

    def _output(self, kwargs: dict[str, Any], raw: Any) -> ToolOutput:
        return ToolOutput(
            content=_content(raw),
            tool_name=self._metadata.name,
            raw_input={"args": (), "kwargs": kwargs},
            raw_output=raw,
        )

    def call(self, **kwargs: Any) -> ToolOutput:
        """Validate the arguments and run the function. Invalid arguments raise :class:`ToolArgumentsError`."""
        args = self._validated(kwargs)
        if self._fn is not None:
            return self._output(kwargs, self._fn(**args))
        assert self._async_fn is not None
        return self._output(kwargs, asyncio.run(self._async_fn(**args)))

    def __call__(self, **kwargs: Any) -> ToolOutput:
        """Same as :meth:`call` (LlamaIndex's tools are callable)."""
        return self.call(**kwargs)

    async def acall(self, **kwargs: Any) -> ToolOutput:
        """Validate the arguments and run the function, awaiting an async one or threading a sync one."""
        args = self._validated(kwargs)
        if self._async_fn is not None:
            return self._output(kwargs, await self._async_fn(**args))
        assert self._fn is not None
        return self._output(kwargs, await asyncio.to_thread(self._fn, **args))


def find_tool(tools: Sequence[BaseTool], selection: ToolSelection) -> BaseTool:
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
    """A tool that raised (or was given arguments it cannot take) becomes an output the caller and the model can
    see, worded as LlamaIndex words it; the exception is kept in ``.exception``."""
    return ToolOutput(
        content=f"Encountered error: {error}",
        tool_name=selection.tool_name,
        raw_input=selection.tool_kwargs,
        raw_output=str(error),
        is_error=True,
        exception=error,
    )


def call_tool(tools: Sequence[BaseTool], selection: ToolSelection) -> ToolOutput:
    """Run one selected tool. An unknown tool raises :class:`ToolCallError`; an exception inside the tool, or
    arguments it does not take, give an error output (``is_error=True``)."""
    tool = find_tool(tools, selection)
    try:
        return tool.call(**selection.tool_kwargs)
    except Exception as exc:
        return error_output(selection, exc)


async def acall_tool(tools: Sequence[BaseTool], selection: ToolSelection) -> ToolOutput:
    """Async :func:`call_tool`."""
    tool = find_tool(tools, selection)
    try:
        return await tool.acall(**selection.tool_kwargs)
    except Exception as exc:
        return error_output(selection, exc)
