//! The [`Leaderboard`]: everything [`leaderboard`] computes from a vote list, in
//! the shape it is served as JSON.
//!
//! ```json
//! {"votes": 300,
//!  "models": [{"model": "m", "votes": 150, "wins": 80, "losses": 50, "ties": 20,
//!              "both_bad": 5, "bt": {"rating": 1040.2, "lo": 1020.1, "hi": 1061.3,
//!              "median": 1040.5}, "elo": 1031.7}, ...],
//!  "win_rate": {"a": {"b": 0.61, ...}, ...},
//!  "method": {"bt": "...", "elo_k": 4.0, "resamples": 1000, "seed": 42}}
//! ```
//!
//! Models are listed by Bradley–Terry rating, best first (equal ratings by name).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{bootstrap, bt, elo, index, table, Vote, ELO_K};

/// What [`Method::bt`] says.
pub const BT_METHOD: &str = "Bradley-Terry maximum likelihood (Newton), L2 penalty 1e-6 on natural-log \
strengths, ties and both-bad as half a win; ratings centred on 1000, 400 points per factor 10 in odds; \
95% bootstrap percentile interval and median";

/// A leaderboard of models from pairwise votes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Leaderboard {
    /// Number of votes.
    pub votes: u64,
    /// The models, best Bradley–Terry rating first.
    pub models: Vec<ModelRow>,
    /// `win_rate[a][b]`: the share of the points `a` took against `b` (a tie is
    /// half a point), for every ordered pair that met.
    pub win_rate: BTreeMap<String, BTreeMap<String, f64>>,
    /// How the ratings were computed.
    pub method: Method,
}

/// One model's line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRow {
    /// The model's name.
    pub model: String,
    /// Votes it took part in.
    pub votes: u64,
    /// Votes it won.
    pub wins: u64,
    /// Votes it lost.
    pub losses: u64,
    /// Ties, both-bad votes included.
    pub ties: u64,
    /// Both-bad votes (also counted in `ties`).
    pub both_bad: u64,
    /// Its Bradley–Terry rating.
    pub bt: BtRating,
    /// Its online Elo rating after the last vote.
    pub elo: f64,
}

/// A Bradley–Terry rating with its bootstrap summary.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BtRating {
    /// The maximum-likelihood rating on all votes.
    pub rating: f64,
    /// The 2.5th percentile over the bootstrap resamples.
    pub lo: f64,
    /// The 97.5th percentile over the bootstrap resamples.
    pub hi: f64,
    /// The median over the bootstrap resamples.
    pub median: f64,
}

/// How a [`Leaderboard`] was computed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Method {
    /// The Bradley–Terry method, in words ([`BT_METHOD`]).
    pub bt: String,
    /// The online Elo step size.
    pub elo_k: f64,
    /// Bootstrap resamples.
    pub resamples: usize,
    /// Bootstrap seed.
    pub seed: u64,
}

/// The leaderboard of `votes`, with `resamples` bootstrap resamples drawn from
/// `seed` ([`crate::DEFAULT_RESAMPLES`], [`crate::DEFAULT_SEED`] are the usual
/// choice). With no resamples, or for a model no resample contains, `lo`, `hi`
/// and `median` are the rating itself.
pub fn leaderboard(votes: &[Vote], resamples: usize, seed: u64) -> Leaderboard {
    let (names, battles) = index(votes);
    let n = names.len();
    let counts = table::counts(n, &battles);
    let ratings = bt::ratings(n, &battles);
    let elo = elo::online(n, &battles);
    let samples = bootstrap::samples(n, &battles, resamples, seed);
    let mut models: Vec<ModelRow> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let rating = ratings[i].unwrap_or(crate::INITIAL_RATING);
            let mut values = samples[i].clone();
            values.sort_by(f64::total_cmp);
            let q = |q: f64| bootstrap::quantile(&values, q).unwrap_or(rating);
            let c = counts[i];
            ModelRow {
                model: name.clone(),
                votes: c.votes,
                wins: c.wins,
                losses: c.losses,
                ties: c.ties,
                both_bad: c.both_bad,
                bt: BtRating {
                    rating,
                    lo: q(2.5 / 100.0),
                    hi: q(97.5 / 100.0),
                    median: q(50.0 / 100.0),
                },
                elo: elo[i],
            }
        })
        .collect();
    models.sort_by(|a, b| b.bt.rating.total_cmp(&a.bt.rating));
    Leaderboard {
        votes: votes.len() as u64,
        models,
        win_rate: table::win_rates(&names, &battles),
        method: Method {
            bt: BT_METHOD.to_owned(),
            elo_k: ELO_K,
            resamples,
            seed,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Outcome;

    fn vote(left: &str, right: &str, outcome: Outcome) -> Vote {
        Vote {
            left: left.into(),
            right: right.into(),
            outcome,
        }
    }

    #[test]
    fn no_votes_no_models() {
        let board = leaderboard(&[], 1000, 42);
        assert_eq!(board.votes, 0);
        assert!(board.models.is_empty() && board.win_rate.is_empty());
    }

    #[test]
    fn one_vote_is_finite() {
        let board = leaderboard(&[vote("a", "b", Outcome::Left)], 100, 7);
        assert_eq!(board.models[0].model, "a");
        for m in &board.models {
            for x in [m.bt.rating, m.bt.lo, m.bt.hi, m.bt.median, m.elo] {
                assert!(x.is_finite(), "{m:?}");
            }
        }
    }

    #[test]
    fn one_model_alone_sits_at_1000() {
        let board = leaderboard(
            &[vote("a", "a", Outcome::Left), vote("a", "a", Outcome::Tie)],
            50,
            1,
        );
        let m = &board.models[0];
        assert_eq!((m.votes, m.ties, m.wins), (2, 2, 0));
        assert_eq!(
            [m.bt.rating, m.bt.lo, m.bt.hi, m.bt.median, m.elo],
            [1000.0; 5]
        );
    }

    #[test]
    fn swapping_sides_changes_nothing_but_elo_order() {
        let votes = [
            vote("a", "b", Outcome::Left),
            vote("b", "c", Outcome::Tie),
            vote("c", "a", Outcome::Right),
            vote("b", "a", Outcome::Left),
            vote("c", "b", Outcome::BothBad),
            vote("a", "c", Outcome::Right),
        ];
        let mirrored: Vec<Vote> = votes
            .iter()
            .map(|v| Vote {
                left: v.right.clone(),
                right: v.left.clone(),
                outcome: match v.outcome {
                    Outcome::Left => Outcome::Right,
                    Outcome::Right => Outcome::Left,
                    o => o,
                },
            })
            .collect();
        let (a, b) = (leaderboard(&votes, 200, 3), leaderboard(&mirrored, 200, 3));
        assert_eq!(a.win_rate, b.win_rate);
        for (x, y) in a.models.iter().zip(&b.models) {
            assert_eq!(
                (&x.model, x.votes, x.wins, x.losses, x.ties),
                (&y.model, y.votes, y.wins, y.losses, y.ties)
            );
            assert!((x.bt.rating - y.bt.rating).abs() < 1e-9);
            assert!((x.elo - y.elo).abs() < 1e-9);
        }
        // Win rates of a pair add up to 1.
        for (p, row) in &a.win_rate {
            for (q, r) in row {
                assert_eq!(r + a.win_rate[q][p], 1.0);
            }
        }
    }

    #[test]
    fn json_shape() {
        let board = leaderboard(&[vote("a", "b", Outcome::BothBad)], 10, 42);
        let json = serde_json::to_value(&board).expect("json");
        let m = &json["models"][0];
        for key in [
            "model", "votes", "wins", "losses", "ties", "both_bad", "bt", "elo",
        ] {
            assert!(m.get(key).is_some(), "{key}");
        }
        for key in ["rating", "lo", "hi", "median"] {
            assert!(m["bt"].get(key).is_some(), "{key}");
        }
        assert_eq!(json["method"]["elo_k"], 4.0);
        assert_eq!(json["method"]["resamples"], 10);
        assert_eq!(json["method"]["seed"], 42);
        assert_eq!(json["win_rate"]["a"]["b"], 0.5);
        let v: Vote =
            serde_json::from_str(r#"{"left":"x","right":"y","outcome":"bothbad"}"#).expect("vote");
        assert_eq!(v.outcome, Outcome::BothBad);
    }
}
