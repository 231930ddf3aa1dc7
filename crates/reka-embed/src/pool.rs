//! Sentence vectors from token states, as sentence-transformers' `Pooling`
//! (mean over the unmasked tokens) and `Normalize` (L2) modules compute them.

/// The mean of the first `len` rows of `states` (`rows × dim`, row-major).
/// Sums are taken in f64; an empty selection gives zeros (sentence-transformers
/// divides by max(count, 1e-9)).
pub fn mean_pool(states: &[f32], dim: usize, len: usize) -> Vec<f32> {
    let mut sum = vec![0f64; dim];
    for row in states.chunks_exact(dim).take(len) {
        for (s, &x) in sum.iter_mut().zip(row) {
            *s += f64::from(x);
        }
    }
    let count = (len as f64).max(1e-9);
    sum.iter().map(|&s| (s / count) as f32).collect()
}

/// Scales `v` to unit L2 norm (`torch.nn.functional.normalize`: divide by
/// max(‖v‖, 1e-12)).
pub fn l2_normalize(v: &mut [f32]) {
    let norm = v
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt()
        .max(1e-12);
    for x in v {
        *x = (f64::from(*x) / norm) as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_ignores_padding_rows() {
        let states = [1.0, 2.0, 3.0, 4.0, 100.0, 100.0];
        assert_eq!(mean_pool(&states, 2, 2), [2.0, 3.0]);
        assert_eq!(mean_pool(&states, 2, 0), [0.0, 0.0]);
    }

    #[test]
    fn normalizes_to_unit_length() {
        let mut v = [3.0, 4.0];
        l2_normalize(&mut v);
        assert_eq!(v, [0.6, 0.8]);
        let mut z = [0.0, 0.0];
        l2_normalize(&mut z);
        assert_eq!(z, [0.0, 0.0]);
    }
}
