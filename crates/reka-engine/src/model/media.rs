//! The media side of a multimodal model: encoders plus projectors, turning the
//! pixels and log-mel that the preprocess component made into decoder
//! embeddings for the placeholder rows of a prompt.
//!
//! Images: each tile runs through the ViT; its patch grid (CLS dropped) is
//! average-pooled `pool`×`pool` and projected, one token per pooled cell.
//! Video frames: the same, pooled `video_pool`×`video_pool`. Audio: the
//! Whisper encoder's frames (20 ms) are averaged `pool` at a time. Projected
//! rows are brought to the RMS of the decoder's token embeddings.

use crate::nn::scheduler::Embeds;
use anyhow::{bail, Result};
use candle_core::{Device, Module, Tensor};
use candle_nn::Linear;
use reka_encoders::vit::Vit;
use reka_encoders::whisper::WhisperEncoder;
use reka_protocol::{AudioInfo, FrameSampling, ImageInfo, MediaInfo, MediaKind, MediaSpan, Tiling, VideoInfo};

use super::edge_vision::EdgeVision;

/// A two-layer MLP (GELU between) from an encoder's width to the decoder's.
pub struct Projector {
    up: Linear,
    down: Linear,
    /// RMS that every output row is scaled to.
    rms: f32,
}

/// splitmix64: a small, seedable generator for the random projector.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `n` normal values (Box–Muller) with standard deviation `std`.
fn normal(n: usize, std: f32, state: &mut u64) -> Vec<f32> {
    let mut unit = || ((splitmix(state) >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    (0..n)
        .map(|_| {
            let (u, v) = (unit(), unit());
            ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32 * std
        })
        .collect()
}

impl Projector {
    /// A seeded random projector `input → output → output`, weights
    /// N(0, 1/fan_in), outputs scaled to `rms`.
    pub fn random(input: usize, output: usize, rms: f32, seed: u64) -> Result<Self> {
        let mut s = seed;
        let d = Device::Cpu;
        let up = Tensor::from_vec(normal(output * input, (input as f32).powf(-0.5), &mut s), (output, input), &d)?;
        let down = Tensor::from_vec(normal(output * output, (output as f32).powf(-0.5), &mut s), (output, output), &d)?;
        Ok(Self { up: Linear::new(up, None), down: Linear::new(down, None), rms })
    }

    /// `[rows, input]` → `[rows, output]`.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = self.down.forward(&self.up.forward(x)?.gelu_erf()?)?;
        let norm = y.sqr()?.mean_keepdim(1)?.sqrt()?;
        y.broadcast_div(&(norm + 1e-6)?)? * self.rms as f64
    }
}

/// Images and video frames.
pub struct VisionTower {
    vit: Vit,
    proj: Projector,
    size: usize,
    pool: usize,
    max_tiles: u32,
    video_frames: u32,
    video_pool: usize,
}

impl VisionTower {
    pub fn new(vit: Vit, proj: Projector, size: usize, pool: usize, max_tiles: u32, video_frames: u32, video_pool: usize) -> Result<Self> {
        let p = vit.patch_size();
        let grid = size / p.max(1);
        if p == 0 || pool == 0 || video_pool == 0 || !size.is_multiple_of(p) || !grid.is_multiple_of(pool) || !grid.is_multiple_of(video_pool) {
            bail!("image_size {size} must be a multiple of the patch size {p}, and its {grid}×{grid} grid divisible by pool {pool} and video_pool {video_pool}");
        }
        Ok(Self { vit, proj, size, pool, max_tiles, video_frames, video_pool })
    }

    fn tokens(&self, pool: usize) -> u32 {
        let g = self.size / self.vit.patch_size() / pool;
        (g * g) as u32
    }

    /// The patch-grid pooling of an image tile or a video frame.
    fn pool_for(&self, kind: MediaKind) -> usize {
        if kind == MediaKind::Image {
            self.pool
        } else {
            self.video_pool
        }
    }

    /// Embeddings `[items · tokens, hidden]` of `items` tiles or frames.
    fn embed(&self, pixels: &[f32], items: usize, pool: usize) -> candle_core::Result<Tensor> {
        let s = self.size;
        let x = Tensor::from_slice(pixels, (items, 3, s, s), &Device::Cpu)?;
        let h = self.vit.forward(&x)?; // [items, 1 + g², d]
        let (g, d) = (s / self.vit.patch_size(), self.vit.hidden());
        let patches = h.narrow(1, h.dim(1)? - g * g, g * g)?;
        let q = g / pool;
        let pooled = patches.reshape((items, q, pool, q, pool, d))?.mean(4)?.mean(2)?;
        self.proj.forward(&pooled.reshape((items * q * q, d))?)
    }
}

/// Audio.
pub struct AudioTower {
    enc: WhisperEncoder,
    proj: Projector,
    pool: usize,
    max_seconds: f32,
    n_mels: usize,
}

impl AudioTower {
    pub fn new(enc: WhisperEncoder, proj: Projector, pool: usize, max_seconds: f32) -> Result<Self> {
        if pool == 0 || !(0.0..=30.0).contains(&max_seconds) {
            bail!("audio pool must be positive and max_seconds at most 30 (Whisper's window)");
        }
        Ok(Self { n_mels: enc.config().mel_bins, enc, proj, pool, max_seconds })
    }

    /// Log-mel frames per token: the encoder halves the frame rate, then pools.
    fn frames_per_token(&self) -> usize {
        2 * self.pool
    }

    /// Embeddings `[ceil(frames / frames_per_token), hidden]` of one log-mel
    /// `[n_mels, frames]`, padded at the end with its quietest value.
    fn embed(&self, mel: &[f32], frames: usize) -> candle_core::Result<Tensor> {
        let step = self.frames_per_token();
        let padded = frames.div_ceil(step) * step;
        let floor = mel.iter().copied().fold(f32::INFINITY, f32::min);
        let mut m = Vec::with_capacity(self.n_mels * padded);
        for row in mel.chunks_exact(frames) {
            m.extend_from_slice(row);
            m.extend(std::iter::repeat_n(floor, padded - frames));
        }
        let x = Tensor::from_vec(m, (1, self.n_mels, padded), &Device::Cpu)?;
        let h = self.enc.forward(&x)?; // [1, padded / 2, d]
        let d = h.dim(2)?;
        let pooled = h.reshape((padded / step, self.pool, d))?.mean(1)?;
        self.proj.forward(&pooled)
    }
}

/// Reka Edge's vision side with what the preprocess component needs to know.
pub struct EdgeTower {
    pub vision: EdgeVision,
    /// Frames a video gets when the request does not say, and the most it may ask.
    pub video_frames: u32,
    pub max_frames: u32,
    /// `<image>`, `</image>` and `<video>`, `</video>` ids.
    pub image_wrap: [u32; 2],
    pub video_wrap: [u32; 2],
}

/// The image / video encoder of a model.
pub enum Vision {
    /// A ViT with a (random) projector: the `smollm2-omni` stand-in.
    Vit(VisionTower),
    /// Reka Edge's ConvNeXt V2 tower.
    Edge(EdgeTower),
}

impl Vision {
    /// Tokens per image tile and per video frame.
    fn tokens(&self, kind: MediaKind) -> u32 {
        match self {
            Vision::Vit(v) => v.tokens(v.pool_for(kind)),
            Vision::Edge(e) => e.vision.tokens() as u32,
        }
    }

    fn size(&self) -> usize {
        match self {
            Vision::Vit(v) => v.size,
            Vision::Edge(e) => e.vision.image_size,
        }
    }

    fn reads_video(&self) -> bool {
        match self {
            Vision::Vit(v) => v.video_frames > 0,
            Vision::Edge(e) => e.video_frames > 0,
        }
    }

    fn embed(&self, data: &[f32], items: usize, kind: MediaKind) -> candle_core::Result<Tensor> {
        match self {
            Vision::Vit(v) => v.embed(data, items, v.pool_for(kind)),
            Vision::Edge(e) => e.vision.embed(data, items),
        }
    }

    fn image_info(&self) -> ImageInfo {
        match self {
            Vision::Vit(v) => {
                let c = v.vit.config();
                ImageInfo {
                    size: v.size as u32,
                    mean: c.mean,
                    std: c.std,
                    max_tiles: v.max_tiles,
                    tokens_per_tile: v.tokens(v.pool),
                    tiling: Tiling::Grid,
                    wrap: None,
                }
            }
            Vision::Edge(e) => ImageInfo {
                size: e.vision.image_size as u32,
                mean: e.vision.mean,
                std: e.vision.std,
                max_tiles: e.vision.max_tiles,
                tokens_per_tile: e.vision.tokens() as u32,
                tiling: Tiling::Uhd { patch: e.vision.config().patch_size as u32 },
                wrap: Some(e.image_wrap),
            },
        }
    }

    fn video_info(&self) -> Option<VideoInfo> {
        match self {
            Vision::Vit(v) => (v.video_frames > 0).then(|| VideoInfo {
                frames: v.video_frames,
                tokens_per_frame: v.tokens(v.video_pool),
                sampling: FrameSampling::Exact,
                max_frames: v.video_frames,
                wrap: None,
            }),
            Vision::Edge(e) => (e.video_frames > 0).then(|| VideoInfo {
                frames: e.video_frames,
                tokens_per_frame: e.vision.tokens() as u32,
                sampling: FrameSampling::AtMost,
                max_frames: e.max_frames,
                wrap: Some(e.video_wrap),
            }),
        }
    }
}

/// A model's encoders.
pub struct Towers {
    vision: Option<Vision>,
    audio: Option<AudioTower>,
    hidden: usize,
    placeholder: u32,
}

impl Towers {
    pub fn new(vision: Option<Vision>, audio: Option<AudioTower>, hidden: usize, placeholder: u32) -> Self {
        Self { vision, audio, hidden, placeholder }
    }

    /// What guests need to prepare media for these encoders.
    pub fn info(&self) -> MediaInfo {
        MediaInfo {
            placeholder_id: self.placeholder,
            image: self.vision.as_ref().map(Vision::image_info),
            video: self.vision.as_ref().and_then(Vision::video_info),
            audio: self.audio.as_ref().map(|a| AudioInfo {
                n_mels: a.n_mels as u32,
                max_seconds: a.max_seconds,
                frames_per_token: a.frames_per_token() as u32,
            }),
        }
    }

    /// Runs the encoders over a step's media: the embeddings of every
    /// placeholder row of `n_ids` ids. Checks that spans, token counts and data
    /// sizes agree, so a bad tensor is an error, not a wrong answer.
    pub fn embed(&self, spans: &[MediaSpan], pixels: &[f32], mel: &[f32], n_ids: usize) -> Result<Embeds, String> {
        let mut out: Embeds = Vec::new();
        let (mut px, mut mx, mut end) = (0usize, 0usize, 0usize);
        for sp in spans {
            let (pos, tokens, items) = (sp.position as usize, sp.tokens as usize, sp.items as usize);
            if pos < end || pos + tokens > n_ids {
                return Err(format!("media span at {pos} (+{tokens}) overlaps another or runs past the {n_ids} ids"));
            }
            end = pos + tokens;
            let rows = match sp.kind {
                MediaKind::Image | MediaKind::Video => {
                    let v = self.vision.as_ref().ok_or("this model reads no images or video")?;
                    if sp.kind == MediaKind::Video && !v.reads_video() {
                        return Err("this model reads no video".into());
                    }
                    let len = items * 3 * v.size() * v.size();
                    let data = pixels.get(px..px + len).ok_or("pixels holds fewer values than the spans need")?;
                    px += len;
                    check(tokens, items * v.tokens(sp.kind) as usize)?;
                    v.embed(data, items, sp.kind)
                }
                MediaKind::Audio => {
                    let a = self.audio.as_ref().ok_or("this model reads no audio")?;
                    if items == 0 || items as f32 > a.max_seconds * 100.0 + 1.0 {
                        return Err(format!("audio of {items} log-mel frames is empty or past {} s", a.max_seconds));
                    }
                    let len = items * a.n_mels;
                    let data = mel.get(mx..mx + len).ok_or("mel holds fewer values than the spans need")?;
                    mx += len;
                    check(tokens, items.div_ceil(a.frames_per_token()))?;
                    a.embed(data, items)
                }
            }
            .and_then(|t| t.to_vec2::<f32>())
            .map_err(|e| format!("media encoder: {e}"))?;
            out.extend(rows.into_iter().enumerate().map(|(i, r)| (pos + i, r)));
        }
        if px != pixels.len() || mx != mel.len() {
            return Err("pixels or mel hold more values than the spans use".into());
        }
        debug_assert!(out.iter().all(|(_, r)| r.len() == self.hidden));
        Ok(out)
    }
}

impl Towers {
    /// Median milliseconds of each encoder (with its projector) on the shapes
    /// requests bring: 1 and 5 image tiles, 8 video frames, 10 s and 30 s of audio.
    pub fn time_encoders(&self, repeats: usize) -> Result<Vec<(String, f64)>> {
        let time = |f: &dyn Fn() -> candle_core::Result<Tensor>| -> Result<f64> {
            let mut v = Vec::new();
            for _ in 0..repeats.max(1) {
                let t0 = std::time::Instant::now();
                f()?;
                v.push(t0.elapsed().as_secs_f64() * 1e3);
            }
            v.sort_by(f64::total_cmp);
            Ok(v[v.len() / 2])
        };
        let mut out = Vec::new();
        if let Some(v) = &self.vision {
            let px = |n: usize| vec![0.1f32; n * 3 * v.size() * v.size()];
            let (one, five) = (px(1), px(5));
            out.push(("image, 1 tile".to_string(), time(&|| v.embed(&one, 1, MediaKind::Image))?));
            out.push(("image, 5 tiles".to_string(), time(&|| v.embed(&five, 5, MediaKind::Image))?));
            if let Some(vid) = v.video_info() {
                let n = vid.frames as usize;
                let frames = px(n);
                out.push((format!("video, {n} frames"), time(&|| v.embed(&frames, n, MediaKind::Video))?));
            }
        }
        if let Some(a) = &self.audio {
            for frames in [1000usize, 3000] {
                let mel: Vec<f32> = (0..a.n_mels * frames).map(|i| ((i % 97) as f32 / 97.0) - 0.5).collect();
                out.push((format!("audio, {} s", frames / 100), time(&|| a.embed(&mel, frames))?));
            }
        }
        Ok(out)
    }
}

fn check(tokens: usize, want: usize) -> Result<(), String> {
    if tokens == want {
        Ok(())
    } else {
        Err(format!("a media span has {tokens} placeholder tokens; its data makes {want}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projector_is_seeded_and_scaled() -> Result<()> {
        let a = Projector::random(8, 4, 0.5, 7)?;
        let b = Projector::random(8, 4, 0.5, 7)?;
        let x = Tensor::from_vec((0..16).map(|i| i as f32 / 8.0).collect::<Vec<_>>(), (2, 8), &Device::Cpu)?;
        let (ya, yb) = (a.forward(&x)?.to_vec2::<f32>()?, b.forward(&x)?.to_vec2::<f32>()?);
        assert_eq!(ya, yb);
        let c = Projector::random(8, 4, 0.5, 8)?.forward(&x)?.to_vec2::<f32>()?;
        assert_ne!(c, ya);
        for row in ya {
            let rms = (row.iter().map(|v| v * v).sum::<f32>() / row.len() as f32).sqrt();
            assert!((rms - 0.5).abs() < 1e-3, "{rms}");
        }
        Ok(())
    }
}
