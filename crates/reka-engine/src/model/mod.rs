//! Models the host serves: the Llama / Noam decoder and its loaders.
//!
//! [`load`] picks the loader from the path: a `.gguf` file, a directory with a
//! Hugging Face `config.json` and safetensors weights, or a multimodal model's
//! `.json` config. A directory whose config is Reka Edge's (`yasa2`) gets its
//! vision tower too ([`yasa2`]).

pub mod config;
pub mod edge_vision;
pub mod gguf;
pub mod linear;
pub mod llama;
pub mod media;
pub mod multimodal;
pub mod safetensors;
pub mod st_reader;
pub mod tiktoken;
pub mod tokenizer_json;
pub mod yasa2;

use anyhow::{Context, Result};
use reka_protocol::{ModelInfo, VocabSpec};
use reka_tokenizer::Tokenizer;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

pub use llama::{KvCache, Llama, Step};

/// A model ready to serve: weights plus what guests need to talk to it.
pub struct LoadedModel {
    /// Shared with any other model of this process that loaded the same file
    /// (a multimodal model and the text model it extends hold one copy).
    pub decoder: Arc<Llama>,
    pub info: ModelInfo,
    /// The model's tokenizer, for the native paths.
    pub tokenizer: Tokenizer,
    /// `info` as JSON and the tokenizer in compact form, made once: the guests
    /// ask for both on every request.
    pub info_json: Vec<u8>,
    pub tokenizer_blob: Vec<u8>,
    /// The media encoders of a multimodal model.
    pub media: Option<media::Towers>,
    /// The file or directory the decoder was loaded from.
    pub decoder_path: PathBuf,
    /// The decoder on the GPU, when this GPU build found one; engine steps
    /// then run there, and `decoder` keeps only its shape
    /// (`Llama::without_weights`).
    #[cfg(feature = "cuda")]
    pub gpu: Option<Arc<crate::gpu::GpuLlama>>,
}

/// The type that a checkpoint's dense weights are kept in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightDtype {
    /// As the checkpoint stores them (bf16 stays bf16).
    #[default]
    Auto,
    F32,
    Bf16,
    F16,
}

impl std::str::FromStr for WeightDtype {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "f32" | "float32" => Ok(Self::F32),
            "bf16" | "bfloat16" => Ok(Self::Bf16),
            "f16" | "float16" => Ok(Self::F16),
            _ => Err(format!("unknown dtype {s:?} (auto, f32, bf16, f16)")),
        }
    }
}

/// Loads a model from a GGUF file or a checkpoint directory, served as `name`,
/// with a checkpoint's weights kept as stored.
pub fn load(name: &str, path: &Path) -> Result<LoadedModel> {
    load_as(name, path, WeightDtype::Auto)
}

/// [`load`] with the dense weights of a checkpoint directory kept in `dtype`
/// (GGUF files keep their own block types). A `.json` file describes a
/// multimodal model ([`multimodal`]).
pub fn load_as(name: &str, path: &Path, dtype: WeightDtype) -> Result<LoadedModel> {
    if path.extension().is_some_and(|e| e == "json") {
        return multimodal::load(name, path, dtype);
    }
    if path.is_dir() && yasa2::is_edge_dir(path) {
        return yasa2::load_dir(name, path, dtype).with_context(|| format!("loading Reka Edge checkpoint {}", path.display()));
    }
    let (decoder, mut info, vocab) = shared_or_load(path, dtype, || {
        if path.is_dir() {
            safetensors::load(name, path, dtype).with_context(|| format!("loading checkpoint directory {}", path.display()))
        } else {
            gguf::load(name, path).with_context(|| format!("loading GGUF file {}", path.display()))
        }
    })?;
    info.name = name.to_string();
    let tokenizer = Tokenizer::new(&vocab).context("building the tokenizer")?;
    Ok(LoadedModel {
        decoder,
        info_json: serde_json::to_vec(&info)?,
        tokenizer_blob: tokenizer.to_compact(),
        info,
        tokenizer,
        media: None,
        decoder_path: path.to_path_buf(),
        #[cfg(feature = "cuda")]
        gpu: None,
    })
}

/// Decoders loaded by this process, by file and dtype, held weakly: loading the
/// same file again while one is alive shares its weights.
type Loads = Vec<(PathBuf, WeightDtype, Weak<Llama>, ModelInfo, VocabSpec)>;
static LOADS: Mutex<Loads> = Mutex::new(Vec::new());

/// The live decoder loaded from `path` as `dtype`, or `load`'s, remembered.
/// Loads hold the lock, so two loads of one file never make two copies.
fn shared_or_load(path: &Path, dtype: WeightDtype, load: impl FnOnce() -> Result<Loaded>) -> Result<(Arc<Llama>, ModelInfo, VocabSpec)> {
    let key = std::fs::canonicalize(path).with_context(|| format!("opening {}", path.display()))?;
    let mut loads = LOADS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    loads.retain(|l| l.2.strong_count() > 0);
    let live = loads.iter().find(|l| l.0 == key && l.1 == dtype);
    if let Some((d, info, vocab)) = live.and_then(|l| Some((l.2.upgrade()?, l.3.clone(), l.4.clone()))) {
        return Ok((d, info, vocab));
    }
    let (decoder, info, vocab) = load()?;
    let decoder = Arc::new(decoder);
    loads.push((key, dtype, Arc::downgrade(&decoder), info.clone(), vocab.clone()));
    Ok((decoder, info, vocab))
}

/// What a loader returns: the decoder, the guests' model info, the vocabulary.
pub type Loaded = (Llama, ModelInfo, VocabSpec);

/// Strings that end a chat turn in the common chat formats; those present in the
/// vocabulary as special tokens become stop tokens.
pub const END_OF_TURN_TOKENS: &[&str] = &["<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end|>", "<sep>"];
