//! Finding special tokens in text before pre-tokenisation, the way llama.cpp
//! does it: candidate tokens are taken longest first, and each one splits the
//! stretches of plain text that are still left at its leftmost
//! non-overlapping occurrences.

use std::ops::Range;

/// A piece of input: plain text (a byte range) or one special token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fragment {
    /// Plain text still to be tokenised.
    Text(Range<usize>),
    /// A special token matched in the text.
    Token(u32),
}

/// Special tokens that may be matched in text, grouped by first byte.
#[derive(Debug, Clone, Default)]
pub struct SpecialMatcher {
    /// For each first byte: (token id, token text, always matched) entries.
    buckets: Vec<Vec<(u32, Box<str>, bool)>>,
}

/// One occurrence found in the text.
#[derive(Debug, Clone, Copy)]
struct Hit {
    start: usize,
    len: usize,
    id: u32,
}

impl SpecialMatcher {
    /// Builds the matcher from (id, text, always) triples; `always` tokens
    /// are matched even when special-token parsing is off. Empty texts are ignored.
    pub fn new<'a>(tokens: impl Iterator<Item = (u32, &'a str, bool)>) -> Self {
        let mut buckets: Vec<Vec<(u32, Box<str>, bool)>> = vec![Vec::new(); 256];
        for (id, text, always) in tokens {
            if let Some(&b) = text.as_bytes().first() {
                buckets[usize::from(b)].push((id, text.into(), always));
            }
        }
        Self { buckets }
    }

    /// Splits `text` into plain-text stretches and special tokens.
    pub fn partition(&self, text: &str, parse_special: bool) -> Vec<Fragment> {
        let bytes = text.as_bytes();
        let mut hits = Vec::new();
        for (start, &b) in bytes.iter().enumerate() {
            for (id, tok, always) in &self.buckets[usize::from(b)] {
                if (parse_special || *always) && bytes[start..].starts_with(tok.as_bytes()) {
                    hits.push(Hit {
                        start,
                        len: tok.len(),
                        id: *id,
                    });
                }
            }
        }
        if hits.is_empty() {
            return if text.is_empty() {
                Vec::new()
            } else {
                vec![Fragment::Text(0..text.len())]
            };
        }
        // Longest token first; one token's occurrences left to right.
        hits.sort_by_key(|h| (std::cmp::Reverse(h.len), h.id, h.start));
        let mut taken: Vec<Hit> = Vec::new(); // kept sorted by start
        for h in hits {
            let at = taken.partition_point(|t| t.start < h.start);
            let clear_before = at == 0 || taken[at - 1].start + taken[at - 1].len <= h.start;
            let clear_after = at == taken.len() || h.start + h.len <= taken[at].start;
            if clear_before && clear_after {
                taken.insert(at, h);
            }
        }
        let mut out = Vec::with_capacity(taken.len() * 2 + 1);
        let mut pos = 0;
        for t in taken {
            if t.start > pos {
                out.push(Fragment::Text(pos..t.start));
            }
            out.push(Fragment::Token(t.id));
            pos = t.start + t.len;
        }
        if pos < text.len() {
            out.push(Fragment::Text(pos..text.len()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher() -> SpecialMatcher {
        let toks = [
            (1, "<|a|>", false),
            (2, "<|a|>x", false),
            (3, "<u>", true),
            (4, "|>x", false),
        ];
        SpecialMatcher::new(toks.into_iter())
    }

    #[test]
    fn longest_first_and_plain_text() {
        let m = matcher();
        let t = "hi<|a|>x<|a|> <u>";
        assert_eq!(
            m.partition(t, true),
            [
                Fragment::Text(0..2),
                Fragment::Token(2),
                Fragment::Token(1),
                Fragment::Text(13..14),
                Fragment::Token(3)
            ]
        );
        // Without special parsing only the always-matched token is found.
        assert_eq!(
            m.partition(t, false),
            [Fragment::Text(0..14), Fragment::Token(3)]
        );
        assert_eq!(m.partition("", true), Vec::<Fragment>::new());
    }

    #[test]
    fn longer_token_wins_even_if_further_right() {
        // An incomplete token is plain text; tokens that do not overlap are
        // all found whatever their order.
        let m = matcher();
        assert_eq!(m.partition("<|a|", true), [Fragment::Text(0..4)]);
        assert_eq!(
            m.partition("|>x<|a|>", true),
            [Fragment::Token(4), Fragment::Token(1)]
        );
    }
}
