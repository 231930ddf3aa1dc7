//! `reka-host bench-tower`: what Reka Edge's vision tower costs on this CPU,
//! as one table: a tile, a five-tile image and a six-frame video through the
//! ConvNeXt V2 tower, pooling and projector (no HTTP, no decoder), for towers
//! of any shape: a checkpoint's or a preset's (random weights, so a full-size
//! tower needs no download).

use crate::model::edge_vision::EdgeVision;
use crate::model::yasa2;
use crate::presets;
use anyhow::{Context, Result};
use std::time::Instant;

/// The tower a `config.json` value (or preset) describes, with random weights.
fn tower(config: &serde_json::Value) -> Result<EdgeVision> {
    let vcfg = yasa2::vision_config(config)?;
    let hidden = presets::hf_config(config)?.hidden_size;
    EdgeVision::random(&vcfg, hidden, 7)
}

/// Times `towers` (name, preset or config path) over `repeats` runs each
/// (the median is printed) and prints the table.
pub fn run(towers: &[String], repeats: usize) -> Result<()> {
    println!("| tower | parameters (tower + projector) | input | median ms | ms per tile |");
    println!("|---|---:|---|---:|---:|");
    for name in towers {
        let config = presets::resolve(name).with_context(|| format!("tower {name}"))?;
        let t = tower(&config)?;
        let params: u64 = presets::tensors(&config)?
            .iter()
            .filter(|s| !s.name.starts_with("model.language_model") && s.name != "lm_head.weight")
            .map(presets::TensorSpec::numel)
            .sum();
        let s = t.image_size;
        for (what, n) in [("1 tile", 1usize), ("image, 5 tiles", 5), ("video, 6 frames", 6)] {
            let px: Vec<f32> = (0..n * 3 * s * s).map(|i| ((i % 251) as f32 / 125.0) - 1.0).collect();
            let mut ms = Vec::with_capacity(repeats);
            for _ in 0..repeats.max(1) {
                let t0 = Instant::now();
                t.embed(&px, n)?;
                ms.push(t0.elapsed().as_secs_f64() * 1e3);
            }
            ms.sort_by(f64::total_cmp);
            let med = ms[ms.len() / 2];
            println!("| {name} | {:.1} M | {what} ({s}×{s}) | {med:.1} | {:.1} |", params as f64 / 1e6, med / n as f64);
        }
    }
    Ok(())
}
