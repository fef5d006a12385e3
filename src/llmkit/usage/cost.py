"""What a call cost: a token usage priced from the maintained ``genai-prices`` table (extra ``cost``).

:func:`price` is the one pricing function (the gateway uses it too): ``price(usage, provider, model)`` is a
:class:`Cost` or None when nothing prices that model. ``response.cost`` is :func:`cost_of` its usage, which always
answers: a price, zero for a local model, credits for a credit-billed service, or *unknown* with the reason — never
a made-up 0.

Prices come from, in order: overrides (:func:`set_price`, :func:`load_prices`; model ``"*"`` prices every model of a
provider), then ``genai-prices`` (prices dated by the request time, cache read and write rates, tiers). Input counts
include cached tokens, as OpenAI reports them.

A generic OpenAI-compatible server is named by its URL (:func:`server_provider`): a hosted service by its host
(``api.groq.com``, ``api.together.xyz``...), which ``genai-prices`` recognises by its providers' URL patterns, so
its calls are priced at that service's rates; a server on this machine or a private network (loopback, private and
link-local addresses, ``localhost``, single-label, ``.local`` and ``.internal`` names) is ``openai_compatible``, and
nothing prices it: its calls stay *unknown* — never a guessed $0 — until told, e.g.
``set_price("*", provider="openai_compatible", input=0, output=0)`` for a free box (or the ``llama.cpp``/``ollama``
server profiles, which are local and cost zero).

Example:
    >>> from llmkit.types import Usage
    >>> set_price("my-finetune", input=1.0, output=2.0)  # USD per million tokens
    >>> price(Usage(prompt_tokens=1000, completion_tokens=500), "openai_compatible", "my-finetune").amount
    Decimal('0.002')
    >>> str(cost_of(Usage(prompt_tokens=10, completion_tokens=5, provider="llama.cpp", model="smollm2")))
    '$0 (local model)'
    >>> cost_of(Usage(prompt_tokens=10, completion_tokens=5, provider="gradient", model="x")).known
    False
    >>> server_provider("https://api.groq.com/openai/v1"), server_provider("http://127.0.0.1:8080/v1")
    ('api.groq.com', 'openai_compatible')
"""

from __future__ import annotations

import functools
import ipaddress
import json
import threading
import time
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeGuard
from urllib.parse import urlsplit

from llmkit.errors import ConfigurationError
from llmkit.types import Usage

#: Providers that run on the user's machine: their calls cost nothing.
LOCAL_PROVIDERS = frozenset({"llama.cpp", "ollama", "mock", "function"})
#: The provider a response-cache hit's usage names: the answer was stored, so it cost nothing this time.
CACHE_PROVIDER = "cache"

#: llmkit's (and LiteLLM's) provider names -> genai-prices provider ids, where they differ or are known to exist.
PROVIDER_IDS = {
    "openai": "openai",
    "azure": "azure",
    "anthropic": "anthropic",
    "gemini": "google",
    "google": "google",
    "vertex_ai": "google",
    "mistral": "mistral",
    "groq": "groq",
    "deepseek": "deepseek",
    "xai": "x-ai",
    "x-ai": "x-ai",
    "together_ai": "together",
    "together": "together",
    "fireworks_ai": "fireworks",
    "cohere": "cohere",
    "bedrock": "aws",
    "openrouter": "openrouter",
    "perplexity": "perplexity",
    "cerebras": "cerebras",
}

#: Providers whose calls may go anywhere (LiteLLM without a prefix): the table finds the provider from the model.
GUESSED_PROVIDERS = frozenset({"litellm"})
#: A generic OpenAI-compatible server on this machine or a private network: priced only when told.
GENERIC_PROVIDER = "openai_compatible"
#: Suffixes of names that only resolve on a private network.
_PRIVATE_SUFFIXES = (".localhost", ".local", ".internal", ".lan", ".localdomain", ".home.arpa")


@functools.lru_cache(maxsize=256)
def server_provider(api_base: str) -> str:
    """Who a generic OpenAI-compatible server at ``api_base`` is, for pricing and traces: a hosted service's host
    (``api.groq.com``; :func:`price` finds its rates through ``genai-prices``' provider URL patterns), or
    ``openai_compatible`` for a server on this machine or a private network, which is never priced unless told
    (:func:`set_price`). Cached per URL, and it imports nothing: the price table is read only when a call is priced.

    Example:
        >>> server_provider("https://api.together.xyz/v1"), server_provider("http://localhost:8000/v1")
        ('api.together.xyz', 'openai_compatible')
    """
    try:
        host = urlsplit(api_base if "//" in api_base else f"//{api_base}").hostname
    except ValueError:
        return GENERIC_PROVIDER
    if not host or "." not in host or host == "localhost" or host.endswith(_PRIVATE_SUFFIXES):
        return GENERIC_PROVIDER
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host  # a public name
    if address.is_global:
        return host
    return GENERIC_PROVIDER  # loopback, private, link-local, reserved: the user's own server


_MILLION = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class Cost:
    """A call's cost. ``amount`` is None when unknown (``reason`` says why), else in ``currency`` (``"USD"``, or
    ``"credits"`` for aiXplain). ``input``/``output`` split a USD amount where the price table does."""

    amount: Decimal | None
    currency: str = "USD"
    input: Decimal | None = None
    output: Decimal | None = None
    provider: str | None = None
    model: str | None = None
    reason: str = ""

    @property
    def known(self) -> bool:
        """Whether the amount is known."""
        return self.amount is not None

    def __str__(self) -> str:
        if self.amount is None:
            return f"unknown ({self.reason})" if self.reason else "unknown"
        text = format_amount(self.amount, self.currency)
        return f"{text} ({self.reason})" if self.reason else text


def format_amount(amount: Decimal, currency: str = "USD") -> str:
    """``$0.00575`` for USD, ``0.25 credits`` otherwise: exact, without trailing zeros or an exponent."""
    text = f"{amount.normalize():f}" if amount else "0"
    return f"${text}" if currency == "USD" else f"{text} {currency}"


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per million tokens (the override format). A missing cache rate charges those tokens as input."""

    input: Decimal
    output: Decimal
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None

    def cost(self, usage: Usage) -> tuple[Decimal, Decimal]:
        read, write = usage.cache_read_tokens or 0, usage.cache_write_tokens or 0
        uncached = max((usage.prompt_tokens or 0) - read - write, 0)
        cache_read = self.input if self.cache_read is None else self.cache_read
        cache_write = self.input if self.cache_write is None else self.cache_write
        spent_in = uncached * self.input + read * cache_read + write * cache_write
        return spent_in / _MILLION, (usage.completion_tokens or 0) * self.output / _MILLION


_overrides: dict[tuple[str | None, str], Rates] = {}
_lock = threading.Lock()


def _decimal(value: Any, what: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        number = Decimal("NaN")
    if not number.is_finite() or number < 0:
        raise ConfigurationError(f"price override: {what} must be a non-negative number of USD per million tokens")
    return number


def set_price(
    model: str,
    *,
    input: float | str,
    output: float | str,
    cache_read: float | str | None = None,
    cache_write: float | str | None = None,
    provider: str | None = None,
) -> None:
    """Price ``model`` (of ``provider``, or of any provider) at these USD per million tokens, before the table.
    Model ``"*"`` with a provider prices every model of that provider (a model's own price comes first).

    Example:
        >>> set_price("house-model", input=0.5, output=1.5, provider="vllm")
        >>> set_price("*", input=0, output=0, provider="openai_compatible")  # my own servers cost nothing
        >>> clear_prices()
    """
    rates = Rates(
        _decimal(input, "input"),
        _decimal(output, "output"),
        None if cache_read is None else _decimal(cache_read, "cache_read"),
        None if cache_write is None else _decimal(cache_write, "cache_write"),
    )
    with _lock:
        _overrides[(provider, model)] = rates


def load_prices(source: str | Path | Mapping[str, Any]) -> None:
    """Overrides from config: a TOML/JSON file or a mapping ``{"prices": {"[provider/]model": {"input": 1.0,
    "output": 2.0, "cache_read": 0.1, "cache_write": 1.25}}}`` (USD per million tokens; a bare table is accepted)."""
    if isinstance(source, str | Path):
        path = Path(source)
        try:
            text = path.read_text()
            config: Mapping[str, Any] = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"price overrides {path} cannot be read: {exc}") from exc
    else:
        config = source
    table = config.get("prices", config)
    if not isinstance(table, Mapping):
        raise ConfigurationError("price overrides: 'prices' must be a table of models")
    for name, entry in table.items():
        if not isinstance(entry, Mapping) or "input" not in entry or "output" not in entry:
            raise ConfigurationError(f"price override {name!r} needs 'input' and 'output' (USD per million tokens)")
        provider, _, model = str(name).rpartition("/") if "/" in str(name) else ("", "", str(name))
        set_price(
            model,
            provider=provider or None,
            input=entry["input"],
            output=entry["output"],
            cache_read=entry.get("cache_read"),
            cache_write=entry.get("cache_write"),
        )


def price_overrides() -> list[tuple[str | None, str, Rates]]:
    """The overrides in force, as ``(provider, model, rates)``: what another process (a Ray worker) needs to price
    calls as this one does (:func:`set_prices`).

    Example:
        >>> clear_prices()
        >>> set_price("house-model", input=0.5, output=1.5, provider="vllm")
        >>> price_overrides()
        [('vllm', 'house-model', Rates(input=Decimal('0.5'), output=Decimal('1.5'), cache_read=None, cache_write=None))]
        >>> clear_prices()
    """
    with _lock:
        return [(provider, model, rates) for (provider, model), rates in _overrides.items()]


def set_prices(overrides: Iterable[tuple[str | None, str, Rates]]) -> None:
    """Set overrides as :func:`price_overrides` lists them."""
    for provider, model, rates in overrides:
        set_price(
            model,
            provider=provider,
            input=str(rates.input),
            output=str(rates.output),
            cache_read=None if rates.cache_read is None else str(rates.cache_read),
            cache_write=None if rates.cache_write is None else str(rates.cache_write),
        )


def clear_prices() -> None:
    """Forget every override."""
    with _lock:
        _overrides.clear()


def _override(provider: str | None, model: str) -> Rates | None:
    return _overrides.get((provider, model)) or _overrides.get((None, model)) or _overrides.get((provider, "*"))


# ---------------------------------------------------------------------------------------------------------------------
# genai-prices: located once per (provider, model); a plain (untiered) price is affine in the token counts, so its
# coefficients are read once from genai-prices itself and a call costs a few multiplications, not a table walk.


class _Affine:
    __slots__ = ("base", "cache_read", "cache_write", "input", "output", "source")

    def __init__(self, calc: Any, source: Any) -> None:
        n = 1_000_000
        self.source = source  # kept alive: the cache is keyed by its id
        zero = calc(0, 0, 0, 0)
        self.base = zero[0] + zero[1]
        with_input = calc(n, 0, 0, 0)
        self.input = (with_input[0] - zero[0]) / n
        self.cache_read = (calc(n, n, 0, 0)[0] - with_input[0]) / n
        self.cache_write = (calc(n, 0, n, 0)[0] - with_input[0]) / n
        self.output = (calc(0, 0, 0, n)[1] - zero[1]) / n

    def cost(self, usage: Usage) -> tuple[Decimal, Decimal]:
        spent_in = (usage.prompt_tokens or 0) * self.input
        read, write = usage.cache_read_tokens, usage.cache_write_tokens
        if read:  # a zero term adds nothing: a Decimal operation saved
            spent_in += read * self.cache_read
        if write:
            spent_in += write * self.cache_write
        if self.base:
            spent_in += self.base
        return spent_in, (usage.completion_tokens or 0) * self.output


_models: dict[tuple[str | None, str], Any] = {}
_affine: dict[int, _Affine | None] = {}


_available: bool | None = None


def genai_prices_available() -> bool:
    """Whether the price table (package ``genai-prices``, extra ``cost``) is installed (imported on first ask)."""
    global _available
    if _available is None:
        try:
            import genai_prices  # noqa: F401
        except ImportError:
            _available = False
        else:
            _available = True
    return _available


def _table_price(usage: Usage, provider_id: str | None, model: str, when: datetime | None) -> Cost | None:
    key = (provider_id, model)
    if when is None:
        now = _now.get(key)
        if now is None or now.until <= time.monotonic():
            now = _price_now(key)
            if now is None:
                return None
        affine, prices, table_provider, table_model = now.affine, now.prices, now.provider, now.model
    else:
        found = _located(key)
        if found is None:
            return None
        provider_info, info = found
        prices = info.get_prices(when)
        affine, table_provider, table_model = _affine_of(prices), provider_info.id, info.id
    if affine is not None:
        spent_in, spent_out = affine.cost(usage)
    else:  # tiered: the exact calculation every time
        calc = prices.calc_price(_table_usage(usage))
        spent_in, spent_out = calc["input_price"], calc["output_price"]
    return _usd(spent_in + spent_out, spent_in, spent_out, table_provider, table_model)


def _located(key: tuple[str | None, str]) -> Any:
    """The table's (provider, model) for ``key``, or None (looked up once per key)."""
    found: Any = _models.get(key)
    if found is None:
        from genai_prices import data_snapshot

        try:
            found = data_snapshot.get_snapshot().find_provider_model(key[1], None, key[0], None)
        except LookupError:
            found = False
        _models[key] = found
    return found or None


def _affine_of(prices: Any) -> _Affine | None:
    if id(prices) in _affine:
        return _affine[id(prices)]
    affine = _affine[id(prices)] = _probe(prices)
    return affine


class _PriceNow:
    """A model's price now, resolved (dated prices change at most daily, so it is kept for a minute): a priced call
    then costs one lookup and a few multiplications."""

    __slots__ = ("affine", "model", "prices", "provider", "until")

    def __init__(self, provider: str, model: str, prices: Any, affine: _Affine | None, until: float) -> None:
        self.provider, self.model, self.prices, self.affine, self.until = provider, model, prices, affine, until


_now: dict[tuple[str | None, str], _PriceNow] = {}


def _price_now(key: tuple[str | None, str]) -> _PriceNow | None:
    found = _located(key)
    if found is None:
        return None
    provider_info, info = found
    prices = info.get_prices(datetime.now(tz=UTC))
    now = _now[key] = _PriceNow(provider_info.id, info.id, prices, _affine_of(prices), time.monotonic() + 60.0)
    return now


_new = object.__new__
_set_amount, _set_currency, _set_input, _set_output, _set_provider, _set_model, _set_reason = (
    getattr(Cost, name).__set__ for name in ("amount", "currency", "input", "output", "provider", "model", "reason")
)


def _usd(amount: Decimal, spent_in: Decimal, spent_out: Decimal, provider: str | None, model: str | None) -> Cost:
    """``Cost(amount, "USD", spent_in, spent_out, provider, model)``, made in half the time: a frozen dataclass's
    ``__init__`` sets each field through ``object.__setattr__``, which is most of a priced call's cost."""
    cost: Cost = _new(Cost)
    _set_amount(cost, amount)
    _set_currency(cost, "USD")
    _set_input(cost, spent_in)
    _set_output(cost, spent_out)
    _set_provider(cost, provider)
    _set_model(cost, model)
    _set_reason(cost, "")
    return cost


@functools.lru_cache(maxsize=256)
def _hosted_provider_id(host: str) -> str | None:
    """The ``genai-prices`` provider whose API URL pattern matches ``https://{host}``, or None (cached per host)."""
    from genai_prices import data_snapshot

    try:
        found: str = data_snapshot.get_snapshot().find_provider(None, None, f"https://{host}").id
    except LookupError:
        return None
    return found


def _table_usage(usage: Usage) -> Any:
    import genai_prices

    return genai_prices.Usage(
        input_tokens=usage.prompt_tokens or 0,
        cache_read_tokens=usage.cache_read_tokens or None,
        cache_write_tokens=usage.cache_write_tokens or None,
        output_tokens=usage.completion_tokens or 0,
    )


def _probe(prices: Any) -> _Affine | None:
    import genai_prices
    from genai_prices.types import TieredPrices

    if any(isinstance(value, TieredPrices) for value in vars(prices).values()):
        return None

    def calc(tokens_in: int, read: int, write: int, out: int) -> tuple[Decimal, Decimal]:
        counts = {"input_tokens": tokens_in, "cache_read_tokens": read, "cache_write_tokens": write}
        result = prices.calc_price(genai_prices.Usage(**{k: v for k, v in counts.items() if v}, output_tokens=out))
        return result["input_price"], result["output_price"]

    return _Affine(calc, prices)


def price(usage: Usage, provider: str | None, model: str | None, *, when: datetime | None = None) -> Cost | None:
    """The cost of ``usage`` on ``provider``'s ``model`` at ``when`` (default now), or None when nothing prices it.

    Local providers cost zero; aiXplain's credits stay credits; overrides come before the ``genai-prices`` table.
    A usage that does not say its input or output tokens cannot be priced (None)."""
    if provider in LOCAL_PROVIDERS:
        return Cost(Decimal(0), provider=provider, model=model, reason="local model")
    if provider == CACHE_PROVIDER:
        return Cost(Decimal(0), provider=provider, model=model, reason="answered from the cache")
    if provider == "aixplain" and usage.credits is not None:
        return Cost(Decimal(str(usage.credits)), "credits", provider=provider, model=model)
    if model is None or usage.prompt_tokens is None or usage.completion_tokens is None:
        return None
    rates = _override(provider, model) if _overrides else None  # a call saved in the usual case: none set
    if rates is not None:
        spent_in, spent_out = rates.cost(usage)
        return _usd(spent_in + spent_out, spent_in, spent_out, provider, model)
    provider_id = PROVIDER_IDS.get(provider or "")
    if (provider_id is None and provider not in GUESSED_PROVIDERS and not _is_host(provider)) or (
        not genai_prices_available()
    ):
        return None
    if provider_id is None and _is_host(provider):
        provider_id = _hosted_provider_id(provider)
        if provider_id is None:
            return None
    return _table_price(usage, provider_id, model, when)


def _is_host(provider: str | None) -> TypeGuard[str]:
    """Whether ``provider`` is a hosted server's host (:func:`server_provider`), not a provider's name."""
    return provider is not None and "." in provider and provider not in LOCAL_PROVIDERS


def cost_of(usage: Usage | None) -> Cost:
    """What a response's ``usage`` cost (by its ``provider`` and ``model``): known, or unknown with the reason."""
    if usage is None:
        return _NO_USAGE
    provider, model = usage.provider, usage.model
    priced = price(usage, provider, model)
    if priced is not None:
        return priced
    return _unknown(provider, model, usage.prompt_tokens is not None and usage.completion_tokens is not None)


_NO_USAGE = Cost(None, reason="the service reported no usage")


@functools.lru_cache(maxsize=256)
def _unknown(provider: str | None, model: str | None, counted: bool) -> Cost:
    """An unknown cost and why, kept per (provider, model): nothing it depends on changes while the process runs
    (an override makes the call priced, and then this is not asked), and the reason costs microseconds to build."""
    if provider not in LOCAL_PROVIDERS and provider not in (CACHE_PROVIDER, "aixplain"):
        if not counted:
            reason = "the service reported no token counts"
        elif model is None:
            reason = "the model is not known"
        elif provider == GENERIC_PROVIDER:
            reason = (
                f"no price for provider {provider!r} (a server on a local or private address): set one with "
                f"llmkit.usage.set_price(model, provider={provider!r}, ...), model '*' for all of its models"
            )
        elif provider not in PROVIDER_IDS and provider not in GUESSED_PROVIDERS and not _is_host(provider):
            reason = f"no price for provider {provider!r}: set one with llmkit.usage.set_price"
        elif not genai_prices_available():
            reason = "prices need the 'genai-prices' package: pip install 'llmkit[cost]'"
        elif _is_host(provider) and _hosted_provider_id(provider) is None:
            reason = (
                f"no price for server {provider!r} (no known service has that API URL): set one with "
                f"llmkit.usage.set_price(model, provider={provider!r}, ...)"
            )
        else:
            reason = f"no price for {provider}/{model}: set one with llmkit.usage.set_price"
    else:
        reason = "the service reported no credits"
    return Cost(None, provider=provider, model=model, reason=reason)


__all__ = [
    "GENERIC_PROVIDER",
    "LOCAL_PROVIDERS",
    "Cost",
    "clear_prices",
    "cost_of",
    "format_amount",
    "genai_prices_available",
    "load_prices",
    "price",
    "server_provider",
    "set_price",
]
