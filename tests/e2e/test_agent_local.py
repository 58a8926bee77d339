"""Agents on the local model: tools through the grammar path, structured output, and OpenAI's
small print (logprobs, the first chunk's role, n, llama-server's extra fields, default max_tokens),
driven by the official openai SDK and LangChain against a real `thrifty serve`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsonschema
import openai
import orjson
import pytest

from support import ThriftyServer

pytestmark = pytest.mark.slow

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city"],
}
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the current weather in a city",
            "parameters": WEATHER_SCHEMA,
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "Get the local time in a time zone",
            "parameters": {
                "type": "object",
                "properties": {"zone": {"type": "string"}},
                "required": ["zone"],
            },
        },
    },
]
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
DEFAULT_MAX_TOKENS = 24


@pytest.fixture(scope="module")
def server() -> Iterator[ThriftyServer]:
    config = {"local": {"parallel": 2, "ctx_size": 2048, "default_max_tokens": DEFAULT_MAX_TOKENS}}
    with ThriftyServer(config=config) as srv:
        yield srv


@pytest.fixture()
def client(server: ThriftyServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120)


def _valid_calls(calls: Any, names: set[str]) -> list[dict[str, Any]]:
    assert calls, "no tool calls"
    schemas = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
    out = []
    for call in calls:
        assert call.type == "function" and call.id and call.function.name in names
        args = orjson.loads(call.function.arguments)
        jsonschema.validate(args, schemas[call.function.name])
        out.append(args)
    return out


@pytest.mark.parametrize(
    ("choice", "names"),
    [
        ("required", {"get_weather", "get_time"}),
        ({"type": "function", "function": {"name": "get_time"}}, {"get_time"}),
    ],
)
def test_forced_tool_calls_validate(client: openai.OpenAI, choice: Any, names: set[str]) -> None:
    reply = client.chat.completions.create(
        model="local",
        messages=ASK,
        tools=TOOLS,
        tool_choice=choice,
        parallel_tool_calls=False,
        max_tokens=100,
        temperature=0,  # greedy: the same answer every run
    )
    choice0 = reply.choices[0]
    assert choice0.finish_reason == "tool_calls"
    assert len(_valid_calls(choice0.message.tool_calls, names)) == 1  # parallel_tool_calls=False


def test_tool_choice_none_answers_in_text(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="local",
        messages=ASK,
        tools=TOOLS,
        tool_choice="none",
        max_tokens=16,
        temperature=0,  # greedy: sampled, a tiny model may end at once with no text
    )
    assert reply.choices[0].message.tool_calls is None
    assert reply.choices[0].message.content


def test_streamed_tool_call_deltas_reassemble(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="local",
        messages=ASK,
        tools=TOOLS,
        tool_choice="required",
        stream=True,
        max_tokens=100,
        temperature=0,  # greedy: the same answer every run
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for delta in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
            call = calls.setdefault(delta.index, {"name": "", "arguments": "", "id": ""})
            call["id"] += delta.id or ""
            call["name"] += (delta.function.name or "") if delta.function else ""
            call["arguments"] += (delta.function.arguments or "") if delta.function else ""
    assert calls and all(c["id"].startswith("call_") for c in calls.values())
    for call in calls.values():
        assert call["name"] in ("get_weather", "get_time")
        orjson.loads(call["arguments"])
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "tool_calls"


def test_tool_results_in_history_are_accepted(client: openai.OpenAI) -> None:
    call = {"id": "call_1", "type": "function"}
    call["function"] = {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    history: list[Any] = [
        *ASK,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18 degrees, sunny"},
    ]
    reply = client.chat.completions.create(
        model="local",
        messages=history,
        tools=TOOLS,
        tool_choice="none",
        max_tokens=16,
        temperature=0,  # greedy: sampled, a tiny model may end at once with no text
    )
    assert reply.choices[0].message.content


# LangChain dumps the openai SDK's streamed ParsedChatCompletion, whose `parsed` is typed None
@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")
def test_langchain_tool_loop_and_structured_output(server: ThriftyServer) -> None:
    from langchain_core.messages import HumanMessage, ToolMessage
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI
    from pydantic import BaseModel

    @tool
    def get_weather(city: str) -> str:
        """Get the current weather in a city."""
        return f"18 degrees and sunny in {city}"

    # greedy and room to finish: sampled with 48 tokens, a call once ran out inside its arguments
    llm = ChatOpenAI(
        model="local",
        base_url=server.base_url,
        api_key="unused",  # type: ignore[arg-type]
        max_retries=0,
        max_tokens=96,
        temperature=0,
    )
    forced = llm.bind_tools([get_weather], tool_choice="get_weather")
    messages: list[Any] = [HumanMessage("What is the weather in Paris?")]
    first = forced.invoke(messages)
    assert first.tool_calls and first.tool_calls[0]["name"] == "get_weather"
    assert isinstance(first.tool_calls[0]["args"]["city"], str)
    messages += [first]
    for call in first.tool_calls:
        messages.append(ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"]))
    second = llm.bind_tools([get_weather]).invoke(messages)  # tool_choice auto: text or calls
    assert isinstance(second.content, str)
    assert second.content or second.tool_calls

    class City(BaseModel):
        name: str
        country: str

    for method in ("function_calling", "json_schema"):
        structured = llm.with_structured_output(City, method=method)  # type: ignore[arg-type]
        city = structured.invoke("Name a big city in France.")
        assert isinstance(city, City) and isinstance(city.name, str), method
    # json_schema streamed: the parts put together are the validated object
    streamed = list(llm.with_structured_output(City, method="json_schema").stream("Name a city."))
    assert streamed and isinstance(streamed[-1], City)


def test_json_schema_output_validates_whole_and_streamed(client: openai.OpenAI) -> None:
    """response_format json_schema holds the local model to the schema, whitespace included."""
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "population": {"type": "integer"},
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
        },
        "required": ["name", "population", "tags"],
        "additionalProperties": False,
    }
    fmt: Any = {"type": "json_schema", "json_schema": {"name": "City", "schema": schema}}
    ask: Any = [{"role": "user", "content": "Describe Paris as JSON."}]
    reply = client.chat.completions.create(
        model="local", messages=ask, response_format=fmt, max_tokens=120, temperature=0
    )
    whole = reply.choices[0].message.content or ""
    assert reply.choices[0].finish_reason == "stop", whole
    jsonschema.validate(orjson.loads(whole), schema)
    stream = client.chat.completions.create(
        model="local", messages=ask, response_format=fmt, max_tokens=120, temperature=0, stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    jsonschema.validate(orjson.loads(text), schema)
    # json_object: any object (asked plainly: "Describe Paris" nests {"data": {...}} to the end)
    ask = [{"role": "user", "content": "Name a big city in France and its country, as JSON."}]
    loose = client.chat.completions.create(
        model="local",
        messages=ask,
        response_format={"type": "json_object"},
        max_tokens=120,
        temperature=0,
    )
    assert isinstance(orjson.loads(loose.choices[0].message.content or ""), dict)


# -- OpenAI's small print -------------------------------------------------------------------------


def test_logprobs_follow_openai(client: openai.OpenAI) -> None:
    plain = client.chat.completions.create(
        model="local", messages=[{"role": "user", "content": "Hi"}], logprobs=True, max_tokens=3
    )
    tokens = plain.choices[0].logprobs.content  # type: ignore[union-attr]
    assert tokens and all(t.top_logprobs == [] for t in tokens)  # none unless asked
    zero = client.chat.completions.create(
        model="local",
        messages=[{"role": "user", "content": "Hi"}],
        logprobs=True,
        top_logprobs=0,
        max_tokens=3,
    )
    assert zero.choices[0].logprobs is not None and zero.choices[0].logprobs.content
    two = client.chat.completions.create(
        model="local",
        messages=[{"role": "user", "content": "Hi"}],
        logprobs=True,
        top_logprobs=2,
        max_tokens=3,
    )
    assert all(len(t.top_logprobs) == 2 for t in two.choices[0].logprobs.content or [])  # type: ignore[union-attr]
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model="local", messages=ASK, logprobs=True, top_logprobs=25, max_tokens=3
        )
    assert err.value.body["param"] == "top_logprobs"  # type: ignore[index]


def test_local_answers_carry_no_llama_server_fields(server: ThriftyServer) -> None:
    import httpx

    body = {"model": "local", "messages": ASK, "max_tokens": 4}
    whole = httpx.post(server.base_url + "/chat/completions", json=body, timeout=60).json()
    assert "timings" not in whole and whole.get("system_fingerprint") != "b0-unknown"
    with httpx.stream(
        "POST", server.base_url + "/chat/completions", json={**body, "stream": True}, timeout=60
    ) as resp:
        events = [line[6:] for line in resp.iter_lines() if line.startswith("data: {")]
    chunks = [orjson.loads(e) for e in events]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert not any("timings" in c or c.get("system_fingerprint") == "b0-unknown" for c in chunks)


def test_n_choices_up_to_the_slots_else_400(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="local", messages=ASK, n=2, max_tokens=4)
    assert [c.index for c in reply.choices] == [0, 1]
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="local", messages=ASK, n=3, max_tokens=4)
    assert err.value.body["param"] == "n"  # type: ignore[index]


def test_default_max_tokens_bounds_a_request_without_one(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="local", messages=[{"role": "user", "content": "Write a long story about a cat."}]
    )
    assert reply.usage is not None and 0 < reply.usage.completion_tokens <= DEFAULT_MAX_TOKENS
    assert reply.choices[0].finish_reason == "length"


def test_a_feature_the_target_lacks_is_a_400_naming_it(client: openai.OpenAI) -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model="local",
            messages=[
                {"role": "user", "content": [{"type": "text", "text": "What is it?"}, image]}
            ],
        )
    assert err.value.code == "unsupported_feature" and "vision" in err.value.message


def test_a_local_batch_runs_on_idle_slots(client: openai.OpenAI) -> None:
    import io
    import time

    lines = [
        {"custom_id": f"c{i}", "method": "POST", "url": "/v1/chat/completions",
         "body": {"model": "local", "max_tokens": 4,
                  "messages": [{"role": "user", "content": f"Count to {i}"}]}}
        for i in range(3)
    ]  # fmt: skip
    data = b"".join(orjson.dumps(line) + b"\n" for line in lines)
    uploaded = client.files.create(file=("b.jsonl", io.BytesIO(data)), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert batch.model_extra["x_thrifty"]["window"] == "local: idle slots"  # type: ignore[index]
    deadline = time.monotonic() + 120
    while (batch := client.batches.retrieve(batch.id)).status != "completed":
        assert time.monotonic() < deadline, batch.status
        time.sleep(0.2)
    assert batch.request_counts is not None and batch.request_counts.completed == 3
    out = [
        orjson.loads(x) for x in client.files.content(batch.output_file_id or "").text.splitlines()
    ]
    assert sorted(o["custom_id"] for o in out) == ["c0", "c1", "c2"]
    assert all(o["response"]["body"]["choices"][0]["message"]["content"] for o in out)
