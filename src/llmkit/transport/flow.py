"""Flows: multi-request exchanges (start a job, poll it, wait between polls) written once as a generator and driven
sync or async by the transport, as httpx drives an ``Auth.auth_flow``.

A flow yields a step, ``(request, options)`` to send (the parsed JSON answer is sent back into the flow) or a number
of seconds to wait, and returns its result. Errors of a request propagate out of the flow, typed by the transport.

Example:
    >>> def wait_then_finish() -> Flow[str]:
    ...     yield 0.0  # wait no time, then finish
    ...     return "done"
    >>> asyncio.run(arun_flow(HTTPTransport(), wait_then_finish()))
    'done'
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Generator
from typing import Any, TypeVar

from llmkit.transport.client import HTTPTransport

T = TypeVar("T")
#: A flow's steps are ``(Request, options)`` to send or seconds (a number) to wait; answers are parsed JSON.
Flow = Generator[Any, Any, T]


def run_flow(transport: HTTPTransport, flow: Flow[T]) -> T:
    """Drive ``flow`` with blocking I/O."""
    answer: Any = None
    while True:
        try:
            step = flow.send(answer)
        except StopIteration as stop:
            result: T = stop.value
            return result
        if isinstance(step, int | float):
            time.sleep(step)
            answer = None
        else:
            request, options = step
            answer = transport.request_json(request, **options)


async def arun_flow(transport: HTTPTransport, flow: Flow[T]) -> T:
    """Drive ``flow`` on the event loop (waits are ``asyncio.sleep``: the loop never blocks)."""
    answer: Any = None
    while True:
        try:
            step = flow.send(answer)
        except StopIteration as stop:
            result: T = stop.value
            return result
        if isinstance(step, int | float):
            await asyncio.sleep(step)
            answer = None
        else:
            request, options = step
            answer = await transport.arequest_json(request, **options)
