//! The files a run reads and the files it writes must not overlap: creating an
//! output truncates it, so `replay --alerts-out X X` would empty its own input
//! before reading it. Every output is checked against every input and every
//! other output before any output is opened.

use std::fs;
use std::path::{Path, PathBuf};

/// A path given on the command line, with the flag (or role) that named it.
#[derive(Debug, Clone, Copy)]
pub struct Named<'a> {
    pub role: &'static str,
    pub path: &'a Path,
}

impl<'a> Named<'a> {
    pub fn new<P: AsRef<Path> + ?Sized>(role: &'static str, path: &'a P) -> Named<'a> {
        Named { role, path: path.as_ref() }
    }
}

/// An output that is the same file as an input or as another output.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{output_role} {output} is the same file as {other_role} {other}; choose another path (nothing was written)")]
pub struct SameFile {
    pub output_role: &'static str,
    pub output: String,
    pub other_role: &'static str,
    pub other: String,
}

/// What makes two paths the same file: the device and inode of a regular file
/// that exists, else (for an output not created yet) its canonical path.
#[derive(Debug, PartialEq, Eq)]
enum FileKey {
    Inode(u64, u64),
    Path(PathBuf),
}

/// Fails when an output names the same file as an input or another output.
/// `-` as an input is standard input, compared when it is redirected from a
/// file. Devices, pipes and the like (`/dev/null` for both outputs) never clash.
pub fn refuse_overlap(inputs: &[Named], outputs: &[Named]) -> Result<(), SameFile> {
    let inputs: Vec<(&Named, FileKey)> = inputs.iter().filter_map(|n| Some((n, input_key(n.path)?))).collect();
    let mut seen: Vec<(&Named, FileKey)> = Vec::new();
    for output in outputs {
        let Some(key) = output_key(output.path) else { continue };
        if let Some((other, _)) = inputs.iter().chain(&seen).find(|(_, k)| *k == key) {
            return Err(SameFile {
                output_role: output.role,
                output: output.path.display().to_string(),
                other_role: other.role,
                other: other.path.display().to_string(),
            });
        }
        seen.push((output, key));
    }
    Ok(())
}

fn input_key(path: &Path) -> Option<FileKey> {
    // On Linux `/dev/stdin` resolves to whatever standard input is open on.
    inode(if path == Path::new("-") { Path::new("/dev/stdin") } else { path })
}

fn output_key(path: &Path) -> Option<FileKey> {
    match fs::metadata(path) {
        Ok(_) => inode(path),
        // Not there yet: two outputs still clash when they name the same place.
        Err(_) => {
            let name = path.file_name()?;
            let parent = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            Some(FileKey::Path(fs::canonicalize(parent).ok()?.join(name)))
        }
    }
}

#[cfg(unix)]
fn inode(path: &Path) -> Option<FileKey> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(path).ok()?;
    meta.is_file().then(|| FileKey::Inode(meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn inode(path: &Path) -> Option<FileKey> {
    if !fs::metadata(path).ok()?.is_file() {
        return None;
    }
    Some(FileKey::Path(fs::canonicalize(path).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_output_may_not_be_an_input_or_another_output() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, "x\n").unwrap();
            p.to_string_lossy().into_owned()
        };
        let (events, grants) = (file("events.jsonl"), file("grants.jsonl"));
        let new = dir.path().join("new.jsonl").to_string_lossy().into_owned();
        let linked = dir.path().join("link.jsonl");
        std::fs::hard_link(&events, &linked).unwrap();
        let linked = linked.to_string_lossy().into_owned();
        let relative_twin =
            format!("{}/../{}/new.jsonl", dir.path().display(), dir.path().file_name().unwrap().to_string_lossy());
        let inputs = [Named::new("input", &events), Named::new("--grants", &grants)];

        let clash = |outputs: &[Named]| refuse_overlap(&inputs, outputs).map_err(|e| (e.output_role, e.other_role));
        assert_eq!(clash(&[Named::new("--alerts-out", &new)]), Ok(()));
        assert_eq!(clash(&[Named::new("--alerts-out", &events)]), Err(("--alerts-out", "input")));
        assert_eq!(clash(&[Named::new("--state-out", &linked)]), Err(("--state-out", "input")));
        assert_eq!(clash(&[Named::new("--rejects-out", &grants)]), Err(("--rejects-out", "--grants")));
        assert_eq!(
            clash(&[Named::new("--alerts-out", &new), Named::new("--rejects-out", &relative_twin)]),
            Err(("--rejects-out", "--alerts-out"))
        );
        assert_eq!(
            clash(&[Named::new("--alerts-out", "/dev/null"), Named::new("--rejects-out", "/dev/null")]),
            Ok(()),
            "devices are not files a run could empty"
        );
    }
}
