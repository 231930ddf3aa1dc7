//! Per-model vote counts and the pairwise win-rate matrix.
//!
//! A tie and a both-bad vote are both a tie (half a win each); both-bad votes are
//! also counted on their own. The win rate of `a` over `b` is
//! `(wins of a over b + 0.5 · ties) / battles between them`, for every ordered
//! pair that met. A vote of a model against itself is a tie for it, once.

use std::collections::BTreeMap;

use crate::{Battle, Outcome};

/// How one model's votes went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Votes the model took part in.
    pub votes: u64,
    /// Votes it won.
    pub wins: u64,
    /// Votes it lost.
    pub losses: u64,
    /// Ties, both-bad included.
    pub ties: u64,
    /// Both-bad votes (also in `ties`).
    pub both_bad: u64,
}

/// The [`Counts`] of models `0..n`.
pub fn counts(n: usize, battles: &[Battle]) -> Vec<Counts> {
    let mut c = vec![Counts::default(); n];
    for b in battles {
        let sides: &[usize] = if b.left == b.right {
            &[b.left]
        } else {
            &[b.left, b.right]
        };
        for &m in sides {
            c[m].votes += 1;
        }
        match b.outcome {
            Outcome::Left if b.left != b.right => {
                c[b.left].wins += 1;
                c[b.right].losses += 1;
            }
            Outcome::Right if b.left != b.right => {
                c[b.right].wins += 1;
                c[b.left].losses += 1;
            }
            outcome => {
                for &m in sides {
                    c[m].ties += 1;
                    c[m].both_bad += u64::from(outcome == Outcome::BothBad);
                }
            }
        }
    }
    c
}

/// `rates[a][b]`: the win rate of `models[a]` over `models[b]`, for the pairs
/// that met.
pub fn win_rates(models: &[String], battles: &[Battle]) -> BTreeMap<String, BTreeMap<String, f64>> {
    let n = models.len();
    // (wins, ties, battles) of a over b at a * n + b.
    let mut pair = vec![(0u64, 0u64, 0u64); n * n];
    for b in battles {
        let (lr, rl) = (b.left * n + b.right, b.right * n + b.left);
        if b.left == b.right {
            pair[lr].1 += 1;
            pair[lr].2 += 1;
            continue;
        }
        pair[lr].2 += 1;
        pair[rl].2 += 1;
        match b.outcome {
            Outcome::Left => pair[lr].0 += 1,
            Outcome::Right => pair[rl].0 += 1,
            Outcome::Tie | Outcome::BothBad => {
                pair[lr].1 += 1;
                pair[rl].1 += 1;
            }
        }
    }
    let mut rates = BTreeMap::new();
    for (a, name_a) in models.iter().enumerate() {
        let row: BTreeMap<String, f64> = models
            .iter()
            .enumerate()
            .filter_map(|(b, name_b)| {
                let (wins, ties, met) = pair[a * n + b];
                (met > 0).then(|| {
                    (
                        name_b.clone(),
                        (wins as f64 + 0.5 * ties as f64) / met as f64,
                    )
                })
            })
            .collect();
        if !row.is_empty() {
            rates.insert(name_a.clone(), row);
        }
    }
    rates
}

#[cfg(test)]
mod tests {
    use super::*;

    fn battle(left: usize, right: usize, outcome: Outcome) -> Battle {
        Battle {
            left,
            right,
            outcome,
        }
    }

    #[test]
    fn counts_and_rates_are_symmetric() {
        let models = ["a".to_owned(), "b".to_owned(), "c".to_owned()];
        let battles = [
            battle(0, 1, Outcome::Left),
            battle(1, 0, Outcome::Left),
            battle(0, 1, Outcome::BothBad),
            battle(2, 0, Outcome::Right),
        ];
        let c = counts(3, &battles);
        assert_eq!(
            c[0],
            Counts {
                votes: 4,
                wins: 2,
                losses: 1,
                ties: 1,
                both_bad: 1
            }
        );
        assert_eq!(
            c[1],
            Counts {
                votes: 3,
                wins: 1,
                losses: 1,
                ties: 1,
                both_bad: 1
            }
        );
        assert_eq!(
            c[2],
            Counts {
                votes: 1,
                wins: 0,
                losses: 1,
                ties: 0,
                both_bad: 0
            }
        );
        let r = win_rates(&models, &battles);
        assert_eq!(r["a"]["b"], 0.5);
        assert_eq!(r["b"]["a"], 0.5);
        assert_eq!(r["a"]["c"], 1.0);
        assert_eq!(r["c"]["a"], 0.0);
        assert!(!r["b"].contains_key("c") && !r["a"].contains_key("a"));
    }

    #[test]
    fn a_self_vote_is_one_tie() {
        let models = ["a".to_owned()];
        let battles = [battle(0, 0, Outcome::Left), battle(0, 0, Outcome::BothBad)];
        assert_eq!(
            counts(1, &battles)[0],
            Counts {
                votes: 2,
                wins: 0,
                losses: 0,
                ties: 2,
                both_bad: 1
            }
        );
        assert_eq!(win_rates(&models, &battles)["a"]["a"], 0.5);
    }
}
