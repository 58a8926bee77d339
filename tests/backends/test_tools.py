"""Tool calls for templates without tool support: plan, prompt, grammar and parsing, offline."""

from __future__ import annotations

import orjson
import pytest

from thrifty.backends.local_api import prepare
from thrifty.backends.tools import (
    ToolStream,
    messages_as_text,
    parse_answer,
    plan_tools,
    schema_grammar,
    tool_grammar,
)
from thrifty.errors import InvalidRequest

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["c", "f"]},
            },
            "required": ["city"],
        },
    },
}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}


def test_plan_reads_choice_and_parallel() -> None:
    plan = plan_tools({"tools": [WEATHER, TIME], "tool_choice": "required"})
    assert plan is not None and plan.choice == "required" and plan.parallel
    named = plan_tools(
        {
            "tools": [WEATHER, TIME],
            "tool_choice": {"type": "function", "function": {"name": "get_time"}},
            "parallel_tool_calls": False,
        }
    )
    assert named is not None and named.choice == "get_time" and not named.parallel
    assert [t.name for t in named.callable()] == ["get_time"]
    assert plan_tools({"messages": []}) is None


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"tools": [WEATHER], "tool_choice": {"function": {"name": "nope"}}}, "tool_choice"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tools": [{"type": "retrieval"}]}, "tools.0.type"),
        ({"tools": [{"type": "function", "function": {}}]}, "tools.0.function.name"),
        ({"tools": [WEATHER, WEATHER]}, "tools"),
        ({"tools": [WEATHER], "tool_choice": "sometimes"}, "tool_choice"),
    ],
)
def test_bad_tools_are_400s_naming_the_field(body: dict, param: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        plan_tools(body)
    assert err.value.param == param


def test_answer_with_calls_parses_into_openai_tool_calls() -> None:
    plan = plan_tools({"tools": [WEATHER, TIME]})
    assert plan is not None
    text = (
        '<tool_call>{"name": "get_weather", "arguments": {"city": "北京"}}</tool_call>\n'
        '<tool_call>{"name": "get_time", "arguments": {}}</tool_call>'
    )
    parsed = parse_answer(text, plan)
    assert parsed.content is None
    assert [c["function"]["name"] for c in parsed.tool_calls] == ["get_weather", "get_time"]
    assert orjson.loads(parsed.tool_calls[0]["function"]["arguments"]) == {"city": "北京"}
    assert all(c["id"].startswith("call_") and c["type"] == "function" for c in parsed.tool_calls)
    single = plan_tools({"tools": [WEATHER, TIME], "parallel_tool_calls": False})
    assert single is not None and len(parse_answer(text, single).tool_calls) == 1


def test_unknown_tools_and_broken_json_stay_text() -> None:
    plan = plan_tools({"tools": [WEATHER]})
    assert plan is not None
    for text in (
        "Plain answer.",
        '<tool_call>{"name": "rm_rf", "arguments": {}}</tool_call>',
        '<tool_call>{"name": "get_weather", "argu</tool_call>',
    ):
        parsed = parse_answer(text, plan)
        assert parsed.tool_calls == [] and parsed.content == text


def test_history_renders_calls_and_results_as_text_with_the_tool_prompt() -> None:
    plan = plan_tools({"tools": [WEATHER], "tool_choice": "auto"})
    call = {"id": "call_1", "type": "function"}
    call["function"] = {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C, sunny"},
    ]
    out = messages_as_text(messages, plan)
    assert [m["role"] for m in out] == ["system", "user", "assistant", "user"]
    assert out[0]["content"].startswith("Be brief.") and "get_weather" in out[0]["content"]
    assert out[2]["content"] == (
        '<tool_call>{"name":"get_weather","arguments":{"city":"Paris"}}</tool_call>'
    )
    assert "get_weather" in out[3]["content"] and "18C, sunny" in out[3]["content"]
    assert all(isinstance(m["content"], str) for m in out)


def test_grammar_covers_each_tool_and_only_allows_text_under_auto() -> None:
    auto = plan_tools({"tools": [WEATHER, TIME]})
    required = plan_tools({"tools": [WEATHER, TIME], "tool_choice": "required"})
    named = plan_tools(
        {"tools": [WEATHER, TIME], "tool_choice": {"function": {"name": "get_time"}}}
    )
    assert auto is not None and required is not None and named is not None
    g_auto, g_req, g_named = tool_grammar(auto), tool_grammar(required), tool_grammar(named)
    assert g_auto.startswith("root ::= ") and "text ::=" in g_auto
    assert "text ::=" not in g_req and "get_weather" in g_req and "get_time" in g_req
    assert "get_weather" not in g_named and "get_time" in g_named
    assert '"\\"c\\""' in g_req  # the enum's values are literals


def test_schema_grammar_handles_refs_optional_keys_and_arrays() -> None:
    schema = {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}, "minItems": 1},
            "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        },
        "$defs": {
            "Item": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "qty": {"type": "integer"}},
            }
        },
    }
    grammar = schema_grammar(schema)
    names = [line.split(" ::= ")[0] for line in grammar.splitlines()]
    assert len(names) == len(set(names))  # every rule defined once
    defined = set(names)
    import re

    for line in grammar.splitlines():
        body = re.sub(r'"(\\.|[^"\\])*"|\[(\\.|[^\]\\])*\]', "", line.split(" ::= ", 1)[1])
        for ref in re.findall(r"[a-z][a-z0-9-]*", body):
            assert ref in defined, f"{ref} is used but not defined in:\n{grammar}"


def test_stream_releases_text_and_turns_calls_into_deltas() -> None:
    plan = plan_tools({"tools": [WEATHER]})
    assert plan is not None
    base = {"id": "x", "object": "chat.completion.chunk"}

    def chunk(content: str | None, finish: str | None = None) -> dict:
        delta = {"content": content} if content is not None else {}
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    text = ToolStream(plan)
    out = [c for part in ("Hel", "lo") for c in text.chunk(chunk(part))]
    assert "".join(c["choices"][0]["delta"]["content"] for c in out) == "Hello"

    calls = ToolStream(plan)
    parts = [
        "<tool_",
        'call>{"name": "get_weather", ',
        '"arguments": {"city": "Oslo"}}</tool_call>',
    ]
    held = [c for part in parts for c in calls.chunk(chunk(part))]
    assert held == []  # nothing leaves before the call is whole
    out = calls.chunk(chunk(None, "stop"))
    deltas = [c["choices"][0]["delta"] for c in out]
    assert deltas[0]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": ""}
    assert orjson.loads(deltas[1]["tool_calls"][0]["function"]["arguments"]) == {"city": "Oslo"}
    assert out[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_local_call_fixes_logprobs_defaults_and_llama_fields() -> None:
    call = prepare(
        "chat",
        {"messages": [{"role": "user", "content": "hi"}], "logprobs": True},
        default_max_tokens=64,
        slots=2,
    )
    assert call.body["max_tokens"] == 64 and call.body["top_logprobs"] == 1
    token = {"token": "a", "logprob": -0.1, "top_logprobs": [{"token": "a"}, {"token": "b"}]}
    from thrifty.backends.base import Reply

    reply = Reply(
        {
            "choices": [{"index": 0, "message": {}, "logprobs": {"content": [token]}}],
            "timings": {"predicted_n": 1},
            "system_fingerprint": "b0-unknown",
        }
    )
    payload = call.reply(reply).payload
    assert "timings" not in payload and "system_fingerprint" not in payload
    assert payload["choices"][0]["logprobs"]["content"][0]["top_logprobs"] == []
    with pytest.raises(InvalidRequest) as err:
        prepare("chat", {"messages": [], "n": 3}, default_max_tokens=None, slots=2)
    assert err.value.param == "n"
    first = call.chunk({"choices": [{"index": 0, "delta": {"content": "a"}}]})
    again = call.chunk({"choices": [{"index": 0, "delta": {"content": "b"}}]})
    assert first[0]["choices"][0]["delta"] == {"role": "assistant", "content": "a"}
    assert again[0]["choices"][0]["delta"] == {"content": "b"}


def test_response_format_becomes_a_whitespace_tight_grammar() -> None:
    city = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    fmt = {"type": "json_schema", "json_schema": {"name": "City", "schema": city}}
    call = prepare(
        "chat",
        {"messages": [{"role": "user", "content": "hi"}], "response_format": fmt},
        default_max_tokens=None,
        slots=1,
    )
    # llama-server gets thrifty's grammar, not the schema (its own grammar allows free whitespace)
    assert "response_format" not in call.body
    grammar = call.body["grammar"]
    assert grammar.startswith("root ::= ") and '"\\"name\\""' in grammar
    assert 'ws ::= " "?' in grammar.splitlines()
    obj = prepare(
        "chat",
        {"messages": [], "response_format": {"type": "json_object"}},
        default_max_tokens=None,
        slots=1,
    )
    assert obj.body["grammar"].startswith("root ::= object")
    text = prepare(
        "chat",
        {"messages": [], "response_format": {"type": "text"}},
        default_max_tokens=None,
        slots=1,
    )
    assert "grammar" not in text.body and text.body["response_format"] == {"type": "text"}
    bad = {"type": "json_schema", "json_schema": {"name": "x", "schema": [1]}}
    with pytest.raises(InvalidRequest) as err:
        prepare("chat", {"messages": [], "response_format": bad}, default_max_tokens=None, slots=1)
    assert err.value.param == "response_format.json_schema.schema"
