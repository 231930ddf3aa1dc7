//! CI's brief fuzzing: every file of `fuzz/corpus/<target>/` through its target
//! (seeds and the inputs the fuzzer found, crashes included, which are regression
//! tests once fixed), then seeded mutations of the corpus for a few seconds per
//! target. A panic fails the test and names the file, or writes the mutated input
//! to `target/fuzz-failures/` to replay. A single input slower than
//! [`SLOW`] fails too (a hang or work out of proportion to the input).
//!
//! `REKA_FUZZ_SECONDS` (default 2) sets the mutation time per target,
//! `REKA_FUZZ_SEED` the seed (default fixed, so CI is reproducible).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reka_fuzz_targets::mutate::{mutate, read_corpus, Rng};
use reka_fuzz_targets::{Target, TARGETS};

/// The most one input may take (release build).
const SLOW: Duration = Duration::from_secs(5);

fn corpus_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus").join(name)
}

fn corpus(name: &str) -> Vec<(PathBuf, Vec<u8>)> {
    read_corpus(&corpus_dir(name))
}

/// Runs `input` through `t`; the panic message or the time it took.
fn run(t: &Target, input: &[u8]) -> Result<Duration, String> {
    let start = Instant::now();
    catch_unwind(AssertUnwindSafe(|| (t.run)(input))).map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic".into())
    })?;
    Ok(start.elapsed())
}

#[test]
fn every_corpus_file_passes_its_target() {
    let mut failures = Vec::new();
    for t in TARGETS {
        let files = corpus(t.name);
        assert!(!files.is_empty(), "fuzz/corpus/{} is empty", t.name);
        for (path, bytes) in &files {
            match run(t, bytes) {
                Ok(d) if d > SLOW => failures.push(format!("{}: took {d:?}", path.display())),
                Ok(_) => {}
                Err(e) => failures.push(format!("{}: {e}", path.display())),
            }
        }
        println!("{}: {} corpus files", t.name, files.len());
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn seeded_mutations_of_the_corpus_pass_every_target() {
    let (seconds, seed) = (reka_fuzz_targets::mutate::seconds(), reka_fuzz_targets::mutate::seed());
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/fuzz-failures");
    let mut failures = Vec::new();
    for t in TARGETS {
        let files = corpus(t.name);
        let mut rng = Rng::new(seed ^ t.name.len() as u64);
        let deadline = Instant::now() + Duration::from_secs_f64(seconds);
        let mut n = 0u64;
        while Instant::now() < deadline {
            let a = &files[rng.below(files.len())].1;
            let b = &files[rng.below(files.len())].1;
            let input = mutate(&mut rng, a, b);
            n += 1;
            let problem = match run(t, &input) {
                Ok(d) if d > SLOW => Some(format!("took {d:?}")),
                Ok(_) => None,
                Err(e) => Some(e),
            };
            if let Some(p) = problem {
                let _ = std::fs::create_dir_all(&out);
                let file = out.join(format!("{}-{seed}-{n}", t.name));
                let _ = std::fs::write(&file, &input);
                failures.push(format!("{}: {p} (input in {})", t.name, file.display()));
                break;
            }
        }
        println!("{}: {n} mutated inputs in {seconds} s", t.name);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
