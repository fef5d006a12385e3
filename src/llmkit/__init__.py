"""llmkit: one typed, fast Python interface to every large language model, local or remote.

Every public name is importable from here and loaded on first use, so ``import llmkit`` stays light and never
imports a provider SDK.

Example:
    >>> import llmkit
    >>> llm = llmkit.create("mock", responses=["Paris."])
    >>> llm.chat([llmkit.ChatMessage(role="user", content="Capital of France?")]).content
    'Paris.'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # types
    "MessageRole": "llmkit.types",
    "TextBlock": "llmkit.types",
    "ImageBlock": "llmkit.types",
    "AudioBlock": "llmkit.types",
    "VideoBlock": "llmkit.types",
    "DocumentBlock": "llmkit.types",
    "CachePoint": "llmkit.types",
    "CacheControl": "llmkit.types",
    "ThinkingBlock": "llmkit.types",
    "ToolCallBlock": "llmkit.types",
    "CitableBlock": "llmkit.types",
    "CitationBlock": "llmkit.types",
    "ChatMessage": "llmkit.types",
    "LogProb": "llmkit.types",
    "Usage": "llmkit.types",
    "ChatResponse": "llmkit.types",
    "CompletionResponse": "llmkit.types",
    "LLMMetadata": "llmkit.types",
    # the LLM
    "BaseLLM": "llmkit.llm",
    "LLM": "llmkit.llm",
    "CustomLLM": "llmkit.custom",
    "llm_chat_callback": "llmkit.custom",
    "llm_completion_callback": "llmkit.custom",
    "StructuredLLM": "llmkit.structured_llm",
    "WrapperLLM": "llmkit.wrapper",
    "LLMCall": "llmkit.wrapper",
    "CachedLLM": "llmkit.cache",
    "Capabilities": "llmkit.capabilities",
    "PydanticProgramMode": "llmkit.structured",
    "FlexibleModel": "llmkit.structured",
    # prompts, tools, callbacks
    "BasePromptTemplate": "llmkit.prompts",
    "PromptTemplate": "llmkit.prompts",
    "ChatPromptTemplate": "llmkit.prompts",
    "BaseTool": "llmkit.tools",
    "FunctionTool": "llmkit.tools",
    "ToolMetadata": "llmkit.tools",
    "ToolSelection": "llmkit.tools",
    "ToolOutput": "llmkit.tools",
    "AgentChatResponse": "llmkit.tools",
    "CallbackManager": "llmkit.callbacks",
    "CallbackHandler": "llmkit.callbacks",
    "TokenCountingHandler": "llmkit.callbacks",
    "instrument": "llmkit.observability",
    "uninstrument": "llmkit.observability",
    "CostTracker": "llmkit.usage",
    # errors
    "LLMError": "llmkit.errors",
    "ConfigurationError": "llmkit.errors",
    "TemplateError": "llmkit.errors",
    "OutputTypeError": "llmkit.errors",
    "SerializationError": "llmkit.errors",
    "APIConnectionError": "llmkit.errors",
    "APITimeoutError": "llmkit.errors",
    "APIStatusError": "llmkit.errors",
    "BadRequestError": "llmkit.errors",
    "AuthenticationError": "llmkit.errors",
    "PermissionDeniedError": "llmkit.errors",
    "NotFoundError": "llmkit.errors",
    "ConflictError": "llmkit.errors",
    "RateLimitError": "llmkit.errors",
    "ServerError": "llmkit.errors",
    "ContentFilterError": "llmkit.errors",
    "StreamError": "llmkit.errors",
    "JobFailedError": "llmkit.errors",
    "ResponseParseError": "llmkit.errors",
    "StructuredOutputError": "llmkit.errors",
    "ToolCallError": "llmkit.errors",
    "CacheError": "llmkit.errors",
    "ToolArgumentsError": "llmkit.errors",
    "InputError": "llmkit.errors",
    # construction
    "create": "llmkit.registry",
    "register_provider": "llmkit.registry",
    # providers (each imports its SDK, if any, only when used)
    "MockLLM": "llmkit.providers.mock",
    "MockFunctionCallingLLM": "llmkit.providers.mock",
    "ScriptedLLM": "llmkit.providers.mock",
    "FunctionLLM": "llmkit.providers.function",
    "LlamaCpp": "llmkit.providers.llamacpp",
    "OpenAI": "llmkit.providers.openai",
    "OpenAILike": "llmkit.providers.openai",
    "GradientBaseModelLLM": "llmkit.providers.gradient",
    "GradientModelAdapterLLM": "llmkit.providers.gradient",
    "AiXplainLLM": "llmkit.providers.aixplain",
    "LiteLLM": "llmkit.providers.litellm",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'llmkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


if TYPE_CHECKING:
    from llmkit.cache import CachedLLM
    from llmkit.callbacks import CallbackHandler, CallbackManager, TokenCountingHandler
    from llmkit.capabilities import Capabilities
    from llmkit.custom import CustomLLM, llm_chat_callback, llm_completion_callback
    from llmkit.errors import (
        APIConnectionError,
        APIStatusError,
        APITimeoutError,
        AuthenticationError,
        BadRequestError,
        CacheError,
        ConfigurationError,
        ConflictError,
        ContentFilterError,
        InputError,
        JobFailedError,
        LLMError,
        NotFoundError,
        OutputTypeError,
        PermissionDeniedError,
        RateLimitError,
        ResponseParseError,
        SerializationError,
        ServerError,
        StreamError,
        StructuredOutputError,
        TemplateError,
        ToolArgumentsError,
        ToolCallError,
    )
    from llmkit.llm import LLM, BaseLLM
    from llmkit.observability import instrument, uninstrument
    from llmkit.prompts import BasePromptTemplate, ChatPromptTemplate, PromptTemplate
    from llmkit.providers.aixplain import AiXplainLLM
    from llmkit.providers.function import FunctionLLM
    from llmkit.providers.gradient import GradientBaseModelLLM, GradientModelAdapterLLM
    from llmkit.providers.litellm import LiteLLM
    from llmkit.providers.llamacpp import LlamaCpp
    from llmkit.providers.mock import MockFunctionCallingLLM, MockLLM, ScriptedLLM
    from llmkit.providers.openai import OpenAI, OpenAILike
    from llmkit.registry import create, register_provider
    from llmkit.structured import FlexibleModel, PydanticProgramMode
    from llmkit.structured_llm import StructuredLLM
    from llmkit.tools import AgentChatResponse, BaseTool, FunctionTool, ToolMetadata, ToolOutput, ToolSelection
    from llmkit.types import (
        AudioBlock,
        CacheControl,
        CachePoint,
        ChatMessage,
        ChatResponse,
        CitableBlock,
        CitationBlock,
        CompletionResponse,
        DocumentBlock,
        ImageBlock,
        LLMMetadata,
        LogProb,
        MessageRole,
        TextBlock,
        ThinkingBlock,
        ToolCallBlock,
        Usage,
        VideoBlock,
    )
    from llmkit.usage import CostTracker
    from llmkit.wrapper import LLMCall, WrapperLLM
