//! Text that came from a log, made safe to show: every field of a record is
//! attacker-controlled, so before it reaches a terminal, a log line, a rejects
//! file or a Kafka header its control characters are escaped, and before it
//! reaches an alert its length is bounded. Names met on every record are also compared here
//! (`same`).

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether two texts are equal, compared here a word at a time: for the short names looked up
/// on every record, a call to libc's `memcmp` cost more than the comparison.
pub fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let (mut x, mut y) = (a.chunks_exact(8), b.chunks_exact(8));
    let words = |c: &[u8]| u64::from_ne_bytes(c.try_into().expect("chunks of 8"));
    (&mut x).zip(&mut y).all(|(p, q)| words(p) == words(q))
        && x.remainder().iter().zip(y.remainder()).all(|(p, q)| p == q)
}

/// Lower-case hex of `bytes`, without a `format!` per byte (ids are hashed and
/// written for every finding).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

/// Escapes what a terminal or a line-oriented reader would act on: C0 and C1
/// control characters (ESC, CR, LF, BEL ...), DEL, and the Unicode controls that
/// reorder or hide text (bidirectional overrides and isolates, line and
/// paragraph separators). Each becomes `\u{..}`; a backslash stays as it is, so
/// the output is for reading, not for parsing back. Text without such
/// characters is returned as it is, without copying.
pub fn escape_control(s: &str) -> Cow<'_, str> {
    // Printable ASCII, as nearly every field is, holds none of them: checked over every
    // byte without stopping early, which the compiler vectorises (a byte at a time was a
    // fifth of sanitizing an alert), a fraction of decoding each character.
    let printable_ascii = !s.bytes().fold(false, |other, b| other | !(b' '..=b'~').contains(&b));
    if printable_ascii || !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if needs_escape(c) {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Cuts `s` to at most `max_bytes` bytes on a character boundary, ending it with
/// a marker that says how many bytes were cut (the marker fits in the bound, so
/// the result is never longer than a `max_bytes` of 32 or more). `None` when `s` fits.
pub fn truncate(s: &str, max_bytes: usize) -> Option<String> {
    if s.len() <= max_bytes {
        return None;
    }
    let marker_room = 32.min(max_bytes);
    let mut end = max_bytes - marker_room;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Some(format!("{}…[truncated {} bytes]", &s[..end], s.len() - end))
}

/// Text from a log made fit to print in a bounded place (a reject reason, a Kafka
/// header): control characters escaped first, so the bound holds for what is shown.
pub fn printable(s: &str, max_bytes: usize) -> String {
    let escaped = escape_control(s);
    truncate(&escaped, max_bytes).unwrap_or_else(|| escaped.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn texts_are_the_same_exactly_when_equal(a in "[ab]{0,20}", b in "[ab]{0,20}") {
            proptest::prop_assert_eq!(same(&a, &b), a == b);
        }
    }

    #[test]
    fn hex_is_two_lower_case_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x09, 0xa0, 0xff]), "0009a0ff");
    }

    #[test]
    fn escapes_terminal_controls_and_keeps_plain_text() {
        let cases: &[(&str, &str)] = &[
            ("arn:aws:iam::1:role/ci", "arn:aws:iam::1:role/ci"),
            ("a\x1b[2Jb", "a\\u{1b}[2Jb"),
            ("line\r\nforged: reject", "line\\u{d}\\u{a}forged: reject"),
            ("bell\x07 del\x7f c1\u{9b}", "bell\\u{7} del\\u{7f} c1\\u{9b}"),
            ("evil\u{202e}txt.exe", "evil\\u{202e}txt.exe"),
            ("tab\there", "tab\\u{9}here"),
            ("ünïcode ✓", "ünïcode ✓"),
        ];
        for (raw, want) in cases {
            assert_eq!(escape_control(raw), *want, "{raw:?}");
        }
        assert!(matches!(escape_control("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn truncates_on_a_char_boundary_with_a_marker() {
        assert_eq!(truncate("short", 10), None);
        let long = "é".repeat(100); // 200 bytes
        let cut = truncate(&long, 64).unwrap();
        assert!(cut.len() <= 64, "{cut}");
        assert!(cut.starts_with("éé") && cut.ends_with("bytes]"), "{cut}");
        let kept = cut.split('…').next().unwrap().len();
        assert_eq!(cut, format!("{}…[truncated {} bytes]", "é".repeat(kept / 2), 200 - kept));
    }
}
