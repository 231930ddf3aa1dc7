//! The cl100k_base vocabulary (the Reka tokenizer, per the paper) from the ranks
//! that ship inside the tiktoken-rs crate, for checkpoints that declare no
//! tokenizer.json.

use anyhow::{Context, Result};
use reka_protocol::VocabSpec;

/// cl100k_base's own special tokens.
pub const CL100K_SPECIALS: &[(&str, u32)] = &[
    ("<|endoftext|>", 100257),
    ("<|fim_prefix|>", 100258),
    ("<|fim_middle|>", 100259),
    ("<|fim_suffix|>", 100260),
    ("<|endofprompt|>", 100276),
];

/// Number of mergeable ranks in cl100k_base.
const CL100K_RANKS: u32 = 100_256;

/// The vocabulary of `vocab_size` ids: cl100k's ranks and specials plus `extra`
/// specials the checkpoint declares (e.g. Reka's `<sep>`).
pub fn cl100k_vocab(extra: &[(String, u32)], vocab_size: usize) -> Result<VocabSpec> {
    let bpe = tiktoken_rs::cl100k_base().context("loading cl100k_base from tiktoken-rs")?;
    let ranks = (0..CL100K_RANKS)
        .map(|r| bpe.decode_bytes(&[r]).map_err(|e| anyhow::anyhow!("rank {r}: {e:?}")))
        .collect::<Result<Vec<_>>>()?;
    let mut specials: Vec<(String, u32)> = CL100K_SPECIALS.iter().map(|(t, i)| (t.to_string(), *i)).collect();
    specials.extend(extra.iter().cloned());
    Ok(reka_tokenizer::vocab_from_ranks(&ranks, &specials, vocab_size)?)
}
