//! Merges several inputs into one stream in event-time order: the inputs by
//! their next record's time, then a reorder buffer that absorbs disorder of up
//! to `lateness` within an input (CloudTrail files are only roughly ordered).

use super::file::{Line, LineReader};
use crate::decode::{decode_line, DecodeError, Format, Limits};
use crate::model::{Millis, Origin, Record};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// A decoded record and where it came from.
pub type Sourced = (Record, Origin);

/// What went wrong with one input line (or a record inside it).
#[derive(Debug)]
pub struct Reject {
    pub origin: Origin,
    pub error: DecodeError,
}

/// One input file, decoded lazily.
pub struct Input {
    pub path: std::sync::Arc<str>,
    reader: LineReader,
    format: Format,
    pending: VecDeque<Sourced>,
    /// Set when reading failed; the input ends there.
    pub read_error: Option<std::io::Error>,
}

impl Input {
    pub fn new(path: String, mut reader: LineReader, format: Format) -> Input {
        // A CloudTrail log file object on one line is read record by record.
        reader.split_records(matches!(format, Format::Auto | Format::Cloudtrail));
        Input { path: path.into(), reader, format, pending: VecDeque::new(), read_error: None }
    }

    pub fn bytes_read(&self) -> u64 {
        self.reader.bytes
    }

    pub fn lines_read(&self) -> u64 {
        self.reader.line_no
    }

    /// The next good record; bad ones go to `rejects`.
    fn next(&mut self, limits: &Limits, rejects: &mut Vec<Reject>) -> Option<Sourced> {
        while self.pending.is_empty() {
            let (line_no, line) = match self.reader.next_line() {
                Ok(Some(next)) => next,
                Ok(None) => return None,
                Err(e) => {
                    self.read_error = Some(e);
                    return None;
                }
            };
            let path = self.path.clone();
            let (origin, decoded) = match line {
                Line::Ok(bytes) => (Origin::File { path, line: line_no }, decode_line(bytes, self.format, limits)),
                Line::TooLong(len) => (
                    Origin::File { path, line: line_no },
                    vec![Err(DecodeError::LineTooLong { len, max: limits.max_line_bytes })],
                ),
                Line::Element(element, body) => (
                    Origin::Element { path, line: line_no, element },
                    body.map_or_else(|e| vec![Err(e)], |bytes| decode_line(bytes, Format::Cloudtrail, limits)),
                ),
            };
            for result in decoded {
                match result {
                    Ok(record) => self.pending.push_back((record, origin.clone())),
                    Err(error) => rejects.push(Reject { origin: origin.clone(), error }),
                }
            }
        }
        self.pending.pop_front()
    }
}

/// The merged, time-ordered stream over all inputs.
pub struct Merge {
    pub inputs: Vec<Input>,
    heads: BinaryHeap<Reverse<(Millis, usize, u64)>>,
    slots: Vec<Option<Sourced>>,
    reorder: BinaryHeap<Reverse<Held>>,
    lateness: Millis,
    newest: Millis,
    seq: u64,
    limits: Limits,
    started: bool,
}

impl Merge {
    pub fn new(inputs: Vec<Input>, limits: Limits, lateness: Millis) -> Merge {
        let slots = inputs.iter().map(|_| None).collect();
        Merge {
            inputs,
            heads: BinaryHeap::new(),
            slots,
            reorder: BinaryHeap::new(),
            lateness,
            newest: Millis::MIN,
            seq: 0,
            limits,
            started: false,
        }
    }

    fn refill(&mut self, i: usize, rejects: &mut Vec<Reject>) {
        if let Some(next) = self.inputs[i].next(&self.limits, rejects) {
            self.seq += 1;
            self.heads.push(Reverse((next.0.time(), i, self.seq)));
            self.slots[i] = Some(next);
        }
    }

    /// The next record in event-time order; rejects met on the way go to `rejects`.
    pub fn next(&mut self, rejects: &mut Vec<Reject>) -> Option<Sourced> {
        if !self.started {
            self.started = true;
            for i in 0..self.inputs.len() {
                self.refill(i, rejects);
            }
        }
        loop {
            // Release the oldest held record once nothing older can still arrive.
            if let Some(Reverse(held)) = self.reorder.peek() {
                if self.heads.is_empty() || held.time <= self.newest.saturating_sub(self.lateness) {
                    return self.reorder.pop().map(|Reverse(held)| held.record);
                }
            }
            let Reverse((_, i, _)) = self.heads.pop()?;
            let record = self.slots[i].take().expect("a head has a slot");
            self.refill(i, rejects);
            self.newest = self.newest.max(record.0.time());
            self.seq += 1;
            self.reorder.push(Reverse(Held { time: record.0.time(), seq: self.seq, record }));
        }
    }
}

/// A record waiting in the reorder buffer, ordered by time, then by arrival.
struct Held {
    time: Millis,
    seq: u64,
    record: Sourced,
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
