"""``predict_and_call``: ask the model which tool to call, call it, return the output.

Function-calling models get the tools natively (parallel calls included). Other models get a ReAct-style text
prompt (``Action:`` / ``Action Input:``) whose answer is parsed; a model that answers directly (``Answer:``) returns
that answer with no sources.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from typing import Any

from llmkit._steps import Steps
from llmkit.errors import InputError, ToolCallError
from llmkit.tools import AgentChatResponse, BaseTool, ToolOutput, ToolSelection, acall_tool, call_tool
from llmkit.types import ChatMessage, ChatResponse, MessageRole, ToolCallBlock, as_messages


def _arguments(name: str, arguments: Any) -> dict[str, Any]:
    """A call's arguments as a dict. As LlamaIndex reads them: null, empty or non-JSON text is ``{}``; JSON that is
    not an object is a :class:`ToolCallError`."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError:
            arguments = {}
    if arguments is None:
        return {}
    if not isinstance(arguments, dict):
        raise ToolCallError(f"Tool '{name}' arguments must be a JSON object", tool_name=name, arguments=arguments)
    return arguments


def tool_selections(response: ChatResponse) -> list[ToolSelection]:
    """The tool calls of a response: OpenAI-shaped ``additional_kwargs['tool_calls']`` and ``ToolCallBlock``s. A
    call without a name is skipped (as LlamaIndex does)."""
    selections = []
    for index, call in enumerate(response.message.additional_kwargs.get("tool_calls") or []):
        if isinstance(call, ToolSelection):
            selections.append(call)
            continue
        function = call.get("function") or {}
        name = function.get("name") or ""
        if name:
            arguments = _arguments(name, function.get("arguments"))
            selections.append(
                ToolSelection(tool_id=call.get("id") or f"call_{index}", tool_name=name, tool_kwargs=arguments)
            )
    for index, block in enumerate(response.message.blocks):
        if isinstance(block, ToolCallBlock) and block.tool_name:
            arguments = _arguments(block.tool_name, block.tool_kwargs)
            call_id = block.tool_call_id or f"call_{index}"
            selections.append(ToolSelection(tool_id=call_id, tool_name=block.tool_name, tool_kwargs=arguments))
    return selections


def conversation(user_msg: str | ChatMessage | None, chat_history: Sequence[ChatMessage] | None) -> list[ChatMessage]:
    """``chat_history`` followed by ``user_msg`` (a str is a user message)."""
    messages = as_messages(list(chat_history or []))
    if isinstance(user_msg, str):
        if user_msg:
            messages.append(ChatMessage(role=MessageRole.USER, content=user_msg))
    elif user_msg is not None:
        messages.extend(as_messages(user_msg))
    return messages


def single_call(response: ChatResponse) -> ChatResponse:
    """Keep only the first tool call of a response (``allow_parallel_tool_calls=False``)."""
    calls = response.message.additional_kwargs.get("tool_calls")
    if isinstance(calls, list) and len(calls) > 1:
        response.message.additional_kwargs["tool_calls"] = calls[:1]
    blocks = [b for b in response.message.blocks if isinstance(b, ToolCallBlock)]
    if len(blocks) > 1:
        response.message.blocks = [b for b in response.message.blocks if b not in blocks[1:]]
    return response


REACT_INSTRUCTIONS = """You can use these tools:
{tool_desc}

To use a tool, answer exactly in this format:
Action: <one of: {tool_names}>
Action Input: <a JSON object with the tool's arguments>

If no tool is needed, answer:
Answer: <your answer>"""

_ACTION = re.compile(r"Action\s*:\s*`?([\w.-]+)`?\s*\n+\s*Action\s*Input\s*:\s*(.*)", re.DOTALL | re.IGNORECASE)
_ANSWER = re.compile(r"Answer\s*:\s*(.*)", re.DOTALL | re.IGNORECASE)


def react_prompt(tools: Sequence[BaseTool]) -> str:
    """The system instruction of the ReAct fallback."""
    desc = "\n".join(
        f"- {t.metadata.name}: {t.metadata.description} "
        f"Arguments schema: {json.dumps(t.metadata.get_parameters_dict())}"
        for t in tools
    )
    return REACT_INSTRUCTIONS.format(tool_desc=desc, tool_names=", ".join(t.metadata.name for t in tools))


def parse_react(text: str) -> list[ToolSelection] | str:
    """A ReAct reply: the selected call, or the direct answer. Unparseable arguments raise ToolCallError."""
    action = _ACTION.search(text)
    if action is not None:
        name, rest = action.group(1), action.group(2)
        from llmkit.structured import extract_json

        try:
            arguments = extract_json(rest)
        except ValueError as exc:
            raise ToolCallError(f"Action Input for '{name}' is not JSON: {rest[:200]!r}", tool_name=name) from exc
        if not isinstance(arguments, dict):
            raise ToolCallError(f"Action Input for '{name}' must be a JSON object", tool_name=name)
        return [ToolSelection(tool_id="react_0", tool_name=name, tool_kwargs=arguments)]
    answer = _ANSWER.search(text)
    return (answer.group(1) if answer else text).strip()


def react_steps(
    tools: Sequence[BaseTool], messages: list[ChatMessage], verbose: bool, kwargs: dict[str, Any]
) -> Steps[list[ToolSelection] | str]:
    """The ReAct text fallback: ask for an ``Action``; returns the selection, or the model's direct answer."""
    if not messages:
        raise InputError("predict_and_call needs user_msg or chat_history")
    system = ChatMessage(role=MessageRole.SYSTEM, content=react_prompt(tools))
    response = yield [system, *messages], kwargs
    if verbose:
        print(f"=== ReAct reply ===\n{response.text}")
    return parse_react(response.text)


def _announce(selection: ToolSelection, verbose: bool) -> None:
    if verbose:  # LlamaIndex's wording
        print("=== Calling Function ===")
        print(f"Calling function: {selection.tool_name} with args: {json.dumps(selection.tool_kwargs)}")


def _report(output: ToolOutput, verbose: bool) -> ToolOutput:
    if verbose:
        print("=== Function Output ===")
        print(output.content)
    return output


def run_tools(tools: Sequence[BaseTool], selections: list[ToolSelection], verbose: bool) -> list[ToolOutput]:
    """Call the selected tools one after another."""
    outputs = []
    for selection in selections:
        _announce(selection, verbose)
        outputs.append(_report(call_tool(tools, selection), verbose))
    return outputs


async def arun_tools(tools: Sequence[BaseTool], selections: list[ToolSelection], verbose: bool) -> list[ToolOutput]:
    """Call the selected tools concurrently."""

    async def one(selection: ToolSelection) -> ToolOutput:
        _announce(selection, verbose)
        return _report(await acall_tool(tools, selection), verbose)

    return list(await asyncio.gather(*(one(selection) for selection in selections)))


def agent_response(
    outputs: list[ToolOutput], answer: str, error_on_tool_error: bool, allow_parallel_tool_calls: bool = True
) -> AgentChatResponse:
    """The answer of ``predict_and_call``: the outputs' text (or the model's own answer when it called no tool);
    with ``error_on_tool_error``, a failed tool raises :class:`ToolCallError` (a ``ValueError``) instead."""
    failed = [output for output in outputs if output.is_error]
    if error_on_tool_error and failed:
        error = ToolCallError("\n\n".join(o.content for o in outputs), tool_name=failed[0].tool_name)
        raise error from failed[0].exception
    if len(outputs) > 1 and not allow_parallel_tool_calls:
        # Only a model whose answers are not trimmed to one call gets here (LlamaIndex raises the same way).
        raise ToolCallError(f"The model made {len(outputs)} tool calls; pass allow_parallel_tool_calls=True")
    if not outputs:
        return AgentChatResponse(response=answer, sources=[])
    return AgentChatResponse(response="\n\n".join(o.content for o in outputs), sources=outputs)
