//! The Reka host: a wasmtime runtime that serves a Spin-style app of wasm
//! components over HTTP and runs the models natively behind `wasi:nn`.

pub mod bench;
pub mod bench_media;
pub mod bench_tower;
pub mod access;
pub mod checkpoint_writer;
pub mod connections;
pub mod device;
pub mod errors;
pub mod fetch;
pub mod guarded_body;
pub mod http_args;
#[cfg(feature = "cuda")]
pub mod gpu;
pub mod limits;
pub mod manifest;
pub mod metrics;
pub mod model;
pub mod native;
pub mod nn;
pub mod outbound;
pub mod p3;
pub mod presets;
pub mod runtime_config;
pub mod server;
pub mod soak;
pub mod state;
pub mod timed_body;
