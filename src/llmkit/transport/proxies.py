"""Proxies from the environment (``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``, ``NO_PROXY``), read once per pool,
as httpx reads them: the standard library's reading of the variables, the answer cached per origin.

Example:
    >>> routes = ProxyRoutes({"https": "proxy.corp:3128", "no": "localhost,.internal"})
    >>> routes.for_url("https://api.openai.com/v1/chat/completions")
    'http://proxy.corp:3128'
    >>> routes.for_url("https://models.internal/v1") is None
    True
"""

from __future__ import annotations

import urllib.request
from collections.abc import Callable
from urllib.parse import urlsplit

from llmkit.transport.backends.base import split_origin


class ProxyRoutes:
    """Which proxy, if any, a URL goes through."""

    __slots__ = ("_cache", "_proxies")

    def __init__(self, proxies: dict[str, str]) -> None:
        self._proxies = {scheme: _with_scheme(url) if scheme != "no" else url for scheme, url in proxies.items() if url}
        self._cache: dict[str, str | None] = {}

    @classmethod
    def from_env(cls) -> ProxyRoutes:
        """The proxies the environment names (empty when none: then every lookup is free)."""
        return cls(urllib.request.getproxies_environment())

    def __bool__(self) -> bool:
        return any(scheme != "no" for scheme in self._proxies)

    def for_url(self, url: str) -> str | None:
        """The proxy URL for ``url``, or None to connect directly."""
        if not self:
            return None
        origin = split_origin(url)[0]
        try:
            return self._cache[origin]
        except KeyError:
            pass
        parts = urlsplit(origin)
        host = parts.hostname or ""
        proxy: str | None = None
        if not _bypass(host if parts.port is None else f"{host}:{parts.port}", self._proxies):
            proxy = self._proxies.get(parts.scheme) or self._proxies.get("all")
        if len(self._cache) > 1000:
            self._cache.clear()
        self._cache[origin] = proxy
        return proxy


#: NO_PROXY's reading (untyped in typeshed, public in the module since Python 3.8).
_bypass: Callable[[str, dict[str, str]], bool] = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]


def _with_scheme(url: str) -> str:
    return url if "://" in url else f"http://{url}"
