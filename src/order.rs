//! The order stage: records from several inputs (files, Kafka partitions, the
//! grants and verdict streams) in, one stream in event-time order out, for
//! replay and the Kafka service alike.
//!
//! Each input has a watermark: the newest event time it has given, less the
//! lateness allowance. A held record is released once every input still
//! running has a watermark at or past it, earliest first (ties in the order
//! they arrived). That is a k-way merge with a reorder buffer in front of it:
//! disorder within an input of up to `lateness` is undone, and the inputs are
//! interleaved by event time, so the engine sees the same sequence whichever
//! input happened to deliver first. An input that has ended, or is idle (a
//! Kafka partition read to its end and quiet), holds nothing back.
//!
//! Two explicit policies bound what waiting can cost, both counted:
//! - **late**: a record earlier than one already released (later than the
//!   allowance, or from an input that was idle) is released at once, out of
//!   order, rather than dropped: a detector that loses records is worse than
//!   one that sees a few out of order;
//! - **early**: past `MAX_HELD_RECORDS` or `MAX_HELD_BYTES` held, the earliest
//!   record is released before its allowance has run out.
//!
//! Both depend on the input alone (not on timing) when the inputs are files,
//! so replay stays deterministic.

use crate::model::{Millis, Origin, Record};
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// A decoded record and where it came from.
pub type Sourced = (Record, Origin);

/// Records held at most: at the rate of a large account's CloudTrail (1,000
/// events/s) that is 100 s of lateness.
pub const MAX_HELD_RECORDS: usize = 100_000;
/// Approximate bytes held at most (see `Order::push`).
pub const MAX_HELD_BYTES: usize = 128 << 20;

/// What a record costs held besides its text: the record, its origin and the
/// heap entry, with an allowance for the allocations of its strings.
pub const RECORD_OVERHEAD_BYTES: usize = std::mem::size_of::<Held>() + std::mem::size_of::<Sourced>() + 256;

/// An input's place in the stage, as `Order::add_input` handed it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InputId(usize);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Running {
    /// Gives records; holds the others back until its watermark passes them.
    Active,
    /// Read to its end for now (a quiet Kafka partition): holds nothing back
    /// until it gives a record again.
    Idle,
    /// Gone for good (a file at its end, a revoked partition).
    Ended,
}

#[derive(Debug, Clone, Copy)]
struct Clock {
    /// Newest event time the input has given; `None` before its first record.
    newest: Option<Millis>,
    running: Running,
}

/// A record let out of the stage.
#[derive(Debug)]
pub struct Released {
    pub record: Record,
    pub origin: Origin,
    pub input: InputId,
    /// Earlier than a record released before it (see the module doc).
    pub late: bool,
    /// What it counted for in the stage's bound on bytes held.
    pub bytes: usize,
}

/// What the stage has counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCounts {
    /// Released out of order: later than the allowance.
    pub late: u64,
    /// Released before their allowance ran out because the stage was full.
    pub released_early: u64,
}

pub struct Order {
    inputs: Vec<Clock>,
    held: BinaryHeap<Reverse<Held>>,
    held_bytes: usize,
    /// Bounds: `MAX_HELD_RECORDS` and `MAX_HELD_BYTES` unless set (`bound`).
    pub(crate) max_held: (usize, usize),
    lateness: Millis,
    /// Event time of the latest record released so far.
    released: Option<Millis>,
    seq: u64,
    counts: OrderCounts,
}

impl Order {
    pub fn new(lateness: Millis) -> Order {
        Order {
            inputs: Vec::new(),
            held: BinaryHeap::new(),
            held_bytes: 0,
            max_held: (MAX_HELD_RECORDS, MAX_HELD_BYTES),
            lateness: lateness.max(0),
            released: None,
            seq: 0,
            counts: OrderCounts::default(),
        }
    }

    /// Holds at most `records` records and about `bytes` bytes.
    pub fn bound(&mut self, records: usize, bytes: usize) {
        self.max_held = (records, bytes);
    }

    /// A new input, active: nothing is released past it until it gives a
    /// record, goes idle or ends.
    pub fn add_input(&mut self) -> InputId {
        self.inputs.push(Clock { newest: None, running: Running::Active });
        InputId(self.inputs.len() - 1)
    }

    /// Holds a record of `input`; `bytes` is its share of the text it came from.
    pub fn push(&mut self, input: InputId, sourced: Sourced, bytes: usize) {
        let time = sourced.0.time();
        let clock = &mut self.inputs[input.0];
        clock.newest = Some(clock.newest.map_or(time, |n| n.max(time)));
        if clock.running == Running::Idle {
            clock.running = Running::Active;
        }
        self.seq += 1;
        let bytes = bytes + RECORD_OVERHEAD_BYTES;
        self.held_bytes += bytes;
        self.held.push(Reverse(Held { time, seq: self.seq, input, bytes, record: Box::new(sourced) }));
    }

    /// The input has ended: it holds nothing back any more.
    pub fn end(&mut self, input: InputId) {
        self.inputs[input.0].running = Running::Ended;
    }

    /// The input is read to its end for now (`true`), or may give records again.
    pub fn set_idle(&mut self, input: InputId, idle: bool) {
        let clock = &mut self.inputs[input.0];
        if clock.running != Running::Ended {
            clock.running = if idle { Running::Idle } else { Running::Active };
        }
    }

    /// Ends the input and takes its held records out, in the order they would
    /// have been released: a revoked partition's records are its new owner's.
    pub fn remove(&mut self, input: InputId) -> Vec<Sourced> {
        self.end(input);
        let (mine, others): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.held).into_iter().partition(|r| r.0.input == input);
        self.held = others.into_iter().collect();
        let mut mine: Vec<Held> = mine.into_iter().map(|Reverse(h)| h).collect();
        mine.sort();
        self.held_bytes -= mine.iter().map(|h| h.bytes).sum::<usize>();
        mine.into_iter().map(|h| *h.record).collect()
    }

    /// The held records of one input, earliest first (for a checkpoint).
    pub fn held_of(&self, input: InputId) -> Vec<&Sourced> {
        let mut mine: Vec<&Held> = self.held.iter().map(|r| &r.0).filter(|h| h.input == input).collect();
        mine.sort();
        mine.into_iter().map(|h| &*h.record).collect()
    }

    /// The time up to which every running input has given what it will
    /// (within the allowance): `None` while some input has given nothing.
    fn horizon(&self) -> Option<Millis> {
        let mut horizon = Millis::MAX;
        for clock in self.inputs.iter().filter(|c| c.running == Running::Active) {
            horizon = horizon.min(clock.newest?.saturating_sub(self.lateness));
        }
        Some(horizon)
    }

    /// The running input holding the others back (the one to read from next),
    /// for inputs that are read on demand; `None` when none is.
    pub fn lagging(&self) -> Option<InputId> {
        let active = self.inputs.iter().enumerate().filter(|(_, c)| c.running == Running::Active);
        active.min_by_key(|(i, c)| (c.newest.is_some(), c.newest, *i)).map(|(i, _)| InputId(i))
    }

    /// The next record due, if any.
    pub fn pop(&mut self) -> Option<Released> {
        let Reverse(next) = self.held.peek()?;
        let due = self.horizon().is_some_and(|h| next.time <= h);
        let full = self.held.len() > self.max_held.0 || self.held_bytes > self.max_held.1;
        if !due && !full {
            return None;
        }
        let Reverse(held) = self.held.pop().expect("peeked");
        self.held_bytes -= held.bytes;
        self.counts.released_early += u64::from(!due);
        let late = self.released.is_some_and(|r| held.time < r);
        self.counts.late += u64::from(late);
        self.released = Some(self.released.map_or(held.time, |r| r.max(held.time)));
        let (record, origin) = *held.record;
        Some(Released { record, origin, input: held.input, late, bytes: held.bytes })
    }

    /// How full the stage is: the larger of its records' and its bytes' share of its bounds.
    pub fn fill(&self) -> f64 {
        let (records, bytes) = self.max_held;
        (self.held.len() as f64 / records.max(1) as f64).max(self.held_bytes as f64 / bytes.max(1) as f64)
    }

    /// Records held now.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Approximate bytes of the records held now.
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    pub fn counts(&self) -> OrderCounts {
        self.counts
    }
}

/// A held record, ordered by time, then by arrival. Boxed: the heap moves
/// entries on every push and pop, and moving whole records there was 8% of a
/// replay's time (perf, DWARF stacks). Now that a record's body is boxed itself,
/// holding it inline was measured again: 0.4% more instructions, no faster.
struct Held {
    time: Millis,
    seq: u64,
    input: InputId,
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
    use crate::model::AccessEvent;

    fn rec(time: Millis, action: &str) -> Sourced {
        let e =
            AccessEvent { time, identity: "i".into(), target: "t".into(), action: action.into(), ..Default::default() };
        (Record::Access(Box::new(e)), Origin::File { path: "f".into(), line: time as u64 })
    }

    fn drain(order: &mut Order) -> Vec<(String, bool)> {
        std::iter::from_fn(|| order.pop())
            .map(|r| match r.record {
                Record::Access(e) => (e.action, r.late),
                _ => unreachable!(),
            })
            .collect()
    }

    fn actions(out: &[(String, bool)]) -> Vec<&str> {
        out.iter().map(|(a, _)| a.as_str()).collect()
    }

    #[test]
    fn two_inputs_are_interleaved_by_time_whichever_delivers_first() {
        let mut order = Order::new(0);
        let (a, b) = (order.add_input(), order.add_input());
        for t in [10, 20, 30] {
            order.push(a, rec(t, &format!("a{t}")), 0);
        }
        // Nothing is known of b yet: nothing may go.
        assert!(order.pop().is_none());
        order.push(b, rec(15, "b15"), 0);
        assert_eq!(actions(&drain(&mut order)), ["a10", "b15"]);
        order.push(b, rec(40, "b40"), 0);
        assert_eq!(actions(&drain(&mut order)), ["a20", "a30"]);
        order.end(a);
        assert_eq!(actions(&drain(&mut order)), ["b40"]);
    }

    #[test]
    fn disorder_within_the_allowance_is_undone_and_a_later_record_is_released_late_and_counted() {
        let mut order = Order::new(100);
        let a = order.add_input();
        for (t, name) in [(300, "c"), (100, "a"), (200, "b")] {
            order.push(a, rec(t, name), 0);
        }
        // Watermark 300 - 100 = 200: a and b may go, c waits.
        assert_eq!(drain(&mut order), [("a".to_string(), false), ("b".to_string(), false)]);
        order.push(a, rec(150, "late"), 0);
        order.push(a, rec(500, "e"), 0);
        assert_eq!(drain(&mut order), [("late".to_string(), true), ("c".to_string(), false)]);
        assert_eq!(order.counts(), OrderCounts { late: 1, released_early: 0 });
    }

    #[test]
    fn an_idle_input_holds_nothing_back_until_it_gives_again() {
        let mut order = Order::new(0);
        let (a, b) = (order.add_input(), order.add_input());
        order.push(a, rec(10, "a10"), 0);
        assert!(order.pop().is_none());
        order.set_idle(b, true);
        assert_eq!(actions(&drain(&mut order)), ["a10"]);
        // b gives again: it holds a back from then on.
        order.push(b, rec(5, "b5"), 0);
        order.push(a, rec(20, "a20"), 0);
        assert_eq!(drain(&mut order), [("b5".to_string(), true)]);
        assert_eq!(order.lagging(), Some(b));
    }

    #[test]
    fn a_removed_input_takes_its_held_records_with_it() {
        let mut order = Order::new(0);
        let (a, b) = (order.add_input(), order.add_input());
        order.push(a, rec(30, "a30"), 10);
        order.push(a, rec(20, "a20"), 10);
        order.push(b, rec(40, "b40"), 10);
        assert_eq!(order.held_of(a).len(), 2);
        let taken: Vec<Millis> = order.remove(a).iter().map(|(r, _)| r.time()).collect();
        assert_eq!(taken, [20, 30]);
        assert_eq!((order.held(), order.held_bytes()), (1, 10 + RECORD_OVERHEAD_BYTES));
        assert_eq!(actions(&drain(&mut order)), ["b40"]);
    }

    #[test]
    fn a_full_stage_releases_its_earliest_early() {
        let mut order = Order::new(1_000_000);
        order.bound(3, usize::MAX);
        let a = order.add_input();
        for t in 1..=5 {
            order.push(a, rec(t, &t.to_string()), 0);
        }
        assert_eq!(actions(&drain(&mut order)), ["1", "2"]);
        assert_eq!(order.counts().released_early, 2);
    }
}
