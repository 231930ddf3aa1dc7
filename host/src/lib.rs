//! The Reka host: a wasmtime runtime that serves a Spin-style app of wasm
//! components over HTTP and runs the models natively behind `wasi:nn`.
//!
//! The models, the scheduler and the `wasi:nn` backend are the `reka-engine`
//! crate; they are re-exported here under their old paths
//! (`reka_host::model`, `reka_host::nn`, ...).

pub use reka_engine::{device, embed, fetch, metrics, model, native, nn, presets};

/// The CUDA decoder ([`reka_engine::gpu`]) and the host's `gpu-bench` command,
/// which measures it (it writes its random checkpoints with
/// [`crate::checkpoint_writer`], a host tool).
#[cfg(feature = "cuda")]
pub mod gpu {
    pub use reka_engine::gpu::*;
    pub mod bench;
}

pub mod bench;
pub mod bench_kernels;
pub mod bench_media;
pub mod bench_tower;
pub mod access;
pub mod checkpoint_writer;
pub mod compose;
pub mod connections;
pub mod errors;
pub mod guarded_body;
pub mod kv;
pub mod http_args;
pub mod limits;
pub mod manifest;
pub mod outbound;
pub mod p3;
pub mod runtime_config;
pub mod server;
pub mod soak;
pub mod state;
pub mod timed_body;
