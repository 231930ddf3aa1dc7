//! A small seeded mutator for the brief fuzz runs of `cargo test`: corpus files with a
//! few random edits (bit flips, interesting integers written over header fields,
//! cuts, inserted and deleted runs, splices of another file). Not coverage-guided;
//! the long runs are cargo-fuzz's. Deterministic for a seed, so a failure
//! reported by the test can be replayed.

/// xorshift64*: a fast deterministic generator (no dependency, any seed but 0).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// Values that make header fields interesting: zero, one, sign and width edges.
const INTERESTING: &[u64] = &[
    0,
    1,
    2,
    0x7F,
    0x80,
    0xFF,
    0x100,
    0x7FFF,
    0x8000,
    0xFFFF,
    0x1_0000,
    0x7FFF_FFFF,
    0x8000_0000,
    0xFFFF_FFFF,
    0x1_0000_0000,
    0x7FFF_FFFF_FFFF_FFFF,
    u64::MAX,
];

/// `input` with 1 to 4 random edits; `other` is a second corpus file for splices.
pub fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = v.len();
        match rng.below(8) {
            // Flip a bit.
            0 if len > 0 => {
                let i = rng.below(len);
                v[i] ^= 1 << rng.below(8);
            }
            // A random byte.
            1 if len > 0 => {
                let i = rng.below(len);
                v[i] = rng.next_u64() as u8;
            }
            // An interesting integer of 1, 2, 4 or 8 bytes, either endianness.
            2 | 3 if len > 0 => {
                let width = [1, 2, 4, 8][rng.below(4)];
                let x = INTERESTING[rng.below(INTERESTING.len())];
                let bytes = if rng.below(2) == 0 { x.to_le_bytes() } else { x.to_be_bytes() };
                let bytes = if rng.below(2) == 0 { &bytes[..width] } else { &bytes[8 - width..] };
                let at = rng.below(len);
                let n = width.min(len - at);
                v[at..at + n].copy_from_slice(&bytes[..n]);
            }
            // Cut the tail.
            4 if len > 0 => v.truncate(rng.below(len)),
            // Delete a run.
            5 if len > 1 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(64)).min(len);
                v.drain(a..b);
            }
            // Duplicate a run in place.
            6 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(64)).min(len);
                let run = v[a..b].to_vec();
                let at = rng.below(len + 1);
                v.splice(at..at, run);
            }
            // Splice in part of the other file.
            _ if !other.is_empty() => {
                let a = rng.below(other.len());
                let b = (a + 1 + rng.below(256)).min(other.len());
                let at = rng.below(len + 1);
                let end = (at + (b - a)).min(len);
                v.splice(at..end, other[a..b].iter().copied());
            }
            _ => v.push(rng.next_u64() as u8),
        }
    }
    v
}

/// The files of a corpus folder, sorted by name (empty if it does not exist).
pub fn read_corpus(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .filter_map(|p| std::fs::read(&p).ok().map(|b| (p, b)))
        .collect();
    files.sort();
    files
}

/// Seconds of mutations per target: `REKA_FUZZ_SECONDS`, default 2.
pub fn seconds() -> f64 {
    std::env::var("REKA_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(2.0)
}

/// The seed: `REKA_FUZZ_SEED`, default fixed so that CI is reproducible.
pub fn seed() -> u64 {
    std::env::var("REKA_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5EED_F00D)
}

/// Replays every file of the corpus in `dir` through `target`, then feeds it
/// mutations of the corpus for [`seconds`]; panics (naming the input) if the
/// target panics on any. Returns (corpus files, mutated inputs).
pub fn replay_and_mutate(name: &str, dir: &std::path::Path, target: impl Fn(&[u8]) + std::panic::RefUnwindSafe) -> (usize, u64) {
    use std::panic::catch_unwind;
    let files = read_corpus(dir);
    assert!(!files.is_empty(), "{} is empty", dir.display());
    for (path, bytes) in &files {
        assert!(catch_unwind(|| target(bytes)).is_ok(), "{name}: {}", path.display());
    }
    let mut rng = Rng::new(seed());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs_f64(seconds());
    let mut n = 0u64;
    while std::time::Instant::now() < deadline {
        let (a, b) = (rng.below(files.len()), rng.below(files.len()));
        let input = mutate(&mut rng, &files[a].1, &files[b].1);
        n += 1;
        let ok = catch_unwind(|| target(&input)).is_ok();
        assert!(ok, "{name}: mutation {n} (seed {}) panicked: {:?}", seed(), String::from_utf8_lossy(&input));
    }
    println!("{name}: {} corpus files, {n} mutated inputs", files.len());
    (files.len(), n)
}
