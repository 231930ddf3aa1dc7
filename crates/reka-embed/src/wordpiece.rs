//! WordPiece: each word becomes the greedy longest-match sequence of vocabulary
//! pieces, the pieces after the first carrying the `##` prefix; a word with a
//! part that matches nothing, or longer than the character limit, is `[UNK]`.

use std::collections::HashMap;

/// A WordPiece vocabulary and its settings.
#[derive(Debug, Clone)]
pub struct WordPiece {
    vocab: HashMap<String, u32>,
    unk: u32,
    prefix: String,
    max_chars: usize,
}

impl WordPiece {
    /// `unk` is the id of the unknown token; `prefix` marks continuing pieces
    /// (`##`); words of more than `max_chars` characters are unknown (100 in BERT).
    pub fn new(vocab: HashMap<String, u32>, unk: u32, prefix: &str, max_chars: usize) -> WordPiece {
        WordPiece {
            vocab,
            unk,
            prefix: prefix.to_owned(),
            max_chars,
        }
    }

    /// The id of a vocabulary entry.
    pub fn id(&self, token: &str) -> Option<u32> {
        self.vocab.get(token).copied()
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.vocab.len()
    }

    /// Whether the vocabulary is empty.
    pub fn is_empty(&self) -> bool {
        self.vocab.is_empty()
    }

    /// Appends the pieces of one word (no whitespace in it) to `out`.
    pub fn tokenize_word(&self, word: &str, out: &mut Vec<u32>) {
        if word.chars().count() > self.max_chars {
            out.push(self.unk);
            return;
        }
        let first = out.len();
        let mut piece = String::with_capacity(self.prefix.len() + word.len());
        let mut start = 0;
        while start < word.len() {
            let mut end = word.len();
            let mut found = None;
            while start < end {
                piece.clear();
                if start > 0 {
                    piece.push_str(&self.prefix);
                }
                piece.push_str(&word[start..end]);
                if let Some(&id) = self.vocab.get(&piece) {
                    found = Some(id);
                    break;
                }
                // Shorten by one character (`end` stays on a char boundary).
                end = word[..end]
                    .char_indices()
                    .next_back()
                    .map_or(start, |(i, _)| i);
            }
            match found {
                Some(id) => {
                    out.push(id);
                    start = end;
                }
                None => {
                    out.truncate(first);
                    out.push(self.unk);
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wp() -> WordPiece {
        let words = [
            "[UNK]", "un", "##aff", "##able", "a", "##b", "runn", "##ing", "é",
        ];
        let vocab = words
            .iter()
            .enumerate()
            .map(|(i, w)| (w.to_string(), i as u32))
            .collect();
        WordPiece::new(vocab, 0, "##", 10)
    }

    fn tok(s: &str) -> Vec<u32> {
        let mut out = Vec::new();
        wp().tokenize_word(s, &mut out);
        out
    }

    #[test]
    fn greedy_longest_match() {
        assert_eq!(tok("unaffable"), [1, 2, 3]);
        assert_eq!(tok("running"), [6, 7]);
        assert_eq!(tok("abbb"), [4, 5, 5, 5]);
        assert_eq!(tok("é"), [8]);
    }

    #[test]
    fn unmatched_part_makes_the_whole_word_unknown() {
        assert_eq!(tok("unaffablex"), [0]);
        assert_eq!(tok("xa"), [0]);
        let mut out = vec![42];
        wp().tokenize_word("aé", &mut out);
        assert_eq!(out, [42, 0]);
    }

    #[test]
    fn long_words_are_unknown() {
        assert_eq!(tok("abbbbbbbbb"), [4, 5, 5, 5, 5, 5, 5, 5, 5, 5]);
        assert_eq!(tok("abbbbbbbbbb"), [0]);
    }
}
