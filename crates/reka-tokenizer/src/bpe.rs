//! Byte-pair encoding of one pre-tokenised piece: starting from one symbol per
//! byte, repeatedly merge the adjacent pair with the lowest merge rank (the
//! leftmost one among equals) until no adjacent pair has a merge.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::index::PairIndex;

/// Id used for a byte whose single-character token is missing from the
/// vocabulary; it never merges and is dropped from the output.
pub const MISSING: u32 = u32::MAX;

/// Index value meaning "no neighbour".
const NONE: usize = usize::MAX;

/// One symbol of the doubly linked list being merged.
#[derive(Debug, Clone, Copy)]
struct Symbol {
    id: u32,
    prev: usize,
    next: usize,
    alive: bool,
}

/// Reusable buffers, so that encoding many pieces does not allocate each time.
#[derive(Debug, Default)]
pub struct Scratch {
    symbols: Vec<Symbol>,
    /// Candidate merges: (rank, left index, right index), smallest first.
    heap: BinaryHeap<Reverse<(u32, usize, usize)>>,
}

/// Merges `initial` (one token id per byte of the piece) and appends the
/// resulting token ids to `out`.
pub fn merge(pairs: &PairIndex, initial: &[u32], scratch: &mut Scratch, out: &mut Vec<u32>) {
    match initial {
        [] => return,
        [single] => {
            if *single != MISSING {
                out.push(*single);
            }
            return;
        }
        _ => {}
    }
    let syms = &mut scratch.symbols;
    let heap = &mut scratch.heap;
    syms.clear();
    heap.clear();
    let n = initial.len();
    syms.extend(initial.iter().enumerate().map(|(i, &id)| Symbol {
        id,
        prev: if i == 0 { NONE } else { i - 1 },
        next: if i + 1 == n { NONE } else { i + 1 },
        alive: true,
    }));
    let rank_of = |syms: &[Symbol], l: usize, r: usize| {
        pairs.get(syms[l].id, syms[r].id).map(|(rank, _)| rank)
    };
    for i in 0..n.saturating_sub(1) {
        if let Some(rank) = rank_of(syms, i, i + 1) {
            heap.push(Reverse((rank, i, i + 1)));
        }
    }
    while let Some(Reverse((rank, l, r))) = heap.pop() {
        // Skip entries made stale by earlier merges.
        if !syms[l].alive || !syms[r].alive || syms[l].next != r {
            continue;
        }
        let Some((cur_rank, merged)) = pairs.get(syms[l].id, syms[r].id) else {
            continue;
        };
        if cur_rank != rank {
            continue;
        }
        syms[l].id = merged;
        syms[r].alive = false;
        let after = syms[r].next;
        syms[l].next = after;
        if after != NONE {
            syms[after].prev = l;
        }
        let before = syms[l].prev;
        if before != NONE {
            if let Some(rank) = rank_of(syms, before, l) {
                heap.push(Reverse((rank, before, l)));
            }
        }
        if after != NONE {
            if let Some(rank) = rank_of(syms, l, after) {
                heap.push(Reverse((rank, l, after)));
            }
        }
    }
    let mut i = 0;
    while i != NONE {
        let s = syms[i];
        if s.id != MISSING {
            out.push(s.id);
        }
        i = s.next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tokens: 0 a, 1 b, 2 c, 3 ab, 4 bc, 5 abc, 6 aa
    fn pairs() -> PairIndex {
        let mut p = PairIndex::with_capacity(8);
        p.insert_first(1, 2, 0, 4); // b c -> bc (rank 0)
        p.insert_first(0, 1, 1, 3); // a b -> ab (rank 1)
        p.insert_first(0, 4, 2, 5); // a bc -> abc (rank 2)
        p.insert_first(0, 0, 3, 6); // a a -> aa (rank 3)
        p
    }

    fn run(initial: &[u32]) -> Vec<u32> {
        let mut out = Vec::new();
        merge(&pairs(), initial, &mut Scratch::default(), &mut out);
        out
    }

    #[test]
    fn lowest_rank_first() {
        assert_eq!(run(&[0, 1, 2]), [5]); // a (b c) -> abc, not (a b) c
        assert_eq!(run(&[0, 1]), [3]);
        assert_eq!(run(&[0, 1, 0, 1]), [3, 3]);
    }

    #[test]
    fn leftmost_among_equal_ranks() {
        assert_eq!(run(&[0, 0, 0]), [6, 0]);
        assert_eq!(run(&[0, 0, 0, 0, 0]), [6, 6, 0]);
    }

    #[test]
    fn missing_bytes_are_dropped() {
        assert_eq!(run(&[MISSING]), Vec::<u32>::new());
        assert_eq!(run(&[0, MISSING, 1]), [0, 1]);
        assert_eq!(run(&[]), Vec::<u32>::new());
    }
}
