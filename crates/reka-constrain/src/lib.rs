//! Constrained decoding: a request's constraint (a JSON schema, a regex, a
//! list of choices, a Lark grammar, or tool calls) compiled by `llguidance`
//! into a matcher that, before every step, says which tokens of the vocabulary
//! keep the output a valid prefix of the constraint's language.
//!
//! The generate component (wasm) holds one [`Constraint`] per answer: it asks
//! for the [`Constraint::mask`] before each step, hands it to the host with
//! the step (so the host's top-k is taken among allowed tokens only), and
//! feeds the sampled token back with [`Constraint::accept`].

mod spec;
mod vocab;

pub use spec::{Spec, ToolSpec};
pub use vocab::Vocab;

use llguidance::{api::TopLevelGrammar, Matcher, ParserFactory};
use std::sync::Arc;

/// A compiled constraint for one answer.
#[derive(Clone)]
pub struct Constraint {
    matcher: Matcher,
    /// The ids that end an answer; allowed together when the grammar accepts.
    stop_ids: Vec<u32>,
    vocab_size: usize,
}

/// What [`Constraint::mask`] allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mask {
    /// Bit `i % 32` of word `i / 32` is set when token `i` is allowed.
    pub words: Vec<u32>,
    /// How many tokens are allowed.
    pub allowed: usize,
}

impl Mask {
    pub fn allows(&self, id: u32) -> bool {
        self.words.get(id as usize / 32).is_some_and(|w| w >> (id % 32) & 1 == 1)
    }
}

/// A compiler of constraints for one vocabulary (build once per model).
pub struct Compiler {
    factory: Arc<ParserFactory>,
    vocab: Vocab,
}

impl Compiler {
    /// A compiler for `vocab`, with llguidance's lexer slices: the vocabulary
    /// is pre-split by the regexes JSON strings use, which makes masks inside
    /// strings cheap and costs a pass over the vocabulary per slice up front.
    pub fn new(vocab: Vocab) -> Result<Self, String> {
        Self::build(vocab, &llguidance::earley::SlicedBiasComputer::general_slices())
    }

    /// A compiler for `vocab` without slices: cheap to build, dearer masks.
    pub fn without_slices(vocab: Vocab) -> Result<Self, String> {
        Self::build(vocab, &[])
    }

    fn build(vocab: Vocab, slices: &[String]) -> Result<Self, String> {
        let mut factory = ParserFactory::new(vocab.env(), Default::default(), slices).map_err(|e| e.to_string())?;
        factory.quiet();
        Ok(Self { factory: Arc::new(factory), vocab })
    }

    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    /// Compiles `spec`; its error names what is wrong or unsupported.
    pub fn compile(&self, spec: &Spec) -> Result<Constraint, String> {
        let grammar: TopLevelGrammar = spec.grammar(&self.vocab)?;
        let parser = self.factory.create_parser(grammar).map_err(|e| e.to_string())?;
        let matcher = Matcher::new(Ok(parser));
        if let Some(e) = matcher.get_error() {
            return Err(e);
        }
        Ok(Constraint { matcher, stop_ids: self.vocab.stop_ids().to_vec(), vocab_size: self.vocab.size() })
    }
}

impl Constraint {
    /// The tokens allowed next (the stop ids when the output may end here).
    pub fn mask(&mut self) -> Result<Mask, String> {
        let v = self.matcher.compute_mask_or_eos().map_err(|e| e.to_string())?;
        let mut words = vec![0u32; self.vocab_size.div_ceil(32)];
        let n = words.len().min(v.as_slice().len());
        words[..n].copy_from_slice(&v.as_slice()[..n]);
        if let Some(last) = words.last_mut() {
            if !self.vocab_size.is_multiple_of(32) {
                *last &= (1u32 << (self.vocab_size % 32)) - 1;
            }
        }
        // The grammar's one end token stands for all of the prompt format's.
        if v.is_allowed(self.vocab_eos()) {
            for &s in &self.stop_ids {
                if (s as usize) < self.vocab_size {
                    words[s as usize / 32] |= 1 << (s % 32);
                }
            }
        }
        let allowed = words.iter().map(|w| w.count_ones() as usize).sum();
        Ok(Mask { words, allowed })
    }

    fn vocab_eos(&self) -> u32 {
        self.stop_ids.first().copied().unwrap_or(0)
    }

    /// Feeds the sampled token. A stop id ends the constraint.
    pub fn accept(&mut self, id: u32) -> Result<(), String> {
        if self.stop_ids.contains(&id) {
            return Ok(());
        }
        self.matcher.consume_token(id).map_err(|e| e.to_string())
    }

    /// Whether the output is complete and nothing more may follow (the
    /// answer should stop).
    pub fn finished(&self) -> bool {
        self.matcher.is_stopped()
    }
}
