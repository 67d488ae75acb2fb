//! Interned strings: baselines hold small integer ids instead of strings, which
//! keeps an identity's baseline small and its keys cheap to compare.
//!
//! Names are collected like garbage: evicted identities and forgotten values
//! leave names nothing refers to, and an attacker's stream of distinct names
//! would otherwise grow the tables without bound. `Ids` is the one place each
//! structure says which of its fields hold ids; the engine uses it to find the
//! live names, to renumber them after a collection, and to check a loaded state.

use super::{CallId, CallKey};
use crate::model::Millis;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

/// An interned string's id. Ids are handed out in order of first sight, so the
/// same input gives the same ids, and a saved interner restores them exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Sym(pub u32);

#[derive(Debug, Default, Clone)]
pub struct Interner {
    ids: TextMap<Arc<str>, Sym>,
    names: Vec<Arc<str>>,
}

impl Interner {
    pub fn intern(&mut self, s: &str) -> Sym {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = Sym(self.names.len() as u32);
        let name: Arc<str> = Arc::from(s);
        self.names.push(name.clone());
        self.ids.insert(name, id);
        id
    }

    /// The id of a string already interned, without adding it.
    pub fn get(&self, s: &str) -> Option<Sym> {
        self.ids.get(s).copied()
    }

    pub fn name(&self, id: Sym) -> &str {
        &self.names[id.0 as usize]
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Keeps the names `live` marks, in their order.
    fn retain(&mut self, live: &[bool]) {
        let names = std::mem::take(&mut self.names);
        self.ids.clear();
        for (name, _) in names.into_iter().zip(live).filter(|(_, live)| **live) {
            self.ids.insert(name.clone(), Sym(self.names.len() as u32));
            self.names.push(name);
        }
    }
}

/// A hash map keyed by text that compares keys itself (`same`) instead of through libc's
/// `memcmp`: the names of a call are mostly short, and calling `memcmp` for each name looked
/// up cost more than the comparison (it led the profile of the Kafka service's loop at 14%).
#[derive(Debug, Clone)]
pub struct TextMap<K, V> {
    table: hashbrown::HashTable<(K, V)>,
    hasher: foldhash::fast::RandomState,
}

impl<K, V> Default for TextMap<K, V> {
    fn default() -> Self {
        TextMap { table: hashbrown::HashTable::new(), hasher: foldhash::fast::RandomState::default() }
    }
}

impl<K: std::borrow::Borrow<str>, V> TextMap<K, V> {
    pub fn get(&self, key: &str) -> Option<&V> {
        self.table.find(self.hasher.hash_one(key), |(k, _)| crate::text::same(k.borrow(), key)).map(|(_, v)| v)
    }

    /// Sets the value of `key`, in place of the one it had.
    pub fn insert(&mut self, key: K, value: V) {
        let hasher = &self.hasher;
        let hash = hasher.hash_one(key.borrow());
        match self.table.find_mut(hash, |(k, _)| crate::text::same(k.borrow(), key.borrow())) {
            Some(entry) => entry.1 = value,
            None => {
                self.table.insert_unique(hash, (key, value), |(k, _)| hasher.hash_one(k.borrow()));
            }
        }
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    pub fn clear(&mut self) {
        self.table.clear();
    }
}

impl Serialize for Interner {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.names.iter().map(|n| &**n))
    }
}

impl<'de> Deserialize<'de> for Interner {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let names: Vec<String> = Vec::deserialize(d)?;
        let mut interner = Interner::default();
        for n in &names {
            interner.intern(n);
        }
        if interner.len() != names.len() {
            return Err(serde::de::Error::custom("interner holds a name twice"));
        }
        Ok(interner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ties in last use are broken by key, so which entries go does not depend on the map's
    /// order (each map's seed is random: five maps, five orders).
    #[test]
    fn the_least_recently_used_go_first_and_ties_go_by_key() {
        for _ in 0..5 {
            let mut map: FastMap<String, Millis> = (0..40).map(|i| (format!("k{i:02}"), i / 4)).collect();
            forget_least_recent(&mut map, 32, |&at| at);
            // 40 entries (last used at 0 to 9, four keys each) past a bound of 32 leave 30: the
            // ten oldest go, those used at 0 and 1, and of those used at 2 the keys k08, k09.
            let mut kept: Vec<&str> = map.keys().map(String::as_str).collect();
            kept.sort_unstable();
            let want: Vec<String> = (10..40).map(|i| format!("k{i:02}")).collect();
            assert_eq!(kept, want);
        }
    }

    #[test]
    fn ids_are_stable_and_survive_a_round_trip() {
        let mut i = Interner::default();
        let a = i.intern("s3");
        let b = i.intern("iam");
        assert_eq!(i.intern("s3"), a);
        assert_ne!(a, b);
        let back: Interner = serde_json::from_str(&serde_json::to_string(&i).unwrap()).unwrap();
        assert_eq!(back.get("iam"), Some(b));
        assert_eq!(back.name(a), "s3");
    }

    #[test]
    fn a_calls_reach_is_its_text_hashed_through_a_collection_and_a_save() {
        let mut names = Names::default();
        let key = |names: &mut Names, target: &str, class: &str| CallKey {
            target: names.intern(target),
            action: names.intern("GetObject"),
            class: names.intern(class),
        };
        let gone = key(&mut names, "ec2", "");
        names.call(gone);
        let kept = key(&mut names, "s3", "bucket/finance/*");
        let (call, op) = names.call(kept);
        let reach = |target: &str, prefix: &str| super::super::stable_hash_parts(&[target, prefix]);
        assert_eq!(names.reach_of(call), reach("s3", "bucket/finance"));
        assert_eq!(names.reach_of(op), reach("s3", ""));

        // Only the kept call (and its operation and names) survive; ids move, reaches stay.
        let mut live = Live::new(&names);
        live.call(&mut call.clone());
        live.close_over_calls(&names);
        let mut renumber = names.retain(&live);
        let mut moved = call;
        renumber.call(&mut moved);
        assert_ne!(moved, call, "the collection renumbered the call");
        assert_eq!(names.reach_of(moved), reach("s3", "bucket/finance"));

        let mut back: Names = serde_json::from_str(&serde_json::to_string(&names).unwrap()).unwrap();
        back.index().unwrap();
        assert_eq!(back.reach_of(moved), reach("s3", "bucket/finance"));
    }

    proptest::proptest! {
        #[test]
        fn a_text_map_holds_what_a_hash_map_holds(keys in proptest::collection::vec("[a-c]{0,12}", 0..40)) {
            let (mut map, mut reference) = (TextMap::default(), std::collections::HashMap::new());
            for (value, key) in keys.iter().enumerate() {
                map.insert(key.clone(), value);
                reference.insert(key.clone(), value);
            }
            proptest::prop_assert_eq!(map.len(), reference.len());
            for key in &keys {
                proptest::prop_assert_eq!(map.get(key), reference.get(key));
            }
            proptest::prop_assert_eq!(map.get("d"), None);
        }
    }
}

/// Something that holds interned ids (`Sym`, `CallId`).
pub trait Ids {
    /// Hands every id held to `v`, which may rewrite it.
    fn visit_ids(&mut self, v: &mut dyn IdVisitor);
}

/// What is done with each id: marking it live, renumbering it, checking it.
/// `CallId::START` and `CallId::END` are not ids of the table and are handed
/// on as well: every visitor leaves them alone.
pub trait IdVisitor {
    fn sym(&mut self, s: &mut Sym);
    fn call(&mut self, c: &mut CallId);
}

impl Ids for Sym {
    fn visit_ids(&mut self, v: &mut dyn IdVisitor) {
        v.sym(self)
    }
}

impl Ids for CallId {
    fn visit_ids(&mut self, v: &mut dyn IdVisitor) {
        v.call(self)
    }
}

impl<A: Ids, B: Ids> Ids for (A, B) {
    fn visit_ids(&mut self, v: &mut dyn IdVisitor) {
        self.0.visit_ids(v);
        self.1.visit_ids(v);
    }
}

impl Ids for CallKey {
    fn visit_ids(&mut self, v: &mut dyn IdVisitor) {
        for s in [&mut self.target, &mut self.action, &mut self.class] {
            v.sym(s);
        }
    }
}

impl<T: Ids> Ids for Option<T> {
    fn visit_ids(&mut self, v: &mut dyn IdVisitor) {
        if let Some(t) = self {
            t.visit_ids(v);
        }
    }
}

impl<T: Ids> Ids for Box<T> {
    fn visit_ids(&mut self, v: &mut dyn IdVisitor) {
        (**self).visit_ids(v);
    }
}

impl<T: Ids> Ids for Vec<T> {
    fn visit_ids(&mut self, v: &mut dyn IdVisitor) {
        self.iter_mut().for_each(|t| t.visit_ids(v));
    }
}

/// A map is rebuilt: its keys may be renumbered.
impl<K: Ids + Eq + Hash, V: Ids, S: BuildHasher + Default> Ids for HashMap<K, V, S> {
    fn visit_ids(&mut self, v: &mut dyn IdVisitor) {
        *self = self
            .drain()
            .map(|(mut k, mut val)| {
                k.visit_ids(v);
                val.visit_ids(v);
                (k, val)
            })
            .collect();
    }
}

/// Times, counts and hashes hold no ids.
macro_rules! no_ids {
    ($($t:ty),*) => {
        $(impl Ids for $t {
            fn visit_ids(&mut self, _: &mut dyn IdVisitor) {}
        })*
    };
}
no_ids!(u32, u64, i64, String);

/// The hash map of the per-event path (interned names, identities, call
/// tables): foldhash instead of SipHash, which took a tenth of a replay's
/// time. Its seed is random per process, so keys an attacker chooses (names
/// in logs) cannot be aimed at one bucket in advance; iteration order was
/// never relied on (state files sort, see `pairs`).
pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Past `max` entries, forgets the least recently used (`last_use`, ties by key, so the same
/// input forgets the same entries) down to `max` less a sixteenth: one pass per sixteenth of
/// `max` new entries, so a map whose keys a record chooses costs bounded memory and bounded
/// work per record, and an entry in use stays.
pub fn forget_least_recent<K: Ord + Clone + Hash + Eq, V>(
    map: &mut FastMap<K, V>,
    max: usize,
    last_use: impl Fn(&V) -> Millis,
) {
    if map.len() <= max {
        return;
    }
    let mut by_last_use: Vec<(Millis, &K)> = map.iter().map(|(key, value)| (last_use(value), key)).collect();
    let excess = by_last_use.len() - (max - max / 16);
    by_last_use.select_nth_unstable(excess - 1);
    let forgotten: Vec<K> = by_last_use[..excess].iter().map(|&(_, key)| key.clone()).collect();
    for key in forgotten {
        map.remove(&key);
    }
}

/// A map keyed by call id, hashed by one multiplication: ids are small
/// integers handed out in order, and per-call scratch maps are hot.
pub type IdMap<V> = HashMap<CallId, V, std::hash::BuildHasherDefault<IdHash>>;

#[derive(Default)]
pub struct IdHash(u64);

impl std::hash::Hasher for IdHash {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u8(b);
        }
    }

    fn write_u8(&mut self, b: u8) {
        self.write_u32(b as u32);
    }

    fn write_u32(&mut self, n: u32) {
        // Fibonacci hashing: spreads consecutive ids over the table.
        self.0 = (self.0 ^ n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// The engine's names: interned strings and the table of call kinds, with the
/// operation (the call without its resource class) and the reach of each call.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Names {
    pub strings: Interner,
    #[serde(with = "call_table")]
    calls: (FastMap<CallKey, CallId>, Vec<CallKey>),
    /// What each call's key gives, by call id: derived (see `index`).
    #[serde(skip)]
    derived: Vec<CallDerived>,
    /// The id of the empty string, the class of an operation, once interned: every call
    /// looked it up.
    #[serde(skip)]
    no_class: Option<Sym>,
}

/// What a call's key gives, worked out once when the call enters the table.
#[derive(Debug, Clone, Copy)]
struct CallDerived {
    op: CallId,
    /// Where the call lands (`reach`): hashing its text on every call cost about 1% of a
    /// replay's instructions.
    reach: u64,
}

impl Names {
    pub fn intern(&mut self, s: &str) -> Sym {
        self.strings.intern(s)
    }

    /// The class of a call without a resource, and of an operation: the empty string.
    pub fn no_class(&mut self) -> Sym {
        match self.no_class {
            Some(id) => id,
            None => *self.no_class.insert(self.strings.intern("")),
        }
    }

    /// The ids of a call and of its operation, adding them to the table when new.
    pub fn call(&mut self, key: CallKey) -> (CallId, CallId) {
        let no_class = self.no_class();
        let op = self.add_call(CallKey { class: no_class, ..key }, None);
        (self.add_call(key, Some(op)), op)
    }

    /// `op`: the call's operation; `None` for an operation (its own).
    fn add_call(&mut self, key: CallKey, op: Option<CallId>) -> CallId {
        let (ids, keys) = &mut self.calls;
        if let Some(&id) = ids.get(&key) {
            return id;
        }
        let id = CallId(keys.len() as u32);
        keys.push(key);
        ids.insert(key, id);
        let reach = reach(&self.strings, key);
        self.derived.push(CallDerived { op: op.unwrap_or(id), reach });
        id
    }

    pub fn call_key(&self, id: CallId) -> CallKey {
        self.calls.1[id.0 as usize]
    }

    /// The operation (target and action) of a call.
    pub fn op_of(&self, id: CallId) -> CallId {
        self.derived[id.0 as usize].op
    }

    /// Where a call lands: its target and the top of its resource class (`reach`).
    pub fn reach_of(&self, id: CallId) -> u64 {
        self.derived[id.0 as usize].reach
    }

    /// Calls in the table.
    pub fn call_count(&self) -> usize {
        self.calls.1.len()
    }

    /// A call as an analyst reads it: `target action [resource class]`.
    pub fn call_name(&self, id: CallId) -> String {
        match id {
            CallId::START => return "(session start)".to_string(),
            CallId::END => return "(session end)".to_string(),
            _ => {}
        }
        let key = self.call_key(id);
        let (target, action, class) =
            (self.strings.name(key.target), self.strings.name(key.action), self.strings.name(key.class));
        if class.is_empty() {
            format!("{target} {action}")
        } else {
            format!("{target} {action} {class}")
        }
    }

    pub fn name(&self, s: Sym) -> &str {
        self.strings.name(s)
    }

    /// After loading: checks that the call table names only strings it has,
    /// holds no call twice and has every call's operation, and derives what each call's
    /// key gives (`CallDerived`).
    pub fn index(&mut self) -> Result<(), String> {
        let (ids, keys) = &self.calls;
        let strings = self.strings.len();
        let mut derived = Vec::with_capacity(keys.len());
        for (i, key) in keys.iter().enumerate() {
            if let Some(s) = [key.target, key.action, key.class].into_iter().find(|s| s.0 as usize >= strings) {
                return Err(format!("call {i}: name id {} out of range (table has {strings})", s.0));
            }
            if ids.get(key) != Some(&CallId(i as u32)) {
                return Err(format!("call {i}: the same call is in the table twice"));
            }
            let op_key = CallKey { class: self.strings.get("").unwrap_or(Sym(u32::MAX)), ..*key };
            match ids.get(&op_key) {
                Some(&op) => derived.push(CallDerived { op, reach: reach(&self.strings, *key) }),
                None => return Err(format!("call {i}: its operation is not in the table")),
            }
        }
        self.derived = derived;
        self.no_class = self.strings.get("");
        Ok(())
    }

    /// Keeps only the names and calls `live` marks (the calls' operations and
    /// strings must be marked too), renumbering them in their order, and returns
    /// the renumbering for everything that holds ids.
    pub fn retain(&mut self, live: &Live) -> Renumber {
        let mut renumber = Renumber { strings: new_ids(&live.strings), calls: new_ids(&live.calls) };
        self.strings.retain(&live.strings);
        self.no_class = self.strings.get("");
        let (ids, keys) = &mut self.calls;
        let (old_keys, old_derived) = (std::mem::take(keys), std::mem::take(&mut self.derived));
        ids.clear();
        for ((mut key, mut derived), _) in
            old_keys.into_iter().zip(old_derived).zip(&live.calls).filter(|(_, live)| **live)
        {
            key.visit_ids(&mut renumber);
            renumber.call(&mut derived.op);
            ids.insert(key, CallId(keys.len() as u32));
            keys.push(key);
            self.derived.push(derived);
        }
        renumber
    }
}

/// A call's reach: its target and the top two levels of its resource class
/// (`resource_prefix`), hashed: the unit fan-out is counted in.
fn reach(strings: &Interner, key: CallKey) -> u64 {
    let class = strings.name(key.class);
    super::stable_hash_parts(&[strings.name(key.target), crate::features::resource_prefix(class)])
}

/// New ids for the marked entries, in their order; `u32::MAX` for the rest.
fn new_ids(live: &[bool]) -> Vec<u32> {
    let mut next = 0;
    live.iter()
        .map(|&l| {
            if l {
                next += 1;
                next - 1
            } else {
                u32::MAX
            }
        })
        .collect()
}

/// The names and calls found in use, by id.
#[derive(Debug)]
pub struct Live {
    strings: Vec<bool>,
    calls: Vec<bool>,
}

impl Live {
    pub fn new(names: &Names) -> Live {
        Live { strings: vec![false; names.strings.len()], calls: vec![false; names.call_count()] }
    }

    /// Marks what the live calls name: their operations and strings.
    pub fn close_over_calls(&mut self, names: &Names) {
        for i in 0..self.calls.len() {
            if self.calls[i] {
                self.calls[names.derived[i].op.0 as usize] = true;
            }
        }
        for i in 0..self.calls.len() {
            if self.calls[i] {
                let mut key = names.calls.1[i];
                key.visit_ids(self);
            }
        }
    }

    /// (strings, calls) marked.
    pub fn counts(&self) -> (usize, usize) {
        let n = |v: &[bool]| v.iter().filter(|&&l| l).count();
        (n(&self.strings), n(&self.calls))
    }
}

impl IdVisitor for Live {
    fn sym(&mut self, s: &mut Sym) {
        if let Some(l) = self.strings.get_mut(s.0 as usize) {
            *l = true;
        }
    }

    fn call(&mut self, c: &mut CallId) {
        if let Some(l) = self.calls.get_mut(c.0 as usize) {
            *l = true;
        }
    }
}

/// Old ids to new after a collection; order-preserving, so sorted maps stay sorted.
#[derive(Debug)]
pub struct Renumber {
    strings: Vec<u32>,
    calls: Vec<u32>,
}

impl IdVisitor for Renumber {
    fn sym(&mut self, s: &mut Sym) {
        s.0 = self.strings[s.0 as usize];
    }

    fn call(&mut self, c: &mut CallId) {
        if !c.is_marker() {
            c.0 = self.calls[c.0 as usize];
        }
    }
}

/// Checks that every id is in the tables, naming the first that is not.
pub struct RangeCheck {
    strings: usize,
    calls: usize,
    pub error: Option<String>,
}

impl RangeCheck {
    pub fn new(names: &Names) -> RangeCheck {
        RangeCheck { strings: names.strings.len(), calls: names.call_count(), error: None }
    }
}

impl IdVisitor for RangeCheck {
    fn sym(&mut self, s: &mut Sym) {
        if s.0 as usize >= self.strings && self.error.is_none() {
            self.error = Some(format!("name id {} out of range (table has {})", s.0, self.strings));
        }
    }

    fn call(&mut self, c: &mut CallId) {
        if !c.is_marker() && c.0 as usize >= self.calls && self.error.is_none() {
            self.error = Some(format!("call id {} out of range (table has {})", c.0, self.calls));
        }
    }
}

/// The call table is saved as its list of keys; the lookup map is rebuilt.
mod call_table {
    use super::super::{CallId, CallKey};
    use super::FastMap;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    type Table = (FastMap<CallKey, CallId>, Vec<CallKey>);

    pub fn serialize<S: Serializer>(table: &Table, s: S) -> Result<S::Ok, S::Error> {
        table.1.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Table, D::Error> {
        let keys = Vec::<CallKey>::deserialize(d)?;
        let ids = keys.iter().enumerate().map(|(i, k)| (*k, CallId(i as u32))).collect();
        Ok((ids, keys))
    }
}
