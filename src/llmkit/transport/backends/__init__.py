"""HTTP backends: urllib3 (sync) and aiohttp (async) by default, httpx as the plug point.

Each backend module imports its library at the top and is itself imported only when a transport first sends, so
``import llmkit`` stays light.
"""

from __future__ import annotations

import os
from typing import Any

from llmkit.transport.backends.base import AsyncBackend, Settings, SyncBackend

#: ``LLMKIT_HTTP_BACKEND=httpx`` sends everything through httpx (the default: urllib3 sync, aiohttp async).
ENV = "LLMKIT_HTTP_BACKEND"


def wants_httpx(choice: str | None) -> bool:
    """Whether ``choice`` (or else ``$LLMKIT_HTTP_BACKEND``) asks for httpx everywhere."""
    return (choice or os.environ.get(ENV) or "").strip().lower() == "httpx"


def sync_backend(
    settings: Settings, *, httpx_only: bool = False, client: Any = None, transport: Any = None
) -> SyncBackend:
    """urllib3, or httpx when asked, when the user's client or transport is httpx's, or when urllib3 is missing."""
    if not (httpx_only or client is not None or transport is not None):
        try:
            from llmkit.transport.backends import urllib3
        except ImportError:  # llmkit installed without its dependencies: httpx does it all, slower
            pass
        else:
            return urllib3.make(settings)
    from llmkit.transport.backends.httpx import HttpxBackend

    return HttpxBackend(settings, client, transport)


def async_backend(
    settings: Settings, *, httpx_only: bool = False, client: Any = None, transport: Any = None
) -> AsyncBackend:
    """aiohttp, or httpx when asked, when the user's client or transport is httpx's, or when aiohttp is missing."""
    if not (httpx_only or client is not None or transport is not None):
        try:
            from llmkit.transport.backends import aiohttp
        except ImportError:
            pass
        else:
            return aiohttp.make(settings)
    from llmkit.transport.backends.httpx import HttpxAsyncBackend

    return HttpxAsyncBackend(settings, client, transport)


__all__ = ["ENV", "AsyncBackend", "Settings", "SyncBackend", "async_backend", "sync_backend", "wants_httpx"]
