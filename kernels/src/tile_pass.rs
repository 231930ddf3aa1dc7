//! The parallel pass that both tiled matmul families ([`crate::quant_tiles`],
//! [`crate::kquant_tiles`]) run: every weight's 16-row tiles, two per task,
//! shared out over the rayon pool in one pass, each task taking the
//! activation rows four at a time and writing its rows of the `[t, rows]`
//! results; and the load-time repack into tiles, tiles in parallel.

use rayon::prelude::*;

/// Rows per tile.
pub const TILE: usize = 16;

/// Activation rows one pass over a weight tile serves.
pub(crate) const COLS: usize = 4;

/// Tiles per parallel task (32 rows: SmolLM2's 576-row matrices split into 18
/// tasks, which two threads share evenly; 4 tiles gave 9, one thread doing 5).
const TILES_PER_TASK: usize = 2;

/// One tile's results for up to [`COLS`] activation rows.
pub(crate) type TileOut = [[f32; TILE]; COLS];

/// `[t, rows]` for each weight in `ws` (`rows(w)` rows each), where
/// `product(w, tile, acts, out)` computes tile `tile` of `w` times 1 to
/// [`COLS`] activation rows.
pub(crate) fn run<W: Sync, A: Sync>(
    ws: &[&W],
    rows: impl Fn(&W) -> usize + Sync,
    acts: &[A],
    product: impl Fn(&W, usize, &[A], &mut TileOut) + Sync,
) -> Vec<Vec<f32>> {
    let t = acts.len();
    let mut ys: Vec<Vec<f32>> = ws.iter().map(|w| vec![0f32; t * rows(w)]).collect();
    let outs: Vec<Out> = ys.iter_mut().map(|y| Out(y.as_mut_ptr())).collect();
    let tasks: Vec<(&W, usize, &Out)> = ws
        .iter()
        .zip(&outs)
        .flat_map(|(w, out)| (0..rows(w).div_ceil(TILE)).step_by(TILES_PER_TASK).map(move |tile| (*w, tile, out)))
        .collect();
    tasks.into_par_iter().for_each(|(w, first_tile, out)| {
        let n = rows(w);
        let mut buf = [[0f32; TILE]; COLS];
        let last_tile = (first_tile + TILES_PER_TASK).min(n.div_ceil(TILE));
        for (g, group) in acts.chunks(COLS).enumerate() {
            for tile in first_tile..last_tile {
                product(w, tile, group, &mut buf);
                let rows_here = (n - tile * TILE).min(TILE);
                for (c, b) in buf.iter().take(group.len()).enumerate() {
                    out.write((g * COLS + c) * n + tile * TILE, &b[..rows_here]);
                }
            }
        }
    });
    ys
}

/// A `[t, rows]` result that parallel tasks write into at disjoint rows.
struct Out(*mut f32);

// SAFETY: tasks write disjoint elements (each owns its weight rows), and the
// vectors outlive the parallel pass that writes them.
#[allow(unsafe_code)]
unsafe impl Sync for Out {}

impl Out {
    /// Copies `vals` to elements `at..at + vals.len()`.
    #[allow(unsafe_code)]
    fn write(&self, at: usize, vals: &[f32]) {
        // SAFETY: `run` passes `at = j · rows + tile · 16` with `j < t` and
        // `tile · 16 + vals.len() ≤ rows`, inside the `[t, rows]` vector;
        // only the task that owns tile `tile` writes those elements.
        unsafe { std::ptr::copy_nonoverlapping(vals.as_ptr(), self.0.add(at), vals.len()) }
    }
}

/// The tiled layout of a `rows`-row weight, `tile_bytes` per tile (the last
/// one zero-padded): `pack(r, i, tile)` writes matrix row `r`, the tile's
/// `i`-th, into its tile's bytes. Tiles are filled in parallel (an 8B model's
/// K-quant repack decodes every block, ~200 MB/s on one thread).
pub(crate) fn repack(rows: usize, tile_bytes: usize, pack: impl Fn(usize, usize, &mut [u8]) + Sync) -> Vec<u8> {
    let mut data = vec![0u8; rows.div_ceil(TILE) * tile_bytes];
    data.par_chunks_mut(tile_bytes.max(1)).enumerate().for_each(|(t, tile)| {
        for i in 0..TILE.min(rows - t * TILE) {
            pack(t * TILE + i, i, tile);
        }
    });
    data
}
