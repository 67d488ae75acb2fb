//! Merges several inputs into one stream in event-time order: the inputs by
//! their next record's time, then a reorder buffer that absorbs disorder of up
//! to `lateness` within an input (CloudTrail files are only roughly ordered).
//!
//! Both are bounded whatever the input: a reject is handed out as soon as its
//! line is read (it never waits for a good record), and the reorder buffer holds
//! at most `MAX_HELD_RECORDS` records or `MAX_HELD_BYTES`; past that its
//! earliest records are released at once, out of the lateness allowance, and
//! counted. Both bounds depend on the input alone, so the output stays
//! deterministic.

use super::file::{Line, LineReader};
use crate::decode::{decode_line, DecodeError, Format, Limits};
use crate::model::{Millis, Origin, Record};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// A decoded record and where it came from.
pub type Sourced = (Record, Origin);

/// Records the reorder buffer holds at most: at the rate of a large account's
/// CloudTrail (1,000 events/s) that is 100 s of lateness.
pub const MAX_HELD_RECORDS: usize = 100_000;
/// Approximate bytes the reorder buffer holds at most (see `Pending`).
pub const MAX_HELD_BYTES: usize = 128 << 20;

/// What a record costs in the buffer besides its text: the record, its origin
/// and the heap entry, with an allowance for the allocations of its strings.
const RECORD_OVERHEAD_BYTES: usize = std::mem::size_of::<Held>() + std::mem::size_of::<Sourced>() + 256;

/// What went wrong with one input line (or a record inside it).
#[derive(Debug)]
pub struct Reject {
    pub origin: Origin,
    pub error: DecodeError,
}

/// What the merged stream yields: records in event-time order, and rejects as
/// soon as they are read. (Boxing the record to even the variants out would
/// cost an allocation per event for the sake of the rare reject.)
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Item {
    Record(Sourced),
    Reject(Reject),
}

/// A decoded record with its approximate size in memory: its share of the line
/// it was decoded from (a record's strings come from its line) plus overhead.
struct Pending {
    sourced: Sourced,
    bytes: usize,
}

/// One input file, decoded lazily.
pub struct Input {
    pub path: std::sync::Arc<str>,
    reader: LineReader,
    format: Format,
    pending: VecDeque<Pending>,
    ended: bool,
    /// Set when reading failed; the input ends there.
    pub read_error: Option<std::io::Error>,
}

impl Input {
    pub fn new(path: String, mut reader: LineReader, format: Format) -> Input {
        // A CloudTrail log file object on one line is read record by record.
        reader.split_records(matches!(format, Format::Auto | Format::Cloudtrail));
        Input { path: path.into(), reader, format, pending: VecDeque::new(), ended: false, read_error: None }
    }

    pub fn bytes_read(&self) -> u64 {
        self.reader.bytes
    }

    pub fn lines_read(&self) -> u64 {
        self.reader.line_no
    }

    /// The next good record, reading at most one line (or one element of a
    /// CloudTrail `Records` line); its rejects go to `rejects`. `None` when
    /// the line held none, or at the end (`ended`).
    fn next(&mut self, limits: &Limits, rejects: &mut VecDeque<Reject>) -> Option<Pending> {
        if let Some(next) = self.pending.pop_front() {
            return Some(next);
        }
        let (line_no, line) = match self.reader.next_line() {
            Ok(Some(next)) => next,
            Ok(None) => {
                self.ended = true;
                return None;
            }
            Err(e) => {
                self.read_error = Some(e);
                self.ended = true;
                return None;
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
        let good = decoded.iter().filter(|r| r.is_ok()).count().max(1);
        for result in decoded {
            match result {
                Ok(record) => self.pending.push_back(Pending {
                    sourced: (record, origin.clone()),
                    bytes: line_bytes / good + RECORD_OVERHEAD_BYTES,
                }),
                Err(error) => rejects.push_back(Reject { origin: origin.clone(), error }),
            }
        }
        self.pending.pop_front()
    }
}

/// The merged, time-ordered stream over all inputs.
pub struct Merge {
    pub inputs: Vec<Input>,
    /// Inputs whose next record is not known yet, in the order they are read.
    unread: VecDeque<usize>,
    heads: BinaryHeap<Reverse<(Millis, usize, u64)>>,
    slots: Vec<Option<Pending>>,
    rejects: VecDeque<Reject>,
    reorder: BinaryHeap<Reverse<Held>>,
    held_bytes: usize,
    /// The buffer's bounds: `MAX_HELD_RECORDS` and `MAX_HELD_BYTES`.
    max_held: (usize, usize),
    released_early: u64,
    lateness: Millis,
    newest: Millis,
    seq: u64,
    limits: Limits,
}

impl Merge {
    pub fn new(inputs: Vec<Input>, limits: Limits, lateness: Millis) -> Merge {
        let slots = inputs.iter().map(|_| None).collect();
        Merge {
            unread: (0..inputs.len()).collect(),
            inputs,
            heads: BinaryHeap::new(),
            slots,
            rejects: VecDeque::new(),
            reorder: BinaryHeap::new(),
            held_bytes: 0,
            max_held: (MAX_HELD_RECORDS, MAX_HELD_BYTES),
            released_early: 0,
            lateness,
            newest: Millis::MIN,
            seq: 0,
            limits,
        }
    }

    /// Records waiting in the reorder buffer.
    pub fn held(&self) -> usize {
        self.reorder.len()
    }

    /// Approximate bytes of the records waiting in the reorder buffer.
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// Records released before their lateness allowance ran out because the
    /// reorder buffer was full.
    pub fn released_early(&self) -> u64 {
        self.released_early
    }

    /// Hands out the earliest held record; `early` when its allowance had not run out.
    fn release(&mut self, early: bool) -> Option<Item> {
        let Reverse(held) = self.reorder.pop()?;
        self.released_early += u64::from(early);
        self.held_bytes -= held.bytes;
        Some(Item::Record(*held.record))
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
            // Every input's next record must be known before the earliest is taken.
            if let Some(&i) = self.unread.front() {
                let input = &mut self.inputs[i];
                if let Some(next) = input.next(&self.limits, &mut self.rejects) {
                    self.seq += 1;
                    self.heads.push(Reverse((next.sourced.0.time(), i, self.seq)));
                    self.slots[i] = Some(next);
                    self.unread.pop_front();
                } else if input.ended {
                    self.unread.pop_front();
                }
                continue;
            }
            // Release the oldest held record once nothing older can still
            // arrive, or at once when the buffer is over its bound.
            if let Some(Reverse(held)) = self.reorder.peek() {
                let due = self.heads.is_empty() || held.time <= self.newest.saturating_sub(self.lateness);
                let full = self.reorder.len() > self.max_held.0 || self.held_bytes > self.max_held.1;
                if due || full {
                    return self.release(!due);
                }
            }
            let Reverse((_, i, _)) = self.heads.pop()?;
            let Pending { sourced, bytes } = self.slots[i].take().expect("a head has a slot");
            self.unread.push_back(i);
            let time = sourced.0.time();
            self.newest = self.newest.max(time);
            self.seq += 1;
            self.held_bytes += bytes;
            self.reorder.push(Reverse(Held { time, seq: self.seq, bytes, record: Box::new(sourced) }));
        }
    }
}

/// A record waiting in the reorder buffer, ordered by time, then by arrival.
/// The record is boxed: the heap moves entries on every push and pop, and
/// moving whole records there was 8% of a replay's time (perf, DWARF stacks).
struct Held {
    time: Millis,
    seq: u64,
    bytes: usize,
    record: Box<Sourced>,
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.seq) == (other.time, other.seq)
    }
}

impl Eq for Held {}

impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Held {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.time, self.seq).cmp(&(other.time, other.seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            assert!(merge.held_bytes() <= merge.max_held.1, "{} bytes held", merge.held_bytes());
            match item {
                Item::Record(_) => records += 1,
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
        // All but the buffer's worth are released early; the last push is due
        // anyway, since the input has ended.
        assert_eq!(merge.released_early(), (n - MAX_HELD_RECORDS - 1) as u64);
        assert_eq!((merge.held(), merge.held_bytes()), (0, 0));
    }

    #[test]
    fn large_records_are_bounded_by_bytes() {
        let resource = "r".repeat(10_000);
        let line = format!(
            "{{\"time\":1,\"identity\":\"i\",\"target\":\"t\",\"action\":\"a\",\"resource\":\"{resource}\"}}\n"
        );
        let (mut merge, _dir) = merge_of(line.repeat(500).as_bytes(), Format::Native);
        merge.max_held.1 = 1 << 20;
        let (records, _, most_held) = drain(&mut merge);
        assert_eq!(records, 500);
        // About 100 records of 10 KB fit in 1 MiB.
        assert!((90..=105).contains(&most_held), "{most_held}");
        assert_eq!(merge.released_early(), 500 - most_held as u64 - 1);
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
                Item::Record((Record::Access(e), _)) => e.action,
                Item::Record(_) => unreachable!(),
                Item::Reject(r) => format!("reject {}", r.origin),
            });
        }
        let path = merge.inputs[0].path.clone();
        assert_eq!(out, vec![format!("reject {path}:2"), "a".into(), "b".into(), "c".into()]);
        assert_eq!(merge.released_early(), 0);
    }
}
