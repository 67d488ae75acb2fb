//! Serializes a `HashMap` with string keys as a JSON object sorted by key: the
//! bytes a `BTreeMap` gives, for maps looked up on every call, where a hash
//! lookup costs one key comparison and a tree lookup a dozen. A map reads
//! back as it is (`serialize_with` only).

use serde::{Serialize, Serializer};
use std::collections::{BTreeMap, HashMap};

pub fn serialize<K, V, H, S>(map: &HashMap<K, V, H>, s: S) -> Result<S::Ok, S::Error>
where
    K: Serialize + Ord,
    V: Serialize,
    S: Serializer,
{
    map.iter().collect::<BTreeMap<&K, &V>>().serialize(s)
}
