"""Routing strategies: the order in which a group's available deployments are tried. Pluggable: any callable
``(deployments, state) -> ordered deployments`` works.

Example:
    >>> from llmkit import ScriptedLLM
    >>> from llmkit.router.deployment import Deployment
    >>> from llmkit.router.state import LocalState
    >>> a, b = Deployment(ScriptedLLM(), name="a"), Deployment(ScriptedLLM(), name="b")
    >>> [d.name for d in least_busy([a, b], LocalState())]
    ['a', 'b']
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from llmkit.router.deployment import Deployment
from llmkit.router.state import RouterState

Strategy = Callable[[Sequence[Deployment], RouterState], list[Deployment]]


def weighted_shuffle(deployments: Sequence[Deployment], state: RouterState) -> list[Deployment]:
    """A random order in which each deployment comes first in proportion to its weight (Efraimidis-Spirakis)."""
    return sorted(deployments, key=lambda d: random.random() ** (1.0 / d.weight), reverse=True)


def least_busy(deployments: Sequence[Deployment], state: RouterState) -> list[Deployment]:
    """Fewest calls in flight first (ties keep the group's order)."""
    return sorted(deployments, key=lambda d: state.in_flight(d.name))


def lowest_latency(deployments: Sequence[Deployment], state: RouterState) -> list[Deployment]:
    """Lowest moving average of total time first; deployments not measured yet go first, so each gets measured."""
    return sorted(deployments, key=lambda d: -1.0 if d.stats.total is None else d.stats.total)


def usage_based(deployments: Sequence[Deployment], state: RouterState) -> list[Deployment]:
    """Most request headroom this minute first (a deployment without an rpm limit has all the headroom)."""

    def used(deployment: Deployment) -> float:
        if deployment.rpm is None:
            return 0.0
        return state.requests_this_minute(deployment.name) / deployment.rpm

    return sorted(deployments, key=used)


STRATEGIES: dict[str, Strategy] = {
    "weighted": weighted_shuffle,
    "least-busy": least_busy,
    "latency": lowest_latency,
    "usage": usage_based,
}
