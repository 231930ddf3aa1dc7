//! The Reka chat format over HTTP, through the components: a multi-turn chat
//! with a system prompt and earlier reasoning, sent to the tiny Reka checkpoint
//! (tests/fixtures/reka_tiny: transformers and llama.cpp both decode " Hi there
//! <sep>" greedily after any Reka chat prompt), streams back " Hi there " and
//! stops at the `<sep>` stop string.

mod support;

use serde_json::{json, Value};
use support::Server;

fn fixture() -> Value {
    let path = support::root().join("tests/fixtures/reka_tiny/reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("reference.json")).expect("json")
}

fn server() -> Server {
    Server::start_model(&support::root().join("tests/fixtures/reka_tiny"), "reka-tiny", &[])
}

#[test]
fn reka_chat_streams_and_stops_at_sep() {
    let r = fixture();
    let want = r["chain"]["text_before_stop"].as_str().expect("text_before_stop");
    let chat = &r["chat_prompt"];
    // The prompt tokens that the fixture's chat renders to (tiktoken's ids).
    let prompt = r["prompts"].as_array().expect("prompts").iter().find(|p| p["name"] == "reka_chat").expect("reka_chat");
    assert_eq!(prompt["text"], chat["rendered"]);
    let server = server();
    let body = json!({"model": "reka-tiny", "messages": chat["messages"], "temperature": 0, "max_tokens": 20,
                      "stream": true, "stream_options": {"include_usage": true}});
    let resp = server.post_json("/v1/chat/completions", &body);
    assert_eq!(resp.status, 200, "{}", resp.body);
    let events = resp.sse_data();
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1].iter().map(|e| serde_json::from_str(e).expect("chunk")).collect();
    let mut text = String::new();
    let mut finish = Value::Null;
    for c in &chunks {
        if let Some(choice) = c["choices"].get(0) {
            assert!(choice["delta"].get("reasoning_content").is_none(), "{c}");
            text.push_str(choice["delta"]["content"].as_str().unwrap_or_default());
            if !choice["finish_reason"].is_null() {
                finish = choice["finish_reason"].clone();
            }
        }
    }
    assert!(chunks.len() > 2, "streamed in pieces: {chunks:?}");
    assert_eq!(text, want);
    assert_eq!(finish, "stop");
    let usage = &chunks.last().expect("usage chunk")["usage"];
    assert_eq!(usage["prompt_tokens"], prompt["ids"].as_array().expect("ids").len());
    // " Hi", " there", " <", "sep", ">": the stop string ends with the fifth token.
    assert_eq!(usage["completion_tokens"], 5);
}

#[test]
fn reka_chat_whole_answer_has_reasoning_field_and_raw_mode_keeps_text() {
    let r = fixture();
    let want = r["chain"]["text_before_stop"].as_str().expect("text_before_stop");
    let server = server();
    let ask = |extra: Value| {
        let mut body = json!({"messages": [{"role": "user", "content": "Hello?"}], "temperature": 0, "max_tokens": 20});
        if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
            b.extend(e);
        }
        let resp = server.post_json("/v1/chat/completions", &body);
        assert_eq!(resp.status, 200, "{}", resp.body);
        resp.json()
    };
    let v = ask(json!({}));
    let msg = &v["choices"][0]["message"];
    assert_eq!(msg["content"], want);
    assert!(msg["reasoning_content"].is_null(), "{v}");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    let v = ask(json!({"reasoning_format": "raw"}));
    assert_eq!(v["choices"][0]["message"]["content"], want);
    assert!(v["choices"][0]["message"].get("reasoning_content").is_none(), "{v}");
    let resp = server.post_json("/v1/chat/completions", &json!({"messages": [{"role": "user", "content": "x"}], "reasoning_format": "loud"}));
    assert_eq!(resp.status, 400, "{}", resp.body);
    assert_eq!(resp.json()["error"]["param"], "reasoning_format");
}
