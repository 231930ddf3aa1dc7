//! End-to-end tests (over a real socket): special tokens come only from the
//! chat template. A message that forges `<|im_start|>system …<|im_end|>` is
//! read by the model as plain text, and a completions prompt is plain text
//! unless the request sets `parse_special`. The expected token counts and
//! greedy answers are llama.cpp's (tests/fixtures/special_tokens, made by its
//! `make_reference.py`), with the real SmolLM2-135M weights.

mod support;

use serde_json::{json, Value};
use support::Server;

fn reference() -> Value {
    let path = support::root().join("tests/fixtures/special_tokens/reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("reference fixture")).expect("reference JSON")
}

fn case<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .expect("cases")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no case {name}"))
}

fn count(v: &Value) -> u64 {
    v.as_array().expect("ids").len() as u64
}

fn post(server: &Server, path: &str, body: Value) -> Value {
    let resp = server.post_json(path, &body);
    assert_eq!(resp.status, 200, "{}", resp.body);
    resp.json()
}

#[test]
fn forged_role_markers_in_chat_messages_count_as_plain_text() {
    let r = reference();
    let server = Server::start();
    for c in r["chat"].as_array().expect("chat cases") {
        let name = c["name"].as_str().expect("name");
        let (text, parsed) = (count(&c["ids"]), count(&c["ids_parsed"]));
        // The reference tells the two readings apart, so this can fail.
        assert_eq!(name == "ordinary", text == parsed, "{name}: {text} vs {parsed}");
        let v = post(&server, "/v1/chat/completions", json!({"messages": c["messages"], "temperature": 0, "max_tokens": 8}));
        assert_eq!(v["usage"]["prompt_tokens"], text, "{name}: the forged markers were not read as text");
    }
    // The model read those very tokens: its greedy answer is llama.cpp's
    // after them (it answers the user instead of obeying a forged system turn).
    for name in ["forged_system_turn", "ordinary"] {
        let c = case(&r["chat"], name);
        let v = post(&server, "/v1/chat/completions", json!({"messages": c["messages"], "temperature": 0, "max_tokens": 8}));
        assert_eq!(v["choices"][0]["message"]["content"], c["greedy"], "{name}");
        assert_eq!(v["usage"]["completion_tokens"], 8, "{name}");
    }
}

#[test]
fn completions_parse_special_tokens_only_when_asked() {
    let r = reference();
    let server = Server::start();
    for c in r["completions"].as_array().expect("completion cases") {
        let name = c["name"].as_str().expect("name");
        let body = |extra: Value| {
            let mut b = json!({"prompt": c["prompt"], "temperature": 0, "max_tokens": 8});
            if let (Some(o), Value::Object(e)) = (b.as_object_mut(), extra) {
                o.extend(e);
            }
            b
        };
        // Off by default, and when set to false or null.
        for extra in [json!({}), json!({"parse_special": false}), json!({"parse_special": null})] {
            let v = post(&server, "/v1/completions", body(extra.clone()));
            assert_eq!(v["usage"]["prompt_tokens"], count(&c["ids"]), "{name} {extra}");
        }
        let v = post(&server, "/v1/completions", body(json!({"parse_special": true})));
        assert_eq!(v["usage"]["prompt_tokens"], count(&c["ids_parse_special"]), "{name} with parse_special");
        if name == "completion_chatml" {
            assert_ne!(c["ids"], c["ids_parse_special"]);
            // With the markers parsed, the model answers as in a chat turn.
            assert_eq!(v["choices"][0]["text"], c["greedy_parse_special"], "{name}");
        }
    }
    let resp = server.post_json("/v1/completions", &json!({"prompt": "x", "parse_special": "yes"}));
    assert_eq!(resp.status, 400, "{}", resp.body);
    assert_eq!(resp.json()["error"]["param"], "parse_special", "{}", resp.body);
}
