"""Templates: one parser, at construction, whose errors name the fix; valid templates behave as LlamaIndex's."""

from __future__ import annotations

import pytest

from llmkit import ChatMessage, ChatPromptTemplate, PromptTemplate, TemplateError
from llmkit.errors import ConfigurationError


def test_valid_templates_keep_their_behaviour() -> None:
    template = PromptTemplate("Write about {topic} in {n} lines.")
    assert template.template_vars == ["topic", "n"]
    assert template.format(topic="cats", n=3) == "Write about cats in 3 lines."
    partial = template.partial_format(topic="dogs")
    assert partial.format(n=2) == "Write about dogs in 2 lines."
    assert template.format_messages(topic="x", n=1)[0].content == "Write about x in 1 lines."
    assert template.format(topic="a", n=1, unused="ignored") == "Write about a in 1 lines."  # extras are ignored
    chat = ChatPromptTemplate.from_messages([("system", "You are {who}."), ("user", "{q} {q}")])
    assert chat.template_vars == ["who", "q"]
    assert [m.content for m in chat.partial_format(who="terse").format_messages(q="hi")] == ["You are terse.", "hi hi"]


def test_escaped_braces_are_literal() -> None:
    template = PromptTemplate('Answer as {{"city": "..."}} about {place}.')
    assert template.template_vars == ["place"]
    assert template.format(place="France") == 'Answer as {"city": "..."} about France.'


def test_format_specs_attributes_and_conversions_work() -> None:
    template = PromptTemplate("{x:>4}|{p.real}|{d[k]}|{s!r}")
    assert template.template_vars == ["x", "p", "d", "s"]
    assert template.format(x="a", p=2, d={"k": 1}, s="q") == "   a|2|1|'q'"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('Answer as {"city": ...}', "escape literal braces as {{ and }}"),
        ("JSON: { 'a': 1 }", "escape literal braces as {{ and }}"),
        ("Fill {} in", "is not supported: name the variable"),
        ("Fill {0} in", "positional {0} in"),
        ("a stray { brace", "stray brace"),
        ("a stray } brace", "stray brace"),
        ("{unclosed", "stray brace"),
        ("{x:{y:{z}}}", "nests a replacement field in its format spec"),
        ("{x:{y}}", "nests a replacement field in its format spec"),
        ("{x!z}", "unknown conversion !z"),
    ],
)
def test_broken_templates_fail_at_construction_naming_the_fix(text: str, says: str) -> None:
    with pytest.raises(TemplateError) as info:
        PromptTemplate(text)
    assert says in str(info.value)
    assert isinstance(info.value, ConfigurationError)  # and a ValueError, as before
    with pytest.raises(TemplateError):
        ChatPromptTemplate([ChatMessage(role="user", content=text)])


def test_missing_variable_names_it_and_how_to_pass_it() -> None:
    template = PromptTemplate("About {topic} for {audience}.")
    with pytest.raises(TemplateError, match=r"missing variable\(s\) 'audience': pass audience=\.\.\."):
        template.format(topic="cats")
    chat = ChatPromptTemplate.from_messages([("user", "{q}")])
    with pytest.raises(TemplateError, match=r"pass q=\.\.\."):
        chat.format_messages()


def test_a_value_that_does_not_suit_the_spec_is_a_template_error() -> None:
    with pytest.raises(TemplateError, match="could not be filled: ValueError"):
        PromptTemplate("{n:d}").format(n="three")
    with pytest.raises(TemplateError, match="could not be filled: KeyError"):
        PromptTemplate("{d[k]}").format(d={})
