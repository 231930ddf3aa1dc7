//! A dense symmetric positive-definite solve by Cholesky factorisation, for the
//! Newton step of the Bradley–Terry fit (the matrix is models × models).

/// Solves `a x = b` for a symmetric positive-definite `a` (row-major, `n × n`).
/// `None` when `a` is not numerically positive definite.
pub(crate) fn solve_spd(mut a: Vec<f64>, b: &[f64]) -> Option<Vec<f64>> {
    let n = b.len();
    if a.len() != n * n {
        return None;
    }
    // a = L Lᵀ, L overwriting the lower triangle.
    for j in 0..n {
        let row_j = j * n;
        let mut d = a[row_j + j];
        for k in 0..j {
            d -= a[row_j + k] * a[row_j + k];
        }
        if d.is_nan() || d <= 0.0 || d.is_infinite() {
            return None;
        }
        let d = d.sqrt();
        a[row_j + j] = d;
        for i in j + 1..n {
            let row_i = i * n;
            let mut s = a[row_i + j];
            for k in 0..j {
                s -= a[row_i + k] * a[row_j + k];
            }
            a[row_i + j] = s / d;
        }
    }
    // L y = b, then Lᵀ x = y.
    let mut x = b.to_vec();
    for i in 0..n {
        let mut s = x[i];
        for k in 0..i {
            s -= a[i * n + k] * x[k];
        }
        x[i] = s / a[i * n + i];
    }
    for i in (0..n).rev() {
        let mut s = x[i];
        for k in i + 1..n {
            s -= a[k * n + i] * x[k];
        }
        x[i] = s / a[i * n + i];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::solve_spd;

    #[test]
    fn solves_a_small_system() {
        // [[4, 2], [2, 3]] x = [2, 1] → x = [0.5, 0]
        let x = solve_spd(vec![4.0, 2.0, 2.0, 3.0], &[2.0, 1.0]).expect("spd");
        assert!((x[0] - 0.5).abs() < 1e-15 && x[1].abs() < 1e-15, "{x:?}");
    }

    #[test]
    fn refuses_an_indefinite_matrix() {
        assert!(solve_spd(vec![1.0, 2.0, 2.0, 1.0], &[1.0, 1.0]).is_none());
    }
}
