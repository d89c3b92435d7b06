//! `smelt inspect` end to end: exit codes, text and JSON output, refusals.

mod support;

use support::{smelt, stderr, stdout};

#[test]
fn missing_path_exits_2_naming_the_path() {
    let o = smelt(["inspect", "/definitely/not/here.safetensors"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("/definitely/not/here.safetensors"));
    assert!(stdout(&o).is_empty());
}

#[test]
fn pickle_checkpoints_are_refused_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["pytorch_model.bin", "model.pt", "model.pth", "model.ckpt"] {
        let p = dir.path().join(name);
        std::fs::write(&p, b"\x80\x02}q\x00.").unwrap();
        let o = smelt([std::ffi::OsStr::new("inspect"), p.as_os_str()]);
        assert_eq!(o.status.code(), Some(2), "{name}");
        let err = stderr(&o);
        assert!(err.contains("pickle") && err.contains("safetensors"), "{name}: {err}");
    }
}

#[test]
fn pickle_content_is_refused_whatever_the_extension() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("weights.data");
    // torch.save's zip container.
    std::fs::write(&p, b"PK\x03\x04archive/data.pkl").unwrap();
    let o = smelt([std::ffi::OsStr::new("inspect"), p.as_os_str()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("pickle"));
}

#[test]
fn directory_of_only_pickles_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pytorch_model.bin"), b"\x80\x02.").unwrap();
    std::fs::write(dir.path().join("config.json"), b"{}").unwrap();
    let o = smelt([std::ffi::OsStr::new("inspect"), dir.path().as_os_str()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("pickle"));
}

#[test]
fn unknown_file_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("notes.txt");
    std::fs::write(&p, b"hello world").unwrap();
    let o = smelt([std::ffi::OsStr::new("inspect"), p.as_os_str()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unrecognised format"));
}

#[test]
fn usage_error_exits_2() {
    let o = smelt(["inspect"]);
    assert_eq!(o.status.code(), Some(2));
}
