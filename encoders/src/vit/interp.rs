//! Bicubic resampling of the position-embedding grid, matching what the
//! DINOv2 export does: ONNX `Resize` with `mode = cubic`, `cubic_coeff_a = -0.75`,
//! `coordinate_transformation_mode = half_pixel`, explicit output sizes,
//! `exclude_outside = 0` and no antialiasing (the same as PyTorch's
//! `interpolate(mode="bicubic", align_corners=False, antialias=False)` with
//! `size=`). Border taps are clamped to the edge. The 2-D resize is separable,
//! so it is two matmuls with `[dst, src]` weight matrices.

use candle_core::{Device, Result, Tensor};

/// Keys cubic convolution kernel with `a = -0.75`.
fn cubic(x: f64) -> f64 {
    const A: f64 = -0.75;
    let x = x.abs();
    if x <= 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A
    } else {
        0.0
    }
}

/// Row-major `[dst, src]` interpolation weights for resizing a length-`src`
/// axis to `dst` (half-pixel centres, edge-clamped taps).
pub(super) fn cubic_weights(src: usize, dst: usize) -> Vec<f64> {
    let mut m = vec![0.0; dst * src];
    let scale = src as f64 / dst as f64;
    let last = src as i64 - 1;
    for o in 0..dst {
        let x = (o as f64 + 0.5) * scale - 0.5;
        let x0 = x.floor();
        let t = x - x0;
        for k in -1i64..=2 {
            let idx = (x0 as i64 + k).clamp(0, last) as usize;
            m[o * src + idx] += cubic(t - k as f64);
        }
    }
    m
}

/// Resizes `grid: [g, g, d]` to `[gh, gw, d]`.
pub(super) fn bicubic_grid(grid: &Tensor, gh: usize, gw: usize) -> Result<Tensor> {
    let (g, g2, d) = grid.dims3()?;
    let to_f32 = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<f32>>();
    let wh = Tensor::from_vec(to_f32(cubic_weights(g, gh)), (gh, g), &Device::Cpu)?.to_device(grid.device())?;
    let ww = Tensor::from_vec(to_f32(cubic_weights(g2, gw)), (gw, g2), &Device::Cpu)?.to_device(grid.device())?;
    // Rows: [gh, g] @ [g, g2*d] -> [gh, g2, d].
    let rows = wh.matmul(&grid.reshape((g, g2 * d))?)?.reshape((gh, g2, d))?;
    // Columns: [gh, gw, g2] @ [gh, g2, d] -> [gh, gw, d].
    ww.unsqueeze(0)?.broadcast_as((gh, gw, g2))?.contiguous()?.matmul(&rows)
}
