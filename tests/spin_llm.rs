//! Spin apps and Spin itself on this server, over a real socket:
//! - the spin-sdk 7 example app (`examples/spin-llm`, unchanged) served from its
//!   own manifest: its `llm::infer` answer equals `/v1/completions`' for the same
//!   prompt, model and greedy settings, its embeddings equal `/v1/embeddings`',
//!   and its `ai_models` is enforced with Spin's error;
//! - Spin's `remote_http` engine: requests built exactly as Spin's
//!   `llm-remote-http` crate builds them (both api types), a wrong token 401;
//! - eight concurrent `llm::infer` calls run in shared engine steps.

mod support;

use serde_json::{json, Value};
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;
use support::{root, Server};

const PROMPT: &str = "The three primary colours are";

/// Builds the example as its `spin.toml` says (`cargo build --target
/// wasm32-wasip2 --release`, its own workspace), once per test binary.
fn build_example() {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let status = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--release", "--target", "wasm32-wasip2"])
            .current_dir(root().join("examples/spin-llm"))
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .status()
            .expect("running cargo for examples/spin-llm");
        assert!(status.success(), "building examples/spin-llm failed");
    });
}

fn example() -> Server {
    build_example();
    let dir = root().join("examples/spin-llm");
    let config = dir.join("runtime-config.toml");
    Server::spawn(&dir.join("spin.toml"), &["--runtime-config", &config.to_string_lossy()])
}

fn ok(r: &support::Response) -> Value {
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

/// The app's greedy `llm::infer_with_options` equals `/v1/completions` (and
/// Spin's `POST /infer`) on the model its alias names; its embeddings equal
/// `/v1/embeddings`' and `POST /embed`'s.
#[test]
fn example_app_answers_equal_the_openai_api() {
    let server = example();
    let app = ok(&server.post_json("/app/infer", &json!({"prompt": PROMPT, "max_tokens": 24, "temperature": 0.0, "repeat_penalty": 1.0})));
    let api = ok(&server.post_json("/v1/completions", &json!({"model": "smollm2-135m", "prompt": PROMPT, "max_tokens": 24, "temperature": 0})));
    let text = app["text"].as_str().expect("app text");
    assert!(!text.trim().is_empty(), "{app}");
    assert_eq!(text, api["choices"][0]["text"], "llm::infer vs /v1/completions");
    assert_eq!(app["prompt_tokens"], api["usage"]["prompt_tokens"]);
    assert_eq!(app["generated_tokens"], api["usage"]["completion_tokens"]);
    // The alias answers on the OpenAI API as well.
    let alias = ok(&server.post_json("/v1/completions", &json!({"model": "llama2-chat", "prompt": PROMPT, "max_tokens": 24, "temperature": 0})));
    assert_eq!(alias["choices"][0]["text"], api["choices"][0]["text"]);

    let sentences = ["A cat sits on the mat.", "Ein Hund läuft im Park.", "猫がマットの上に座っている。"];
    let app = ok(&server.post_json("/app/embed", &json!({"sentences": sentences})));
    let api = ok(&server.post_json("/v1/embeddings", &json!({"model": "all-minilm-l6-v2", "input": sentences})));
    let vectors: Vec<&Value> = api["data"].as_array().expect("data").iter().map(|d| &d["embedding"]).collect();
    assert_eq!(vectors.len(), 3);
    // The app writes the f32s through JSON as f64s: compare them as f32s.
    let f32s = |v: &Value| -> Vec<f32> { v.as_array().expect("vector").iter().filter_map(Value::as_f64).map(|x| x as f32).collect() };
    for (a, b) in app["embeddings"].as_array().expect("embeddings").iter().zip(&vectors) {
        assert_eq!(f32s(a).len(), 384);
        assert_eq!(f32s(a), f32s(b), "llm::generate_embeddings vs /v1/embeddings");
    }
    assert_eq!(app["prompt_tokens"], api["usage"]["prompt_tokens"]);
    // base64: the same floats, little-endian.
    let b64 = ok(&server.post_json("/v1/embeddings", &json!({"model": "all-minilm-l6-v2", "input": sentences[0], "encoding_format": "base64"})));
    let bytes = decode_base64(b64["data"][0]["embedding"].as_str().expect("base64 string"));
    let floats: Vec<f32> = bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    assert_eq!(floats, f32s(vectors[0]));
}

/// A model outside the component's `ai_models` gets Spin's own error, even one
/// this server serves; the app turns it into a 400.
#[test]
fn ai_models_are_enforced_with_spins_error() {
    let server = example();
    for (path, body) in [
        ("/app/infer", json!({"prompt": PROMPT, "model": "smollm2-135m", "max_tokens": 4})),
        ("/app/embed", json!({"sentences": ["x"], "model": "smollm2-135m"})),
    ] {
        let r = server.post_json(path, &body);
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        let expected = "The component does not have access to use 'smollm2-135m'. To give the component access, add 'smollm2-135m' to the 'ai_models' key for the component in your spin.toml manifest";
        assert_eq!(r.json()["error"], expected, "{path}");
    }
    // The server keeps serving.
    ok(&server.post_json("/app/infer", &json!({"prompt": PROMPT, "max_tokens": 2})));
}

/// One request as Spin's reqwest client sends it: the given headers only.
fn spin_request(addr: &str, path: &str, auth: &str, body: &str) -> support::Response {
    let mut s = TcpStream::connect(addr).expect("connecting");
    s.set_read_timeout(Some(Duration::from_secs(300))).expect("timeout");
    let req = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\nauthorization: {auth}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("sending");
    support::read_response(s)
}

/// Spin's `llm-remote-http` requests (crates/llm-remote-http/src/default.rs
/// and open_ai/ of Spin 3.x): `bearer` lower-case, no content type on the
/// default api type's bodies, camelCase options; the answers parse as Spin
/// parses them. A wrong token gets 401.
#[test]
fn spin_remote_http_requests_are_answered() {
    let server = Server::spawn(&root().join("spin.toml"), &["--api-key", "spin-token"]);
    let auth = "bearer spin-token";
    // Spin's defaults (factor-llm), as the remote engine forwards them.
    let options = json!({"maxTokens": 16, "repeatPenalty": 1.1, "repeatPenaltyLastNTokenCount": 64, "temperature": 0.0, "topK": 40, "topP": 0.9});
    let infer = json!({"model": "smollm2-135m", "prompt": PROMPT, "options": options}).to_string();
    let r = spin_request(&server.addr, "/infer", auth, &infer);
    let v = ok(&r);
    let text = v["text"].as_str().expect("text");
    let (p, g) = (v["usage"]["promptTokenCount"].as_u64(), v["usage"]["generatedTokenCount"].as_u64());
    assert!(p.is_some_and(|p| p > 0) && g.is_some_and(|g| (1..=16).contains(&g)), "{v}");
    // Greedy, so the same request gives the same text.
    assert_eq!(ok(&spin_request(&server.addr, "/infer", auth, &infer))["text"], text);

    let embed = json!({"model": "all-minilm-l6-v2", "input": ["hello world", "bonjour le monde"]}).to_string();
    let v = ok(&spin_request(&server.addr, "/embed", auth, &embed));
    let e = v["embeddings"].as_array().expect("embeddings");
    assert_eq!(e.len(), 2);
    assert!(e.iter().all(|x| x.as_array().map(Vec::len) == Some(384)), "{v}");
    assert!(v["usage"]["promptTokenCount"].as_u64().is_some_and(|n| n >= 4), "{v}");

    // The open_ai api type: its chat request (max_completion_tokens,
    // frequency_penalty = Spin's repeat penalty) and its embeddings request.
    let chat = json!({"messages": [{"role": "user", "content": PROMPT}], "model": "smollm2-135m", "max_completion_tokens": 8, "frequency_penalty": 1.1}).to_string();
    let v = ok(&spin_request(&server.addr, "/v1/chat/completions", auth, &chat));
    assert!(v["choices"][0]["message"]["content"].is_string() && v["usage"]["completion_tokens"].as_u64().is_some_and(|n| n <= 8), "{v}");
    let emb = json!({"input": ["hello world"], "model": "all-minilm-l6-v2"}).to_string();
    let v = ok(&spin_request(&server.addr, "/v1/embeddings", auth, &emb));
    assert_eq!(v["data"][0]["embedding"], e[0], "/v1/embeddings vs /embed");
    assert!(v["usage"]["prompt_tokens"].as_u64().is_some_and(|n| n > 0));

    for bad in ["bearer wrong", "Bearer wrong", "bearer", "basic spin-token"] {
        let r = spin_request(&server.addr, "/infer", bad, &infer);
        assert_eq!(r.status, 401, "{bad}: {}", r.body);
        assert_eq!(r.json()["error"]["code"], "invalid_api_key");
    }
    // The scheme is case-insensitive (RFC 9110): OpenAI's clients send `Bearer`.
    ok(&spin_request(&server.addr, "/embed", "Bearer spin-token", &embed));
}

/// Eight `llm::infer` calls from eight requests at once share the engine's
/// forward steps (the engine's step counters in `/metrics`). The speed figure
/// is `scripts/spin-llm-bench.py`'s, not a test's.
#[test]
fn concurrent_infer_calls_are_batched() {
    let server = example();
    let before = server.engine_steps("smollm2-135m");
    let prompts = ["Once upon a time", "The history of Rome", "Dear diary, today", "A recipe for bread:", "The ocean is", "In the year 3000,", "My favourite book", "Rust is a language"];
    let handles: Vec<_> = prompts
        .iter()
        .map(|p| {
            let (addr, body) = (server.addr.clone(), json!({"prompt": p, "max_tokens": 32, "temperature": 0.0}).to_string());
            std::thread::spawn(move || support::request(&addr, "POST", "/app/infer", Some(&body)))
        })
        .collect();
    let generated: u64 = handles.into_iter().map(|h| ok(&h.join().expect("thread"))["generated_tokens"].as_u64().unwrap_or(0)).sum();
    let after = server.engine_steps("smollm2-135m");
    let (steps, rows) = (after.0 - before.0, after.1 - before.1);
    assert!(generated >= 8 * 8, "only {generated} tokens generated");
    // Alone, every session's row would be its own step (rows == steps).
    assert!(rows >= 2.0 * steps, "{rows} session rows in {steps} steps: the calls were not batched");
}

fn decode_base64(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let clean: Vec<u8> = s.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::new();
    for chunk in clean.chunks(4) {
        let v: Vec<u32> = chunk.iter().map(|&c| u32::from(val(c))).collect();
        let n = v.iter().enumerate().fold(0u32, |acc, (i, x)| acc | x << (18 - 6 * i));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}
