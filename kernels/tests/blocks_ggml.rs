//! The 32-value block formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) of
//! `reka_kernels::quant` (GGUF layout, scalar reference) and
//! `reka_kernels::quant_tiles` (the decoder's 16-row tiles) against llama.cpp's
//! own C code, through the fixtures `tests/fixtures/kquants/<type>.bin` (see
//! `common/mod.rs` and that folder's ORIGIN.md).
//!
//! Checked per type: `QMatrix::dequantize_row` has ggml's bits; our activation
//! quantization has ggml's `block_q8_0` / `block_q8_1` bytes; every tile
//! variant's dot products are within a tight bound of ggml's; and the scalar
//! reference on the GGUF layout gives the tiles' bits.

mod common;

use common::{load, Fixture};
use reka_kernels::cpu::runnable;
use reka_kernels::quant::{self, q8_bytes, QMatrix, QType};
use reka_kernels::quant_tiles::{self, Tiled};

const TYPES: [&str; 5] = ["q4_0", "q4_1", "q5_0", "q5_1", "q8_0"];

fn matrix(name: &str, f: &Fixture) -> QMatrix {
    let qt = match f.ggml_type {
        2 => QType::Q4_0,
        3 => QType::Q4_1,
        6 => QType::Q5_0,
        7 => QType::Q5_1,
        8 => QType::Q8_0,
        id => panic!("{name}: ggml type {id} is not a 32-value block format"),
    };
    QMatrix::new(qt, f.rows, f.cols, f.weights.clone()).expect("fixture weights")
}

/// Q4_1 and Q5_1 multiply Q8_1 activations (with the block's `s`), the others Q8_0.
fn with_sum(qt: QType) -> bool {
    matches!(qt, QType::Q4_1 | QType::Q5_1)
}

#[test]
fn dequantization_has_ggml_bits() {
    for name in TYPES {
        let f = load(name);
        let w = matrix(name, &f);
        f.check_dequant(name, |r, out| w.dequantize_row(r, out));
    }
}

#[test]
fn activation_quantization_has_ggml_bytes() {
    for name in TYPES {
        let f = load(name);
        let s = with_sum(matrix(name, &f).qtype);
        f.check_activation_bytes(name, |x| q8_bytes(x, s));
    }
}

/// Our dot products differ from ggml's AVX2 `vec_dot` only in the order of
/// the f32 operations after the exact integer block sums (ggml keeps 8 lane
/// partials and, for Q4_1 / Q5_1, a separate sum of `m · s`; we one running
/// sum of per-block FMAs), with the same f16 `d` and `s` of the activation
/// blocks. Bound: `|ours − ggml| ≤ 1e-6 · Σ|w·x|` per row pair; measured
/// worst (the same for every variant, as they share the reference's bits):
/// Q4_0 5.2e-8, Q4_1 1.3e-7, Q5_0 8.8e-8, Q5_1 2.0e-7, Q8_0 2.4e-8 (printed).
#[test]
fn dot_products_match_ggml_for_every_variant() {
    for name in TYPES {
        let f = load(name);
        let w = matrix(name, &f);
        let tiled = Tiled::from_matrix(&w);
        let reference = quant::matmul(&w, &f.x, f.n_act);
        f.check_dots(&format!("{name} reference"), &reference, 1e-6);
        for isa in runnable() {
            let y = quant_tiles::matmul_with(isa, &tiled, &f.x, f.n_act);
            f.check_dots(&format!("{name} {isa}"), &y, 1e-6);
            for (i, (a, b)) in y.iter().zip(&reference).enumerate() {
                assert_eq!(a.to_bits(), b.to_bits(), "{name} {isa} [{i}]: tiles {a}, scalar reference {b}");
            }
        }
    }
}
