//! Where the decoders run (`--device auto|cpu|cuda`). A GPU build with a CUDA
//! device puts every served decoder on it, each model its own copy and stream
//! (its engine thread is then the only one using them, which CUDA graph
//! capture needs; two models of one file cost two uploads); without a device,
//! `auto` logs why and stays on the CPU, and `cuda` is an error. A placed
//! model keeps only its decoder's shape on the CPU. A CPU build accepts `auto`
//! and `cpu` only.

use crate::model::LoadedModel;
use anyhow::Result;

/// The `--device` choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// The GPU when this is a GPU build and a device is found, else the CPU.
    #[default]
    Auto,
    Cpu,
    Cuda,
}

impl std::str::FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" | "gpu" => Ok(Self::Cuda),
            _ => Err(format!("unknown device {s:?} (auto, cpu, cuda)")),
        }
    }
}

/// Puts loaded models' decoders on the chosen device.
pub struct Placer {
    #[cfg(feature = "cuda")]
    gpu: Option<crate::gpu::Gpu>,
}

impl Placer {
    /// Opens the device that `choice` asks for.
    pub fn new(choice: DeviceChoice) -> Result<Self> {
        #[cfg(feature = "cuda")]
        {
            let gpu = match choice {
                DeviceChoice::Cpu => {
                    tracing::info!("--device cpu: decoders run on the CPU");
                    None
                }
                DeviceChoice::Auto => crate::gpu::probe(),
                DeviceChoice::Cuda => Some(crate::gpu::Gpu::open(0).map_err(|e| anyhow::anyhow!("--device cuda: {e}"))?),
            };
            Ok(Self { gpu })
        }
        #[cfg(not(feature = "cuda"))]
        {
            if choice == DeviceChoice::Cuda {
                anyhow::bail!("--device cuda: this reka-host was built without CUDA support (scripts/build-gpu.sh builds it with)");
            }
            Ok(Self {})
        }
    }

    /// Whether decoders go to a GPU.
    pub fn on_gpu(&self) -> bool {
        #[cfg(feature = "cuda")]
        return self.gpu.is_some();
        #[cfg(not(feature = "cuda"))]
        false
    }

    /// Uploads `m`'s decoder to the GPU when there is one.
    pub fn place(&self, m: &mut LoadedModel) -> Result<()> {
        #[cfg(feature = "cuda")]
        if let Some(gpu) = &self.gpu {
            use anyhow::Context;
            let c = m.decoder.config();
            if c.rotary_dim < c.head_dim && c.rope_style == reka_kernels::RopeStyle::Halves {
                tracing::warn!(model = %m.info.name, "partial rotary in the rotate-half layout is not in the CUDA decoder yet: this model runs on the CPU");
                return Ok(());
            }
            let started = std::time::Instant::now();
            // The engine thread drives the GPU decoder only: keep the CPU
            // decoder's shape and let its weights go before the GPU's copy is
            // read, so the host holds one copy at a time (freed once no other
            // model of the same file holds them).
            m.decoder = std::sync::Arc::new(m.decoder.without_weights());
            let g = crate::gpu::GpuLlama::load_like(gpu.clone(), &m.decoder_path, m.decoder.config())
                .with_context(|| format!("loading {} onto the GPU", m.decoder_path.display()))?;
            tracing::info!(
                model = %m.info.name,
                device = gpu.name(),
                weights_mb = g.weight_bytes() >> 20,
                kv_cache = ?g.kv_type(),
                ms = started.elapsed().as_millis() as u64,
                "decoder on the GPU (its CPU weights released)"
            );
            m.gpu = Some(std::sync::Arc::new(g));
        }
        #[cfg(not(feature = "cuda"))]
        let _ = m;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_choices_parse() {
        assert_eq!("auto".parse(), Ok(DeviceChoice::Auto));
        assert_eq!("cpu".parse(), Ok(DeviceChoice::Cpu));
        assert_eq!("cuda".parse(), Ok(DeviceChoice::Cuda));
        assert!("tpu".parse::<DeviceChoice>().is_err());
    }

    /// Without a CUDA device (or without CUDA support), `auto` and `cpu` stay
    /// on the CPU and `cuda` is an error that says why.
    #[test]
    fn without_a_device_auto_falls_back_and_cuda_is_refused() {
        #[cfg(feature = "cuda")]
        if crate::gpu::Gpu::open(0).is_ok() {
            eprintln!("skipped: a CUDA device is present");
            return;
        }
        for c in [DeviceChoice::Auto, DeviceChoice::Cpu] {
            let p = Placer::new(c).expect("falls back");
            assert!(!p.on_gpu());
        }
        let err = Placer::new(DeviceChoice::Cuda).err().expect("refused").to_string();
        assert!(err.contains("--device cuda"), "{err}");
        #[cfg(not(feature = "cuda"))]
        assert!(err.contains("without CUDA support"), "{err}");
        #[cfg(feature = "cuda")]
        assert!(err.contains("no CUDA device"), "{err}");
    }
}
