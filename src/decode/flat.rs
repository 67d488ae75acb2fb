//! A reader of JSON objects without escapes, the shape of nearly every native line and of
//! most CloudTrail records: keys and strings without escapes, integers, `null`, `true`,
//! `false`, and objects and arrays of these. On anything else (an escape or a control
//! character anywhere, tabs and line ends between tokens included; a number with a fraction
//! or exponent; nesting deeper than [`MAX_DEPTH`]; a syntax error) it declines, and the caller
//! parses the line with serde_json as before.
//!
//! Why: reading a line through serde_json cost about as much as everything the engine then did
//! with it. This reader checks the whole line for escapes once, then finds each string's end
//! eight bytes at a time; each field reads its own value as the reader comes to it, and a value
//! no field reads is checked as it is passed. It accepts only lines serde_json accepts, and
//! reads them to the same values (the decoders' tests and the shared decode invariants hold
//! the two to that).

/// Deepest nesting read (serde_json refuses past 128).
const MAX_DEPTH: usize = 64;

/// Reads a line holding one object into a `T`; `None` where the line is not of this shape or
/// a value is not what its field takes.
pub fn line<'a, T: FromFlat<'a>>(line: &'a str) -> Option<T> {
    // Without a backslash or a control character anywhere in the line, every quote opens or
    // closes a string, and a string ends at the next quote. Checked in one pass the compiler
    // vectorises.
    let bytes = line.as_bytes();
    if bytes.iter().fold(false, |found, &b| found | (b < 0x20) | (b == b'\\')) {
        return None;
    }
    let mut at = Reader { text: line, at: 0, depth: 0 };
    at.space();
    if at.peek()? != b'{' {
        return None;
    }
    let read = T::from_flat(&mut at)?;
    at.space();
    (at.at == line.len()).then_some(read)
}

/// A place in a line the flat reader reads from, one value after another: each field reads
/// its own value as it comes, so a line is passed once.
pub struct Reader<'a> {
    text: &'a str,
    at: usize,
    /// Objects and arrays the reader is in.
    depth: usize,
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        (self.peek() == Some(b)).then(|| self.at += 1)
    }

    /// Spaces: JSON's other whitespace (tab, line feed, carriage return) is a control
    /// character, and a line holding one is not read here (see [`line`]).
    fn space(&mut self) {
        while self.peek() == Some(b' ') {
            self.at += 1;
        }
    }

    /// Reads `null` if that is the value here (most optional values are given, so their first
    /// byte rules it out).
    pub fn null(&mut self) -> bool {
        self.peek() == Some(b'n') && self.word("null").is_some()
    }

    /// A string (the line has no escapes: see [`line`]).
    pub fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let len = find_quote(&self.text.as_bytes()[self.at..])?;
        // Quotes are ASCII, so both ends are character boundaries.
        let s = &self.text[self.at..self.at + len];
        self.at += len + 1;
        Some(s)
    }

    /// An integer as serde_json reads it into an `i64`: no leading zero, no fraction or
    /// exponent, in range, and not `-0` (which it reads as a float). Read eight digits at a
    /// time (`digits`): an event's times are 13 digits, and a digit at a time was a fifth
    /// of reading a line's values.
    pub fn integer(&mut self) -> Option<i64> {
        let negative = self.eat(b'-').is_some();
        let (digits, magnitude) = digits(&self.text.as_bytes()[self.at..]);
        let leading_zero = digits > 1 && self.text.as_bytes()[self.at] == b'0';
        // Past 19 digits a number is out of an `i64`'s range (and `magnitude` wrapped).
        if digits == 0 || digits > 19 || leading_zero || (negative && magnitude == 0) {
            return None;
        }
        self.at += digits;
        if let Some(b'.' | b'e' | b'E') = self.peek() {
            return None;
        }
        match negative {
            true => 0i64.checked_sub_unsigned(magnitude),
            false => i64::try_from(magnitude).ok(),
        }
    }

    /// Whether a string starts here (the other values start with another byte).
    pub fn at_string(&self) -> bool {
        self.peek() == Some(b'"')
    }

    /// An object, each member's value read by `each` from the reader.
    pub fn object(&mut self, mut each: impl FnMut(&'a str, &mut Self) -> Option<()>) -> Option<()> {
        self.nested(b'{', b'}', |at| {
            let key = at.string()?;
            at.space();
            at.eat(b':')?;
            at.space();
            each(key, at)
        })
    }

    /// An array, each element read by `each` from the reader.
    pub fn array(&mut self, each: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.nested(b'[', b']', each)
    }

    /// Items between `open` and `close`, separated by commas, each read by `item`.
    fn nested(&mut self, open: u8, close: u8, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        if self.depth == MAX_DEPTH {
            return None;
        }
        self.eat(open)?;
        self.depth += 1;
        self.space();
        if self.eat(close).is_none() {
            loop {
                self.space();
                item(self)?;
                self.space();
                match self.next()? {
                    b',' => {}
                    b if b == close => break,
                    _ => return None,
                }
            }
        }
        self.depth -= 1;
        Some(())
    }

    /// Passes the value here, checking it as serde_json would parse it.
    pub fn skip(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'-' | b'0'..=b'9' => self.integer().map(drop),
            b'n' => self.word("null"),
            b't' => self.word("true"),
            b'f' => self.word("false"),
            b'{' => self.object(|_, at| at.skip()),
            b'[' => self.array(Self::skip),
            _ => None,
        }
    }

    fn word(&mut self, word: &str) -> Option<()> {
        self.text[self.at..].starts_with(word).then(|| self.at += word.len())
    }
}

/// Where the first quote in `bytes` is, eight bytes at a time: most strings are short, and
/// memchr's set-up per call cost more than its vectors saved (a byte at a time cost more
/// still). A byte of `x` is zero where the quote is; `(x - 0x01..) & !x & 0x80..` flags
/// the lowest zero byte exactly (a flag above it may be false, and is not looked at).
fn find_quote(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut chunks = bytes.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let x = u64::from_le_bytes(chunk.try_into().expect("eight bytes")) ^ (ONES * u64::from(b'"'));
        let found = x.wrapping_sub(ONES) & !x & HIGH;
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    chunks.remainder().iter().position(|&b| b == b'"').map(|p| at + p)
}

/// How many ASCII digits `bytes` starts with, and their value (wrapped past `u64`), eight at
/// a time while eight are digits. Eight bytes are all digits when each byte's high half is 3
/// and stays 3 with 6 added (`0x3A`..`0x3F` carry into it); their value then comes in three
/// multiplies, pairing digits, then pairs, then fours (first byte most significant).
fn digits(bytes: &[u8]) -> (usize, u64) {
    const HIGH: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    let (mut n, mut value) = (0, 0u64);
    while let Some(chunk) = bytes.get(n..n + 8) {
        let x = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        if (x & HIGH) | ((x.wrapping_add(0x0606_0606_0606_0606) & HIGH) >> 4) != 0x3333_3333_3333_3333 {
            break;
        }
        let pairs = ((x & 0x0F0F_0F0F_0F0F_0F0F).wrapping_mul(10 << 8 | 1)) >> 8;
        let fours = ((pairs & 0x00FF_00FF_00FF_00FF).wrapping_mul(100 << 16 | 1)) >> 16;
        let eight = ((fours & 0x0000_FFFF_0000_FFFF).wrapping_mul(10_000 << 32 | 1)) >> 32;
        value = value.wrapping_mul(100_000_000).wrapping_add(eight);
        n += 8;
    }
    while let Some(&digit @ b'0'..=b'9') = bytes.get(n) {
        value = value.wrapping_mul(10).wrapping_add(u64::from(digit - b'0'));
        n += 1;
    }
    (n, value)
}

/// A field's type as read from the flat reader; `None` where serde would refuse the value
/// (the line then goes to serde, which words what is wrong).
pub trait FromFlat<'a>: Sized {
    fn from_flat(at: &mut Reader<'a>) -> Option<Self>;
}

impl<'a, T: FromFlat<'a>> FromFlat<'a> for Option<T> {
    fn from_flat(at: &mut Reader<'a>) -> Option<Self> {
        match at.null() {
            true => Some(None),
            false => T::from_flat(at).map(Some),
        }
    }
}

impl<'a, T: FromFlat<'a>> FromFlat<'a> for Vec<T> {
    fn from_flat(at: &mut Reader<'a>) -> Option<Self> {
        let mut list = Vec::new();
        at.array(|at| {
            list.push(T::from_flat(at)?);
            Some(())
        })?;
        Some(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Any value, read back as text (nested ones inside brackets).
    struct Shown(String);

    impl<'a> FromFlat<'a> for Shown {
        fn from_flat(at: &mut Reader<'a>) -> Option<Self> {
            let mut parts = Vec::new();
            Some(Shown(match at.peek()? {
                b'"' => format!("{:?}", at.string()?),
                b'{' => {
                    at.object(|key, at| {
                        parts.push(format!("{key}={}", Shown::from_flat(at)?.0));
                        Some(())
                    })?;
                    format!("{{{}}}", parts.join(","))
                }
                b'[' => {
                    at.array(|at| {
                        parts.push(Shown::from_flat(at)?.0);
                        Some(())
                    })?;
                    format!("[{}]", parts.join(","))
                }
                b't' | b'f' => {
                    at.skip()?;
                    "bool".to_string()
                }
                _ if at.null() => "null".to_string(),
                _ => at.integer()?.to_string(),
            }))
        }
    }

    /// The members a line's object holds, as text; `None` where the reader declines.
    fn read(text: &str) -> Option<Vec<String>> {
        let Shown(object) = line(text)?;
        let inner = &object[1..object.len() - 1];
        // Top-level members only: split at the commas outside brackets and strings.
        let (mut parts, mut depth, mut quoted, mut start) = (Vec::new(), 0, false, 0);
        for (i, c) in inner.char_indices() {
            match c {
                '"' => quoted = !quoted,
                '{' | '[' if !quoted => depth += 1,
                '}' | ']' if !quoted => depth -= 1,
                ',' if !quoted && depth == 0 => {
                    parts.push(inner[start..i].to_string());
                    start = i + 1;
                }
                _ => {}
            }
        }
        if !inner.is_empty() {
            parts.push(inner[start..].to_string());
        }
        Some(parts)
    }

    /// Integers as serde_json reads them into an `i64`: to its bounds, and not past them.
    #[test]
    fn reads_integers_to_the_bounds_of_an_i64() {
        let read = |text: &str| {
            let mut at = Reader { text, at: 0, depth: 0 };
            at.integer().filter(|_| at.at == text.len())
        };
        for n in [0, 7, -7, 1_772_409_617_000, i64::MAX, i64::MIN, i64::MAX / 10, i64::MIN / 10] {
            assert_eq!(read(&n.to_string()), Some(n), "{n}");
        }
        for text in ["9223372036854775808", "-9223372036854775809", "9999999999999999999", "10000000000000000000"] {
            assert_eq!(read(text), None, "{text} is out of range");
            assert!(serde_json::from_str::<i64>(text).is_err(), "{text}");
        }
        for text in ["", "-", "-0", "01", "-01", "1.5", "1e3", "2E1", "x"] {
            assert_eq!(read(text), None, "{text:?}");
        }
    }

    #[test]
    fn reads_objects_without_escapes_and_declines_the_rest() {
        assert_eq!(
            read(" {\"a\" : \"x y\",\"b\":-12,\"c\":null,\"d\":[ \"p\" , \"q\"],\"e\":true,\"f\":[]} ").unwrap(),
            ["a=\"x y\"", "b=-12", "c=null", "d=[\"p\",\"q\"]", "e=bool", "f=[]"]
        );
        assert_eq!(
            read(r#"{"a":{"b":[1,{"c":"d"},[]],"e":{}},"f":[{"g":null}]}"#).unwrap(),
            ["a={b=[1,{c=\"d\"},[]],e={}}", "f=[{g=null}]"]
        );
        assert_eq!(read("{}").unwrap(), Vec::<String>::new());
        assert_eq!(read("{\"a\":\"é\"}").unwrap(), ["a=\"é\""]);
        let deep = |n: usize| format!("{{\"a\":{}1{}}}", "[".repeat(n), "]".repeat(n));
        assert!(read(&deep(MAX_DEPTH - 1)).is_some());
        assert!(read(&deep(MAX_DEPTH)).is_none(), "nesting past the bound goes to serde");
        for line in [
            r#"{"a":"x\"y"}"#,
            r#"{"a\u0061":1}"#,
            "{\"a\":\"x\ty\"}",
            r#"{"a":{"b":1.5}}"#,
            r#"{"a":[1,]}"#,
            r#"{"a":[1 2]}"#,
            r#"{"a":{"b"}}"#,
            r#"{"a":{"b":1,}}"#,
            r#"{"a":{1:2}}"#,
            r#"{"a":[}"#,
            r#"{"a":1.5}"#,
            r#"{"a":1e3}"#,
            r#"{"a":01}"#,
            r#"{"a":-0}"#,
            r#"{"a":-}"#,
            r#"{"a":99999999999999999999}"#,
            r#"{"a":nul}"#,
            r#"{"a":nullx}"#,
            r#"{"a":1,}"#,
            r#"{"a":1} x"#,
            r#"{"a" 1}"#,
            r#"["a"]"#,
            r#"{"a":"x""#,
            r#"{"a":["x",]}"#,
            "\u{feff}{}",
            // Valid JSON, but tabs and line ends between tokens go to serde too.
            "{\"a\":\t1}",
            "{\"a\":1}\r\n",
            "",
        ] {
            assert!(read(line).is_none(), "{line}");
        }
    }
}
