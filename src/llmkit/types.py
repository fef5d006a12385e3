"""Messages, content blocks and responses: the data every provider speaks.

All types are pydantic v2 models that round-trip through ``model_dump``/``model_validate`` and JSON.

Example:
    >>> from llmkit.types import ChatMessage, MessageRole
    >>> msg = ChatMessage(role="user", content="Hello")
    >>> msg.content
    'Hello'
    >>> ChatMessage.model_validate_json(msg.model_dump_json()) == msg
    True
"""

from __future__ import annotations

import base64
import binascii
import functools
import mimetypes
from collections.abc import Callable
from enum import StrEnum
from io import BytesIO, IOBase
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, TypeVar
from urllib.parse import unquote_to_bytes

from pydantic import AnyUrl, BaseModel, ConfigDict, Field, FilePath, field_serializer, field_validator, model_validator

if TYPE_CHECKING:
    from llmkit.usage.cost import Cost


class MessageRole(StrEnum):
    """Message role."""

    SYSTEM = "system"
    DEVELOPER = "developer"
    USER = "user"
    ASSISTANT = "assistant"
    FUNCTION = "function"
    TOOL = "tool"
    CHATBOT = "chatbot"
    MODEL = "model"

    def __str__(self) -> str:
        return self.value


class TextBlock(BaseModel):
    """A representation of text data to directly pass to/from the LLM."""

    block_type: Literal["text"] = "text"
    text: str


_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"%PDF", "application/pdf"),
    (b"ID3", "audio/mpeg"),
    (b"\xff\xfb", "audio/mpeg"),
    (b"OggS", "audio/ogg"),
    (b"fLaC", "audio/flac"),
    (b"\x1aE\xdf\xa3", "video/webm"),
)


#: MIME type -> the format name LlamaIndex keeps in ``AudioBlock.format`` (and back).
_AUDIO_FORMATS = {
    "audio/mpeg": "mp3",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/ogg": "ogg",
    "audio/flac": "flac",
}
_AUDIO_MIMES = {"mp3": "audio/mpeg", "wav": "audio/wav", "ogg": "audio/ogg", "flac": "audio/flac", "m4a": "audio/mp4"}


def _sniff_mimetype(raw: bytes) -> str | None:
    for magic, mime in _MAGIC:
        if raw.startswith(magic):
            return mime
    if raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
        return "image/webp"
    if raw[:4] == b"RIFF" and raw[8:12] == b"WAVE":
        return "audio/wav"
    if raw[4:8] == b"ftyp":
        return "video/mp4"
    return None


def _as_base64(value: bytes) -> bytes:
    """Store media as base64: accept raw bytes or bytes that already are base64."""
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return base64.b64encode(value)
    return value


def _data_url_bytes(url: str) -> bytes:
    """The bytes of a ``data:[<mediatype>][;base64],<data>`` URL."""
    header, sep, payload = url[5:].partition(",")
    if not sep:
        raise ValueError("Invalid data URL format: missing comma separator")
    if header.endswith(";base64"):
        return base64.b64decode(payload)
    return unquote_to_bytes(payload)


def _data_url_mimetype(url: str) -> str | None:
    mime = url[5:].partition(",")[0].removesuffix(";base64").split(";", 1)[0]
    return mime or None


class _MediaBlock(BaseModel):
    """Shared behaviour of the media blocks: data given as bytes, a binary stream (``BytesIO``), a path or a URL
    (``https:`` or ``data:``), resolved lazily.

    Subclasses name their data and MIME-type fields as the reference API does (``image``/``image_mimetype``, ...).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    _data_field: ClassVar[str]
    _mime_field: ClassVar[str]
    _default_mime: ClassVar[str]
    _kind: ClassVar[str]

    path: FilePath | None = None
    url: AnyUrl | str | None = None

    @field_validator("url", mode="after")
    @classmethod
    def _url_type(cls, url: AnyUrl | str | None) -> AnyUrl | str | None:
        # As LlamaIndex: image, audio and video URLs are stored as ``AnyUrl`` (a document's stays a string).
        return AnyUrl(url) if isinstance(url, str) and cls._kind != "document" else url

    @model_validator(mode="after")
    def _normalise(self) -> _MediaBlock:
        data = getattr(self, self._data_field)
        if isinstance(data, bytes) and data:
            object.__setattr__(self, self._data_field, _as_base64(data))
        if getattr(self, self._mime_field, None) is None:
            object.__setattr__(self, self._mime_field, self._guess_mimetype())
        return self

    def _guess_mimetype(self) -> str | None:
        data = getattr(self, self._data_field)
        if isinstance(data, bytes) and data:
            return _sniff_mimetype(base64.b64decode(data)[:16])
        if data is not None:
            return None  # a stream is not read to guess (LlamaIndex neither)
        name = str(self.path) if self.path else str(self.url or "")
        if name.startswith("data:"):
            return _data_url_mimetype(name)
        return mimetypes.guess_type(name.split("?", 1)[0])[0]

    def _raw(self, timeout: float) -> bytes:
        data = getattr(self, self._data_field)
        if isinstance(data, IOBase):
            data.seek(0)
            raw = data.read()
            return raw if isinstance(raw, bytes) else str(raw).encode()
        if data is not None:
            return base64.b64decode(data)
        if self.path is not None:
            return Path(self.path).read_bytes()
        if self.url is not None:
            url = str(self.url)
            if url.startswith("data:"):
                return _data_url_bytes(url)
            from llmkit.transport.media import fetch

            return fetch(url, timeout=timeout)
        raise ValueError(f"{type(self).__name__} has no data, path or url")

    def resolve(self, *, as_base64: bool = False, timeout: float = 30.0) -> bytes:
        """Return the media's bytes (raw, or base64-encoded), reading the path or fetching the URL on first use."""
        raw = self._raw(timeout)
        return base64.b64encode(raw) if as_base64 else raw

    def _resolve_buffer(self, as_base64: bool) -> BytesIO:
        data = getattr(self, self._data_field)
        if isinstance(data, IOBase) and not as_base64:
            data.seek(0)
            return data  # type: ignore[return-value]  # the caller's own stream, as LlamaIndex returns it
        buffer = BytesIO(self.resolve(as_base64=as_base64))
        if not buffer.getbuffer().nbytes:
            raise ValueError(f"resolve_{self._kind} returned zero bytes")
        return buffer

    async def aprefetch(self, *, timeout: float = 30.0) -> None:
        """Fetch the URL now, without blocking the event loop, and keep the bytes in the block (so building a request
        later needs no I/O). Nothing to do when the block has its data or a path."""
        if getattr(self, self._data_field) is None and self.path is None and self.url is not None:
            url = str(self.url)
            if url.startswith("data:"):
                return
            from llmkit.transport.media import afetch

            object.__setattr__(self, self._data_field, base64.b64encode(await afetch(url, timeout=timeout)))

    @property
    def mimetype(self) -> str:
        """The MIME type: given, guessed from the bytes, path or URL, else the block's generic default."""
        value = getattr(self, self._mime_field, None)
        return value or self._default_mime

    def data_url(self) -> str:
        """The media as a ``data:`` URL (resolving it if needed)."""
        return f"data:{self.mimetype};base64,{self.resolve(as_base64=True).decode()}"

    def inline_url(self) -> str:
        """LlamaIndex's name for :meth:`data_url`."""
        return self.data_url()

    def _serialize_data(self, data: bytes | IOBase | None) -> bytes | None:
        if isinstance(data, IOBase):
            data.seek(0)
            raw = data.read()
            return raw if isinstance(raw, bytes) else None
        return data


class ImageBlock(_MediaBlock):
    """A representation of image data to directly pass to/from the LLM."""

    _data_field = "image"
    _mime_field = "image_mimetype"
    _default_mime = "image/png"
    _kind = "image"

    block_type: Literal["image"] = "image"
    image: bytes | IOBase | None = None
    image_mimetype: str | None = None
    detail: str | None = None

    @field_serializer("image")
    def _dump_image(self, image: bytes | IOBase | None) -> bytes | None:
        return self._serialize_data(image)

    def resolve_image(self, as_base64: bool = False) -> BytesIO:
        """The image as a binary stream (base64-encoded if asked); a ``ValueError`` when it is empty."""
        return self._resolve_buffer(as_base64)


class AudioBlock(_MediaBlock):
    """A representation of audio data to directly pass to/from the LLM."""

    _data_field = "audio"
    _mime_field = "format"
    _default_mime = "audio/wav"
    _kind = "audio"

    block_type: Literal["audio"] = "audio"
    audio: bytes | IOBase | None = None
    #: The file format as LlamaIndex names it: an extension such as ``"mp3"`` or ``"wav"``.
    format: str | None = None

    @field_serializer("audio")
    def _dump_audio(self, audio: bytes | IOBase | None) -> bytes | None:
        return self._serialize_data(audio)

    def _guess_mimetype(self) -> str | None:
        mime = super()._guess_mimetype()
        return _AUDIO_FORMATS.get(mime, mime.split("/")[-1]) if mime else None

    @property
    def mimetype(self) -> str:
        """The MIME type of the audio (from ``format``)."""
        if not self.format:
            return self._default_mime
        if "/" in self.format:
            return self.format
        return _AUDIO_MIMES.get(self.format, f"audio/{self.format}")

    def resolve_audio(self, as_base64: bool = False) -> BytesIO:
        """The audio as a binary stream (base64-encoded if asked); a ``ValueError`` when it is empty."""
        return self._resolve_buffer(as_base64)


class VideoBlock(_MediaBlock):
    """A representation of video data to directly pass to/from the LLM."""

    _data_field = "video"
    _mime_field = "video_mimetype"
    _default_mime = "video/mp4"
    _kind = "video"

    block_type: Literal["video"] = "video"
    video: bytes | IOBase | None = None
    video_mimetype: str | None = None
    detail: str | None = None
    fps: int | None = None

    @field_serializer("video")
    def _dump_video(self, video: bytes | IOBase | None) -> bytes | None:
        return self._serialize_data(video)

    def resolve_video(self, as_base64: bool = False) -> BytesIO:
        """The video as a binary stream (base64-encoded if asked); a ``ValueError`` when it is empty."""
        return self._resolve_buffer(as_base64)


class DocumentBlock(_MediaBlock):
    """A representation of a document (PDF, text, ...) to directly pass to the LLM."""

    _data_field = "data"
    _mime_field = "document_mimetype"
    _default_mime = "application/pdf"
    _kind = "document"

    block_type: Literal["document"] = "document"
    data: bytes | IOBase | None = None
    path: FilePath | str | None = None  # type: ignore[assignment]  # as LlamaIndex: a document path may be a string
    url: str | None = None  # as LlamaIndex: a document URL stays a string
    title: str | None = None
    document_mimetype: str | None = None

    @model_validator(mode="after")
    def _default_title(self) -> DocumentBlock:
        if not self.title:
            self.title = "input_document"  # LlamaIndex's default
        return self

    @field_serializer("data")
    def _dump_data(self, data: bytes | IOBase | None) -> bytes | None:
        return self._serialize_data(data)

    def resolve_document(self) -> BytesIO:
        """The document as a binary stream; a ``ValueError`` when it is empty."""
        return self._resolve_buffer(False)


class CacheControl(BaseModel):
    """How a provider with prompt caching caches: its ``type`` (``"ephemeral"``) and time to live."""

    type: str
    ttl: str = Field(default="5m")


class CachePoint(BaseModel):
    """Marks where a provider with prompt caching may cache the prefix of the conversation."""

    block_type: Literal["cache"] = "cache"
    cache_control: CacheControl = Field(default_factory=lambda: CacheControl(type="ephemeral"))


class CitableBlock(BaseModel):
    """Content the model may cite, with its title and source."""

    block_type: Literal["citable"] = "citable"
    title: str
    source: str
    content: list[Annotated[TextBlock | ImageBlock | DocumentBlock, Field(discriminator="block_type")]]


class CitationBlock(BaseModel):
    """A citation the model made of a :class:`CitableBlock`."""

    block_type: Literal["citation"] = "citation"
    cited_content: TextBlock | ImageBlock
    source: str
    title: str
    additional_location_info: dict[str, int] = Field(default_factory=dict)


class ThinkingBlock(BaseModel):
    """The model's reasoning (when the service returns it), kept apart from the answer's text."""

    block_type: Literal["thinking"] = "thinking"
    content: str | None = Field(default=None, description="The reasoning text, if available.")
    num_tokens: int | None = Field(default=None, description="Tokens used for reasoning, if known.")
    additional_information: dict[str, Any] = Field(default_factory=dict, description="Provider extras (signatures).")


class ToolCallBlock(BaseModel):
    """A tool call as a content block: the call's id, the tool's name and its arguments (a dict or raw JSON text)."""

    block_type: Literal["tool_call"] = "tool_call"
    tool_call_id: str | None = Field(default=None, description="The id of the tool call, if provided.")
    tool_name: str = Field(description="The name of the called tool.")
    tool_kwargs: dict[str, Any] | str = Field(default_factory=dict, description="The arguments given to the tool.")


ContentBlock = Annotated[
    TextBlock
    | ImageBlock
    | AudioBlock
    | VideoBlock
    | DocumentBlock
    | CachePoint
    | CitableBlock
    | CitationBlock
    | ThinkingBlock
    | ToolCallBlock,
    Field(discriminator="block_type"),
]


class ChatMessage(BaseModel):
    """One chat message: a role, content blocks and provider-specific extras.

    ``content="text"`` (or a list of blocks) is accepted at construction, and, as in LlamaIndex, it replaces any
    ``blocks`` given with it. ``.content`` reads the joined text of the text blocks; setting it replaces the text of a
    message that has at most one block, a text block (a message with other blocks raises ``ValueError``: edit
    ``.blocks``).

    Example:
        >>> m = ChatMessage(role="user", content="Hi")
        >>> m.content = "Hello"
        >>> m.blocks
        [TextBlock(block_type='text', text='Hello')]
        >>> str(m)
        'user: Hello'
    """

    role: MessageRole = MessageRole.USER
    blocks: list[ContentBlock] = Field(default_factory=list)
    additional_kwargs: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _content_to_blocks(cls, data: Any) -> Any:
        if isinstance(data, dict) and "content" in data:
            data = dict(data)
            content = data.pop("content")
            if isinstance(content, str):
                data["blocks"] = [TextBlock(text=content)]
            elif isinstance(content, list):
                data["blocks"] = list(content)
            elif content is not None:
                raise ValueError(f"ChatMessage content must be a str or a list of blocks, not {type(content).__name__}")
        return data

    def __init__(self, /, content: Any = None, **data: Any) -> None:
        if content is not None:
            data["content"] = content
        super().__init__(**data)

    @property
    def content(self) -> str | None:
        """The text of the message: its text blocks joined by newlines, or None when it has none."""
        blocks = self.blocks
        if len(blocks) == 1 and type(blocks[0]) is TextBlock:  # the usual message: one text
            return blocks[0].text
        texts = [b.text for b in blocks if isinstance(b, TextBlock)]
        return "\n".join(texts) if texts else None

    @content.setter
    def content(self, value: str | None) -> None:
        blocks = self.blocks
        if len(blocks) > 1 or (blocks and not isinstance(blocks[0], TextBlock)):
            raise ValueError("ChatMessage contains multiple blocks, use 'ChatMessage.blocks' instead.")
        self.blocks = [] if value is None else [TextBlock(text=value)]

    @classmethod
    def from_str(cls, content: str, role: MessageRole | str = MessageRole.USER, **kwargs: Any) -> ChatMessage:
        """Build a message from text."""
        return cls(role=MessageRole(role), blocks=[TextBlock(text=content)], **kwargs)

    def __str__(self) -> str:
        return f"{self.role.value}: {self.content}"


def as_messages(messages: Any) -> list[ChatMessage]:
    """What a chat call was given, as messages: a ``str`` is one user message, a :class:`ChatMessage` is itself, and a
    sequence holds messages or dicts (``{"role": "user", "content": "Hi"}``, validated into ChatMessage).

    Example:
        >>> as_messages([{"role": "system", "content": "Be brief."}, "Hi"])[1].content
        'Hi'
    """
    if type(messages) is list:
        for message in messages:
            if type(message) is not ChatMessage:
                break
        else:
            return messages.copy()  # the usual call: nothing to convert
    if isinstance(messages, str):
        return [ChatMessage(role=MessageRole.USER, blocks=[TextBlock(text=messages)])]
    if isinstance(messages, ChatMessage):
        return [messages]
    if isinstance(messages, dict) or not hasattr(messages, "__iter__"):
        raise _input_error(
            f"messages must be a list of ChatMessage (or a str, or role/content dicts), not {messages!r:.80}"
        )
    out = list(messages)
    for index, message in enumerate(out):
        if type(message) is not ChatMessage and not isinstance(message, ChatMessage):
            out[index] = _as_message(message, index)
    return out


def _as_message(message: Any, index: int) -> ChatMessage:
    if isinstance(message, dict):
        try:
            return ChatMessage.model_validate(message)
        except ValueError as exc:
            raise _input_error(f"messages[{index}] is not a valid message: {exc}") from None
    if isinstance(message, str):
        return ChatMessage(role=MessageRole.USER, blocks=[TextBlock(text=message)])
    raise _input_error(
        f"messages[{index}] must be a ChatMessage or a dict like {{'role': 'user', 'content': '...'}}, "
        f"not {type(message).__name__}"
    )


def _input_error(message: str) -> Exception:
    from llmkit.errors import InputError

    return InputError(message)


class LogProb(BaseModel):
    """The log-probability of one token. Responses carry ``list[list[LogProb]]``: per generated position, the chosen
    token first, then the alternatives the service returned."""

    token: str
    logprob: float
    bytes: list[int] = Field(default_factory=list)


class Usage(BaseModel):
    """Token usage as the service reported (or the local model counted) it. ``None`` means unknown, never zero.

    ``prompt_tokens`` (alias ``input_tokens``) includes the cached input: ``cache_read_tokens`` read from the
    provider's prompt cache and ``cache_write_tokens`` written to it. ``completion_tokens`` (``output_tokens``)
    includes ``reasoning_tokens``. ``credits`` is what a credit-billed service (aiXplain) charged, in its credits.
    ``provider`` and ``model`` say who served the call (the model as the reply named it); ``response.cost`` prices
    the usage from them (see :mod:`llmkit.usage.cost`).

    Example:
        >>> usage = Usage(prompt_tokens=10, completion_tokens=5, cache_read_tokens=4)
        >>> usage.total_tokens, usage.input_tokens
        (15, 10)
        >>> (usage + Usage(prompt_tokens=1, completion_tokens=1)).total_tokens
        17
    """

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None
    credits: float | None = None
    provider: str | None = None
    model: str | None = None

    @model_validator(mode="after")
    def _total(self) -> Usage:
        if self.total_tokens is None and self.prompt_tokens is not None and self.completion_tokens is not None:
            self.total_tokens = self.prompt_tokens + self.completion_tokens
        return self

    @property
    def input_tokens(self) -> int | None:
        """Input tokens, cached ones included (``prompt_tokens``)."""
        return self.prompt_tokens

    @property
    def output_tokens(self) -> int | None:
        """Output tokens, reasoning included (``completion_tokens``)."""
        return self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        """The sum of two usages: a count unknown on both sides stays unknown; provenance is kept when shared."""

        def add(a: Any, b: Any) -> Any:
            return b if a is None else a if b is None else a + b

        counts = (
            "prompt_tokens",
            "completion_tokens",
            "total_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
            "reasoning_tokens",
            "credits",
        )
        values = {name: add(getattr(self, name), getattr(other, name)) for name in counts}
        shared = ("provider", "model")
        same = {name: getattr(self, name) for name in shared if getattr(self, name) == getattr(other, name)}
        return Usage(**values, **same)


class ChatResponse(BaseModel):
    """Chat response: the message, the raw reply, the streamed ``delta`` and the token logprobs.

    ``response.content`` (or ``.text``) gives the text; ``str(response)`` is the message's ``"assistant: text"``, as in
    LlamaIndex.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    message: ChatMessage
    raw: Any | None = None
    delta: str | None = None
    logprobs: list[list[LogProb]] | None = None
    additional_kwargs: dict[str, Any] = Field(default_factory=dict)
    usage: Usage | None = None

    @property
    def content(self) -> str | None:
        """The message's text."""
        return self.message.content

    @property
    def text(self) -> str:
        """The message's text, empty when it has none."""
        return self.message.content or ""

    @property
    def cost(self) -> Cost:
        """What this call cost, priced from ``usage`` (see :func:`llmkit.usage.cost.cost_of`); never a made-up 0."""
        return _cost_of()(self.usage)

    def __str__(self) -> str:
        return str(self.message)


@functools.cache
def _cost_of() -> Callable[[Usage | None], Cost]:
    """Pricing, imported on first use (it loads the price table) and not again per access."""
    from llmkit.usage.cost import cost_of

    return cost_of


class CompletionResponse(BaseModel):
    """Completion response: the text so far, the streamed ``delta``, the raw reply and the logprobs."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    text: str
    additional_kwargs: dict[str, Any] = Field(default_factory=dict)
    raw: Any | None = None
    logprobs: list[list[LogProb]] | None = None
    delta: str | None = None
    usage: Usage | None = None

    @property
    def cost(self) -> Cost:
        """What this call cost, priced from ``usage`` (see :func:`llmkit.usage.cost.cost_of`); never a made-up 0."""
        return _cost_of()(self.usage)

    def __str__(self) -> str:
        return self.text


class LLMMetadata(BaseModel):
    """What an LLM is: its context window, output size, chat/function-calling abilities, model name."""

    context_window: int = Field(default=3900, description="Total number of tokens the model can take in and give out.")
    num_output: int = Field(default=256, description="Number of tokens the model can output when generating.")
    is_chat_model: bool = Field(default=False, description="Whether the model takes a sequence of chat messages.")
    is_function_calling_model: bool = Field(default=False, description="Whether the model supports function calling.")
    model_name: str = Field(default="unknown", description="The model's name, used for logging and tokenization.")
    system_role: MessageRole = Field(default=MessageRole.SYSTEM, description="The role used for system prompts.")


M = TypeVar("M", bound=BaseModel)


# BaseModel's slots, set through their descriptors: several times cheaper than ``object.__setattr__`` by name.
_new_object = object.__new__
_set_dict = BaseModel.__dict__["__dict__"].__set__
_set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__


class _AllFields(dict[type[BaseModel], set[str]]):
    """Per class, the fields-set every trusted object of it shares: every field is set, and pydantic only ever adds a
    field's own name to it (a no-op) or copies it (``model_copy``), so one set serves them all. (Not for models with
    ``extra="allow"``, whose assignments add other names: trusted builds none of those.)"""

    def __missing__(self, cls: type[BaseModel]) -> set[str]:
        if cls.model_config.get("extra") == "allow":
            raise TypeError(f"trusted() cannot build {cls.__name__}: it allows extra fields")
        fields = self[cls] = set(cls.model_fields)
        return fields


_ALL_FIELDS = _AllFields()


def trusted(cls: type[M], /, **values: Any) -> M:
    """Build a model from values already of the right types, with no validation and no defaults filled in: every
    field must be given. For the hot path of parsing streams, where ``model_construct`` costs several times more."""
    obj = _new_object(cls)
    _set_dict(obj, values)
    _set_fields_set(obj, _ALL_FIELDS[cls])
    _set_extra(obj, None)
    _set_private(obj, None)
    return obj


def text_message(
    text: str, extra: dict[str, Any] | None = None, role: MessageRole = MessageRole.ASSISTANT
) -> ChatMessage:
    """A one-text-block message, built without validation (see :func:`trusted`)."""
    block = trusted(TextBlock, block_type="text", text=text)
    return trusted(ChatMessage, role=role, blocks=[block], additional_kwargs=extra if extra is not None else {})


def chat_chunk(
    message: ChatMessage,
    *,
    delta: str | None = None,
    raw: Any = None,
    logprobs: list[list[LogProb]] | None = None,
    usage: Usage | None = None,
    additional_kwargs: dict[str, Any] | None = None,
) -> ChatResponse:
    """A :class:`ChatResponse` built without validation (see :func:`trusted`)."""
    return trusted(
        ChatResponse,
        message=message,
        raw=raw,
        delta=delta,
        logprobs=logprobs,
        additional_kwargs=additional_kwargs if additional_kwargs is not None else {},
        usage=usage,
    )


def completion_chunk(
    text: str,
    *,
    delta: str | None = None,
    raw: Any = None,
    logprobs: list[list[LogProb]] | None = None,
    usage: Usage | None = None,
    additional_kwargs: dict[str, Any] | None = None,
) -> CompletionResponse:
    """A :class:`CompletionResponse` built without validation (see :func:`trusted`)."""
    return trusted(
        CompletionResponse,
        text=text,
        additional_kwargs=additional_kwargs if additional_kwargs is not None else {},
        raw=raw,
        logprobs=logprobs,
        delta=delta,
        usage=usage,
    )


def chat_to_completion(response: ChatResponse) -> CompletionResponse:
    """View a chat response as a completion response (same text, delta, raw, logprobs and usage)."""
    return CompletionResponse(
        text=response.message.content or "",
        delta=response.delta,
        raw=response.raw,
        logprobs=response.logprobs,
        additional_kwargs=response.additional_kwargs or response.message.additional_kwargs,
        usage=response.usage,
    )


def completion_to_chat(response: CompletionResponse) -> ChatResponse:
    """View a completion response as an assistant chat message."""
    return ChatResponse(
        message=ChatMessage(role=MessageRole.ASSISTANT, blocks=[TextBlock(text=response.text)]),
        delta=response.delta,
        raw=response.raw,
        logprobs=response.logprobs,
        additional_kwargs=response.additional_kwargs,
        usage=response.usage,
    )
