"""The router: groups of deployments behind one LLM (see :mod:`llmkit.router.router`)."""

from llmkit.router.deployment import Deployment
from llmkit.router.router import Router, is_context_window_error, load_config
from llmkit.router.state import LocalState, RedisState, RouterState
from llmkit.router.strategies import STRATEGIES, Strategy

__all__ = [
    "STRATEGIES",
    "Deployment",
    "LocalState",
    "RedisState",
    "Router",
    "RouterState",
    "Strategy",
    "is_context_window_error",
    "load_config",
]
