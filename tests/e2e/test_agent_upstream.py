"""Agents through an upstream: tools, structured output and the Anthropic API via `deepseek-chat`,
the session's stand-in cloud (a second thrifty serving Gemma 3 270M), with the official SDKs and
LangChain, streamed and not. The gateway passes tools through; the cloud honours them."""

from __future__ import annotations

from typing import Any

import jsonschema
import openai
import orjson
import pytest

from support import ThriftyServer

pytestmark = pytest.mark.slow

CITY = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
TOOLS: Any = [
    {
        "type": "function",
        "function": {"name": "get_weather", "description": "Weather in a city", "parameters": CITY},
    }
]
ASK: Any = [{"role": "user", "content": "What is the weather in Paris?"}]


def test_tool_calls_through_the_upstream(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="deepseek-chat",
        messages=ASK,
        tools=TOOLS,
        tool_choice="required",
        max_tokens=60,
        temperature=0,  # greedy: the same answer every run
    )
    assert raw.headers["x-thrifty-route"] == "deepseek-chat"
    reply = raw.parse()
    calls = reply.choices[0].message.tool_calls
    assert reply.choices[0].finish_reason == "tool_calls" and calls
    jsonschema.validate(orjson.loads(calls[0].function.arguments), CITY)
    stream = client.chat.completions.create(
        model="deepseek-chat",
        messages=ASK,
        tools=TOOLS,
        tool_choice="required",
        max_tokens=60,
        temperature=0,
        stream=True,
    )
    arguments: dict[int, str] = {}
    for chunk in stream:
        for d in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
            text = (d.function.arguments or "") if d.function else ""
            arguments[d.index] = arguments.get(d.index, "") + text
    assert arguments
    for text in arguments.values():
        jsonschema.validate(orjson.loads(text), CITY)


def cloud_chat(gateway: ThriftyServer) -> Any:
    """LangChain's ChatOpenAI on the gateway's cloud model, greedy."""
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        model="deepseek-chat",
        base_url=gateway.base_url,
        api_key="unused",  # type: ignore[arg-type]
        max_retries=0,
        max_tokens=60,
        temperature=0,
    )


def test_langchain_through_the_upstream(gateway: ThriftyServer) -> None:
    from langchain_core.messages import HumanMessage, ToolMessage
    from pydantic import BaseModel

    llm = cloud_chat(gateway)
    bound = llm.bind_tools(TOOLS, tool_choice="get_weather")
    messages: list[Any] = [HumanMessage("What is the weather in Paris?")]
    first = bound.invoke(messages)
    assert first.tool_calls and first.tool_calls[0]["name"] == "get_weather"
    messages += [first, ToolMessage("18C and sunny", tool_call_id=first.tool_calls[0]["id"])]
    second = llm.bind_tools(TOOLS, tool_choice="none").invoke(messages)
    assert isinstance(second.content, str) and second.content

    class City(BaseModel):
        city: str

    found = llm.with_structured_output(City, method="function_calling").invoke("Paris weather?")
    assert isinstance(found, City)


# LangChain dumps the openai SDK's streamed ParsedChatCompletion, whose `parsed` is typed None
@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")
def test_langchain_json_schema_through_the_upstream(gateway: ThriftyServer) -> None:
    """response_format json_schema reaches the cloud, whose model is held to the schema."""
    from pydantic import BaseModel

    class City(BaseModel):
        city: str
        country: str

    llm = cloud_chat(gateway)
    structured = llm.with_structured_output(City, method="json_schema", include_raw=True)
    whole = structured.invoke("Name a big city in France.")
    assert isinstance(whole["parsed"], City), whole["raw"]
    streamed = list(llm.with_structured_output(City, method="json_schema").stream("Name a city."))
    assert streamed and isinstance(streamed[-1], City)


def test_several_choices_through_the_upstream(client: openai.OpenAI) -> None:
    """`n` passes through to an upstream that allows it, whole and streamed. Greedy: sampled, the
    stand-in's tiny model may end a choice at once with no text."""
    reply = client.chat.completions.create(
        model="deepseek-chat", messages=ASK, n=2, max_tokens=8, temperature=0
    )
    assert sorted(c.index for c in reply.choices) == [0, 1]
    assert all(c.message.content for c in reply.choices)
    stream = client.chat.completions.create(
        model="deepseek-chat", messages=ASK, n=2, max_tokens=8, temperature=0, stream=True
    )
    indexes = {c.index for chunk in stream for c in chunk.choices}
    assert indexes == {0, 1}


def test_anthropic_sdk_through_the_upstream(gateway: ThriftyServer) -> None:
    import anthropic

    client = anthropic.Anthropic(base_url=gateway.url, api_key="unused", max_retries=0)
    # greedy, and a question the stand-in's tiny model answers: sampled, "Hi" can end at once
    ask: Any = [{"role": "user", "content": "What is the capital of France?"}]
    message = client.messages.create(
        model="deepseek-chat", max_tokens=16, messages=ask, extra_body={"temperature": 0}
    )
    assert message.content and message.content[0].type == "text"
    with client.messages.stream(
        model="deepseek-chat", max_tokens=16, messages=ask, extra_body={"temperature": 0}
    ) as stream:
        final = stream.get_final_message()
    assert final.usage.output_tokens > 0
