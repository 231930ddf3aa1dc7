//! Leaderboards from blind pairwise votes between models, the way Chatbot Arena
//! ranks them.
//!
//! A [`Vote`] says which of two anonymous answers a person preferred: the left,
//! the right, a tie, or neither ("both bad"). Ties and both-bad votes count as a
//! tie, half a win for each side. [`leaderboard`] turns a list of votes into a
//! [`Leaderboard`]:
//!
//! * Bradley–Terry ratings by maximum likelihood ([`bt`]), with 95% bootstrap
//!   percentile intervals and the bootstrap median ([`bootstrap`]);
//! * online Elo in vote order, K = 4 ([`elo`]);
//! * per-model counts and the pairwise win-rate matrix ([`table`]).
//!
//! Everything is deterministic (models are sorted by name, the bootstrap draws
//! from [`rng::SplitMix64`] with a given seed), single-threaded and pure Rust, so
//! it builds for `wasm32-wasip2` as well as natively.
//!
//! A vote whose two sides name the same model carries no information about it:
//! it counts in the totals and as a tie for that model (a model cannot beat
//! itself), shows as a 0.5 on the diagonal of the win-rate matrix, and leaves its
//! ratings unchanged.

pub mod board;
pub mod bootstrap;
pub mod bt;
pub mod elo;
mod linalg;
pub mod rng;
pub mod table;

use serde::{Deserialize, Serialize};

pub use board::{leaderboard, BtRating, Leaderboard, Method, ModelRow};

/// The rating every scale is centred on: Bradley–Terry ratings average this,
/// Elo ratings start at it.
pub const INITIAL_RATING: f64 = 1000.0;
/// Rating points per factor [`ELO_BASE`] in the odds of winning.
pub const ELO_SCALE: f64 = 400.0;
/// The odds base of the rating scale.
pub const ELO_BASE: f64 = 10.0;
/// The online Elo step size.
pub const ELO_K: f64 = 4.0;
/// The L2 penalty on the natural-log Bradley–Terry strengths (see [`bt`]).
pub const LAMBDA: f64 = 1e-6;
/// Bootstrap resamples when the caller has no preference.
pub const DEFAULT_RESAMPLES: usize = 1000;
/// Bootstrap seed when the caller has no preference.
pub const DEFAULT_SEED: u64 = 42;

/// What the voter preferred.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The left answer won.
    Left,
    /// The right answer won.
    Right,
    /// Both were as good.
    Tie,
    /// Both were bad; scored as a tie.
    BothBad,
}

impl Outcome {
    /// The left side's score: 1 for a win, 0 for a loss, 0.5 for a tie or both bad.
    pub fn score(self) -> f64 {
        match self {
            Outcome::Left => 1.0,
            Outcome::Right => 0.0,
            Outcome::Tie | Outcome::BothBad => 0.5,
        }
    }
}

/// One blind pairwise vote.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Vote {
    /// The model behind the left answer.
    pub left: String,
    /// The model behind the right answer.
    pub right: String,
    /// What the voter chose.
    pub outcome: Outcome,
}

/// A vote with its models replaced by their indices in a name-sorted model list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Battle {
    /// Index of the left model.
    pub left: usize,
    /// Index of the right model.
    pub right: usize,
    /// What the voter chose.
    pub outcome: Outcome,
}

/// The models of `votes`, sorted by name, and the votes as [`Battle`]s over them.
pub fn index(votes: &[Vote]) -> (Vec<String>, Vec<Battle>) {
    let names: std::collections::BTreeSet<&str> = votes
        .iter()
        .flat_map(|v| [v.left.as_str(), v.right.as_str()])
        .collect();
    let models: Vec<String> = names.into_iter().map(str::to_owned).collect();
    let at = |name: &str| {
        models
            .binary_search_by(|m| m.as_str().cmp(name))
            .unwrap_or(0)
    };
    let battles = votes
        .iter()
        .map(|v| Battle {
            left: at(&v.left),
            right: at(&v.right),
            outcome: v.outcome,
        })
        .collect();
    (models, battles)
}
