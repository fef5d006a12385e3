"""Input lines -> requests: OpenAI's batch format, plain lines, and bad lines named by number."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmkit.batch.input import BadLine, BatchRequest, count_lines, parse_line, read_lines


def test_openai_batch_line_keeps_parameters_and_drops_model_and_stream() -> None:
    line = {
        "custom_id": "r1",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {
            "model": "gpt-4o-mini",
            "stream": True,
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
            "temperature": 0.2,
            "max_tokens": 9,
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
        },
    }
    request = parse_line(json.dumps(line), 3)
    assert isinstance(request, BatchRequest)
    assert (request.custom_id, request.line, request.kind) == ("r1", 3, "chat")
    assert [m.role.value for m in request.messages or []] == ["system", "user"]
    assert request.params == {
        "temperature": 0.2,
        "max_tokens": 9,
        "json_schema": {"name": "x", "schema": {"type": "object"}},
    }


def test_completions_url_and_plain_lines() -> None:
    completion = parse_line(json.dumps({"custom_id": 7, "url": "/v1/completions", "body": {"prompt": "Once"}}), 1)
    assert isinstance(completion, BatchRequest)
    assert (completion.custom_id, completion.kind, completion.prompt) == ("7", "completion", "Once")
    plain = parse_line('{"prompt": "Hello", "max_tokens": 4}', 2)
    assert isinstance(plain, BatchRequest)
    assert (plain.custom_id, plain.params, plain.messages[0].content if plain.messages else None) == (
        "line-2",
        {"max_tokens": 4},
        "Hello",
    )
    messages = parse_line('{"custom_id": "m", "messages": [{"role": "user", "content": "Yo"}]}', 3)
    assert isinstance(messages, BatchRequest)
    assert messages.kind == "chat"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{oops", "line 5: not JSON"),
        ("[1, 2]", "line 5: a line must be a JSON object"),
        ('{"custom_id": "x"}', "line 5: a line needs 'body'"),
        ('{"body": 3}', "line 5: 'body' must be a JSON object"),
        ('{"body": {"messages": []}}', "line 5: 'messages' must be a non-empty list"),
        ('{"url": "/v1/completions", "body": {"prompt": 1}}', "line 5: 'body.prompt' must be a string"),
        ('{"url": "/v1/embeddings", "body": {}}', "line 5: url '/v1/embeddings' is not supported"),
    ],
)
def test_bad_lines_say_what_is_wrong(text: str, message: str) -> None:
    bad = parse_line(text, 5)
    assert isinstance(bad, BadLine)
    assert bad.line == 5
    assert bad.error.startswith(message)


def test_bad_line_keeps_its_custom_id() -> None:
    bad = parse_line('{"custom_id": "keep-me", "body": {"messages": "no"}}', 1)
    assert isinstance(bad, BadLine)
    assert bad.custom_id == "keep-me"


def test_read_lines_streams_files_and_iterables(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"prompt": "a"}\n\n   \n{"prompt": "b"}')
    assert [(n, json.loads(t)["prompt"]) for n, t in read_lines(path)] == [(1, "a"), (4, "b")]
    assert count_lines(path) == 4
    assert [n for n, _ in read_lines([{"prompt": "x"}, "", '{"prompt": "y"}'])] == [1, 3]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ('{"custom_id": "a", "prompt": "x"}', 1),
        ('{"custom_id": 12, "body": {"messages": "nope"}}', 2),
        ('{"prompt": 3}', 3),
        ("{not json", 4),
        ("[1, 2]", 5),
        ('{"custom_id": "", "prompt": "x"}', 6),
    ],
)
def test_line_id_is_the_custom_id_parse_line_gives(text: str, line: int) -> None:
    from llmkit.batch.input import line_id

    assert line_id(text, line) == parse_line(text, line).custom_id
