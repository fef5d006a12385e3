"""The gateway's configuration: which public model names it serves, with which llmkit LLM, router or cache; keys,
database and fleet settings. Read from YAML, TOML or JSON; ``${NAME}`` in a string is the environment variable.

Example ``gateway.yaml``::

    master_key: ${LLMKIT_MASTER_KEY}          # admin API and virtual keys; without it the gateway is open
    database_url: sqlite:///var/lib/llmkit/gateway.sqlite   # or postgresql://user:pass@host/db
    redis_url: redis://127.0.0.1:6379/0       # share limits and cooldowns across workers and machines
    prices: {vllm/house: {input: 0.2, output: 0.6}}   # USD per million tokens, before the genai-prices table
    models:
      local: {model: local}                   # any llmkit.create() spec, with its settings
      gpt: {model: openai/gpt-4o-mini, temperature: 0}
      fast:                                   # a router (the format of llmkit.router.load_config)
        router: {groups: {fast: [{model: openai-like/a, api_base: "http://10.0.0.5/v1"}]}}
      cached:
        model: openai/gpt-4o-mini
        cache: {store: sqlite, ttl: 3600}     # memory, sqlite (path) or redis (url)
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from llmkit.errors import ConfigurationError, configuration_error, missing_extra
from llmkit.llm import LLM

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ModelEntry(BaseModel):
    """One public model name: an llmkit ``model`` spec (plus its settings), or a ``router`` config; optionally
    behind a ``cache``."""

    model_config = ConfigDict(extra="allow")

    model: str | None = None
    router: dict[str, Any] | None = None
    cache: dict[str, Any] | None = None

    def build(self, name: str) -> LLM:
        """The LLM this entry describes."""
        if (self.model is None) == (self.router is None):
            raise ConfigurationError(f"gateway config: model {name!r} needs exactly one of 'model' or 'router'")
        llm: LLM
        if self.router is not None:
            from llmkit.router import load_config

            router_config = dict(self.router)
            router_config.setdefault("default_group", next(iter(router_config.get("groups") or {name: None})))
            llm = load_config(router_config)
        else:
            from llmkit.registry import create

            llm = create(str(self.model), **(self.model_extra or {}))
        return _cached(llm, self.cache, name) if self.cache else llm


def _cached(llm: LLM, settings: dict[str, Any], name: str) -> LLM:
    options = dict(settings)
    store = options.pop("store", "sqlite")
    cache: Any
    if store == "memory":
        from llmkit.cache import MemoryCache

        cache = MemoryCache(**{k: options.pop(k) for k in ("max_entries", "max_bytes") if k in options})
    elif store == "sqlite":
        from llmkit.cache import SQLiteCache

        cache = SQLiteCache(options.pop("path", None))
    elif store == "redis":
        from llmkit.cache.redis import RedisCache

        if "url" not in options:
            raise ConfigurationError(f"gateway config: model {name!r}: a redis cache needs 'url'")
        cache = RedisCache(options.pop("url"))
    else:
        raise ConfigurationError(f"gateway config: model {name!r}: cache store must be memory, sqlite or redis")
    return llm.with_cache(cache, **options)


class GatewayConfig(BaseModel):
    """Settings of ``llmkit serve`` (see the module docstring for the file format)."""

    model_config = ConfigDict(extra="forbid")

    models: dict[str, ModelEntry] = Field(default_factory=lambda: {"local": ModelEntry(model="local")})
    master_key: SecretStr | None = None
    database_url: str | None = None
    redis_url: str | None = None
    max_request_bytes: int = Field(default=8 * 2**20, gt=0)
    key_cache_seconds: float = Field(default=2.0, ge=0)
    default_max_tokens_estimate: int = Field(default=1024, gt=0)
    rate_window_seconds: float = Field(default=60.0, gt=0)  # the window of a key's rpm/tpm (tests shorten it)
    prices: dict[str, Any] | str | None = None  # price overrides: {"[provider/]model": {"input": .., "output": ..}}


def _expand(value: Any) -> Any:
    if isinstance(value, str):
        def variable(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                raise ConfigurationError(f"gateway config: environment variable {name} is not set")
            return os.environ[name]

        return _ENV.sub(variable, value)
    if isinstance(value, dict):
        return {k: _expand(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v) for v in value]
    return value


def _yaml(text: str, path: Path) -> Any:
    try:
        import yaml
    except ImportError as exc:
        raise missing_extra("pyyaml", "server") from exc
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"gateway config {path} is not valid YAML: {exc}") from exc


def load_gateway_config(source: str | Path | Mapping[str, Any] | None) -> GatewayConfig:
    """The configuration from a file (``.yaml``/``.yml``, ``.toml``, ``.json``), a mapping, or None (the defaults:
    the embedded model as ``local``, open, no database)."""
    if source is None:
        return GatewayConfig()
    raw: Any
    if isinstance(source, Mapping):
        raw = dict(source)
    else:
        path = Path(source)
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigurationError(f"gateway config {path} cannot be read: {exc}") from exc
        if path.suffix in (".yaml", ".yml"):
            raw = _yaml(text, path)
        else:
            try:
                raw = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
            except ValueError as exc:  # json.JSONDecodeError and tomllib.TOMLDecodeError
                raise ConfigurationError(f"gateway config {path} does not parse: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigurationError("gateway config: the top level must be a mapping")
    try:
        return GatewayConfig.model_validate(_expand(raw))
    except ValidationError as exc:
        raise configuration_error(GatewayConfig, exc) from None
