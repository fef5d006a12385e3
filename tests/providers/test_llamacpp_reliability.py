"""The embedded model under misuse and hostile schemas: cancellation frees the model, a thread cannot deadlock on
its own stream, no schema crashes the process, unloadable files and over-long prompts are typed errors."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from llmkit import LlamaCpp
from llmkit.errors import BadRequestError, ConfigurationError, UsageError

LONG = "Write a very long story about a dragon who learns to cook, with many chapters."


def test_cancelling_an_async_call_frees_the_model_at_once(local_llm: LlamaCpp) -> None:
    async def run() -> float:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(local_llm.acomplete(LONG, max_tokens=1500), 0.3)
        started = time.monotonic()
        await local_llm.acomplete("Hi", max_tokens=2)
        return time.monotonic() - started

    assert asyncio.run(run()) < 2.0  # without cancellation it waits for ~1,500 abandoned tokens


def test_a_thread_with_an_open_stream_gets_an_error_not_a_deadlock(local_llm: LlamaCpp) -> None:
    stream = local_llm.stream_complete(LONG, max_tokens=64)
    next(stream)
    started = time.monotonic()
    with pytest.raises(UsageError, match="open stream"):
        local_llm.complete("Hi", max_tokens=2)
    assert time.monotonic() - started < 1
    done: list[str] = []
    other = threading.Thread(target=lambda: done.append(local_llm.complete("Hi", max_tokens=2).text))
    other.start()
    time.sleep(0.3)
    assert done == []  # another thread waits its turn...
    stream.close()
    other.join(timeout=30)
    assert len(done) == 1  # ...and runs once the stream is closed


def test_a_prompt_longer_than_the_context_is_a_typed_error(model_path: Path) -> None:
    small = LlamaCpp(model_path=str(model_path), n_ctx=64, max_tokens=4)
    with pytest.raises(BadRequestError, match="context window"):
        small.complete("word " * 200)
    with pytest.raises(BadRequestError, match="context window"):
        list(small.stream_complete("word " * 200))
    from llmkit import ChatMessage

    with pytest.raises(BadRequestError, match="context window"):
        small.chat([ChatMessage(role="user", content="word " * 200)])


def test_a_file_that_is_not_gguf_is_a_configuration_error(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp", reason="the 'local' extra is not installed: pip install 'llmkit[local]'")
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"not a model at all" * 100)
    with pytest.raises(ConfigurationError, match="could not be loaded as a GGUF"):
        LlamaCpp(model_path=str(fake)).complete("hi")
    with pytest.raises(ConfigurationError, match="does not exist"):
        LlamaCpp(model_path=str(tmp_path / "missing.gguf")).complete("hi")


PATTERN_PROGRAM = """
from pydantic import BaseModel, Field
from llmkit import LlamaCpp, PromptTemplate
from llmkit.errors import StructuredOutputError
class Zip(BaseModel):
    code: str = Field(pattern=r"^\\\\d{5}$")
try:
    print(LlamaCpp(max_tokens=24).structured_predict(Zip, PromptTemplate("Give a US zip code")))
except StructuredOutputError as exc:
    print("typed:", type(exc).__name__)
"""


def test_a_pattern_no_longer_kills_the_process(model_path: Path) -> None:
    result = subprocess.run([sys.executable, "-c", PATTERN_PROGRAM], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"exit {result.returncode} (-11 is the old SIGSEGV): {result.stderr[-2000:]}"


FUZZ_PROGRAM = """
import sys, typing
from hypothesis import given, settings, HealthCheck, strategies as st
from pydantic import BaseModel, Field, create_model
from llmkit import LlamaCpp, PromptTemplate
from llmkit.errors import StructuredOutputError
from llmkit.providers.llamacpp import grammar_schema

class Node(BaseModel):
    value: int
    children: list["Node"] = []

leaf = st.sampled_from([
    (str, ...), (int, ...), (float, ...), (bool, ...), (list[str], ...), (dict[int, str], ...),
    (typing.Optional[int], None), (typing.Literal["a", "b"], ...), (Node, ...),
    (str, Field(pattern=r"^[A-Z]{2}-\\\\d+$")), (str, Field(min_length=2, max_length=5)),
    (int, Field(ge=0, le=10)), (float, Field(gt=0, multiple_of=0.5)),
    (str, Field(json_schema_extra={"format": "email"})),
])
names = st.from_regex(r"[a-z]{1,6}", fullmatch=True)
llm = LlamaCpp(max_tokens=16, temperature=0.0)

@settings(max_examples=int(sys.argv[1]), deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(st.dictionaries(names, leaf, min_size=1, max_size=4))
def check(fields):
    model = create_model("Fuzz", **fields)
    schema = grammar_schema(model.model_json_schema())
    assert schema is None or isinstance(schema, dict)
    try:
        llm.structured_predict(model, PromptTemplate("Fill it in."), llm_kwargs={"max_tokens": 16})
    except StructuredOutputError:
        pass  # a typed failure of a tiny model is fine: a crash is not

check()
print("survived")
"""


@pytest.mark.parametrize("examples", [pytest.param(8, id="smoke"), pytest.param(60, marks=pytest.mark.slow, id="fuzz")])
def test_schema_to_grammar_fuzz_never_crashes(model_path: Path, examples: int) -> None:
    """Hypothesis-generated pydantic models through the schema -> grammar -> decoding path, in a subprocess so a
    crash of llama.cpp is a failing test rather than a dead test runner."""
    result = subprocess.run(
        [sys.executable, "-c", FUZZ_PROGRAM, str(examples)], capture_output=True, text=True, timeout=1200
    )
    assert result.returncode == 0, f"exit {result.returncode}: {result.stdout[-1000:]}\n{result.stderr[-3000:]}"
    assert "survived" in result.stdout
