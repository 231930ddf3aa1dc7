//! Small open-addressing hash tables used to build the tokenizer quickly:
//! token text -> id (over a shared text arena, no per-token allocation) and
//! (left id, right id) -> (merge rank, merged id).

/// Sentinel for an empty slot.
const EMPTY: u32 = u32::MAX;

/// Multiplier of the mixing function (a 64-bit odd constant).
const K: u64 = 0x9E37_79B9_7F4A_7C15;

/// Hashes a byte string (word-at-a-time multiply/rotate mix).
fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h: u64 = (bytes.len() as u64).wrapping_mul(K);
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h.rotate_left(23) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = (h.rotate_left(23) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    }
    finish(h)
}

/// Final avalanche so that the low bits used for slot selection depend on all input bits.
fn finish(mut h: u64) -> u64 {
    h ^= h >> 29;
    h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h ^= h >> 32;
    h
}

/// Table capacity (a power of two) for `n` entries at load factor <= 3/4.
fn capacity_for(n: usize) -> usize {
    (n.max(4) * 4).div_ceil(3).next_power_of_two()
}

/// Strings stored back to back in one buffer, addressed by index.
#[derive(Debug, Clone, Default)]
pub struct Arena {
    data: Vec<u8>,
    ends: Vec<u32>,
}

impl Arena {
    /// An arena pre-sized for `count` strings of `bytes` bytes in total.
    pub fn with_capacity(count: usize, bytes: usize) -> Self {
        Self {
            data: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(count),
        }
    }

    /// Appends a string; it gets index `len() - 1`.
    pub fn push(&mut self, s: &[u8]) {
        self.data.extend_from_slice(s);
        self.ends
            .push(u32::try_from(self.data.len()).unwrap_or(u32::MAX));
    }

    /// The raw buffer and end offsets.
    pub fn parts(&self) -> (&[u8], &[u32]) {
        (&self.data, &self.ends)
    }

    /// An arena from a buffer and end offsets; `None` if the offsets are not
    /// non-decreasing within the buffer.
    pub fn from_parts(data: Vec<u8>, ends: Vec<u32>) -> Option<Self> {
        let mut prev = 0u32;
        for &e in &ends {
            if e < prev || e as usize > data.len() {
                return None;
            }
            prev = e;
        }
        Some(Self { data, ends })
    }

    /// Number of strings.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// The `i`-th string (empty when out of range).
    pub fn get(&self, i: usize) -> &[u8] {
        let Some(&end) = self.ends.get(i) else {
            return &[];
        };
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.data.get(start as usize..end as usize).unwrap_or(&[])
    }
}

/// Map from the strings of an [`Arena`] to their index. On duplicate strings
/// the last one wins (as llama.cpp's `token_to_id` does).
///
/// Kept compact (ids plus 16-bit hash tags, load factor up to 3/4) so that it
/// stays in cache while the tokenizer is built: construction time is bound
/// by memory access.
#[derive(Debug, Clone)]
pub struct StrIndex {
    ids: Vec<u32>,
    tags: Vec<u16>,
    mask: usize,
}

impl StrIndex {
    /// Indexes every string of `arena`.
    pub fn build(arena: &Arena) -> Self {
        let cap = capacity_for(arena.len());
        let mut index = Self {
            ids: vec![EMPTY; cap],
            tags: vec![0; cap],
            mask: cap - 1,
        };
        for i in 0..arena.len() {
            let id = u32::try_from(i).unwrap_or(EMPTY);
            let key = arena.get(i);
            let h = hash_bytes(key);
            let tag = (h >> 48) as u16;
            let mut slot = h as usize & index.mask;
            loop {
                let cur = index.ids[slot];
                if cur == EMPTY || (index.tags[slot] == tag && arena.get(cur as usize) == key) {
                    index.ids[slot] = id;
                    index.tags[slot] = tag;
                    break;
                }
                slot = (slot + 1) & index.mask;
            }
        }
        index
    }

    /// The slot table, for serialising: (id, tag) per slot.
    pub fn slots(&self) -> impl Iterator<Item = (u32, u16)> + '_ {
        self.ids.iter().copied().zip(self.tags.iter().copied())
    }

    /// Rebuilds the table from [`StrIndex::slots`]; `None` unless the slot count
    /// is a power of two and every id is below `n` (or empty).
    pub fn from_slots(slots: impl Iterator<Item = (u32, u16)>, n: usize) -> Option<Self> {
        let (ids, tags): (Vec<u32>, Vec<u16>) = slots.unzip();
        let ok = ids.len().is_power_of_two() && ids.iter().all(|&i| i == EMPTY || (i as usize) < n);
        ok.then(|| Self {
            mask: ids.len() - 1,
            ids,
            tags,
        })
    }

    /// The index of `key` in `arena`.
    pub fn get(&self, arena: &Arena, key: &[u8]) -> Option<u32> {
        let h = hash_bytes(key);
        let tag = (h >> 48) as u16;
        let mut slot = h as usize & self.mask;
        loop {
            let cur = self.ids[slot];
            if cur == EMPTY {
                return None;
            }
            if self.tags[slot] == tag && arena.get(cur as usize) == key {
                return Some(cur);
            }
            slot = (slot + 1) & self.mask;
        }
    }
}

/// Map (left id, right id) -> (rank, merged id). On duplicate pairs the first
/// (lowest rank) wins.
#[derive(Debug, Clone)]
pub struct PairIndex {
    /// (key, rank, merged id); key [`EMPTY_PAIR`] marks a free slot.
    entries: Vec<(u64, u32, u32)>,
    mask: usize,
}

/// Key of an empty pair slot (no token pair can be (MAX, MAX): ids are below the vocab size).
const EMPTY_PAIR: u64 = u64::MAX;

fn pair_key(left: u32, right: u32) -> u64 {
    (u64::from(left) << 32) | u64::from(right)
}

fn pair_slot(key: u64, mask: usize) -> usize {
    finish(key.wrapping_mul(K)) as usize & mask
}

impl PairIndex {
    /// An empty table sized for `n` pairs.
    pub fn with_capacity(n: usize) -> Self {
        let cap = capacity_for(n);
        Self {
            entries: vec![(EMPTY_PAIR, 0, 0); cap],
            mask: cap - 1,
        }
    }

    /// Inserts the pair unless it is already present.
    pub fn insert_first(&mut self, left: u32, right: u32, rank: u32, merged: u32) {
        let key = pair_key(left, right);
        let mut slot = pair_slot(key, self.mask);
        loop {
            let cur = self.entries[slot].0;
            if cur == EMPTY_PAIR {
                self.entries[slot] = (key, rank, merged);
                return;
            }
            if cur == key {
                return;
            }
            slot = (slot + 1) & self.mask;
        }
    }

    /// The slot table, for serialising: (key, rank, merged id) per slot.
    pub fn slots(&self) -> &[(u64, u32, u32)] {
        &self.entries
    }

    /// Rebuilds the table from [`PairIndex::slots`]; `None` unless the slot count
    /// is a power of two and every merged id is below `n`.
    pub fn from_slots(entries: Vec<(u64, u32, u32)>, n: usize) -> Option<Self> {
        let ok = entries.len().is_power_of_two()
            && entries.iter().all(|e| e.0 == EMPTY_PAIR || (e.2 as usize) < n);
        ok.then(|| Self {
            mask: entries.len() - 1,
            entries,
        })
    }

    /// (rank, merged id) of the pair.
    #[inline]
    pub fn get(&self, left: u32, right: u32) -> Option<(u32, u32)> {
        let key = pair_key(left, right);
        let mut slot = pair_slot(key, self.mask);
        loop {
            let (cur, rank, merged) = self.entries[slot];
            if cur == key {
                return Some((rank, merged));
            }
            if cur == EMPTY_PAIR {
                return None;
            }
            slot = (slot + 1) & self.mask;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn str_index_finds_all_and_last_duplicate_wins() {
        let words = ["a", "bb", "ccc", "a", "", "a longer string of text"];
        let mut arena = Arena::with_capacity(words.len(), 64);
        for w in words {
            arena.push(w.as_bytes());
        }
        let idx = StrIndex::build(&arena);
        assert_eq!(idx.get(&arena, b"a"), Some(3));
        assert_eq!(idx.get(&arena, b"bb"), Some(1));
        assert_eq!(idx.get(&arena, b""), Some(4));
        assert_eq!(idx.get(&arena, b"a longer string of text"), Some(5));
        assert_eq!(idx.get(&arena, b"zz"), None);
    }

    #[test]
    fn pair_index_first_wins() {
        let mut p = PairIndex::with_capacity(3);
        p.insert_first(1, 2, 0, 10);
        p.insert_first(1, 2, 5, 11);
        p.insert_first(2, 1, 1, 12);
        assert_eq!(p.get(1, 2), Some((0, 10)));
        assert_eq!(p.get(2, 1), Some((1, 12)));
        assert_eq!(p.get(3, 1), None);
    }
}
