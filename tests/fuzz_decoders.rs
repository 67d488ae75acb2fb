//! Property tests for the promise of `decode_line` (issue 9, "How it is shown"): on any
//! bytes, in every format, it never panics, every record it accepts respects the limits
//! (field lengths, non-blank keys, times from 1970 to 9999), and every reason it gives is
//! one bounded, printable line. Inputs are arbitrary bytes, JSON-like token soup, and
//! mutations of the real records in `tests/fixtures/` and `../shared/datasets/log-formats/`.
//! The line reader that feeds it (with its `Records` splitting) gets the same treatment.
//!
//! The default run is short (256 cases a property, a few seconds in all). A long run:
//!
//! ```sh
//! PROPTEST_CASES=200000 cargo test --profile test-release --test fuzz_decoders
//! ```
//!
//! The cargo-fuzz targets in `fuzz/` cover the same decoders with coverage guidance.

#[path = "common/decode_invariants.rs"]
mod decode_invariants;

use overreach::decode::{decode_line, Format, Limits};
use overreach::source::file::{self, Line};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::path::PathBuf;

fn repo_file(parts: &[&str]) -> PathBuf {
    std::iter::once(env!("CARGO_MANIFEST_DIR")).chain(parts.iter().copied()).collect()
}

/// Real records of a format: the fixture lines, and the `log` of each case of the
/// shared corpus file for it (absent when the corpus is not beside the repository).
fn seeds(format: Format) -> Vec<Value> {
    let fixtures: &[&str] = match format {
        Format::Native => &["native.jsonl"],
        Format::Cloudtrail => &["cloudtrail.jsonl"],
        Format::GcpAudit => &["gcp_audit.jsonl"],
        Format::K8sAudit => &["k8s_audit.jsonl"],
        Format::Ocsf => &["ocsf.jsonl"],
        Format::Grants => &["grants.jsonl"],
        Format::Feedback => &["feedback.jsonl"],
        Format::Record => return record_seeds(),
        Format::Auto => {
            &["native.jsonl", "cloudtrail.jsonl", "gcp_audit.jsonl", "k8s_audit.jsonl", "ocsf.jsonl", "grants.jsonl"]
        }
    };
    let corpus: &[&str] = match format {
        Format::Cloudtrail => &["aws_cloudtrail.jsonl"],
        Format::GcpAudit => &["gcp_audit.jsonl"],
        Format::K8sAudit => &["k8s_audit.jsonl"],
        Format::Auto => &["aws_cloudtrail.jsonl", "gcp_audit.jsonl", "k8s_audit.jsonl", "azure_signin.jsonl"],
        _ => &[],
    };
    let lines = |path: PathBuf| std::fs::read_to_string(path).unwrap_or_default();
    let mut out: Vec<Value> = fixtures
        .iter()
        .flat_map(|f| lines(repo_file(&["tests", "fixtures", f])).lines().map(str::to_string).collect::<Vec<_>>())
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect();
    for f in corpus {
        let text = lines(repo_file(&["..", "shared", "datasets", "log-formats", f]));
        out.extend(text.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()?.get("log").cloned()));
    }
    assert!(!out.is_empty(), "no seed records for {format}");
    out
}

/// The internal `record` form (the repartition topic): the native and grant fixtures as the
/// repartition stage writes them.
fn record_seeds() -> Vec<Value> {
    let limits = Limits::default();
    let seeds: Vec<Value> = [(Format::Native, "native.jsonl"), (Format::Grants, "grants.jsonl")]
        .into_iter()
        .flat_map(|(format, f)| {
            let text = std::fs::read_to_string(repo_file(&["tests", "fixtures", f])).unwrap();
            text.lines().flat_map(|l| decode_line(l.as_bytes(), format, &limits)).collect::<Vec<_>>()
        })
        .filter_map(|r| serde_json::to_value(r.ok()?).ok())
        .collect();
    assert!(seeds.len() > 5, "no records decoded from the fixtures");
    seeds
}

/// Any JSON value, small and nested; strings may hold control characters.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("JSON has no NaN", |f| f.is_finite()).prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Values that have broken parsers before: times out of range, blank and hostile
/// strings, long strings, deep nesting, numbers past every integer type.
fn hostile_value() -> impl Strategy<Value = Value> {
    let deep = (0..300).fold(json!(1), |v, _| json!([v]));
    prop_oneof![
        json_value(),
        prop::sample::select(vec![
            json!(1e300),
            json!(-1),
            json!(i64::MAX),
            json!(u64::MAX),
            json!(253_402_300_800_000_i64),
            json!(1.5),
            json!(""),
            json!("   "),
            json!("\u{1b}[2J\r\nforged.jsonl:1: missing required field `identity`"),
            json!("x".repeat(5000)),
            json!("9999-12-31T23:59:59Z"),
            json!("1969-12-31 23:59:59"),
            json!("+275760-09-13T00:00:00Z"),
            json!("Jan 18, 2021, 8:46:52 PM"),
            json!("AccessDenied"),
            json!("ResponseComplete"),
            json!({"sub": "a", "act": {"sub": "b"}}),
            json!([{"ARN": 5}]),
            deep,
        ]),
    ]
}

/// Keys some decoder looks for: adding one turns a record into (part of) another format.
const KEYS: [&str; 16] = [
    "Records",
    "time",
    "identity",
    "target",
    "action",
    "kind",
    "class_uid",
    "protoPayload",
    "auditID",
    "act",
    "chain",
    "stage",
    "eventTime",
    "userIdentity",
    "responseElements",
    "impersonatedUser",
];

#[derive(Debug, Clone)]
enum Mutation {
    /// The k-th node (in document order, modulo the count) becomes this value.
    Replace(usize, Value),
    /// The k-th node is removed from its object or array.
    Remove(usize),
    /// The k-th node, if an object, gains this key.
    Add(usize, &'static str, Value),
}

#[derive(Debug, Clone)]
enum TextMutation {
    Flip(usize, u8),
    Cut(usize),
    Insert(usize, &'static str),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), hostile_value()).prop_map(|(k, v)| Mutation::Replace(k, v)),
        any::<usize>().prop_map(Mutation::Remove),
        (any::<usize>(), prop::sample::select(&KEYS[..]), hostile_value())
            .prop_map(|(k, key, v)| Mutation::Add(k, key, v)),
    ]
}

fn text_mutation() -> impl Strategy<Value = TextMutation> {
    let tokens = vec!["{", "}", "[", "]", ",", ":", "\"", "\\", "\\u0000", "\\ud800", "\n", "\u{1b}", "\u{ff}"];
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| TextMutation::Flip(i, b)),
        any::<usize>().prop_map(TextMutation::Cut),
        (any::<usize>(), prop::sample::select(tokens)).prop_map(|(i, t)| TextMutation::Insert(i, t)),
    ]
}

/// JSON pointers to every node of `v`, the root first.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                pointers(child, format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                pointers(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

fn apply(mut doc: Value, mutations: &[Mutation]) -> Value {
    for m in mutations {
        let mut all = Vec::new();
        pointers(&doc, String::new(), &mut all);
        let pick = |k: usize| all[k % all.len()].clone();
        match m {
            Mutation::Replace(k, v) => {
                if let Some(node) = doc.pointer_mut(&pick(*k)) {
                    *node = v.clone();
                }
            }
            Mutation::Remove(k) => {
                let at = pick(*k);
                let Some((parent, last)) = at.rsplit_once('/') else { continue };
                match doc.pointer_mut(parent) {
                    Some(Value::Object(m)) => {
                        m.remove(&last.replace("~1", "/").replace("~0", "~"));
                    }
                    Some(Value::Array(items)) => {
                        if let Ok(i) = last.parse::<usize>() {
                            items.remove(i);
                        }
                    }
                    _ => {}
                }
            }
            Mutation::Add(k, key, v) => {
                if let Some(Value::Object(m)) = doc.pointer_mut(&pick(*k)) {
                    m.insert(key.to_string(), v.clone());
                }
            }
        }
    }
    doc
}

fn apply_text(mut text: Vec<u8>, mutations: &[TextMutation]) -> Vec<u8> {
    for m in mutations {
        let at = |i: usize| if text.is_empty() { 0 } else { i % (text.len() + 1) };
        match m {
            TextMutation::Flip(i, b) if !text.is_empty() => {
                let i = i % text.len();
                text[i] = *b;
            }
            TextMutation::Flip(..) => {}
            TextMutation::Cut(i) => text.truncate(at(*i)),
            TextMutation::Insert(i, token) => {
                let i = at(*i);
                text.splice(i..i, token.bytes());
            }
        }
    }
    text
}

/// One input line: arbitrary bytes, JSON-like token soup, or a mutated real record.
fn line(format: Format) -> impl Strategy<Value = Vec<u8>> {
    let seeds = seeds(format);
    let soup_tokens = vec![
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "\"",
        "\"Records\"",
        "\"identity\"",
        "\"target\"",
        "\"action\"",
        "\"time\"",
        "\"kind\"",
        "\"grant\"",
        "\"class_uid\"",
        "6003",
        "\"protoPayload\"",
        "\"verb\"",
        "1e300",
        "-1",
        "null",
        "\"\"",
        "\"   \"",
        " ",
    ];
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        prop::collection::vec(prop::sample::select(soup_tokens), 0..48).prop_map(|t| t.concat().into_bytes()),
        (
            prop::sample::select(seeds),
            prop::collection::vec(mutation(), 0..4),
            prop::collection::vec(text_mutation(), 0..2)
        )
            .prop_map(|(seed, mutations, text)| apply_text(apply(seed, &mutations).to_string().into_bytes(), &text)),
    ]
}

fn limits() -> impl Strategy<Value = Limits> {
    (prop::sample::select(vec![64usize, 4096, 1 << 20]), prop::sample::select(vec![8usize, 1024]))
        .prop_map(|(max_line_bytes, max_field_bytes)| Limits { max_line_bytes, max_field_bytes })
}

fn check(line: &[u8], format: Format, limits: &Limits) -> Result<(), TestCaseError> {
    decode_invariants::check(line, format, limits).map_err(TestCaseError::fail)
}

/// One property per format, each on its own so that a failure names its format.
macro_rules! format_properties {
    ($($name:ident: $format:expr),* $(,)?) => {
        proptest! {
            $(
                #[test]
                fn $name(line in line($format), limits in limits()) {
                    check(&line, $format, &limits)?;
                }
            )*
        }
    };
}

format_properties! {
    native_lines_never_panic_and_respect_the_limits: Format::Native,
    cloudtrail_lines_never_panic_and_respect_the_limits: Format::Cloudtrail,
    gcp_audit_lines_never_panic_and_respect_the_limits: Format::GcpAudit,
    k8s_audit_lines_never_panic_and_respect_the_limits: Format::K8sAudit,
    ocsf_lines_never_panic_and_respect_the_limits: Format::Ocsf,
    grant_lines_never_panic_and_respect_the_limits: Format::Grants,
    auto_lines_never_panic_and_respect_the_limits: Format::Auto,
    record_lines_never_panic_and_respect_the_limits: Format::Record,
}

proptest! {
    /// The reader on any input: never a panic, never a line or element over the cap,
    /// and every byte accounted for.
    #[test]
    fn the_line_reader_caps_every_item_and_counts_every_byte(
        parts in prop::collection::vec(prop_oneof![
            prop::sample::select(vec!["{\"Records\":[", " { \"Records\" : [ ", "]}", "]", ",", "\n", "\r\n", "\"", "\\", "{", "}", "[1,{\"a\":\"],\"}]"]).prop_map(str::to_string),
            prop::collection::vec(any::<u8>(), 0..24).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        ], 0..40),
        max in 1usize..64,
    ) {
        let content = parts.concat();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in");
        std::fs::write(&path, &content).unwrap();
        let mut reader = file::open(path.to_str().unwrap(), max).unwrap();
        reader.split_records(true);
        let mut last = 0;
        while let Some((n, item)) = reader.next_line().unwrap() {
            prop_assert!(n >= last);
            last = n;
            match item {
                Line::Ok(bytes) | Line::Element(_, Ok(bytes)) => prop_assert!(bytes.len() <= max),
                Line::TooLong(len) => prop_assert!(len > max),
                Line::Element(_, Err(_)) => {}
            }
        }
        prop_assert_eq!(reader.bytes, content.len() as u64);
    }

    /// A `Records` line holding any JSON values gives back exactly those values, one
    /// element each, however the line is spaced.
    #[test]
    fn a_records_line_splits_into_exactly_its_elements(
        values in prop::collection::vec(json_value(), 0..12),
        spaced in any::<bool>(),
    ) {
        let array = if spaced { serde_json::to_string_pretty(&values).unwrap().replace('\n', " ") } else { serde_json::to_string(&values).unwrap() };
        let text = format!("{{\"Records\":{array}}}\n");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in");
        std::fs::write(&path, &text).unwrap();
        let mut reader = file::open(path.to_str().unwrap(), 1 << 20).unwrap();
        reader.split_records(true);
        let mut got = Vec::new();
        while let Some((_, item)) = reader.next_line().unwrap() {
            match item {
                Line::Element(i, Ok(bytes)) => {
                    prop_assert_eq!(i as usize, got.len());
                    got.push(serde_json::from_slice::<Value>(bytes).unwrap());
                }
                _ => prop_assert!(false, "unexpected item in {}", text),
            }
        }
        prop_assert_eq!(got, values);
    }
}
