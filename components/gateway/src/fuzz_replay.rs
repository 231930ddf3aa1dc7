//! CI's brief fuzzing of the request JSON (the `request_json` target): every file
//! of `fuzz/corpus/request_json/` (seeds and what fuzzing found), then seeded
//! mutations of them for a few seconds, through the parsers the handlers use
//! (body → object → messages with their parts, options, chat options, prompts,
//! the sampling extras,
//! `parse_special`, the embeddings' input and encoding, Spin's `/infer` options). Each must answer `Ok` or an `ApiError` with a 4xx status,
//! never panic. The mutator is the main workspace's `reka-fuzz-mutate`, included
//! by path (no dependency of the components on the main workspace).

#[path = "../../../fuzz/mutate/src/lib.rs"]
#[allow(dead_code)]
mod mutate;


use crate::api;

/// One request body through every parser; panics on a non-4xx error.
fn request_json(body: &[u8]) {
    let four = |e: crate::error::ApiError| assert!((400..500).contains(&e.status), "status {}", e.status);
    let Ok(o) = api::object(body).map_err(four) else { return };
    let _ = api::messages(&o).map_err(four);
    let _ = api::options(&o).map_err(four);
    let _ = api::chat_options(&o).map_err(four);
    let _ = api::prompts(&o).map_err(four);
    let _ = crate::sampling::extras(&o, true).map_err(four);
    let _ = crate::sampling::extras(&o, false).map_err(four);
    let _ = api::parse_special(&o).map_err(four);
    let _ = crate::embeddings::inputs(&o, "input").map_err(four);
    let _ = crate::embeddings::encoding(&o).map_err(four);
    let _ = crate::spin_remote::params(&o).map_err(four);
}

#[test]
fn request_json_corpus_and_mutations() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/request_json");
    mutate::replay_and_mutate("request_json", &dir, request_json);
}
