"""aiXplain: the SDK's ``run``/``run_async``/``poll`` API and llmkit's unified interface (see :mod:`.llm`).

Example:
    >>> from llmkit.providers.aixplain import AiXplainLLM, ResponseStatus
    >>> llm = AiXplainLLM("6646261c6eb563165658bbb1", "GPT-4o", api_key="team-key")
    >>> llm.run_url
    'https://models.aixplain.com/api/v2/execute/6646261c6eb563165658bbb1'
"""

from llmkit.providers.aixplain.llm import AiXplainLLM, Function, FunctionType, from_spec, messages_to_run
from llmkit.providers.aixplain.payload import build_payload, serialise
from llmkit.providers.aixplain.response import ModelResponse, ResponseStatus
from llmkit.providers.aixplain.stream import ModelResponseStreamer, parse_line

__all__ = [
    "AiXplainLLM",
    "Function",
    "FunctionType",
    "ModelResponse",
    "ModelResponseStreamer",
    "ResponseStatus",
    "build_payload",
    "from_spec",
    "messages_to_run",
    "parse_line",
    "serialise",
]
