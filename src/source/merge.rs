//! Files into the order stage: each input file is read on demand, the one
//! holding the others back first (`Order::lagging`), its lines decoded and
//! pushed into the stage, which lets them out in event-time order (see
//! `order` for the lateness allowance and its bounds).
//!
//! A reject is handed out as soon as its line is read: it never waits for a
//! good record, and costs nothing held.

use super::file::{Line, LineReader};
use crate::decode::{decode_line, DecodeError, Format, Limits};
use crate::model::{Millis, Origin};
use crate::order::{InputId, Order, OrderCounts};
pub use crate::order::{Sourced, MAX_HELD_BYTES, MAX_HELD_RECORDS};
use std::collections::VecDeque;

/// What went wrong with one input line (or a record inside it).
#[derive(Debug)]
pub struct Reject {
    pub origin: Origin,
    pub error: DecodeError,
}

/// What the merged stream yields: records in event-time order, each with the bytes
/// it counted for in the order stage, and rejects as soon as they are read.
#[derive(Debug)]
pub enum Item {
    Record(Sourced, usize),
    Reject(Reject),
}

/// One input file, decoded as it is read.
pub struct Input {
    pub path: std::sync::Arc<str>,
    reader: LineReader,
    format: Format,
    /// Set when reading failed; the input ends there.
    pub read_error: Option<std::io::Error>,
}

impl Input {
    pub fn new(path: String, mut reader: LineReader, format: Format) -> Input {
        // A CloudTrail log file object on one line is read record by record.
        reader.split_records(matches!(format, Format::Auto | Format::Cloudtrail));
        Input { path: path.into(), reader, format, read_error: None }
    }

    pub fn bytes_read(&self) -> u64 {
        self.reader.bytes
    }

    pub fn lines_read(&self) -> u64 {
        self.reader.line_no
    }

    /// Reads one line into the stage, its rejects into `rejects`; false at the
    /// end of the input. A CloudTrail `Records` line is read element by element
    /// but whole, so its records are put in order among themselves before any
    /// is let out, as the service does with one message (the stage's bounds
    /// still hold memory if the array is huge).
    fn read(&mut self, order: &mut Order, id: InputId, limits: &Limits, rejects: &mut VecDeque<Reject>) -> bool {
        loop {
            if !self.read_one(order, id, limits, rejects) {
                return false;
            }
            if !self.reader.inside_records() {
                return true;
            }
        }
    }

    /// Reads one line, or one element of a `Records` line.
    fn read_one(&mut self, order: &mut Order, id: InputId, limits: &Limits, rejects: &mut VecDeque<Reject>) -> bool {
        let (line_no, line) = match self.reader.next_line() {
            Ok(Some(next)) => next,
            Ok(None) => return false,
            Err(e) => {
                self.read_error = Some(e);
                return false;
            }
        };
        let path = self.path.clone();
        let (origin, decoded, line_bytes) = match line {
            Line::Ok(bytes) => {
                (Origin::File { path, line: line_no }, decode_line(bytes, self.format, limits), bytes.len())
            }
            Line::TooLong(len) => (
                Origin::File { path, line: line_no },
                vec![Err(DecodeError::LineTooLong { len, max: limits.max_line_bytes })],
                0,
            ),
            Line::Element(element, body) => {
                let len = body.as_ref().map_or(0, |b| b.len());
                let decoded =
                    body.map_or_else(|e| vec![Err(e)], |bytes| decode_line(bytes, Format::Cloudtrail, limits));
                (Origin::Element { path, line: line_no, element }, decoded, len)
            }
        };
        // A record's strings come from its line: each holds its share of it.
        let good = decoded.iter().filter(|r| r.is_ok()).count().max(1);
        for result in decoded {
            match result {
                Ok(record) => order.push(id, (record, origin.clone()), line_bytes / good),
                Err(error) => rejects.push_back(Reject { origin: origin.clone(), error }),
            }
        }
        true
    }
}

/// The merged, time-ordered stream over all inputs.
pub struct Merge {
    pub inputs: Vec<Input>,
    order: Order,
    /// The stage's id of each input, by position in `inputs`.
    ids: Vec<InputId>,
    rejects: VecDeque<Reject>,
    limits: Limits,
}

impl Merge {
    pub fn new(inputs: Vec<Input>, limits: Limits, lateness: Millis) -> Merge {
        let mut order = Order::new(lateness);
        let ids = inputs.iter().map(|_| order.add_input()).collect();
        Merge { inputs, order, ids, rejects: VecDeque::new(), limits }
    }

    /// Records waiting in the stage.
    pub fn held(&self) -> usize {
        self.order.held()
    }

    /// Approximate bytes of the records waiting in the stage.
    pub fn held_bytes(&self) -> usize {
        self.order.held_bytes()
    }

    /// What the stage counted: records released late or early.
    pub fn counts(&self) -> OrderCounts {
        self.order.counts()
    }

    /// Records released before their lateness allowance ran out because the
    /// stage was full.
    pub fn released_early(&self) -> u64 {
        self.order.counts().released_early
    }
}

impl Iterator for Merge {
    type Item = Item;

    /// The next record in event-time order, or the next reject as soon as its
    /// line is read; `None` at the end of every input.
    fn next(&mut self) -> Option<Item> {
        loop {
            if let Some(reject) = self.rejects.pop_front() {
                return Some(Item::Reject(reject));
            }
            if let Some(released) = self.order.pop() {
                return Some(Item::Record((released.record, released.origin), released.bytes));
            }
            let id = self.order.lagging()?;
            let i = self.ids.iter().position(|&x| x == id).expect("every stage input is a file");
            if !self.inputs[i].read(&mut self.order, id, &self.limits, &mut self.rejects) {
                self.order.end(id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Record;

    fn merge_of(content: &[u8], format: Format) -> (Merge, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.jsonl");
        std::fs::write(&path, content).unwrap();
        let path = path.to_string_lossy().into_owned();
        let reader = super::super::file::open(&path, 1 << 20).unwrap();
        let input = Input::new(path, reader, format);
        (Merge::new(vec![input], Limits::default(), 300_000), dir)
    }

    /// Drains the stream; returns (records, rejects, most records held at once).
    fn drain(merge: &mut Merge) -> (usize, usize, usize) {
        let (mut records, mut rejects, mut most_held) = (0, 0, 0);
        while let Some(item) = merge.next() {
            most_held = most_held.max(merge.held());
            assert!(merge.held_bytes() <= merge.order.max_held.1, "{} bytes held", merge.held_bytes());
            match item {
                Item::Record(..) => records += 1,
                Item::Reject(_) => rejects += 1,
            }
        }
        (records, rejects, most_held)
    }

    #[test]
    fn many_records_of_one_timestamp_keep_the_buffer_at_its_bound() {
        let line = "{\"time\":1,\"identity\":\"i\",\"target\":\"t\",\"action\":\"a\"}\n";
        let n = 200_000;
        let (mut merge, _dir) = merge_of(line.repeat(n).as_bytes(), Format::Native);
        let (records, rejects, most_held) = drain(&mut merge);
        assert_eq!((records, rejects), (n, 0));
        assert_eq!(most_held, MAX_HELD_RECORDS);
        // All but the buffer's worth are released early.
        assert_eq!(merge.released_early(), (n - MAX_HELD_RECORDS) as u64);
        assert_eq!((merge.held(), merge.held_bytes()), (0, 0));
    }

    #[test]
    fn large_records_are_bounded_by_bytes() {
        let resource = "r".repeat(10_000);
        let line = format!(
            "{{\"time\":1,\"identity\":\"i\",\"target\":\"t\",\"action\":\"a\",\"resource\":\"{resource}\"}}\n"
        );
        let (mut merge, _dir) = merge_of(line.repeat(500).as_bytes(), Format::Native);
        merge.order.bound(MAX_HELD_RECORDS, 1 << 20);
        let (records, _, most_held) = drain(&mut merge);
        assert_eq!(records, 500);
        // About 100 records of 10 KB fit in 1 MiB.
        assert!((90..=105).contains(&most_held), "{most_held}");
        assert_eq!(merge.released_early(), 500 - most_held as u64);
    }

    #[test]
    fn rejects_come_out_as_they_are_read_with_nothing_held() {
        let garbage: Vec<u8> = (0..50_000u32).flat_map(|i| format!("not json {i}\n").into_bytes()).collect();
        let (mut merge, _dir) = merge_of(&garbage, Format::Auto);
        let mut seen = 0u64;
        while let Some(item) = merge.next() {
            let Item::Reject(reject) = item else { panic!("a record from garbage") };
            seen += 1;
            // Each reject is handed out right after its own line is read.
            assert_eq!(reject.origin.to_string(), format!("{}:{seen}", merge.inputs[0].path));
            assert_eq!(merge.inputs[0].lines_read(), seen);
            assert_eq!((merge.held(), merge.rejects.len()), (0, 0));
        }
        assert_eq!(seen, 50_000);
    }

    #[test]
    fn disorder_within_the_lateness_is_reordered_and_rejects_keep_their_place() {
        let lines = [
            r#"{"time":3000,"identity":"i","target":"t","action":"c"}"#,
            "oops",
            r#"{"time":1000,"identity":"i","target":"t","action":"a"}"#,
            r#"{"time":2000,"identity":"i","target":"t","action":"b"}"#,
        ];
        let (mut merge, _dir) = merge_of(lines.join("\n").as_bytes(), Format::Native);
        let mut out = Vec::new();
        for item in merge.by_ref() {
            out.push(match item {
                Item::Record((Record::Access(e), _), _) => e.action.to_string(),
                Item::Record(..) => unreachable!(),
                Item::Reject(r) => format!("reject {}", r.origin),
            });
        }
        let path = merge.inputs[0].path.clone();
        assert_eq!(out, vec![format!("reject {path}:2"), "a".into(), "b".into(), "c".into()]);
        assert_eq!(merge.released_early(), 0);
    }
}
