#![no_main]

//! `Engine::load_state` on any bytes: an error or an engine, never a panic; and an
//! engine it accepts processes events without one.

use libfuzzer_sys::fuzz_target;
use overreach::engine::{Engine, EngineConfig};
use overreach::model::{AccessEvent, Origin, Record};

fuzz_target!(|data: &[u8]| {
    let Ok(mut engine) = Engine::load_state(EngineConfig::default(), &mut &data[..]) else { return };
    let origin = Origin::File { path: "fuzz".into(), line: 1 };
    for (i, identity) in ["i", "ci-deployer"].into_iter().enumerate() {
        let event = AccessEvent {
            event_id: format!("e{i}").into(),
            time: 1_772_445_600_000 + i as i64 * 86_400_000,
            identity: identity.into(),
            target: "s3".into(),
            action: "GetObject".into(),
            ..AccessEvent::default()
        };
        engine.process(&Record::Access(Box::new(event)), &origin);
    }
    let mut saved = Vec::new();
    engine.save_state(&mut saved).expect("an accepted state saves again");
});
