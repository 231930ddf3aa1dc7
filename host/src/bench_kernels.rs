//! `reka-host bench-kernels`: every quantized matmul kernel, in every variant
//! this CPU runs (scalar reference, AVX2, AVX-VNNI, AVX-512, AVX-512 VNNI),
//! side by side in one run: milliseconds per call and multiply-adds per
//! second for 1, 4 and 16 activation rows (a decode step, a small and a full
//! batch) on the shape of SmolLM2's `ffn_down` (576 × 1536), each timed on
//! the pool as a decode step runs it. Then the host's
//! work per stream and token on a step's logits: the best k and the
//! log-sum-exp over SmolLM2's vocabulary.

use anyhow::Result;
use reka_kernels::awake;
use reka_kernels::cpu::{self, Isa};
use reka_kernels::kquant::{self, KMatrix, KType};
use reka_kernels::kquant_tiles::{self, KTiled};
use reka_kernels::quant::{QMatrix, BLOCK};
use reka_kernels::quant_tiles::{self, Tiled};
use std::time::Instant;

const ROWS: usize = 576;
const COLS: usize = 1536;

/// Deterministic bytes, with every 16-bit float field a small finite value
/// when `f16_every` is set (the first two bytes of every block of that size).
fn bytes(n: usize, seed: u64, f16_every: Option<usize>) -> Vec<u8> {
    let mut s = seed | 1;
    let mut v: Vec<u8> = (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect();
    if let Some(every) = f16_every {
        for blk in v.chunks_mut(every) {
            blk[1] = 0x2c;
        }
    }
    v
}

/// Median seconds of `f` over enough runs to take ~0.3 s, timed inside
/// [`awake::run`] as the decoder's steps run their matmuls: on a pool
/// worker, with the other workers polling. (Called from outside the pool, a
/// one-row matmul also paid for waking a sleeping worker: about three times
/// its own time here.)
fn time(f: impl FnMut() + Send) -> f64 {
    awake::run(|| median_secs(f))
}

fn median_secs(mut f: impl FnMut()) -> f64 {
    f();
    let t0 = Instant::now();
    f();
    let once = t0.elapsed().as_secs_f64().max(1e-6);
    let n = ((0.3 / once) as usize).clamp(3, 2000);
    let mut ts: Vec<f64> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    ts.sort_by(f64::total_cmp);
    ts[n / 2]
}

fn row(name: &str, isa: Isa, t: usize, secs: f64) {
    let gmacs = (ROWS * COLS * t) as f64 / secs / 1e9;
    println!("| {name} | {isa} | {t} | {:.3} | {gmacs:.2} |", secs * 1e3);
}

pub fn run() -> Result<()> {
    println!(
        "CPU extensions: {}; selected level {} (REKA_CPU_ISA caps it); block tiles run {}, K-quant tiles {}, K-quant rows {}",
        cpu::extensions().join(" "),
        cpu::selected(),
        quant_tiles::level(),
        kquant_tiles::level(),
        kquant::level()
    );
    println!("shape {ROWS} × {COLS}, {} threads\n", rayon::current_num_threads());
    println!("| format | variant | rows of x | ms per matmul | G multiply-adds/s |");
    println!("|---|---|---:|---:|---:|");
    let batches = [1usize, 4, 16];
    let x: Vec<f32> = bytes(16 * COLS, 7, None).iter().map(|b| *b as f32 / 128.0 - 1.0).collect();
    for qt in quant_tiles::TYPES {
        let data = bytes(ROWS * COLS / BLOCK * qt.block_bytes(), 3, Some(qt.block_bytes()));
        let m = QMatrix::new(qt, ROWS, COLS, data)?;
        let tiled = Tiled::from_matrix(&m);
        for isa in cpu::runnable() {
            for &t in &batches {
                let secs = time(|| {
                    std::hint::black_box(quant_tiles::matmul_with(isa, &tiled, &x, t));
                });
                row(&format!("{qt:?}"), isa, t, secs);
            }
        }
    }
    for kt in KType::ALL {
        let n = ROWS * COLS / kt.block_size() * kt.block_bytes();
        let m = KMatrix::new(kt, ROWS, COLS, bytes(n, 5, None))?;
        for isa in cpu::runnable().into_iter().filter(|i| *i <= kquant::level()) {
            for &t in &batches {
                let secs = time(|| {
                    std::hint::black_box(kquant::matmul_with(isa, &m, &x, t));
                });
                row(&format!("{kt:?} rows"), isa, t, secs);
            }
        }
        // Q4_K and Q6_K, as the decoder holds them.
        let Some(tiled) = KTiled::from_matrix(&m) else { continue };
        for isa in cpu::runnable().into_iter().filter(|i| *i <= kquant_tiles::level()) {
            for &t in &batches {
                let secs = time(|| {
                    std::hint::black_box(kquant_tiles::matmul_with(isa, &tiled, &x, t));
                });
                row(&format!("{kt:?} tiles"), isa, t, secs);
            }
        }
    }
    per_token();
    Ok(())
}

/// What `compute` does with each stream's logits before the guest sees them.
fn per_token() {
    const VOCAB: usize = 49_152;
    let logits: Vec<f32> = bytes(VOCAB * 2, 11, None).chunks(2).map(|b| f32::from(u16::from_le_bytes([b[0], b[1]])) / 3276.8 - 10.0).collect();
    println!("\nper stream and token, {VOCAB} logits\n");
    println!("| work | µs per call |");
    println!("|---|---:|");
    for k in [1, 5, 20] {
        let secs = time(|| {
            std::hint::black_box(reka_protocol::top_k(std::hint::black_box(&logits), k));
        });
        println!("| top-k, k = {k} | {:.1} |", secs * 1e6);
    }
    let secs = time(|| {
        std::hint::black_box(reka_kernels::logsumexp_fast(std::hint::black_box(&logits)));
    });
    println!("| log-sum-exp | {:.1} |", secs * 1e6);
}
