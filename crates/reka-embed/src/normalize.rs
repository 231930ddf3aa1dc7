//! BERT text normalisation, as Hugging Face tokenizers' `BertNormalizer` does it:
//! drop control characters and map whitespace to a space, put spaces around CJK
//! ideographs, strip accents (NFD, then drop non-spacing marks) and lowercase,
//! in that order. The character classes are the ones that library uses.

use unicode_categories::UnicodeCategories;
use unicode_normalization::UnicodeNormalization;

/// Whitespace for BERT: `\t`, `\n`, `\r` and Unicode White_Space.
pub fn is_whitespace(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || c.is_whitespace()
}

/// Control characters for BERT: categories Cc, Cf and Co, except `\t`, `\n`, `\r`
/// (which count as whitespace).
pub fn is_control(c: char) -> bool {
    !matches!(c, '\t' | '\n' | '\r') && c.is_other()
}

/// A CJK Unified Ideograph (main block, extensions A–E and the compatibility
/// blocks). Hiragana, Katakana and Hangul are not in it.
pub fn is_chinese_char(c: char) -> bool {
    matches!(
        c as u32,
        0x4E00..=0x9FFF
            | 0x3400..=0x4DBF
            | 0x20000..=0x2A6DF
            | 0x2A700..=0x2B73F
            | 0x2B740..=0x2B81F
            | 0x2B920..=0x2CEAF
            | 0xF900..=0xFAFF
            | 0x2F800..=0x2FA1F
    )
}

/// Punctuation for BERT: every ASCII punctuation character (so `$`, `+`, `^`, …
/// too) and the Unicode P* categories.
pub fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation() || c.is_punctuation()
}

/// The normaliser's switches, as `tokenizer.json` gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Normalizer {
    pub clean_text: bool,
    pub handle_chinese_chars: bool,
    pub strip_accents: bool,
    pub lowercase: bool,
}

impl Default for Normalizer {
    /// The uncased BERT defaults (all on).
    fn default() -> Self {
        Normalizer {
            clean_text: true,
            handle_chinese_chars: true,
            strip_accents: true,
            lowercase: true,
        }
    }
}

impl Normalizer {
    /// The normalised text.
    pub fn normalize(&self, text: &str) -> String {
        let mut s = String::with_capacity(text.len() + text.len() / 4);
        for c in text.chars() {
            if self.clean_text {
                if c == '\0' || c == '\u{FFFD}' || is_control(c) {
                    continue;
                }
                if is_whitespace(c) {
                    s.push(' ');
                    continue;
                }
            }
            if self.handle_chinese_chars && is_chinese_char(c) {
                s.push(' ');
                s.push(c);
                s.push(' ');
            } else {
                s.push(c);
            }
        }
        if self.strip_accents {
            s = s.nfd().filter(|c| !c.is_mark_nonspacing()).collect();
        }
        if self.lowercase {
            // Character by character, as the tokenizers library does: a final
            // capital sigma becomes σ, not the word-final ς of `str::to_lowercase`.
            s = s.chars().flat_map(char::to_lowercase).collect();
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        Normalizer::default().normalize(s)
    }

    #[test]
    fn cleans_controls_and_whitespace() {
        assert_eq!(norm("a\tb\nc\r\u{3000}d\u{00A0}e"), "a b c  d e");
        assert_eq!(norm("a\u{0}b\u{FFFD}c\u{200D}d\u{7}e\u{E000}f"), "abcdef");
    }

    #[test]
    fn pads_cjk_ideographs_only() {
        assert_eq!(norm("中文"), " 中  文 ");
        // が loses its voicing mark (Mn); Hangul decomposes into jamo (Lo), kept.
        assert_eq!(
            norm("ひらがなカナ한국"),
            format!("ひらかなカナ{}", "한국".nfd().collect::<String>())
        );
    }

    #[test]
    fn strips_accents_then_lowercases() {
        assert_eq!(norm("Ünïcödé Café"), "unicode cafe");
        assert_eq!(norm("ΟΔΟΣ"), "οδοσ");
        assert_eq!(norm("İstanbul"), "istanbul");
    }

    #[test]
    fn switches_off() {
        let n = Normalizer {
            clean_text: false,
            handle_chinese_chars: false,
            strip_accents: false,
            lowercase: false,
        };
        assert_eq!(n.normalize("Ünï\t中"), "Ünï\t中");
    }

    #[test]
    fn punctuation_classes() {
        for c in ['$', '+', '^', '`', '~', '!', '.', '¿', '«', '—', '。', '、'] {
            assert!(is_punctuation(c), "{c:?}");
        }
        for c in ['a', '€', '©', '1', ' ', '😀'] {
            assert!(!is_punctuation(c), "{c:?}");
        }
    }
}
