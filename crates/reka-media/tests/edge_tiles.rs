//! Reka Edge's preprocessing against Reka's own plugin (`vllm_reka`, commit
//! c12e0d1, with transformers 4.57.6 and Pillow 12.1.1): the tile plans (grid,
//! resize, tile count) and the pixels of every tile, for the images of
//! tests/fixtures/reka_edge (one tile, a 2×2 grid, very wide, very tall,
//! 20×300, RGBA over white, 512×512) and a video of three frames. The fixture
//! stores each tile as the 8-bit image the plugin's processor normalises; its
//! script checks that the processor's float tensor is exactly that image
//! normalised in f32.
//!
//! Tolerance: equal bytes. Our resampler is Pillow's algorithm (8-bit fixed
//! point, both passes), so every tile must come out identical; the f32
//! normalisation is then compared within 1e-6 (one 8-bit step is 0.017).

use std::path::PathBuf;

use reka_media::uhd::{self, plan};
use reka_media::{ImageSpec, Limits};
use serde_json::Value;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/reka_edge")
}

fn reference() -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir().join("reference.json")).expect("reference.json")).expect("json")
}

fn spec() -> ImageSpec {
    ImageSpec { size: 512, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], max_tiles: 4 }
}

fn pair(v: &Value) -> (u32, u32) {
    (v[0].as_u64().expect("w") as u32, v[1].as_u64().expect("h") as u32)
}

/// The 8-bit tile behind a run of normalised pixels (inverting the
/// normalisation to the nearest level), and the largest rounding residue.
fn levels(px: &[f32], s: &ImageSpec) -> (Vec<u8>, f32) {
    let plane = px.len() / 3;
    let mut out = vec![0u8; px.len()];
    let mut worst = 0f32;
    for c in 0..3 {
        for (i, &v) in px[c * plane..(c + 1) * plane].iter().enumerate() {
            let level = ((v * s.std[c] + s.mean[c]) * 255.0).round().clamp(0.0, 255.0);
            let back = ((f64::from(level) * (1.0 / 255.0)) as f32 - s.mean[c]) / s.std[c];
            worst = worst.max((back - v).abs());
            out[i * 3 + c] = level as u8;
        }
    }
    (out, worst)
}

fn png(rel: &str) -> Vec<u8> {
    image::open(dir().join(rel)).expect(rel).to_rgb8().into_raw()
}

/// Compares our normalised tiles with the fixture's 8-bit ones.
fn check_tiles(name: &str, px: &[f32], n: usize, files: &[String]) {
    assert_eq!(n, files.len(), "{name}: tile count");
    let s = spec();
    let per = 3 * 512 * 512;
    for (k, f) in files.iter().enumerate() {
        let (ours, residue) = levels(&px[k * per..(k + 1) * per], &s);
        assert!(residue <= 1e-6, "{name} tile {k}: values are not 8-bit levels normalised in f32 (residue {residue})");
        let want = png(f);
        let differ = ours.iter().zip(&want).filter(|(a, b)| a != b).count();
        let worst = ours.iter().zip(&want).map(|(a, b)| a.abs_diff(*b)).max().unwrap_or(0);
        assert_eq!(differ, 0, "{name} tile {k} ({f}): {differ} bytes differ, worst by {worst}");
    }
}

#[test]
fn tile_plans_match_the_plugin() {
    let r = reference();
    let mut checked = 0;
    for (key, max) in [("max_tiles_4", 4), ("max_tiles_9", 9)] {
        for d in r["tiling_sizes"][key].as_array().expect("sizes") {
            let (w, h) = pair(&d["size"]);
            let p = plan(w, h, 512, 4, max);
            let grid = pair(&d["grid"]);
            assert_eq!(p.grid.unwrap_or((1, 1)), grid, "{w}×{h}, max {max}: grid");
            assert_eq!(p.tiles as u64, d["tiles"].as_u64().expect("tiles"), "{w}×{h}, max {max}: tiles");
            let resized = if p.grid.is_some() { &d["refine_size"] } else { &d["best_size"] };
            assert_eq!(p.resized, pair(resized), "{w}×{h}, max {max}: resize");
            checked += 1;
        }
    }
    assert!(checked >= 20, "{checked} sizes");
}

#[test]
fn tiles_match_the_plugin_byte_for_byte() {
    let r = reference();
    let images = r["images"].as_array().expect("images");
    assert!(images.len() >= 6);
    for im in images {
        let name = im["name"].as_str().expect("name");
        let bytes = std::fs::read(dir().join(im["file"].as_str().expect("file"))).expect("image");
        let files: Vec<String> = im["tile_files"].as_array().expect("tiles").iter().map(|t| t["file"].as_str().expect("f").to_string()).collect();
        let (w, h) = pair(&im["size"]);
        let p = plan(w, h, 512, 4, 4);
        assert_eq!(p.tiles as u64, im["tiles"].as_u64().expect("tiles"), "{name}");
        // Tokens: 64 a tile plus <image> and </image>.
        assert_eq!(64 * p.tiles as u64 + 2, im["tokens"].as_u64().expect("tokens"), "{name}");
        let px = uhd::image_tiles(&bytes, &spec(), 4, &Limits::default()).expect("tiles");
        check_tiles(name, &px.data, px.n, &files);
    }
}

#[test]
fn video_frames_match_the_plugin() {
    let r = reference();
    let v = &r["video"];
    let frames: Vec<Vec<u8>> = v["frames"].as_array().expect("frames").iter().map(|f| std::fs::read(dir().join(f.as_str().expect("f"))).expect("frame")).collect();
    let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    let files: Vec<String> = v["frame_pixels_equal_tiles"].as_array().expect("tiles").iter().map(|f| f.as_str().expect("f").to_string()).collect();
    let px = uhd::video_from_images(&refs, 6, &spec(), &Limits::default()).expect("frames");
    check_tiles("video", &px.data, px.n, &files);
}
