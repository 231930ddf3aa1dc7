//! Unit tests of [`crate::kquant`]: every runnable variant against the scalar
//! reference (bit for bit), batching, `matmul_many`, shapes, and the quantized
//! product against the dequantized one and against candle's own K-quant code
//! (an independent implementation of the formats). The comparison with
//! llama.cpp's bytes is `tests/kquant_ggml.rs`.

use crate::cpu::{runnable, Isa};
use crate::kquant::*;
use crate::noise;

/// Weights of realistic shape: `noise` quantized by candle (its quantizers
/// follow ggml's), as our matrix and as candle's `QMatMul`.
fn candle_matrix(kt: KType, w: &[f32], rows: usize, cols: usize) -> (KMatrix, candle_core::quantized::QMatMul) {
    use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
    let dtype = match kt {
        KType::Q2K => GgmlDType::Q2K,
        KType::Q3K => GgmlDType::Q3K,
        KType::Q4K => GgmlDType::Q4K,
        KType::Q5K => GgmlDType::Q5K,
        KType::Q6K => GgmlDType::Q6K,
    };
    let t = candle_core::Tensor::from_vec(w.to_vec(), (rows, cols), &candle_core::Device::Cpu).expect("tensor");
    let q = QTensor::quantize(&t, dtype).expect("quantize");
    let ours = KMatrix::new(kt, rows, cols, q.data().expect("bytes").to_vec()).expect("matrix");
    (ours, QMatMul::from_qtensor(q).expect("qmatmul"))
}

fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0f32, |a, x| a.max(x.abs()))
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).fold(0f32, |m, (p, q)| m.max((p - q).abs()))
}

pub(crate) fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Both realistic (candle-quantized) and random-byte weights: the latter
/// reach every scale, min and quant value, including the extremes.
pub(crate) fn weights(kt: KType, rows: usize, cols: usize, seed: u64) -> [KMatrix; 2] {
    let (q, _) = candle_matrix(kt, &noise(seed, rows * cols), rows, cols);
    let nb = rows * cols / kt.block_size();
    let r = KMatrix::new(kt, rows, cols, random_blocks(kt, nb, seed + 1)).expect("matrix");
    [q, r]
}

#[test]
fn every_variant_gives_the_reference_bits() {
    let (rows, cols, t) = (70, 512, 7);
    for kt in KType::ALL {
        for w in weights(kt, rows, cols, 5) {
            // Activations with a wide range, and one row of zeros.
            let mut x: Vec<f32> = noise(6, t * cols).iter().enumerate().map(|(i, v)| v * (1 + i % 13) as f32).collect();
            x[cols..2 * cols].fill(0.0);
            let want = matmul_with(Isa::Scalar, &w, &x, t);
            for isa in runnable() {
                let got = matmul_with(isa, &w, &x, t);
                assert_eq!(bits(&got), bits(&want), "{kt:?} {isa}");
            }
        }
    }
    assert!(level() <= crate::cpu::selected());
    // The self-check passes wherever AVX2 is selected (else `level` fell back).
    if cfg!(target_arch = "x86_64") && crate::cpu::selected() >= Isa::Avx2 {
        assert_eq!(level(), Isa::Avx2);
    }
}

#[test]
fn batched_rows_give_the_same_bits_as_single_rows() {
    let (rows, cols, t) = (130, 256, 7);
    let x = noise(8, t * cols);
    for kt in KType::ALL {
        let [w, _] = weights(kt, rows, cols, 9);
        for isa in runnable() {
            let all = matmul_with(isa, &w, &x, t);
            for j in 0..t {
                let one = matmul_with(isa, &w, &x[j * cols..(j + 1) * cols], 1);
                assert_eq!(bits(&all[j * rows..(j + 1) * rows]), bits(&one), "{kt:?} {isa} row {j}");
            }
        }
    }
}

#[test]
fn matmul_many_equals_one_matmul_per_weight() {
    let (cols, t) = (512, 5);
    let x = noise(10, t * cols);
    let ws: Vec<KMatrix> = KType::ALL
        .into_iter()
        .enumerate()
        .map(|(i, kt)| {
            let [w, _] = weights(kt, 40 + 30 * i, cols, 20 + i as u64);
            w
        })
        .collect();
    let refs: Vec<&KMatrix> = ws.iter().collect();
    let many = matmul_many(&refs, &x, t);
    assert_eq!(many.len(), ws.len());
    for (w, y) in ws.iter().zip(&many) {
        assert_eq!(bits(y), bits(&matmul(w, &x, t)), "{:?}", w.ktype);
    }
    assert!(matmul_many(&[], &x, t).is_empty());
}

#[test]
fn rejects_wrong_sizes() {
    assert!(KMatrix::new(KType::Q4K, 2, 128, vec![0; 144]).is_err());
    assert!(KMatrix::new(KType::Q4K, 2, 256, vec![0; 143 * 2]).is_err());
    assert!(KMatrix::new(KType::Q2K, 2, 48, vec![]).is_err());
    assert!(KMatrix::new(KType::Q6K, usize::MAX, 256, vec![]).is_err());
    assert!(KMatrix::new(KType::Q6K, 3, 512, vec![0; 3 * 2 * 210]).is_ok());
    for kt in KType::ALL {
        assert_eq!(KType::from_ggml_type_id(kt.ggml_type_id()), Some(kt));
    }
    // The 32-value block formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) are `crate::quant`'s.
    for id in [2, 3, 6, 7, 8] {
        assert_eq!(KType::from_ggml_type_id(id), None);
    }
}

#[test]
fn quantized_matmul_matches_dequantized_reference_and_candle() {
    use candle_core::Module;
    let (rows, cols, t) = (96, 1024, 3);
    let w = noise(30, rows * cols);
    let x = noise(31, t * cols);
    let xt = candle_core::Tensor::from_vec(x.clone(), (t, cols), &candle_core::Device::Cpu).expect("x");
    for kt in KType::ALL {
        let (m, cm) = candle_matrix(kt, &w, rows, cols);
        let fast = matmul(&m, &x, t);
        let slow = matmul_slow(&m, &x, t);
        let scale = max_abs(&slow);
        // Only the 8-bit activations differ: under 1% of the output range.
        let err = max_diff(&fast, &slow);
        assert!(err < 0.01 * scale, "{kt:?}: max |Δ| {err} vs scale {scale}");
        let theirs: Vec<f32> = cm.forward(&xt).expect("candle").flatten_all().expect("flat").to_vec1().expect("vec");
        let err_c = max_diff(&fast, &theirs);
        // Same quantized activations, another summation order.
        let bound = 1e-5;
        println!("{kt:?}: vs slow {:.2e}, vs candle {:.2e} (of scale {scale})", err / scale, err_c / scale);
        assert!(err_c < bound * scale, "{kt:?} vs candle: max |Δ| {err_c} vs scale {scale}");
        // candle's own dequantization of the same bytes.
        let mut ours = vec![0f32; cols];
        let deq: Vec<f32> = cm_dequant(&m);
        let mut worst = 0f32;
        for r in 0..rows {
            m.dequantize_row(r, &mut ours);
            let theirs = &deq[r * cols..(r + 1) * cols];
            worst = worst.max(max_diff(&ours, theirs) / max_abs(theirs));
        }
        // candle (0.11) follows ggml's float order too: the same bits.
        // llama.cpp's own bits are checked in tests/kquant_ggml.rs.
        assert_eq!(worst, 0.0, "{kt:?}: dequant max |Δ| / max |x| vs candle");
    }
}

fn cm_dequant(m: &KMatrix) -> Vec<f32> {
    use candle_core::quantized::{GgmlDType, QStorage, QTensor};
    let dtype = match m.ktype {
        KType::Q2K => GgmlDType::Q2K,
        KType::Q3K => GgmlDType::Q3K,
        KType::Q4K => GgmlDType::Q4K,
        KType::Q5K => GgmlDType::Q5K,
        KType::Q6K => GgmlDType::Q6K,
    };
    let storage = QStorage::from_data(std::borrow::Cow::Borrowed(m.bytes()), &candle_core::Device::Cpu, dtype).expect("storage");
    let q = QTensor::new(storage, (m.rows, m.cols)).expect("qtensor");
    q.dequantize(&candle_core::Device::Cpu).expect("deq").flatten_all().expect("flat").to_vec1().expect("vec")
}

/// A rough speed figure: `cargo test --release -p reka-kernels kquant_speed -- --ignored --nocapture`.
#[test]
#[ignore]
fn kquant_speed() {
    let (rows, cols) = (1536, 1536);
    for kt in [KType::Q4K, KType::Q6K, KType::Q2K, KType::Q3K, KType::Q5K] {
        let [w, _] = weights(kt, rows, cols, 40);
        for t in [1, 16] {
            let x = noise(41, t * cols);
            for isa in runnable().into_iter().filter(|&i| i <= Isa::Avx2) {
                let _ = matmul_with(isa, &w, &x, t);
                let n = if isa == Isa::Scalar { 3 } else { 20 };
                let start = std::time::Instant::now();
                for _ in 0..n {
                    std::hint::black_box(matmul_with(isa, &w, &x, t));
                }
                let ms = start.elapsed().as_secs_f64() * 1e3 / n as f64;
                println!("{kt:?} {rows}x{cols} t={t:2} {isa:7}: {ms:8.3} ms");
            }
        }
    }
}
