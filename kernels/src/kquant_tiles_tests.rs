//! Unit tests of [`crate::kquant_tiles`]: the repacking keeps every quant,
//! scale and min, and every runnable variant gives the bits of the scalar
//! reference on the GGUF layout ([`crate::kquant`]), for any batch.

use crate::cpu::{runnable, Isa};
use crate::kquant::{self, KType};
use crate::kquant_q8k::QK_K;
use crate::kquant_tests::{bits, weights};
use crate::kquant_tiles::*;
use crate::noise;

#[test]
fn other_k_formats_are_not_tiled() {
    for kt in [KType::Q2K, KType::Q3K, KType::Q5K] {
        let [w, _] = weights(kt, 16, QK_K, 1);
        assert!(KTiled::from_matrix(&w).is_none(), "{kt:?}");
    }
}

/// Candle-quantized and random-byte weights (every scale, min and quant
/// value), a partial last tile, batches on both sides of the 4-row passes, and
/// activations with a wide range and a row of zeros.
#[test]
fn every_variant_gives_the_gguf_reference_bits() {
    let (rows, cols) = (150, 3 * QK_K);
    for kt in TYPES {
        for w in weights(kt, rows, cols, 41) {
            let tiled = KTiled::from_matrix(&w).expect("tiled");
            for t in [1, 3, 4, 5, 9, 16] {
                let mut x: Vec<f32> = noise(42 + t as u64, t * cols).iter().enumerate().map(|(i, v)| v * (1 + i % 13) as f32).collect();
                if t > 1 {
                    x[cols..2 * cols].fill(0.0);
                }
                let want = kquant::matmul_with(Isa::Scalar, &w, &x, t);
                for isa in runnable() {
                    assert_eq!(bits(&matmul_with(isa, &tiled, &x, t)), bits(&want), "{kt:?} {isa} t={t}");
                }
            }
        }
    }
}

#[test]
fn batched_rows_and_shared_passes_give_each_rows_own_bits() {
    let (cols, t) = (2 * QK_K, 7);
    let x = noise(50, t * cols);
    for kt in TYPES {
        let ws: Vec<KTiled> = [(70, 51), (33, 52)]
            .iter()
            .map(|&(rows, seed)| KTiled::from_matrix(&weights(kt, rows, cols, seed)[0]).expect("tiled"))
            .collect();
        let refs: Vec<&KTiled> = ws.iter().collect();
        let many = matmul_many(&refs, &x, t);
        for (w, y) in ws.iter().zip(&many) {
            assert_eq!(y, &matmul(w, &x, t), "{kt:?} {} rows", w.rows);
            for j in 0..t {
                let one = matmul(w, &x[j * cols..(j + 1) * cols], 1);
                assert_eq!(&y[j * w.rows..(j + 1) * w.rows], &one[..], "{kt:?} row {j}");
            }
        }
    }
    assert!(matmul_many(&[], &x, t).is_empty());
}

#[test]
fn the_level_in_use_passed_its_self_check() {
    let l = level();
    assert!(l <= crate::cpu::selected());
    if cfg!(target_arch = "x86_64") && crate::cpu::selected() >= Isa::Avx2 {
        assert_eq!(l, Isa::Avx2, "the AVX2 tiles failed their self-check");
    }
    eprintln!("kquant_tiles: running {l}; above AVX2 the AVX2 code runs (no AVX-512 variant yet)");
}

/// All quants and scales at their largest (and Q6_K's scales at ±127)
/// against activation quants of ±127: the 16-bit partial sums must not
/// overflow.
#[test]
fn extreme_blocks_do_not_overflow_the_partial_sums() {
    let (rows, cols, t) = (16, 2 * QK_K, 2);
    let x: Vec<f32> = (0..t * cols).map(|i| if i < cols { 1.0 } else { -1.0 }).collect();
    for kt in TYPES {
        for fill in [0xFFu8, 0x7F, 0x80] {
            let mut data = vec![fill; rows * cols / QK_K * kt.block_bytes()];
            for blk in data.chunks_mut(kt.block_bytes()) {
                let n = blk.len();
                match kt {
                    KType::Q6K => blk[n - 2..].copy_from_slice(&[0x00, 0x3c]),
                    _ => blk[..4].copy_from_slice(&[0x00, 0x3c, 0x00, 0x3c]),
                }
            }
            let w = kquant::KMatrix::new(kt, rows, cols, data).expect("matrix");
            let want = kquant::matmul_with(Isa::Scalar, &w, &x, t);
            assert!(want.iter().all(|v| v.is_finite() && *v != 0.0), "{kt:?} {fill:#x}: {want:?}");
            for isa in runnable() {
                let got = matmul_with(isa, &KTiled::from_matrix(&w).expect("tiled"), &x, t);
                assert_eq!(bits(&got), bits(&want), "{kt:?} {fill:#x} {isa}");
            }
        }
    }
}
