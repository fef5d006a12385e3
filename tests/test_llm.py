"""The LLM base: routing between families, the system prompt applied once, callbacks, prompts, tools, create()."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import BaseModel

import llmkit
from llmkit import (
    CallbackManager,
    ChatMessage,
    ChatPromptTemplate,
    ConfigurationError,
    FunctionTool,
    InputError,
    PromptTemplate,
    ScriptedLLM,
    TokenCountingHandler,
    ToolCallError,
)
from llmkit.callbacks import CallbackHandler, LLMEvent

HI = [ChatMessage(role="user", content="Hi")]


class CompletionOnly(ScriptedLLM):
    """A completion-only provider: chat must come through messages_to_prompt."""

    is_chat_model: bool = False

    def _chat(self, messages, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("chat primitive must not be used")


CompletionOnly._chat = llmkit.LLM._chat  # type: ignore[method-assign]


def test_system_prompt_applied_once_for_chat_and_completion() -> None:
    llm = ScriptedLLM(system_prompt="Be brief.")
    llm.chat(HI)
    messages, _ = llm.requests[-1]
    assert [m.role.value for m in messages] == ["system", "user"]
    llm.complete("Q")
    messages, _ = llm.requests[-1]
    assert [(m.role.value, m.content) for m in messages] == [("system", "Be brief."), ("user", "Q")]
    llm.chat([ChatMessage(role="system", content="Own"), *HI])
    assert [m.content for m in llm.requests[-1][0]] == ["Own", "Hi"]


def test_completion_model_gets_chat_through_messages_to_prompt() -> None:
    llm = CompletionOnly(system_prompt="Be nice")
    assert llm.chat(HI).content == "system: Be nice\nuser: Hi\nassistant: "
    assert llm.complete("Q: why").text == "Be nice\n\nQ: why"
    assert llm.complete("raw", formatted=True).text == "raw"
    assert "".join(c.delta or "" for c in llm.stream_chat(HI)).startswith("system:")


def test_predict_uses_chat_for_chat_models_and_text_for_completion_models() -> None:
    template = PromptTemplate("Q: {q}")
    chat_model = ScriptedLLM()
    chat_model.predict(template, q="why")
    assert isinstance(chat_model.requests[-1][0], list)
    completion_model = CompletionOnly()
    assert completion_model.predict(template, q="why") == "Q: why"


class Recorder(CallbackHandler):
    def __init__(self) -> None:
        self.events: list[str] = []

    def on_llm_start(self, event: LLMEvent) -> None:
        self.events.append("start")

    def on_llm_token(self, event: LLMEvent, delta: str) -> None:
        self.events.append("token")

    def on_llm_end(self, event: LLMEvent) -> None:
        self.events.append("end")

    def on_llm_error(self, event: LLMEvent) -> None:
        self.events.append(f"error:{type(event.error).__name__}")


async def test_callbacks_see_every_call_tokens_usage_and_errors() -> None:
    recorder, counter = Recorder(), TokenCountingHandler()
    llm = ScriptedLLM(responses=["a b"], callback_manager=CallbackManager([recorder, counter]))
    llm.chat(HI)
    list(llm.stream_chat(HI))
    await llm.achat(HI)
    async for _ in await llm.astream_complete("x"):
        pass
    assert recorder.events == [
        "start",
        "end",
        "start",
        "token",
        "token",
        "end",
        "start",
        "end",
        "start",
        "token",
        "token",
        "end",
    ]
    assert counter.calls == 4
    assert counter.completion_tokens == 8
    assert counter.prompt_tokens == 4

    class Broken(ScriptedLLM):
        def _chat(self, messages, **kwargs):  # type: ignore[no-untyped-def]
            raise ValueError("boom")

    broken = Broken(callback_manager=CallbackManager([recorder]))
    with pytest.raises(ValueError, match="boom"):
        broken.chat(HI)
    assert recorder.events[-1] == "error:ValueError"


def test_prompt_templates() -> None:
    template = PromptTemplate("{a} and {b}")
    assert template.partial_format(a="x").format(b="y") == "x and y"
    with pytest.raises(ConfigurationError, match="'b'"):
        template.format(a="x")
    chat = ChatPromptTemplate.from_messages([("system", "You are {who}."), ("user", "{q}")])
    assert chat.template_vars == ["who", "q"]
    assert [m.content for m in chat.format_messages(who="kind", q="hi")] == ["You are kind.", "hi"]


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


async def slow_mul(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


def explode(reason: str) -> str:
    """Always fails."""
    raise RuntimeError(reason)


def test_function_tool_schema_and_calls() -> None:
    tool = FunctionTool.from_defaults(add)
    schema = tool.metadata.get_parameters_dict()
    assert schema["required"] == ["a", "b"]
    assert schema["properties"]["a"]["type"] == "integer"
    assert tool.call(a=2, b=3).content == "5"
    with pytest.raises(ToolCallError, match="Invalid arguments"):
        tool.call(a="x", b=1)


async def test_predict_and_call_native_parallel_errors_and_async() -> None:
    llm = ScriptedLLM()
    result = llm.predict_and_call([FunctionTool.from_defaults(add)], "1+1?")
    assert result.sources[0].tool_name == "add"
    assert result.response == "0"
    failing = llm.predict_and_call([FunctionTool.from_defaults(explode)], "go")
    assert failing.sources[0].is_error
    assert failing.response == "Encountered error: string"
    assert isinstance(failing.sources[0].exception, RuntimeError)
    with pytest.raises(ToolCallError, match="Encountered error: string"):
        llm.predict_and_call([FunctionTool.from_defaults(explode)], "go", error_on_tool_error=True)
    assert "error_on_tool_error" not in llm.requests[-1][1]  # a keyword of predict_and_call, not of the provider
    async_result = await llm.apredict_and_call([FunctionTool.from_defaults(slow_mul)], "2*3?")
    assert async_result.sources[0].raw_output == 0


def test_predict_and_call_unknown_tool_and_bad_arguments() -> None:
    class Rogue(ScriptedLLM):
        arguments: str = '{"a": 1, "b": 2}'
        name: str = "nope"

        def _chat(self, messages, **kwargs):  # type: ignore[no-untyped-def]
            call = {"id": "1", "type": "function", "function": {"name": self.name, "arguments": self.arguments}}
            response = super()._chat(messages)
            response.message.additional_kwargs["tool_calls"] = [call]
            return response

    with pytest.raises(ToolCallError, match="unknown tool 'nope'"):
        Rogue().predict_and_call([FunctionTool.from_defaults(add)], "x")
    # As LlamaIndex: arguments that are not JSON read as {}; the missing arguments are then a tool error output.
    not_json = Rogue(name="add", arguments="{oops").predict_and_call([FunctionTool.from_defaults(add)], "x")
    assert not_json.sources[0].is_error
    assert not_json.sources[0].raw_input == {}
    invalid = Rogue(name="add", arguments='{"a": "x"}').predict_and_call([FunctionTool.from_defaults(add)], "x")
    assert invalid.sources[0].is_error
    assert "Invalid arguments" in invalid.response
    unknown = Rogue(name="add", arguments='{"a": 1, "b": 2, "c": 99}').predict_and_call(
        [FunctionTool.from_defaults(add)], "x"
    )
    assert unknown.sources[0].is_error
    assert "does not take: c" in unknown.response
    with pytest.raises(ToolCallError, match="does not take: c"):
        Rogue(name="add", arguments='{"a": 1, "b": 2, "c": 99}').predict_and_call(
            [FunctionTool.from_defaults(add)], "x", error_on_tool_error=True
        )


def test_react_fallback_for_models_without_function_calling() -> None:
    llm = ScriptedLLM(
        is_function_calling_model=False, responses=['Thought: add.\nAction: add\nAction Input: {"a": 2, "b": 5}']
    )
    result = llm.predict_and_call([FunctionTool.from_defaults(add)], "2+5?")
    assert result.response == "7"
    system = llm.requests[-1][0][0]
    assert "Action Input" in (system.content or "")
    assert "add" in (system.content or "")
    direct = ScriptedLLM(is_function_calling_model=False, responses=["Answer: no tool needed"])
    assert direct.predict_and_call([FunctionTool.from_defaults(add)], "hi").response == "no tool needed"


def test_create_and_unknown_spec() -> None:
    assert isinstance(llmkit.create("mock"), ScriptedLLM)
    with pytest.raises(ConfigurationError, match=r"Known providers: .*local"):
        llmkit.create("nope/x")
    llmkit.register_provider("mine", lambda rest, **kw: ScriptedLLM(responses=[rest]))
    assert llmkit.create("mine/hello").complete("x").text == "hello"


def test_import_is_light() -> None:
    heavy = "('litellm', 'llama_cpp', 'openai', 'httpx', 'pydantic', 'opentelemetry', 'genai_prices')"
    code = f"import sys, llmkit; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_obvious_message_forms_are_accepted_and_others_named() -> None:
    """Issue #21.9: a str is one user message, dicts are validated into ChatMessage, a plain str prompt works."""
    llm = ScriptedLLM()
    assert llm.chat("hi").message.content == "hi"
    assert llm.chat([{"role": "system", "content": "s"}, {"role": "user", "content": "yo"}]).message.content == "yo"
    assert llm.requests[-1][0][0].role.value == "system"
    with pytest.raises(InputError, match=r"messages\[0\] must be a ChatMessage or a dict"):
        llm.chat([42])  # type: ignore[list-item]
    with pytest.raises(InputError, match=r"messages\[0\] is not a valid message"):
        llm.chat([{"role": "boss", "content": "x"}])  # type: ignore[list-item]

    class Pet(BaseModel):
        name: str

    assert llm.structured_predict(Pet, "A pet, as JSON like {\"name\": ...}").name == "string"  # type: ignore[arg-type]
    assert llm.predict("plain {text}") == "plain {text}"  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="No prompt provided"):
        llm.complete()


def test_function_calling_surface_and_no_tool_call() -> None:
    tools = [FunctionTool.from_defaults(add)]
    llm = ScriptedLLM(responses=["no tool needed"])
    forced = llm.chat_with_tools(tools, "1 + 2?", tool_required=True)
    assert llm.requests[-1][1]["tool_choice"] == "required"
    assert llm.get_tool_calls_from_response(forced)[0].tool_kwargs == {"a": 0, "b": 0}
    plain = llm.chat("hi", tools=tools, tool_choice="none")
    with pytest.raises(ToolCallError, match="Expected at least one tool call"):
        llm.get_tool_calls_from_response(plain)
    assert llm.get_tool_calls_from_response(plain, error_on_no_tool_call=False) == []
    with pytest.raises(ConfigurationError, match="does not call tools natively"):
        ScriptedLLM(is_function_calling_model=False).chat_with_tools(tools, "x")
