//! End-to-end tests of the whole request path over a real socket: the real
//! `reka-host` binary, the composed wasm components, wasi:nn and the real
//! SmolLM2-135M weights. Reference outputs come from llama.cpp
//! (tests/fixtures/llama_cpp_reference.json says how).

mod support;

use serde_json::{json, Value};
use support::Server;

fn reference() -> Value {
    let path = support::root().join("tests/fixtures/llama_cpp_reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("reference fixture"))
        .expect("reference JSON")
}

#[test]
fn completion_matches_llama_cpp_greedy_continuation() {
    let server = Server::start();
    let r = reference();
    let resp = server.post_json(
        "/v1/completions",
        &json!({"model": "smollm2-135m", "prompt": r["prompt"], "temperature": 0, "max_tokens": r["max_tokens"]}),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    let v = resp.json();
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["choices"][0]["text"], r["continuation"]);
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    let ids = r["prompt_ids"].as_array().expect("ids").len() as u64;
    assert_eq!(v["usage"]["prompt_tokens"], ids);
    assert_eq!(v["usage"]["completion_tokens"], r["max_tokens"]);
    assert_eq!(v["usage"]["total_tokens"], ids + r["max_tokens"].as_u64().expect("n"));
}

#[test]
fn token_id_prompts_are_accepted_and_agree_with_text() {
    let server = Server::start();
    let r = reference();
    let resp = server.post_json(
        "/v1/completions",
        &json!({"prompt": r["prompt_ids"], "temperature": 0, "max_tokens": 8}),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    let text = resp.json()["choices"][0]["text"].as_str().expect("text").to_string();
    let want = r["continuation"].as_str().expect("continuation");
    assert!(want.starts_with(&text) && text.len() > 5, "{text:?} is not a prefix of {want:?}");
}

#[test]
fn chat_answers_and_streams_as_server_sent_events() {
    let server = Server::start();
    let body = json!({
        "messages": [
            {"role": "system", "content": "You are a concise assistant."},
            {"role": "user", "content": "What is the capital of France?"}
        ],
        "temperature": 0, "max_tokens": 24
    });
    let whole = server.post_json("/v1/chat/completions", &body);
    assert_eq!(whole.status, 200, "{}", whole.body);
    let v = whole.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    let answer = v["choices"][0]["message"]["content"].as_str().expect("content").to_string();
    assert!(answer.contains("Paris"), "{answer:?}");
    let completion = v["usage"]["completion_tokens"].as_u64().expect("usage");
    assert!((1..=24).contains(&completion));
    assert!(v["usage"]["prompt_tokens"].as_u64().expect("usage") > 10);

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let s = server.post_json("/v1/chat/completions", &streamed);
    assert_eq!(s.status, 200, "{}", s.body);
    assert!(s.header("content-type").is_some_and(|c| c.starts_with("text/event-stream")));
    let events = s.sse_data();
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    assert!(s.chunks.len() > 3, "body came in {} chunk(s)", s.chunks.len());
    let parsed: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).expect("event JSON"))
        .collect();
    assert!(parsed.len() > 3, "only {} events", parsed.len());
    assert_eq!(parsed[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = parsed
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, answer, "streamed and whole answers differ (both greedy)");
    let finish: Vec<&Value> = parsed
        .iter()
        .map(|e| &e["choices"][0]["finish_reason"])
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finish.len(), 1, "exactly one finish_reason");
    let usage = &parsed.last().expect("usage event")["usage"];
    assert_eq!(usage["completion_tokens"], v["usage"]["completion_tokens"]);
    assert_eq!(usage["prompt_tokens"], v["usage"]["prompt_tokens"]);
}

#[test]
fn concurrent_requests_share_one_loaded_model() {
    let server = Server::start();
    let r = reference();
    let addr = server.addr.clone();
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let addr = addr.clone();
            let body = json!({"prompt": r["prompt"], "temperature": 0, "max_tokens": 16}).to_string();
            std::thread::spawn(move || support::request(&addr, "POST", "/v1/completions", Some(&body)))
        })
        .collect();
    let texts: Vec<String> = handles
        .into_iter()
        .map(|h| {
            let resp = h.join().expect("request thread");
            assert_eq!(resp.status, 200, "{}", resp.body);
            resp.json()["choices"][0]["text"].as_str().expect("text").to_string()
        })
        .collect();
    let want = r["continuation"].as_str().expect("continuation");
    for t in &texts {
        assert!(want.starts_with(t.as_str()) && !t.is_empty(), "{t:?}");
    }
    assert_eq!(texts[0], texts[1]);
    assert_eq!(server.log_count("model loaded"), 1, "the model must be loaded once");
}

#[test]
fn bad_requests_get_openai_errors_and_the_server_keeps_serving() {
    let mut server = Server::start();
    let check = |resp: support::Response, status: u16, code_or_param: &str| {
        assert_eq!(resp.status, status, "{}", resp.body);
        let v = resp.json();
        let e = &v["error"];
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        assert!(e["type"].is_string(), "{v}");
        assert!(e["code"] == code_or_param || e["param"] == code_or_param || e["type"] == code_or_param, "{v}");
    };
    check(server.post("/v1/chat/completions", "{not json"), 400, "invalid_request_error");
    check(server.post_json("/v1/chat/completions", &json!({"model": "smollm2-135m"})), 400, "messages");
    check(
        server.post_json("/v1/chat/completions", &json!({"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]})),
        404,
        "model_not_found",
    );
    check(
        server.post_json("/v1/completions", &json!({"prompt": "Hello", "max_tokens": 9000})),
        400,
        "context_length_exceeded",
    );
    check(server.post_json("/v1/completions", &json!({"prompt": "Hello", "temperature": 7})), 400, "temperature");
    check(server.get("/v1/nope"), 404, "not_found");
    check(server.get("/v1/chat/completions"), 405, "method_not_allowed");

    assert!(server.alive());
    assert_eq!(server.get("/health").status, 200);
    let ok = server.post_json("/v1/completions", &json!({"prompt": "Hello", "max_tokens": 2, "temperature": 0}));
    assert_eq!(ok.status, 200, "{}", ok.body);
    let models = server.get("/v1/models").json();
    assert_eq!(models["data"][0]["id"], "smollm2-135m");
    assert!(server.terminate().success(), "SIGTERM must stop the server cleanly");
}

#[test]
fn p3_components_are_served_next_to_p2_ones() {
    let server = Server::start_with(&support::root().join("tests/fixtures/p2-and-p3.spin.toml"));
    for i in 0..3 {
        let r = server.get(&format!("/p3/hello/{i}"));
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body, format!("p3 hello from /p3/hello/{i} (models: smollm2-135m)"));
    }
    assert_eq!(server.get("/health").status, 200, "the p2 app still answers");
    let ok = server.post_json("/v1/completions", &json!({"prompt": "Hello", "max_tokens": 2, "temperature": 0}));
    assert_eq!(ok.status, 200, "{}", ok.body);
}
