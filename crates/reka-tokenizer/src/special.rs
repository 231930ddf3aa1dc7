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
        fragments(text, self.select(text, |_, always| parse_special || always))
    }

    /// The byte ranges of the tokens that are matched only when special
    /// parsing is on (control and unknown tokens), as [`Self::partition`]
    /// with parsing on would take them if they were the only candidates;
    /// sorted and disjoint.
    pub fn parse_only_spans(&self, text: &str) -> Vec<Range<usize>> {
        self.select(text, |_, always| !always)
            .into_iter()
            .map(|h| h.start..h.start + h.len)
            .collect()
    }

    /// [`Self::partition`] with special parsing on, except that a token
    /// matched only when parsing is on is not taken where it overlaps one of
    /// `literal` (byte ranges, sorted and disjoint): there the text stays text.
    pub fn partition_except(&self, text: &str, literal: &[Range<usize>]) -> Vec<Fragment> {
        let overlaps = |r: Range<usize>| {
            let i = literal.partition_point(|l| l.end <= r.start);
            literal.get(i).is_some_and(|l| l.start < r.end)
        };
        fragments(text, self.select(text, |r, always| always || !overlaps(r)))
    }

    /// The occurrences taken, sorted by start: every occurrence whose
    /// (byte range, always matched) `keep` accepts is a candidate; longest
    /// token first, one token's occurrences left to right, each taken if it
    /// overlaps none taken before.
    fn select(&self, text: &str, keep: impl Fn(Range<usize>, bool) -> bool) -> Vec<Hit> {
        let bytes = text.as_bytes();
        let mut hits = Vec::new();
        for (start, &b) in bytes.iter().enumerate() {
            for (id, tok, always) in &self.buckets[usize::from(b)] {
                if bytes[start..].starts_with(tok.as_bytes()) && keep(start..start + tok.len(), *always) {
                    hits.push(Hit {
                        start,
                        len: tok.len(),
                        id: *id,
                    });
                }
            }
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
        taken
    }
}

/// `text` cut at the `taken` occurrences (sorted by start, disjoint).
fn fragments(text: &str, taken: Vec<Hit>) -> Vec<Fragment> {
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

    #[test]
    fn literal_ranges_keep_parse_only_tokens_as_text() {
        let m = matcher();
        let t = "<|a|>x<u> <|a|>";
        assert_eq!(m.parse_only_spans(t), [0..6, 10..15]);
        // Only the second `<|a|>` lies outside the literal range; `<u>`
        // (always matched) is found inside it too.
        assert_eq!(
            m.partition_except(t, std::slice::from_ref(&(0..6))),
            [Fragment::Text(0..6), Fragment::Token(3), Fragment::Text(9..10), Fragment::Token(1)]
        );
        // A shorter token inside a literal range is not taken either.
        assert_eq!(m.partition_except("<|a|>x", std::slice::from_ref(&(0..6))), [Fragment::Text(0..6)]);
        // A token next to a range (not overlapping it) is taken.
        assert_eq!(m.partition_except("ab<|a|>", std::slice::from_ref(&(0..2))), [Fragment::Text(0..2), Fragment::Token(1)]);
        assert_eq!(m.partition_except(t, &[]), m.partition(t, true));
    }
}
