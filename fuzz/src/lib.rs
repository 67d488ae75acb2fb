//! What the fuzz targets share: the invariants of `decode_line` (the same file
//! the property tests use) and a harness that turns a broken one into a crash.

#[path = "../../tests/common/decode_invariants.rs"]
mod decode_invariants;

use overreach::decode::{Format, Limits};

/// Decodes `data` as one line of `format`, under the default limits and under
/// tight ones, and crashes (a finding) when a result breaks an invariant.
pub fn decode(data: &[u8], format: Format) {
    let tight = Limits { max_line_bytes: 4096, max_field_bytes: 16 };
    for limits in [Limits::default(), tight] {
        if let Err(broken) = decode_invariants::check(data, format, &limits) {
            panic!("{format}: {broken}");
        }
    }
}
