//! Decayed counts of categorical values (calls, transitions, sources ...), and
//! the probability that the next value is one never seen before.

use serde::{Deserialize, Serialize};

/// Event time in whole minutes: baselines do not need finer time, and a `u32`
/// of minutes lasts until the year 10136.
pub type Minute = u32;

pub fn minute(t_ms: i64) -> Minute {
    (t_ms.max(0) / 60_000).min(u32::MAX as i64) as Minute
}

/// How fast old behaviour fades.
#[derive(Debug, Clone, Copy)]
pub struct Decay {
    pub half_life_min: f64,
}

impl Decay {
    /// The factor a weight keeps after `elapsed` minutes.
    pub fn factor(self, elapsed: Minute) -> f64 {
        if elapsed == 0 {
            1.0
        } else {
            (-(elapsed as f64) * std::f64::consts::LN_2 / self.half_life_min).exp()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Decayed weight as of `last`.
    pub weight: f32,
    /// Undecayed number of observations.
    pub hits: u32,
    pub first: Minute,
    pub last: Minute,
}

impl Entry {
    pub fn weight_at(&self, now: Minute, decay: Decay) -> f64 {
        self.weight as f64 * decay.factor(now.saturating_sub(self.last))
    }
}

/// Makes room for one more item in a list a baseline keeps for good, growing it by a quarter
/// (at least one) rather than doubling it from four as a `Vec` does: most of a baseline's dozen
/// lists hold one to three values for good (one network, one region, one outcome), and the
/// slack of four-item allocations was a sixth of the memory of an identity held.
pub fn make_room<T>(list: &mut Vec<T>) {
    if list.len() == list.capacity() {
        list.reserve_exact((list.len() / 4).max(1));
    }
}

/// A small map from value to decayed count, kept as a sorted vector: an
/// identity's repertoire is small, and a vector costs no per-entry overhead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(serialize = "K: Serialize", deserialize = "K: Deserialize<'de>"))]
pub struct Counts<K> {
    entries: Vec<(K, Entry)>,
}

impl<K> Default for Counts<K> {
    fn default() -> Self {
        Counts { entries: Vec::new() }
    }
}

/// What an identity's history says about a value it has not used before.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Novelty {
    /// Decayed number of observations.
    pub observations: f64,
    /// Distinct values seen.
    pub distinct: usize,
    /// Values seen exactly once.
    pub singletons: usize,
    /// Good-Turing estimate that the next observation is a new value,
    /// (n1 + 1) / (N + 1): the share of history that was a first sighting, with
    /// add-one so a history without singletons still leaves a little mass.
    pub p_unseen: f64,
}

impl Novelty {
    pub fn estimate(observations: f64, distinct: usize, singletons: usize) -> Novelty {
        let p_unseen = ((singletons as f64 + 1.0) / (observations + 1.0)).min(1.0);
        Novelty { observations, distinct, singletons, p_unseen }
    }
}

impl<K: Ord + Copy> Counts<K> {
    pub fn get(&self, key: K) -> Option<&Entry> {
        self.entries.binary_search_by(|(k, _)| k.cmp(&key)).ok().map(|i| &self.entries[i].1)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (K, &Entry)> {
        self.entries.iter().map(|(k, e)| (*k, e))
    }

    /// Records one observation; returns true when the value is new.
    ///
    /// A value counts at most once per clock hour: calls come in clusters (a CI
    /// run, a sync batch), and Good-Turing needs roughly independent draws. A
    /// runner network used for one run is then seen once, as it should be.
    pub fn observe(&mut self, key: K, now: Minute, decay: Decay) -> bool {
        match self.entries.binary_search_by(|(k, _)| k.cmp(&key)) {
            Ok(i) => {
                let e = &mut self.entries[i].1;
                if e.last / 60 != now / 60 {
                    e.weight = (e.weight_at(now, decay) + 1.0) as f32;
                    e.hits = e.hits.saturating_add(1);
                }
                e.last = e.last.max(now);
                false
            }
            Err(i) => {
                make_room(&mut self.entries);
                self.entries.insert(i, (key, Entry { weight: 1.0, hits: 1, first: now, last: now }));
                true
            }
        }
    }

    /// When more than `max` values are held, drops the weakest other than
    /// `keep` (lowest decayed weight, then least recently seen, then lowest
    /// key: deterministic) down to `max` less a sixteenth, and returns them. A
    /// hostile stream of distinct values then costs a bounded map and a
    /// bounded amount of work per value (one pass per sixteenth of `max` new
    /// values), and only pushes out weak values, never the strong ones an
    /// identity uses.
    pub fn shed(&mut self, max: usize, keep: K, now: Minute, decay: Decay) -> Vec<K> {
        if self.entries.len() <= max {
            return Vec::new();
        }
        let excess = self.entries.len() - (max - max / 16);
        let mut weakest: Vec<(f64, Minute, K)> = self
            .entries
            .iter()
            .filter(|(k, _)| *k != keep)
            .map(|(k, e)| (e.weight_at(now, decay), e.last, *k))
            .collect();
        let excess = excess.min(weakest.len());
        if excess == 0 {
            return Vec::new();
        }
        let order =
            |a: &(f64, Minute, K), b: &(f64, Minute, K)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2));
        weakest.select_nth_unstable_by(excess - 1, order);
        let mut gone: Vec<K> = weakest[..excess].iter().map(|w| w.2).collect();
        gone.sort_unstable();
        self.entries.retain(|(k, _)| gone.binary_search(k).is_err());
        gone
    }

    /// Checks what lookups rely on: keys strictly ascending (sorted, no repeats).
    pub fn check_sorted(&self) -> Result<(), String> {
        match self.entries.windows(2).position(|w| w[0].0 >= w[1].0) {
            Some(i) => Err(format!("values not sorted or repeated at position {}", i + 1)),
            None => Ok(()),
        }
    }

    /// Sorts the values again after their keys were renumbered out of order
    /// (an identity moved into another engine's name tables).
    pub fn resort(&mut self) {
        self.entries.sort_by_key(|e| e.0);
    }

    /// The keys, for visiting the ids they hold. A renumbering must keep their
    /// order (or be followed by `resort`), or lookups break.
    pub fn keys_mut(&mut self) -> impl Iterator<Item = &mut K> {
        self.entries.iter_mut().map(|(k, _)| k)
    }

    /// Drops values last seen before `cutoff`, returning them.
    pub fn forget_before(&mut self, cutoff: Minute) -> Vec<K> {
        let mut gone = Vec::new();
        self.entries.retain(|(k, e)| {
            let keep = e.last >= cutoff;
            if !keep {
                gone.push(*k);
            }
            keep
        });
        gone
    }

    /// The earliest minute any value was last seen, if any is held.
    pub fn oldest_last(&self) -> Option<Minute> {
        self.entries.iter().map(|(_, e)| e.last).min()
    }

    pub fn novelty(&self, now: Minute, decay: Decay) -> Novelty {
        self.novelty_where(now, decay, |_| true)
    }

    /// Novelty over the values that pass `filter` (e.g. the successors of one call).
    pub fn novelty_where(&self, now: Minute, decay: Decay, filter: impl Fn(K) -> bool) -> Novelty {
        let (mut observations, mut distinct, mut singletons) = (0.0, 0, 0);
        for (k, e) in &self.entries {
            if filter(*k) {
                observations += e.weight_at(now, decay);
                distinct += 1;
                singletons += usize::from(e.hits == 1);
            }
        }
        Novelty::estimate(observations, distinct, singletons)
    }

    /// The decayed share of observations that went to `key`.
    pub fn share(&self, key: K, now: Minute, decay: Decay) -> f64 {
        let total: f64 = self.entries.iter().map(|(_, e)| e.weight_at(now, decay)).sum();
        match self.get(key) {
            Some(e) if total > 0.0 => e.weight_at(now, decay) / total,
            _ => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DECAY: Decay = Decay { half_life_min: 30.0 * 24.0 * 60.0 };

    #[test]
    fn a_count_holds_room_for_what_it_holds_and_a_quarter_more() {
        let mut counts: Counts<u32> = Counts::default();
        counts.observe(7, 0, DECAY);
        assert_eq!(counts.entries.capacity(), 1, "one value, one slot (a Vec would hold four)");
        for value in 0..1000u32 {
            counts.observe(value, 0, DECAY);
            let (len, capacity) = (counts.entries.len(), counts.entries.capacity());
            assert!(capacity <= len + len / 4 + 1, "{len} values in {capacity} slots");
        }
    }

    #[test]
    fn weights_halve_after_a_half_life() {
        let mut c = Counts::default();
        assert!(c.observe(1u32, 0, DECAY));
        assert!(!c.observe(1u32, 60, DECAY));
        let e = c.get(1).unwrap();
        assert_eq!(e.hits, 2);
        let w = e.weight_at(30 * 24 * 60 + 60, DECAY);
        assert!((w - 1.0).abs() < 1e-3, "{w}");
    }

    #[test]
    fn a_value_counts_once_per_hour() {
        let mut c = Counts::default();
        for minute in [0, 5, 59, 60, 61] {
            c.observe(1u32, minute, DECAY);
        }
        assert_eq!(c.get(1).unwrap().hits, 2);
        assert_eq!(c.get(1).unwrap().last, 61);
    }

    #[test]
    fn a_narrow_history_makes_new_values_unlikely() {
        // A pipeline: 6 calls, each made 1000 times.
        let mut narrow = Counts::default();
        for k in 0..6u32 {
            for hour in 0..1000 {
                narrow.observe(k, hour * 60, DECAY);
            }
        }
        // An agent: 200 calls, 40 of them seen once.
        let mut broad = Counts::default();
        for k in 0..200u32 {
            let times = if k < 40 { 1 } else { 10 };
            for hour in 0..times {
                broad.observe(k, hour * 60, DECAY);
            }
        }
        let (n, b) = (narrow.novelty(0, DECAY), broad.novelty(0, DECAY));
        assert!(n.p_unseen < 0.002, "{n:?}");
        assert!(b.p_unseen > 0.02, "{b:?}");
        assert_eq!(b.singletons, 40);
        assert_eq!(b.distinct, 200);
    }

    #[test]
    fn a_full_map_sheds_its_weakest_values_and_keeps_the_strong() {
        let mut c = Counts::default();
        // Two strong values, seen every hour for a week.
        for hour in 0..168 {
            c.observe(1u32, hour * 60, DECAY);
            c.observe(2u32, hour * 60, DECAY);
        }
        // A flood of distinct values, one a minute.
        let mut shed = 0;
        for (i, minute) in (10_000..110_000u32).zip(10_000..) {
            c.observe(i, minute, DECAY);
            let gone = c.shed(64, i, minute, DECAY);
            assert!(!gone.contains(&i) && !gone.contains(&1) && !gone.contains(&2));
            assert!(c.len() <= 64);
            shed += gone.len();
        }
        // Every value but those held was shed once, five at a time.
        assert_eq!(shed, 100_002 - c.len());
        assert!(c.len() > 60 && c.get(1).is_some() && c.get(2).is_some());
        // Of the flood, the most recent values stay (the older ones decayed more).
        let oldest_kept = (10_000..110_000).find(|&k| c.get(k).is_some()).unwrap();
        assert_eq!((oldest_kept..110_000).count(), c.len() - 2);
        assert_eq!(c.check_sorted(), Ok(()));
    }

    #[test]
    fn ties_shed_the_least_recently_seen_then_the_lowest_key() {
        let mut c = Counts::default();
        c.observe(8u32, 50, DECAY);
        for k in [5u32, 3, 9] {
            c.observe(k, 100, DECAY);
        }
        assert_eq!(c.shed(3, 9, 100, DECAY), vec![8]);
        c.observe(7, 100, DECAY);
        assert_eq!(c.shed(2, 7, 100, DECAY), vec![3, 5]);
        assert_eq!(c.iter().map(|(k, _)| k).collect::<Vec<_>>(), vec![7, 9]);
    }

    #[test]
    fn forgetting_drops_only_old_values() {
        let mut c = Counts::default();
        c.observe(1u32, 10, DECAY);
        c.observe(2u32, 100, DECAY);
        assert_eq!(c.forget_before(50), vec![1]);
        assert!(c.get(1).is_none() && c.get(2).is_some());
    }
}
