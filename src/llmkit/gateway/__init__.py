"""``llmkit serve``: an OpenAI-compatible gateway over any llmkit LLM, router or cache (extra ``server``).

See :mod:`llmkit.gateway.app` (the ASGI app), :mod:`llmkit.gateway.config` (the config file),
:mod:`llmkit.gateway.store` (virtual keys, budgets, usage log).
"""

from llmkit.gateway.config import GatewayConfig, load_gateway_config

__all__ = ["GatewayConfig", "load_gateway_config"]
