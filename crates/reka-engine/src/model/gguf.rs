//! Loads a llama-architecture GGUF file: quantized weights (any type candle
//! supports: Q4_0/Q4_1/Q5_x/Q8_0/K-quants/F16/F32), the shape from the
//! `{arch}.*` keys, and the tokenizer and chat template from `tokenizer.*`.

use super::config::{DecoderConfig, RopeScaling};
use super::llama::{Block, Llama, Weights};
use super::END_OF_TURN_TOKENS;
use anyhow::{anyhow, bail, Context, Result};
use candle_core::quantized::gguf_file::{Content, Value};
use super::linear::Linear;
use candle_core::{DType, Device, Tensor};
use reka_kernels::RopeStyle;
use reka_protocol::{ModelInfo, VocabSpec};
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

/// Reads metadata and weights of `path` and serves it as `name`.
pub fn load(name: &str, path: &Path) -> Result<super::Loaded> {
    let mut reader = BufReader::new(File::open(path)?);
    let Header { content, cfg, info, vocab } = read_header(name, &mut reader)?;
    let device = Device::Cpu;
    let mut tensor = |n: &str| {
        content
            .tensor(&mut reader, n, &device)
            .with_context(|| format!("reading tensor {n}"))
    };
    let embed_q = tensor("token_embd.weight")?;
    let embeddings = embed_q.dequantize(&device)?;
    let lm_head = match tensor("output.weight") {
        Ok(w) => Linear::from_qtensor(w)?,
        Err(_) => Linear::from_qtensor(embed_q)?, // tied embeddings
    };
    let mut blocks = Vec::with_capacity(cfg.num_layers);
    for i in 0..cfg.num_layers {
        let mut q = |s: &str| -> Result<Linear> {
            Ok(Linear::from_qtensor(tensor(&format!("blk.{i}.{s}.weight"))?)?)
        };
        let (wq, wk, wv, wo) = (q("attn_q")?, q("attn_k")?, q("attn_v")?, q("attn_output")?);
        let (w_gate, w_up, w_down) = (q("ffn_gate")?, q("ffn_up")?, q("ffn_down")?);
        let mut norm = |s: &str| -> Result<Tensor> {
            Ok(tensor(&format!("blk.{i}.{s}.weight"))?.dequantize(&device)?)
        };
        blocks.push(Block {
            attn_norm: norm("attn_norm")?,
            ffn_norm: norm("ffn_norm")?,
            wq,
            wk,
            wv,
            wo,
            w_gate,
            w_up,
            w_down,
        });
    }
    let final_norm = tensor("output_norm.weight")?.dequantize(&device)?;
    let weights = Weights {
        embeddings: embeddings.to_dtype(DType::F32)?,
        blocks,
        final_norm,
        lm_head,
    };
    Ok((Llama::new(cfg, weights, &device)?, info, vocab))
}

/// What a GGUF file says before its weights.
pub struct Header {
    /// The parsed header: metadata and tensor infos.
    pub content: Content,
    pub cfg: DecoderConfig,
    pub info: ModelInfo,
    pub vocab: VocabSpec,
}

/// Reads and checks the header and metadata of a GGUF file (no tensor data);
/// public for the fuzz targets.
pub fn read_header<R: std::io::Read + std::io::Seek>(name: &str, reader: &mut R) -> Result<Header> {
    let content = Content::read(reader).map_err(|e| anyhow!("not a GGUF file: {e}"))?;
    let md = Meta(&content);
    let arch = md.string("general.architecture")?;
    if !matches!(arch.as_str(), "llama" | "mistral" | "granite") {
        bail!("unsupported GGUF architecture {arch:?} (llama-style decoders only)");
    }
    let vocab = md.vocab()?;
    let cfg = md.decoder(&arch, vocab.tokens.len())?;
    if let RopeScaling::Unsupported(kind) = &cfg.rope_scaling {
        bail!("the file asks for rope scaling {kind:?}, which is not supported for GGUF (linear is)");
    }
    let info = md.model_info(name, &arch, &cfg, &vocab)?;
    Ok(Header { content, cfg, info, vocab })
}

struct Meta<'a>(&'a Content);

impl Meta<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.0.metadata.get(key)
    }
    fn string(&self, key: &str) -> Result<String> {
        Ok(self
            .get(key)
            .ok_or_else(|| anyhow!("GGUF metadata lacks {key}"))?
            .to_string()?
            .clone())
    }
    fn u32(&self, key: &str) -> Result<u32> {
        let v = self.get(key).ok_or_else(|| anyhow!("GGUF metadata lacks {key}"))?;
        Ok(v.to_u32().or_else(|_| v.to_u64().map(|x| x as u32))?)
    }
    fn opt_u32(&self, key: &str) -> Option<u32> {
        self.u32(key).ok()
    }
    fn f64_or(&self, key: &str, default: f64) -> f64 {
        self.get(key)
            .and_then(|v| v.to_f32().map(f64::from).or_else(|_| v.to_f64()).ok())
            .unwrap_or(default)
    }
    fn strings(&self, key: &str) -> Result<Vec<String>> {
        let Some(v) = self.get(key) else {
            return Ok(Vec::new());
        };
        v.to_vec()?
            .iter()
            .map(|s| Ok(s.to_string()?.clone()))
            .collect()
    }

    fn decoder(&self, arch: &str, vocab_len: usize) -> Result<DecoderConfig> {
        let k = |s: &str| format!("{arch}.{s}");
        let hidden = self.u32(&k("embedding_length"))? as usize;
        let heads = self.u32(&k("attention.head_count"))? as usize;
        if hidden == 0 || heads == 0 {
            bail!("embedding_length {hidden} and attention.head_count {heads} must both be positive");
        }
        let kv_heads = self.opt_u32(&k("attention.head_count_kv")).unwrap_or(heads as u32) as usize;
        if kv_heads == 0 || !heads.is_multiple_of(kv_heads) {
            bail!("attention.head_count_kv {kv_heads} must be positive and divide attention.head_count {heads}");
        }
        let head_dim = self.opt_u32(&k("attention.key_length")).map_or(hidden / heads, |d| d as usize);
        if head_dim == 0 {
            bail!("the attention head size is 0 (attention.key_length, or embedding_length / head_count)");
        }
        // llama.cpp's n_rot: the leading dims of a head that rotate.
        let rotary_dim = self.opt_u32(&k("rope.dimension_count")).map_or(head_dim, |d| d as usize);
        if rotary_dim > head_dim || !rotary_dim.is_multiple_of(2) {
            bail!("rope.dimension_count {rotary_dim} must be even and at most the head size {head_dim}");
        }
        let scaling = match self.get(&k("rope.scaling.type")).and_then(|v| v.to_string().ok()) {
            Some(t) if t == "linear" => RopeScaling::Linear {
                factor: self.f64_or(&k("rope.scaling.factor"), 1.0),
            },
            Some(t) if t != "none" => RopeScaling::Unsupported(t.clone()),
            _ => RopeScaling::None,
        };
        Ok(DecoderConfig {
            hidden_size: hidden,
            intermediate_size: self.u32(&k("feed_forward_length"))? as usize,
            num_layers: self.u32(&k("block_count"))? as usize,
            num_heads: heads,
            num_kv_heads: kv_heads,
            head_dim,
            rotary_dim,
            vocab_size: self.opt_u32(&k("vocab_size")).map(|v| v as usize).unwrap_or(vocab_len),
            rope_theta: self.f64_or(&k("rope.freq_base"), 10_000.0),
            rope_scaling: scaling,
            // llama.cpp's converter permutes Q/K so that adjacent pairs rotate.
            rope_style: RopeStyle::Interleaved,
            rms_norm_eps: self.f64_or(&k("attention.layer_norm_rms_epsilon"), 1e-5),
            context_length: self.u32(&k("context_length"))? as usize,
            attn_f16: true,
        })
    }

    fn vocab(&self) -> Result<VocabSpec> {
        let token_types = match self.get("tokenizer.ggml.token_type") {
            Some(v) => v.to_vec()?.iter().map(|t| Ok(t.to_i32()?)).collect::<Result<_>>()?,
            None => Vec::new(),
        };
        Ok(VocabSpec {
            model: self.string("tokenizer.ggml.model")?,
            pre: self.string("tokenizer.ggml.pre").unwrap_or_else(|_| "gpt2".into()),
            tokens: self.strings("tokenizer.ggml.tokens")?,
            merges: self.strings("tokenizer.ggml.merges")?,
            token_types,
        })
    }

    fn model_info(
        &self,
        name: &str,
        arch: &str,
        cfg: &DecoderConfig,
        vocab: &VocabSpec,
    ) -> Result<ModelInfo> {
        if vocab.model != "gpt2" {
            bail!("unsupported tokenizer model {:?} (byte-level BPE only)", vocab.model);
        }
        let eos = self.opt_u32("tokenizer.ggml.eos_token_id");
        let mut stops: Vec<u32> = eos.into_iter().collect();
        stops.extend(self.opt_u32("tokenizer.ggml.eot_token_id"));
        for t in END_OF_TURN_TOKENS {
            if let Some(i) = vocab.tokens.iter().position(|s| s == t) {
                if vocab.token_types.get(i).is_some_and(|&ty| ty == 3 || ty == 4) {
                    stops.push(i as u32);
                }
            }
        }
        stops.sort_unstable();
        stops.dedup();
        Ok(ModelInfo {
            name: name.to_string(),
            architecture: arch.to_string(),
            vocab_size: cfg.vocab_size as u32,
            context_length: cfg.context_length as u32,
            bos_token_id: self.opt_u32("tokenizer.ggml.bos_token_id"),
            add_bos: self
                .get("tokenizer.ggml.add_bos_token")
                .and_then(|v| v.to_bool().ok())
                .unwrap_or(false),
            eos_token_id: eos,
            stop_token_ids: stops,
            chat_template: self.string("tokenizer.chat_template").ok(),
            stop_strings: Vec::new(),
            chat_format: None,
            media: None,
        })
    }
}
