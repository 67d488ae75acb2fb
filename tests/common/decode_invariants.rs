//! What every result of `decode_line` must satisfy, on any input: shared by the
//! property tests (`tests/fuzz_decoders.rs`) and the cargo-fuzz targets (`fuzz/`).

use overreach::decode::{decode_line, decode_value, Decoded, Format, Limits};
use overreach::model::{Lifecycle, Record};
use overreach::time::in_range;

/// Longest reason `Display` may give: each quoted string is cut to 256 bytes,
/// and escaping a control character takes at most 8.
pub const MAX_REASON_BYTES: usize = 5000;

/// Decodes `line` and checks every result: accepted records keep the limits
/// (key fields and any region bounded and not blank, times from 1970 to 9999), and every
/// reason is one printable line of bounded length. Panics (a fuzz finding)
/// are left to the caller's harness to catch.
pub fn check(line: &[u8], format: Format, limits: &Limits) -> Result<(), String> {
    let decoded = decode_line(line, format, limits);
    same_as_the_general_path(line, format, &decoded)?;
    for result in decoded {
        match result {
            Ok(Record::Access(e)) => {
                let keys = [("identity", &e.identity), ("target", &e.target), ("action", &e.action)];
                for (name, value) in keys.into_iter().chain(e.region.as_ref().map(|r| ("region", r))) {
                    if value.len() > limits.max_field_bytes || value.trim().is_empty() {
                        return Err(format!("{name} {value:?} accepted"));
                    }
                }
                if !in_range(e.time) || !e.credential_expires_at.is_none_or(in_range) {
                    return Err(format!("times {} / {:?} accepted", e.time, e.credential_expires_at));
                }
            }
            Ok(Record::Lifecycle { time, fact, .. }) => {
                let times = match &*fact {
                    Lifecycle::Grant(g) => vec![g.not_before, g.expires_at],
                    Lifecycle::CredentialIssued { expires_at, .. } => vec![Some(*expires_at)],
                    _ => vec![],
                };
                if !in_range(time) || !times.into_iter().flatten().all(in_range) {
                    return Err(format!("lifecycle at {time} accepted: {fact:?}"));
                }
            }
            Ok(Record::Verdict(v)) => {
                let hex = v.alert_id.len() == 32 && v.alert_id.bytes().all(|b| b.is_ascii_hexdigit());
                if !in_range(v.time) || !hex || v.by.len() > 256 || v.note.as_ref().is_some_and(|n| n.len() > 1024) {
                    return Err(format!("verdict accepted: {v:?}"));
                }
            }
            Err(e) => {
                let reason = e.to_string();
                if reason.chars().any(char::is_control) || reason.len() > MAX_REASON_BYTES {
                    return Err(format!("reason of {} bytes: {reason:?}", reason.len()));
                }
            }
        }
    }
    Ok(())
}

/// A line a fast path (the flat and typed readers, which build no JSON tree) took must be
/// what the general path makes of its tree: the same event, or a fast path stepped aside.
fn same_as_the_general_path(line: &[u8], format: Format, decoded: &Decoded) -> Result<(), String> {
    let [Ok(Record::Access(fast))] = decoded.as_slice() else { return Ok(()) };
    let Ok(tree) = serde_json::from_slice::<serde_json::Value>(line) else {
        return Err(format!("{fast:?} accepted from a line that is not JSON"));
    };
    match decode_value(&tree, format).as_slice() {
        [Ok(Record::Access(general))] if general == fast => Ok(()),
        general => Err(format!("a fast path took {fast:?}, the general path {general:?}")),
    }
}
