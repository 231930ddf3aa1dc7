//! Fetches all-MiniLM-L6-v2 into the cache (`$REKA_CACHE_DIR`, else
//! `~/.cache/reka/models`) and prints the model directory.
//!
//! `cargo run -p reka-embed --release --example fetch`

fn main() -> anyhow::Result<()> {
    let dir = reka_embed::fetch::ensure(&reka_embed::fetch::default_cache_dir())?;
    println!("{}", dir.display());
    Ok(())
}
