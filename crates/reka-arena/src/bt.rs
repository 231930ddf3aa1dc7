//! Bradley–Terry ratings by maximum likelihood — Chatbot Arena's
//! `compute_mle_elo`, solved by Newton's method.
//!
//! Each model `i` has a strength `βᵢ` on the natural-log scale, and
//! `P(i beats j) = σ(βᵢ − βⱼ)`. The fit maximises
//!
//! ```text
//! Σ_votes [ y ln σ(β_l − β_r) + (1 − y) ln σ(β_r − β_l) ] − (λ/2) Σᵢ βᵢ²
//! ```
//!
//! with `y` = 1 (left won), 0 (right won) or 0.5 (tie, both bad) and
//! `λ` = [`LAMBDA`] = 1e-6. The penalty is only there to keep the optimum finite
//! when a model never loses (or never wins) — without it the likelihood keeps
//! growing as that model's strength goes to ±∞; with it such a model lands a
//! large but finite distance away (about `ln(n/λ)`). It also pins the mean
//! strength to 0, which the likelihood alone leaves free. Chatbot Arena gets the
//! same effect from scikit-learn's `LogisticRegression(C=1e6)`; there the penalty
//! is on the log₁₀ strengths and the scale is anchored to one model, here it is
//! on the natural-log ones and ratings are centred, so the numbers differ slightly
//! in the penalised extremes and not at all otherwise.
//!
//! The objective is strictly concave, and the negated Hessian
//! `Σ σσ' (e_l − e_r)(e_l − e_r)ᵀ + λI` is positive definite, so Newton's method
//! (Cholesky solve, step halving as a safeguard) converges from `β = 0`. It stops
//! when the Newton step, less its mean (the mean direction does not change the
//! ratings and has curvature only `λ`, so round-off moves it most), is below
//! [`STEP_TOL`]; convergence is quadratic there, so the answer is accurate to
//! round-off.
//!
//! Rating = 1000 + (400 / ln 10)·(βᵢ − mean β), so ratings average 1000 and 400
//! points are a factor 10 in the odds.

use crate::{linalg, Battle, ELO_BASE, ELO_SCALE, INITIAL_RATING, LAMBDA};

/// Newton stops once its step (less its mean) is below this, in natural-log units.
pub const STEP_TOL: f64 = 1e-10;
/// At most this many Newton steps (about 30 are needed when a model never loses).
pub const MAX_ITER: usize = 200;

/// `ln σ(x)`, stable for large `|x|`.
fn ln_sigmoid(x: f64) -> f64 {
    // ln σ(x) = −ln(1 + e^(−x)) = min(x, 0) − ln(1 + e^(−|x|))
    x.min(0.0) - (-x.abs()).exp().ln_1p()
}

/// `σ(x) = 1 / (1 + e^(−x))`, stable for large `|x|`.
fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// The penalised log-likelihood.
fn objective(beta: &[f64], battles: &[Battle]) -> f64 {
    let mut f = 0.0;
    for b in battles.iter().filter(|b| b.left != b.right) {
        let d = beta[b.left] - beta[b.right];
        let y = b.outcome.score();
        f += y * ln_sigmoid(d) + (1.0 - y) * ln_sigmoid(-d);
    }
    f - 0.5 * LAMBDA * beta.iter().map(|b| b * b).sum::<f64>()
}

/// The gradient and the negated Hessian (row-major) of [`objective`].
fn derivatives(beta: &[f64], battles: &[Battle]) -> (Vec<f64>, Vec<f64>) {
    let n = beta.len();
    let mut grad: Vec<f64> = beta.iter().map(|b| -LAMBDA * b).collect();
    let mut hess = vec![0.0; n * n];
    for i in 0..n {
        hess[i * n + i] = LAMBDA;
    }
    for b in battles.iter().filter(|b| b.left != b.right) {
        let d = beta[b.left] - beta[b.right];
        let y = b.outcome.score();
        // d/dd [y ln σ(d) + (1−y) ln σ(−d)] = y σ(−d) − (1−y) σ(d); σ(−d) is
        // computed directly so a near-certain win keeps its relative precision.
        let (p, q) = (sigmoid(d), sigmoid(-d));
        let g = y * q - (1.0 - y) * p;
        let w = p * q;
        let (l, r) = (b.left, b.right);
        grad[l] += g;
        grad[r] -= g;
        hess[l * n + l] += w;
        hess[r * n + r] += w;
        hess[l * n + r] -= w;
        hess[r * n + l] -= w;
    }
    (grad, hess)
}

/// The maximum-likelihood strengths `β` (natural-log scale) of models
/// `0..n`, every one of which should appear in `battles` (one that does not gets
/// 0). Votes of a model against itself are ignored.
pub fn fit(n: usize, battles: &[Battle]) -> Vec<f64> {
    let mut beta = vec![0.0; n];
    let mut f = objective(&beta, battles);
    for _ in 0..MAX_ITER {
        let (grad, hess) = derivatives(&beta, battles);
        let Some(step) = linalg::solve_spd(hess, &grad) else {
            break;
        };
        let mut t = 1.0;
        let mut taken = None;
        while t > 1e-12 {
            let trial: Vec<f64> = beta.iter().zip(&step).map(|(b, s)| b + t * s).collect();
            let ft = objective(&trial, battles);
            // Accept anything not worse beyond round-off: near the optimum the
            // change in the objective is below what it can resolve.
            if ft >= f - 1e-12 * (1.0 + f.abs()) {
                taken = Some((trial, ft));
                break;
            }
            t *= 0.5;
        }
        let Some((trial, ft)) = taken else {
            break;
        };
        beta = trial;
        f = ft;
        let mean = step.iter().sum::<f64>() / n as f64;
        let size = step
            .iter()
            .fold(0.0f64, |m, s| m.max((t * (s - mean)).abs()));
        if size < STEP_TOL {
            break;
        }
    }
    beta
}

/// Bradley–Terry ratings of models `0..n` from `battles`: `None` for a model no
/// battle names, the others fitted together and centred on 1000 over themselves.
pub fn ratings(n: usize, battles: &[Battle]) -> Vec<Option<f64>> {
    // Renumber the models present, in index (name) order, so the fit sees only them.
    let mut slot = vec![usize::MAX; n];
    for b in battles {
        slot[b.left] = 0;
        slot[b.right] = 0;
    }
    let mut present = 0;
    for s in slot.iter_mut().filter(|s| **s != usize::MAX) {
        *s = present;
        present += 1;
    }
    let local: Vec<Battle> = battles
        .iter()
        .map(|b| Battle {
            left: slot[b.left],
            right: slot[b.right],
            outcome: b.outcome,
        })
        .collect();
    let beta = fit(present, &local);
    let mean = if present == 0 {
        0.0
    } else {
        beta.iter().sum::<f64>() / present as f64
    };
    let scale = ELO_SCALE / ELO_BASE.ln();
    slot.iter()
        .map(|&s| (s != usize::MAX).then(|| INITIAL_RATING + scale * (beta[s] - mean)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Outcome;

    fn battle(left: usize, right: usize, outcome: Outcome) -> Battle {
        Battle {
            left,
            right,
            outcome,
        }
    }

    #[test]
    fn ties_only_give_equal_ratings() {
        let battles = [
            battle(0, 1, Outcome::Tie),
            battle(1, 2, Outcome::BothBad),
            battle(2, 0, Outcome::Tie),
        ];
        for r in ratings(3, &battles) {
            let r = r.expect("present");
            assert!((r - 1000.0).abs() < 1e-9, "{r}");
        }
    }

    #[test]
    fn two_models_match_the_closed_form() {
        // 3 wins, 1 loss: σ(β₀ − β₁) = 3/4 up to the tiny penalty.
        let battles = [
            battle(0, 1, Outcome::Left),
            battle(1, 0, Outcome::Right),
            battle(0, 1, Outcome::Left),
            battle(0, 1, Outcome::Right),
        ];
        let r = ratings(2, &battles);
        let (a, b) = (r[0].expect("a"), r[1].expect("b"));
        let want = ELO_SCALE * 3f64.log10();
        assert!((a - b - want).abs() < 1e-3, "{a} {b} {want}");
        assert!((a + b - 2000.0).abs() < 1e-9);
    }

    #[test]
    fn a_model_that_never_loses_stays_finite() {
        let battles: Vec<Battle> = (0..20)
            .map(|i| {
                battle(
                    i % 2,
                    1 - i % 2,
                    if i % 2 == 0 {
                        Outcome::Left
                    } else {
                        Outcome::Right
                    },
                )
            })
            .collect();
        let r = ratings(2, &battles);
        let (a, b) = (r[0].expect("a"), r[1].expect("b"));
        assert!(a.is_finite() && b.is_finite() && a > b + 1000.0, "{a} {b}");
    }

    #[test]
    fn an_absent_model_has_no_rating() {
        let r = ratings(3, &[battle(0, 2, Outcome::Left)]);
        assert!(r[1].is_none() && r[0].is_some() && r[2].is_some());
    }
}
