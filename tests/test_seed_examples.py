"""Every code example of seed 004, verbatim but for the import, against ScriptedLLM."""

from __future__ import annotations

from pydantic import BaseModel

from llmkit import ChatMessage, PromptTemplate, ScriptedLLM

llm = ScriptedLLM()


class Test(BaseModel):
    """My test class."""

    name: str


def test_structured_predict(capsys) -> None:  # type: ignore[no-untyped-def]
    prompt = PromptTemplate("Please predict a Test with a random name related to {topic}.")
    output = llm.structured_predict(Test, prompt, topic="cats")
    print(output.name)
    assert capsys.readouterr().out == "string\n"


async def test_astructured_predict() -> None:
    prompt = PromptTemplate("Please predict a Test with a random name related to {topic}.")
    output = await llm.astructured_predict(Test, prompt, topic="cats")
    print(output.name)
    assert isinstance(output, Test)


def test_stream_structured_predict() -> None:
    prompt = PromptTemplate("Please predict a Test with a random name related to {topic}.")
    stream_output = llm.stream_structured_predict(Test, prompt, topic="cats")
    outputs = []
    for partial_output in stream_output:
        # stream partial outputs until completion
        print(partial_output.name)
        outputs.append(partial_output)
    assert outputs[-1] == Test(name="string")


async def test_astream_structured_predict() -> None:
    prompt = PromptTemplate("Please predict a Test with a random name related to {topic}.")
    stream_output = await llm.astream_structured_predict(Test, prompt, topic="cats")
    outputs = []
    async for partial_output in stream_output:
        # stream partial outputs until completion
        print(partial_output.name)
        outputs.append(partial_output)
    assert outputs[-1] == Test(name="string")


def test_predict() -> None:
    prompt = PromptTemplate("Please write a random name related to {topic}.")
    output = llm.predict(prompt, topic="cats")
    print(output)
    assert output == "Please write a random name related to cats."


def test_stream(capsys) -> None:  # type: ignore[no-untyped-def]
    prompt = PromptTemplate("Please write a random name related to {topic}.")
    gen = llm.stream(prompt, topic="cats")
    for token in gen:
        print(token, end="", flush=True)
    assert capsys.readouterr().out == "Please write a random name related to cats."


async def test_apredict() -> None:
    prompt = PromptTemplate("Please write a random name related to {topic}.")
    output = await llm.apredict(prompt, topic="cats")
    print(output)
    assert output.endswith("cats.")


async def test_astream(capsys) -> None:  # type: ignore[no-untyped-def]
    prompt = PromptTemplate("Please write a random name related to {topic}.")
    gen = await llm.astream(prompt, topic="cats")
    async for token in gen:
        print(token, end="", flush=True)
    assert capsys.readouterr().out == "Please write a random name related to cats."


def test_chat() -> None:
    response = llm.chat([ChatMessage(role="user", content="Hello")])
    print(response.content)
    assert response.content == "Hello"


def test_complete() -> None:
    response = llm.complete("your prompt")
    print(response.text)
    assert response.text == "your prompt"


def test_stream_chat(capsys) -> None:  # type: ignore[no-untyped-def]
    gen = llm.stream_chat([ChatMessage(role="user", content="Hello")])
    for response in gen:
        print(response.delta, end="", flush=True)
    assert capsys.readouterr().out == "Hello"


def test_stream_complete(capsys) -> None:  # type: ignore[no-untyped-def]
    gen = llm.stream_complete("your prompt")
    for response in gen:
        print(response.text, end="", flush=True)
    assert capsys.readouterr().out == "your your prompt"


async def test_achat() -> None:
    response = await llm.achat([ChatMessage(role="user", content="Hello")])
    print(response.content)
    assert response.content == "Hello"


async def test_acomplete() -> None:
    response = await llm.acomplete("your prompt")
    print(response.text)
    assert response.text == "your prompt"


async def test_astream_chat() -> None:
    gen = await llm.astream_chat([ChatMessage(role="user", content="Hello")])
    deltas = []
    async for response in gen:
        print(response.delta, end="", flush=True)
        deltas.append(response.delta)
    assert "".join(deltas) == "Hello"


async def test_astream_complete() -> None:
    gen = await llm.astream_complete("your prompt")
    texts = []
    async for response in gen:
        print(response.text, end="", flush=True)
        texts.append(response.text)
    assert texts[-1] == "your prompt"
