//! `reka_kernels::kquant` against llama.cpp's own C code: the fixtures in
//! `tests/fixtures/kquants/<type>.bin` (made by `scripts/kquant-fixtures.py`
//! through ggml's ctypes entry points; see its ORIGIN.md) hold weights
//! quantized by ggml, ggml's dequantization of them, activations, ggml's
//! quantization of those for the type's `vec_dot_type`, and ggml's `vec_dot`
//! of every weight row with every activation row.
//!
//! Checked per type: our dequantization has ggml's bits; our activation
//! quantization has ggml's bytes; every variant's dot products are within a
//! tight bound of ggml's (same integers, another float summation order).

use reka_kernels::cpu::runnable;
use reka_kernels::kquant::{activation_bytes, matmul_with, KMatrix, KType};
use std::path::PathBuf;

struct Fixture {
    ktype: KType,
    rows: usize,
    cols: usize,
    n_act: usize,
    weights: Vec<u8>,
    dequant: Vec<f32>,
    x: Vec<f32>,
    xq: Vec<u8>,
    dot: Vec<f32>,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn f32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

fn load(name: &str) -> Fixture {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/kquants").join(format!("{name}.bin"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "missing fixture {} ({e}): make it with scripts/kquant-fixtures.py (llama.cpp's ggml through ctypes; see tests/fixtures/kquants/ORIGIN.md)",
            path.display()
        )
    });
    assert!(bytes.len() >= 24 && &bytes[0..4] == b"RKQF", "{name}: not an RKQF file");
    assert_eq!(u32_at(&bytes, 4), 1, "{name}: fixture version");
    let id = u32_at(&bytes, 8);
    let ktype = KType::from_ggml_type_id(id).unwrap_or_else(|| panic!("{name}: ggml type {id} is not a kquant type"));
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
    Fixture { ktype, rows, cols, n_act, weights, dequant, x, xq, dot }
}

const TYPES: [&str; 7] = ["q5_0", "q5_1", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k"];

#[test]
fn dequantization_has_ggml_bits() {
    for name in TYPES {
        let f = load(name);
        let w = KMatrix::new(f.ktype, f.rows, f.cols, f.weights.clone()).expect("fixture weights");
        let mut row = vec![0f32; f.cols];
        for r in 0..f.rows {
            w.dequantize_row(r, &mut row);
            for (c, (a, b)) in row.iter().zip(&f.dequant[r * f.cols..(r + 1) * f.cols]).enumerate() {
                assert_eq!(a.to_bits(), b.to_bits(), "{name} [{r}, {c}]: ours {a}, ggml {b}");
            }
        }
    }
}

#[test]
fn activation_quantization_has_ggml_bytes() {
    for name in TYPES {
        let f = load(name);
        let per_row = f.xq.len() / f.n_act;
        for a in 0..f.n_act {
            let ours = activation_bytes(f.ktype, &f.x[a * f.cols..(a + 1) * f.cols]);
            let theirs = &f.xq[a * per_row..(a + 1) * per_row];
            assert_eq!(ours.len(), theirs.len(), "{name} act {a}: length");
            if let Some(i) = ours.iter().zip(theirs).position(|(p, q)| p != q) {
                panic!("{name} act {a}: first differing byte {i} of {per_row}: ours {}, ggml {}", ours[i], theirs[i]);
            }
        }
    }
}

/// Our dot products differ from ggml's AVX2 `vec_dot` only in the order of
/// the f32 operations after the exact integer block sums (ggml keeps 8 lane
/// partials, we one running sum of per-block FMAs). The bound is relative to
/// `Σ|w·x|` of the row pair (the natural scale of an f32 dot's rounding):
/// `|ours − ggml| ≤ 1e-6 · Σ|w·x|`; measured worst 2.9e-7 (Q2_K; Q3_K 4.8e-8,
/// Q6_K 6.9e-8, Q4_K 1.2e-7, Q5_K 2.2e-7, Q5_0 8.8e-8, Q5_1 2.0e-7; printed).
#[test]
fn dot_products_match_ggml_for_every_variant() {
    for name in TYPES {
        let f = load(name);
        let w = KMatrix::new(f.ktype, f.rows, f.cols, f.weights.clone()).expect("fixture weights");
        for isa in runnable() {
            let y = matmul_with(isa, &w, &f.x, f.n_act);
            let mut worst = 0f64;
            for a in 0..f.n_act {
                let x = &f.x[a * f.cols..(a + 1) * f.cols];
                for r in 0..f.rows {
                    let wr = &f.dequant[r * f.cols..(r + 1) * f.cols];
                    let mag: f64 = wr.iter().zip(x).map(|(p, q)| (*p as f64 * *q as f64).abs()).sum();
                    let (ours, theirs) = (y[a * f.rows + r], f.dot[a * f.rows + r]);
                    let diff = (ours as f64 - theirs as f64).abs();
                    if mag == 0.0 {
                        assert_eq!(ours, theirs, "{name} {isa} act {a} row {r}");
                        continue;
                    }
                    worst = worst.max(diff / mag);
                    assert!(diff <= 1e-6 * mag, "{name} {isa} act {a} row {r}: ours {ours}, ggml {theirs}, Σ|w·x| {mag}");
                }
            }
            println!("{name} {isa}: max |ours − ggml| / Σ|w·x| = {worst:.2e}");
        }
    }
}
