//! Interned strings: baselines hold small integer ids instead of strings, which
//! keeps an identity's baseline small and its keys cheap to compare.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::HashMap;
use std::sync::Arc;

/// An interned string's id. Ids are handed out in order of first sight, so the
/// same input gives the same ids, and a saved interner restores them exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Sym(pub u32);

#[derive(Debug, Default, Clone)]
pub struct Interner {
    ids: HashMap<Arc<str>, Sym>,
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
}

/// The engine's names: interned strings and the table of call kinds.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Names {
    pub strings: Interner,
    #[serde(with = "call_table")]
    calls: (HashMap<super::CallKey, super::CallId>, Vec<super::CallKey>),
}

impl Names {
    pub fn intern(&mut self, s: &str) -> Sym {
        self.strings.intern(s)
    }

    pub fn call_id(&mut self, key: super::CallKey) -> super::CallId {
        let (ids, keys) = &mut self.calls;
        *ids.entry(key).or_insert_with(|| {
            keys.push(key);
            super::CallId(keys.len() as u32 - 1)
        })
    }

    pub fn call_key(&self, id: super::CallId) -> super::CallKey {
        self.calls.1[id.0 as usize]
    }

    /// A call as an analyst reads it: `target action [resource class]`.
    pub fn call_name(&self, id: super::CallId) -> String {
        if id == super::CallId::START {
            return "(session start)".to_string();
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
}

/// The call table is saved as its list of keys; the lookup map is rebuilt.
mod call_table {
    use super::super::{CallId, CallKey};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::HashMap;

    type Table = (HashMap<CallKey, CallId>, Vec<CallKey>);

    pub fn serialize<S: Serializer>(table: &Table, s: S) -> Result<S::Ok, S::Error> {
        table.1.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Table, D::Error> {
        let keys = Vec::<CallKey>::deserialize(d)?;
        let ids = keys.iter().enumerate().map(|(i, k)| (*k, CallId(i as u32))).collect();
        Ok((ids, keys))
    }
}
