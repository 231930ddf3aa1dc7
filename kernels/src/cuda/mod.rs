//! Native CUDA kernels for the decoder's hot path (the `cuda` feature): fused
//! RMSNorm, RoPE with the KV-cache append, decode attention over a bf16 or f16
//! KV cache (GQA-aware, positions split over blocks as in flash-decoding), SwiGLU, residual add, embedding lookup, bf16/f16 GEMV
//! (batched up to 32 activation rows per weight pass) with f32 accumulation, and
//! GEMV over GGUF blocks (Q4_0, Q4_1, Q8_0) with 8-bit activations in
//! llama.cpp's numerics, as the CPU build computes them.
//!
//! The CUDA C lives in `source.cu` and is compiled at run time with NVRTC for
//! the device's architecture, so the build needs neither nvcc nor libcuda.
//! cudarc loads libcuda and libnvrtc when first used; [`Gpu::open`] checks that
//! they are present first (cudarc panics otherwise) and reports
//! [`GpuError::Unavailable`], so a caller can fall back to the CPU.
//! Each kernel is tested against the CPU `*_slow` references (`tests.rs`).
#![allow(unsafe_code)]

mod attn;
mod ops;
mod qops;
#[cfg(test)]
mod tests;

pub use attn::{attention_splits, SplitScratch, MAX_SPLITS};
pub use ops::{AttnShape, KvType, WeightBits};
pub use qops::Q8Acts;


use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaStream};
use cudarc::nvrtc::{CompileOptions, Ptx};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// The CUDA C source of every kernel.
pub const SOURCE: &str = include_str!("source.cu");

/// Every `extern "C"` kernel in [`SOURCE`].
pub const KERNELS: &[&str] = &[
    "rms_norm",
    "gemv_bf16_1",
    "gemv_bf16_2",
    "gemv_bf16_4",
    "gemv_bf16_8",
    "gemv_bf16_16",
    "gemv_bf16_32",
    "gemv_f16_1",
    "gemv_f16_2",
    "gemv_f16_4",
    "gemv_f16_8",
    "gemv_f16_16",
    "gemv_f16_32",
    "rope_kv_append_bf16",
    "rope_kv_append_f16",
    "attention_bf16_d4",
    "attention_bf16_d8",
    "attention_f16_d4",
    "attention_f16_d8",
    "swiglu",
    "add_f32",
    "embedding",
    "quantize_q8",
    "gemv_q4_0_1",
    "gemv_q4_0_2",
    "gemv_q4_0_4",
    "gemv_q4_0_8",
    "gemv_q4_1_1",
    "gemv_q4_1_2",
    "gemv_q4_1_4",
    "gemv_q4_1_8",
    "gemv_q8_0_1",
    "gemv_q8_0_2",
    "gemv_q8_0_4",
    "gemv_q8_0_8",
    "embedding_q",
];

/// Why the GPU path cannot be used, or failed.
#[derive(Debug, Clone)]
pub enum GpuError {
    /// No usable device: a library is missing, or the driver sees no GPU.
    Unavailable(String),
    /// NVRTC rejected the kernel source.
    Compile(String),
    /// A CUDA driver call failed.
    Driver(String),
    /// Arguments that do not fit the kernels (shapes, lengths).
    Shape(String),
}

impl fmt::Display for GpuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable(s) => write!(f, "no CUDA device ({s})"),
            Self::Compile(s) => write!(f, "compiling the CUDA kernels: {s}"),
            Self::Driver(s) => write!(f, "CUDA: {s}"),
            Self::Shape(s) => write!(f, "CUDA kernel arguments: {s}"),
        }
    }
}

impl std::error::Error for GpuError {}

impl From<cudarc::driver::DriverError> for GpuError {
    fn from(e: cudarc::driver::DriverError) -> Self {
        Self::Driver(e.to_string())
    }
}

/// Result of the GPU paths.
pub type Result<T> = std::result::Result<T, GpuError>;

/// Whether libnvrtc can be loaded (without loading it for good).
pub fn nvrtc_present() -> bool {
    // SAFETY: probing opens and closes the shared library by name; the
    // libraries cudarc looks for are NVIDIA's own, whose initialisers are safe
    // to run.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// Whether libcuda (the driver) can be loaded.
pub fn driver_present() -> bool {
    // SAFETY: as in [`nvrtc_present`].
    unsafe { cudarc::driver::sys::is_culib_present() }
}

/// Compiles [`SOURCE`] to PTX for `arch` (e.g. `compute_90`). Needs only
/// libnvrtc, no GPU.
pub fn compile_ptx(arch: &str) -> Result<Ptx> {
    if !nvrtc_present() {
        return Err(GpuError::Unavailable("libnvrtc not found".into()));
    }
    let opts = CompileOptions {
        options: vec![format!("--gpu-architecture={arch}"), "--std=c++17".into()],
        // No contraction of a separate multiply and add into an FMA: the CPU build
        // rounds both, and the GGUF path is meant to follow it closely (explicit
        // `fmaf` calls still fuse).
        fmad: Some(false),
        name: Some("reka_kernels.cu".into()),
        ..Default::default()
    };
    cudarc::nvrtc::compile_ptx_with_opts(SOURCE, opts).map_err(|e| match e {
        cudarc::nvrtc::CompileError::CompileError { log, .. } => GpuError::Compile(log.to_string_lossy().into_owned()),
        other => GpuError::Compile(other.to_string()),
    })
}

/// A captured sequence of launches, replayed on the stream it was captured on.
pub struct Graph(cudarc::driver::CudaGraph);

// SAFETY: CUDA requires calls on one graph to be serialised, not to stay on one
// thread; `launch` takes `&mut self`, so an owner (behind a mutex, say) does that.
unsafe impl Send for Graph {}

impl Graph {
    /// Runs the recorded launches again (with whatever the buffers hold now).
    pub fn launch(&mut self) -> Result<()> {
        Ok(self.0.launch()?)
    }
}

/// One CUDA device with the kernels loaded, and the stream they run on; clones
/// share them.
#[derive(Clone)]
pub struct Gpu {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    funcs: HashMap<&'static str, CudaFunction>,
    _module: Arc<CudaModule>,
    name: String,
    arch: String,
    /// Multiprocessors: how many blocks fill the device (attention splits).
    sms: usize,
}

impl fmt::Debug for Gpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gpu").field("name", &self.name).field("arch", &self.arch).finish()
    }
}

impl Gpu {
    /// Opens device `ordinal` and compiles the kernels for it. Returns
    /// [`GpuError::Unavailable`] when there is no usable device or library.
    pub fn open(ordinal: usize) -> Result<Self> {
        if !driver_present() {
            return Err(GpuError::Unavailable("libcuda not found".into()));
        }
        if !nvrtc_present() {
            return Err(GpuError::Unavailable("libnvrtc not found; set LD_LIBRARY_PATH to the CUDA lib folder".into()));
        }
        let count = CudaContext::device_count().map_err(|e| GpuError::Unavailable(format!("the driver sees no device: {e}")))?;
        if count <= ordinal as i32 {
            return Err(GpuError::Unavailable(format!("{count} devices, asked for device {ordinal}")));
        }
        let ctx = CudaContext::new(ordinal).map_err(|e| GpuError::Unavailable(format!("opening device {ordinal}: {e}")))?;
        let (major, minor) = ctx.compute_capability()?;
        if major < 7 {
            return Err(GpuError::Unavailable(format!("compute capability {major}.{minor} is below 7.0")));
        }
        // SAFETY: every allocation and kernel of this crate's users goes through
        // the one stream below, so no cross-stream synchronisation is needed;
        // without this, a second stream would make every launch record events.
        unsafe { ctx.disable_event_tracking() };
        let arch = format!("compute_{major}{minor}");
        let module = ctx.load_module(compile_ptx(&arch)?)?;
        let mut funcs = HashMap::new();
        for &k in KERNELS {
            funcs.insert(k, module.load_function(k)?);
        }
        let name = ctx.name().unwrap_or_else(|_| "CUDA device".into());
        let sms = ctx.attribute(cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?;
        let sms = usize::try_from(sms).unwrap_or(1).max(1);
        // Our own stream: the legacy default stream cannot be captured into a graph.
        let stream = ctx.new_stream()?;
        Ok(Self { stream, ctx, funcs, _module: module, name, arch, sms })
    }

    /// The same device and kernels on a stream of its own: work queued on it
    /// is ordered only with itself, and capturing it into a graph does not
    /// take in another stream's work.
    pub fn with_own_stream(&self) -> Result<Self> {
        let mut g = self.clone();
        g.stream = self.ctx.new_stream()?;
        Ok(g)
    }

    /// The device's name (e.g. "NVIDIA H100 80GB HBM3").
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The virtual architecture the kernels were compiled for (`compute_90`).
    pub fn arch(&self) -> &str {
        &self.arch
    }

    /// The device's multiprocessor count.
    pub fn multiprocessors(&self) -> usize {
        self.sms
    }

    /// The stream every kernel runs on (allocate and copy through it).
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// The device context.
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    /// Free and total device memory in bytes.
    pub fn memory(&self) -> Result<(usize, usize)> {
        Ok(self.ctx.mem_get_info()?)
    }

    /// Waits for every queued kernel.
    pub fn synchronize(&self) -> Result<()> {
        Ok(self.stream.synchronize()?)
    }

    /// Starts recording this thread's launches on the stream into a graph
    /// (nothing runs until the graph is launched). Allocations and copies
    /// from pageable memory are not allowed until [`Gpu::end_capture`].
    pub fn begin_capture(&self) -> Result<()> {
        Ok(self.stream.begin_capture(cudarc::driver::sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)?)
    }

    /// Ends the recording begun by [`Gpu::begin_capture`] (also after a failed
    /// launch, which leaves the stream usable again) and instantiates it.
    pub fn end_capture(&self) -> Result<Graph> {
        let g = self.stream.end_capture(cudarc::driver::sys::CUgraphInstantiate_flags(0))?;
        let g = g.ok_or_else(|| GpuError::Driver("the capture recorded nothing".into()))?;
        g.upload()?;
        Ok(Graph(g))
    }

    fn func(&self, name: &str) -> Result<&CudaFunction> {
        self.funcs.get(name).ok_or_else(|| GpuError::Driver(format!("kernel {name} not loaded")))
    }
}
