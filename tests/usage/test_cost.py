"""Prices: hand-computed from the published per-million rates, checked against calls to a loopback server that
reports usage as OpenAI does (streamed and not); overrides; local models; unknown models; the CostTracker."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from llmkit import CallbackManager, ChatMessage, OpenAI, OpenAILike, ScriptedLLM
from llmkit.types import Usage
from llmkit.usage import (
    CostTracker,
    attribution,
    clear_prices,
    cost_of,
    load_prices,
    price,
    server_provider,
    set_price,
)
from tests.servers.usage import DEFAULT_USAGE, UsageServer

pytest.importorskip("genai_prices", reason="prices need the 'cost' extra: pip install 'llmkit[cost]'")

MESSAGES = [ChatMessage(role="user", content="Capital of France?")]
M = Decimal(1_000_000)

# USD per million tokens (input, cached input, output), as OpenAI publishes them.
RATES = {
    "gpt-4o": (Decimal("2.5"), Decimal("1.25"), Decimal("10")),
    "gpt-4o-mini": (Decimal("0.15"), Decimal("0.075"), Decimal("0.6")),
    "o3-mini": (Decimal("1.1"), Decimal("0.55"), Decimal("4.4")),
}
USAGE = {
    "gpt-4o": {"prompt_tokens": 1200, "completion_tokens": 300, "cached_tokens": 200},
    "gpt-4o-mini": {"prompt_tokens": 5000, "completion_tokens": 40, "cached_tokens": 4096},
    "o3-mini": {"prompt_tokens": 1000, "completion_tokens": 500, "cached_tokens": 0, "reasoning_tokens": 400},
}


def by_hand(model: str) -> Decimal:
    rate_in, rate_cached, rate_out = RATES[model]
    counts = USAGE[model]
    uncached = counts["prompt_tokens"] - counts["cached_tokens"]
    return (uncached * rate_in + counts["cached_tokens"] * rate_cached + counts["completion_tokens"] * rate_out) / M


@pytest.fixture
def server(usage_server: UsageServer) -> Iterator[UsageServer]:
    usage_server.usage.update(USAGE)
    yield usage_server
    usage_server.usage.clear()


@pytest.fixture(autouse=True)
def _no_overrides() -> None:
    clear_prices()


@pytest.mark.parametrize("model", sorted(RATES))
def test_a_call_costs_what_the_rates_say(server: UsageServer, model: str) -> None:
    llm = OpenAI(model=model, api_base=server.url, api_key="sk-test")
    response = llm.chat(MESSAGES)
    usage = response.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (
        USAGE[model]["prompt_tokens"],
        USAGE[model]["completion_tokens"],
    )
    assert usage.cache_read_tokens == USAGE[model]["cached_tokens"]
    assert usage.reasoning_tokens == USAGE[model].get("reasoning_tokens", 0)
    assert (usage.provider, usage.model) == ("openai", model)
    assert response.cost.amount == by_hand(model)
    assert response.cost.currency == "USD"


@pytest.mark.parametrize("model", sorted(RATES))
def test_a_stream_costs_the_same_and_its_usage_is_on_the_last_chunk(server: UsageServer, model: str) -> None:
    llm = OpenAI(model=model, api_base=server.url, api_key="sk-test")
    chunks = list(llm.stream_chat(MESSAGES))
    assert server.requests[-1].json()["stream_options"] == {"include_usage": True}
    assert all(chunk.usage is None for chunk in chunks[:-1])
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.cache_read_tokens == USAGE[model]["cached_tokens"]
    assert chunks[-1].cost.amount == by_hand(model)


async def test_async_calls_cost_the_same(server: UsageServer) -> None:
    llm = OpenAI(model="gpt-4o", api_base=server.url, api_key="sk-test")
    assert (await llm.achat(MESSAGES)).cost.amount == by_hand("gpt-4o")
    chunks = [chunk async for chunk in await llm.astream_chat(MESSAGES)]
    assert chunks[-1].cost.amount == by_hand("gpt-4o")


def test_cache_writes_and_reads_are_priced_at_their_rates() -> None:
    # Claude 3.5 Sonnet: $3 input, $0.30 cache read, $3.75 cache write, $15 output per million.
    usage = Usage(prompt_tokens=1000, cache_read_tokens=400, cache_write_tokens=100, completion_tokens=100)
    cost = price(usage, "anthropic", "claude-3-5-sonnet-latest")
    assert cost is not None
    assert cost.amount == (500 * Decimal(3) + 400 * Decimal("0.3") + 100 * Decimal("3.75") + 100 * Decimal(15)) / M
    assert cost.input == (500 * Decimal(3) + 400 * Decimal("0.3") + 100 * Decimal("3.75")) / M


def test_tiered_prices_use_the_tier_of_the_prompt() -> None:
    import genai_prices

    small = Usage(prompt_tokens=1000, completion_tokens=100)
    large = Usage(prompt_tokens=300_000, completion_tokens=100)
    for usage in (small, large):
        cost = price(usage, "google", "gemini-2.5-pro")
        exact = genai_prices.calc_price(
            genai_prices.Usage(input_tokens=usage.prompt_tokens, output_tokens=usage.completion_tokens),
            "gemini-2.5-pro",
            provider_id="google",
        )
        assert cost is not None
        assert cost.amount == exact.total_price
    cheap, dear = price(small, "google", "gemini-2.5-pro"), price(large, "google", "gemini-2.5-pro")
    assert cheap is not None
    assert dear is not None
    assert dear.amount / 300 > cheap.amount  # above 200k tokens every token costs more


def test_an_unknown_model_is_unknown_never_zero(server: UsageServer) -> None:
    llm = OpenAI(model="no-such-model-xyz", api_base=server.url, api_key="sk-test")
    cost = llm.chat(MESSAGES).cost
    assert not cost.known
    assert cost.amount is None
    assert "no-such-model-xyz" in str(cost)
    assert "set_price" in str(cost)
    generic = OpenAILike(model="gpt-4o", api_base=server.url).chat(MESSAGES).cost
    assert generic.amount is None
    assert "openai_compatible" in generic.reason
    assert cost_of(None).reason == "the service reported no usage"


def test_local_models_cost_zero(server: UsageServer) -> None:
    assert ScriptedLLM().chat(MESSAGES).cost.amount == 0
    local_server = OpenAILike(model="smollm2", api_base=server.url, server="llama.cpp")
    assert local_server.chat(MESSAGES).cost.amount == 0


def test_overrides_come_first(server: UsageServer, tmp_path: Path) -> None:
    set_price("house-model", input=1, output=2, cache_read=0.5)
    llm = OpenAILike(model="house-model", api_base=server.url)
    assert llm.chat(MESSAGES).cost.amount == (1000 * 1 + 200 * Decimal("0.5") + 300 * 2) / M
    config = tmp_path / "prices.toml"
    config.write_text('[prices."openai/gpt-4o"]\ninput = 10\noutput = 20\n')
    load_prices(config)
    cost = OpenAI(model="gpt-4o", api_base=server.url, api_key="sk-test").chat(MESSAGES).cost
    assert cost.amount == (1200 * 10 + 300 * 20) / M  # no cache rate: cached tokens cost as input


def test_aixplain_credits_stay_credits() -> None:
    cost = cost_of(Usage(credits=0.25, provider="aixplain", model="gpt-4o"))
    assert (cost.amount, cost.currency, str(cost)) == (Decimal("0.25"), "credits", "0.25 credits")


def test_the_tracker_totals_by_model_key_and_tag(server: UsageServer) -> None:
    tracker = CostTracker()
    manager = CallbackManager([tracker])
    big = OpenAI(model="gpt-4o", api_base=server.url, api_key="sk-test", callback_manager=manager)
    small = OpenAI(model="gpt-4o-mini", api_base=server.url, api_key="sk-test", callback_manager=manager)
    unknown = OpenAILike(model="mystery", api_base=server.url, callback_manager=manager)
    with attribution(key="team-a", tags=["batch"]):
        big.chat(MESSAGES)
        list(big.stream_chat(MESSAGES))
        with attribution(tags=["eval"]):
            small.chat(MESSAGES)
    small.chat(MESSAGES)
    unknown.chat(MESSAGES)
    assert tracker.calls == 5
    assert tracker.unknown_cost_calls == 1
    assert tracker.total_cost == 2 * by_hand("gpt-4o") + 2 * by_hand("gpt-4o-mini")
    assert tracker.by_model["gpt-4o"].cost == 2 * by_hand("gpt-4o")
    assert tracker.by_model["gpt-4o-mini"].calls == 2
    assert tracker.by_key["team-a"].cost == 2 * by_hand("gpt-4o") + by_hand("gpt-4o-mini")
    assert tracker.by_tag["eval"].cost == by_hand("gpt-4o-mini")
    assert tracker.by_tag["batch"].calls == 3
    assert tracker.usage.cache_read_tokens == 2 * 200 + 2 * 4096 + 200


def test_a_router_tracker_sees_its_deployments_calls(server: UsageServer) -> None:
    from llmkit.router import Router

    tracker = CostTracker()
    router = Router(
        groups={"g": [OpenAI(model="gpt-4o", api_base=server.url, api_key="sk-test")]},
        callback_manager=CallbackManager([tracker]),
    )
    router.chat(MESSAGES)
    assert tracker.total_cost == by_hand("gpt-4o")


def test_without_the_table_the_tracker_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import llmkit.usage.tracker as tracker_module

    monkeypatch.setattr(tracker_module, "genai_prices_available", lambda: False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        CostTracker()
    assert any("llmkit[cost]" in str(w.message) for w in caught)


# Hosted OpenAI-compatible services, USD per million tokens (input, output) as they publish them.
HOSTED = {
    "https://api.groq.com/openai/v1": ("llama-3.3-70b-versatile", Decimal("0.59"), Decimal("0.79"), "groq"),
    "https://api.together.xyz/v1": (
        "meta-llama/Llama-3.3-70B-Instruct-Turbo",
        Decimal("0.88"),
        Decimal("0.88"),
        "together",
    ),
}


@pytest.mark.parametrize("url", sorted(HOSTED))
def test_a_hosted_server_is_priced_by_its_url(url: str) -> None:
    model, rate_in, rate_out, provider_id = HOSTED[url]
    name = server_provider(url)
    assert name == url.split("/")[2]  # named by its host, in traces too
    cost = cost_of(Usage(prompt_tokens=12_345, completion_tokens=678, provider=name, model=model))
    assert cost.amount == (12_345 * rate_in + 678 * rate_out) / M
    assert (cost.provider, cost.currency) == (provider_id, "USD")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/v1",
        "http://localhost:11434/v1",
        "http://[::1]:8000/v1",
        "http://10.0.0.7:8000/v1",
        "http://192.168.1.20/v1",
        "http://172.16.4.2:9000/v1",
        "http://169.254.10.1/v1",
        "http://vllm:8000/v1",  # a container's name
        "http://gpu-box.local:8000/v1",
        "http://host.docker.internal:8000/v1",
    ],
)
def test_a_server_on_a_private_address_is_unknown_until_told(url: str) -> None:
    name = server_provider(url)
    assert name == "openai_compatible"
    usage = Usage(prompt_tokens=1000, completion_tokens=100, provider=name, model="llama-3.3-70b-versatile")
    cost = cost_of(usage)
    assert cost.amount is None  # never a guessed $0, although the model has a price on Groq
    assert "set_price" in cost.reason
    set_price("*", provider="openai_compatible", input=0, output=0)
    assert cost_of(usage).amount == 0
    set_price("llama-3.3-70b-versatile", provider="openai_compatible", input=1, output=2)
    assert cost_of(usage).amount == (1000 * 1 + 100 * 2) / M  # a model's own price before the provider's "*"


def test_an_unknown_hosted_server_is_unknown_and_named() -> None:
    name = server_provider("https://llm.example.com:8443/v1")
    assert name == "llm.example.com"
    cost = cost_of(Usage(prompt_tokens=10, completion_tokens=5, provider=name, model="gpt-4o"))
    assert cost.amount is None
    assert "llm.example.com" in cost.reason
    set_price("gpt-4o", provider="llm.example.com", input=3, output=6)
    assert (
        cost_of(Usage(prompt_tokens=10, completion_tokens=5, provider=name, model="gpt-4o")).amount
        == (10 * 3 + 5 * 6) / M
    )
    groq = cost_of(Usage(prompt_tokens=10, completion_tokens=5, provider="api.groq.com", model="no-such-model"))
    assert groq.amount is None
    assert "api.groq.com/no-such-model" in groq.reason


class _Forward(httpx.BaseTransport):
    """Sends every request to the loopback server, whatever host it names (the hosted service's URL stays the
    LLM's)."""

    def __init__(self, base: str) -> None:
        self.base, self.inner = httpx.URL(base), httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(scheme=self.base.scheme, host=self.base.host, port=self.base.port)
        return self.inner.handle_request(request)


def test_a_call_to_a_hosted_server_costs_its_rates(server: UsageServer) -> None:
    model, rate_in, rate_out, _ = HOSTED["https://api.groq.com/openai/v1"]
    llm = OpenAILike(model=model, api_base="https://api.groq.com/openai/v1")
    llm.with_http_clients(transport=_Forward(server.url))
    usage = DEFAULT_USAGE
    cost = llm.chat(MESSAGES).cost
    assert cost.amount == (usage["prompt_tokens"] * rate_in + usage["completion_tokens"] * rate_out) / M
