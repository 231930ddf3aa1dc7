//! Structured output and tool calling over HTTP with SmolLM2-135M, a model
//! too small to follow a schema by itself: every answer must parse and
//! validate (the `jsonschema` crate, an independent validator) because the
//! generate component masks each step to the schema's language. Streaming
//! and not; tool calls in OpenAI's shapes; a tool conversation; an
//! unsupported schema keyword is a 400 that names it.

mod support;

use serde_json::{json, Value};
use support::{Response, Server};

/// Ten schemas of the kinds applications send (nested objects, arrays,
/// enums, bounded numbers, optional fields, `$ref`, unions, formats).
fn schemas() -> Vec<(&'static str, Value)> {
    let s = |max: u32| json!({"type": "string", "maxLength": max});
    vec![
        ("nested", json!({"type": "object", "properties": {"name": s(20), "address": {"type": "object", "properties": {"city": s(20), "zip": {"type": "string", "pattern": "^[0-9]{5}$"}}, "required": ["city", "zip"], "additionalProperties": false}}, "required": ["name", "address"], "additionalProperties": false})),
        ("array", json!({"type": "object", "properties": {"tags": {"type": "array", "items": s(12), "minItems": 1, "maxItems": 3}}, "required": ["tags"], "additionalProperties": false})),
        ("enums", json!({"type": "object", "properties": {"color": {"enum": ["red", "green", "blue"]}, "size": {"type": "string", "enum": ["S", "M", "L"]}}, "required": ["color", "size"], "additionalProperties": false})),
        ("bounded_numbers", json!({"type": "object", "properties": {"age": {"type": "integer", "minimum": 0, "maximum": 120}, "score": {"type": "number", "minimum": 0, "maximum": 1}}, "required": ["age", "score"], "additionalProperties": false})),
        ("optional_fields", json!({"type": "object", "properties": {"title": s(30), "subtitle": s(30), "year": {"type": "integer", "minimum": 1900, "maximum": 2100}}, "required": ["title", "year"], "additionalProperties": false})),
        ("ref", json!({"$defs": {"point": {"type": "object", "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}}, "required": ["x", "y"], "additionalProperties": false}}, "type": "object", "properties": {"start": {"$ref": "#/$defs/point"}, "end": {"$ref": "#/$defs/point"}}, "required": ["start", "end"], "additionalProperties": false})),
        ("array_of_objects", json!({"type": "array", "items": {"type": "object", "properties": {"id": {"type": "integer", "minimum": 1}, "done": {"type": "boolean"}}, "required": ["id", "done"], "additionalProperties": false}, "maxItems": 3})),
        ("unions", json!({"type": "object", "properties": {"value": {"anyOf": [s(10), {"type": "integer"}]}, "note": {"type": ["string", "null"], "maxLength": 15}}, "required": ["value", "note"], "additionalProperties": false})),
        ("const_and_nested_arrays", json!({"type": "object", "properties": {"version": {"const": 2}, "flags": {"type": "array", "items": {"type": "boolean"}, "maxItems": 4}, "matrix": {"type": "array", "maxItems": 2, "items": {"type": "array", "maxItems": 2, "items": {"type": "integer"}}}}, "required": ["version", "flags", "matrix"], "additionalProperties": false})),
        ("formats", json!({"type": "object", "properties": {"email": {"type": "string", "format": "email", "maxLength": 40}, "date": {"type": "string", "format": "date"}, "code": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{2}$"}}, "required": ["email", "date", "code"], "additionalProperties": false})),
    ]
}

fn chat(server: &Server, body: Value) -> Response {
    let mut b = json!({"model": "smollm2-135m", "temperature": 0, "max_tokens": 300});
    for (k, v) in body.as_object().expect("body") {
        b[k] = v.clone();
    }
    server.post_json("/v1/chat/completions", &b)
}

/// A streamed chat answer: its content and its finish reason.
fn streamed(resp: &Response) -> (String, String) {
    assert_eq!(resp.status, 200, "{}", resp.body);
    let (mut content, mut finish) = (String::new(), String::new());
    for d in resp.sse_data().iter().filter(|d| *d != "[DONE]") {
        let v: Value = serde_json::from_str(d).expect("event json");
        let c = &v["choices"][0];
        content.push_str(c["delta"]["content"].as_str().unwrap_or_default());
        if let Some(f) = c["finish_reason"].as_str() {
            finish = f.to_string();
        }
    }
    (content, finish)
}

fn validate(schema: &Value, text: &str, what: &str) {
    let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text}"));
    let validator = jsonschema::options().should_validate_formats(true).build(schema).expect("schema compiles");
    let errors: Vec<String> = validator.iter_errors(&v).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{what}: {text} fails its schema: {errors:?}");
}

#[test]
fn ten_schemas_give_valid_json_streaming_and_not() {
    let server = Server::start();
    for (name, schema) in schemas() {
        let body = json!({
            "messages": [{"role": "user", "content": format!("Give an example {name} object.")}],
            "response_format": {"type": "json_schema", "json_schema": {"name": name, "strict": true, "schema": schema}},
        });
        let resp = chat(&server, body.clone());
        assert_eq!(resp.status, 200, "{name}: {}", resp.body);
        let v = resp.json();
        assert_eq!(v["choices"][0]["finish_reason"], "stop", "{name}: {v}");
        validate(&schema, v["choices"][0]["message"]["content"].as_str().expect("content"), name);
        let mut b = body;
        b["stream"] = json!(true);
        let (content, finish) = streamed(&chat(&server, b));
        assert_eq!(finish, "stop", "{name} streamed");
        validate(&schema, &content, &format!("{name} streamed"));
    }
}

#[test]
fn json_object_choice_regex_and_errors() {
    let server = Server::start();
    let ask = |extra: Value| {
        let mut b = json!({"messages": [{"role": "user", "content": "Answer."}], "max_tokens": 120});
        for (k, v) in extra.as_object().expect("extra") {
            b[k] = v.clone();
        }
        chat(&server, b)
    };
    let content = |r: Response| -> String {
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["choices"][0]["message"]["content"].as_str().expect("content").to_string()
    };
    let obj = content(ask(json!({"response_format": {"type": "json_object"}})));
    assert!(serde_json::from_str::<Value>(&obj).is_ok_and(|v| v.is_object()), "{obj}");
    let picked = content(ask(json!({"guided_choice": ["yes", "no", "maybe"]})));
    assert!(["yes", "no", "maybe"].contains(&picked.as_str()), "{picked}");
    let code = content(ask(json!({"structured_outputs": {"regex": "[A-Z]{2}-[0-9]{3}"}})));
    assert!(code.len() == 6 && code.as_bytes()[2] == b'-', "{code}");
    // An unsupported keyword: a 400 naming it, and the server goes on.
    let schema = json!({"type": "array", "items": {"type": "integer"}, "uniqueItems": true});
    let r = ask(json!({"response_format": {"type": "json_schema", "json_schema": {"name": "u", "schema": schema}}}));
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("uniqueItems"), "{}", r.body);
    let r = ask(json!({"guided_regex": "(unclosed"}));
    assert_eq!(r.status, 400, "{}", r.body);
    let r = ask(json!({"response_format": {"type": "json_object"}, "guided_choice": ["a"]}));
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(!content(ask(json!({}))).is_empty());
}

fn weather() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "description": "Current weather for a city.", "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city", "unit"], "additionalProperties": false}}},
           {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {"zone": {"type": "string", "maxLength": 20}}, "required": ["zone"], "additionalProperties": false}}}])
}

/// The tool named `name`'s parameters.
fn params(name: &str) -> Value {
    weather().as_array().expect("tools").iter().find(|t| t["function"]["name"] == name).expect(name)["function"]["parameters"].clone()
}

#[test]
fn tool_calls_whole_streamed_and_a_conversation() {
    let server = Server::start();
    let user = json!({"role": "user", "content": "What's the weather in Paris?"});
    // Required: at least one call; one only without parallel calls.
    let r = chat(&server, json!({"messages": [user], "tools": weather(), "tool_choice": "required", "parallel_tool_calls": false}));
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{v}");
    assert!(choice["message"]["content"].is_null(), "{v}");
    let calls = choice["message"]["tool_calls"].as_array().expect("tool_calls");
    assert_eq!(calls.len(), 1, "{v}");
    let call = &calls[0];
    assert!(call["id"].as_str().is_some_and(|id| id.starts_with("call_")), "{call}");
    assert_eq!(call["type"], "function");
    let name = call["function"]["name"].as_str().expect("name");
    validate(&params(name), call["function"]["arguments"].as_str().expect("arguments"), "call arguments");

    // A named choice, streamed: the call assembled from its deltas as
    // OpenAI's documentation assembles them.
    let named = json!({"type": "function", "function": {"name": "get_weather"}});
    let r = chat(&server, json!({"messages": [user], "tools": weather(), "tool_choice": named, "stream": true}));
    assert_eq!(r.status, 200, "{}", r.body);
    let (mut id, mut fname, mut args, mut finish, mut deltas) = (String::new(), String::new(), String::new(), String::new(), 0);
    for d in r.sse_data().iter().filter(|d| *d != "[DONE]") {
        let e: Value = serde_json::from_str(d).expect("event");
        let c = &e["choices"][0];
        for t in c["delta"]["tool_calls"].as_array().into_iter().flatten() {
            assert_eq!(t["index"], 0, "{e}");
            id.push_str(t["id"].as_str().unwrap_or_default());
            fname.push_str(t["function"]["name"].as_str().unwrap_or_default());
            args.push_str(t["function"]["arguments"].as_str().unwrap_or_default());
            deltas += 1;
        }
        if let Some(f) = c["finish_reason"].as_str() {
            finish = f.to_string();
        }
    }
    assert_eq!((fname.as_str(), finish.as_str()), ("get_weather", "tool_calls"), "{}", r.body);
    assert!(id.starts_with("call_") && deltas > 2, "the arguments stream in pieces: {}", r.body);
    validate(&params("get_weather"), &args, "streamed arguments");

    // The conversation goes on with the result; `none` gets text.
    let assistant = json!({"role": "assistant", "content": null, "tool_calls": [{"id": id, "type": "function", "function": {"name": fname, "arguments": args}}]});
    let tool = json!({"role": "tool", "tool_call_id": id, "content": "{\"temp_c\": 18, \"sky\": \"clear\"}"});
    let r = chat(&server, json!({"messages": [user, assistant, tool], "tools": weather(), "tool_choice": "none", "max_tokens": 30}));
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    let m = &v["choices"][0]["message"];
    assert!(m["content"].as_str().is_some_and(|c| !c.is_empty()) && m["tool_calls"].is_null(), "{v}");
    assert_ne!(v["choices"][0]["finish_reason"], "tool_calls");
    // The tools and the earlier call are in the prompt: it is longer than without them.
    let bare = chat(&server, json!({"messages": [user, {"role": "assistant", "content": ""}, {"role": "user", "content": "18"}], "max_tokens": 1})).json();
    assert!(v["usage"]["prompt_tokens"].as_u64() > bare["usage"]["prompt_tokens"].as_u64(), "{v} {bare}");

    // Bad tool requests are 400s naming the field.
    for (body, param) in [
        (json!({"messages": [user], "tools": [{"type": "function"}]}), "tools[0]"),
        (json!({"messages": [user], "tools": weather(), "tool_choice": {"type": "function", "function": {"name": "nope"}}}), "tool_choice"),
        (json!({"messages": [user], "tool_choice": "required"}), "tool_choice"),
    ] {
        let r = chat(&server, body);
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!(r.json()["error"]["param"], param, "{}", r.body);
    }
}
