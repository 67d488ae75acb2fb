//! A reader of flat JSON objects, the shape of nearly every native line: keys and strings
//! without escapes, integers, `null`, `true`, `false`, and arrays of such strings. On anything
//! else (an escape, a nested object, a number with a fraction or exponent, a syntax error) it
//! declines, and the caller parses the line with serde_json as before.
//!
//! Why: reading a native line through serde_json cost about as much as everything the engine
//! then did with it. This reader finds each string's end with memchr's vectorised search and
//! compares keys once; it accepts only lines serde_json accepts, and reads them to the same
//! values (`decode::native`'s tests hold the two to that).

/// A value of a flat object. Strings borrow from the line: they have no escapes.
pub enum Value<'a> {
    Str(&'a str),
    Int(i64),
    Null,
    Bool,
    Strs(Vec<&'a str>),
}

/// Calls `each` with every key and value of the object `text` holds, in order, and says
/// whether the whole line was such an object. `None` as soon as the line is not flat or
/// `each` declines a value.
pub fn pairs<'a>(text: &'a str, mut each: impl FnMut(&'a str, Value<'a>) -> Option<()>) -> Option<()> {
    // Without a backslash or a control character anywhere in the line (tabs and line ends
    // between tokens included: such lines go to serde), every quote opens or closes a string,
    // and a string ends at the next quote. Checked in one pass the compiler vectorises.
    let bytes = text.as_bytes();
    if bytes.iter().fold(false, |found, &b| found | (b < 0x20) | (b == b'\\')) {
        return None;
    }
    let mut at = Cursor { text, at: 0 };
    at.space();
    at.eat(b'{')?;
    at.space();
    if at.eat(b'}').is_none() {
        loop {
            at.space();
            let key = at.string()?;
            at.space();
            at.eat(b':')?;
            at.space();
            each(key, at.value()?)?;
            at.space();
            match at.next()? {
                b',' => {}
                b'}' => break,
                _ => return None,
            }
        }
    }
    at.space();
    (at.at == text.len()).then_some(())
}

struct Cursor<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
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

    /// JSON's whitespace: space, tab, line feed, carriage return.
    fn space(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    /// A string starting here (the line has no escapes: see `pairs`).
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let len = find_quote(&self.text.as_bytes()[self.at..])?;
        // Quotes are ASCII, so both ends are character boundaries.
        let s = &self.text[self.at..self.at + len];
        self.at += len + 1;
        Some(s)
    }

    fn value(&mut self) -> Option<Value<'a>> {
        match self.peek()? {
            b'"' => self.string().map(Value::Str),
            b'-' | b'0'..=b'9' => self.integer().map(Value::Int),
            b'n' => self.word("null").map(|()| Value::Null),
            b't' => self.word("true").map(|()| Value::Bool),
            b'f' => self.word("false").map(|()| Value::Bool),
            b'[' => {
                self.at += 1;
                self.strings().map(Value::Strs)
            }
            _ => None,
        }
    }

    /// An integer as serde_json reads it into an `i64`: no leading zero, no fraction or
    /// exponent, in range, and not `-0` (which it reads as a float).
    fn integer(&mut self) -> Option<i64> {
        let start = self.at;
        let negative = self.eat(b'-').is_some();
        let digits = self.at;
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
        let digits = &self.text[digits..self.at];
        let leading_zero = digits.len() > 1 && digits.starts_with('0');
        if digits.is_empty() || leading_zero || (negative && digits == "0") {
            return None;
        }
        if let Some(b'.' | b'e' | b'E') = self.peek() {
            return None;
        }
        self.text[start..self.at].parse().ok()
    }

    fn word(&mut self, word: &str) -> Option<()> {
        self.text[self.at..].starts_with(word).then(|| self.at += word.len())
    }

    /// The rest of an array of strings after its `[`.
    fn strings(&mut self) -> Option<Vec<&'a str>> {
        let mut list = Vec::new();
        self.space();
        if self.eat(b']').is_some() {
            return Some(list);
        }
        loop {
            self.space();
            list.push(self.string()?);
            self.space();
            match self.next()? {
                b',' => {}
                b']' => return Some(list),
                _ => return None,
            }
        }
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

/// A field's type as read from a flat value; `None` where serde would refuse the value (the
/// line then goes to serde, which words what is wrong).
pub trait FromFlat<'a>: Sized {
    fn from_flat(value: Value<'a>) -> Option<Self>;
}

impl<'a, T: FromFlat<'a>> FromFlat<'a> for Option<T> {
    fn from_flat(value: Value<'a>) -> Option<Self> {
        match value {
            Value::Null => Some(None),
            value => T::from_flat(value).map(Some),
        }
    }
}

impl<'a, T: FromFlat<'a>> FromFlat<'a> for Vec<T> {
    fn from_flat(value: Value<'a>) -> Option<Self> {
        match value {
            Value::Strs(list) => list.into_iter().map(|s| T::from_flat(Value::Str(s))).collect(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys and values `pairs` reads, as text; `None` where it declines.
    fn read(line: &str) -> Option<Vec<String>> {
        let mut out = Vec::new();
        pairs(line, |key, value| {
            out.push(match value {
                Value::Str(s) => format!("{key}={s:?}"),
                Value::Int(n) => format!("{key}={n}"),
                Value::Null => format!("{key}=null"),
                Value::Bool => format!("{key}=bool"),
                Value::Strs(list) => format!("{key}={list:?}"),
            });
            Some(())
        })?;
        Some(out)
    }

    #[test]
    fn reads_flat_objects_and_declines_the_rest() {
        assert_eq!(
            read(" {\"a\" : \"x y\",\"b\":-12,\"c\":null,\"d\":[ \"p\" , \"q\"],\"e\":true,\"f\":[]} ").unwrap(),
            ["a=\"x y\"", "b=-12", "c=null", "d=[\"p\", \"q\"]", "e=bool", "f=[]"]
        );
        assert_eq!(read("{}").unwrap(), Vec::<String>::new());
        assert_eq!(read("{\"a\":\"é\"}").unwrap(), ["a=\"é\""]);
        for line in [
            r#"{"a":"x\"y"}"#,
            r#"{"a\u0061":1}"#,
            "{\"a\":\"x\ty\"}",
            r#"{"a":{"b":1}}"#,
            r#"{"a":[1]}"#,
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
