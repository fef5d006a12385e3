"""Structured output: a type in, a validated instance out, by the strongest mode the model supports.

The type (``output_cls``) is anything pydantic's ``TypeAdapter`` accepts: a model, a ``RootModel``, a dataclass, a
``TypedDict``, ``int``, ``list[str]``...; :mod:`llmkit.output` adapts it, once, for every mode.

Modes, strongest first (what ``DEFAULT`` tries):

* ``JSON_SCHEMA``: the service's native JSON-schema response format.
* ``GRAMMAR``: constrained decoding (the embedded llama.cpp model): the output is valid JSON of the schema by
  construction.
* ``FUNCTION`` (alias ``OPENAI``): a forced call of a tool whose arguments are the schema.
* ``LLM``: the schema goes into the prompt and the reply is parsed, tolerating code fences and prose.

Whatever the mode, a reply that fails validation is sent back to the model with pydantic's errors (``max_reasks``,
default 2) before :class:`~llmkit.errors.StructuredOutputError` is raised with the raw text and the errors.
A native mode the service refuses (a 400, or a 500 that says "validation error") falls back to the next mode; once
the next mode gets an answer (proof that the 400 was about the mode, not about the conversation) the refused mode is
remembered for that LLM instance (``llm.refuse_structured_mode``), and ``llm.capabilities`` no longer lists it.

Example:
    >>> from pydantic import BaseModel
    >>> from llmkit import ScriptedLLM, PromptTemplate
    >>> class Test(BaseModel):
    ...     name: str
    >>> ScriptedLLM().structured_predict(Test, PromptTemplate("A name about {topic}"), topic="cats").name
    'string'
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import ValidationError
from pydantic_core import from_json

from llmkit._steps import Steps
from llmkit.errors import BadRequestError, StructuredOutputError
from llmkit.output import FlexibleModel as FlexibleModel  # re-exported: partial objects' base
from llmkit.output import OutputType, output_type
from llmkit.output import partial_model as partial_model
from llmkit.types import ChatMessage, ChatResponse, MessageRole, TextBlock

if TYPE_CHECKING:
    from llmkit.llm import LLM

Model = TypeVar("Model")

DEFAULT_MAX_REASKS = 2


class PydanticProgramMode(StrEnum):
    """How structured output is obtained from the model."""

    DEFAULT = "default"
    OPENAI = "openai"
    FUNCTION = "function"
    JSON_SCHEMA = "json_schema"
    GRAMMAR = "grammar"
    LLM = "llm"

    @property
    def canonical(self) -> PydanticProgramMode:
        """``OPENAI`` is an alias of ``FUNCTION``."""
        return PydanticProgramMode.FUNCTION if self is PydanticProgramMode.OPENAI else self


#: The order DEFAULT tries the modes in.
MODE_PREFERENCE = (
    PydanticProgramMode.JSON_SCHEMA,
    PydanticProgramMode.GRAMMAR,
    PydanticProgramMode.FUNCTION,
    PydanticProgramMode.LLM,
)


def schema_spec(output_cls: Any) -> dict[str, Any]:
    """The generic structured-output request a provider translates: name, JSON schema (an object), strictness.

    ``strict`` asks for strict enforcement where the service can give it; a wire format with rules of its own
    (OpenAI's strict mode) rewrites the schema to them, or drops ``strict`` when the schema cannot follow them."""
    out = output_type(output_cls)
    return {"name": out.name, "schema": out.schema, "strict": True}


_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)


def extract_json(text: str, want: type | None = None) -> Any:
    """The first JSON object or array in ``text`` (of type ``want``, if given), tolerating code fences and prose.

    Raises ``ValueError`` when there is none.
    """
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    # strict=False: models (and llama.cpp's JSON grammar) put raw newlines inside strings.
    decoder = json.JSONDecoder(strict=False)
    for candidate in candidates:
        for index, char in enumerate(candidate):
            if char in "{[":
                try:
                    value, _ = decoder.raw_decode(candidate, index)
                except json.JSONDecodeError:
                    continue
                if want is None or isinstance(value, want):
                    return value
    raise ValueError("no JSON object found in the model's output")


def parse_partial(text: str) -> Any:
    """Parse a JSON prefix (from its first ``{`` or ``[``); ``None`` when nothing usable has arrived yet."""
    start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
    if start < 0:
        return None
    try:
        return from_json(text[start:], allow_partial=True)
    except ValueError:
        return None


def validate_output(output_cls: Any, raw: str) -> Any:
    """Parse ``raw`` and validate it as ``output_cls``; ``ValueError``/``ValidationError`` when it does not fit."""
    return output_type(output_cls).parse(raw)


def tool_arguments(response: ChatResponse) -> str | None:
    """The argument text of the first tool call in a response, if any."""
    calls = response.message.additional_kwargs.get("tool_calls") or []
    if not calls:
        return None
    arguments = calls[0].get("function", {}).get("arguments", "")
    return arguments if isinstance(arguments, str) else json.dumps(arguments)


def _function_tool(output_cls: Any) -> Any:
    from llmkit.tools import ToolMetadata

    out = output_type(output_cls)

    class OutputTool(ToolMetadata):
        # The arguments are the output type's (object) schema, whatever the type is.
        def get_parameters_dict(self) -> dict[str, Any]:
            schema = dict(out.schema)
            schema.pop("title", None)
            return schema

    return OutputTool(name=out.name, description=out.description or f"Return a {out.name}.")


def mode_kwargs(mode: PydanticProgramMode, output_cls: Any) -> dict[str, Any]:
    """The generic chat kwargs that ask for ``mode``."""
    if mode in (PydanticProgramMode.JSON_SCHEMA, PydanticProgramMode.GRAMMAR):
        return {"json_schema": schema_spec(output_cls)}
    if mode is PydanticProgramMode.FUNCTION:
        return {"tools": [_function_tool(output_cls)], "tool_choice": output_type(output_cls).name}
    return {}


def schema_instruction(output_cls: Any) -> str:
    """The instruction LLM mode appends to the prompt."""
    schema = json.dumps(output_type(output_cls).schema)
    return (
        "Answer with a single JSON object that conforms to this JSON schema, and nothing else "
        f"(no prose, no code fences):\n{schema}"
    )


def _with_instruction(messages: Sequence[ChatMessage], instruction: str) -> list[ChatMessage]:
    out = list(messages)
    if out and out[-1].role is MessageRole.USER:
        last = out[-1].model_copy(deep=True)
        last.blocks = [*last.blocks, TextBlock(text="\n\n" + instruction)]
        out[-1] = last
    else:
        out.append(ChatMessage(role=MessageRole.USER, content=instruction))
    return out


def raw_output(response: ChatResponse, mode: PydanticProgramMode) -> str:
    """The text to validate: the tool call's arguments in FUNCTION mode, else the message text."""
    if mode is PydanticProgramMode.FUNCTION:
        arguments = tool_arguments(response)
        if arguments is not None:
            return arguments
    return response.message.content or ""


def candidate_modes(llm: LLM, requested: PydanticProgramMode) -> list[PydanticProgramMode]:
    """The modes to try, in order: the requested one alone, or for DEFAULT every supported mode, strongest first."""
    requested = requested.canonical
    if requested is not PydanticProgramMode.DEFAULT:
        return [requested]
    supported = llm.capabilities.structured_modes
    modes = [m for m in MODE_PREFERENCE if m in supported]
    return [*modes, PydanticProgramMode.LLM] if PydanticProgramMode.LLM not in modes else modes


def structured_steps(
    llm: LLM,
    output_cls: Any,
    messages: Sequence[ChatMessage],
    mode: PydanticProgramMode,
    llm_kwargs: dict[str, Any],
    max_reasks: int = DEFAULT_MAX_REASKS,
) -> Steps[Any]:
    """The structured-prediction conversation, written once for the sync and async drivers."""
    output_cls = output_type(output_cls)  # an unusable type fails here, before any request
    modes = candidate_modes(llm, mode)
    refused: list[PydanticProgramMode] = []  # modes answered with a 400, remembered once another mode gets through
    for position, current in enumerate(modes):
        conversation = list(messages)
        if current is PydanticProgramMode.LLM:
            conversation = _with_instruction(conversation, schema_instruction(output_cls))
        kwargs = {**mode_kwargs(current, output_cls), **llm_kwargs}
        raw, errors = "", []
        for _ in range(max_reasks + 1):
            try:
                response = yield conversation, kwargs
            except BadRequestError:
                if position == len(modes) - 1 or mode.canonical is not PydanticProgramMode.DEFAULT:
                    raise
                refused.append(current)
                break
            # The same conversation got through without the refused modes' fields: the 400s were about those modes
            # (an unrelated 400, such as a context too long, fails every mode and disables none).
            for earlier in refused:
                llm.refuse_structured_mode(earlier)
            refused.clear()
            raw = raw_output(response, current)
            truncated = response.additional_kwargs.get("finish_reason") == "length"
            try:
                return validate_output(output_cls, raw)
            except ValidationError as exc:
                errors = exc.errors(include_url=False)
                problem = json.dumps(errors, default=str)
            except ValueError as exc:
                errors, problem = [], str(exc)
            if truncated:
                problem = f"the answer was cut off by the token limit (finish_reason=length); {problem}"
            conversation = [
                *conversation,
                ChatMessage(role=MessageRole.ASSISTANT, content=raw),
                ChatMessage(
                    role=MessageRole.USER,
                    content=f"That answer is not valid: {problem}\nReply again with only the corrected JSON object.",
                ),
            ]
        else:
            raise StructuredOutputError(
                f"The model's output did not validate as {output_cls.name} after {max_reasks} re-ask(s)",
                raw=raw,
                errors=errors,
            )
    raise AssertionError("unreachable: the LLM mode never breaks out")  # pragma: no cover


def stream_request(
    llm: LLM, output_cls: Any, messages: Sequence[ChatMessage], mode: PydanticProgramMode
) -> tuple[PydanticProgramMode, list[ChatMessage], dict[str, Any]]:
    """The first candidate mode for a streamed structured request, with its messages and kwargs."""
    current = candidate_modes(llm, mode)[0]
    conversation = list(messages)
    if current is PydanticProgramMode.LLM:
        conversation = _with_instruction(conversation, schema_instruction(output_cls))
    return current, conversation, mode_kwargs(current, output_cls)


def iter_partials(
    chunks: Iterator[ChatResponse], output_cls: Any, mode: PydanticProgramMode
) -> Iterator[Any]:
    """Partial objects from a chat stream; the last one is validated as ``output_cls`` (or raises)."""
    out = output_type(output_cls)
    raw = ""
    last_seen: Any = None
    for chunk in chunks:
        raw = raw_output(chunk, mode)
        value = parse_partial(raw)
        if value is not None and value != last_seen:
            last_seen = value
            partial = out.partial(value)
            if partial is not None:
                yield partial
    yield _final(out, raw)


async def aiter_partials(
    chunks: AsyncIterator[ChatResponse], output_cls: Any, mode: PydanticProgramMode
) -> AsyncGenerator[Any, None]:
    """Async :func:`iter_partials`."""
    out = output_type(output_cls)
    raw = ""
    last_seen: Any = None
    async for chunk in chunks:
        raw = raw_output(chunk, mode)
        value = parse_partial(raw)
        if value is not None and value != last_seen:
            last_seen = value
            partial = out.partial(value)
            if partial is not None:
                yield partial
    yield _final(out, raw)


def _final(out: OutputType[Any], raw: str) -> Any:
    try:
        return out.parse(raw)
    except ValidationError as exc:
        raise StructuredOutputError(
            f"The streamed output did not validate as {out.name}",
            raw=raw,
            errors=exc.errors(include_url=False),
        ) from exc
    except ValueError as exc:
        raise StructuredOutputError(f"The streamed output held no JSON: {exc}", raw=raw) from exc
