//! The native format: one flat object per line (`schemas/access-event.v1.schema.json`).

use super::fields::{derived_id, opt_obj, opt_str, opt_string, opt_time, req_str, req_time, str_list, Obj};
use super::DecodeError;
use crate::model::{AccessEvent, EventText, Outcome, Record};

pub fn decode(obj: &Obj) -> Result<Record, DecodeError> {
    let event_id = match opt_str(obj, "event_id")? {
        Some(id) => id.into(),
        None => derived_id(obj),
    };
    Ok(Record::Access(Box::new(AccessEvent {
        event_id,
        time: req_time(obj, "time")?,
        identity: req_str(obj, "identity")?.into(),
        identity_type: opt_string(obj, "identity_type")?,
        on_behalf_of: opt_string(obj, "on_behalf_of")?,
        chain: chain(obj)?,
        grant_id: opt_string(obj, "grant_id")?,
        credential_id: opt_string(obj, "credential_id")?,
        credential_expires_at: opt_time(obj, "credential_expires_at")?,
        target: req_str(obj, "target")?.into(),
        action: req_str(obj, "action")?.into(),
        resource: opt_string(obj, "resource")?,
        environment: opt_string(obj, "environment")?,
        region: opt_string(obj, "region")?,
        session_id: opt_string(obj, "session_id")?,
        source_ip: opt_string(obj, "source_ip")?,
        user_agent: opt_string(obj, "user_agent")?,
        outcome: outcome(obj)?,
    })))
}

/// The fast path for well-formed native lines: parse straight into borrowed
/// fields, without building a JSON tree; the values it does not read are still
/// parsed as the tree would (see `typed`). It returns `None` whenever the line
/// needs the general path, which then decides (and words any error) exactly
/// as for every other line: a missing or mistyped field, an `act` claim, no
/// `event_id` (its derived id hashes the tree), or an unknown outcome; and with
/// `auto`, a key by which `auto` takes the record for another format.
pub fn decode_fast(text: &str, auto: bool) -> Option<AccessEvent> {
    use super::flat::{FromFlat, Reader};
    use super::typed::{json_object, present, Checked, Given, Text};
    use serde::Deserialize;
    use std::borrow::Cow;

    /// Epoch milliseconds or text. Read straight from the parser: an untagged enum would
    /// buffer every time value into serde's `Content` first (a tenth of the decode).
    enum Time<'a> {
        Millis(i64),
        Text(Cow<'a, str>),
    }

    impl<'de: 'a, 'a> Deserialize<'de> for Time<'a> {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct Visitor;
            impl<'de> serde::de::Visitor<'de> for Visitor {
                type Value = Time<'de>;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("epoch milliseconds or a time string")
                }
                fn visit_i64<E: serde::de::Error>(self, ms: i64) -> Result<Time<'de>, E> {
                    Ok(Time::Millis(ms))
                }
                // Past `i64::MAX` (and any float) the general path words the error.
                fn visit_u64<E: serde::de::Error>(self, ms: u64) -> Result<Time<'de>, E> {
                    i64::try_from(ms).map(Time::Millis).map_err(|_| E::custom("out of range"))
                }
                fn visit_borrowed_str<E: serde::de::Error>(self, s: &'de str) -> Result<Time<'de>, E> {
                    Ok(Time::Text(Cow::Borrowed(s)))
                }
                fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Time<'de>, E> {
                    Ok(Time::Text(Cow::Owned(s.to_string())))
                }
            }
            d.deserialize_any(Visitor)
        }
    }

    impl<'a> FromFlat<'a> for Time<'a> {
        fn from_flat(at: &mut Reader<'a>) -> Option<Self> {
            match at.at_string() {
                true => at.string().map(|s| Time::Text(Cow::Borrowed(s))),
                false => at.integer().map(Time::Millis),
            }
        }
    }

    json_object! {
        Line<'a> {
            event_id: Option<Text<'a>> = "event_id",
            time: Option<Time<'a>> = "time",
            identity: Option<Text<'a>> = "identity",
            identity_type: Option<Text<'a>> = "identity_type",
            on_behalf_of: Option<Text<'a>> = "on_behalf_of",
            chain: Option<Vec<Text<'a>>> = "chain",
            act: Option<Checked> = "act",
            grant_id: Option<Text<'a>> = "grant_id",
            credential_id: Option<Text<'a>> = "credential_id",
            credential_expires_at: Option<Time<'a>> = "credential_expires_at",
            target: Option<Text<'a>> = "target",
            action: Option<Text<'a>> = "action",
            resource: Option<Text<'a>> = "resource",
            environment: Option<Text<'a>> = "environment",
            region: Option<Text<'a>> = "region",
            session_id: Option<Text<'a>> = "session_id",
            source_ip: Option<Text<'a>> = "source_ip",
            user_agent: Option<Text<'a>> = "user_agent",
            outcome: Option<Text<'a>> = "outcome",
            // Keys by which `auto` takes a record for another format (see `detect`).
            event_source: Given = "eventSource",
            records: Given = "Records",
            event_version: Given = "eventVersion",
            proto_payload: Given = "protoPayload",
            audit_id: Given = "auditID",
            object_ref: Given = "objectRef",
            verb: Given = "verb",
            class_uid: Given = "class_uid",
            kind: Given = "kind",
        }
    }

    // An empty string counts as absent, as in the general path.
    let text_of = |v: Option<Text>| v.map(|t| t.0).filter(|s| !s.is_empty()).map(EventText::from);
    // A time out of range steps aside too, for the general path to word.
    let time_of = |t: Option<Time>| {
        let parsed = match t {
            None => Some(None),
            Some(Time::Millis(ms)) => Some(Some(ms)),
            Some(Time::Text(s)) => crate::time::parse_rfc3339(&s).or_else(|| s.parse().ok()).map(Some),
        };
        parsed.filter(|t| t.is_none_or(crate::time::in_range))
    };
    let line: Line = super::typed::read(text)?;
    let other_format = [
        &line.event_source,
        &line.records,
        &line.event_version,
        &line.proto_payload,
        &line.audit_id,
        &line.object_ref,
        &line.verb,
        &line.class_uid,
        &line.kind,
    ];
    if line.act.is_some() || (auto && other_format.iter().any(|given| given.0)) {
        return None;
    }
    let outcome = match present(&line.outcome) {
        None | Some("success") => Outcome::Success,
        Some("failure") => Outcome::Failure,
        Some("denied") => Outcome::Denied,
        Some(_) => return None,
    };
    Some(AccessEvent {
        event_id: text_of(line.event_id)?,
        time: time_of(line.time)??,
        identity: text_of(line.identity)?,
        identity_type: text_of(line.identity_type),
        on_behalf_of: text_of(line.on_behalf_of),
        chain: line.chain.unwrap_or_default().into_iter().map(|t| EventText::from(t.0)).collect(),
        grant_id: text_of(line.grant_id),
        credential_id: text_of(line.credential_id),
        credential_expires_at: time_of(line.credential_expires_at)?,
        target: text_of(line.target)?,
        action: text_of(line.action)?,
        resource: text_of(line.resource),
        environment: text_of(line.environment),
        region: text_of(line.region),
        session_id: text_of(line.session_id),
        source_ip: text_of(line.source_ip),
        user_agent: text_of(line.user_agent),
        outcome,
    })
}

/// The delegation hops: the `chain` array, or the RFC 8693 actor claim `act` flattened.
///
/// In a token-exchange `act`, the outermost `act` is the current actor and each nested
/// `act` the one before it, so the nested-most is the earliest actor. Flattening from the
/// outside in gives the chain order, outermost (nearest the call) first:
/// `{"sub": "agent-b", "act": {"sub": "agent-a"}}` becomes `["agent-b", "agent-a"]`.
fn chain(obj: &Obj) -> Result<Vec<EventText>, DecodeError> {
    let listed = str_list(obj, "chain")?;
    let Some(mut act) = opt_obj(obj, "act")? else {
        return Ok(listed);
    };
    if !listed.is_empty() {
        return Err(DecodeError::InvalidValue {
            field: "act".into(),
            reason: "give the delegation hops as `chain` or as `act`, not both".into(),
        });
    }
    let mut path = String::from("act");
    let mut hops = Vec::new();
    loop {
        hops.push(req_str(act, "sub").map_err(|e| e.within(&path))?.into());
        match opt_obj(act, "act").map_err(|e| e.within(&path))? {
            Some(inner) => {
                act = inner;
                path.push_str(".act");
            }
            None => return Ok(hops),
        }
    }
}

fn outcome(obj: &Obj) -> Result<Outcome, DecodeError> {
    match opt_str(obj, "outcome")? {
        None | Some("success") => Ok(Outcome::Success),
        Some("failure") => Ok(Outcome::Failure),
        Some("denied") => Ok(Outcome::Denied),
        Some(other) => Err(DecodeError::InvalidValue {
            field: "outcome".into(),
            reason: format!("expected success, failure or denied, found `{other}`"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::testing;
    use serde_json::json;

    fn obj(v: serde_json::Value) -> Obj {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn decodes_a_full_record() {
        let r = decode(&obj(json!({
            "event_id": "e1", "time": "2026-03-02T10:00:00Z", "identity": "ci-deployer",
            "on_behalf_of": "team-a", "chain": ["github", "team-a"], "target": "s3", "action": "PutObject",
            "resource": "arn:aws:s3:::b/k", "outcome": "denied", "extra": 1
        })))
        .unwrap();
        let Record::Access(e) = r else { panic!("not an access event") };
        assert_eq!(e.event_id, "e1");
        assert_eq!(e.chain, vec!["github", "team-a"]);
        assert_eq!(e.outcome, Outcome::Denied);
        assert_eq!(e.time, 1772445600000);
    }

    #[test]
    fn rejects_with_the_field_named() {
        let cases = [
            (json!({"time": 1, "target": "t", "action": "a"}), "missing required field `identity`"),
            (
                json!({"time": 1, "identity": 5, "target": "t", "action": "a"}),
                "field `identity` has the wrong type: expected a string, found a number",
            ),
            (
                json!({"time": "soon", "identity": "i", "target": "t", "action": "a"}),
                "field `time`: expected an RFC 3339 time or epoch milliseconds, found \"soon\"",
            ),
            (
                json!({"time": 1, "identity": "i", "target": "t", "action": "a", "chain": "x"}),
                "field `chain` has the wrong type: expected an array of strings, found a string",
            ),
            (
                json!({"time": 1, "identity": "i", "target": "t", "action": "a", "outcome": "ok"}),
                "field `outcome`: expected success, failure or denied, found `ok`",
            ),
        ];
        for (input, reason) in cases {
            assert_eq!(decode(&obj(input)).unwrap_err().to_string(), reason);
        }
    }

    #[test]
    fn flattens_the_rfc8693_actor_chain_outermost_first() {
        let base = json!({"time": 1, "identity": "agent-b", "target": "t", "action": "a"});
        let with =
            |extra: serde_json::Value| decode(&obj(testing::with(base.clone(), extra))).map_err(|e| e.to_string());
        let chain_of = |r: Result<Record, String>| match r {
            Ok(Record::Access(e)) => Ok(e.chain.iter().map(|hop| hop.to_string()).collect::<Vec<_>>()),
            Ok(other) => panic!("unexpected {other:?}"),
            Err(e) => Err(e),
        };
        let cases = [
            (json!({"act": {"sub": "agent-b"}}), Ok(vec!["agent-b".to_string()])),
            (
                json!({"act": {"sub": "agent-b", "iss": "https://idp", "act": {"sub": "agent-a", "act": {"sub": "ci"}}}}),
                Ok(vec!["agent-b".into(), "agent-a".into(), "ci".into()]),
            ),
            (json!({"act": null, "chain": ["x"]}), Ok(vec!["x".into()])),
            (json!({"act": {"sub": "b", "act": {"iss": "i"}}}), Err("missing required field `act.act.sub`".into())),
            (
                json!({"act": {"sub": "b", "act": "a"}}),
                Err("field `act.act` has the wrong type: expected an object, found a string".into()),
            ),
            (
                json!({"act": {"sub": "b"}, "chain": ["x"]}),
                Err("field `act`: give the delegation hops as `chain` or as `act`, not both".into()),
            ),
        ];
        for (extra, expected) in cases {
            assert_eq!(chain_of(with(extra.clone())), expected, "{extra}");
        }
    }

    #[test]
    fn derives_a_stable_id_from_content() {
        let a = decode(&obj(json!({"time": 1, "identity": "i", "target": "t", "action": "a"}))).unwrap();
        let b = decode(&obj(json!({"action": "a", "target": "t", "identity": "i", "time": 1}))).unwrap();
        let c = decode(&obj(json!({"time": 2, "identity": "i", "target": "t", "action": "a"}))).unwrap();
        let id = |r: &Record| match r {
            Record::Access(e) => e.event_id.clone(),
            _ => unreachable!(),
        };
        assert_eq!(id(&a), id(&b));
        assert_ne!(id(&a), id(&c));
        assert!(id(&a).starts_with("h:"));
    }
}

#[cfg(test)]
mod fast_path_tests {
    use super::*;
    use proptest::prelude::*;

    /// Keys a native line may hold: the event's, one by which `auto` reads another format,
    /// one nobody reads, and one written with an escape.
    fn key() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            r#""event_id""#,
            r#""time""#,
            r#""identity""#,
            r#""chain""#,
            r#""credential_expires_at""#,
            r#""resource""#,
            r#""outcome""#,
            r#""act""#,
            r#""verb""#,
            r#""x""#,
            r#""t\u0069me""#,
        ])
    }

    /// Values of every kind the flat reader takes or declines.
    fn value() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            r#""a""#,
            r#""""#,
            r#""a\"b""#,
            r#""é""#,
            "\"x\ty\"",
            "1",
            "-5",
            "0",
            "-0",
            "01",
            "1.5",
            "1e3",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "-9223372036854775809",
            "9999999999999999999",
            "10000000000000000000",
            "1772409617000",
            "null",
            "true",
            "false",
            "[]",
            r#"["p","q"]"#,
            r#"["p",1]"#,
            r#"{"sub":"x"}"#,
            r#""2026-03-02T10:00:00Z""#,
            r#""success""#,
            r#""denied""#,
            r#""ok""#,
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// Lines of every shape the flat reader meets (escapes, nesting, numbers of each
        /// form, whitespace, keys given twice, text after the object): whatever a fast path
        /// takes, the general path takes to the same event.
        #[test]
        fn fast_paths_agree_with_the_general_path_on_any_line(
            before in prop::collection::vec((key(), value()), 0..4),
            after in prop::collection::vec((key(), value()), 0..4),
            space in prop::sample::select(vec!["", " ", "\t", "\r\n "]),
            trailing in prop::sample::select(vec!["", " ", "x", ","]),
        ) {
            let pair = |(k, v): &(&str, &str)| format!("{space}{k}{space}:{space}{v}{space}");
            let base = r#""event_id":"e","time":1,"identity":"i","target":"t","action":"a""#;
            let parts: Vec<String> =
                before.iter().map(pair).chain([base.to_string()]).chain(after.iter().map(pair)).collect();
            let line = format!("{space}{{{}}}{trailing}", parts.join(","));
            if let Some(fast) = decode_fast(&line, false) {
                let value: serde_json::Value = serde_json::from_str(&line).expect("the tree takes the line");
                let general = decode(value.as_object().unwrap()).expect("the general path takes the line");
                prop_assert_eq!(Record::Access(Box::new(fast)), general, "{}", line);
            }
        }
    }

    /// The simulator's lines, like most real native lines, are flat: the flat reader takes
    /// every one, and the fast path gives what the general path gives.
    #[test]
    fn the_flat_reader_takes_the_simulated_fleets_lines() {
        use crate::simulate::{generate, write_events, EventFormat, SimConfig};
        let sim = generate(&SimConfig { identities: 20, days: 2, seed: 7, ..SimConfig::default() });
        let mut out = Vec::new();
        write_events(&sim.events, EventFormat::Native, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        for line in text.lines() {
            assert!(crate::decode::flat::line::<crate::decode::typed::Checked>(line).is_some(), "{line}");
            let fast = decode_fast(line, false).expect("the fast path takes it");
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(Record::Access(Box::new(fast)), decode(value.as_object().unwrap()).unwrap());
        }
        assert!(text.lines().count() > 100);
    }

    /// The fast path must give exactly what the general path gives, or step aside.
    #[test]
    fn fast_path_agrees_with_the_general_path_on_every_fixture_line() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/native.jsonl")).unwrap();
        let mut taken = 0;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let Some(fast) = decode_fast(line, false) else { continue };
            taken += 1;
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            let general = decode(value.as_object().unwrap()).unwrap();
            assert_eq!(Record::Access(Box::new(fast)), general, "{line}");
        }
        assert!(taken > 0, "no fixture line took the fast path");
    }

    #[test]
    fn fast_path_steps_aside_for_lines_the_general_path_must_word() {
        let lines = [
            r#"{"time":1,"identity":"i","target":"t","action":"a"}"#,
            r#"{"event_id":"e","time":1,"identity":5,"target":"t","action":"a"}"#,
            r#"{"event_id":"e","time":"soon","identity":"i","target":"t","action":"a"}"#,
            r#"{"event_id":"e","time":1,"identity":"i","target":"t","action":"a","outcome":"ok"}"#,
            r#"{"event_id":"e","time":1,"identity":"i","target":"t","action":"a","act":{"sub":"x"}}"#,
            r#"{"event_id":"e","time":1,"identity":"","target":"t","action":"a"}"#,
        ];
        for line in lines {
            assert!(decode_fast(line, false).is_none(), "{line}");
        }
        assert!(decode_fast(
            r#"{"event_id":"e","time":"2026-03-02T10:00:00Z","identity":"i","target":"t","action":"a","x":[1]}"#,
            false
        )
        .is_some());
        // `auto` reads a record with another format's key as that format.
        let verb = r#"{"event_id":"e","time":1,"identity":"i","target":"t","action":"a","verb":"get"}"#;
        assert!(decode_fast(verb, false).is_some());
        assert!(decode_fast(verb, true).is_none());
    }
}
