//! What every end-to-end test needs: the built `smelt` binary, the fixtures directory, and a
//! way to run a command and look at its exit code and output.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository's `fixtures/` directory.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// Runs `smelt ARGS...` and returns its output.
pub fn smelt<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_smelt")).args(args).output().expect("the smelt binary runs")
}

/// Stdout as UTF-8.
pub fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("stdout is UTF-8")
}

/// Stderr as UTF-8.
pub fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).expect("stderr is UTF-8")
}

/// The pinned Python interpreter for interop checks: `$SMELT_PYTHON` (set by
/// tools/test-all.sh) or the repository's `.venv`. Panics — never skips — when neither exists.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("SMELT_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(
        venv.exists(),
        "no Python for interop checks: run tools/python/setup-venv.sh or set SMELT_PYTHON"
    );
    venv
}

/// Runs a script under tools/interop with the pinned Python; panics with its output on failure.
pub fn interop(script: &str, args: &[&std::ffi::OsStr]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/interop").join(script);
    let o = Command::new(python()).arg(path).args(args).output().expect("python runs");
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{script} failed:\n{text}");
    text
}
