#!/usr/bin/env python3
"""Structured output and tool calling (issue 19) through real, unmodified Python
clients (pinned in tests/clients/requirements.txt), against our own server:
a running `reka-host serve --model <SmolLM2-135M GGUF> --model-name smollm2-135m`
(scripts/structured-client-check.sh starts one).

  a. openai: chat.completions.parse(response_format=<pydantic model>), and the
     same through the chat.completions.stream helper.
  b. instructor: Mode.TOOLS (tools + tool_choice naming the function) and
     Mode.JSON_SCHEMA (response_format json_schema). Not Mode.JSON: that is
     response_format json_object with the schema only in the prompt, and
     json_object promises any JSON object, not the schema (as OpenAI's does);
     SmolLM2-135M answers `{", ": 1}` there. So json_object is checked for
     what it promises instead, with a prompt that asks for a short object
     (asked for the City, the model writes one endless number): the content
     is a JSON object.
  c. openai tool calling: tool_choice="required" → a get_weather call whose
     arguments validate (jsonschema); the call and a tool result sent back with
     tool_choice="none" → a text answer; the first step streamed and the call
     assembled from its deltas.
  d. langchain-openai: bind_tools(tool_choice="required") → ToolMessage → a text
     answer; with_structured_output (json_schema and function_calling).

The model is far too small to choose to call a tool or to follow a schema on
its own: the server's constrained decoding is what makes every answer valid.
Greedy (temperature 0, seed 1); no client retries, so a retry cannot hide a
failure. One line per check; exits 1 on the first failure, printing the last
request sent. STRUCTURED_TRACE=1 prints every request and response body.
Usage: structured.py BASE_URL [MODEL]
"""

import json
import os
import sys
import traceback
from typing import Annotated, Literal

import instructor
import jsonschema
import openai
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field

URL = sys.argv[1].rstrip("/") + "/v1"
MODEL = sys.argv[2] if len(sys.argv) > 2 else "smollm2-135m"
TRACE = os.environ.get("STRUCTURED_TRACE") == "1"
GREEDY = dict(temperature=0, seed=1, max_tokens=300)
last_request = {}


class City(BaseModel):
    """A city. Bounded so a greedy answer always fits in max_tokens."""

    name: str = Field(max_length=40)
    country: str = Field(max_length=40)
    population: int = Field(ge=0, le=50_000_000)
    landmarks: list[Annotated[str, Field(max_length=30)]] = Field(max_length=3)
    size: Literal["village", "town", "city", "megacity"]


CITY_PROMPT = [
    {"role": "system", "content": "You answer with facts about cities."},
    {"role": "user", "content": "Describe Paris: its name, country, population, up to three landmarks and its size."},
]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "The city's name, e.g. Paris"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    },
}
WEATHER_PROMPT = [{"role": "user", "content": "What is the weather like in Paris today?"}]
TOOL_RESULT = json.dumps({"temp_c": 18})


def on_request(request):
    last_request.update(method=request.method, url=str(request.url), body=request.content.decode(errors="replace"))
    if TRACE:
        print(f">>> {request.method} {request.url}\n{last_request['body']}", file=sys.stderr)


def on_response(response):
    if TRACE:
        response.read()  # buffers a stream; the client still reads it afterwards
        print(f"<<< {response.status_code}\n{response.text}", file=sys.stderr)


HTTP = openai.DefaultHttpxClient(event_hooks={"request": [on_request], "response": [on_response]})
client = openai.OpenAI(base_url=URL, api_key="x", max_retries=0, timeout=120, http_client=HTTP)


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def openai_parse():
    c = client.chat.completions.parse(model=MODEL, messages=CITY_PROMPT, response_format=City, **GREEDY)
    parsed = c.choices[0].message.parsed
    check(isinstance(parsed, City), f"parsed is {parsed!r}; content {c.choices[0].message.content!r}")
    return parsed


def openai_stream_parse():
    with client.chat.completions.stream(model=MODEL, messages=CITY_PROMPT, response_format=City, **GREEDY) as s:
        c = s.get_final_completion()
    parsed = c.choices[0].message.parsed
    check(isinstance(parsed, City), f"parsed is {parsed!r}; content {c.choices[0].message.content!r}")
    return parsed


def instructor_mode(mode):
    def run():
        ic = instructor.from_openai(client, mode=mode)
        city = ic.chat.completions.create(
            model=MODEL, messages=CITY_PROMPT, response_model=City, max_retries=0, **GREEDY
        )
        check(isinstance(city, City), f"got {city!r}")
        return city

    return run


def openai_json_object():
    ask = 'Give the name and country of the capital of France as a JSON object with the keys "name" and "country".'
    c = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": ask}], response_format={"type": "json_object"}, **GREEDY
    )
    content, finish = c.choices[0].message.content, c.choices[0].finish_reason
    check(finish == "stop" and isinstance(json.loads(content), dict), f"finish_reason {finish!r}, content {content!r}")
    return content


def validate_weather(args_json, schema=WEATHER["function"]["parameters"]):
    args = json.loads(args_json)
    jsonschema.validate(args, schema)
    return args


def openai_tools():
    messages = list(WEATHER_PROMPT)
    c = client.chat.completions.create(
        model=MODEL, messages=messages, tools=[WEATHER], tool_choice="required", **GREEDY
    )
    choice = c.choices[0]
    msg = choice.message
    check(choice.finish_reason == "tool_calls", f"finish_reason {choice.finish_reason!r}; message {msg!r}")
    check(msg.tool_calls and msg.tool_calls[0].type == "function", f"tool_calls {msg.tool_calls!r}")
    # parallel_tool_calls defaults to true: SmolLM2 asks for both units.
    for call in msg.tool_calls:
        check(call.function.name == "get_weather" and call.id, f"tool call {call!r}")
        args = validate_weather(call.function.arguments)
    # Back to the model as the OpenAI docs do it: the SDK's message object, then one result per call.
    messages.append(msg)
    messages += [{"role": "tool", "tool_call_id": t.id, "content": TOOL_RESULT} for t in msg.tool_calls]
    c2 = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER], tool_choice="none", **GREEDY)
    choice2 = c2.choices[0]
    check(not choice2.message.tool_calls, f"tool_choice none still called: {choice2.message.tool_calls!r}")
    check(isinstance(choice2.message.content, str) and choice2.message.content.strip(), f"answer {choice2.message!r}")
    check(choice2.finish_reason in ("stop", "length"), f"finish_reason {choice2.finish_reason!r}")
    return f"{len(msg.tool_calls)} call(s), last get_weather({args}) → {choice2.message.content.strip()[:60]!r}"


def openai_tools_stream():
    stream = client.chat.completions.create(
        model=MODEL, messages=WEATHER_PROMPT, tools=[WEATHER], tool_choice="required", stream=True, **GREEDY
    )
    calls, finish = {}, None  # index → {"id", "name", "arguments"}, as the OpenAI docs assemble them
    for chunk in stream:
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        for tc in delta.tool_calls or []:
            call = calls.setdefault(tc.index, {"id": None, "name": None, "arguments": ""})
            call["id"] = tc.id or call["id"]
            if tc.function:
                call["name"] = tc.function.name or call["name"]
                call["arguments"] += tc.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    check(finish == "tool_calls", f"finish_reason {finish!r}; calls {calls!r}")
    check(calls and list(calls) == list(range(len(calls))), f"tool call indices {list(calls)}")
    for call in calls.values():
        check(call["id"] and call["name"] == "get_weather", f"assembled call {call!r}")
        args = validate_weather(call["arguments"])
    return f"{len(calls)} call(s), last get_weather({args})"


@tool
def get_weather(city: str, unit: Literal["celsius", "fahrenheit"]) -> str:
    """Get the current weather in a city."""
    return TOOL_RESULT


llm = ChatOpenAI(
    base_url=URL, api_key="x", model=MODEL, temperature=0, seed=1, max_tokens=300, max_retries=0, timeout=120,
    http_client=HTTP,
)


def langchain_tools():
    human = HumanMessage(WEATHER_PROMPT[0]["content"])
    ai = llm.bind_tools([get_weather], tool_choice="required").invoke([human])
    check(ai.tool_calls and ai.tool_calls[0]["name"] == "get_weather", f"AIMessage {ai!r}")
    schema = convert_to_openai_tool(get_weather)["function"]["parameters"]
    results = []
    for call in ai.tool_calls:
        check(call["name"] == "get_weather", f"tool call {call!r}")
        jsonschema.validate(call["args"], schema)
        results.append(ToolMessage(content=get_weather.invoke(call["args"]), tool_call_id=call["id"]))
    final = llm.invoke([human, ai, *results])
    check(isinstance(final.content, str) and final.content.strip() and not final.tool_calls, f"final {final!r}")
    return f"get_weather({call['args']}) → {final.content.strip()[:60]!r}"


def langchain_structured(method):
    def run():
        kwargs = {} if method is None else {"method": method}
        city = llm.with_structured_output(City, **kwargs).invoke(CITY_PROMPT)
        check(isinstance(city, City), f"got {city!r}")
        return city

    return run


CHECKS = [
    ("openai chat.completions.parse", openai_parse),
    ("openai chat.completions.stream (parse)", openai_stream_parse),
    ("instructor Mode.TOOLS", instructor_mode(instructor.Mode.TOOLS)),
    ("openai response_format json_object", openai_json_object),
    ("openai tools required → tool result → none", openai_tools),
    ("openai tools required, streamed", openai_tools_stream),
    ("langchain bind_tools → ToolMessage → answer", langchain_tools),
    ("langchain with_structured_output (default)", langchain_structured(None)),
    ("langchain with_structured_output (function_calling)", langchain_structured("function_calling")),
    ("instructor Mode.JSON_SCHEMA", instructor_mode(instructor.Mode.JSON_SCHEMA)),
]

if __name__ == "__main__":
    for name, run in CHECKS:
        try:
            result = run()
        except Exception as e:
            traceback.print_exc()
            print(f"FAIL {name}: {type(e).__name__}: {e}")
            if last_request:
                print(f"last request: {last_request['method']} {last_request['url']}\n{last_request['body']}")
            sys.exit(1)
        print(f"ok   {name}: {result!r}" if isinstance(result, BaseModel) else f"ok   {name}: {result}")
    print(f"all {len(CHECKS)} structured-output checks passed")
