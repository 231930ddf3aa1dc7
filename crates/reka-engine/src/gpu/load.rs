//! Reads a decoder's weights for the GPU from the files the CPU build serves: a
//! Hugging Face checkpoint directory (safetensors, bf16) or a llama-architecture
//! GGUF file (blocks kept), into [`HostWeights`] that [`super::GpuLlama`]
//! uploads.

use super::weights::HostMatrix;
use crate::model::config::DecoderConfig;
use crate::model::safetensors;
use crate::model::st_reader::Checkpoint;
use anyhow::{anyhow, Context, Result};
use candle_core::quantized::gguf_file::Content;
use candle_core::Device;
use reka_kernels::cuda::WeightBits;
use reka_kernels::half_matmul::HalfType;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

/// One decoder block's weights on the host.
pub struct HostBlock {
    pub attn_norm: Vec<f32>,
    /// q | k | v, fused row-wise.
    pub wqkv: HostMatrix,
    pub wo: HostMatrix,
    pub ffn_norm: Vec<f32>,
    /// gate | up, fused row-wise.
    pub w_gate_up: HostMatrix,
    pub w_down: HostMatrix,
}

/// A decoder's weights on the host, ready to upload.
pub struct HostWeights {
    pub cfg: DecoderConfig,
    pub blocks: Vec<HostBlock>,
    /// `[vocab, hidden]`: the embedding table, and the LM head when tied.
    pub embed: HostMatrix,
    pub final_norm: Vec<f32>,
    /// `None` when tied to the embeddings.
    pub lm_head: Option<HostMatrix>,
}

/// Reads a Hugging Face checkpoint directory (bf16; f16/f32 narrowed to bf16):
/// a Llama one, or Reka Edge's text decoder (`model.language_model.*`).
pub fn from_checkpoint(dir: &Path) -> Result<HostWeights> {
    let (cfg, tied, prefix) = if crate::model::yasa2::is_edge_dir(dir) {
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json"))?)?;
        let (cfg, tied) = crate::model::yasa2::text_decoder(v.get("text_config").context("config.json has no text_config")?)?;
        (cfg, tied, "model.language_model.")
    } else {
        let hf = safetensors::read_config(dir)?;
        (hf.decoder(), hf.tie_word_embeddings, "model.")
    };
    let (h, ff, vocab) = (cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size);
    let (qw, kvw) = (cfg.num_heads * cfg.head_dim, cfg.num_kv_heads * cfg.head_dim);
    let ck = Checkpoint::open(&safetensors::weight_files(dir)?)?;
    let matrix = |names: &[(&str, usize, usize)]| -> Result<HostMatrix> {
        let mut data = Vec::new();
        for &(n, r, c) in names {
            data.extend(ck.halves(n, &[r, c], HalfType::Bf16)?);
        }
        let rows = names.iter().map(|n| n.1).sum();
        Ok(HostMatrix::Half { bits: WeightBits::Bf16, rows, cols: names[0].2, data })
    };
    let norm = |n: &str| ck.f32s(n, &[h]);
    let mut blocks = Vec::with_capacity(cfg.num_layers);
    for i in 0..cfg.num_layers {
        let p = format!("{prefix}layers.{i}");
        let a = |x: &str| format!("{p}.self_attn.{x}_proj.weight");
        let m = |x: &str| format!("{p}.mlp.{x}_proj.weight");
        blocks.push(HostBlock {
            attn_norm: norm(&format!("{p}.input_layernorm.weight"))?,
            wqkv: matrix(&[(&a("q"), qw, h), (&a("k"), kvw, h), (&a("v"), kvw, h)])?,
            wo: matrix(&[(&a("o"), h, qw)])?,
            ffn_norm: norm(&format!("{p}.post_attention_layernorm.weight"))?,
            w_gate_up: matrix(&[(&m("gate"), ff, h), (&m("up"), ff, h)])?,
            w_down: matrix(&[(&m("down"), h, ff)])?,
        });
    }
    let embed = matrix(&[(&format!("{prefix}embed_tokens.weight"), vocab, h)])?;
    let lm_head = if tied || !ck.contains("lm_head.weight") {
        None
    } else {
        Some(matrix(&[("lm_head.weight", vocab, h)])?)
    };
    Ok(HostWeights { final_norm: norm(&format!("{prefix}norm.weight"))?, cfg, blocks, embed, lm_head })
}

/// Reads a GGUF file's weights for the decoder shaped `cfg` (read from the same
/// file by the CPU loader, so both builds agree on the shape). Q and K stay in
/// llama.cpp's permuted layout: `cfg.rope_style` is `Interleaved` for GGUF.
pub fn from_gguf(path: &Path, cfg: &DecoderConfig) -> Result<HostWeights> {
    let mut reader = BufReader::new(File::open(path).with_context(|| format!("opening {}", path.display()))?);
    let content = Content::read(&mut reader).map_err(|e| anyhow!("not a GGUF file: {e}"))?;
    let mut tensor = |n: &str| content.tensor(&mut reader, n, &Device::Cpu).with_context(|| format!("reading tensor {n}"));
    let mut matrix = |n: &str| -> Result<HostMatrix> { HostMatrix::from_gguf(&tensor(n)?) };
    let embed = matrix("token_embd.weight")?;
    let lm_head = matrix("output.weight").ok();
    let mut blocks = Vec::with_capacity(cfg.num_layers);
    for i in 0..cfg.num_layers {
        let mut m = |s: &str| matrix(&format!("blk.{i}.{s}.weight"));
        let (q, k, v, o) = (m("attn_q")?, m("attn_k")?, m("attn_v")?, m("attn_output")?);
        let (gate, up, down) = (m("ffn_gate")?, m("ffn_up")?, m("ffn_down")?);
        blocks.push(HostBlock {
            attn_norm: Vec::new(),
            wqkv: HostMatrix::fuse(vec![q, k, v])?,
            wo: o,
            ffn_norm: Vec::new(),
            w_gate_up: HostMatrix::fuse(vec![gate, up])?,
            w_down: down,
        });
    }
    let mut norm = |n: &str| -> Result<Vec<f32>> { Ok(tensor(n)?.dequantize(&Device::Cpu)?.flatten_all()?.to_vec1()?) };
    for (i, b) in blocks.iter_mut().enumerate() {
        b.attn_norm = norm(&format!("blk.{i}.attn_norm.weight"))?;
        b.ffn_norm = norm(&format!("blk.{i}.ffn_norm.weight"))?;
    }
    let final_norm = norm("output_norm.weight")?;
    Ok(HostWeights { cfg: cfg.clone(), blocks, embed, final_norm, lm_head })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reka_kernels::quant::QType;

    /// The GGUF that llama.cpp's converter made from the reka-tiny checkpoint
    /// holds the same bf16 weights, with q and k rows permuted for interleaved
    /// RoPE: reading both for the GPU must give the same matrices.
    #[test]
    fn gguf_and_checkpoint_of_reka_tiny_give_the_same_weights() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/reka_tiny");
        let st = from_checkpoint(&dir).expect("checkpoint");
        let gg = from_gguf(&dir.join("reka-tiny.bf16.gguf"), &st.cfg).expect("gguf");
        let half = |m: &HostMatrix| match m {
            HostMatrix::Half { bits: WeightBits::Bf16, data, .. } => data.clone(),
            _ => panic!("reka-tiny is bf16"),
        };
        let c = &st.cfg;
        let (hd, h) = (c.head_dim, c.hidden_size);
        // convert_hf_to_gguf permutes each head's rows: HF row (i, half j) <- GGUF row 2i + j.
        let unpermute = |rows: &[u16], heads: usize| -> Vec<u16> {
            let mut out = vec![0u16; rows.len()];
            for head in 0..heads {
                for j in 0..2 {
                    for i in 0..hd / 2 {
                        let src = head * hd + 2 * i + j;
                        let dst = head * hd + j * hd / 2 + i;
                        out[dst * h..(dst + 1) * h].copy_from_slice(&rows[src * h..(src + 1) * h]);
                    }
                }
            }
            out
        };
        let (qw, kvw) = (c.num_heads * hd, c.num_kv_heads * hd);
        for (a, b) in st.blocks.iter().zip(&gg.blocks) {
            let (sa, ga) = (half(&a.wqkv), half(&b.wqkv));
            assert_eq!(unpermute(&ga[..qw * h], c.num_heads), sa[..qw * h], "q");
            assert_eq!(unpermute(&ga[qw * h..(qw + kvw) * h], c.num_kv_heads), sa[qw * h..(qw + kvw) * h], "k");
            assert_eq!(ga[(qw + kvw) * h..], sa[(qw + kvw) * h..], "v");
            assert_eq!(half(&a.wo), half(&b.wo));
            assert_eq!(half(&a.w_gate_up), half(&b.w_gate_up));
            assert_eq!(half(&a.w_down), half(&b.w_down));
            assert_eq!(a.attn_norm, b.attn_norm);
            assert_eq!(a.ffn_norm, b.ffn_norm);
        }
        assert_eq!(half(&st.embed), half(&gg.embed));
        assert_eq!(half(st.lm_head.as_ref().expect("untied")), half(gg.lm_head.as_ref().expect("untied")));
        assert_eq!(st.final_norm, gg.final_norm);
    }

    /// SmolLM2's Q4_1 file (fetched by `reka-host fetch`, skipped without it):
    /// blocks stay blocks, the tied Q8_0 embedding table serves as the head.
    #[test]
    fn smollm2_gguf_keeps_its_blocks() {
        let path = crate::fetch::DEFAULT_MODEL.path(&crate::fetch::cache_dir());
        if !path.exists() {
            eprintln!("skipped: {} not fetched (reka-host fetch)", path.display());
            return;
        }
        let m = crate::model::load("smollm2", &path).expect("CPU load");
        let w = from_gguf(&path, m.decoder.config()).expect("gguf");
        assert!(matches!(w.embed, HostMatrix::Blocks { qtype: QType::Q8_0, rows: 49152, cols: 576, .. }));
        assert!(w.lm_head.is_none(), "tied");
        assert_eq!(w.blocks.len(), 30);
        assert!(matches!(w.blocks[0].wqkv, HostMatrix::Blocks { qtype: QType::Q4_1, rows: 960, cols: 576, .. }));
        assert!(matches!(w.blocks[0].w_gate_up, HostMatrix::Blocks { qtype: QType::Q4_1, rows: 3072, cols: 576, .. }));
    }
}
