//! Reka Edge (`model_type: yasa2`, `Yasa2ForConditionalGeneration`; the plugin's
//! `yasa_edge_mmlm_model`): a Llama-style text decoder with a partial rotary
//! factor, a ConvNeXt V2 vision tower and a GELU projector
//! ([`super::edge_vision`]), the cl100k tokenizer with Reka's special tokens.
//!
//! Loaded from the Hugging Face directory (`config.json`, safetensors shards,
//! `tokenizer_config.json` / `tiktoken_special_tokens.json`) or from llama.cpp's
//! GGUF pair (text GGUF + `yasa2` mmproj). The text config is read with the key
//! names and defaults of Reka's plugin (`YasaConfig`): `num_query_groups` for
//! the KV heads, `rotary_pct` (0.25 when absent), `rotary_emb_base` (10000),
//! `rms_norm_eps` (1e-5), `max_position_embeddings` (2048).

use super::config::{parse_rope_scaling, DecoderConfig};
use super::edge_vision::{EdgeVision, EdgeVisionConfig};
use super::media::{EdgeTower, Towers, Vision};
use super::st_reader::Checkpoint;
use super::{safetensors, LoadedModel, WeightDtype};
use anyhow::{bail, Context, Result};
use candle_core::Device;
use reka_encoders::convnext::ConvNextV2Config;
use reka_kernels::RopeStyle;
use reka_protocol::{ModelInfo, VocabSpec};
use reka_tokenizer::Tokenizer;
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;

/// Reka's special tokens (the plugin's `TIKTOKEN_SPECIAL_TOKENS`).
pub const SPECIALS: &[(&str, u32)] = &[
    ("<|endofchunk|>", 100277),
    ("<REKA_IMG_TOKEN>", 100278),
    ("<image>", 100279),
    ("</image>", 100280),
    ("<REKA_ADO_TOKEN>", 100281),
    ("<audio>", 100282),
    ("</audio>", 100283),
    ("<video>", 100284),
    ("</video>", 100285),
    ("<transcript>", 100286),
    ("</transcript>", 100287),
    ("<ocr>", 100288),
    ("</ocr>", 100289),
    ("<sep>", 100290),
    ("<tool>", 100291),
    ("<tool_call>", 100292),
    ("</tool_call>", 100293),
    ("<tool_response>", 100294),
    ("</tool_response>", 100295),
];

/// The chat format name that [`ModelInfo::chat_format`] carries for Reka Edge.
pub const CHAT_FORMAT: &str = "reka-edge";

/// Video frames when a request does not say (the plugin's `serve.sh`
/// `VIDEO_NUM_FRAMES`), and the most a request may ask for (the plugin's
/// default count).
pub const VIDEO_FRAMES: u32 = 6;
pub const MAX_VIDEO_FRAMES: u32 = 32;

/// Whether `dir` holds a Reka Edge checkpoint (by its config's `model_type`).
pub fn is_edge_dir(dir: &Path) -> bool {
    read_json(&dir.join("config.json")).is_ok_and(|v| is_edge_config(&v))
}

fn is_edge_config(v: &Value) -> bool {
    matches!(v.get("model_type").and_then(Value::as_str), Some("yasa2" | "yasa_edge_mmlm_model"))
}

fn read_json(p: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))
}

/// The decoder shape of a `text_config` (plugin key names and defaults).
pub fn text_decoder(t: &Value) -> Result<(DecoderConfig, bool)> {
    let u = |k: &str| t.get(k).and_then(Value::as_u64).map(|v| v as usize);
    let f = |k: &str| t.get(k).and_then(Value::as_f64);
    let need = |k: &str| u(k).with_context(|| format!("text_config has no {k}"));
    let (hidden, heads) = (need("hidden_size")?, need("num_attention_heads")?);
    let head_dim = u("head_dim").unwrap_or(hidden / heads.max(1));
    let pct = f("rotary_pct").or_else(|| f("partial_rotary_factor")).unwrap_or(0.25);
    let rotary_dim = (head_dim as f64 * pct) as usize;
    if rotary_dim == 0 || !rotary_dim.is_multiple_of(2) || rotary_dim > head_dim {
        bail!("rotary_pct {pct} of head size {head_dim} gives {rotary_dim} rotary dims (must be even, 2..={head_dim})");
    }
    if f("rotary_emb_base").is_none() && f("rope_theta").is_some() {
        tracing::warn!("text_config has rope_theta but no rotary_emb_base: Reka's plugin reads only rotary_emb_base (default 10000), and so do we");
    }
    let max_pos = u("max_position_embeddings").unwrap_or(2048);
    let cfg = DecoderConfig {
        hidden_size: hidden,
        intermediate_size: need("intermediate_size")?,
        num_layers: need("num_hidden_layers")?,
        num_heads: heads,
        num_kv_heads: u("num_query_groups").or_else(|| u("num_key_value_heads")).unwrap_or(heads),
        head_dim,
        rotary_dim,
        vocab_size: u("vocab_size").unwrap_or(50432),
        rope_theta: f("rotary_emb_base").unwrap_or(10_000.0),
        rope_scaling: parse_rope_scaling(t.get("rope_scaling"), max_pos as f64),
        rope_style: RopeStyle::Halves,
        rms_norm_eps: f("rms_norm_eps").or_else(|| f("layer_norm_eps")).unwrap_or(1e-5),
        context_length: max_pos,
        attn_f16: false,
    };
    if let super::config::RopeScaling::Unsupported(kind) = &cfg.rope_scaling {
        bail!("text_config asks for rope_scaling type {kind:?}, which is not supported");
    }
    let tied = t.get("tie_word_embeddings").and_then(Value::as_bool).unwrap_or(false);
    Ok((cfg, tied))
}

/// The vision side of the top-level config (ConvNextV2Config defaults).
pub fn vision_config(v: &Value) -> Result<EdgeVisionConfig> {
    let vc = v.get("vision_config").context("config.json has no vision_config")?;
    let list = |k: &str, d: &[usize]| -> Vec<usize> {
        vc.get(k)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_u64).map(|x| x as usize).collect())
            .unwrap_or_else(|| d.to_vec())
    };
    let u = |o: &Value, k: &str| o.get(k).and_then(Value::as_u64);
    Ok(EdgeVisionConfig {
        net: ConvNextV2Config {
            hidden_sizes: list("hidden_sizes", &[96, 192, 384, 768]),
            depths: list("depths", &[3, 3, 9, 3]),
            patch_size: u(vc, "patch_size").unwrap_or(4) as usize,
            in_channels: u(vc, "num_channels").unwrap_or(3) as usize,
        },
        image_size: u(vc, "image_size").unwrap_or(224) as usize,
        num_query_tokens: u(v, "num_query_tokens").unwrap_or(49) as usize,
        max_tiles: u(v, "vision_max_tiles_num").or_else(|| u(v, "max_tiles_num")).unwrap_or(4) as u32,
        use_pos_embed: v.get("use_vision_pos_embed").and_then(Value::as_bool).unwrap_or(true),
    })
}

/// cl100k_base plus Reka's specials (from `tiktoken_special_tokens.json` when
/// the directory has one), the free ids up to the vocabulary's end named
/// `<|special_token_i|>` as the plugin names them.
fn vocab(dir: Option<&Path>, vocab_size: usize) -> Result<VocabSpec> {
    let mut extra: Vec<(String, u32)> = match dir.map(|d| d.join("tiktoken_special_tokens.json")).filter(|p| p.exists()) {
        Some(p) => read_json(&p)?
            .as_object()
            .context("tiktoken_special_tokens.json is not an object")?
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), u32::try_from(v.as_u64()?).ok()?)))
            .collect(),
        None => SPECIALS.iter().map(|(t, i)| (t.to_string(), *i)).collect(),
    };
    let taken: std::collections::HashSet<u32> =
        extra.iter().map(|e| e.1).chain(super::tiktoken::CL100K_SPECIALS.iter().map(|e| e.1)).collect();
    extra.extend((100_256..vocab_size as u32).filter(|i| !taken.contains(i)).map(|i| (format!("<|special_token_{i}|>"), i)));
    super::tiktoken::cl100k_vocab(&extra, vocab_size)
}

/// The id of special token `t`.
fn special(tok: &Tokenizer, t: &str) -> Option<u32> {
    tok.token_to_id(t).filter(|&i| tok.is_special(i))
}

/// Makes `info` Reka Edge's: its chat format, and `<sep>` / `<|endoftext|>` as
/// stop tokens when the vocabulary has them.
fn edge_info(info: &mut ModelInfo, tok: &Tokenizer) {
    info.chat_format = Some(CHAT_FORMAT.into());
    info.chat_template = None;
    info.add_bos = false;
    for t in ["<sep>", "<|endoftext|>"] {
        if let Some(id) = special(tok, t) {
            if !info.stop_token_ids.contains(&id) {
                info.stop_token_ids.push(id);
            }
        }
    }
    info.eos_token_id = special(tok, "<|endoftext|>").or(info.eos_token_id);
}

/// The `[start, end]` ids of a media block, e.g. `<image>`, `</image>`.
fn wrap(tok: &Tokenizer, start: &str, end: &str) -> Result<[u32; 2]> {
    let id = |t: &str| special(tok, t).with_context(|| format!("the vocabulary has no {t} token"));
    Ok([id(start)?, id(end)?])
}

/// Attaches `vision` to `model` as Reka Edge's media side.
fn attach(model: &mut LoadedModel, vision: EdgeVision) -> Result<()> {
    edge_info(&mut model.info, &model.tokenizer);
    let tok = &model.tokenizer;
    let tower = EdgeTower {
        vision,
        video_frames: VIDEO_FRAMES,
        max_frames: MAX_VIDEO_FRAMES,
        image_wrap: wrap(tok, "<image>", "</image>")?,
        video_wrap: wrap(tok, "<video>", "</video>")?,
    };
    let placeholder = special(tok, "<REKA_IMG_TOKEN>").context("the vocabulary has no <REKA_IMG_TOKEN>")?;
    let hidden = model.decoder.config().hidden_size;
    let towers = Towers::new(Some(Vision::Edge(tower)), None, hidden, placeholder);
    model.info.media = Some(towers.info());
    model.info_json = serde_json::to_vec(&model.info)?;
    model.media = Some(towers);
    Ok(())
}

/// Loads a Reka Edge Hugging Face directory served as `name`.
pub fn load_dir(name: &str, dir: &Path, dtype: WeightDtype) -> Result<LoadedModel> {
    let v = read_json(&dir.join("config.json"))?;
    let text = v.get("text_config").context("config.json has no text_config")?;
    let (cfg, tied) = text_decoder(text)?;
    let vcfg = vision_config(&v)?;
    tracing::info!(
        "Reka Edge: {} layers, hidden {}, {} heads / {} KV heads, rotary {} of {} dims (base {}), ConvNeXt V2 {:?} × {:?}, {} tokens per {}px tile",
        cfg.num_layers, cfg.hidden_size, cfg.num_heads, cfg.num_kv_heads, cfg.rotary_dim, cfg.head_dim, cfg.rope_theta,
        vcfg.net.hidden_sizes, vcfg.net.depths, vcfg.num_query_tokens, vcfg.image_size
    );
    let ck = Checkpoint::open(&safetensors::weight_files(dir)?)?;
    let weights = safetensors::decoder_weights(&ck, &cfg, "model.language_model.", tied, dtype)?;
    let vision = EdgeVision::from_checkpoint(&ck, &vcfg, cfg.hidden_size).context("loading the vision tower")?;
    let vocab = vocab(Some(dir), cfg.vocab_size)?;
    let tokenizer = Tokenizer::new(&vocab).context("building the tokenizer")?;
    // `attach` makes it Reka Edge's (chat format, stop tokens, media).
    let info = ModelInfo {
        name: name.to_string(),
        architecture: "yasa2".into(),
        vocab_size: cfg.vocab_size as u32,
        context_length: cfg.context_length as u32,
        bos_token_id: None,
        add_bos: false,
        eos_token_id: None,
        stop_token_ids: Vec::new(),
        chat_template: None,
        stop_strings: Vec::new(),
        chat_format: None,
        media: None,
    };
    let decoder = Arc::new(super::Llama::new(cfg, weights, &Device::Cpu)?);
    let mut model = LoadedModel {
        decoder,
        info_json: Vec::new(),
        tokenizer_blob: tokenizer.to_compact(),
        info,
        tokenizer,
        media: None,
        decoder_path: dir.to_path_buf(),
        #[cfg(feature = "cuda")]
        gpu: None,
    };
    attach(&mut model, vision)?;
    Ok(model)
}

/// Loads llama.cpp's GGUF pair: the text GGUF (`arch = llama`) and the `yasa2`
/// mmproj, served as `name`.
pub fn load_gguf_pair(name: &str, text: &Path, mmproj: &Path) -> Result<LoadedModel> {
    let mut model = super::load(name, text)?;
    let hidden = model.decoder.config().hidden_size;
    let vision = EdgeVision::from_mmproj(mmproj, hidden, 4).with_context(|| format!("loading the mmproj {}", mmproj.display()))?;
    attach(&mut model, vision)?;
    Ok(model)
}
