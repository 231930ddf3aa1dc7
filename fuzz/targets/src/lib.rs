//! The fuzz targets: every parser of the project that reads bytes a client or a
//! model file controls, each as a `fn(&[u8])` that must return (an `Err` is
//! fine) and never panic, overflow, hang or allocate without bound.
//!
//! [`TARGETS`] names them; the corpus of each lives in `fuzz/corpus/<name>/`. The
//! crate's test (`tests/corpus.rs`) replays every corpus file through its target
//! and runs a few seconds of seeded mutations of the corpus ([`mutate`], the
//! reka-fuzz-mutate crate); the
//! cargo-fuzz crate in `fuzz/` calls the same functions for coverage-guided long
//! runs. The targets behind the `host` feature read reka-host's own parsers; the
//! cargo-fuzz crate builds without it (see docs/RELIABILITY.md, "Fuzzing").

mod targets;

pub use reka_fuzz_mutate as mutate;

pub use targets::*;

/// A fuzz target: its name (the corpus folder and the cargo-fuzz target) and body.
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
}

/// Every target of this build.
pub const TARGETS: &[Target] = &[
    Target { name: "wav", run: wav },
    Target { name: "image", run: image },
    Target { name: "video", run: video },
    Target { name: "onnx", run: onnx },
    Target { name: "ct2", run: ct2 },
    Target { name: "gguf", run: gguf },
    Target { name: "tokenizer", run: tokenizer },
    #[cfg(feature = "host")]
    Target { name: "gguf_meta", run: gguf_meta },
    #[cfg(feature = "host")]
    Target { name: "safetensors", run: safetensors },
    #[cfg(feature = "host")]
    Target { name: "tokenizer_json", run: tokenizer_json },
];
