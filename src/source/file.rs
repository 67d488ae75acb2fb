//! Reading JSON Lines from files or stdin, gzip detected by its magic bytes,
//! with a cap on line length that never buffers more than the cap.
//!
//! A line that opens a CloudTrail log file object (`{"Records": [`) is read
//! element by element instead: AWS writes one S3 object of thousands of
//! records as one line, often far over the cap, and rejecting it whole would
//! lose every record in it. Each element is capped on its own.

use crate::decode::DecodeError;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};

/// A line, the length of a line that was too long and skipped, or one element
/// of the `Records` array a line holds (its index, and its bytes or why they
/// could not be read).
pub enum Line<'a> {
    Ok(&'a [u8]),
    TooLong(usize),
    Element(u32, Result<&'a [u8], DecodeError>),
}

pub struct LineReader {
    inner: Box<dyn BufRead + Send>,
    buf: Vec<u8>,
    max: usize,
    /// 1-based number of the line last returned.
    pub line_no: u64,
    /// Bytes consumed from the (decompressed) input so far.
    pub bytes: u64,
    split_records: bool,
    /// Where the reader is inside a line that holds a `Records` array.
    records: Option<Records>,
}

#[derive(Debug, Clone, Copy)]
enum Records {
    /// Before element `next`, or the closing `]`.
    Elements { next: u32 },
    /// After the closing `]`: the rest of the line must be the object's `}`.
    Tail { next: u32 },
}

/// What a step of reading found, before it is lent out of `buf`.
enum Ready {
    End,
    Line,
    TooLong(usize),
    Element(u32, Result<(), DecodeError>),
}

/// Opens `path` (`-` for stdin); gzip input is decompressed transparently.
pub fn open(path: &str, max_line_bytes: usize) -> io::Result<LineReader> {
    let raw: Box<dyn Read + Send> = if path == "-" { Box::new(io::stdin()) } else { Box::new(File::open(path)?) };
    let mut reader = BufReader::with_capacity(1 << 16, raw);
    let gz = reader.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    let inner: Box<dyn BufRead + Send> = if gz {
        Box::new(BufReader::with_capacity(1 << 16, flate2::bufread::MultiGzDecoder::new(reader)))
    } else {
        Box::new(reader)
    };
    Ok(LineReader {
        inner,
        buf: Vec::new(),
        max: max_line_bytes,
        line_no: 0,
        bytes: 0,
        split_records: false,
        records: None,
    })
}

impl LineReader {
    /// Reads lines that open a `Records` array element by element (off by default).
    pub fn split_records(&mut self, on: bool) {
        self.split_records = on;
    }

    /// Between the elements of a `Records` line: the line is not read whole yet.
    pub fn inside_records(&self) -> bool {
        self.records.is_some()
    }

    /// The next line (with its 1-based number) without its line ending, or the
    /// next element of a `Records` line (with that line's number); `None` at the end.
    pub fn next_line(&mut self) -> io::Result<Option<(u64, Line<'_>)>> {
        let ready = loop {
            let step = match self.records {
                None => self.line()?,
                Some(Records::Elements { next }) => self.element(next)?,
                Some(Records::Tail { next }) => self.tail(next)?,
            };
            if let Some(ready) = step {
                break ready;
            }
        };
        let line = match ready {
            Ready::End => return Ok(None),
            Ready::Line => Line::Ok(&self.buf),
            Ready::TooLong(len) => Line::TooLong(len),
            Ready::Element(index, body) => Line::Element(index, body.map(|()| &self.buf[..])),
        };
        Ok(Some((self.line_no, line)))
    }

    /// Reads a whole line into `buf` (up to the cap), unless it opens a
    /// `Records` array: then it switches to elements and yields nothing yet.
    fn line(&mut self) -> io::Result<Option<Ready>> {
        self.buf.clear();
        let mut len = 0usize;
        if self.split_records {
            let (opens, used) = self.opens_records()?;
            len = used;
            if opens {
                self.line_no += 1;
                self.bytes += used as u64;
                self.buf.clear();
                self.records = Some(Records::Elements { next: 0 });
                return Ok(None);
            }
        }
        let mut saw_any = len > 0;
        loop {
            let chunk = self.inner.fill_buf()?;
            if chunk.is_empty() {
                break;
            }
            saw_any = true;
            // memchr scans a word at a time; a byte-by-byte search was 8% of a replay's instructions.
            let (take, done) = match memchr::memchr(b'\n', chunk) {
                Some(i) => (i + 1, true),
                None => (chunk.len(), false),
            };
            len += take;
            // Past the cap, keep counting but stop buffering.
            if self.buf.len() + take <= self.max + 2 {
                self.buf.extend_from_slice(&chunk[..take]);
            }
            self.inner.consume(take);
            if done {
                break;
            }
        }
        if !saw_any {
            return Ok(Some(Ready::End));
        }
        self.line_no += 1;
        self.bytes += len as u64;
        let content = len - trailing_newline(&self.buf, len);
        if content > self.max {
            return Ok(Some(Ready::TooLong(content)));
        }
        self.buf.truncate(content);
        Ok(Some(Ready::Line))
    }

    /// Reads the start of a line just far enough to tell whether it opens
    /// `{"Records": [` (JSON whitespace allowed between the tokens). What it
    /// read is consumed and kept in `buf`, as the start of an ordinary line
    /// when it does not; the byte that decided "no" is left unread.
    fn opens_records(&mut self) -> io::Result<(bool, usize)> {
        const OPENING: &[u8] = b"{\"Records\":[";
        // Where JSON allows whitespace: before `{`, after it, before `:` and before `[`.
        const SPACED: [usize; 4] = [0, 1, 10, 11];
        let (mut matched, mut consumed) = (0, 0);
        loop {
            let chunk = self.inner.fill_buf()?;
            if chunk.is_empty() {
                return Ok((false, consumed));
            }
            let mut used = 0;
            let mut verdict = None;
            for &b in chunk {
                if b != b'\n' && is_json_space(b) && SPACED.contains(&matched) {
                    used += 1;
                } else if b == OPENING[matched] {
                    used += 1;
                    matched += 1;
                    if matched == OPENING.len() {
                        verdict = Some(true);
                        break;
                    }
                } else {
                    verdict = Some(false);
                    break;
                }
            }
            if self.buf.len() + used <= self.max + 2 {
                self.buf.extend_from_slice(&chunk[..used]);
            }
            self.inner.consume(used);
            consumed += used;
            if let Some(opens) = verdict {
                return Ok((opens, consumed));
            }
        }
    }

    /// Reads element `index` of a `Records` array into `buf` (up to the cap),
    /// through the `,` or `]` after it. Only the nesting and the strings are
    /// followed; whether the element is valid JSON is for the decoder to say.
    fn element(&mut self, index: u32) -> io::Result<Option<Ready>> {
        self.buf.clear();
        let mut scan = ElementScan::default();
        let end = loop {
            let chunk = self.inner.fill_buf()?;
            if chunk.is_empty() {
                break Ending::LineEnd;
            }
            let was_started = scan.started;
            let mut first_kept = None;
            let mut end = None;
            for (i, &b) in chunk.iter().enumerate() {
                match scan.step(b) {
                    Byte::Skip => {}
                    Byte::Keep => {
                        first_kept.get_or_insert(i);
                    }
                    Byte::End(e) => {
                        end = Some((i, e));
                        break;
                    }
                }
            }
            let stop = end.map_or(chunk.len(), |(i, _)| i);
            let start = if was_started { 0 } else { first_kept.unwrap_or(stop) };
            let kept = &chunk[start..stop];
            scan.len += kept.len();
            if self.buf.len() + kept.len() <= self.max {
                self.buf.extend_from_slice(kept);
            }
            let used = end.map_or(chunk.len(), |(i, _)| i + 1);
            self.inner.consume(used);
            self.bytes += used as u64;
            if let Some((_, e)) = end {
                break e;
            }
        };
        self.records = match end {
            Ending::Comma => Some(Records::Elements { next: index.saturating_add(1) }),
            Ending::Close => Some(Records::Tail { next: index.saturating_add(1) }),
            Ending::LineEnd => None,
        };
        let broken = |why: &str| Some(Ready::Element(index, Err(DecodeError::InvalidJson(why.into()))));
        Ok(match end {
            Ending::LineEnd => broken("the line ends before the `Records` array is closed"),
            Ending::Close if !scan.started && index == 0 => None,
            _ if !scan.started => broken("empty element in the `Records` array"),
            _ if scan.len > self.max => {
                Some(Ready::Element(index, Err(DecodeError::ElementTooLong { len: scan.len, max: self.max })))
            }
            _ => Some(Ready::Element(index, Ok(()))),
        })
    }

    /// Reads the rest of a `Records` line after its `]`: whitespace, the
    /// object's `}`, whitespace. Anything else is reported once, after element `next - 1`.
    fn tail(&mut self, next: u32) -> io::Result<Option<Ready>> {
        let (mut closed, mut clean) = (false, true);
        loop {
            let chunk = self.inner.fill_buf()?;
            if chunk.is_empty() {
                break;
            }
            let newline = chunk.iter().position(|&b| b == b'\n');
            let line_part = &chunk[..newline.unwrap_or(chunk.len())];
            for &b in line_part {
                match b {
                    b'}' if !closed => closed = true,
                    b if is_json_space(b) => {}
                    _ => clean = false,
                }
            }
            let used = newline.map_or(chunk.len(), |i| i + 1);
            self.inner.consume(used);
            self.bytes += used as u64;
            if newline.is_some() {
                break;
            }
        }
        self.records = None;
        let fine = closed && clean;
        Ok((!fine).then(|| {
            Ready::Element(next, Err(DecodeError::InvalidJson("expected only `}` after the `Records` array".into())))
        }))
    }
}

fn is_json_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// How an element of a `Records` array ended.
#[derive(Debug, Clone, Copy)]
enum Ending {
    Comma,
    Close,
    /// A newline or the end of the input: the array was never closed.
    LineEnd,
}

enum Byte {
    /// Whitespace before the element.
    Skip,
    Keep,
    End(Ending),
}

/// Follows one array element byte by byte: strings (with escapes) and the
/// depth of nesting, so that a `,` or `]` inside the element is not its end.
#[derive(Default)]
struct ElementScan {
    started: bool,
    in_string: bool,
    escaped: bool,
    depth: u64,
    /// Bytes of the element seen so far, kept or not.
    len: usize,
}

impl ElementScan {
    fn step(&mut self, b: u8) -> Byte {
        // A raw newline ends the line wherever it is: JSON strings cannot hold one.
        if b == b'\n' {
            return Byte::End(Ending::LineEnd);
        }
        if self.in_string {
            if self.escaped {
                self.escaped = false;
            } else if b == b'\\' {
                self.escaped = true;
            } else if b == b'"' {
                self.in_string = false;
            }
            return Byte::Keep;
        }
        match b {
            b if !self.started && is_json_space(b) => Byte::Skip,
            b',' if self.depth == 0 => Byte::End(Ending::Comma),
            b']' if self.depth == 0 => Byte::End(Ending::Close),
            _ => {
                self.started = true;
                match b {
                    b'"' => self.in_string = true,
                    b'{' | b'[' => self.depth += 1,
                    b'}' | b']' => self.depth = self.depth.saturating_sub(1),
                    _ => {}
                }
                Byte::Keep
            }
        }
    }
}

/// Length of the line ending (`\n` or `\r\n`) at the end of a complete buffer.
fn trailing_newline(buf: &[u8], len: usize) -> usize {
    if buf.len() != len {
        return 1; // an over-long line: only its length matters
    }
    match buf {
        [.., b'\r', b'\n'] => 2,
        [.., b'\n'] => 1,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Every item the reader yields, as `line: text`, `line: too long (N)`
    /// or `line[element]: text or reason`.
    fn read(content: &[u8], max: usize, gzip: bool, split: bool) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in");
        let mut f = File::create(&path).unwrap();
        if gzip {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(content).unwrap();
            f.write_all(&gz.finish().unwrap()).unwrap();
        } else {
            f.write_all(content).unwrap();
        }
        let mut r = open(path.to_str().unwrap(), max).unwrap();
        r.split_records(split);
        let text = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
        let mut out = Vec::new();
        while let Some((n, line)) = r.next_line().unwrap() {
            out.push(match line {
                Line::Ok(b) => format!("{n}: {}", text(b)),
                Line::TooLong(len) => format!("{n}: too long ({len})"),
                Line::Element(i, Ok(b)) => format!("{n}[{i}]: {}", text(b)),
                Line::Element(i, Err(e)) => format!("{n}[{i}]: {e}"),
            });
        }
        out
    }

    #[test]
    fn splits_lines_and_caps_length() {
        let got = read(b"a\r\nbb\n\ncccccc\ndd", 4, false, true);
        assert_eq!(got, ["1: a", "2: bb", "3: ", "4: too long (6)", "5: dd"]);
    }

    #[test]
    fn reads_gzip_transparently() {
        assert_eq!(read(b"x\ny\n", 10, true, false), ["1: x", "2: y"]);
    }

    #[test]
    fn a_records_line_is_read_element_by_element_each_under_the_cap() {
        let cases: &[(&str, &[&str])] = &[
            (
                "{\"Records\":[{\"a\":1},{\"b\":\"],}\"}]}\nnext",
                &["1[0]: {\"a\":1}", "1[1]: {\"b\":\"],}\"}", "2: next"],
            ),
            ("  {  \"Records\" :\t[ 1 , [2, {\"c\": [3]}] ]  }  \r\n", &["1[0]: 1 ", "1[1]: [2, {\"c\": [3]}] "]),
            (r#"{"Records":["a\"],b", "c\\"]}"#, &[r#"1[0]: "a\"],b""#, r#"1[1]: "c\\""#]),
            ("{\"Records\":[]}\n{\"Records\": [ ] }\nx", &["3: x"]),
            (
                "{\"Records\":[\"this element is long\",2]}",
                &["1[0]: element is 22 bytes, over the limit of 16", "1[1]: 2"],
            ),
            (
                "{\"Records\":[1,,2,]}",
                &[
                    "1[0]: 1",
                    "1[1]: not valid JSON: empty element in the `Records` array",
                    "1[2]: 2",
                    "1[3]: not valid JSON: empty element in the `Records` array",
                ],
            ),
            (
                "{\"Records\":[1]}, \"x\": 2}\nok",
                &["1[0]: 1", "1[1]: not valid JSON: expected only `}` after the `Records` array", "2: ok"],
            ),
            (
                "{\"Records\":[1, {\"a\": \"cut\n{\"Records\":[2",
                &[
                    "1[0]: 1",
                    "1[1]: not valid JSON: the line ends before the `Records` array is closed",
                    "2[0]: not valid JSON: the line ends before the `Records` array is closed",
                ],
            ),
            // Only a `Records` array as the first key is split; anything else is one line.
            (
                "{\"Recordsx\":[1]}\n{\"Records\":{}}\n[{\"Records\":1}]",
                &["1: {\"Recordsx\":[1]}", "2: {\"Records\":{}}", "3: [{\"Records\":1}]"],
            ),
        ];
        for (input, expected) in cases {
            for gzip in [false, true] {
                assert_eq!(read(input.as_bytes(), 16, gzip, true), *expected, "{input:?}");
            }
        }
        assert_eq!(read(b"{\"Records\":[1]}", 100, false, false), ["1: {\"Records\":[1]}"], "off unless asked for");
    }

    #[test]
    fn elements_are_split_across_buffer_boundaries() {
        let element = format!("{{\"k\":\"{}\"}}", "v".repeat(100_000));
        let line = format!("{{\"Records\":[{}]}}\n", [element.as_str(); 5].join(","));
        let got = read(line.as_bytes(), 200_000, false, true);
        assert_eq!(got.len(), 5);
        assert!(got.iter().enumerate().all(|(i, g)| *g == format!("1[{i}]: {element}")));
    }
}
