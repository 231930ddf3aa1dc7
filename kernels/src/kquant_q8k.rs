//! Q8_K: the activations the K-quants (Q2_K … Q6_K) multiply, quantized as
//! ggml's `quantize_row_q8_K` (its scalar reference, which is also what its x86
//! build runs): per block of 256 values the value of largest magnitude `max`
//! sets `iscale = -127 / max`, each value becomes `min(127, nearest(iscale · x))`
//! (round half to even, by the `+ 1.5·2²³` trick), the scale is `d = 1 / iscale`
//! kept in f32, and the quants' sums per 16 values (`bsums`) ride along.

/// Values per K-quant block (ggml's `QK_K`).
pub const QK_K: usize = 256;

/// One activation row in Q8_K blocks, the fields split into flat arrays.
#[derive(Debug, Clone)]
pub struct Q8K {
    /// Per block: the scale `d` (f32, as ggml stores it).
    pub(crate) d: Vec<f32>,
    /// The quants, `256 ·` blocks of them.
    pub(crate) qs: Vec<i8>,
    /// Per block, 16 sums of 16 consecutive quants.
    pub(crate) bsums: Vec<i16>,
}

/// ggml's `nearest_int`: round half to even through the f32 mantissa (valid for
/// `|v| ≤ 2²²`, which `|iscale · x| ≤ 127` keeps).
#[inline(always)]
fn nearest_int(v: f32) -> i32 {
    let bits = (v + 12_582_912.0f32).to_bits() as i32;
    (bits & 0x007f_ffff) - 0x0040_0000
}

/// Quantizes `x` (length a multiple of 256) to Q8_K.
pub fn quantize_q8k(x: &[f32]) -> Q8K {
    let nb = x.len() / QK_K;
    let mut row = Q8K { d: vec![0.0; nb], qs: vec![0; nb * QK_K], bsums: vec![0; nb * 16] };
    for (b, xs) in x.chunks_exact(QK_K).enumerate() {
        let (mut max, mut amax) = (0f32, 0f32);
        for &v in xs {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        if amax == 0.0 {
            // ggml leaves d = 0 and the quants 0 (its bsums are left unwritten;
            // ours are 0, which is what they would sum to).
            continue;
        }
        let iscale = -127.0f32 / max;
        let qs = &mut row.qs[b * QK_K..(b + 1) * QK_K];
        for (q, &v) in qs.iter_mut().zip(xs) {
            *q = nearest_int(iscale * v).min(127) as i8;
        }
        for (j, s) in row.bsums[b * 16..(b + 1) * 16].iter_mut().enumerate() {
            *s = qs[j * 16..(j + 1) * 16].iter().map(|&q| q as i16).sum();
        }
        row.d[b] = 1.0 / iscale;
    }
    row
}

impl Q8K {
    /// The row as ggml lays out `block_q8_K` (`f32 d`, `i8 qs[256]`,
    /// `i16 bsums[16]`, little-endian), for comparison with its bytes.
    pub fn to_ggml_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.d.len() * (4 + QK_K + 32));
        for (b, d) in self.d.iter().enumerate() {
            out.extend_from_slice(&d.to_le_bytes());
            out.extend(self.qs[b * QK_K..(b + 1) * QK_K].iter().map(|&q| q as u8));
            for s in &self.bsums[b * 16..(b + 1) * 16] {
                out.extend_from_slice(&s.to_le_bytes());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn largest_magnitude_maps_to_minus_127_times_its_sign() {
        let mut x = vec![0.5f32; QK_K];
        x[3] = -2.0;
        x[7] = 0.25;
        let q = quantize_q8k(&x);
        // iscale = -127 / -2 = 63.5: -2 → -127, 0.5 → 31.75 → 32, 0.25 → 15.875 → 16.
        assert_eq!(q.qs[3], -127);
        assert_eq!(q.qs[0], 32);
        assert_eq!(q.qs[7], 16);
        assert_eq!(q.d[0], 1.0 / 63.5);
        assert_eq!(q.bsums[0], 32 * 14 - 127 + 16);
        assert_eq!(q.to_ggml_bytes().len(), 292);
    }

    #[test]
    fn ties_round_to_even_and_zero_blocks_stay_zero() {
        assert_eq!(nearest_int(2.5), 2);
        assert_eq!(nearest_int(3.5), 4);
        assert_eq!(nearest_int(-2.5), -2);
        let q = quantize_q8k(&[0.0; 2 * QK_K]);
        assert!(q.d.iter().all(|&d| d == 0.0) && q.qs.iter().all(|&v| v == 0) && q.bsums.iter().all(|&s| s == 0));
    }
}
