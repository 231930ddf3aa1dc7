//! GPT-2 byte-level mapping: every byte value is shown as a printable Unicode
//! character so that vocabularies can store arbitrary bytes as text.
//!
//! Bytes `33..=126`, `161..=172` and `174..=255` stand for themselves; the
//! remaining 68 byte values are assigned the code points `256, 257, ...` in
//! increasing byte order.

/// Whether byte `b` is shown as the character with the same code point.
const fn is_direct(b: u8) -> bool {
    matches!(b, 33..=126 | 161..=172 | 174..=255)
}

/// Table byte -> code point of the character that represents it.
const BYTE_TO_CHAR: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut next = 256u32;
    let mut b = 0usize;
    while b < 256 {
        if is_direct(b as u8) {
            table[b] = b as u32;
        } else {
            table[b] = next;
            next += 1;
        }
        b += 1;
    }
    table
};

/// The character that represents byte `b`.
pub fn byte_to_char(b: u8) -> char {
    // Every table entry is below 324, hence a valid scalar value.
    char::from_u32(BYTE_TO_CHAR[usize::from(b)]).unwrap_or('\u{FFFD}')
}

/// The byte that character `c` represents, if `c` is part of the mapping.
pub fn char_to_byte(c: char) -> Option<u8> {
    let cp = u32::from(c);
    if cp < 256 {
        let b = cp as u8;
        return is_direct(b).then_some(b);
    }
    // Indirect bytes map to 256 + n, in increasing byte order.
    let n = usize::try_from(cp.checked_sub(256)?).ok()?;
    INDIRECT_BYTES.get(n).copied()
}

/// Number of bytes that are not shown as themselves.
const N_INDIRECT: usize = 68;

/// The bytes not shown as themselves, in increasing order (the n-th one is
/// shown as code point `256 + n`).
const INDIRECT_BYTES: [u8; N_INDIRECT] = {
    let mut table = [0u8; N_INDIRECT];
    let mut n = 0usize;
    let mut b = 0usize;
    while b < 256 {
        if !is_direct(b as u8) {
            table[n] = b as u8;
            n += 1;
        }
        b += 1;
    }
    table
};

/// Appends the bytes that the byte-level text `text` stands for. Characters
/// outside the mapping (which a well-formed vocabulary never holds) are kept
/// as their own UTF-8 encoding.
pub fn decode_mapped(text: &str, out: &mut Vec<u8>) {
    for c in text.chars() {
        match char_to_byte(c) {
            Some(b) => out.push(b),
            None => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
}

/// Appends the byte-level text for raw `bytes`.
pub fn encode_mapped(bytes: &[u8], out: &mut String) {
    for &b in bytes {
        out.push(byte_to_char(b));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_is_a_bijection() {
        let mut seen = std::collections::HashSet::new();
        for b in 0..=255u8 {
            let c = byte_to_char(b);
            assert!(seen.insert(c));
            assert_eq!(char_to_byte(c), Some(b));
        }
        assert_eq!(byte_to_char(b' '), 'Ġ');
        assert_eq!(byte_to_char(b'\n'), 'Ċ');
        assert_eq!(byte_to_char(b'A'), 'A');
        assert_eq!(byte_to_char(0), '\u{100}');
        assert_eq!(byte_to_char(173), '\u{143}');
        assert_eq!(char_to_byte('\u{144}'), None);
        assert_eq!(char_to_byte('\u{AD}'), None);
    }
}
