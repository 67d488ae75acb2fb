//! Writing a state file (replay's `--state-out`, the service's snapshot) so that a crash, a
//! full disk or a hostile neighbour in the same directory can never leave a half-written file
//! or write through someone else's file.
//!
//! The bytes go to `FILE.tmp`, which is created anew with `O_EXCL` after any stale one is
//! removed (a symlink planted there is removed, never followed), synced, renamed over `FILE`,
//! and then the directory is synced so the rename itself survives a power cut. The file is
//! created readable by its owner only: baselines describe what every identity does.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

/// What failed, on which path. The I/O error is part of the message (it is logged alone, as
/// the reason of a failed snapshot), not a separate source.
#[derive(Debug, thiserror::Error)]
#[error("cannot {step} {path}: {error}")]
pub struct StateFileError {
    step: &'static str,
    path: PathBuf,
    error: std::io::Error,
}

impl StateFileError {
    fn at<'a>(step: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StateFileError + 'a {
        move |error| StateFileError { step, path: path.to_path_buf(), error }
    }
}

/// Writes `FILE` atomically with what `body` writes; returns the size in bytes.
pub fn write(path: &Path, body: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<u64, StateFileError> {
    let tmp = sibling(path, "tmp");
    let file = create_fresh(&tmp)?;
    let mut w = BufWriter::new(file);
    body(&mut w).and_then(|()| w.flush()).map_err(StateFileError::at("write", &tmp))?;
    let file = w.into_inner().map_err(|e| StateFileError::at("write", &tmp)(e.into_error()))?;
    file.sync_all().map_err(StateFileError::at("sync", &tmp))?;
    let size = file.metadata().map_err(StateFileError::at("read the size of", &tmp))?.len();
    drop(file);
    std::fs::rename(&tmp, path).map_err(StateFileError::at("rename the new state onto", path))?;
    sync_dir(path)?;
    Ok(size)
}

/// Fails unless a state file can be written at `path`: creates and removes a probe file beside
/// it, which needs the same rights as the temporary file and the rename of [`write`]. Run at
/// start, so a run that could never save its state stops before it reads anything.
pub fn check_writable(path: &Path) -> Result<(), StateFileError> {
    if path.is_dir() {
        let error = std::io::Error::new(ErrorKind::IsADirectory, "it is a directory, expected a file path");
        return Err(StateFileError { step: "write state to", path: path.to_path_buf(), error });
    }
    let probe = sibling(path, "probe");
    drop(create_fresh(&probe)?);
    std::fs::remove_file(&probe).map_err(StateFileError::at("remove", &probe))
}

/// `FILE.<suffix>` in the same directory, so a rename onto `FILE` never crosses file systems.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

/// Creates `path` as a new file: whatever was there (a stale file from a crash, or a symlink
/// planted to redirect the write) is unlinked first, and `create_new` (O_CREAT|O_EXCL, which
/// never follows a symlink) fails rather than open anything that reappears in between.
fn create_fresh(path: &Path) -> Result<File, StateFileError> {
    // `symlink_metadata` looks at the name itself; if it fails there is nothing to remove (or
    // the directory is unusable, which the create then reports).
    if std::fs::symlink_metadata(path).is_ok() {
        std::fs::remove_file(path).map_err(StateFileError::at("remove the stale", path))?;
    }
    OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(StateFileError::at("create", path))
}

/// Syncs the directory holding `path`, which makes a rename in it durable.
fn sync_dir(path: &Path) -> Result<(), StateFileError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir).and_then(|d| d.sync_all()).map_err(StateFileError::at("sync the directory", dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn write_text(path: &Path, text: &str) -> Result<u64, StateFileError> {
        write(path, |w| w.write_all(text.as_bytes()))
    }

    #[test]
    fn writes_and_replaces_atomically_leaving_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        assert_eq!(write_text(&path, "first").unwrap(), 5);
        assert_eq!(write_text(&path, "second").unwrap(), 6);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "second");
        assert!(!dir.path().join("state.json.tmp").exists());
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn a_symlink_planted_at_the_temporary_name_is_removed_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let path = dir.path().join("state.json");
        std::os::unix::fs::symlink(&victim, dir.path().join("state.json.tmp")).unwrap();
        write_text(&path, "state").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "state");
        assert!(!std::fs::symlink_metadata(&path).unwrap().file_type().is_symlink());
    }

    #[test]
    fn a_stale_temporary_file_from_a_crash_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(dir.path().join("state.json.tmp"), "half a state from before the crash").unwrap();
        write_text(&path, "whole").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "whole");
    }

    #[test]
    fn a_failed_body_leaves_the_old_file_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_text(&path, "old").unwrap();
        let err = write(&path, |_| Err(std::io::Error::other("disk full"))).unwrap_err().to_string();
        assert!(err.contains("cannot write") && err.contains("state.json.tmp") && err.contains("disk full"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old");
    }

    #[test]
    fn writability_is_checked_with_a_probe_that_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        check_writable(&path).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "the probe is removed");

        // A path under a regular file cannot be written, whoever runs the test (root included).
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, "").unwrap();
        let err = check_writable(&file.join("state.json")).unwrap_err().to_string();
        assert!(err.contains("not-a-dir/state.json.probe"), "{err}");
        let err = check_writable(dir.path()).unwrap_err().to_string();
        assert!(err.contains("directory"), "{err}");
    }
}
