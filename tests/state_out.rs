//! `overreach replay --state-out` through the real binary: the state file writer never writes
//! through a planted symlink, and a state that cannot be saved stops the run before any output.

mod common;

use common::*;

#[test]
fn a_symlink_planted_at_the_temporary_file_leaves_its_target_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let (events, grants) = write_jsonl(dir.path(), "all", &mixed_scenario().records);
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    let state = dir.path().join("state.json");
    std::os::unix::fs::symlink(&victim, dir.path().join("state.json.tmp")).unwrap();

    let (code, _, err) = overreach(&["replay", &events, "--grants", &grants, "--state-out", state.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    let saved = std::fs::read(&state).unwrap();
    assert!(serde_json::from_slice::<serde_json::Value>(&saved).is_ok(), "the state went to --state-out");
    assert!(!dir.path().join("state.json.tmp").exists());
}

#[test]
fn an_unwritable_state_out_fails_before_any_output() {
    let dir = tempfile::tempdir().unwrap();
    let (events, grants) = write_jsonl(dir.path(), "all", &mixed_scenario().records);
    // A path under a regular file is unwritable whoever runs the test, root included.
    let not_a_dir = dir.path().join("plain-file");
    std::fs::write(&not_a_dir, "").unwrap();
    let state = not_a_dir.join("state.json");

    let (code, out, err) = overreach(&["replay", &events, "--grants", &grants, "--state-out", state.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert_eq!(out, "", "no alert may be written by a run whose state cannot be saved");
    assert!(err.contains("plain-file/state.json"), "{err}");
    assert!(!err.contains(" events, "), "the run must stop before replaying: {err}");
}
