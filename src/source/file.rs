//! Reading JSON Lines from files or stdin, gzip detected by its magic bytes,
//! with a cap on line length that never buffers more than the cap.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};

/// A line, or the length of a line that was too long and skipped.
pub enum Line<'a> {
    Ok(&'a [u8]),
    TooLong(usize),
}

pub struct LineReader {
    inner: Box<dyn BufRead + Send>,
    buf: Vec<u8>,
    max: usize,
    /// 1-based number of the line last returned.
    pub line_no: u64,
    /// Bytes consumed from the (decompressed) input so far.
    pub bytes: u64,
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
    Ok(LineReader { inner, buf: Vec::new(), max: max_line_bytes, line_no: 0, bytes: 0 })
}

impl LineReader {
    /// The next line (with its 1-based number) without its line ending, or
    /// `None` at the end.
    pub fn next_line(&mut self) -> io::Result<Option<(u64, Line<'_>)>> {
        self.buf.clear();
        let mut len = 0usize;
        let mut saw_any = false;
        loop {
            let chunk = self.inner.fill_buf()?;
            if chunk.is_empty() {
                break;
            }
            saw_any = true;
            let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
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
            return Ok(None);
        }
        self.line_no += 1;
        self.bytes += len as u64;
        let content = len - trailing_newline(&self.buf, len);
        if content > self.max {
            return Ok(Some((self.line_no, Line::TooLong(content))));
        }
        self.buf.truncate(content);
        Ok(Some((self.line_no, Line::Ok(&self.buf))))
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

    fn lines(content: &[u8], max: usize, gzip: bool) -> Vec<Result<String, usize>> {
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
        let mut out = Vec::new();
        while let Some((_, line)) = r.next_line().unwrap() {
            out.push(match line {
                Line::Ok(b) => Ok(String::from_utf8(b.to_vec()).unwrap()),
                Line::TooLong(n) => Err(n),
            });
        }
        out
    }

    #[test]
    fn splits_lines_and_caps_length() {
        let got = lines(b"a\r\nbb\n\ncccccc\ndd", 4, false);
        assert_eq!(got, vec![Ok("a".into()), Ok("bb".into()), Ok("".into()), Err(6), Ok("dd".into())]);
    }

    #[test]
    fn reads_gzip_transparently() {
        assert_eq!(lines(b"x\ny\n", 10, true), vec![Ok("x".into()), Ok("y".into())]);
    }
}
