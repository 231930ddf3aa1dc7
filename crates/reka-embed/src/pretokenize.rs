//! BERT pre-tokenisation (Hugging Face's `BertPreTokenizer`): split normalised
//! text into words on whitespace, then make every punctuation character a word
//! of its own.

use crate::normalize::is_punctuation;

/// The words of `text`, in order.
pub fn split_words(text: &str) -> Vec<&str> {
    let mut words = Vec::new();
    for chunk in text.split(char::is_whitespace) {
        let mut start = 0;
        for (i, c) in chunk.char_indices() {
            if is_punctuation(c) {
                if start < i {
                    words.push(&chunk[start..i]);
                }
                let end = i + c.len_utf8();
                words.push(&chunk[i..end]);
                start = end;
            }
        }
        if start < chunk.len() {
            words.push(&chunk[start..]);
        }
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_whitespace_and_isolates_punctuation() {
        assert_eq!(
            split_words("Hey friend!     How are you?!?"),
            ["Hey", "friend", "!", "How", "are", "you", "?", "!", "?"]
        );
        assert_eq!(
            split_words("a$b 3.14 don't"),
            ["a", "$", "b", "3", ".", "14", "don", "'", "t"]
        );
        assert!(split_words("   ").is_empty());
        assert!(split_words("").is_empty());
    }
}
