"""AiXplainLLM side by side with the released aixplain SDK 0.2.48 (issue #15).

The SDK runs in a side venv (never an llmkit dependency), in one subprocess for all scenarios; llmkit runs here. Both
talk to the same recording aiXplain server on loopback and run the same scenario list through the same driver code.
Per scenario the bytes sent (method, path, ``x-api-key``, ``Content-Type``, body) and the results returned (every
field of the ``ModelResponse``, the streamed text and status, or the exception raised) must be equal, except where
:data:`ALLOWED_DIFFERENCES` says otherwise, with its reason: llmkit's documented fixes of the SDK's bugs. An entry
whose difference has gone is an error too, so the table stays exact.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from llmkit.providers.aixplain import AiXplainLLM, ModelResponse, ResponseStatus
from tests.differential.sidevenv import run_in, side_python
from tests.servers import aixplain as server_mod
from tests.servers.aixplain import KEY, AiXplainServer, Recorded

SDK = "aixplain==0.2.48"
#: The headers the service reads (the rest: ``ALLOWED_DIFFERENCES["*"]``).
COMPARED_HEADERS = ("x-api-key", "content-type")
HISTORY = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hey"}]


@dataclass(frozen=True)
class Scenario:
    name: str
    model: str
    op: str = "run"  # run | run_async | poll | sync_poll | stream | patched_poll | subclass_poll
    args: tuple[Any, ...] = ("Hi",)
    kwargs: dict[str, Any] = field(default_factory=dict)
    llm: dict[str, Any] = field(default_factory=dict)  # constructor keywords, both sides
    llmkit_llm: dict[str, Any] = field(default_factory=dict)  # constructor keywords only llmkit has
    poll: dict[str, Any] = field(default_factory=dict)  # sync_poll keywords
    key: str = KEY
    timed: bool = False  # how many polls fit in a timeout depends on the clock: repeated requests count once

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "model": f"{self.model}--{self.name}", "op": self.op, "args": list(self.args),
                "kwargs": self.kwargs, "llm": self.llm, "poll": self.poll, "key": self.key}  # fmt: skip


ERROR_STATUSES = (400, 402, 403, 404, 408, 409, 422, 429, 465, 475, 485, 495, 500, 502, 503, 504)
ERROR_BODY_KINDS = ("string", "list", "number", "zero", "object", "emptyerror", "message", "html", "empty")
ODD_ANSWERS = ("unknown-status", "no-poll-url", "not-json", "list", "nulls", "error-only")
ODD_POLLS = ("no-completed", "not-json", "list", "null", "error-only", "supplier-only", "unknown-status", "data-object")
STREAMS = {"supports_streaming": True}

SCENARIOS: list[Scenario] = [
    # run: the body, byte for byte
    Scenario("run-direct", "direct", args=("Hello there",), llm={"temperature": 0.7},
             kwargs={"context": "You are helpful", "history": HISTORY, "max_tokens": 64, "top_p": 0.9}),
    Scenario("run-defaults", "direct"),
    Scenario("run-top-p-1", "direct", kwargs={"top_p": 1.0}),
    Scenario("run-no-temperature", "direct", llm={"temperature": None}),
    Scenario("run-parameters", "direct",
             kwargs={"temperature": 0.1, "parameters": {"custom_param": 1, "max_tokens": 10}}),
    Scenario("run-response-format", "direct", kwargs={"response_format": "json_object"}),
    Scenario("run-response-format-dict", "direct", kwargs={"response_format": {"type": "json_schema", "schema": {}}}),
    Scenario("run-prompt", "direct", kwargs={"prompt": "Answer briefly:", "context": "ctx"}),
    Scenario("run-json-data", "direct", args=('{"data": "inner", "temperature": 0.33}',)),
    Scenario("run-number-data", "direct", args=("42",)),
    Scenario("run-bool-data", "direct", args=("true",)),
    Scenario("run-dict-data", "direct", args=({"data": "d", "extra": 1},)),
    Scenario("run-unicode", "direct", args=('héllo ✓ "q"',)),
    # run: jobs and odd answers
    Scenario("run-job", "async", kwargs={"wait_time": 0.2}),
    Scenario("run-supplier-fails", "supplier-fails", kwargs={"wait_time": 0.2}),
    Scenario("run-error-code", "error-code"),
    *(Scenario(f"run-odd-{kind}", f"odd-{kind}") for kind in ODD_ANSWERS),
    Scenario("run-foreign-poll-host", "foreign-loopback", kwargs={"wait_time": 0.2}),
    Scenario("run-slow-answer", "slow", kwargs={"timeout": 1}, llmkit_llm={"timeout": 0.5}),
    Scenario("run-patched-poll", "async", op="patched_poll"),
    Scenario("run-subclass-poll", "async", op="subclass_poll"),
    # run: HTTP errors
    Scenario("run-401-wrong-key", "direct", key="wrong"),
    *(Scenario(f"run-{status}", f"fail-{status}-error") for status in ERROR_STATUSES),
    *(Scenario(f"run-400-body-{kind}", f"fail-400-{kind}") for kind in ERROR_BODY_KINDS),
    Scenario("run-502-body-html", "fail-502-html"),
    # run_async, poll, sync_poll
    Scenario("run-async", "async", op="run_async", kwargs={"top_p": 0.5, "response_format": "text"}),
    Scenario("run-async-401", "fail-401-error", op="run_async"),
    Scenario("run-async-odd-error-only", "odd-error-only", op="run_async"),
    Scenario("poll-in-progress", "async", op="poll"),
    *(Scenario(f"poll-{kind}", f"pollodd-{kind}", op="poll") for kind in ODD_POLLS),
    Scenario("poll-404", "poll-404", op="poll"),
    Scenario("poll-500", "poll-500", op="poll"),
    Scenario("sync-poll-done", "async", op="sync_poll", poll={"wait_time": 0.2, "timeout": 10}),
    Scenario("sync-poll-never", "never", op="sync_poll", poll={"wait_time": 0.2, "timeout": 1}, timed=True),
    Scenario("sync-poll-no-completed", "pollodd-no-completed", op="sync_poll", poll={"wait_time": 0.2, "timeout": 1},
             timed=True),
    Scenario("sync-poll-404", "poll-404", op="sync_poll", poll={"wait_time": 0.2, "timeout": 1}),
    # streams
    Scenario("stream", "stream", op="stream", args=("a b c",), llm=STREAMS),
    Scenario("stream-data-in-text", "stream-whole", op="stream", args=("the data: tricky",), llm=STREAMS),
    Scenario("stream-openai-chunks", "openai-stream", op="stream", args=("a b",), llm=STREAMS),
    Scenario("stream-error-event", "stream-fails", op="stream", args=("one two three four",), llm=STREAMS),
    Scenario("stream-401", "stream", op="stream", llm=STREAMS, key="wrong"),
    Scenario("stream-unsupported", "stream", op="stream"),
]  # fmt: skip


@dataclass(frozen=True)
class Allowed:
    """A difference llmkit makes on purpose: in what was ``sent``, what was ``returned``, or both."""

    sent: bool
    returned: bool
    reason: str


#: Every difference between llmkit and the SDK 0.2.48 that the scenarios show, with its reason (the closing note).
ALLOWED_DIFFERENCES: dict[str, Allowed] = {
    "*": Allowed(True, False, "Every request: only x-api-key and Content-Type are compared; User-Agent, Accept, "
                              "Accept-Encoding and Connection are each HTTP client's own (requests vs httpx)."),
    "run-error-code": Allowed(False, True, "The SDK crashes (TypeError, duplicate 'error_code') on a body with "
                                           "error_code; llmkit reports the FAILED response with its error_code."),
    "run-slow-answer": Allowed(False, True, "The SDK has no HTTP timeout (it waits forever); llmkit bounds each "
                                           "request (here 1 s), and the run fails instead of hanging."),
    "run-429": Allowed(True, False, "llmkit retries a 429 (the service refused the job, nothing started or billed); "
                                    "the SDK sends one POST. Other statuses: one POST on both sides."),
    "poll-404": Allowed(False, True, "A 4xx poll ends polling in llmkit: FAILED, completed, the SDK's text for the "
                                     "status; the SDK reports \"'completed'\", not completed, and polls on."),
    "poll-500": Allowed(True, True, "llmkit retries a 5xx poll (a GET is safe to repeat) then reports the status "
                                    "text; the SDK over http neither retries nor reads the status."),
    "sync-poll-404": Allowed(True, True, "The SDK spins on a 4xx poll until the timeout (\"No response from the "
                                         "service.\"); llmkit stops at the first one with the status's text."),
    "stream-data-in-text": Allowed(False, True, "The SDK strips every 'data: ' out of the text ('the data: tricky' "
                                                "-> 'the tricky'); llmkit takes the prefix off the line start only."),
    "stream-openai-chunks": Allowed(False, True, "The SDK reads 'data:' without the space and OpenAI-style chunks "
                                                 "as raw text; llmkit reads both SSE variants."),
    "stream-error-event": Allowed(False, True, "The SDK passes an error event on as an empty chunk and ends "
                                               "IN_PROGRESS; llmkit ends FAILED with the event's error message."),
    "stream-401": Allowed(False, True, "The SDK does not check a stream's HTTP status (a 401 becomes an empty "
                                       "IN_PROGRESS chunk); llmkit yields one FAILED chunk with the status's text."),
    "stream-unsupported": Allowed(False, True, "Both refuse before sending; llmkit raises a ConfigurationError that "
                                               "names the fix instead of a bare AssertionError."),
}  # fmt: skip

#: The driver both sides run (with their own ``make_llm``, ``ModelResponse`` and ``ResponseStatus``).
DRIVER = r'''
import json
from unittest import mock


def outcome(value):
    if isinstance(value, ModelResponse):
        value = value.to_dict()
    return json.loads(json.dumps(value, default=str))


def call(spec):
    llm = make_llm(spec)
    op, args, kwargs = spec["op"], spec["args"], spec["kwargs"]
    if op == "run":
        return outcome(llm.run(*args, **kwargs))
    if op == "run_async":
        return outcome(llm.run_async(*args, **kwargs))
    if op == "poll":
        started = llm.run_async(*args, **kwargs)
        return [outcome(started), outcome(llm.poll(started.url))]
    if op == "sync_poll":
        started = llm.run_async(*args, **kwargs)
        return [outcome(started), outcome(llm.sync_poll(started.url, **spec["poll"]))]
    if op == "stream":
        streamer = llm.run(*args, stream=True, **kwargs)
        chunks = list(streamer)
        text = "".join(c.data if isinstance(c.data, str) else json.dumps(c.data) for c in chunks)
        errors = [c.error_message for c in chunks if c.error_message]
        return {"text": text, "status": str(streamer.status), "errors": errors}
    if op == "patched_poll":
        answer = ModelResponse(status=ResponseStatus.SUCCESS, data="patched", completed=True)
        with mock.patch.object(llm, "poll", return_value=answer) as patched:
            result = llm.run(*args, **kwargs)
        return {"result": outcome(result), "poll_calls": patched.call_count}
    if op == "subclass_poll":
        return outcome(make_llm(spec, subclass=True).run(*args, **kwargs))
    raise ValueError(op)


def run_all(specs):
    results = {}
    for spec in specs:
        try:
            results[spec["name"]] = {"value": call(spec)}
        except Exception as exc:
            results[spec["name"]] = {"raised": type(exc).__name__, "message": str(exc)}
    return results
'''

SDK_PRELUDE = r'''
import json, logging, os, sys, warnings
warnings.simplefilter("ignore")
from aixplain.enums import Function, ResponseStatus
from aixplain.modules.model.llm_model import LLM
from aixplain.modules.model.response import ModelResponse
logging.disable(logging.CRITICAL)


def make_llm(spec, subclass=False):
    cls = LLM
    if subclass:
        class SubLLM(LLM):
            def poll(self, poll_url, name="model_process"):
                return ModelResponse(status=ResponseStatus.SUCCESS, data="from the subclass", completed=True)
        cls = SubLLM
    settings = {"temperature": 0.001, **spec["llm"]}  # seed 003's constructor default; the SDK's is None
    return cls(spec["model"], "Model", api_key=spec["key"], function=Function.TEXT_GENERATION, **settings)
'''


def llmkit_make(server: AiXplainServer, scenarios: dict[str, Scenario]) -> Any:
    def make_llm(spec: dict[str, Any], subclass: bool = False) -> AiXplainLLM:
        cls: type[AiXplainLLM] = AiXplainLLM
        if subclass:

            class SubLLM(AiXplainLLM):
                def poll(self, poll_url: str, name: str = "model_process") -> ModelResponse:
                    return ModelResponse(status=ResponseStatus.SUCCESS, data="from the subclass", completed=True)

            cls = SubLLM
        settings = {**spec["llm"], **scenarios[spec["name"]].llmkit_llm}
        return cls(spec["model"], "Model", api_key=spec["key"], url=server.run_url, **settings)

    return make_llm


Sent = tuple[str, str, dict[str, str], Any]


def sent_by_scenario(requests: list[Recorded], jobs: dict[str, dict[str, Any]]) -> dict[str, list[Sent]]:
    """The requests of each scenario (by the model id it names, or its job's), in order."""
    out: dict[str, list[Sent]] = {}
    for request in requests:
        segments = [s for s in request.path.split("/") if s]
        model_id = segments[-1] if request.method == "POST" else jobs.get(segments[-1], {}).get("model_id", "?")
        headers = {h: request.headers.get(h, "") for h in COMPARED_HEADERS}
        body = request.raw_body.decode()
        out.setdefault(model_id.split("--")[-1], []).append((request.method, request.path, headers, body))
    return out


def collapse(sent: list[Sent]) -> list[Sent]:
    return [item for i, item in enumerate(sent) if i == 0 or item != sent[i - 1]]


@pytest.fixture(scope="module")
def server() -> Iterator[AiXplainServer]:
    srv = server_mod.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def both_sides(server: AiXplainServer) -> dict[str, Any]:
    python = side_python("aixplain", [SDK])
    specs = [s.spec() for s in SCENARIOS]
    env = {k: v for k, v in os.environ.items() if k not in ("TEAM_API_KEY", "AIXPLAIN_API_KEY", "PYTHONPATH")}
    env.update(MODELS_RUN_URL=server.run_url, BACKEND_URL=server.base, TEAM_API_KEY=KEY, SPECS=json.dumps(specs),
               AIXPLAIN_ALLOW_INSECURE_URLS="1", AIXPLAIN_SUPPRESS_V1_DEPRECATION="1")  # fmt: skip
    code = SDK_PRELUDE + DRIVER + "\nprint(json.dumps(run_all(json.loads(os.environ['SPECS']))))\n"
    server.reset()
    sdk_results = json.loads(run_in(python, code, env=env, timeout=300).strip().splitlines()[-1])
    sdk_sent = sent_by_scenario(list(server.requests), dict(server.jobs))

    server.reset()
    namespace: dict[str, Any] = {
        "ModelResponse": ModelResponse,
        "ResponseStatus": ResponseStatus,
        "make_llm": llmkit_make(server, {s.name: s for s in SCENARIOS}),
    }
    exec(DRIVER, namespace)
    llmkit_results = namespace["run_all"](specs)
    llmkit_sent = sent_by_scenario(list(server.requests), dict(server.jobs))
    return {"sdk": (sdk_results, sdk_sent), "llmkit": (llmkit_results, llmkit_sent)}


def test_enough_scenarios_and_a_consistent_table() -> None:
    names = [s.name for s in SCENARIOS]
    assert len(names) == len(set(names)) >= 30
    assert set(ALLOWED_DIFFERENCES) <= {*names, "*"}


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_llmkit_behaves_as_the_sdk(scenario: Scenario, both_sides: dict[str, Any]) -> None:
    sdk_results, sdk_sent = both_sides["sdk"]
    llmkit_results, llmkit_sent = both_sides["llmkit"]
    allowed = ALLOWED_DIFFERENCES.get(scenario.name, Allowed(False, False, ""))
    sdk_requests, llmkit_requests = sdk_sent.get(scenario.name, []), llmkit_sent.get(scenario.name, [])
    if scenario.timed:
        sdk_requests, llmkit_requests = collapse(sdk_requests), collapse(llmkit_requests)
    sdk_result, llmkit_result = sdk_results[scenario.name], llmkit_results[scenario.name]
    if allowed.sent:
        assert llmkit_requests != sdk_requests, f"no longer differs, drop it from the table: {allowed.reason}"
    else:
        assert llmkit_requests == sdk_requests
    if allowed.returned:
        assert llmkit_result != sdk_result, f"no longer differs, drop it from the table: {allowed.reason}"
    else:
        assert llmkit_result == sdk_result
