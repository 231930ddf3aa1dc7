//! A multimodal model described by one JSON config: a decoder (any file
//! [`super::load_as`] reads), an image encoder (DINOv2-style ViT, ONNX) that
//! also reads video frames, an audio encoder (Whisper, CTranslate2), and a
//! projector per encoder into the decoder's embedding space. Relative paths are
//! relative to the config's folder.
//!
//! ```json
//! { "decoder": "SmolLM2-135M-Instruct.Q4_1.gguf",
//!   "vision": { "weights": "dinov2.onnx", "image_size": 224, "pool": 2, "max_tiles": 4,
//!               "video_frames": 8, "video_pool": 4, "projector": { "seed": 1 } },
//!   "audio": { "weights": "whisper.bin", "pool": 4, "max_seconds": 30, "projector": { "seed": 2 } } }
//! ```

use super::media::{AudioTower, Projector, Towers, Vision, VisionTower};
use super::{LoadedModel, WeightDtype};
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The config file's shape.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultimodalConfig {
    #[serde(default, rename = "_comment")]
    pub comment: Option<String>,
    pub decoder: PathBuf,
    pub vision: Option<VisionConfig>,
    pub audio: Option<AudioConfig>,
}

/// The image / video side.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VisionConfig {
    pub weights: PathBuf,
    /// Tile side in pixels (a multiple of the patch size).
    pub image_size: usize,
    /// Patch grid pooling per image tile (2: 16×16 patches → 64 tokens).
    pub pool: usize,
    pub max_tiles: u32,
    /// Frames sampled from a video; 0 reads no video.
    pub video_frames: u32,
    /// Patch grid pooling per video frame.
    pub video_pool: usize,
    pub projector: ProjectorConfig,
}

/// The audio side.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioConfig {
    pub weights: PathBuf,
    /// Encoder frames (20 ms each) averaged into one token.
    pub pool: usize,
    pub max_seconds: f32,
    pub projector: ProjectorConfig,
}

/// A projector: trained weights are not published for these encoder / decoder
/// pairs, so it is a seeded random two-layer MLP.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectorConfig {
    pub seed: u64,
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if let Ok(rest) = p.strip_prefix("~") {
        if let Some(home) = std::env::var_os("HOME") {
            return PathBuf::from(home).join(rest);
        }
    }
    base.join(p)
}

/// Loads the model that `path` (a JSON config) describes, served as `name`.
pub fn load(name: &str, path: &Path, dtype: WeightDtype) -> Result<LoadedModel> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let cfg: MultimodalConfig = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let decoder_path = resolve(base, &cfg.decoder);
    if decoder_path.extension().is_some_and(|e| e == "json") {
        bail!("the decoder of a multimodal model cannot itself be a multimodal config");
    }
    let mut model = super::load_as(name, &decoder_path, dtype)?;
    let hidden = model.decoder.config().hidden_size;
    let scale = model.decoder.embedding_rms()?;
    let vision = cfg
        .vision
        .map(|v| -> Result<VisionTower> {
            let w = resolve(base, &v.weights);
            let vit = reka_encoders::vit::Vit::from_onnx(&w).with_context(|| format!("loading the image encoder {}", w.display()))?;
            let proj = Projector::random(vit.hidden(), hidden, scale, v.projector.seed)?;
            VisionTower::new(vit, proj, v.image_size, v.pool, v.max_tiles, v.video_frames, v.video_pool)
        })
        .transpose()?;
    let audio = cfg
        .audio
        .map(|a| -> Result<AudioTower> {
            let w = resolve(base, &a.weights);
            let enc = reka_encoders::whisper::WhisperEncoder::from_ct2(&w)
                .with_context(|| format!("loading the audio encoder {}", w.display()))?;
            let proj = Projector::random(enc.config().width, hidden, scale, a.projector.seed)?;
            AudioTower::new(enc, proj, a.pool, a.max_seconds)
        })
        .transpose()?;
    if vision.is_none() && audio.is_none() {
        bail!("{} names no encoder (vision or audio)", path.display());
    }
    let towers = Towers::new(vision.map(Vision::Vit), audio, hidden, placeholder_id(&model));
    model.info.media = Some(towers.info());
    model.info_json = serde_json::to_vec(&model.info)?;
    model.media = Some(towers);
    Ok(model)
}

/// The token written at placeholder positions: the pad or end-of-text token
/// when the vocabulary has one (its embedding is replaced anyway).
fn placeholder_id(m: &LoadedModel) -> u32 {
    m.info.eos_token_id.or(m.info.bos_token_id).unwrap_or(0)
}
