//! Prefix caching: the KV caches of finished sessions, kept so that a new
//! prompt that starts the same way (the next turn of a chat, a shared system
//! prompt, a regenerated answer) prefills only what is new.
//!
//! Granularity: whole sequences, matched by their longest common prefix at
//! token granularity. The CPU decoder's cache is one contiguous, growable
//! buffer per layer and session (the attention kernel reads it as one slice),
//! so a finished session's cache is kept as it is, without copying it into
//! blocks; a hit either *takes* the entry (it is wholly a prefix of the new
//! prompt: a chat's next turn, no copy) or copies the matched positions out
//! of it (a partial match: the entry stays for others). Matching every
//! position rather than whole blocks of 16 reuses up to the last common token.
//! The price: prefixes shared by several entries are held once per entry, and
//! eviction frees whole entries. Entries are few (each is a conversation), so
//! a lookup is a linear scan.
//!
//! A position's [`Key`] is its token id, or for a media row (an injected
//! embedding) a SHA-256 digest of the id and the embedding's bits, so media
//! positions match only when the embeddings are identical.
//!
//! The cache lives on the engine thread ([`super::scheduler`]) of one model,
//! so it is per model. Its positions count in the KV budget; it is bounded by
//! [`PrefixCache::max_positions`] and the scheduler evicts least recently used
//! entries whenever live sessions need the memory (they always win).

use sha2::{Digest, Sha256};

/// What fills one position (see the module docs).
pub type Key = u128;

/// Media keys have this bit set; token ids are below 2³².
const MEDIA: Key = 1 << 127;

/// The keys of `ids`, whose rows `embeds` (ascending) hold given embeddings.
pub fn keys(ids: &[u32], embeds: &[(usize, Vec<f32>)]) -> Vec<Key> {
    let mut keys: Vec<Key> = ids.iter().map(|&i| Key::from(i)).collect();
    for (row, e) in embeds {
        let Some(k) = keys.get_mut(*row) else { continue };
        let mut h = Sha256::new();
        h.update(ids[*row].to_le_bytes());
        for x in e {
            h.update(x.to_bits().to_le_bytes());
        }
        let d = h.finalize();
        let mut b = [0u8; 16];
        b.copy_from_slice(&d[..16]);
        *k = MEDIA | (Key::from_le_bytes(b) >> 1);
    }
    keys
}

/// One kept sequence: the keys of its positions and its cache.
struct Entry<C> {
    keys: Vec<Key>,
    cache: C,
    /// When it was last inserted or hit (a tick of [`PrefixCache`]).
    used: u64,
}

/// A match: the entry and the number of leading positions in common.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    entry: usize,
    pub len: usize,
    /// The entry is wholly a prefix of the prompt (it can be taken).
    pub whole: bool,
}

/// The kept sequences of one model, least recently used evicted first.
pub struct PrefixCache<C> {
    entries: Vec<Entry<C>>,
    positions: usize,
    max_positions: usize,
    tick: u64,
}

impl<C> PrefixCache<C> {
    /// An empty cache that holds at most `max_positions` (0: off).
    pub fn new(max_positions: usize) -> Self {
        Self { entries: Vec::new(), positions: 0, max_positions, tick: 0 }
    }

    /// Whether it may hold anything.
    pub fn enabled(&self) -> bool {
        self.max_positions > 0
    }

    /// Positions held by all entries.
    pub fn positions(&self) -> usize {
        self.positions
    }

    /// The most positions it may hold.
    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry sharing the longest prefix with `prompt` (at least one
    /// position), if any.
    pub fn lookup(&self, prompt: &[Key]) -> Option<Hit> {
        let mut best: Option<Hit> = None;
        for (i, e) in self.entries.iter().enumerate() {
            let len = e.keys.iter().zip(prompt).take_while(|(a, b)| a == b).count();
            if len > 0 && best.is_none_or(|b| len > b.len) {
                best = Some(Hit { entry: i, len, whole: len == e.keys.len() });
            }
        }
        best
    }

    /// The cache of `hit`'s entry, marked as just used.
    pub fn touch(&mut self, hit: Hit) -> Option<&C> {
        self.tick += 1;
        let e = self.entries.get_mut(hit.entry)?;
        e.used = self.tick;
        Some(&e.cache)
    }

    /// Removes `hit`'s entry and hands over its keys and cache.
    pub fn take(&mut self, hit: Hit) -> Option<(Vec<Key>, C)> {
        if hit.entry >= self.entries.len() {
            return None;
        }
        let e = self.entries.swap_remove(hit.entry);
        self.positions -= e.keys.len();
        Some((e.keys, e.cache))
    }

    /// Keeps a finished sequence. An entry it extends is dropped (it covers
    /// that one); if it is itself a prefix of an entry, that entry is marked
    /// used instead. Then least recently used entries go until the bound
    /// holds; returns how many were evicted. Empty or too long sequences are
    /// not kept.
    pub fn insert(&mut self, keys: Vec<Key>, cache: C) -> usize {
        if keys.is_empty() || keys.len() > self.max_positions {
            return 0;
        }
        self.tick += 1;
        if let Some(e) = self.entries.iter_mut().find(|e| e.keys.starts_with(&keys)) {
            e.used = self.tick;
            return 0;
        }
        let mut i = 0;
        while i < self.entries.len() {
            let e = &self.entries[i];
            if keys.starts_with(&e.keys) {
                self.positions -= e.keys.len();
                self.entries.swap_remove(i);
            } else {
                i += 1;
            }
        }
        self.positions += keys.len();
        self.entries.push(Entry { keys, cache, used: self.tick });
        let mut evicted = 0;
        while self.positions > self.max_positions && self.evict_lru() {
            evicted += 1;
        }
        evicted
    }

    /// Evicts the least recently used entry; false when nothing is held.
    pub fn evict_lru(&mut self) -> bool {
        let victim = self.entries.iter().enumerate().min_by_key(|(_, e)| e.used).map(|(i, _)| i);
        let Some(i) = victim else { return false };
        let e = self.entries.swap_remove(i);
        self.positions -= e.keys.len();
        true
    }

    /// Evicts least recently used entries (`keep`'s last) until `live` plus
    /// what is held fits in `capacity`. Returns how many went, and whether
    /// `keep`'s entry is still held (at the same index).
    pub fn reclaim(&mut self, live: usize, capacity: usize, keep: Option<Hit>) -> (usize, Option<Hit>) {
        let mut keep = keep;
        let mut evicted = 0;
        while live + self.positions > capacity && !self.entries.is_empty() {
            let last = self.entries.len() - 1;
            let victim = self
                .entries
                .iter()
                .enumerate()
                .filter(|(i, _)| Some(*i) != keep.map(|h| h.entry))
                .min_by_key(|(_, e)| e.used)
                .map(|(i, _)| i);
            let i = victim.unwrap_or(last);
            if keep.is_some_and(|h| h.entry == i) {
                keep = None;
            } else if let Some(h) = keep.as_mut().filter(|h| h.entry == last) {
                h.entry = i; // swap_remove moves the last entry into i
            }
            let e = self.entries.swap_remove(i);
            self.positions -= e.keys.len();
            evicted += 1;
        }
        (evicted, keep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(v: &[u32]) -> Vec<Key> {
        v.iter().map(|&i| Key::from(i)).collect()
    }

    #[test]
    fn the_longest_common_prefix_wins_and_whole_entries_can_be_taken() {
        let mut c = PrefixCache::new(100);
        c.insert(k(&[1, 2, 3]), "a");
        c.insert(k(&[1, 2, 9, 9, 9]), "b");
        let h = c.lookup(&k(&[1, 2, 3, 4])).expect("hit");
        assert_eq!((h.len, h.whole), (3, true));
        assert_eq!(c.touch(h), Some(&"a"));
        let h = c.lookup(&k(&[1, 2, 9, 5])).expect("hit");
        assert_eq!((h.len, h.whole), (3, false));
        assert_eq!(c.lookup(&k(&[7, 1, 2])), None, "a different first token shares nothing");
        let (keys, cache) = c.take(c.lookup(&k(&[1, 2, 3, 4])).expect("hit")).expect("taken");
        assert_eq!((keys, cache), (k(&[1, 2, 3]), "a"));
        assert_eq!((c.len(), c.positions()), (1, 5));
    }

    #[test]
    fn an_extension_replaces_its_prefix_and_a_prefix_of_an_entry_is_not_kept_twice() {
        let mut c = PrefixCache::new(100);
        c.insert(k(&[1, 2, 3]), 1);
        c.insert(k(&[1, 2, 3, 4, 5]), 2);
        assert_eq!((c.len(), c.positions()), (1, 5));
        c.insert(k(&[1, 2]), 3);
        assert_eq!((c.len(), c.positions()), (1, 5));
        assert_eq!(c.touch(c.lookup(&k(&[1, 2])).expect("hit")), Some(&2));
    }

    #[test]
    fn the_bound_evicts_least_recently_used_entries() {
        let mut c = PrefixCache::new(10);
        c.insert(k(&[1, 1, 1, 1]), 'a');
        c.insert(k(&[2, 2, 2, 2]), 'b');
        // Using a makes b the least recently used.
        let h = c.lookup(&k(&[1, 1])).expect("hit");
        c.touch(h);
        assert_eq!(c.insert(k(&[3, 3, 3, 3]), 'c'), 1);
        assert_eq!(c.positions(), 8);
        assert!(c.lookup(&k(&[2])).is_none(), "b went");
        assert!(c.lookup(&k(&[1])).is_some() && c.lookup(&k(&[3])).is_some());
        // A sequence longer than the bound is not kept; nothing is evicted for it.
        assert_eq!(c.insert(k(&[4; 11]), 'd'), 0);
        assert_eq!(c.len(), 2);
        let mut off = PrefixCache::new(0);
        assert!(!off.enabled());
        off.insert(k(&[1]), 'x');
        assert!(off.is_empty());
    }

    #[test]
    fn live_sessions_reclaim_memory_and_the_entry_in_use_goes_last() {
        let mut c = PrefixCache::new(100);
        for (i, v) in [10u32, 20, 30, 40].into_iter().enumerate() {
            c.insert(k(&[v; 5]), i);
        }
        // Keep the oldest (10s): the others go first, oldest first.
        let keep = c.lookup(&k(&[10, 10])).expect("hit");
        let (evicted, kept) = c.reclaim(80, 90, Some(keep));
        assert_eq!((evicted, c.positions()), (2, 10));
        let kept = kept.expect("still held");
        assert_eq!(c.touch(kept), Some(&0), "the index follows the entry");
        assert!(c.lookup(&k(&[40])).is_some(), "the newest stays");
        // Not enough room even with it gone: the kept entry goes too, last.
        let keep = c.lookup(&k(&[10])).expect("hit");
        let (evicted, kept) = c.reclaim(90, 90, Some(keep));
        assert_eq!((evicted, kept, c.positions()), (2, None, 0));
        // Nothing to evict: nothing happens.
        assert_eq!(c.reclaim(200, 90, None), (0, None));
    }

    #[test]
    fn media_positions_match_only_with_identical_embeddings() {
        let ids = [5, 100, 100, 6];
        let a = keys(&ids, &[(1, vec![0.5, 1.0]), (2, vec![0.25, 0.0])]);
        let b = keys(&ids, &[(1, vec![0.5, 1.0]), (2, vec![0.25, -0.0])]);
        let same = keys(&ids, &[(1, vec![0.5, 1.0]), (2, vec![0.25, 0.0])]);
        assert_eq!(a, same);
        assert_eq!((a[0], a[3]), (5, 6));
        assert!(a[1] & MEDIA != 0 && a[1] != 100);
        assert_eq!(a[..2], b[..2]);
        assert_ne!(a[2], b[2], "-0.0 and 0.0 differ in bits");
        let mut c = PrefixCache::new(10);
        c.insert(a, ());
        assert_eq!(c.lookup(&b).map(|h| h.len), Some(2));
        assert_eq!(c.lookup(&k(&ids)).map(|h| h.len), Some(1), "a placeholder id alone is not the media");
    }
}
