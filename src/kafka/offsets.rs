//! Which input offsets may be committed: the at-least-once bookkeeping.
//!
//! A message is *done* once every unit of work it caused (its records judged, their alerts
//! and its dead-letter copy acknowledged by the broker) is. Deliveries finish out of order, so
//! per partition the tracker keeps the received offsets in order, each with its units left,
//! and releases only the highest contiguous done one: the offset to store is that one + 1 (a
//! hand-built offset is last + 1).

use super::TopicPartition;
use std::collections::{HashMap, VecDeque};

/// The tracker of every partition a reader holds, by name (the repartition stage); the
/// service keeps each partition's [`PartitionOffsets`] with the partition itself.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    partitions: HashMap<TopicPartition, PartitionOffsets>,
}

/// One partition's received offsets, in order, each with the units of work it has left.
#[derive(Debug, Default)]
pub struct PartitionOffsets {
    queue: VecDeque<Entry>,
}

#[derive(Debug)]
struct Entry {
    offset: i64,
    left: u32,
}

impl PartitionOffsets {
    /// Registers a received message. Offsets arrive increasing; one at or below the last seen
    /// means the partition was re-assigned and re-positioned, so what was pending belongs to
    /// the earlier assignment and is forgotten (its deliveries, when they finish, no longer
    /// match and release nothing). It has `units` of work to finish (none: it is done at its
    /// first `complete`).
    pub fn begin(&mut self, offset: i64, units: u32) {
        if self.queue.back().is_some_and(|last| last.offset >= offset) {
            self.queue.clear();
        }
        self.queue.push_back(Entry { offset, left: units });
    }

    /// One more unit of work for a message received (an output of one of its records); none
    /// for one not received here.
    pub fn add_unit(&mut self, offset: i64) {
        if let Some(entry) = self.entry(offset) {
            entry.left += 1;
        }
    }

    /// One unit of a message's work is done; at its last, the message is. Returns the offset
    /// to store if the contiguous done prefix grew.
    pub fn complete(&mut self, offset: i64) -> Option<i64> {
        let entry = self.entry(offset)?;
        entry.left = entry.left.saturating_sub(1);
        let mut released = None;
        while self.queue.front().is_some_and(|e| e.left == 0) {
            released = self.queue.pop_front().map(|e| e.offset + 1);
        }
        released
    }

    /// Offsets of a partition are consecutive but where compaction or transaction markers
    /// left gaps: a message is where consecutive offsets would put it, or found by halving.
    fn entry(&mut self, offset: i64) -> Option<&mut Entry> {
        let first = self.queue.front()?.offset;
        let guess =
            usize::try_from(offset - first).ok().filter(|&i| self.queue.get(i).is_some_and(|e| e.offset == offset));
        let index = match guess {
            Some(index) => index,
            None => self.queue.binary_search_by_key(&offset, |e| e.offset).ok()?,
        };
        self.queue.get_mut(index)
    }
}

impl OffsetTracker {
    /// [`PartitionOffsets::begin`] for `tp`, with one unit of work.
    pub fn begin(&mut self, tp: &TopicPartition, offset: i64) {
        // Looked up before it is inserted: the key's clone is paid once per partition, not per record.
        if !self.partitions.contains_key(tp) {
            self.partitions.insert(tp.clone(), PartitionOffsets::default());
        }
        self.partitions.get_mut(tp).expect("inserted above").begin(offset, 1);
    }

    /// [`PartitionOffsets::complete`] for `tp`.
    pub fn complete(&mut self, tp: &TopicPartition, offset: i64) -> Option<i64> {
        self.partitions.get_mut(tp)?.complete(offset)
    }

    /// Forgets a partition this reader no longer holds: deliveries of its messages still in
    /// flight release nothing when they finish, so no offset of an earlier assignment is
    /// committed over what its next reader committed, and if it comes back its offsets start
    /// a fresh queue instead of waiting behind unfinished ones.
    pub fn forget(&mut self, tp: &TopicPartition) {
        self.partitions.remove(tp);
    }

    /// Messages received whose work is not yet done, over all partitions.
    pub fn pending(&self) -> usize {
        self.partitions.values().map(|p| p.queue.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> TopicPartition {
        TopicPartition { topic: "in".into(), partition: p }
    }

    /// Received offsets, completion order, offset stored after each completion.
    type Case<'a> = (&'a [i64], &'a [i64], &'a [Option<i64>]);

    #[test]
    fn releases_only_the_contiguous_done_prefix() {
        let cases: &[Case] = &[
            (&[0, 1, 2], &[0, 1, 2], &[Some(1), Some(2), Some(3)]),
            (&[0, 1, 2], &[2, 1, 0], &[None, None, Some(3)]),
            (&[0, 1, 2, 3], &[1, 0, 3, 2], &[None, Some(2), None, Some(4)]),
            // Gaps in offsets (compaction, transaction markers) are fine: last + 1 is stored.
            (&[5, 9, 20], &[9, 5, 20], &[None, Some(10), Some(21)]),
            // An unknown offset releases nothing.
            (&[0], &[7, 0], &[None, Some(1)]),
        ];
        for (received, order, expected) in cases {
            let mut t = OffsetTracker::default();
            for &o in *received {
                t.begin(&tp(0), o);
            }
            let got: Vec<_> = order.iter().map(|&o| t.complete(&tp(0), o)).collect();
            assert_eq!(&got, expected, "received {received:?}, completed {order:?}");
            assert_eq!(t.pending(), 0);
        }
    }

    #[test]
    fn a_forgotten_partition_releases_nothing_of_its_old_messages_and_starts_afresh() {
        let mut t = OffsetTracker::default();
        t.begin(&tp(0), 100);
        t.begin(&tp(0), 101);
        t.forget(&tp(0));
        // Back later at a further offset (another reader moved 100..149 meanwhile).
        t.begin(&tp(0), 150);
        assert_eq!(t.complete(&tp(0), 100), None, "an old delivery finishing commits nothing");
        assert_eq!(t.complete(&tp(0), 150), Some(151), "not held behind 101, which will never finish here");
        assert_eq!(t.pending(), 0);
    }

    #[test]
    fn a_message_is_done_at_its_last_unit_of_work() {
        let mut p = PartitionOffsets::default();
        p.begin(10, 2);
        p.begin(11, 0);
        p.begin(12, 1);
        p.add_unit(12);
        p.add_unit(99); // not received here: nothing to count
        assert_eq!(p.complete(11), None, "done, but behind 10");
        assert_eq!(p.complete(10), None, "one of its two units left");
        assert_eq!(p.complete(10), Some(12));
        assert_eq!(p.complete(12), None, "one of its two units left");
        assert_eq!(p.complete(12), Some(13));
        assert_eq!(p.complete(12), None, "already released");
    }

    #[test]
    fn partitions_are_independent() {
        let mut t = OffsetTracker::default();
        t.begin(&tp(0), 0);
        t.begin(&tp(1), 0);
        assert_eq!(t.complete(&tp(1), 0), Some(1));
        assert_eq!(t.pending(), 1);
        assert_eq!(t.complete(&tp(0), 0), Some(1));
    }

    #[test]
    fn a_rewind_forgets_the_earlier_assignment() {
        let mut t = OffsetTracker::default();
        t.begin(&tp(0), 10);
        t.begin(&tp(0), 11);
        t.begin(&tp(0), 5);
        assert_eq!(t.pending(), 1);
        assert_eq!(t.complete(&tp(0), 10), None);
        assert_eq!(t.complete(&tp(0), 5), Some(6));
    }
}
