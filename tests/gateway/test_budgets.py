"""Budgets hold under concurrency (reserve the most a call can cost, settle what it did), streams included; the
records live in SQLite or in a real PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from llmkit.gateway.store import GatewayStore
from tests.gateway.conftest import MASTER, admin, serving

openai = pytest.importorskip("openai", reason="the OpenAI SDK is the client under test (pip install openai)")
pytest.importorskip("genai_prices", reason="prices need the 'cost' extra: pip install 'llmkit[cost]'")

# gpt-4o from the usage server: 1,000 uncached input at $2.50, 200 cached at $1.25, 300 output at $10 per million.
COST_PER_CALL = 0.00575
PROMPT = "Tell me about Paris. " * 70  # ~1,500 bytes: the upper bound counts at least the 1,200 tokens billed


def priced(usage_server: Any) -> dict[str, Any]:
    return {"gpt": {"model": "openai/gpt-4o", "api_base": usage_server.url, "api_key": "sk-upstream"}}


async def _stream(sdk: Any) -> str:
    stream = await sdk.chat.completions.create(
        model="gpt", messages=[{"role": "user", "content": PROMPT}], stream=True, max_tokens=300,
        stream_options={"include_usage": True},
    )  # fmt: skip
    return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])


async def _fifty(base: str, secret: str) -> list[Any]:
    sdk = openai.AsyncOpenAI(base_url=base + "/v1", api_key=secret, max_retries=0)
    try:
        return await asyncio.gather(*(_stream(sdk) for _ in range(50)), return_exceptions=True)
    finally:
        await sdk.close()


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_a_budget_is_not_exceeded_by_50_concurrent_streams(
    database: str, usage_server: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("postgres_url") if database == "postgres" else f"sqlite:///{tmp_path}/gw.sqlite"
    config = {"models": priced(usage_server), "master_key": MASTER, "database_url": url}
    with serving(config) as base:
        budget = 8 * COST_PER_CALL + 0.001
        created = admin(base, "POST", "/admin/keys", json={"name": "budgeted", "budget_usd": budget}).json()
        results = asyncio.run(_fifty(base, created["key"]))
        answers = [r for r in results if isinstance(r, str)]
        refused = [r for r in results if isinstance(r, openai.RateLimitError)]
        assert len(answers) + len(refused) == 50, [r for r in results if not isinstance(r, str | openai.RateLimitError)]
        assert all(a.startswith("Paris") for a in answers)
        assert all(r.body["code"] == "insufficient_quota" for r in refused)
        key = admin(base, "GET", f"/admin/keys/{created['id']}").json()
        assert key["reserved_usd"] == 0  # every reservation was settled
        assert key["spent_usd"] == pytest.approx(len(answers) * COST_PER_CALL)
        assert key["spent_usd"] <= budget
        assert 1 <= len(answers) <= 8
        # Spent to the end: later calls are refused before anything is sent upstream.
        sent = len(usage_server.requests)
        assert isinstance(asyncio.run(_fifty(base, created["key"]))[0], openai.RateLimitError) or len(answers) < 8
        if len(answers) == 8:
            assert len(usage_server.requests) == sent


def test_a_model_without_a_price_is_refused_to_a_budgeted_key(usage_server: Any, tmp_path: Path) -> None:
    models = {"house": {"model": "openai-like/house", "api_base": usage_server.url}}
    config = {"models": models, "master_key": MASTER, "database_url": f"sqlite:///{tmp_path}/gw.sqlite"}
    with serving(config) as base:
        secret = admin(base, "POST", "/admin/keys", json={"name": "b", "budget_usd": 1}).json()["key"]
        sdk = openai.OpenAI(base_url=base + "/v1", api_key=secret, max_retries=0)
        with pytest.raises(openai.PermissionDeniedError, match="no known price"):
            sdk.chat.completions.create(model="house", messages=[{"role": "user", "content": "hi"}])
    priced_config = {**config, "prices": {"house": {"input": 1.0, "output": 2.0}}}
    with serving(priced_config) as base:
        secret = admin(base, "POST", "/admin/keys", json={"name": "b", "budget_usd": 1}).json()["key"]
        sdk = openai.OpenAI(base_url=base + "/v1", api_key=secret, max_retries=0)
        assert sdk.chat.completions.create(model="house", messages=[{"role": "user", "content": "hi"}]).choices


def test_store_reservations_are_atomic_in_postgres(postgres_url: str) -> None:
    store = GatewayStore(postgres_url)
    key, secret = store.create_key("pg", budget_usd=1.0)
    assert store.lookup(secret) == store.get_key(key.id)
    assert [store.reserve(key.id, 0.3) for _ in range(4)] == [True, True, True, False]
    store.settle(key.id, 0.3, 0.1)
    assert store.reserve(key.id, 0.3)
    assert store.get_key(key.id).spent_usd == pytest.approx(0.1)  # type: ignore[union-attr]
    store.close()


def test_an_answer_without_reported_usage_is_charged_its_reservation(tmp_path: Path) -> None:
    from tests.servers.deployment import DeploymentServer

    upstream = DeploymentServer("quiet", "healthy")  # its streams report no usage
    models = {"quiet": {"model": "openai-like/m", "api_base": upstream.url}}
    config = {
        "models": models,
        "master_key": MASTER,
        "database_url": f"sqlite:///{tmp_path}/gw.sqlite",
        "prices": {"m": {"input": 1.0, "output": 2.0}},
    }
    try:
        with serving(config) as base:
            created = admin(base, "POST", "/admin/keys", json={"name": "q", "budget_usd": 1.0}).json()
            sdk = openai.OpenAI(base_url=base + "/v1", api_key=created["key"], max_retries=0)
            stream = sdk.chat.completions.create(
                model="quiet", messages=[{"role": "user", "content": "hi"}], stream=True, max_tokens=100
            )
            assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "quiet says hello"
            key = admin(base, "GET", f"/admin/keys/{created['id']}").json()
            assert key["reserved_usd"] == 0
            assert key["spent_usd"] > 0  # the upper bound it reserved, never free
    finally:
        upstream.stop()
