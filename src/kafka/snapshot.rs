//! The state snapshot: engine baselines plus the consumer position they cover.
//!
//! File layout: one JSON header line (`format`, `version`, `positions`, and `held`: per input
//! partition, the records its order stage had read but not yet handed to the engine), then
//! the engine state exactly as `Engine::save_state` writes it (the format of replay's
//! `--state-out`; `tail -n +2 FILE` extracts it). A snapshot is only taken when every alert
//! caused by the records it covers has been acknowledged, so restarting from `positions`
//! with this engine state and these held records neither loses an alert nor counts a record
//! twice in a baseline. Written by the same writer as `--state-out` ([`state_file`]): a crash
//! leaves the old file or the new one. It is a cache: the state topic holds the truth, and a
//! partition is restored from whichever of the two is further on.

use super::handover::HeldRecord;
use super::TopicPartition;
use crate::engine::{Engine, EngineConfig, StateError};
use crate::state_file::{self, StateFileError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

const FORMAT: &str = "overreach-kafka-snapshot";
const VERSION: u32 = 1;

/// Per input partition, the next offset the engine state has not seen.
pub type Positions = BTreeMap<TopicPartition, i64>;

#[derive(Serialize, Deserialize)]
struct Header {
    format: String,
    version: u32,
    positions: Vec<Position>,
    #[serde(default)]
    held: Vec<Held>,
}

/// What one partition's order stage held.
#[derive(Serialize, Deserialize)]
struct Held {
    topic: String,
    partition: i32,
    records: Vec<HeldRecord>,
}

/// Per input partition, the records read and not yet handed to the engine.
pub type HeldRecords = BTreeMap<TopicPartition, Vec<HeldRecord>>;

#[derive(Serialize, Deserialize)]
struct Position {
    topic: String,
    partition: i32,
    next_offset: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("cannot read snapshot {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("snapshot {path}: header is not valid: expected a `{FORMAT}` version {VERSION} line, {reason}")]
    Header { path: PathBuf, reason: String },
    #[error("snapshot {path}: {source}")]
    State { path: PathBuf, source: StateError },
}

/// Writes the snapshot atomically (see [`state_file`]) and returns its size in bytes.
pub fn write(path: &Path, engine: &Engine, positions: &Positions, held: &HeldRecords) -> Result<u64, StateFileError> {
    let header = Header {
        format: FORMAT.to_string(),
        version: VERSION,
        positions: positions
            .iter()
            .map(|(tp, &next_offset)| Position { topic: tp.topic.clone(), partition: tp.partition, next_offset })
            .collect(),
        held: held
            .iter()
            .filter(|(_, records)| !records.is_empty())
            .map(|(tp, records)| Held { topic: tp.topic.clone(), partition: tp.partition, records: records.clone() })
            .collect(),
    };
    state_file::write(path, |w| {
        serde_json::to_writer(&mut *w, &header)?;
        w.write_all(b"\n")?;
        engine.save_state(w)
    })
}

/// Reads a snapshot; `Ok(None)` if there is none yet. `config` replaces the saved engine config.
pub fn read(path: &Path, config: EngineConfig) -> Result<Option<(Engine, Positions, HeldRecords)>, SnapshotError> {
    let io = |source| SnapshotError::Io { path: path.into(), source };
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    let mut r = BufReader::new(file);
    let mut line = String::new();
    r.read_line(&mut line).map_err(io)?;
    let bad = |reason: String| SnapshotError::Header { path: path.into(), reason };
    let header: Header = serde_json::from_str(&line).map_err(|e| bad(format!("found: {e}")))?;
    if header.format != FORMAT || header.version != VERSION {
        return Err(bad(format!("found `{}` version {}", header.format, header.version)));
    }
    let engine =
        Engine::load_state(config, &mut r).map_err(|source| SnapshotError::State { path: path.into(), source })?;
    let positions = header
        .positions
        .into_iter()
        .map(|p| (TopicPartition { topic: p.topic, partition: p.partition }, p.next_offset))
        .collect();
    let held = header
        .held
        .into_iter()
        .map(|h| (TopicPartition { topic: h.topic, partition: h.partition }, h.records))
        .collect();
    Ok(Some((engine, positions, held)))
}

/// The engine of a state file of either kind: a snapshot (its header line is skipped) or what
/// replay's `--state-out` writes (no header). For reading a state without running it (`explain`).
pub fn read_engine(path: &Path, config: EngineConfig) -> Result<Engine, SnapshotError> {
    let io = |source| SnapshotError::Io { path: path.into(), source };
    let mut r = BufReader::new(File::open(path).map_err(io)?);
    // A header is written with `format` first; an engine state (one long line) is not read twice.
    if r.fill_buf().map_err(io)?.starts_with(b"{\"format\":") {
        let mut line = String::new();
        r.read_line(&mut line).map_err(io)?;
        let header: Header = serde_json::from_str(&line)
            .map_err(|e| SnapshotError::Header { path: path.into(), reason: format!("found: {e}") })?;
        if header.format != FORMAT {
            let reason = format!("found `{}` version {}", header.format, header.version);
            return Err(SnapshotError::Header { path: path.into(), reason });
        }
    }
    Engine::load_state(config, &mut r).map_err(|source| SnapshotError::State { path: path.into(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_engine_takes_a_snapshot_or_a_replay_state() {
        use crate::model::{AccessEvent, Origin, Record};
        let dir = tempfile::tempdir().unwrap();
        let mut engine = Engine::new(EngineConfig::default());
        let event = AccessEvent {
            event_id: "e1".into(),
            identity: "role/ci".into(),
            target: "s3.amazonaws.com".into(),
            action: "GetObject".into(),
            ..AccessEvent::default()
        };
        engine.process(&Record::Access(Box::new(event)), &Origin::File { path: "t".into(), line: 1 });
        let snapshot = dir.path().join("state.snap");
        write(&snapshot, &engine, &Positions::new(), &HeldRecords::new()).unwrap();
        let replay = dir.path().join("state.json");
        state_file::write(&replay, |w| engine.save_state(w)).unwrap();
        for path in [&snapshot, &replay] {
            let read = read_engine(path, EngineConfig::default()).unwrap();
            assert_eq!(crate::explain::explain(&read, "role/ci").map(|v| v.events), Some(1), "{}", path.display());
        }
        std::fs::write(&snapshot, "{\"format\":\"other\",\"version\":1,\"positions\":[]}\n{}").unwrap();
        let refused = read_engine(&snapshot, EngineConfig::default()).err().unwrap().to_string();
        assert!(refused.contains("found `other` version 1"), "{refused}");
    }

    #[test]
    fn round_trips_engine_positions_and_held_records() {
        use crate::model::{AccessEvent, Record};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.snap");
        assert!(read(&path, EngineConfig::default()).unwrap().is_none());

        let engine = Engine::new(EngineConfig::default());
        let mut saved_engine = Vec::new();
        engine.save_state(&mut saved_engine).unwrap();
        let positions: Positions = [(TopicPartition { topic: "in".into(), partition: 3 }, 42)].into();
        let event =
            AccessEvent { identity: "i".into(), target: "t".into(), action: "a".into(), ..AccessEvent::default() };
        let held: HeldRecords = [(
            TopicPartition { topic: "in".into(), partition: 3 },
            vec![HeldRecord { offset: 41, record: Record::Access(Box::new(event)) }],
        )]
        .into();
        let size = write(&path, &engine, &positions, &held).unwrap();
        assert_eq!(size, std::fs::metadata(&path).unwrap().len());
        assert!(!dir.path().join("state.snap.tmp").exists());

        let (restored, got, got_held) = read(&path, EngineConfig::default()).unwrap().unwrap();
        assert_eq!(got, positions);
        // Records have no equality of their own; their JSON has.
        let as_json = |h: &HeldRecords| -> Vec<(TopicPartition, serde_json::Value)> {
            h.iter().map(|(tp, records)| (tp.clone(), serde_json::to_value(records).unwrap())).collect()
        };
        assert_eq!(as_json(&got_held), as_json(&held));
        let mut again = Vec::new();
        restored.save_state(&mut again).unwrap();
        assert_eq!(again, saved_engine);
        // The engine part is the replay `--state-out` format, after the header line.
        let text = std::fs::read(&path).unwrap();
        let body = &text[text.iter().position(|&b| b == b'\n').unwrap() + 1..];
        assert_eq!(body, &saved_engine[..]);
    }

    #[test]
    fn a_foreign_file_is_an_error_not_an_empty_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.snap");
        std::fs::write(&path, "{\"format\":\"something-else\",\"version\":1,\"positions\":[]}\n{}").unwrap();
        let err = match read(&path, EngineConfig::default()) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("a foreign header was accepted"),
        };
        assert!(err.contains("something-else"), "{err}");
    }
}
