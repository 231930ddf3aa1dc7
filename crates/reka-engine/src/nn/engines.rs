//! The decoders an engine thread can drive ([`Engine`]): the CPU decoder with
//! its growable f32 caches, and in GPU builds the CUDA decoder with caches in
//! device memory. The scheduler is the same for both. Prefix caching is on
//! the CPU decoder only: the GPU decoder's cache is one fixed-size device
//! buffer per session, with no prefix copy, and whether its prefill gives the
//! same bits on top of a cached prefix is unchecked, so it keeps
//! [`Engine::prefix_cache`] false and the cache stays off there.

use crate::model::{KvCache, Llama, Step};
use std::sync::Arc;

/// One session's part of a batched step, whatever the decoder.
pub struct EngineStep<'a, C> {
    pub ids: &'a [u32],
    pub cache: &'a mut C,
    /// Rows of `ids` whose input embedding is given (media).
    pub embeds: Vec<(usize, &'a [f32])>,
    /// Return every row's logits (prompt log-probs), not only the last.
    pub all_rows: bool,
}

/// A decoder that advances many sessions in one batched pass.
pub trait Engine: Send + 'static {
    /// One session's keys and values.
    type Cache: Send;
    /// A cache with room reserved for `positions`.
    fn new_cache(&self, positions: usize) -> anyhow::Result<Self::Cache>;
    /// Positions a cache holds.
    fn cache_len(cache: &Self::Cache) -> usize;
    /// Bytes of keys and values per position (for the memory budget).
    fn bytes_per_position(&self) -> usize;
    /// A copy of `cache` (a forked stream).
    fn fork_cache(&self, cache: &Self::Cache) -> anyhow::Result<Self::Cache>;
    /// Whether the prefix cache ([`super::prefix`]) may keep and reuse this
    /// decoder's caches: it needs [`Engine::prefix_of`] and [`Engine::grow`],
    /// and a prefill on top of a cache that gives the bits of a whole one.
    fn prefix_cache(&self) -> bool {
        false
    }
    /// A new cache holding `cache`'s first `len` positions, with room for
    /// `more` after them.
    fn prefix_of(&self, _cache: &Self::Cache, _len: usize, _more: usize) -> anyhow::Result<Self::Cache> {
        anyhow::bail!("this decoder does not copy cache prefixes")
    }
    /// Frees the room `cache` holds past its positions before it is kept by
    /// the prefix cache (whose accounting counts positions).
    fn trim(&self, _cache: &mut Self::Cache) {}
    /// Makes room in `cache` for `more` positions.
    fn grow(&self, _cache: &mut Self::Cache, _more: usize) -> anyhow::Result<()> {
        anyhow::bail!("this decoder does not grow caches")
    }
    /// Appends each step's ids; returns each step's last-position logits
    /// (every position's, `[rows · vocab]`, with `all_rows`).
    fn forward_batch(&self, steps: Vec<EngineStep<'_, Self::Cache>>) -> anyhow::Result<Vec<Vec<f32>>>;
    /// Where the decoder runs, for the log.
    fn device(&self) -> String;
}

/// The CPU decoder.
pub struct CpuEngine(pub Arc<Llama>);

impl Engine for CpuEngine {
    type Cache = KvCache;
    fn new_cache(&self, positions: usize) -> anyhow::Result<KvCache> {
        let mut c = self.0.new_cache();
        c.reserve(positions);
        Ok(c)
    }
    fn cache_len(cache: &KvCache) -> usize {
        cache.len()
    }
    fn fork_cache(&self, cache: &KvCache) -> anyhow::Result<KvCache> {
        Ok(cache.clone())
    }
    fn bytes_per_position(&self) -> usize {
        self.0.new_cache().bytes_per_position()
    }
    /// Every op of the CPU decoder works row by row (the quantized and 16-bit
    /// matmuls give a row the same bits however many rows run with it;
    /// attention reads the cache up to the row's position), so a suffix
    /// prefilled on a cached prefix gives the bits of one whole prefill.
    fn prefix_cache(&self) -> bool {
        true
    }
    fn prefix_of(&self, cache: &KvCache, len: usize, more: usize) -> anyhow::Result<KvCache> {
        Ok(cache.prefix(len, more))
    }
    fn trim(&self, cache: &mut KvCache) {
        cache.shrink_to_fit();
    }
    fn grow(&self, cache: &mut KvCache, more: usize) -> anyhow::Result<()> {
        cache.reserve(more);
        Ok(())
    }
    fn forward_batch(&self, steps: Vec<EngineStep<'_, KvCache>>) -> anyhow::Result<Vec<Vec<f32>>> {
        let mut steps: Vec<Step<'_>> = steps.into_iter().map(|s| Step { ids: s.ids, cache: s.cache, embeds: s.embeds, all_rows: s.all_rows }).collect();
        Ok(self.0.forward_batch(&mut steps)?)
    }
    fn device(&self) -> String {
        "cpu".into()
    }
}

/// The CUDA decoder (GPU builds).
#[cfg(feature = "cuda")]
pub struct GpuEngine(pub Arc<crate::gpu::GpuLlama>);

#[cfg(feature = "cuda")]
impl Engine for GpuEngine {
    type Cache = crate::gpu::GpuKvCache;
    fn new_cache(&self, positions: usize) -> anyhow::Result<Self::Cache> {
        self.0.new_cache(positions)
    }
    fn cache_len(cache: &Self::Cache) -> usize {
        cache.len()
    }
    fn fork_cache(&self, cache: &Self::Cache) -> anyhow::Result<Self::Cache> {
        self.0.copy_of(cache, cache.len())
    }
    fn bytes_per_position(&self) -> usize {
        self.0.cache_bytes_per_position()
    }
    fn forward_batch(&self, steps: Vec<EngineStep<'_, Self::Cache>>) -> anyhow::Result<Vec<Vec<f32>>> {
        let mut steps: Vec<crate::gpu::GpuStep<'_>> =
            steps.into_iter().map(|s| crate::gpu::GpuStep { ids: s.ids, cache: s.cache, embeds: s.embeds, all_rows: s.all_rows }).collect();
        self.0.forward_batch(&mut steps)
    }
    fn device(&self) -> String {
        format!("cuda ({})", self.0.gpu().name())
    }
}
