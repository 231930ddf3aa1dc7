//! Reka Edge over HTTP, through the wasm components: the tiny random Reka Edge
//! checkpoint of tests/fixtures/reka_edge served from its Hugging Face
//! directory (`--dtype f32`), sent the same chats as the fixture's references
//! (Reka's plugin renders and tokenises them, transformers decodes them
//! greedily), with the images as data URLs. The prompt sizes (`usage`) must be
//! the plugin's token counts (64 a tile, plus `<image>` `</image>`), and the
//! greedy answers the references' text, so tiling, pixels, the chat format,
//! the encoder and the decoder all have to agree.

mod support;

use base64::Engine as _;
use serde_json::{json, Value};
use support::Server;

fn fixture() -> std::path::PathBuf {
    support::root().join("tests/fixtures/reka_edge")
}

fn reference() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture().join("reference.json")).expect("reference.json")).expect("json")
}

fn data_url(rel: &str) -> String {
    let bytes = std::fs::read(fixture().join(rel)).expect(rel);
    format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// The fixture's messages with image URLs made data URLs, and its video (a
/// `video_url` standing for the fixture's frames) as one `video` part of frames.
fn messages(r: &Value, case: &Value) -> Value {
    let mut msgs = case["messages"].clone();
    for m in msgs.as_array_mut().expect("messages") {
        let Some(parts) = m["content"].as_array_mut() else { continue };
        for p in parts {
            if p["type"] == "image_url" {
                let url = data_url(p["image_url"]["url"].as_str().expect("url"));
                p["image_url"]["url"] = json!(url);
            }
            if p["type"] == "video_url" {
                let frames: Vec<String> = r["video"]["frames"].as_array().expect("frames").iter().map(|f| data_url(f.as_str().expect("f"))).collect();
                *p = json!({"type": "video", "video": frames});
            }
        }
    }
    msgs
}

fn case<'a>(r: &'a Value, name: &str) -> &'a Value {
    r["cases"].as_array().expect("cases").iter().find(|c| c["name"] == name).expect(name)
}

fn server() -> Server {
    Server::start_model(&fixture(), "reka-edge-tiny", &["--dtype", "f32"])
}

fn chat(server: &Server, messages: Value, extra: Value) -> Value {
    let mut body = json!({"model": "reka-edge-tiny", "messages": messages, "temperature": 0, "max_tokens": 8});
    for (k, v) in extra.as_object().expect("extra") {
        body[k] = v.clone();
    }
    let resp = server.post_json("/v1/chat/completions", &body);
    assert_eq!(resp.status, 200, "{}", resp.body);
    resp.json()
}

#[test]
fn images_video_and_turns_answer_as_the_references() {
    let r = reference();
    let server = server();
    for name in ["a_image_one_tile", "b_image_grid2x2", "c_video_3_frames", "d_system_image_multiturn", "e_text_only"] {
        let c = case(&r, name);
        let v = chat(&server, messages(&r, c), json!({}));
        let got = v["choices"][0]["message"]["content"].as_str().expect("content");
        assert_eq!(v["usage"]["prompt_tokens"], c["n_ids"], "{name}: prompt tokens");
        assert_eq!(got, c["greedy_text"].as_str().expect("greedy_text"), "{name}: greedy answer");
        assert_eq!(v["usage"]["completion_tokens"], 8, "{name}");
    }
}

#[test]
fn thinking_opens_the_answer_inside_the_reasoning() {
    let r = reference();
    let c = case(&r, "g_text_only_thinking_python_builder");
    let server = server();
    let v = chat(&server, messages(&r, c), json!({"chat_template_kwargs": {"enable_thinking": true}}));
    assert_eq!(v["usage"]["prompt_tokens"], c["n_ids"]);
    let msg = &v["choices"][0]["message"];
    let text = format!("{}{}", msg["reasoning_content"].as_str().unwrap_or_default(), msg["content"].as_str().unwrap_or_default());
    assert_eq!(text, c["greedy_text"].as_str().expect("greedy_text"));
    assert!(msg["reasoning_content"].is_string(), "{msg}");
}

#[test]
fn bad_media_gets_a_400_that_names_it() {
    let server = server();
    let img = data_url("images/one_tile_300x200.png");
    let frames = json!([{"role": "user", "content": [{"type": "video", "video": [img.clone(), img.clone()]}]}]);
    let resp = server.post_json(
        "/v1/chat/completions",
        &json!({"messages": frames, "max_tokens": 1, "media_io_kwargs": {"video": {"num_frames": 500}}}),
    );
    assert_eq!(resp.status, 400, "{}", resp.body);
    assert!(resp.body.contains("at most"), "{}", resp.body);
    // A well-formed WAV (16 kHz mono, 10 ms of silence): the refusal is about the
    // model, not the audio (hostile WAV headers are refused before any model is
    // looked at, see tests/media_limits.rs).
    let mut wav = b"RIFF".to_vec();
    wav.extend_from_slice(&356u32.to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    for field in [16u32, 0x0001_0001, 16_000, 32_000, 0x0010_0002] {
        wav.extend_from_slice(&field.to_le_bytes());
    }
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&320u32.to_le_bytes());
    wav.resize(wav.len() + 320, 0);
    let wav = base64::engine::general_purpose::STANDARD.encode(wav);
    let audio = json!([{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": wav, "format": "wav"}}]}]);
    let resp = server.post_json("/v1/chat/completions", &json!({"messages": audio, "max_tokens": 1}));
    assert_eq!(resp.status, 400, "{}", resp.body);
    assert!(resp.body.contains("does not read audio"), "{}", resp.body);
    let broken = json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}]);
    let resp = server.post_json("/v1/chat/completions", &json!({"messages": broken, "max_tokens": 1}));
    assert_eq!(resp.status, 400, "{}", resp.body);
    // Still serving.
    let v = chat(&server, json!([{"role": "user", "content": "hi"}]), json!({"max_tokens": 1}));
    assert_eq!(v["usage"]["completion_tokens"], 1);
}

/// llama.cpp's GGUF pair (`--model text.gguf --mmproj mmproj.gguf`, as
/// llama-server takes it): a 512×512 image and a question answer with
/// llama.cpp's own greedy tokens (tests/fixtures/reka_edge/gguf).
#[test]
fn the_gguf_pair_answers_as_llama_cpp() {
    let g = fixture().join("gguf");
    let r: Value = serde_json::from_str(&std::fs::read_to_string(g.join("llama_cpp_reference.json")).expect("reference")).expect("json");
    let mmproj = g.join("mmproj-reka-edge-tiny.f16.gguf");
    let server = Server::start_model(&g.join("reka-edge-tiny.bf16.gguf"), "reka-edge-gguf", &["--mmproj", &mmproj.to_string_lossy()]);
    let msgs = json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url("images/square_512x512.png")}},
                                                   {"type": "text", "text": "What is in this picture?"}]}]);
    let resp = server.post_json("/v1/chat/completions", &json!({"messages": msgs, "temperature": 0, "max_tokens": 8}));
    assert_eq!(resp.status, 200, "{}", resp.body);
    let v = resp.json();
    let p = &r["image_prompt"];
    assert_eq!(v["usage"]["prompt_tokens"], p["n_prompt_positions"]);
    let want: String = p["greedy_pieces"].as_array().expect("pieces").iter().map(|x| x.as_str().expect("piece")).collect();
    assert_eq!(v["choices"][0]["message"]["content"], want.as_str());
}

/// A tools request's prompt, tokenised through the gateway's `/tokenize`
/// (tools read as the chat endpoint reads them), is the token ids Reka's
/// plugin makes of it (its template and its tokenizer, reference.json).
#[test]
fn a_tools_prompt_is_the_plugins_tokens() {
    let r: Value = serde_json::from_str(&std::fs::read_to_string(fixture().join("reference.json")).expect("reference.json")).expect("json");
    let case = r["chat_format"].as_array().expect("chat_format").iter().find(|c| c["name"] == "tool_call_and_response").expect("case");
    let server = server();
    let body = json!({"model": "reka-edge-tiny", "messages": case["messages"], "tools": case["tools"]});
    let resp = server.post_json("/tokenize", &body);
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.json()["tokens"], case["ids"]);
}
