//! Shared by the encoder reference tests: where `reka-host fetch` caches weights.

use std::path::PathBuf;

/// A fetched weight file: `$REKA_CACHE_DIR/<file>`, else `~/.cache/reka/models/<file>`.
/// Panics with the command to run when it is missing (CI fetches before testing).
pub fn cached(file: &str) -> PathBuf {
    let dir = std::env::var_os("REKA_CACHE_DIR").map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
        home.join(".cache/reka/models")
    });
    let path = dir.join(file);
    assert!(path.exists(), "{} is missing: run `reka-host fetch` first", path.display());
    path
}
