//! Every CUDA kernel against its CPU reference. NVRTC compilation runs wherever
//! libnvrtc loads (no GPU needed); the kernel tests run when a CUDA device is
//! present, or the CPU emulator of the driver (kernels/emu, which CI uses via
//! scripts/gpu-emu-check.sh), and otherwise pass after printing why they were
//! skipped.
//!
//! Tolerances: weights and the KV cache are bf16 or f16 on both sides (the
//! references get the same rounded values), accumulation is f32 on the GPU and
//! f32/f64 in the references, so results agree to f32 rounding of long sums:
//! GEMV within `1e-4 · (1 + Σ|w·x|)`, the rest within 1e-4 absolute (1e-5
//! relative for RMSNorm, RoPE), 16-bit-stored keys within one ulp of their type.
//! The kernels of the GGUF path follow the CPU build operation for operation
//! and must give its bits: llama.cpp's f16 attention (queries and softmax
//! weights rounded to f16) against the CPU build's `attention`; RMSNorm in
//! order against candle's; the block GEMV against `quant::matmul` on a CPU
//! with AVX2/FMA/F16C (whose kernel it mirrors; elsewhere within
//! `1e-5 · (1 + Σ|w·x|)`); activation quants, scales and sums exactly.

use super::*;
use crate::attention::{attention_slow, rope_rows, Heads};
use crate::half_matmul::{matmul_slow, HalfMatrix, HalfType};
use crate::RopeStyle;
use candle_core::{Device, Tensor};
use cudarc::driver::{CudaSlice, DevicePtr};
use half::{bf16, f16};

fn gpu() -> Option<Gpu> {
    match Gpu::open(0) {
        Ok(g) => Some(g),
        Err(GpuError::Unavailable(why)) => {
            eprintln!("skipped: no CUDA device ({why})");
            None
        }
        Err(e) => panic!("opening the GPU: {e}"),
    }
}

fn noise(n: usize, seed: &mut u64) -> Vec<f32> {
    (0..n)
        .map(|_| {
            *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn bits(x: &[f32]) -> Vec<u16> {
    x.iter().map(|&v| bf16::from_f32(v).to_bits()).collect()
}

fn round_bf16(x: &[f32]) -> Vec<f32> {
    x.iter().map(|&v| bf16::from_f32(v).to_f32()).collect()
}

fn f16_bits(x: &[f32]) -> Vec<u16> {
    x.iter().map(|&v| f16::from_f32(v).to_bits()).collect()
}

fn round_to(kv: KvType, x: &[f32]) -> Vec<f32> {
    match kv {
        KvType::Bf16 => round_bf16(x),
        KvType::F16 => x.iter().map(|&v| f16::from_f32(v).to_f32()).collect(),
    }
}

fn widen(kv: KvType, x: &[u16]) -> Vec<f32> {
    match kv {
        KvType::Bf16 => x.iter().map(|&b| bf16::from_bits(b).to_f32()).collect(),
        KvType::F16 => x.iter().map(|&b| f16::from_bits(b).to_f32()).collect(),
    }
}

fn up<T: cudarc::driver::DeviceRepr>(g: &Gpu, x: &[T]) -> CudaSlice<T> {
    g.stream().clone_htod(x).expect("upload")
}

fn down<T: cudarc::driver::DeviceRepr>(g: &Gpu, x: &CudaSlice<T>) -> Vec<T> {
    g.stream().clone_dtoh(x).expect("download")
}

#[test]
fn all_kernels_compile_to_ptx() {
    if !nvrtc_present() {
        eprintln!("skipped: libnvrtc not found (scripts/build-gpu.sh fetches it; set LD_LIBRARY_PATH)");
        return;
    }
    for arch in ["compute_80", "compute_90"] {
        let ptx = match compile_ptx(arch) {
            Ok(p) => p.to_src(),
            Err(e) => panic!("{arch}: {e}"),
        };
        for k in KERNELS {
            assert!(ptx.contains(&format!(".entry {k}(")), "{arch}: no entry {k} in the PTX");
        }
    }
}

#[test]
fn rms_norm_matches_slow() {
    let Some(g) = gpu() else { return };
    let (rows, n, eps) = (5, 4096, 1e-5f32);
    let mut s = 1;
    let (x, w) = (noise(rows * n, &mut s), noise(n, &mut s));
    let (xt, wt) = (Tensor::from_vec(x.clone(), (rows, n), &Device::Cpu).expect("x"), Tensor::from_vec(w.clone(), n, &Device::Cpu).expect("w"));
    let flat = |t: candle_core::Result<Tensor>| t.and_then(|t| t.flatten_all()?.to_vec1::<f32>()).expect("CPU rms_norm");
    let want = flat(crate::rms_norm_slow(&xt, &wt, eps));
    let (xd, wd) = (up(&g, &x), up(&g, &w));
    let mut y = g.stream().alloc_zeros::<f32>(rows * n).expect("alloc");
    g.rms_norm(&xd.as_view(), &wd, &mut y.as_view_mut(), None, rows, n, eps, false).expect("launch");
    for (a, b) in down(&g, &y).iter().zip(&want) {
        assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
    }
    // Gather: rows 4 and 1 only.
    let idx = up(&g, &[4i32, 1]);
    let mut y2 = g.stream().alloc_zeros::<f32>(2 * n).expect("alloc");
    g.rms_norm(&xd.as_view(), &wd, &mut y2.as_view_mut(), Some(&idx), 2, n, eps, false).expect("launch");
    let got = down(&g, &y2);
    for (i, r) in [4usize, 1].into_iter().enumerate() {
        for (a, b) in got[i * n..(i + 1) * n].iter().zip(&want[r * n..(r + 1) * n]) {
            assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "gather row {r}: {a} vs {b}");
        }
    }
    // In order: candle's CPU kernel, bit for bit.
    let cpu = flat(crate::rms_norm(&xt, &wt, eps));
    g.rms_norm(&xd.as_view(), &wd, &mut y.as_view_mut(), None, rows, n, eps, true).expect("launch");
    assert!(down(&g, &y).iter().zip(&cpu).all(|(a, b)| a.to_bits() == b.to_bits()), "in-order RMSNorm differs from candle's bits");
}

#[test]
fn gemv_matches_matmul_slow_at_every_batch_size() {
    let Some(g) = gpu() else { return };
    let mut s = 2;
    let cases = [(70, 64, &[1usize, 3][..]), (1024, 4096, &[1, 2, 32, 37][..]), (300, 1000, &[5, 16][..])];
    for ((rows, cols, batches), kind) in cases.into_iter().flat_map(|c| [(c, WeightBits::Bf16), (c, WeightBits::F16)]) {
        let wv = noise(rows * cols, &mut s);
        let (half, wb, wr) = match kind {
            WeightBits::Bf16 => (HalfType::Bf16, bits(&wv), round_bf16(&wv)),
            WeightBits::F16 => (HalfType::F16, f16_bits(&wv), round_to(KvType::F16, &wv)),
        };
        let m = HalfMatrix::new(half, rows, cols, wb.clone()).expect("matrix");
        let wd = up(&g, &wb);
        for &t in batches {
            let x = noise(t * cols, &mut s);
            let want = matmul_slow(&m, &x, t);
            let xd = up(&g, &x);
            let base = noise(t * rows, &mut s);
            for accumulate in [false, true] {
                let mut y = up(&g, &base);
                g.gemv(kind, &wd.as_view(), rows, cols, &xd.as_view(), t, &mut y.as_view_mut(), accumulate).expect("launch");
                let got = down(&g, &y);
                for j in 0..t {
                    for r in 0..rows {
                        let mag: f32 = (0..cols).map(|c| (wr[r * cols + c] * x[j * cols + c]).abs()).sum();
                        let b = want[j * rows + r] + if accumulate { base[j * rows + r] } else { 0.0 };
                        let a = got[j * rows + r];
                        assert!((a - b).abs() <= 1e-4 * (1.0 + mag), "{kind:?} {rows}x{cols} t={t} acc={accumulate} [{j},{r}]: {a} vs {b}");
                    }
                }
            }
        }
    }
}

#[test]
fn swiglu_add_and_embedding_match_references() {
    let Some(g) = gpu() else { return };
    let (rows, ff) = (3, 1000);
    let mut s = 3;
    let gu = noise(rows * 2 * ff, &mut s);
    let mut out = g.stream().alloc_zeros::<f32>(rows * ff).expect("alloc");
    g.swiglu(&up(&g, &gu).as_view(), &mut out.as_view_mut(), ff, rows).expect("launch");
    let got = down(&g, &out);
    for r in 0..rows {
        let gate = Tensor::new(&gu[r * 2 * ff..r * 2 * ff + ff], &Device::Cpu).expect("t");
        let upv = Tensor::new(&gu[r * 2 * ff + ff..(r + 1) * 2 * ff], &Device::Cpu).expect("t");
        let want = crate::swiglu_slow(&gate, &upv).and_then(|t| t.to_vec1::<f32>()).expect("ref");
        for (a, b) in got[r * ff..(r + 1) * ff].iter().zip(&want) {
            assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "swiglu {a} vs {b}");
        }
    }
    let (x, y) = (noise(777, &mut s), noise(777, &mut s));
    let mut xd = up(&g, &x);
    g.add(&mut xd.as_view_mut(), &up(&g, &y).as_view(), 777).expect("launch");
    for ((a, x), y) in down(&g, &xd).iter().zip(&x).zip(&y) {
        assert_eq!(*a, x + y);
    }
    let (vocab, hidden) = (50, 72);
    let values = noise(vocab * hidden, &mut s);
    for (kind, kv) in [(WeightBits::Bf16, KvType::Bf16), (WeightBits::F16, KvType::F16)] {
        let table = if kind == WeightBits::Bf16 { bits(&values) } else { f16_bits(&values) };
        let wide = widen(kv, &table);
        let ids = [3i32, 49, 0, -1, 50];
        let mut e = g.stream().alloc_zeros::<f32>(ids.len() * hidden).expect("alloc");
        g.embedding(kind, &up(&g, &table), &up(&g, &ids), &mut e.as_view_mut(), hidden, ids.len()).expect("launch");
        let got = down(&g, &e);
        for (r, &id) in ids.iter().enumerate() {
            for c in 0..hidden {
                let want = if (0..vocab as i32).contains(&id) { wide[id as usize * hidden + c] } else { 0.0 };
                assert_eq!(got[r * hidden + c], want, "{kind:?} embedding row {r}");
            }
        }
    }
}

/// RoPE + KV append + attention for two sessions: a 6-token prompt and a
/// 10-token prompt in one step, then one decode token for the first; with a
/// bf16 cache, and with llama.cpp's f16 cache and rounding.
#[test]
fn rope_kv_append_and_attention_match_the_references() {
    let Some(g) = gpu() else { return };
    let mut s = 4;
    let shapes = [
        (AttnShape { heads: 32, kv_heads: 8, head_dim: 128 }, RopeStyle::Halves),
        (AttnShape { heads: 9, kv_heads: 3, head_dim: 64 }, RopeStyle::Interleaved),
        (AttnShape { heads: 4, kv_heads: 1, head_dim: 16 }, RopeStyle::Halves),
        (AttnShape { heads: 8, kv_heads: 8, head_dim: 256 }, RopeStyle::Interleaved),
    ];
    for ((shape, style), kv) in shapes.into_iter().flat_map(|c| [(c, KvType::Bf16), (c, KvType::F16)]) {
        let round = kv == KvType::F16;
        let (hd, qw, kvw, w) = (shape.head_dim, shape.q_width(), shape.kv_width(), shape.qkv_width());
        let (layers, layer, cap) = (2usize, 1usize, 16usize);
        let ctx = 32;
        let angles: Vec<f32> = (0..ctx * hd / 2).map(|i| (i / (hd / 2)) as f32 * 0.7f32.powi((i % (hd / 2)) as i32)).collect();
        let cos: Vec<f32> = angles.iter().map(|a| a.cos()).collect();
        let sin: Vec<f32> = angles.iter().map(|a| a.sin()).collect();
        let (cos_d, sin_d) = (up(&g, &cos), up(&g, &sin));
        let caches: Vec<CudaSlice<u16>> = (0..2).map(|_| g.stream().alloc_zeros::<u16>(layers * 2 * cap * kvw).expect("alloc")).collect();
        let ptrs: Vec<u64> = caches.iter().map(|c| c.device_ptr(g.stream()).0).collect();
        // Reference state per session: rotated, bf16-rounded keys and values.
        let mut ref_k: [Vec<f32>; 2] = [vec![], vec![]];
        let mut ref_v: [Vec<f32>; 2] = [vec![], vec![]];
        let heads = Heads { heads: shape.heads, kv_heads: shape.kv_heads, head_dim: hd, scale: 1.0 / (hd as f32).sqrt(), round_probs: round };
        for step in [&[(0usize, 0usize, 6usize), (1, 0, 10)][..], &[(0, 6, 1)][..]] {
            let n: usize = step.iter().map(|x| x.2).sum();
            let qkv = noise(n * w, &mut s);
            let (mut meta, mut rp) = (vec![], vec![]);
            for &(sess, start, t) in step {
                for p in start..start + t {
                    meta.extend([p as i32, cap as i32]);
                    rp.push(ptrs[sess]);
                }
            }
            let (meta_d, rp_d) = (up(&g, &meta), up(&g, &rp));
            let mut qkv_d = up(&g, &qkv);
            g.rope_kv_append(kv, &mut qkv_d.as_view_mut(), &cos_d, &sin_d, &meta_d, &rp_d, n, layer, shape, style).expect("rope");
            let mut out = g.stream().alloc_zeros::<f32>(n * qw).expect("alloc");
            let mut split = SplitScratch::for_rows(&g, shape, n).expect("alloc");
            g.attention(kv, round, &qkv_d.as_view(), &mut out.as_view_mut(), &mut split, &meta_d, &rp_d, n, layer, shape, heads.scale, g.attention_splits_for(n, shape, round)).expect("attn");
            let (got_qkv, got) = (down(&g, &qkv_d), down(&g, &out));
            let mut row0 = 0;
            for &(sess, start, t) in step {
                let pos: Vec<usize> = (start..start + t).collect();
                let mut q: Vec<f32> = (0..t).flat_map(|i| qkv[(row0 + i) * w..][..qw].to_vec()).collect();
                let mut k: Vec<f32> = (0..t).flat_map(|i| qkv[(row0 + i) * w + qw..][..kvw].to_vec()).collect();
                let v: Vec<f32> = (0..t).flat_map(|i| qkv[(row0 + i) * w + qw + kvw..][..kvw].to_vec()).collect();
                rope_rows(&mut q, hd, hd, &pos, &cos, &sin, style);
                rope_rows(&mut k, hd, hd, &pos, &cos, &sin, style);
                for i in 0..t {
                    for (a, b) in got_qkv[(row0 + i) * w..][..qw].iter().zip(&q[i * qw..][..qw]) {
                        assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{shape:?} q rope: {a} vs {b}");
                    }
                }
                // The cache holds the rotated keys rounded to its type (within
                // one ulp: the rotation's last bit may differ) and the values
                // rounded exactly; the reference attends over the cached keys.
                let all = down(&g, &caches[sess]);
                let base = layer * 2 * cap * kvw;
                let cached = |off: usize| widen(kv, &all[off..off + (start + t) * kvw]);
                let (ck, cv) = (cached(base), cached(base + cap * kvw));
                let ulp = if round { 1.0 / 1024.0 } else { 1.0 / 128.0 };
                for (a, b) in ck[start * kvw..].iter().zip(&round_to(kv, &k)) {
                    assert!((a - b).abs() <= b.abs() * ulp + 1e-6, "{shape:?} {kv:?} cached key {a} vs {b}");
                }
                assert_eq!(&ck[..start * kvw], &ref_k[sess][..], "{shape:?} {kv:?} earlier keys kept");
                ref_v[sess].extend(round_to(kv, &v));
                assert_eq!(cv, ref_v[sess], "{shape:?} {kv:?} cached values");
                ref_k[sess] = ck;
                let (want, tol) = if round {
                    // The CPU build's llama.cpp-style kernel, on f16-rounded queries: the same bits.
                    (crate::attention::attention(heads, &round_to(kv, &q), t, &ref_k[sess], &ref_v[sess], start), 0.0)
                } else {
                    (attention_slow(heads, &q, t, &ref_k[sess], &ref_v[sess], start), 1e-4)
                };
                for (i, (a, b)) in got[row0 * qw..(row0 + t) * qw].iter().zip(&want).enumerate() {
                    assert!((a - b).abs() <= tol, "{shape:?} {style:?} {kv:?} session {sess} value {i}: {a} vs {b}");
                }
                row0 += t;
            }
        }
    }
}

/// Flash-decoding over a long cache: rows at positions on both sides of the
/// 64-position split minimum, each split count against the reference (within
/// 1e-4 like the unsplit kernel); the f16-rounding kernel refuses splits.
#[test]
fn split_attention_matches_the_reference_over_long_caches() {
    let Some(g) = gpu() else { return };
    let mut s = 11;
    let (layer, cap, len) = (0usize, 320usize, 300usize);
    let rows_at = [0usize, 63, 64, 150, 299];
    for shape in [AttnShape { heads: 32, kv_heads: 8, head_dim: 128 }, AttnShape { heads: 9, kv_heads: 3, head_dim: 64 }] {
        let (qw, kvw, w) = (shape.q_width(), shape.kv_width(), shape.qkv_width());
        let heads = Heads { heads: shape.heads, kv_heads: shape.kv_heads, head_dim: shape.head_dim, scale: 1.0 / (shape.head_dim as f32).sqrt(), round_probs: false };
        // One session's cache [K, V][cap][kvw]: `len` random bf16 positions.
        let mut plane = vec![0u16; 2 * cap * kvw];
        plane[..len * kvw].copy_from_slice(&bits(&noise(len * kvw, &mut s)));
        plane[cap * kvw..(cap + len) * kvw].copy_from_slice(&bits(&noise(len * kvw, &mut s).iter().map(|x| 3.0 * x).collect::<Vec<_>>()));
        let (k, v) = (widen(KvType::Bf16, &plane[..len * kvw]), widen(KvType::Bf16, &plane[cap * kvw..(cap + len) * kvw]));
        let cache = up(&g, &plane);
        let n = rows_at.len();
        let qkv: Vec<f32> = noise(n * w, &mut s).iter().map(|x| 4.0 * x).collect();
        let meta: Vec<i32> = rows_at.iter().flat_map(|&p| [p as i32, cap as i32]).collect();
        let ptrs = vec![cache.device_ptr(g.stream()).0; n];
        let (qkv_d, meta_d, ptrs_d) = (up(&g, &qkv), up(&g, &meta), up(&g, &ptrs));
        for splits in [1, 2, 4, 7, MAX_SPLITS] {
            let mut split = SplitScratch::new(&g, shape, n, splits).expect("alloc");
            // Twice on the same scratch, into fresh outputs: the last block of
            // each (row, kv head) must set its count back to 0 for the next launch.
            for launch in 0..2 {
                let mut out = g.stream().alloc_zeros::<f32>(n * qw).expect("alloc");
                g.attention(KvType::Bf16, false, &qkv_d.as_view(), &mut out.as_view_mut(), &mut split, &meta_d, &ptrs_d, n, layer, shape, heads.scale, splits).expect("attn");
                let got = down(&g, &out);
                for (i, &p) in rows_at.iter().enumerate() {
                    let want = attention_slow(heads, &qkv[i * w..][..qw], 1, &k[..(p + 1) * kvw], &v[..(p + 1) * kvw], p);
                    for (d, (a, b)) in got[i * qw..][..qw].iter().zip(&want).enumerate() {
                        assert!((a - b).abs() <= 1e-4, "{shape:?} {splits} splits, launch {launch}, position {p}, value {d}: {a} vs {b}");
                    }
                }
            }
        }
        // Scratch too small for the splits, and splits with f16 rounding, are refused.
        let mut out = g.stream().alloc_zeros::<f32>(n * qw).expect("alloc");
        let mut short = SplitScratch::new(&g, shape, n, 2).expect("alloc");
        assert!(g.attention(KvType::Bf16, false, &qkv_d.as_view(), &mut out.as_view_mut(), &mut short, &meta_d, &ptrs_d, n, layer, shape, heads.scale, 4).is_err());
        assert!(g.attention(KvType::F16, true, &qkv_d.as_view(), &mut out.as_view_mut(), &mut short, &meta_d, &ptrs_d, n, layer, shape, heads.scale, 2).is_err());
    }
}

/// GGUF block weights in the three block types, random but well-formed: each
/// block's scale (and Q4_1 minimum) is a small f16, the quants random bytes.
fn random_blocks(qtype: crate::quant::QType, rows: usize, cols: usize, seed: &mut u64) -> crate::quant::QMatrix {
    let bb = qtype.block_bytes();
    let nblocks = rows * cols / 32;
    let bytes: Vec<u8> = noise(nblocks * bb, seed).iter().map(|v| ((v + 1.0) * 127.9) as u8).collect();
    let mut data = bytes;
    let scales = noise(2 * nblocks, seed);
    for b in 0..nblocks {
        let blk = &mut data[b * bb..(b + 1) * bb];
        blk[..2].copy_from_slice(&f16::from_f32(0.01 + 0.02 * scales[2 * b].abs()).to_le_bytes());
        if qtype == crate::quant::QType::Q4_1 {
            blk[2..4].copy_from_slice(&f16::from_f32(0.1 * scales[2 * b + 1]).to_le_bytes());
        }
    }
    crate::quant::QMatrix::new(qtype, rows, cols, data).expect("blocks")
}

#[test]
fn quantize_q8_matches_the_cpu_exactly() {
    let Some(g) = gpu() else { return };
    let mut s = 5;
    let (rows, cols) = (7, 4096);
    let mut x = noise(rows * cols, &mut s);
    x[..32].fill(0.0); // an all-zero block: scale 0
    x[40] = 0.5 / 127.0 * 3.0; // values at exact halves of a quant step
    let mut acts = Q8Acts::new(g.stream(), rows * cols).expect("alloc");
    g.quantize_q8(&up(&g, &x).as_view(), rows, cols, &mut acts).expect("launch");
    let (qs, d, sums) = acts.to_host(g.stream()).expect("download");
    for r in 0..rows {
        let want = crate::quant::quantize_q8(&x[r * cols..(r + 1) * cols]);
        let nb = cols / 32;
        assert_eq!(&qs[r * cols..(r + 1) * cols], &want.qs[..], "quants of row {r}");
        assert_eq!(&d[r * nb..(r + 1) * nb], &want.d[..], "scales of row {r}");
        assert_eq!(&sums[r * nb..(r + 1) * nb], &want.s[..], "sums of row {r}");
    }
}

#[test]
fn block_gemv_and_embedding_match_the_cpu_kernels() {
    use crate::quant::QType;
    let Some(g) = gpu() else { return };
    let mut s = 6;
    for qtype in [QType::Q4_0, QType::Q4_1, QType::Q8_0] {
        for (rows, cols, batches) in [(70, 64, &[1usize, 3][..]), (1536, 576, &[1, 2, 8, 13][..]), (576, 1536, &[1, 32][..])] {
            let m = random_blocks(qtype, rows, cols, &mut s);
            let wd = up(&g, m.bytes());
            for &t in batches {
                let x = noise(t * cols, &mut s);
                // The CPU reference order, which every CPU variant gives bit for bit.
                let want = crate::quant::matmul(&m, &x, t);
                let mut acts = Q8Acts::new(g.stream(), t * cols).expect("alloc");
                g.quantize_q8(&up(&g, &x).as_view(), t, cols, &mut acts).expect("quantize");
                let base = noise(t * rows, &mut s);
                for accumulate in [false, true] {
                    let mut y = up(&g, &base);
                    g.gemv_q(qtype, &wd.as_view(), rows, cols, &acts, t, &mut y.as_view_mut(), accumulate).expect("launch");
                    let got = down(&g, &y);
                    for j in 0..t {
                        for r in 0..rows {
                            let b = want[j * rows + r] + if accumulate { base[j * rows + r] } else { 0.0 };
                            let a = got[j * rows + r];
                            let ok = a.to_bits() == b.to_bits();
                            assert!(ok, "{qtype:?} {rows}x{cols} t={t} acc={accumulate} [{j},{r}]: {a} vs {b}");
                        }
                    }
                }
            }
        }
        let (vocab, hidden) = (40, 96);
        let table = random_blocks(qtype, vocab, hidden, &mut s);
        let ids = [3i32, 39, 0, -1, 40];
        let mut e = g.stream().alloc_zeros::<f32>(ids.len() * hidden).expect("alloc");
        g.embedding_q(qtype, &up(&g, table.bytes()), &up(&g, &ids), &mut e.as_view_mut(), hidden, ids.len()).expect("launch");
        let got = down(&g, &e);
        let mut row = vec![0f32; hidden];
        for (r, &id) in ids.iter().enumerate() {
            match usize::try_from(id).ok().filter(|&i| i < vocab) {
                Some(i) => table.dequantize_row(i, &mut row),
                None => row.fill(0.0),
            }
            assert_eq!(&got[r * hidden..(r + 1) * hidden], &row[..], "{qtype:?} embedding row {r}");
        }
    }
}

/// A captured launch replays on whatever its buffers hold at launch time.
#[test]
fn a_captured_graph_replays_on_new_inputs() {
    let Some(g) = gpu() else { return };
    let n = 1000;
    let mut s = 7;
    let mut x = up(&g, &vec![0f32; n]);
    let mut y = up(&g, &noise(n, &mut s));
    g.begin_capture().expect("begin");
    let launched = g.add(&mut x.as_view_mut(), &y.as_view(), n);
    let mut graph = g.end_capture().expect("end");
    launched.expect("launch during capture");
    assert_eq!(down(&g, &x), vec![0f32; n], "capturing runs nothing");
    let mut total = vec![0f32; n];
    for _ in 0..3 {
        let v = noise(n, &mut s);
        g.stream().memcpy_htod(&v, &mut y).expect("upload");
        graph.launch().expect("replay");
        for (t, v) in total.iter_mut().zip(&v) {
            *t += v;
        }
        assert_eq!(down(&g, &x), total, "each replay adds the current y");
    }
}
