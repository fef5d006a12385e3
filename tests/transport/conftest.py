"""The HTTP backend under test: transport tests that take ``http_backend`` run once on llmkit's default backends
(urllib3 for blocking calls, aiohttp for async ones) and once on httpx (the plug point)."""

from __future__ import annotations

import pytest

from llmkit.transport.backends import ENV


@pytest.fixture(params=["default", "httpx"])
def http_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "httpx":
        monkeypatch.setenv(ENV, "httpx")
    else:
        monkeypatch.delenv(ENV, raising=False)
    name: str = request.param
    return name
