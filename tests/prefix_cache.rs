//! Prefix caching through the whole HTTP path, against SmolLM2-135M-Instruct:
//! a chat's second turn reuses the first turn's KV (the metrics say how much)
//! and answers exactly as a server with `--prefix-cache off` does, tokens and
//! log-probs alike; prompts that start differently reuse nothing of it.

mod support;

use serde_json::{json, Value};
use support::Server;

const MODEL: &str = "smollm2-135m";

const QUESTION: &str = "I am planning a vegetable garden on a small balcony that gets about five hours of \
    direct sun in the afternoon. I would like to grow tomatoes, basil, lettuce and maybe some peppers. \
    Which of these should I plant first, how large should the pots be, and how often should I water them \
    during a hot summer?";

/// One sample of this model's series in `/metrics`.
fn metric(s: &Server, name: &str) -> f64 {
    let r = s.get("/metrics");
    assert_eq!(r.status, 200);
    let prefix = format!("{name}{{model_name=\"{MODEL}\"}} ");
    r.body
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} for {MODEL} in /metrics"))
}

/// Waits until no session holds KV memory: the last answer's session has
/// ended (and, with the cache on, been kept), which the engine learns a
/// moment after the client has the answer.
fn settle(s: &Server) {
    for _ in 0..500 {
        if metric(s, "reka:num_requests_running") == 0.0 && metric(s, "reka:kv_cache_bytes_in_use") == 0.0 {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("sessions still running 5 s after their answers");
}

fn chat(s: &Server, messages: &Value) -> Value {
    let body = json!({"model": MODEL, "messages": messages, "temperature": 0, "max_tokens": 24, "logprobs": true, "top_logprobs": 3});
    let r = s.post_json("/v1/chat/completions", &body);
    assert_eq!(r.status, 200, "{}", r.body);
    settle(s);
    r.json()
}

fn prompt_tokens(v: &Value) -> f64 {
    v["usage"]["prompt_tokens"].as_f64().expect("usage.prompt_tokens")
}

/// Two turns of one conversation: (turn 1, turn 2).
fn conversation(s: &Server) -> (Value, Value) {
    let mut messages = json!([{"role": "user", "content": QUESTION}]);
    let first = chat(s, &messages);
    let answer = first["choices"][0]["message"]["content"].as_str().expect("content").to_string();
    assert!(!answer.is_empty());
    if let Some(m) = messages.as_array_mut() {
        m.push(json!({"role": "assistant", "content": answer}));
        m.push(json!({"role": "user", "content": "Thanks. Which of them needs the most water?"}));
    }
    let second = chat(s, &messages);
    (first, second)
}

#[test]
fn a_chats_second_turn_reuses_the_first_and_answers_as_without_the_cache() {
    let on = Server::start();
    assert!(metric(&on, "reka:prefix_cache_budget_bytes") > 0.0, "on by default");
    let (a1, a2) = conversation(&on);
    let (hits, reused) = (metric(&on, "reka:prefix_cache_hits_total"), metric(&on, "reka:prefix_cache_reused_tokens_total"));
    assert_eq!(metric(&on, "reka:prefix_cache_queries_total"), 2.0);
    assert_eq!(hits, 1.0, "turn 2 hit turn 1's entry");
    // Turn 1's whole prompt, and the answer as far as it tokenises the same.
    assert!(reused >= prompt_tokens(&a1) && reused < prompt_tokens(&a2), "reused {reused} of {} (turn 1: {})", prompt_tokens(&a2), prompt_tokens(&a1));
    assert!(metric(&on, "reka:prefix_cache_bytes") > 0.0);

    let off = Server::start_model(&support::default_model(), MODEL, &["--prefix-cache", "off"]);
    let (b1, b2) = conversation(&off);
    for name in ["reka:prefix_cache_budget_bytes", "reka:prefix_cache_queries_total", "reka:prefix_cache_bytes"] {
        assert_eq!(metric(&off, name), 0.0, "{name} with the cache off");
    }
    // Identical tokens and log-probs (the JSON numbers are the same f32 bits).
    assert_eq!(a1["choices"], b1["choices"]);
    assert_eq!(a2["choices"], b2["choices"], "turn 2 differs with the prefix cache");
    assert_eq!(a2["usage"], b2["usage"]);
    assert!(a2["choices"][0]["logprobs"]["content"].as_array().is_some_and(|c| !c.is_empty()));

    // Another conversation shares at most the chat template's opening with
    // turn 1, never its question.
    let other = chat(&on, &json!([{"role": "user", "content": "Name three rivers in Africa."}]));
    let shared = metric(&on, "reka:prefix_cache_reused_tokens_total") - reused;
    assert!(shared < prompt_tokens(&other) - 5.0, "a different conversation reused {shared} tokens");
    // A prompt that starts differently reuses nothing.
    let hits = metric(&on, "reka:prefix_cache_hits_total");
    let reused = metric(&on, "reka:prefix_cache_reused_tokens_total");
    let r = on.post_json("/v1/completions", &json!({"model": MODEL, "prompt": "Zebras are", "max_tokens": 4, "temperature": 0}));
    assert_eq!(r.status, 200, "{}", r.body);
    settle(&on);
    assert_eq!(metric(&on, "reka:prefix_cache_hits_total"), hits);
    assert_eq!(metric(&on, "reka:prefix_cache_reused_tokens_total"), reused);
    assert_eq!(metric(&on, "reka:prefix_cache_queries_total"), 4.0);
}
