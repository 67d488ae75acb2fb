//! Typed access to JSON fields, with errors that name the field and the types.

use super::DecodeError;
use crate::model::{EventText, Millis};
use serde_json::{Map, Value};

pub type Obj = Map<String, Value>;

pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub fn wrong(field: &str, expected: &'static str, found: &Value) -> DecodeError {
    DecodeError::WrongType { field: field.to_string(), expected, found: type_name(found) }
}

/// A string field that must be present and non-empty.
pub fn req_str<'a>(obj: &'a Obj, field: &str) -> Result<&'a str, DecodeError> {
    match opt_str(obj, field)? {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(DecodeError::MissingField(field.to_string())),
    }
}

/// A string field that may be absent or null; an empty string counts as absent.
pub fn opt_str<'a>(obj: &'a Obj, field: &str) -> Result<Option<&'a str>, DecodeError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(wrong(field, "a string", other)),
    }
}

/// `opt_str` owned, as a `String` or an event's text.
pub fn opt_string<T: for<'a> From<&'a str>>(obj: &Obj, field: &str) -> Result<Option<T>, DecodeError> {
    Ok(opt_str(obj, field)?.map(T::from))
}

/// An array of strings; absent or null is empty.
pub fn str_list(obj: &Obj, field: &str) -> Result<Vec<EventText>, DecodeError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(EventText::from(s.as_str())),
                other => Err(wrong(field, "an array of strings", other)),
            })
            .collect(),
        Some(other) => Err(wrong(field, "an array of strings", other)),
    }
}

/// A time: RFC 3339 string or epoch milliseconds. Absent or null is `None`.
pub fn opt_time(obj: &Obj, field: &str) -> Result<Option<Millis>, DecodeError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v @ (Value::String(_) | Value::Number(_))) => match crate::time::parse_json_time(v) {
            Some(t) => in_range(field, t, v).map(Some),
            None => Err(DecodeError::InvalidValue {
                field: field.to_string(),
                reason: format!("expected an RFC 3339 time or epoch milliseconds, found {v}"),
            }),
        },
        Some(other) => Err(wrong(field, "an RFC 3339 string or epoch milliseconds", other)),
    }
}

/// A parsed time, if it lies in the years every record must (see `time::in_range`).
pub fn in_range(field: &str, t: Millis, found: &dyn std::fmt::Display) -> Result<Millis, DecodeError> {
    if crate::time::in_range(t) {
        return Ok(t);
    }
    Err(DecodeError::InvalidValue {
        field: field.to_string(),
        reason: format!("expected a time from 1970-01-01 to 9999-12-31, found {found}"),
    })
}

pub fn req_time(obj: &Obj, field: &str) -> Result<Millis, DecodeError> {
    opt_time(obj, field)?.ok_or_else(|| DecodeError::MissingField(field.to_string()))
}

/// A time in a vendor log: RFC 3339, or `YYYY-MM-DD HH:MM:SS[.fraction]` (with a space or
/// a `T`) and no zone, read as UTC. CloudTrail, Cloud Audit Logs and Kubernetes audit all
/// log in UTC; data lakes that re-export them (Athena, Panther) drop the `T` and the `Z`.
/// Absent or null is `None`.
pub fn opt_utc_time(obj: &Obj, field: &str) -> Result<Option<Millis>, DecodeError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => utc_time(field, s, "an RFC 3339 or `YYYY-MM-DD HH:MM:SS` UTC time").map(Some),
        Some(other) => Err(wrong(field, "a time string", other)),
    }
}

pub fn req_utc_time(obj: &Obj, field: &str) -> Result<Millis, DecodeError> {
    opt_utc_time(obj, field)?.ok_or_else(|| DecodeError::MissingField(field.to_string()))
}

/// A vendor time string (see `parse_utc_time`) in the accepted range; `expected`
/// words what the field should hold.
pub fn utc_time(field: &str, s: &str, expected: &str) -> Result<Millis, DecodeError> {
    match parse_utc_time(s) {
        Some(t) => in_range(field, t, &format_args!("{s:?}")),
        None => Err(DecodeError::InvalidValue {
            field: field.to_string(),
            reason: format!("expected {expected}, found {s:?}"),
        }),
    }
}

pub fn parse_utc_time(s: &str) -> Option<Millis> {
    use chrono::NaiveDateTime;
    crate::time::parse_rfc3339(s).or_else(|| {
        ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
            .iter()
            .find_map(|fmt| NaiveDateTime::parse_from_str(s, fmt).ok())
            .map(|t| t.and_utc().timestamp_millis())
    })
}

/// An object field that must be present.
pub fn req_obj<'a>(obj: &'a Obj, field: &str) -> Result<&'a Obj, DecodeError> {
    opt_obj(obj, field)?.ok_or_else(|| DecodeError::MissingField(field.to_string()))
}

/// An object field that may be absent or null.
pub fn opt_obj<'a>(obj: &'a Obj, field: &str) -> Result<Option<&'a Obj>, DecodeError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(other) => Err(wrong(field, "an object", other)),
    }
}

/// Follows a dotted path through nested objects, returning the string at its end.
/// Anything missing or of another type on the way yields `None`: used for optional,
/// deeply nested vendor fields where absence is normal.
pub fn path_str<'a>(obj: &'a Obj, path: &[&str]) -> Option<&'a str> {
    let (last, parents) = path.split_last()?;
    let mut cur = obj;
    for key in parents {
        cur = cur.get(*key)?.as_object()?;
    }
    cur.get(*last)?.as_str().filter(|s| !s.is_empty())
}

/// Follows a path through nested objects to an object; `None` on anything else.
pub fn path_obj<'a>(obj: &'a Obj, path: &[&str]) -> Option<&'a Obj> {
    path.iter().try_fold(obj, |cur, key| cur.get(*key)?.as_object())
}

/// The first of several alternative string fields that is present and non-empty.
pub fn first_str<'a>(obj: &'a Obj, fields: &[&str]) -> Option<&'a str> {
    fields.iter().find_map(|f| path_str(obj, &[f]))
}

/// A stable id for a record that has none: a hash of its canonical JSON text.
pub fn derived_id(obj: &Obj) -> EventText {
    use sha2::{Digest, Sha256};
    // serde_json's Map keeps keys sorted, so the text is canonical for equal content.
    let text = serde_json::to_string(obj).unwrap_or_default();
    let digest = Sha256::digest(text.as_bytes());
    compact_str::format_compact!("h:{}", crate::text::hex(&digest[..16]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_time_accepts_rfc3339_and_zoneless_utc() {
        let cases = [
            ("2024-06-02T19:41:40Z", Some(1717357300000)),
            ("2024-06-02T21:41:40+02:00", Some(1717357300000)),
            ("2024-06-02 19:41:40", Some(1717357300000)),
            ("2024-06-02 19:41:40.250000000", Some(1717357300250)),
            ("2024-06-02T19:41:40.25", Some(1717357300250)),
            ("redacted", None),
            ("2024-06-02", None),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_utc_time(input), expected, "{input}");
        }
    }
}
