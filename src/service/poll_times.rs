//! When the records of one input partition that the order stage holds were polled, so that a
//! record's consume-to-acknowledged latency counts from its own poll: the partition's latest
//! poll would leave out the time the record waited in the stage for the other partitions.

use std::collections::VecDeque;
use std::time::Instant;

/// (first offset, instant) of each batch that gave records, oldest first. A record leaves the
/// stage after those before it in its partition (but for disorder within `lateness_s`), so
/// entries are forgotten as later ones are reached: at most one per record held, plus one.
#[derive(Debug, Default)]
pub struct PollTimes {
    batches: VecDeque<(i64, Instant)>,
}

impl PollTimes {
    /// A message at `offset`, which gave records, was polled at `at`.
    pub fn polled(&mut self, offset: i64, at: Instant) {
        if self.batches.back().is_none_or(|&(_, last)| last != at) {
            self.batches.push_back((offset, at));
        }
    }

    /// When the record at `offset` was polled, forgetting the batches before its own. One
    /// released after a later offset of its partition counts from the earliest poll still
    /// known; `None` if nothing was polled.
    pub fn released(&mut self, offset: i64) -> Option<Instant> {
        while self.batches.get(1).is_some_and(|&(first, _)| first <= offset) {
            self.batches.pop_front();
        }
        self.batches.front().map(|&(_, at)| at)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.batches.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_released_record_counts_from_the_poll_of_its_own_batch() {
        let t0 = Instant::now();
        let (t1, t2) = (t0 + Duration::from_millis(10), t0 + Duration::from_millis(20));
        let mut polls = PollTimes::default();
        for offset in 0..3 {
            polls.polled(offset, t0);
        }
        for offset in 3..5 {
            polls.polled(offset, t1);
        }
        polls.polled(5, t2);
        assert_eq!(polls.len(), 3, "one entry per batch");
        assert_eq!(polls.released(1), Some(t0));
        assert_eq!(polls.released(4), Some(t1));
        assert_eq!(polls.len(), 2, "the first batch is forgotten once a later one is reached");
        // Reordered within the allowance: an earlier offset after a later one.
        assert_eq!(polls.released(5), Some(t2));
        assert_eq!(polls.released(2), Some(t2));
        assert_eq!(polls.len(), 1);
    }

    #[test]
    fn nothing_polled_has_no_time() {
        assert_eq!(PollTimes::default().released(7), None);
    }
}
