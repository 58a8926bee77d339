"""Tool calls on a model whose chat template knows nothing of tools: a prompt, a grammar, a parser.

The model is told about the tools in its system message and answers either with text or with
`<tool_call>{"name": ..., "arguments": {...}}</tool_call>` blocks (the Hermes layout many small
models have seen). A GBNF grammar built from the tools' JSON schemas holds generation to that
layout, so every call names a real tool and its arguments validate; `tool_choice` decides whether
text is allowed at all (`auto`), or only calls (`required`), or only one named function.
The answer is parsed back into OpenAI's `tool_calls`, whole or as stream deltas in OpenAI's shape.

History in OpenAI's shape (assistant `tool_calls`, `tool` messages) is rendered as the same text
layout, so templates that only know `content` strings still see the whole conversation.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Any

import orjson

from thrifty.errors import InvalidRequest

CALL_OPEN = "<tool_call>"
CALL_CLOSE = "</tool_call>"
MAX_PARALLEL_CALLS = 4  # a bound keeps a looping small model from emitting calls until max_tokens

_CALL_RE = re.compile(re.escape(CALL_OPEN) + r"(.*?)" + re.escape(CALL_CLOSE), re.S)


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolPlan:
    """What a request's `tools`, `tool_choice` and `parallel_tool_calls` ask of the model."""

    tools: tuple[Tool, ...]
    choice: str  # none | auto | required | a function's name
    parallel: bool = True

    @property
    def allows_text(self) -> bool:
        return self.choice in ("none", "auto")

    def callable(self) -> tuple[Tool, ...]:
        if self.choice in ("none", "auto", "required"):
            return self.tools
        return tuple(t for t in self.tools if t.name == self.choice)


def plan_tools(body: dict[str, Any]) -> ToolPlan | None:
    """The request's tool plan; None when it has no tools. Bad tools are a 400 naming the field."""
    tools = body.get("tools")
    choice = body.get("tool_choice")
    if not tools:
        if choice not in (None, "none", "auto"):
            raise InvalidRequest("tool_choice needs tools", param="tool_choice")
        return None
    if not isinstance(tools, list):
        raise InvalidRequest("tools must be a list", param="tools")
    parsed: list[Tool] = []
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            raise InvalidRequest("only function tools are supported", param=f"tools.{i}.type")
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise InvalidRequest("a function tool needs a name", param=f"tools.{i}.function.name")
        params = fn.get("parameters") or {"type": "object", "properties": {}}
        if not isinstance(params, dict):
            raise InvalidRequest("parameters must be a JSON schema object", param=f"tools.{i}")
        parsed.append(Tool(fn["name"], str(fn.get("description") or ""), params))
    names = {t.name for t in parsed}
    if len(names) != len(parsed):
        raise InvalidRequest("tool names must be unique", param="tools")
    if choice is None:
        name = "auto"
    elif isinstance(choice, str):
        if choice not in ("none", "auto", "required"):
            raise InvalidRequest(
                "tool_choice must be none, auto, required or a function", param="tool_choice"
            )
        name = choice
    elif isinstance(choice, dict):
        fn = choice.get("function")
        asked = fn.get("name") if isinstance(fn, dict) else None
        if not isinstance(asked, str) or asked not in names:
            raise InvalidRequest(
                f"tool_choice names a function that is not in tools: {asked!r}", param="tool_choice"
            )
        name = asked
    else:
        raise InvalidRequest("tool_choice must be a string or an object", param="tool_choice")
    parallel = body.get("parallel_tool_calls")
    return ToolPlan(tuple(parsed), name, parallel is not False)


# -- the prompt and the history ---------------------------------------------------------------


def tool_prompt(plan: ToolPlan) -> str:
    """The system text that tells the model its tools and how to call them."""
    listing = "\n".join(
        orjson.dumps(
            {"name": t.name, "description": t.description, "parameters": t.parameters}
        ).decode()
        for t in plan.callable()
    )
    example = f'{CALL_OPEN}{{"name": "<function-name>", "arguments": {{...}}}}{CALL_CLOSE}'
    if plan.choice == "auto":
        rule = f"If a tool helps, answer only with a call: {example}. Otherwise answer in text."
    elif plan.choice == "required":
        rule = f"Answer only with a call to one of them: {example}"
    else:
        named = example.replace("<function-name>", plan.choice)
        rule = f"Answer only with a call to {plan.choice}: {named}"
    if plan.parallel and plan.choice != "none":
        rule += " You may make several calls, one after the other."
    return f"You can call these tools:\n{listing}\n{rule}"


def render_call(call: dict[str, Any]) -> str:
    fn = call.get("function") or {}
    args = fn.get("arguments")
    try:
        parsed = orjson.loads(args) if isinstance(args, str) else (args or {})
    except orjson.JSONDecodeError:
        parsed = args
    text = orjson.dumps({"name": fn.get("name"), "arguments": parsed}).decode()
    return f"{CALL_OPEN}{text}{CALL_CLOSE}"


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def messages_as_text(messages: list[dict[str, Any]], plan: ToolPlan | None) -> list[dict[str, Any]]:
    """OpenAI messages with tool calls and results rendered as text, the tool prompt in front."""
    names: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    for m in messages:
        role = m.get("role")
        if role == "assistant" and m.get("tool_calls"):
            calls = m["tool_calls"]
            for call in calls:
                names[str(call.get("id"))] = str((call.get("function") or {}).get("name"))
            text = _text(m.get("content")) + "".join(render_call(c) for c in calls)
            out.append({"role": "assistant", "content": text})
        elif role in ("tool", "function"):
            name = m.get("name") or names.get(str(m.get("tool_call_id")), "")
            result = orjson.dumps({"name": name, "content": _text(m.get("content"))}).decode()
            out.append({"role": "user", "content": f"<tool_response>{result}</tool_response>"})
        elif role == "assistant" and m.get("content") is None:
            out.append({**m, "content": ""})
        else:
            out.append(m)
    if plan is None or plan.choice == "none":
        return out
    prompt = tool_prompt(plan)
    if out and out[0].get("role") in ("system", "developer"):
        first = out[0]
        return [{**first, "content": f"{_text(first.get('content'))}\n\n{prompt}"}, *out[1:]]
    return [{"role": "system", "content": prompt}, *out]


# -- JSON schema -> GBNF -------------------------------------------------------------------------

_PRIMITIVES = {
    "ws": '" "?',
    "string": '"\\"" char* "\\""',
    "char": '[^"\\\\\\x7F\\x00-\\x1F] | "\\\\" (["\\\\/bfnrt] | "u" [0-9a-fA-F]{4})',
    "integer": '"-"? ("0" | [1-9] [0-9]{0,15})',
    "number": '"-"? ("0" | [1-9] [0-9]{0,15}) ("." [0-9]{1,16})? ([eE] [-+]? [0-9]{1,4})?',
    "boolean": '"true" | "false"',
    "null": '"null"',
    "value": "object | array | string | number | boolean | null",
    "object": '"{" ws ( string ws ":" ws value ( ws "," ws string ws ":" ws value )* )? ws "}"',
    "array": '"[" ws ( value ( ws "," ws value )* )? ws "]"',
}


def literal(text: str) -> str:
    """A GBNF string literal matching `text` exactly."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped.replace(chr(13), chr(92) + "r").replace(chr(9), chr(92) + "t")}"'


def _json_literal(value: Any) -> str:
    return literal(orjson.dumps(value).decode())


class SchemaGrammar:
    """Rules for JSON values that validate against schemas (the subset tool schemas use)."""

    def __init__(self, root_schema: dict[str, Any] | None = None) -> None:
        self.rules: dict[str, str] = {}
        self.used: set[str] = set()
        self.root_schema = root_schema or {}
        self._refs: dict[str, str] = {}

    def _name(self, hint: str) -> str:
        base = re.sub(r"[^a-zA-Z0-9]+", "-", hint).strip("-").lower() or "r"
        name, n = base, 1
        while name in self.rules or name in _PRIMITIVES:
            n += 1
            name = f"{base}-{n}"
        return name

    def add(self, hint: str, body: str) -> str:
        name = self._name(hint)
        self.rules[name] = body
        return name

    def prim(self, name: str) -> str:
        self.used.add(name)
        return name

    def _resolve(self, ref: str) -> dict[str, Any]:
        node: Any = self.root_schema
        for part in ref.removeprefix("#/").split("/"):
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            raise InvalidRequest(f"tool schema reference {ref!r} cannot be resolved", param="tools")
        return node

    def visit(self, schema: Any, hint: str) -> str:
        """A GBNF expression for values of `schema`."""
        if schema is True or not isinstance(schema, dict) or not schema:
            return self.prim("value")
        if "$ref" in schema:
            ref = schema["$ref"]
            if ref not in self._refs:
                name = self._name(ref.rsplit("/", 1)[-1])
                self._refs[ref] = name
                self.rules[name] = ""  # reserved first: a recursive schema refers to itself
                self.rules[name] = self.visit(self._resolve(ref), name)
            return self._refs[ref]
        if "const" in schema:
            return _json_literal(schema["const"])
        if isinstance(schema.get("enum"), list):
            return "(" + " | ".join(_json_literal(v) for v in schema["enum"]) + ")"
        for key in ("anyOf", "oneOf"):
            if isinstance(schema.get(key), list):
                alts = [self.visit(s, f"{hint}-{i}") for i, s in enumerate(schema[key])]
                return "(" + " | ".join(alts) + ")"
        if isinstance(schema.get("allOf"), list) and len(schema["allOf"]) == 1:
            return self.visit(schema["allOf"][0], hint)
        kind = schema.get("type")
        if isinstance(kind, list):
            alts = [self.visit({**schema, "type": k}, f"{hint}-{k}") for k in kind]
            return "(" + " | ".join(alts) + ")"
        if kind == "object" or (kind is None and "properties" in schema):
            return self._object(schema, hint)
        if kind == "array":
            return self._array(schema, hint)
        if kind == "string":
            lo, hi = schema.get("minLength"), schema.get("maxLength")
            if isinstance(lo, int) or isinstance(hi, int):
                self.used.add("char")
                reps = f"{{{lo or 0},{hi if isinstance(hi, int) else ''}}}"
                return self.add(hint, f'"\\"" char{reps} "\\""')
            return self.prim("string")
        if kind in ("integer", "number", "boolean", "null"):
            return self.prim(kind)
        return self.prim("value")

    def _object(self, schema: dict[str, Any], hint: str) -> str:
        props = schema.get("properties")
        if not isinstance(props, dict) or not props:
            return self.prim("object")
        required = [k for k in props if k in set(schema.get("required") or [])]
        optional = [k for k in props if k not in required]
        self.used.add("ws")
        kv = {
            k: f'{_json_literal(k)} ws ":" ws {self.visit(props[k], f"{hint}-{k}")}' for k in props
        }
        sep = ' ws "," ws '
        body = sep.join(kv[k] for k in required)
        if required:
            body += "".join(f" ({sep.strip()} {kv[k]})?" for k in optional)
        elif optional:
            # no required key: any non-empty run of the optional ones, in order, or none at all
            chains = []
            for i, k in enumerate(optional):
                rest = "".join(f" ({sep.strip()} {kv[j]})?" for j in optional[i + 1 :])
                chains.append(f"{kv[k]}{rest}")
            body = "(" + " | ".join(chains) + ")?"
        return self.add(hint, f'"{{" ws {body} ws "}}"')

    def _array(self, schema: dict[str, Any], hint: str) -> str:
        item = self.visit(schema.get("items"), f"{hint}-item")
        self.used.add("ws")
        lo: int = schema["minItems"] if isinstance(schema.get("minItems"), int) else 0
        hi: int | None = schema["maxItems"] if isinstance(schema.get("maxItems"), int) else None
        if hi == 0:
            return self.add(hint, '"[" ws "]"')
        more_lo, more_hi = max(lo - 1, 0), "" if hi is None else str(hi - 1)
        items = f'{item} ( ws "," ws {item} ){{{more_lo},{more_hi}}}'
        if lo == 0:
            items = f"( {items} )?"
        return self.add(hint, f'"[" ws {items} ws "]"')

    def render(self, root: str) -> str:
        """The whole grammar with `root ::= <root>` and every primitive the rules use."""
        needed = set(self.used)
        deps = {"value": {"object", "array", "string", "number", "boolean", "null"}}
        deps["object"] = {"ws", "string", "value"}
        deps["array"] = {"ws", "value"}
        deps["string"] = {"char"}
        stack = list(needed)
        while stack:
            for dep in deps.get(stack.pop(), ()):
                if dep not in needed:
                    needed.add(dep)
                    stack.append(dep)
        lines = [f"root ::= {root}"]
        lines += [f"{name} ::= {body}" for name, body in self.rules.items()]
        lines += [f"{name} ::= {_PRIMITIVES[name]}" for name in _PRIMITIVES if name in needed]
        return "\n".join(lines) + "\n"


def schema_grammar(schema: dict[str, Any]) -> str:
    """A GBNF grammar for JSON values valid against `schema`."""
    g = SchemaGrammar(schema)
    return g.render(g.visit(schema, "value-root"))


def format_grammar(response_format: Any) -> str | None:
    """The grammar for `response_format` (json_object, json_schema); None for plain text.

    llama-server's own schema grammar allows free whitespace between tokens, and a small model
    (Gemma 3 270M) fills it with newlines until max_tokens; this one allows one space at most.
    """
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        g = SchemaGrammar()
        return g.render(g.prim("object"))
    if kind != "json_schema":
        return None
    spec = response_format.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    if schema is None:
        schema = {"type": "object"}
    if not isinstance(schema, dict):
        raise InvalidRequest(
            "response_format.json_schema.schema must be a JSON schema object",
            param="response_format.json_schema.schema",
        )
    return schema_grammar(schema)


def tool_grammar(plan: ToolPlan) -> str:
    """The grammar for an answer under `plan`: calls to its tools, or text where it allows."""
    g = SchemaGrammar()
    alts = []
    for i, tool in enumerate(plan.callable()):
        g.root_schema = tool.parameters
        args = g.visit(tool.parameters, f"args-{i}-{tool.name}")
        head = literal(f'{{"name": {orjson.dumps(tool.name).decode()}, "arguments": ')
        alts.append(g.add(f"fn-{i}-{tool.name}", f'{head} {args} "}}"'))
    call = g.add("call", f"{literal(CALL_OPEN)} ({' | '.join(alts)}) {literal(CALL_CLOSE)}")
    more = MAX_PARALLEL_CALLS - 1 if plan.parallel else 0
    calls = g.add("calls", f'{call} ("\\n" {call}){{0,{more}}}') if more else call
    if not plan.allows_text:
        return g.render(calls)
    # text may be anything that does not open with the call marker's first character
    text = g.add("text", "[^<] .*")
    return g.render(f"{calls} | {text}")


# -- parsing the answer -----------------------------------------------------------------------


def call_id() -> str:
    return f"call_{secrets.token_hex(12)}"


@dataclass(slots=True)
class ParsedAnswer:
    content: str | None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)


def parse_answer(text: str, plan: ToolPlan) -> ParsedAnswer:
    """Split generated text into content and OpenAI tool_calls; calls to unknown tools stay text."""
    if plan.choice == "none" or CALL_OPEN not in text:
        return ParsedAnswer(text)
    names = {t.name for t in plan.callable()}
    calls: list[dict[str, Any]] = []
    for raw in _CALL_RE.findall(text):
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(data, dict) or data.get("name") not in names:
            continue
        args = data.get("arguments")
        arguments = orjson.dumps(args if args is not None else {}).decode()
        calls.append(
            {
                "id": call_id(),
                "type": "function",
                "function": {"name": data["name"], "arguments": arguments},
            }
        )
        if not plan.parallel:
            break
    if not calls:
        return ParsedAnswer(text)
    rest = _CALL_RE.sub("", text).strip()
    return ParsedAnswer(rest or None, calls)


def apply_to_reply(payload: dict[str, Any], plan: ToolPlan) -> None:
    """Turn each choice's text into tool_calls where it holds calls (in place)."""
    for choice in payload.get("choices") or []:
        message = choice.get("message")
        if not isinstance(message, dict):
            continue
        parsed = parse_answer(message.get("content") or "", plan)
        if parsed.tool_calls:
            message["content"] = parsed.content
            message["tool_calls"] = parsed.tool_calls
            choice["finish_reason"] = "tool_calls"


class ToolStream:
    """Per-request chunk filter: text passes as it comes; calls leave as OpenAI tool-call deltas.

    Output that starts like a call is held back until its end (a call is only useful whole, and
    holding it lets the filter check it before any of it leaves); text that cannot be a call is
    released at once.
    """

    def __init__(self, plan: ToolPlan) -> None:
        self.plan = plan
        self.held: dict[int, list[str]] = {}
        self.passing: set[int] = set()  # choices known to be plain text

    def chunk(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for choice in chunk.get("choices") or []:
            index = choice.get("index", 0)
            delta = choice.get("delta") or {}
            text = delta.get("content")
            finish = choice.get("finish_reason")
            if index in self.passing or self.plan.choice == "none":
                out.append(_with_choice(chunk, choice))
                continue
            if text:
                self.held.setdefault(index, []).append(text)
            held = "".join(self.held.get(index, []))
            if self.plan.allows_text and held and not held.lstrip().startswith(CALL_OPEN[:1]):
                self.passing.add(index)  # text: release what was held, pass the rest
                self.held.pop(index, None)
                released = {**delta, "content": held}
                out.append(_with_choice(chunk, {**choice, "delta": released}))
                continue
            if finish is None:
                rest = {k: v for k, v in delta.items() if k != "content"}
                if rest:  # the role, say, leaves at once
                    out.append(_with_choice(chunk, {**choice, "delta": rest}))
                continue
            out.extend(self._finish(chunk, choice, held))
        return out

    def _finish(self, chunk: dict[str, Any], choice: dict[str, Any], held: str) -> list[dict]:
        index = choice.get("index", 0)
        self.held.pop(index, None)
        parsed = parse_answer(held, self.plan)
        out = []
        if parsed.content:
            text = {"content": parsed.content}
            out.append(_with_choice(chunk, {"index": index, "delta": text, "finish_reason": None}))
        for i, call in enumerate(parsed.tool_calls):
            fn = call["function"]
            head = {"index": i, "id": call["id"], "type": "function"}
            opening = {**head, "function": {"name": fn["name"], "arguments": ""}}
            args = {"index": i, "function": {"arguments": fn["arguments"]}}
            for part in (opening, args):
                delta: dict[str, Any] = {"tool_calls": [part]}
                if i == 0 and part is opening:
                    delta["content"] = None
                out.append(
                    _with_choice(chunk, {"index": index, "delta": delta, "finish_reason": None})
                )
        finish = "tool_calls" if parsed.tool_calls else choice.get("finish_reason")
        out.append(_with_choice(chunk, {**choice, "delta": {}, "finish_reason": finish}))
        return out

    def close(self) -> list[dict[str, Any]]:
        return []


def _with_choice(chunk: dict[str, Any], choice: dict[str, Any]) -> dict[str, Any]:
    return {**chunk, "choices": [choice]}
