//! The Reka engine as a library: model loaders, the CPU (and, with the `cuda`
//! feature, GPU) decoders, the continuous-batching scheduler, and the `wasi:nn`
//! backend over them, for any wasmtime embedder. It has no HTTP server and no
//! CLI: `reka-host` is one user of it, `examples/embed` another.
//!
//! # Graphs
//!
//! A **graph** is one loaded model under a name (e.g. `smollm2-135m`): its
//! weights ([`model::LoadedModel`], shared through an `Arc`), plus one engine
//! thread ([`nn::scheduler`]) that runs the steps of every open session of that
//! model together. Models are loaded once, when the embedder starts, and shared
//! by every store; guests find them with `wasi:nn` `load-by-name` and cannot
//! load models from bytes. An **execution context** is one generation session:
//! it owns its KV cache, which is freed when the guest drops it. The tensors a
//! guest passes to `compute` (token ids, media, sampling) and the metadata it
//! can read are defined in `reka-protocol`.
//!
//! [`nn::Models`] is the set of graphs, by name (the first is the default).
//! It is cheap to clone; each store gets its own `wasi:nn` view of it through
//! [`nn::Models::registry`].
//!
//! # Registering the backend
//!
//! Load models ([`model::load`]; [`fetch`] downloads the default SmolLM2 GGUF),
//! wrap them in [`nn::Models`], keep a [`wasmtime_wasi_nn::wit::WasiNnCtx`] in
//! each store's data, and add `wasi:nn` to the linker with
//! [`wasmtime_wasi_nn::wit::add_to_linker`]:
//!
//! ```ignore
//! use std::sync::Arc;
//! use wasmtime::component::{Linker, ResourceTable};
//! use wasmtime_wasi_nn::wit::{WasiNnCtx, WasiNnView};
//!
//! struct State { table: ResourceTable, nn: WasiNnCtx /* , wasi, http ... */ }
//!
//! let path = reka_engine::fetch::DEFAULT_MODEL.path(&reka_engine::fetch::cache_dir());
//! let model = Arc::new(reka_engine::model::load("smollm2-135m", &path)?);
//! let models = reka_engine::nn::Models::new(vec![("smollm2-135m".into(), model)])?;
//!
//! let mut linker: Linker<State> = Linker::new(&engine);
//! wasmtime_wasi_nn::wit::add_to_linker(&mut linker, |s: &mut State| {
//!     WasiNnView::new(&mut s.table, &mut s.nn)
//! })?;
//!
//! // Per store (e.g. per request):
//! let state = State { table: ResourceTable::new(), nn: WasiNnCtx::new([], models.registry()) };
//! ```
//!
//! `examples/embed` is the same, compiled and complete: WASI p2, `wasi:http` and
//! this backend in one linker, serving one request to the composed Reka app.
//!
//! # Modules
//!
//! - [`model`]: loaders (GGUF, Hugging Face safetensors checkpoints, Reka Edge,
//!   multimodal configs) and the CPU decoder.
//! - [`nn`]: the `wasi:nn` backend ([`nn::Models`]) and the scheduler.
//! - [`device`]: puts decoders on the CPU or a CUDA device (`--device`).
//! - `gpu` (feature `cuda`): the CUDA decoder; CUDA is loaded at run time.
//! - [`fetch`]: downloads and caches the default models.
//! - [`presets`]: the Reka size presets, for random-weight benchmarks.
//! - [`native`]: greedy generation without wasm, to compare against.
//! - [`metrics`]: process-wide counters and each engine's metrics, rendered in
//!   Prometheus text format.

/// Sentence embeddings (all-MiniLM-L6-v2), served as embedding graphs.
pub use reka_embed as embed;
pub mod device;
pub mod fetch;
#[cfg(feature = "cuda")]
pub mod gpu;
pub mod metrics;
pub mod model;
pub mod native;
pub mod nn;
pub mod presets;
