"""The aiohttp backend's read timeout: counted once a request holds a connection, not while it waits for one."""

from __future__ import annotations

import asyncio
import time

import pytest

from llmkit import ChatMessage, OpenAILike
from llmkit.errors import APITimeoutError
from llmkit.transport.backends import aiohttp as aiohttp_backend
from tests.servers.fault import FaultServer

HI = [ChatMessage(role="user", content="hi")]


async def test_the_wait_for_a_pooled_connection_is_not_under_the_read_timeout(
    fault_server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aiohttp_backend, "MAX_CONNECTIONS", 1)  # one connection: the calls take turns
    llm = OpenAILike(model="slow-headers", api_base=fault_server.url, timeout=2.0, max_retries=0)  # 1.5 s each
    started = time.monotonic()
    answers = await asyncio.gather(*(llm.achat(HI) for _ in range(3)))
    assert [answer.content for answer in answers] == ["ok"] * 3
    assert time.monotonic() - started > 4.4  # they did wait for each other
    with pytest.raises(APITimeoutError):  # and the read timeout still holds once connected
        await llm.achat(HI, timeout=0.5)
    await llm.aclose()
