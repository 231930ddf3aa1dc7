//! CI's brief fuzzing of data URLs (the `data_url` target): every file of
//! `fuzz/corpus/data_url/`, then seeded mutations of them for a few seconds,
//! through [`fetch::bytes`] as the media parts use it (only `data:` URLs: other
//! schemes go to the network), and the decoded bytes through the WAV header check
//! of [`media::precheck`]. Each must answer `Ok` or an error, never panic, and a
//! decoded payload never exceeds the limit. The mutator is the main workspace's
//! `reka-fuzz-mutate`, included by path.

#[path = "../../../fuzz/mutate/src/lib.rs"]
#[allow(dead_code)]
mod mutate;


use crate::fetch;

const MAX: usize = 4096;

fn data_url(input: &[u8]) {
    let url = String::from_utf8_lossy(input);
    if !url.starts_with("data:") {
        return;
    }
    if let Ok(bytes) = fetch::bytes(&url, MAX) {
        assert!(bytes.len() <= MAX, "{} bytes decoded past the limit", bytes.len());
        let _ = reka_media::check_wav(&bytes, &reka_media::Limits::default());
    }
}

#[test]
fn data_url_corpus_and_mutations() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/data_url");
    mutate::replay_and_mutate("data_url", &dir, data_url);
}
