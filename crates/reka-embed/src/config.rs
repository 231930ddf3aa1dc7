//! The model directory's configuration: the BERT `config.json` and the
//! sentence-transformers files (`modules.json`, `sentence_bert_config.json`,
//! `1_Pooling/config.json`) that say how token states become one sentence vector.

use anyhow::{bail, Context, Result};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::path::Path;

/// The BERT encoder's shape, from `config.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub hidden_act: String,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    #[serde(default = "absolute")]
    pub position_embedding_type: String,
}

fn absolute() -> String {
    "absolute".into()
}

impl BertConfig {
    /// Checks that this is the BERT variant [`crate::bert`] implements.
    pub fn validate(&self) -> Result<()> {
        if self.hidden_act != "gelu" {
            bail!(
                "hidden_act {:?} is not supported (only the erf GELU, \"gelu\")",
                self.hidden_act
            );
        }
        if self.position_embedding_type != "absolute" {
            bail!(
                "position_embedding_type {:?} is not supported",
                self.position_embedding_type
            );
        }
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            bail!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size,
                self.num_attention_heads
            );
        }
        Ok(())
    }
}

/// How sentence-transformers turns the encoder's output into an embedding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentenceConfig {
    /// Longest input in tokens, [CLS] and [SEP] included (`max_seq_length`).
    pub max_seq_length: usize,
    /// sentence-transformers lowercases the text itself before tokenizing.
    pub do_lower_case: bool,
    /// The `Normalize` module follows the pooling: vectors are L2-normalised.
    pub normalize: bool,
    /// Width of the pooled vector (`word_embedding_dimension`).
    pub dimension: usize,
}

#[derive(Deserialize)]
struct Module {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    path: String,
}

#[derive(Deserialize)]
struct SentenceBert {
    max_seq_length: usize,
    #[serde(default)]
    do_lower_case: bool,
}

#[derive(Deserialize)]
struct Pooling {
    word_embedding_dimension: usize,
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
    #[serde(default)]
    pooling_mode_weightedmean_tokens: bool,
    #[serde(default)]
    pooling_mode_lasttoken: bool,
}

/// Reads and parses one JSON file of the model directory.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

impl SentenceConfig {
    /// Reads the sentence-transformers modules of the model in `dir`. Only the
    /// pipeline Transformer → mean Pooling (→ Normalize) is supported.
    pub fn load(dir: &Path) -> Result<SentenceConfig> {
        let modules: Vec<Module> = read_json(&dir.join("modules.json"))?;
        let kinds: Vec<&str> = modules
            .iter()
            .map(|m| m.kind.rsplit('.').next().unwrap_or(""))
            .collect();
        let normalize = match kinds.as_slice() {
            ["Transformer", "Pooling"] => false,
            ["Transformer", "Pooling", "Normalize"] => true,
            _ => bail!(
                "modules.json lists {kinds:?}; only Transformer, Pooling[, Normalize] is supported"
            ),
        };
        let transformer = &modules[0].path;
        if !transformer.is_empty() {
            bail!("the Transformer module lives in {transformer:?}; only the model directory itself is supported");
        }
        let sbert: SentenceBert = read_json(&dir.join("sentence_bert_config.json"))?;
        let pooling: Pooling = read_json(&dir.join(&modules[1].path).join("config.json"))?;
        let others = [
            pooling.pooling_mode_cls_token,
            pooling.pooling_mode_max_tokens,
            pooling.pooling_mode_mean_sqrt_len_tokens,
            pooling.pooling_mode_weightedmean_tokens,
            pooling.pooling_mode_lasttoken,
        ];
        if !pooling.pooling_mode_mean_tokens || others.iter().any(|&o| o) {
            bail!("only mean pooling (pooling_mode_mean_tokens alone) is supported");
        }
        Ok(SentenceConfig {
            max_seq_length: sbert.max_seq_length,
            do_lower_case: sbert.do_lower_case,
            normalize,
            dimension: pooling.word_embedding_dimension,
        })
    }
}
