"""The router against several real loopback deployments at once: no lost request, no truncated success, exact
attempt counts, cooldowns honoured, fallbacks, limits, strategies, and shared limits across processes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llmkit import ChatMessage, OpenAILike, ScriptedLLM
from llmkit.callbacks import AttemptEvent, CallbackHandler, CallbackManager
from llmkit.errors import BadRequestError, NoDeploymentAvailableError, StreamError
from llmkit.providers.function import FunctionLLM
from llmkit.router import Deployment, Router, load_config
from tests.conftest import free_port
from tests.servers.deployment import DeploymentServer
from tests.test_wrapper import conformance

HI = [ChatMessage(role="user", content="hi")]


@pytest.fixture
def servers() -> Iterator[dict[str, DeploymentServer]]:
    started = {
        "healthy": DeploymentServer("healthy", "healthy"),
        "healthy2": DeploymentServer("healthy2", "healthy"),
        "slow": DeploymentServer("slow", "slow", delay=1.5),
        "limited": DeploymentServer("limited", "rate-limited", retry_after=1.0),
        "failing": DeploymentServer("failing", "failing"),
        "dying": DeploymentServer("dying", "dying"),
        "stalling": DeploymentServer("stalling", "stalling", delay=3.0),
    }
    yield started
    for server in started.values():
        server.stop()


def llm(server: DeploymentServer, **kwargs: Any) -> OpenAILike:
    return OpenAILike(model="m", api_base=server.url, timeout=5.0, **kwargs)


def refusing() -> OpenAILike:
    return OpenAILike(model="m", api_base=f"http://127.0.0.1:{free_port()}/v1", timeout=2.0)


class Attempts(CallbackHandler):
    def __init__(self) -> None:
        self.seen: list[AttemptEvent] = []

    def on_attempt(self, attempt: AttemptEvent) -> None:
        self.seen.append(attempt)

    def outcomes(self) -> list[tuple[str, str]]:
        return [(a.deployment.split("/")[0], a.outcome) for a in self.seen]


def test_failover_cools_the_failing_deployment(servers: dict[str, DeploymentServer]) -> None:
    attempts = Attempts()
    router = Router(
        groups={"g": [Deployment(llm(servers["failing"]), name="bad"), Deployment(llm(servers["healthy"]), name="ok")]},
        strategy=lambda deployments, state: list(deployments),  # in order: the failing one first
        callback_manager=CallbackManager([attempts]),
    )
    answers = [router.chat(HI).message.content for _ in range(5)]
    assert answers == ["healthy"] * 5  # no lost request
    assert servers["failing"].requests == 1  # one attempt, no transport retries, then cooled down
    assert servers["healthy"].requests == 5
    assert [a.outcome for a in attempts.seen] == ["error", "ok", "ok", "ok", "ok", "ok"]


def test_single_deployment_group_cools_down_then_half_opens(servers: dict[str, DeploymentServer]) -> None:
    router = Router(groups={"only": [llm(servers["limited"])]})
    with pytest.raises(NoDeploymentAvailableError, match="RateLimitError"):
        router.chat(HI)
    started = time.monotonic()
    with pytest.raises(NoDeploymentAvailableError, match="available in") as info:
        router.chat(HI)  # fails fast: nothing is sent during the cooldown
    assert time.monotonic() - started < 0.2
    assert info.value.retry_after is not None
    assert 0 < info.value.retry_after <= 1.0
    assert servers["limited"].requests == 1
    time.sleep(1.1)  # Retry-After honoured: then one probe goes through
    with pytest.raises(NoDeploymentAvailableError):
        router.chat(HI)
    assert servers["limited"].requests == 2


def test_fallback_groups_and_refused_connections(servers: dict[str, DeploymentServer]) -> None:
    attempts = Attempts()
    router = Router(
        groups={"fast": [refusing(), llm(servers["failing"])], "smart": [llm(servers["healthy"])]},
        fallbacks={"fast": ["smart"]},
        callback_manager=CallbackManager([attempts]),
    )
    assert router.chat(HI).message.content == "healthy"
    assert sorted(attempts.outcomes()) == [("fast", "error"), ("fast", "error"), ("smart", "ok")]
    assert asyncio.run(router.achat(HI, model="fast")).message.content == "healthy"  # both fast ones cooling down
    assert servers["failing"].requests == 1


def test_a_bad_request_is_raised_at_once() -> None:
    def bad(messages: list[Any], kwargs: dict[str, Any]) -> str:
        raise BadRequestError("field 'x' is not allowed", status_code=400)

    other = FunctionLLM(chat_fn=lambda messages, kwargs: "never")
    router = Router(groups={"g": [FunctionLLM(chat_fn=bad), other]}, strategy=lambda d, s: list(d))
    with pytest.raises(BadRequestError):
        router.chat(HI)
    assert other.calls == []


def test_context_window_errors_go_to_the_larger_group() -> None:
    def too_long(messages: list[Any], kwargs: dict[str, Any]) -> str:
        raise BadRequestError("This model's maximum context length is 4096 tokens", status_code=400)

    router = Router(
        groups={"small": [FunctionLLM(chat_fn=too_long)], "large": [FunctionLLM(chat_fn=lambda m, k: "fits")]},
        context_window_fallbacks={"small": ["large"]},
    )
    assert router.chat(HI).message.content == "fits"


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_stream_cut_after_chunks_is_an_error_never_a_short_answer(
    servers: dict[str, DeploymentServer], mode: str
) -> None:
    groups = {"g": [llm(servers["dying"])], "backup": [llm(servers["healthy"])]}
    router = Router(groups=groups, fallbacks={"g": ["backup"]})
    received: list[str] = []

    async def consume_async() -> None:
        async for chunk in await router.astream_chat(HI):
            received.append(chunk.delta or "")

    with pytest.raises(StreamError) as info:
        if mode == "sync":
            for chunk in router.stream_chat(HI):
                received.append(chunk.delta or "")
        else:
            asyncio.run(consume_async())
    assert "".join(received) == "dying says"
    assert info.value.received == "dying says"
    assert servers["healthy"].requests == 0  # chunks reached the caller: no silent failover


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_stream_failing_before_its_first_chunk_fails_over(servers: dict[str, DeploymentServer], mode: str) -> None:
    router = Router(
        groups={"g": [Deployment(llm(servers["failing"]), name="a"), Deployment(llm(servers["healthy"]), name="b")]},
        strategy=lambda d, s: list(d),
    )

    async def collect() -> str:
        return "".join([chunk.delta or "" async for chunk in await router.astream_chat(HI)])

    text = "".join(c.delta or "" for c in router.stream_chat(HI)) if mode == "sync" else asyncio.run(collect())
    assert text == "healthy says hello"


def test_async_stall_before_and_after_the_first_chunk(servers: dict[str, DeploymentServer]) -> None:
    router = Router(
        groups={"g": [Deployment(llm(servers["slow"]), name="slow"), Deployment(llm(servers["healthy"]), name="ok")]},
        strategy=lambda d, s: list(d),
        stream_idle_timeout=0.5,
    )

    async def collect(r: Router) -> str:
        return "".join([chunk.delta or "" async for chunk in await r.astream_chat(HI)])

    assert asyncio.run(collect(router)) == "healthy says hello"  # the slow one stalled before its first chunk
    stalling = Router(groups={"g": [llm(servers["stalling"])]}, stream_idle_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(StreamError) as info:
        asyncio.run(collect(stalling))
    assert info.value.received == "stalling says"
    assert time.monotonic() - started < 2.5


def test_weighted_shares_within_tolerance() -> None:
    a = FunctionLLM(chat_fn=lambda m, k: "a")
    b = FunctionLLM(chat_fn=lambda m, k: "b")
    router = Router(groups={"g": [Deployment(a, weight=3), Deployment(b, weight=1)]})
    shares = Counter(router.chat(HI).message.content for _ in range(2000))
    assert abs(shares["a"] / 2000 - 0.75) < 0.04  # the expected share is 3/4; 4 points is > 5 standard deviations


def test_lowest_latency_prefers_the_fast_deployment(servers: dict[str, DeploymentServer]) -> None:
    router = Router(groups={"g": [llm(servers["slow"]), llm(servers["healthy"])]}, strategy="latency")
    answers = [router.chat(HI).message.content for _ in range(6)]
    assert sorted(answers[:2]) == ["healthy", "slow"]  # each measured once
    assert answers[2:] == ["healthy"] * 4


def test_least_busy_spreads_concurrent_calls(servers: dict[str, DeploymentServer]) -> None:
    router = Router(groups={"g": [llm(servers["slow"]), llm(servers["healthy"])]}, strategy="least-busy")

    async def burst() -> list[str]:
        return [r.message.content or "" for r in await asyncio.gather(router.achat(HI), router.achat(HI))]

    assert sorted(asyncio.run(burst())) == ["healthy", "slow"]


def test_local_rpm_and_parallel_limits() -> None:
    router = Router(
        groups={
            "g": [Deployment(FunctionLLM(chat_fn=lambda m, k: "a"), rpm=3)],
            "spill": [FunctionLLM(chat_fn=lambda m, k: "b")],
        },
        fallbacks={"g": ["spill"]},
    )
    assert [router.chat(HI).message.content for _ in range(5)] == ["a", "a", "a", "b", "b"]


def test_router_passes_the_conformance_suite() -> None:
    routed = conformance(Router(groups={"g": [ScriptedLLM(system_prompt="Be brief.")]}))
    bare = conformance(ScriptedLLM(system_prompt="Be brief."))
    assert routed.pop("metadata")["model_name"] == "g"  # the router names the group it serves
    bare.pop("metadata")
    assert routed == bare


def test_config_file(tmp_path: Path, servers: dict[str, DeploymentServer]) -> None:
    config = tmp_path / "router.toml"
    config.write_text(
        f"""
strategy = "least-busy"
max_attempts = 3
[fallbacks]
fast = ["smart"]
[[groups.fast]]
model = "openai-like/m"
api_base = "{servers["failing"].url}"
weight = 2
rpm = 100
[[groups.smart]]
model = "openai-like/m"
api_base = "{servers["healthy"].url}"
"""
    )
    router = load_config(config)
    assert router.chat(HI).message.content == "healthy"
    assert router.groups["fast"][0].weight == 2


GLOBAL_RPM_WORKER = """
import sys, time
from llmkit import ChatMessage
from llmkit.errors import NoDeploymentAvailableError
from llmkit.providers.function import FunctionLLM
from llmkit.router import Deployment, Router

router = Router(groups={"g": [Deployment(FunctionLLM(chat_fn=lambda m, k: "ok"), name="shared", rpm=40)]},
                redis_url=sys.argv[1], namespace=sys.argv[2], window_seconds=float(sys.argv[3]))
start_at = float(sys.argv[4])
time.sleep(max(start_at - time.time(), 0))
done = 0
while time.time() < start_at + float(sys.argv[3]) * 0.8:
    try:
        router.chat([ChatMessage(role="user", content="x")])
        done += 1
    except NoDeploymentAvailableError:
        time.sleep(0.005)
print(done)
"""


def test_three_processes_share_one_global_rpm(redis_url: str) -> None:
    window = 3.0
    # The start of a fresh window, late enough that all three have started (imports take a while on a busy machine).
    start_at = ((time.time() + 6) // window + 1) * window + 0.05
    namespace = f"t{time.time_ns()}"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", GLOBAL_RPM_WORKER, redis_url, namespace, str(window), str(start_at)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    counts = [int(worker.communicate(timeout=60)[0]) for worker in workers]
    assert 38 <= sum(counts) <= 40  # one global limit of 40 per window (within 5%), not 3 x 40
    assert all(count > 0 for count in counts)


def test_calls_unsafe_to_replay_are_not_sent_again(servers: dict[str, DeploymentServer]) -> None:
    from llmkit.capabilities import Capabilities

    class JobService(OpenAILike):
        def _capabilities(self) -> Capabilities:
            return Capabilities(chat=True, completion=True, replay_safe=False)

    backup = FunctionLLM(chat_fn=lambda m, k: "backup")
    router = Router(
        groups={"g": [Deployment(JobService(model="m", api_base=servers["failing"].url), name="job"), backup]},
        strategy=lambda d, s: list(d),
    )
    with pytest.raises(Exception, match="internal error"):
        router.chat(HI)
    assert servers["failing"].requests == 1
    assert backup.calls == []


def test_unreachable_redis_is_a_typed_error() -> None:
    pytest.importorskip("redis", reason="the 'redis' extra is not installed: pip install 'llmkit[redis]'")
    from llmkit.errors import RouterStateError

    router = Router(groups={"g": [ScriptedLLM()]}, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(RouterStateError, match="redis-server is running"):
        router.chat(HI)


class Dying(FunctionLLM):
    """Streams two pieces of its answer, then breaks."""

    def _stream_chat(self, messages: Any, **kwargs: Any) -> Iterator[Any]:
        from llmkit.types import ChatResponse, text_message

        yield ChatResponse(message=text_message("The answer"), delta="The answer")
        yield ChatResponse(message=text_message("The answer is"), delta=" is")
        raise StreamError("connection reset", received="The answer is")

    def _stream_complete(self, prompt: str, **kwargs: Any) -> Iterator[Any]:
        from llmkit.types import CompletionResponse

        yield CompletionResponse(text="The answer", delta="The answer")
        raise StreamError("connection reset", received="The answer")


class Prefilling(FunctionLLM):
    """A chat deployment that continues a trailing assistant message."""

    def _capabilities(self) -> Any:
        from llmkit.capabilities import Capabilities

        return Capabilities(chat=True, assistant_prefill=True)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_resume_continues_a_broken_stream_elsewhere(mode: str) -> None:
    backup = Prefilling(chat_fn=lambda messages, kwargs: " 42.")
    router = Router(
        groups={"g": [Deployment(Dying(chat_fn=lambda m, k: ""), name="dying"), Deployment(backup, name="backup")]},
        strategy=lambda d, s: list(d),
        resume=True,
    )

    async def collect() -> list[Any]:
        return [chunk async for chunk in await router.astream_chat(HI)]

    chunks = list(router.stream_chat(HI)) if mode == "sync" else asyncio.run(collect())
    assert "".join(c.delta or "" for c in chunks) == "The answer is 42."
    assert chunks[-1].message.content == "The answer is 42."
    continued = backup.calls[-1][0]
    assert (continued[-1].role.value, continued[-1].content) == ("assistant", "The answer is")


def test_resume_of_a_completion_extends_the_prompt() -> None:
    backup = FunctionLLM(complete_fn=lambda prompt, kwargs: " 42.")
    router = Router(
        groups={"g": [Deployment(Dying(complete_fn=lambda p, k: ""), name="dying"), Deployment(backup, name="backup")]},
        strategy=lambda d, s: list(d),
        resume=True,
    )
    chunks = list(router.stream_complete("Q: the answer? A:"))
    assert chunks[-1].text == "The answer 42."
    assert backup.calls[-1][0] == "Q: the answer? A:The answer"


def test_resume_without_a_capable_deployment_is_a_stream_error() -> None:
    router = Router(
        groups={"g": [Deployment(Dying(chat_fn=lambda m, k: ""), name="dying"), FunctionLLM(chat_fn=lambda m, k: "x")]},
        strategy=lambda d, s: list(d),
        resume=True,
    )
    with pytest.raises(StreamError, match="resume") as info:
        list(router.stream_chat(HI))
    assert info.value.received == "The answer is"
