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
use std::collections::{BinaryHeap, VecDeque};

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

/// Records' room a lane keeps once empty.
const LANE_ROOM_KEPT: usize = 1024;

/// An input's place in the stage, as `Order::add_input` handed it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InputId(usize);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Running {
    /// Gives records; holds the others back until its watermark passes them.
    #[default]
    Active,
    /// Read to its end for now (a quiet Kafka partition): holds nothing back
    /// until it gives a record again.
    Idle,
    /// Gone for good (a file at its end, a revoked partition).
    Ended,
}

/// One input: its clock and the records it holds. A record that arrives at or
/// after the input's last one in event time (nearly all of them: logs are
/// written in time order) joins the back of `in_order`; an earlier one goes to
/// `out_of_order`. The earliest of an input is at the front of one of the two,
/// so a release looks at one record per input instead of sifting a heap of all
/// of them: a Kafka backlog holds up to `MAX_HELD_RECORDS`, and a heap that
/// large missed the cache on every level (`Order::pop` was 14% of the
/// service's thread, perf, 1M records on tansu).
#[derive(Default)]
struct Lane {
    /// Newest event time the input has given; `None` before its first record.
    newest: Option<Millis>,
    running: Running,
    in_order: VecDeque<Held>,
    out_of_order: BinaryHeap<Reverse<Held>>,
}

impl Lane {
    /// The input's earliest held record.
    fn first(&self) -> Option<&Held> {
        match (self.in_order.front(), self.out_of_order.peek()) {
            (Some(a), Some(Reverse(b))) => Some(a.min(b)),
            (a, b) => a.or(b.map(|Reverse(b)| b)),
        }
    }

    fn take_first(&mut self) -> Option<Held> {
        let from_heap = match (self.in_order.front(), self.out_of_order.peek()) {
            (Some(a), Some(Reverse(b))) => b < a,
            (None, _) => true,
            (Some(_), None) => false,
        };
        let first = if from_heap { self.out_of_order.pop().map(|Reverse(h)| h) } else { self.in_order.pop_front() };
        // A lane emptied after a burst gives its room back: across many partitions, each
        // keeping the room of its largest burst would add up to far more than the stage's bound.
        if self.in_order.is_empty() && self.in_order.capacity() > LANE_ROOM_KEPT {
            self.in_order = VecDeque::new();
        }
        if self.out_of_order.is_empty() && self.out_of_order.capacity() > LANE_ROOM_KEPT {
            self.out_of_order = BinaryHeap::new();
        }
        first
    }

    /// Every held record, earliest first.
    fn sorted(&self) -> Vec<&Held> {
        let mut all: Vec<&Held> = self.in_order.iter().chain(self.out_of_order.iter().map(|r| &r.0)).collect();
        all.sort();
        all
    }
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
    inputs: Vec<Lane>,
    held: usize,
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
            held: 0,
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
        self.inputs.push(Lane::default());
        InputId(self.inputs.len() - 1)
    }

    /// Holds a record of `input`; `bytes` is its share of the text it came from.
    pub fn push(&mut self, input: InputId, sourced: Sourced, bytes: usize) {
        let time = sourced.0.time();
        let lane = &mut self.inputs[input.0];
        lane.newest = Some(lane.newest.map_or(time, |n| n.max(time)));
        if lane.running == Running::Idle {
            lane.running = Running::Active;
        }
        self.seq += 1;
        let bytes = bytes + RECORD_OVERHEAD_BYTES;
        self.held += 1;
        self.held_bytes += bytes;
        let held = Held { time, seq: self.seq, bytes, record: Box::new(sourced) };
        if lane.in_order.back().is_none_or(|last| last.time <= time) {
            lane.in_order.push_back(held);
        } else {
            lane.out_of_order.push(Reverse(held));
        }
    }

    /// The input has ended: it holds nothing back any more.
    pub fn end(&mut self, input: InputId) {
        self.inputs[input.0].running = Running::Ended;
    }

    /// The input is read to its end for now (`true`), or may give records again.
    pub fn set_idle(&mut self, input: InputId, idle: bool) {
        let lane = &mut self.inputs[input.0];
        if lane.running != Running::Ended {
            lane.running = if idle { Running::Idle } else { Running::Active };
        }
    }

    /// Ends the input and takes its held records out, in the order they would
    /// have been released: a revoked partition's records are its new owner's.
    pub fn remove(&mut self, input: InputId) -> Vec<Sourced> {
        self.end(input);
        let lane = &mut self.inputs[input.0];
        let mut mine: Vec<Held> = std::mem::take(&mut lane.in_order).into();
        mine.extend(std::mem::take(&mut lane.out_of_order).into_iter().map(|Reverse(h)| h));
        mine.sort();
        self.held -= mine.len();
        self.held_bytes -= mine.iter().map(|h| h.bytes).sum::<usize>();
        mine.into_iter().map(|h| *h.record).collect()
    }

    /// The held records of one input, earliest first (for a checkpoint).
    pub fn held_of(&self, input: InputId) -> Vec<&Sourced> {
        self.inputs[input.0].sorted().into_iter().map(|h| &*h.record).collect()
    }

    /// The time up to which every running input has given what it will
    /// (within the allowance): `None` while some input has given nothing.
    fn horizon(&self) -> Option<Millis> {
        let mut horizon = Millis::MAX;
        for lane in self.inputs.iter().filter(|l| l.running == Running::Active) {
            horizon = horizon.min(lane.newest?.saturating_sub(self.lateness));
        }
        Some(horizon)
    }

    /// The running input holding the others back (the one to read from next),
    /// for inputs that are read on demand; `None` when none is.
    pub fn lagging(&self) -> Option<InputId> {
        let active = self.inputs.iter().enumerate().filter(|(_, l)| l.running == Running::Active);
        active.min_by_key(|(i, l)| (l.newest.is_some(), l.newest, *i)).map(|(i, _)| InputId(i))
    }

    /// The next record due, if any.
    pub fn pop(&mut self) -> Option<Released> {
        let (input, next) =
            self.inputs.iter().enumerate().filter_map(|(i, l)| Some((i, l.first()?))).min_by_key(|(_, h)| *h)?;
        let due = self.horizon().is_some_and(|h| next.time <= h);
        let full = self.held > self.max_held.0 || self.held_bytes > self.max_held.1;
        if !due && !full {
            return None;
        }
        let held = self.inputs[input].take_first().expect("first");
        self.held -= 1;
        self.held_bytes -= held.bytes;
        self.counts.released_early += u64::from(!due);
        let late = self.released.is_some_and(|r| held.time < r);
        self.counts.late += u64::from(late);
        self.released = Some(self.released.map_or(held.time, |r| r.max(held.time)));
        let (record, origin) = *held.record;
        Some(Released { record, origin, input: InputId(input), late, bytes: held.bytes })
    }

    /// How full the stage is: the larger of its records' and its bytes' share of its bounds.
    pub fn fill(&self) -> f64 {
        let (records, bytes) = self.max_held;
        (self.held as f64 / records.max(1) as f64).max(self.held_bytes as f64 / bytes.max(1) as f64)
    }

    /// Records held now.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Approximate bytes of the records held now.
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    pub fn counts(&self) -> OrderCounts {
        self.counts
    }
}

/// A held record, ordered by time, then by arrival. Boxed: when every record
/// sat in one heap, moving whole records there was 8% of a replay's time (perf,
/// DWARF stacks). Held inline in the lanes, 400k lines of replay ran at the
/// same speed (four runs each, alternating), so it stays boxed.
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
    use crate::model::AccessEvent;

    fn rec(time: Millis, action: &str) -> Sourced {
        let e =
            AccessEvent { time, identity: "i".into(), target: "t".into(), action: action.into(), ..Default::default() };
        (Record::Access(Box::new(e)), Origin::File { path: "f".into(), line: time as u64 })
    }

    fn drain(order: &mut Order) -> Vec<(String, bool)> {
        std::iter::from_fn(|| order.pop())
            .map(|r| match r.record {
                Record::Access(e) => (e.action.to_string(), r.late),
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
    fn records_come_out_by_time_then_arrival_whichever_part_of_their_input_holds_them() {
        let mut order = Order::new(100);
        let (a, b) = (order.add_input(), order.add_input());
        // a's 20s arrive after its 30, so they wait apart from its 10 and 30; b's 20 ties with them.
        for (input, t, name) in [(a, 10, "a10"), (a, 30, "a30"), (a, 20, "a20"), (a, 20, "a20'"), (b, 20, "b20")] {
            order.push(input, rec(t, name), 0);
        }
        order.push(a, rec(200, "a200"), 0);
        order.push(b, rec(200, "b200"), 0);
        assert_eq!(actions(&drain(&mut order)), ["a10", "a20", "a20'", "b20", "a30"]);
        assert_eq!(order.counts(), OrderCounts::default());
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
