//! Bootstrap intervals for the Bradley–Terry ratings.
//!
//! Each resample is `n` votes drawn with replacement from the `n` votes: index
//! `next_u64() % n` from one [`SplitMix64`] seeded once, all `n` indices of
//! resample 0, then of resample 1, and so on. Each resample is refitted
//! ([`bt::ratings`]); a model absent from a resample contributes no value for it.
//! A model's interval is the 2.5th and 97.5th percentile of its values, and its
//! median the 50th, with numpy's default (linear) interpolation.

use crate::{bt, rng::SplitMix64, Battle};

/// The ratings of models `0..n` over `resamples` bootstrap resamples of
/// `battles`: one list of values per model (shorter than `resamples` for a
/// model some resamples miss), in resample order.
pub fn samples(n: usize, battles: &[Battle], resamples: usize, seed: u64) -> Vec<Vec<f64>> {
    let mut values = vec![Vec::with_capacity(resamples); n];
    if battles.is_empty() {
        return values;
    }
    let mut rng = SplitMix64::new(seed);
    let mut resample = Vec::with_capacity(battles.len());
    for _ in 0..resamples {
        resample.clear();
        resample.extend((0..battles.len()).map(|_| battles[rng.below(battles.len())]));
        for (model, rating) in bt::ratings(n, &resample).into_iter().enumerate() {
            if let Some(rating) = rating {
                values[model].push(rating);
            }
        }
    }
    values
}

/// The `q`-quantile (`q` in 0..=1) of ascending `sorted` values, as
/// `numpy.percentile(values, 100 q)` with its default linear method: position
/// `(m − 1) q`, interpolated between its neighbours. `None` when empty.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let position = q * last as f64;
    let below = (position.floor().max(0.0) as usize).min(last);
    let above = (below + 1).min(last);
    let t = position - below as f64;
    let (a, b) = (sorted[below], sorted[above]);
    // numpy's `_lerp`, which interpolates from the nearer end.
    let diff = b - a;
    Some(if t >= 0.5 {
        b - diff * (1.0 - t)
    } else {
        a + diff * t
    })
}

#[cfg(test)]
mod tests {
    use super::quantile;

    #[test]
    fn quantiles_interpolate_like_numpy() {
        let v = [1.0, 2.0, 4.0, 8.0];
        // numpy.percentile([1, 2, 4, 8], [0, 2.5, 50, 97.5, 100])
        //   = [1.0, 1.075, 3.0, 7.699999999999999, 8.0] (numpy 2.4.6)
        assert_eq!(quantile(&v, 0.0), Some(1.0));
        assert_eq!(quantile(&v, 2.5 / 100.0), Some(1.075));
        assert_eq!(quantile(&v, 0.5), Some(3.0));
        assert_eq!(quantile(&v, 97.5 / 100.0), Some(7.699999999999999));
        assert_eq!(quantile(&v, 1.0), Some(8.0));
        assert_eq!(quantile(&[5.0], 0.975), Some(5.0));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
