"""``create(spec)``: build any provider's LLM from a string such as ``"local"`` or ``"openai-like/MODEL"``.

Providers are registered by prefix with the dotted path of a factory, so nothing is imported until it is used.
Your own providers register the same way: in code with :func:`register_provider`, or from an installed package that
declares an entry point in the ``llmkit.providers`` group (found by ``create()``, the CLI and ``llmkit models``)::

    [project.entry-points."llmkit.providers"]
    myservice = "my_package.llm:from_spec"   # from_spec(rest_of_spec, **kwargs) -> LLM

Example:
    >>> import llmkit
    >>> llm = llmkit.create("mock")
    >>> llm.complete("hi").text
    'hi'
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from llmkit.errors import ConfigurationError
from llmkit.llm import LLM

Factory = Callable[..., LLM]

# prefix -> "module:function"; the function takes (rest_of_spec, **kwargs).
_REGISTRY: dict[str, str | Factory] = {
    "local": "llmkit.providers.llamacpp:from_spec",
    "llamacpp": "llmkit.providers.llamacpp:from_spec",
    "openai": "llmkit.providers.openai:openai_from_spec",
    "openai-like": "llmkit.providers.openai:openai_like_from_spec",
    "aixplain": "llmkit.providers.aixplain:from_spec",
    "gradient": "llmkit.providers.gradient:base_model_from_spec",
    "gradient-adapter": "llmkit.providers.gradient:adapter_from_spec",
    "litellm": "llmkit.providers.litellm:from_spec",
    "mock": "llmkit.registry:_mock_from_spec",  # the scripted test model (responses=[...]), as before MockLLM
    "scripted": "llmkit.registry:_mock_from_spec",
}


def _mock_from_spec(rest: str, **kwargs: Any) -> LLM:
    from llmkit.providers.mock import ScriptedLLM

    return ScriptedLLM(**kwargs)


ENTRY_POINT_GROUP = "llmkit.providers"
_plugins_loaded = False


def register_provider(prefix: str, factory: Factory | str) -> None:
    """Register a provider: ``factory(rest_of_spec, **kwargs)`` builds the LLM (or a ``"module:function"`` path)."""
    _REGISTRY[prefix] = factory


def _load_plugins() -> None:
    """Register the providers installed packages declare as entry points (once; built-in prefixes win)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    from importlib.metadata import entry_points

    for entry in entry_points(group=ENTRY_POINT_GROUP):
        _REGISTRY.setdefault(entry.name, entry.value)


def known_providers() -> list[str]:
    """The registered prefixes, entry-point plugins included."""
    _load_plugins()
    return sorted(_REGISTRY)


def _resolve(target: str | Factory) -> Factory:
    if callable(target):
        return target
    module_name, _, attr = target.partition(":")
    factory: Factory = getattr(importlib.import_module(module_name), attr)
    return factory


def create(spec: str, **kwargs: Any) -> LLM:
    """Build an LLM from a spec ``PREFIX[/MODEL]``; keyword arguments go to the provider's constructor.

    Examples: ``create("local")``, ``create("openai-like/qwen", api_base="http://127.0.0.1:8000/v1")``,
    ``create("openai/gpt-4o-mini")``, ``create("mock")``.
    """
    prefix, _, rest = spec.partition("/")
    target = _REGISTRY.get(prefix)
    if target is None:
        _load_plugins()
        target = _REGISTRY.get(prefix)
    if target is None:
        raise ConfigurationError(
            f"Unknown model spec {spec!r}: no provider is registered for {prefix!r}. "
            f"Known providers: {', '.join(known_providers())}"
        )
    return _resolve(target)(rest, **kwargs)
