"""Fetching the media a message refers to by URL (audio or a document a service wants as bytes): through the
transport, so it gets timeouts, retries, typed errors and a size cap, and is truly async on the async path.

Example:
    >>> from llmkit.transport.media import MAX_MEDIA_BYTES
    >>> MAX_MEDIA_BYTES // 2**20
    20
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterable

from llmkit.errors import ResponseParseError
from llmkit.transport.client import HTTPTransport, Request

#: The largest media file fetched (bytes); beyond it the fetch fails instead of filling memory.
MAX_MEDIA_BYTES = 20 * 2**20

_lock = threading.Lock()
_transport: HTTPTransport | None = None


def media_transport() -> HTTPTransport:
    """The transport media fetches share (created on first use; it follows redirects, as a browser would)."""
    global _transport
    with _lock:
        if _transport is None:
            _transport = HTTPTransport(provider="media", timeout=30.0, max_retries=2, follow_redirects=True)
        return _transport


def _too_large(url: str, max_bytes: int) -> ResponseParseError:
    message = f"media at {url} is larger than {max_bytes} bytes; read it yourself and pass the bytes"
    return ResponseParseError(message, provider="media")


def _collect(chunks: Iterable[bytes], url: str, max_bytes: int) -> bytes:
    data = bytearray()
    for chunk in chunks:
        data += chunk
        if len(data) > max_bytes:
            raise _too_large(url, max_bytes)
    return bytes(data)


async def _acollect(chunks: AsyncIterator[bytes], url: str, max_bytes: int) -> bytes:
    data = bytearray()
    async for chunk in chunks:
        data += chunk
        if len(data) > max_bytes:
            raise _too_large(url, max_bytes)
    return bytes(data)


def fetch(url: str, *, timeout: float = 30.0, max_bytes: int = MAX_MEDIA_BYTES) -> bytes:
    """The bytes at ``url`` (typed llmkit errors on failure; at most ``max_bytes``)."""
    response = media_transport().send(Request("GET", url), stream=True, timeout=timeout)
    try:
        return _collect(response.iter_bytes(), url, max_bytes)
    finally:
        response.close()


async def afetch(url: str, *, timeout: float = 30.0, max_bytes: int = MAX_MEDIA_BYTES) -> bytes:
    """Async :func:`fetch`."""
    response = await media_transport().asend(Request("GET", url), stream=True, timeout=timeout)
    try:
        return await _acollect(response.aiter_bytes(), url, max_bytes)
    finally:
        await response.aclose()
