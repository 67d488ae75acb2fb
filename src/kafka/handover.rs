//! What the service keeps in Kafka so that another instance can take a
//! partition over: the formats of its two topics, and reading a partition's
//! checkpoint back. docs/service.md describes both for operators.
//!
//! - The **state topic** (compacted, one partition per input partition, the
//!   input partition's number) holds each input partition's checkpoint:
//!   `state/<topic>/<partition>/<identity>` is one identity's whole state
//!   (`engine::transfer::IdentityState`) with the position it covers, and
//!   `partition/<topic>/<partition>` the partition's position and the records
//!   the order stage held at that point. Only the partition's owner reads it,
//!   when it is assigned the partition.
//! - The **fleet topic** (compacted) is the global table every instance reads
//!   whole: `share/<topic>/<partition>/<identity>` is one identity's share of
//!   the fleet facts (`facts::Contribution`), and `fact/<topic>/<partition>/<id>`
//!   a lifecycle fact read from that partition's logs (a role deleted, a key
//!   revoked) that may concern an identity held elsewhere.
//!
//! Every value is JSON with a `version`; a deletion is a tombstone (no value).
//! Topic names hold no `/`, so a key splits into its parts at the first three.

use crate::engine::transfer::IdentityState;
use crate::facts::Contribution;
use crate::kafka::TopicPartition;
use crate::model::{Lifecycle, Millis, Record};
use serde::{Deserialize, Serialize};

/// The version of every value this build writes and reads.
pub const VERSION: u32 = 1;

/// What a key of the state or fleet topic names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    State { tp: TopicPartition, identity: String },
    Partition { tp: TopicPartition },
    Share { tp: TopicPartition, identity: String },
    Fact { tp: TopicPartition, id: String },
}

impl Key {
    pub fn to_bytes(&self) -> Vec<u8> {
        let (kind, tp, rest) = match self {
            Key::State { tp, identity } => ("state", tp, identity.as_str()),
            Key::Partition { tp } => ("partition", tp, ""),
            Key::Share { tp, identity } => ("share", tp, identity.as_str()),
            Key::Fact { tp, id } => ("fact", tp, id.as_str()),
        };
        format!("{kind}/{}/{}/{rest}", tp.topic, tp.partition).into_bytes()
    }

    /// The key a record of either topic carries; `None` for anything else.
    pub fn parse(bytes: &[u8]) -> Option<Key> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut parts = text.splitn(4, '/');
        let (kind, topic, partition, rest) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let tp = TopicPartition { topic: topic.to_string(), partition: partition.parse().ok()? };
        Some(match kind {
            "state" => Key::State { tp, identity: rest.to_string() },
            "partition" if rest.is_empty() => Key::Partition { tp },
            "share" => Key::Share { tp, identity: rest.to_string() },
            "fact" => Key::Fact { tp, id: rest.to_string() },
            _ => return None,
        })
    }

    pub fn tp(&self) -> &TopicPartition {
        match self {
            Key::State { tp, .. } | Key::Partition { tp } | Key::Share { tp, .. } | Key::Fact { tp, .. } => tp,
        }
    }
}

/// One identity's state as of a checkpoint of its partition.
#[derive(Debug, Serialize, Deserialize)]
pub struct StateValue {
    pub version: u32,
    /// The partition's next offset when this state was written: the state
    /// holds every record of this identity before it.
    pub position: i64,
    pub state: IdentityState,
}

/// A partition's checkpoint: where reading resumes, and what the order stage
/// held then (read but not yet handed to the engine).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct PartitionValue {
    pub version: u32,
    pub position: i64,
    pub held: Vec<HeldRecord>,
}

/// A record the order stage held, with the offset of the message it came in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeldRecord {
    pub offset: i64,
    pub record: Record,
}

/// One identity's share of the fleet facts.
#[derive(Debug, Serialize, Deserialize)]
pub struct ShareValue {
    pub version: u32,
    pub share: Contribution,
}

/// A lifecycle fact read from a partition's logs.
#[derive(Debug, Serialize, Deserialize)]
pub struct FactValue {
    pub version: u32,
    pub time: Millis,
    pub fact: Lifecycle,
}

/// Why a value of the state or fleet topic was not used.
#[derive(Debug, thiserror::Error)]
pub enum ValueError {
    #[error("not valid JSON of its kind: {0}")]
    Json(#[from] serde_json::Error),
    #[error("version {0}, this build reads version {VERSION}")]
    Version(u32),
}

/// Reads a value, checking its version.
pub fn read<T: for<'de> Deserialize<'de> + Versioned>(bytes: &[u8]) -> Result<T, ValueError> {
    let value: T = serde_json::from_slice(bytes)?;
    match value.version() {
        VERSION => Ok(value),
        other => Err(ValueError::Version(other)),
    }
}

pub trait Versioned {
    fn version(&self) -> u32;
}

macro_rules! versioned {
    ($($t:ty),*) => {
        $(impl Versioned for $t {
            fn version(&self) -> u32 {
                self.version
            }
        })*
    };
}
versioned!(StateValue, PartitionValue, ShareValue, FactValue);

/// The checkpoint of one partition as read back from the state topic: the
/// latest value of each key (what compaction keeps), tombstones applied.
#[derive(Debug, Default)]
pub struct Checkpoint {
    pub partition: Option<PartitionValue>,
    /// Identity states by identity, as bytes: parsed only when used.
    pub states: std::collections::BTreeMap<String, Vec<u8>>,
    /// Values that could not be read, with why (a hostile or foreign record).
    pub unreadable: Vec<String>,
}

impl Checkpoint {
    /// Folds one record of the state topic in, if it is about `tp`.
    pub fn add(&mut self, tp: &TopicPartition, key: &[u8], value: Option<&[u8]>) {
        match (Key::parse(key), value) {
            (Some(Key::State { tp: of, identity }), value) if &of == tp => match value {
                Some(bytes) => {
                    self.states.insert(identity, bytes.to_vec());
                }
                None => {
                    self.states.remove(&identity);
                }
            },
            (Some(Key::Partition { tp: of }), Some(bytes)) if &of == tp => match read::<PartitionValue>(bytes) {
                Ok(value) => self.partition = Some(value),
                Err(e) => self.unreadable.push(format!("partition record: {e}")),
            },
            _ => {}
        }
    }

    /// The position the checkpoint resumes from; `None` when there is none.
    pub fn position(&self) -> Option<i64> {
        self.partition.as_ref().map(|p| p.position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(topic: &str, partition: i32) -> TopicPartition {
        TopicPartition { topic: topic.into(), partition }
    }

    #[test]
    fn keys_round_trip_with_slashes_in_identities_and_foreign_keys_are_none() {
        let keys = [
            Key::State { tp: tp("in", 3), identity: "arn:aws:iam::1:role/ci/deploy".into() },
            Key::Partition { tp: tp("in.logs", 0) },
            Key::Share { tp: tp("in", 11), identity: "a/b/c".into() },
            Key::Fact { tp: tp("in", 2), id: "e-1".into() },
        ];
        for key in keys {
            assert_eq!(Key::parse(&key.to_bytes()), Some(key.clone()), "{key:?}");
        }
        for foreign in [&b"state/in/x/id"[..], b"other/in/1/x", b"partition/in/1/extra", b"\xff\xfe", b"state/in"] {
            assert_eq!(Key::parse(foreign), None, "{foreign:?}");
        }
    }

    #[test]
    fn a_checkpoint_keeps_the_latest_value_of_its_own_keys_and_applies_tombstones() {
        let me = tp("in", 1);
        let mut c = Checkpoint::default();
        let state = |id: &str| Key::State { tp: me.clone(), identity: id.into() }.to_bytes();
        c.add(&me, &state("a"), Some(b"1"));
        c.add(&me, &state("b"), Some(b"2"));
        c.add(&me, &state("a"), Some(b"3"));
        c.add(&me, &state("b"), None);
        c.add(&me, &Key::State { tp: tp("in", 2), identity: "c".into() }.to_bytes(), Some(b"4"));
        let partition = |position| serde_json::to_vec(&PartitionValue { version: VERSION, position, held: vec![] });
        c.add(&me, &Key::Partition { tp: me.clone() }.to_bytes(), Some(&partition(10).unwrap()));
        c.add(&me, &Key::Partition { tp: me.clone() }.to_bytes(), Some(&partition(20).unwrap()));
        c.add(&me, &Key::Partition { tp: me.clone() }.to_bytes(), Some(b"{\"version\":9,\"position\":1,\"held\":[]}"));
        assert_eq!(c.states.keys().collect::<Vec<_>>(), ["a"]);
        assert_eq!(c.states["a"], b"3");
        assert_eq!(c.position(), Some(20));
        assert_eq!(c.unreadable, ["partition record: version 9, this build reads version 1"]);
    }
}
