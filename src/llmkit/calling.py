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
from typing import TYPE_CHECKING, Any

from llmkit._steps import Steps
from llmkit.errors import ToolCallError
from llmkit.tools import AgentChatResponse, BaseTool, ToolOutput, ToolSelection, acall_tool, call_tool
from llmkit.types import ChatMessage, ChatResponse, MessageRole

if TYPE_CHECKING:
    from llmkit.llm import LLM


def tool_selections(response: ChatResponse) -> list[ToolSelection]:
    """Parse the OpenAI-shaped ``tool_calls`` of a response. Arguments that are not JSON raise ToolCallError."""
    selections = []
    for index, call in enumerate(response.message.additional_kwargs.get("tool_calls") or []):
        function = call.get("function") or {}
        name = function.get("name", "")
        arguments = function.get("arguments") or "{}"
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except json.JSONDecodeError as exc:
                raise ToolCallError(
                    f"The model gave tool '{name}' arguments that are not JSON: {arguments[:200]!r}",
                    tool_name=name,
                    arguments=arguments,
                ) from exc
        if not isinstance(arguments, dict):
            raise ToolCallError(f"Tool '{name}' arguments must be a JSON object", tool_name=name, arguments=arguments)
        selections.append(
            ToolSelection(tool_id=call.get("id") or f"call_{index}", tool_name=name, tool_kwargs=arguments)
        )
    return selections


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


def _conversation(user_msg: str | ChatMessage | None, chat_history: list[ChatMessage] | None) -> list[ChatMessage]:
    messages = list(chat_history or [])
    if isinstance(user_msg, str):
        messages.append(ChatMessage(role=MessageRole.USER, content=user_msg))
    elif user_msg is not None:
        messages.append(user_msg)
    if not messages:
        raise ValueError("predict_and_call needs user_msg or chat_history")
    return messages


def call_steps(
    llm: LLM,
    tools: list[BaseTool],
    user_msg: str | ChatMessage | None,
    chat_history: list[ChatMessage] | None,
    verbose: bool,
    kwargs: dict[str, Any],
) -> Steps[list[ToolSelection] | str]:
    """Ask the model for tool calls; returns the selections, or the model's direct answer."""
    messages = _conversation(user_msg, chat_history)
    if llm.capabilities.tool_calling:
        request = {"tools": [t.metadata for t in tools], "tool_choice": kwargs.pop("tool_choice", "auto"), **kwargs}
        response = yield messages, request
        selections = tool_selections(response)
        return selections or response.text
    system = ChatMessage(role=MessageRole.SYSTEM, content=react_prompt(tools))
    response = yield [system, *messages], kwargs
    if verbose:
        print(f"=== ReAct reply ===\n{response.text}")
    return parse_react(response.text)


def _agent_response(outputs: list[ToolOutput], verbose: bool) -> AgentChatResponse:
    if verbose:
        for output in outputs:
            print(f"=== Called {output.tool_name}({output.raw_input}) -> {output.content}")
    return AgentChatResponse(response="\n\n".join(o.content for o in outputs), sources=outputs)


def run_tool_calls(tools: list[BaseTool], result: list[ToolSelection] | str, verbose: bool) -> AgentChatResponse:
    """Call the selected tools one after another (or return the direct answer)."""
    if isinstance(result, str):
        return AgentChatResponse(response=result)
    return _agent_response([call_tool(tools, selection) for selection in result], verbose)


async def acall_steps_result(
    tools: list[BaseTool], result: list[ToolSelection] | str, verbose: bool
) -> AgentChatResponse:
    """Call the selected tools concurrently (or return the direct answer)."""
    if isinstance(result, str):
        return AgentChatResponse(response=result)
    outputs = await asyncio.gather(*(acall_tool(tools, selection) for selection in result))
    return _agent_response(list(outputs), verbose)
