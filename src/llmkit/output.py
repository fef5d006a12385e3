"""OutputType: the one adapter between a user's ``output_cls`` and structured output.

Whatever pydantic's ``TypeAdapter`` accepts can be an ``output_cls``: a ``BaseModel`` or ``RootModel``, a dataclass,
a ``TypedDict``, or a plain type such as ``int`` or ``list[str]``. The schema sent to the model, the validation of
its answer and the text of a validated answer all come from here, so every mode (native JSON schema, grammar, tool
call, prompt) and every entry point (``structured_predict`` and its async and streaming forms, ``StructuredLLM``,
``MockLLM``) treats every type alike. Anything else is an :class:`~llmkit.errors.OutputTypeError` naming what is
accepted.

Services that take a schema want an object at its root (OpenAI's ``json_schema`` and every tool call), so a type
whose schema is not an object (``int``, ``list[str]``, a ``RootModel`` of a list) is asked for as ``{"value": ...}``
and unwrapped before validation; a bare answer (``42``) is accepted as well.

Example:
    >>> from llmkit.output import output_type
    >>> numbers = output_type(list[int])
    >>> numbers.schema["properties"]["value"]
    {'items': {'type': 'integer'}, 'type': 'array'}
    >>> numbers.parse('{"value": [1, 2]}')
    [1, 2]
    >>> output_type(print)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    llmkit.errors.OutputTypeError: output_cls must be a type pydantic can validate: ...
"""

from __future__ import annotations

import dataclasses
import json
import re
from functools import lru_cache
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, PydanticUserError, TypeAdapter, ValidationError, create_model
from pydantic.errors import PydanticInvalidForJsonSchema, PydanticSchemaGenerationError

from llmkit.errors import OutputTypeError

T = TypeVar("T")

#: The key a non-object answer is wrapped in.
VALUE_KEY = "value"

ACCEPTED = "a BaseModel or RootModel subclass, a dataclass, a TypedDict, or a plain type such as int or list[str]"


class FlexibleModel(BaseModel):
    """Base of the partial objects streamed before the output is complete: every field optional, extras allowed."""

    model_config = ConfigDict(extra="allow")


def _name(target: Any, schema: dict[str, Any]) -> str:
    """A name services accept for a schema or tool (``^[A-Za-z0-9_-]{1,64}$``)."""
    raw = getattr(target, "__name__", None) if isinstance(target, type) else None
    raw = raw or schema.get("title") or repr(target)
    return re.sub(r"[^A-Za-z0-9_-]+", "_", str(raw)).strip("_")[:64] or "output"


def _is_object(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "object"


def _inline_root(schema: dict[str, Any]) -> dict[str, Any]:
    """A recursive model's schema is only a ``$ref`` into ``$defs``: its definition becomes the root (an object, so
    it needs no wrapping); ``$defs`` stays for the references inside it."""
    ref, defs = schema.get("$ref"), schema.get("$defs") or {}
    if set(schema) == {"$ref", "$defs"} and isinstance(ref, str) and ref.startswith("#/$defs/"):
        target = defs.get(ref.removeprefix("#/$defs/"))
        if isinstance(target, dict) and _is_object(target):
            return {**target, "$defs": defs}
    return schema


def _wrap(schema: dict[str, Any]) -> dict[str, Any]:
    inner = dict(schema)
    defs = inner.pop("$defs", None)
    inner.pop("title", None)
    wrapped: dict[str, Any] = {
        "type": "object",
        "properties": {VALUE_KEY: inner},
        "required": [VALUE_KEY],
        "additionalProperties": False,
    }
    if defs:
        wrapped["$defs"] = defs
    return wrapped


class OutputType(Generic[T]):
    """An ``output_cls`` made usable by structured output: its wire schema, validation and serialisation.

    Build one with :func:`output_type` (cached per type).
    """

    def __init__(self, target: Any) -> None:
        self.target: Any = target.target if isinstance(target, OutputType) else target
        target = self.target
        try:
            self.adapter: TypeAdapter[T] = TypeAdapter(target)
            schema = _inline_root(self.adapter.json_schema())
        except (PydanticSchemaGenerationError, PydanticInvalidForJsonSchema, PydanticUserError, TypeError) as exc:
            # pydantic's first sentence says what failed; its advice (arbitrary_types_allowed...) is for model authors
            reason = (str(exc).splitlines() or [type(exc).__name__])[0].split(". ")[0]
            raise OutputTypeError(
                f"output_cls must be a type pydantic can validate: {ACCEPTED}; got {target!r} ({reason})"
            ) from exc
        self.name = _name(target, schema)
        #: Whether answers are asked for as ``{"value": ...}`` (the type's schema is not an object).
        self.wrapped = not _is_object(schema)
        #: The JSON schema the model is asked to produce (always an object).
        self.schema = _wrap(schema) if self.wrapped else schema
        self.description = (getattr(target, "__doc__", None) or "").strip() if self._documented() else ""

    def _documented(self) -> bool:
        # Built-in types' docstrings (int, list) describe Python, not the answer wanted.
        return isinstance(self.target, type) and (
            issubclass(self.target, BaseModel) or dataclasses.is_dataclass(self.target) or _is_typeddict(self.target)
        )

    def __repr__(self) -> str:
        return f"OutputType({self.target!r})"

    # -- answers -> instances -----------------------------------------------------------------------------------------

    def validate(self, value: Any) -> T:
        """Validate a decoded answer (unwrapping ``{"value": ...}``); ``ValidationError`` when it does not fit.

        A ``null`` for a field that may be left out but is not nullable (what a strict schema makes a model send
        for an omitted optional field) is dropped first, so the field's default applies.
        """
        value = drop_optional_nulls(value, self.schema)
        if self.wrapped and isinstance(value, dict) and set(value) == {VALUE_KEY}:
            value = value[VALUE_KEY]
        return self.adapter.validate_python(value)

    def parse(self, raw: str) -> T:
        """Find the answer in the model's text and validate it; ``ValueError``/``ValidationError`` when it does not
        fit."""
        from llmkit.structured import extract_json

        try:
            value = extract_json(raw, want=None if self.wrapped else dict)
        except ValueError:
            if not self.wrapped:
                raise
            try:  # a bare scalar answer (42, "yes", true)
                value = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ValueError("no JSON value found in the model's output") from exc
        return self.validate(value)

    def partial(self, value: Any) -> Any:
        """A partial object from a JSON prefix: the validated instance when it already fits, else a lenient twin
        (``BaseModel`` targets: every field optional; other objects: a :class:`FlexibleModel`), else ``None``."""
        if self.wrapped:
            inner = value.get(VALUE_KEY) if isinstance(value, dict) else value
            try:
                return self.adapter.validate_python(inner)
            except ValidationError:
                return None
        if not isinstance(value, dict):
            return None
        try:
            return self.validate(value)
        except ValidationError:
            if isinstance(self.target, type) and issubclass(self.target, BaseModel):
                return partial_model(self.target).model_validate(value)
            return FlexibleModel.model_validate(value)

    def dump_json(self, obj: Any, indent: int | None = None) -> str:
        """The JSON text of an answer (a partial object included)."""
        if isinstance(obj, BaseModel):
            return obj.model_dump_json(indent=indent)
        return self.adapter.dump_json(obj, indent=indent).decode()


def _is_typeddict(target: Any) -> bool:
    return isinstance(target, type) and issubclass(target, dict) and hasattr(target, "__required_keys__")


@lru_cache(maxsize=256)
def _cached(target: Any) -> OutputType[Any]:
    return OutputType(target)


def output_type(target: Any) -> OutputType[Any]:
    """The :class:`OutputType` of ``target`` (cached), or an :class:`~llmkit.errors.OutputTypeError` naming what
    ``output_cls`` may be."""
    if isinstance(target, OutputType):
        return target
    try:
        return _cached(target)
    except TypeError as exc:
        if isinstance(exc, OutputTypeError):
            raise
        return OutputType(target)  # an unhashable type (rare): not cached


_partial_models: dict[type[BaseModel], type[BaseModel]] = {}


def partial_model(output_cls: type[BaseModel]) -> type[BaseModel]:
    """A lenient twin of ``output_cls`` (every field optional and untyped) for partial streamed objects."""
    cached = _partial_models.get(output_cls)
    if cached is None:
        fields: dict[str, Any] = dict.fromkeys(output_cls.model_fields, (Any, None))
        cached = create_model(f"Partial{output_cls.__name__}", __base__=FlexibleModel, **fields)
        _partial_models[output_cls] = cached
    return cached


def _admits_null(schema: dict[str, Any], defs: dict[str, Any]) -> bool:
    schema = _resolve(schema, defs)
    kind = schema.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind) or schema == {}:
        return True
    return any(_admits_null(branch, defs) for branch in schema.get("anyOf", []) + schema.get("oneOf", []))


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        resolved = defs.get(ref.removeprefix("#/$defs/"))
        if isinstance(resolved, dict):
            return resolved
    return schema


def drop_optional_nulls(value: Any, schema: dict[str, Any], defs: dict[str, Any] | None = None) -> Any:
    """``value`` without the ``null``s given for properties that are optional and not nullable in ``schema``.

    Example:
        >>> schema = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        ...           "required": ["a"]}
        >>> drop_optional_nulls({"a": 1, "b": None}, schema)
        {'a': 1}
    """
    defs = schema.get("$defs", {}) if defs is None else defs
    schema = _resolve(schema, defs)
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [drop_optional_nulls(item, schema["items"], defs) for item in value]
    if not isinstance(value, dict):
        return value
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        branches = [b for b in schema.get("anyOf", []) if _resolve(b, defs).get("type") == "object"]
        return drop_optional_nulls(value, branches[0], defs) if len(branches) == 1 else value
    required = set(schema.get("required", []))
    out = {}
    for key, item in value.items():
        spec = properties.get(key)
        if not isinstance(spec, dict):
            out[key] = item
        elif item is None and key not in required and not _admits_null(spec, defs):
            continue
        else:
            out[key] = drop_optional_nulls(item, spec, defs)
    return out
