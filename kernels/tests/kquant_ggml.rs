//! `reka_kernels::kquant` (the K-quants Q2_K..Q6_K) against llama.cpp's own C
//! code, through the fixtures `tests/fixtures/kquants/<type>.bin` (see
//! `common/mod.rs` and that folder's ORIGIN.md). The 32-value block formats
//! are `tests/blocks_ggml.rs`.
//!
//! Checked per type: our dequantization has ggml's bits; our activation
//! quantization (Q8_K) has ggml's bytes; every variant's dot products are
//! within a tight bound of ggml's (same integers, another float summation order).

mod common;

use common::{load, Fixture};
use reka_kernels::cpu::runnable;
use reka_kernels::kquant::{activation_bytes, matmul_with, KMatrix, KType};

const TYPES: [&str; 5] = ["q2_k", "q3_k", "q4_k", "q5_k", "q6_k"];

fn matrix(name: &str, f: &Fixture) -> KMatrix {
    let kt = KType::from_ggml_type_id(f.ggml_type).unwrap_or_else(|| panic!("{name}: ggml type {} is not a K-quant", f.ggml_type));
    KMatrix::new(kt, f.rows, f.cols, f.weights.clone()).expect("fixture weights")
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
        load(name).check_activation_bytes(name, activation_bytes);
    }
}

/// Our dot products differ from ggml's AVX2 `vec_dot` only in the order of
/// the f32 operations after the exact integer block sums (ggml keeps 8 lane
/// partials, we one running sum of per-block FMAs). The bound is relative to
/// `Σ|w·x|` of the row pair (the natural scale of an f32 dot's rounding):
/// `|ours − ggml| ≤ 1e-6 · Σ|w·x|`; measured worst 2.9e-7 (Q2_K; Q3_K 4.8e-8,
/// Q6_K 6.9e-8, Q4_K 1.2e-7, Q5_K 2.2e-7; printed).
#[test]
fn dot_products_match_ggml_for_every_variant() {
    for name in TYPES {
        let f = load(name);
        let w = matrix(name, &f);
        for isa in runnable() {
            f.check_dots(&format!("{name} {isa}"), &matmul_with(isa, &w, &f.x, f.n_act), 1e-6);
        }
    }
}
