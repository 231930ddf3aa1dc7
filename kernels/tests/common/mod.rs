//! The llama.cpp fixtures shared by `tests/kquant_ggml.rs` (K-quants) and
//! `tests/blocks_ggml.rs` (32-value block formats): `tests/fixtures/kquants/<type>.bin`,
//! made by `scripts/kquant-fixtures.py` through ggml's own C code (ctypes;
//! format and provenance in that folder's ORIGIN.md). Each holds weights
//! quantized by ggml, ggml's dequantization of them, activations, ggml's
//! quantization of those for the type's `vec_dot_type`, and ggml's `vec_dot`
//! of every weight row with every activation row.

use std::path::PathBuf;

/// One `<type>.bin` fixture.
pub struct Fixture {
    /// ggml's `ggml_type` number of the weights.
    pub ggml_type: u32,
    pub rows: usize,
    pub cols: usize,
    pub n_act: usize,
    /// The weights as ggml quantized them, row-major blocks.
    pub weights: Vec<u8>,
    /// ggml's `to_float` of `weights`, `[rows, cols]`.
    pub dequant: Vec<f32>,
    /// Activations `[n_act, cols]`.
    pub x: Vec<f32>,
    /// ggml's `from_float` of `x` for the `vec_dot_type`, row after row.
    pub xq: Vec<u8>,
    /// `dot[a * rows + r]`: ggml's `vec_dot` of weight row `r`, activation row `a`.
    pub dot: Vec<f32>,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn f32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// Reads `tests/fixtures/kquants/<name>.bin`; panics (with how to make it) if
/// it is missing or malformed.
pub fn load(name: &str) -> Fixture {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/kquants").join(format!("{name}.bin"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "missing fixture {} ({e}): make it with scripts/kquant-fixtures.py (llama.cpp's ggml through ctypes; see tests/fixtures/kquants/ORIGIN.md)",
            path.display()
        )
    });
    assert!(bytes.len() >= 24 && &bytes[0..4] == b"RKQF", "{name}: not an RKQF file");
    assert_eq!(u32_at(&bytes, 4), 1, "{name}: fixture version");
    let ggml_type = u32_at(&bytes, 8);
    let (rows, cols, n_act) = (u32_at(&bytes, 12) as usize, u32_at(&bytes, 16) as usize, u32_at(&bytes, 20) as usize);
    let mut at = 24;
    let mut sections = Vec::new();
    for _ in 0..5 {
        assert!(bytes.len() >= at + 8, "{name}: truncated");
        let mut len = [0u8; 8];
        len.copy_from_slice(&bytes[at..at + 8]);
        let len = u64::from_le_bytes(len) as usize;
        at += 8;
        assert!(bytes.len() >= at + len, "{name}: truncated section");
        sections.push(bytes[at..at + len].to_vec());
        at += len;
    }
    assert_eq!(at, bytes.len(), "{name}: trailing bytes");
    let mut s = sections.into_iter();
    let mut next = || s.next().unwrap_or_default();
    let (weights, dequant, x, xq, dot) = (next(), f32s(&next()), f32s(&next()), next(), f32s(&next()));
    assert_eq!(dequant.len(), rows * cols, "{name}: dequant length");
    assert_eq!(x.len(), n_act * cols, "{name}: x length");
    assert_eq!(dot.len(), n_act * rows, "{name}: dot length");
    assert_eq!(xq.len() % n_act.max(1), 0, "{name}: xq length");
    Fixture { ggml_type, rows, cols, n_act, weights, dequant, x, xq, dot }
}

impl Fixture {
    /// Activation row `a`.
    pub fn x_row(&self, a: usize) -> &[f32] {
        &self.x[a * self.cols..(a + 1) * self.cols]
    }

    /// ggml's quantized bytes of activation row `a`.
    pub fn xq_row(&self, a: usize) -> &[u8] {
        let per_row = self.xq.len() / self.n_act;
        &self.xq[a * per_row..(a + 1) * per_row]
    }

    /// Asserts that `dequantize_row(r, out)` gives ggml's dequantization of
    /// every row bit for bit.
    pub fn check_dequant(&self, name: &str, mut dequantize_row: impl FnMut(usize, &mut [f32])) {
        let mut row = vec![0f32; self.cols];
        for r in 0..self.rows {
            dequantize_row(r, &mut row);
            for (c, (a, b)) in row.iter().zip(&self.dequant[r * self.cols..(r + 1) * self.cols]).enumerate() {
                assert_eq!(a.to_bits(), b.to_bits(), "{name} [{r}, {c}]: ours {a}, ggml {b}");
            }
        }
    }

    /// Asserts that `ours(a)`, the bytes of our quantization of activation
    /// row `a`, are ggml's.
    pub fn check_activation_bytes(&self, name: &str, ours: impl Fn(&[f32]) -> Vec<u8>) {
        for a in 0..self.n_act {
            let (ours, theirs) = (ours(self.x_row(a)), self.xq_row(a));
            assert_eq!(ours.len(), theirs.len(), "{name} act {a}: length");
            if let Some(i) = ours.iter().zip(theirs).position(|(p, q)| p != q) {
                panic!("{name} act {a}: first differing byte {i} of {}: ours {}, ggml {}", theirs.len(), ours[i], theirs[i]);
            }
        }
    }

    /// Asserts `|ours − ggml| ≤ bound · Σ|w·x|` for every dot product of `y`
    /// (`[n_act, rows]`, as our matmuls give it), `Σ|w·x|` over ggml's
    /// dequantized row and the unquantized activations (the natural scale of an
    /// f32 dot's rounding), and exact equality where that is 0 (the zero row).
    /// Returns the worst `|ours − ggml| / Σ|w·x|`.
    pub fn check_dots(&self, label: &str, y: &[f32], bound: f64) -> f64 {
        assert_eq!(y.len(), self.n_act * self.rows, "{label}: output length");
        let mut worst = 0f64;
        for a in 0..self.n_act {
            let x = self.x_row(a);
            for r in 0..self.rows {
                let wr = &self.dequant[r * self.cols..(r + 1) * self.cols];
                let mag: f64 = wr.iter().zip(x).map(|(p, q)| (*p as f64 * *q as f64).abs()).sum();
                let (ours, theirs) = (y[a * self.rows + r], self.dot[a * self.rows + r]);
                if mag == 0.0 {
                    assert_eq!(ours, theirs, "{label} act {a} row {r}");
                    continue;
                }
                let diff = (ours as f64 - theirs as f64).abs();
                worst = worst.max(diff / mag);
                assert!(diff <= bound * mag, "{label} act {a} row {r}: ours {ours}, ggml {theirs}, Σ|w·x| {mag}");
            }
        }
        println!("{label}: max |ours − ggml| / Σ|w·x| = {worst:.2e}");
        worst
    }
}
