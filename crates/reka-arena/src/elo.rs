//! Online Elo, one update per vote in the order given.
//!
//! Every model starts at 1000. For a vote with left score `s` (1, 0 or 0.5) the
//! left model's expected score is `e = 1 / (1 + 10^((R_r − R_l)/400))`, and
//! `R_l += K (s − e)`, `R_r −= K (s − e)` with `K` = [`ELO_K`] = 4. Unlike the
//! Bradley–Terry fit this depends on the order of the votes (recent ones weigh
//! more); Chatbot Arena reported it early on and keeps it for comparison.

use crate::{Battle, ELO_BASE, ELO_K, ELO_SCALE, INITIAL_RATING};

/// Elo ratings of models `0..n` after playing `battles` in order.
pub fn online(n: usize, battles: &[Battle]) -> Vec<f64> {
    let mut r = vec![INITIAL_RATING; n];
    for b in battles {
        let expected = 1.0 / (1.0 + ELO_BASE.powf((r[b.right] - r[b.left]) / ELO_SCALE));
        let delta = ELO_K * (b.outcome.score() - expected);
        r[b.left] += delta;
        r[b.right] -= delta;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::online;
    use crate::{Battle, Outcome};

    #[test]
    fn first_win_moves_two_points() {
        let r = online(
            2,
            &[Battle {
                left: 1,
                right: 0,
                outcome: Outcome::Left,
            }],
        );
        assert_eq!(r, vec![998.0, 1002.0]);
    }

    #[test]
    fn a_tie_between_equals_changes_nothing() {
        let r = online(
            2,
            &[Battle {
                left: 0,
                right: 1,
                outcome: Outcome::BothBad,
            }],
        );
        assert_eq!(r, vec![1000.0, 1000.0]);
    }
}
