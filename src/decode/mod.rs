//! Raw bytes to normalized [`Record`]s: one file per log format.
//!
//! Every decoder works on an already parsed JSON object, so `auto` parses each
//! line once and dispatches on the keys it finds. Limits and required fields are
//! checked here, the same way for every format.

mod fields;
pub mod grants;
pub mod native;

use crate::model::{AccessEvent, Record};
use serde_json::{Map, Value};
use std::fmt;
use std::str::FromStr;

/// Input formats. `Auto` decides per record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    Auto,
    Native,
    Cloudtrail,
    /// Grant and lifecycle events (`schemas/grant-event.v1.schema.json`).
    Grants,
}

impl Format {
    pub const ALL: [Format; 4] = [Format::Auto, Format::Native, Format::Cloudtrail, Format::Grants];

    pub fn name(self) -> &'static str {
        match self {
            Format::Auto => "auto",
            Format::Native => "native",
            Format::Cloudtrail => "cloudtrail",
            Format::Grants => "grants",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Format::ALL.into_iter().find(|f| f.name() == s).ok_or_else(|| {
            let names: Vec<_> = Format::ALL.iter().map(|f| f.name()).collect();
            format!("unknown format `{s}`, expected one of {}", names.join(", "))
        })
    }
}

/// Size limits that protect the engine from hostile or broken input.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_line_bytes: usize,
    /// Longest identity, target or action accepted.
    pub max_field_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_line_bytes: 1 << 20, max_field_bytes: 1024 }
    }
}

/// Why a record was rejected. `Display` is the reason printed after `file:line: `.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("line is {len} bytes, over the limit of {max}")]
    LineTooLong { len: usize, max: usize },
    #[error("not valid UTF-8 (first bad byte at offset {0})")]
    NotUtf8(usize),
    #[error("not valid JSON: {0}")]
    InvalidJson(String),
    #[error("expected a JSON object, found {0}")]
    NotAnObject(&'static str),
    #[error("missing required field `{0}`")]
    MissingField(String),
    #[error("field `{field}` has the wrong type: expected {expected}, found {found}")]
    WrongType { field: String, expected: &'static str, found: &'static str },
    #[error("field `{field}` is {len} bytes, over the limit of {max}")]
    FieldTooLong { field: &'static str, len: usize, max: usize },
    #[error("field `{field}`: {reason}")]
    InvalidValue { field: String, reason: String },
    #[error("record matches no known format (expected {0})")]
    UnknownFormat(&'static str),
}

impl DecodeError {
    /// A bounded name for the reason, used as a metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            DecodeError::LineTooLong { .. } => "line_too_long",
            DecodeError::NotUtf8(_) => "not_utf8",
            DecodeError::InvalidJson(_) => "invalid_json",
            DecodeError::NotAnObject(_) => "not_an_object",
            DecodeError::MissingField(_) => "missing_field",
            DecodeError::WrongType { .. } => "wrong_type",
            DecodeError::FieldTooLong { .. } => "field_too_long",
            DecodeError::InvalidValue { .. } => "invalid_value",
            DecodeError::UnknownFormat(_) => "unknown_format",
        }
    }

    /// Prefixes the field path, for errors inside a nested record (e.g. `Records[3]`).
    pub fn within(self, prefix: &str) -> DecodeError {
        match self {
            DecodeError::MissingField(f) => DecodeError::MissingField(format!("{prefix}.{f}")),
            DecodeError::WrongType { field, expected, found } => {
                DecodeError::WrongType { field: format!("{prefix}.{field}"), expected, found }
            }
            DecodeError::InvalidValue { field, reason } => {
                DecodeError::InvalidValue { field: format!("{prefix}.{field}"), reason }
            }
            other => other,
        }
    }
}

/// What one input line decodes to: usually one record, several for a CloudTrail
/// log file object, none for a blank line or a record the format says to skip.
pub type Decoded = Vec<Result<Record, DecodeError>>;

/// Decodes one line of input. Never panics; a bad line yields one `Err`.
pub fn decode_line(line: &[u8], format: Format, limits: &Limits) -> Decoded {
    if line.len() > limits.max_line_bytes {
        return vec![Err(DecodeError::LineTooLong { len: line.len(), max: limits.max_line_bytes })];
    }
    let text = match std::str::from_utf8(line) {
        Ok(t) => t,
        Err(e) => return vec![Err(DecodeError::NotUtf8(e.valid_up_to()))],
    };
    if text.trim().is_empty() {
        return Vec::new();
    }
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return vec![Err(DecodeError::InvalidJson(e.to_string()))],
    };
    let mut out = decode_value(&value, format);
    for r in &mut out {
        if let Ok(Record::Access(ev)) = r {
            if let Err(e) = check_limits(ev, limits) {
                *r = Err(e);
            }
        }
    }
    out
}

/// Decodes one parsed JSON value in the given format.
pub fn decode_value(value: &Value, format: Format) -> Decoded {
    let Some(obj) = value.as_object() else {
        return vec![Err(DecodeError::NotAnObject(fields::type_name(value)))];
    };
    let format = match format {
        Format::Auto => match detect(obj) {
            Some(f) => f,
            None => return vec![Err(DecodeError::UnknownFormat(AUTO_EXPECTED))],
        },
        f => f,
    };
    match format {
        Format::Native => vec![native::decode(obj)],
        Format::Grants => vec![grants::decode(obj)],
        Format::Cloudtrail => unsupported(format),
        Format::Auto => unreachable!("auto was resolved above"),
    }
}

fn unsupported(format: Format) -> Decoded {
    vec![Err(DecodeError::UnknownFormat(match format {
        _ => "a decoder for this format",
    }))]
}

const AUTO_EXPECTED: &str = "native `identity`/`target`/`action`, grant `kind`, or CloudTrail `eventSource`/`Records`";

/// Recognizes a record's format by the keys only that format has.
fn detect(obj: &Map<String, Value>) -> Option<Format> {
    if obj.contains_key("eventSource") || obj.contains_key("Records") || obj.contains_key("eventVersion") {
        Some(Format::Cloudtrail)
    } else if obj.get("kind").and_then(Value::as_str).is_some_and(grants::is_kind) {
        Some(Format::Grants)
    } else if obj.contains_key("identity") || obj.contains_key("target") || obj.contains_key("action") {
        Some(Format::Native)
    } else {
        None
    }
}

fn check_limits(ev: &AccessEvent, limits: &Limits) -> Result<(), DecodeError> {
    for (field, value) in [("identity", &ev.identity), ("target", &ev.target), ("action", &ev.action)] {
        if value.len() > limits.max_field_bytes {
            return Err(DecodeError::FieldTooLong { field, len: value.len(), max: limits.max_field_bytes });
        }
    }
    Ok(())
}
