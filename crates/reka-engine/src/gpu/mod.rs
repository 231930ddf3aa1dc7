//! The GPU path (cargo feature `cuda`): a decoder that runs on one CUDA device
//! with our own kernels (`reka_kernels::cuda`). (`reka-host gpu-bench`, which
//! measures it, lives in the host: `host/src/gpu/bench.rs`.)
//!
//! The CUDA libraries are loaded at run time, so the same binary starts on a
//! machine without a GPU: [`probe`] logs why and the caller stays on the CPU.

pub mod llama;
pub mod load;
pub mod scratch;
pub mod weights;

pub use llama::{GpuKvCache, GpuLlama, GpuStep};
pub use reka_kernels::cuda::{Gpu, GpuError};

/// Opens GPU 0 with the kernels compiled for it, or logs why not ("no CUDA
/// device (libcuda not found): using the CPU") and returns `None`. Errors other
/// than a missing device or library (a kernel that does not compile, a driver
/// failure) are logged as errors, and also fall back to the CPU.
pub fn probe() -> Option<Gpu> {
    match Gpu::open(0) {
        Ok(g) => {
            tracing::info!(device = g.name(), arch = g.arch(), "CUDA device ready");
            Some(g)
        }
        Err(e @ GpuError::Unavailable(_)) => {
            tracing::info!("{e}: using the CPU");
            None
        }
        Err(e) => {
            tracing::error!("{e}: using the CPU");
            None
        }
    }
}
