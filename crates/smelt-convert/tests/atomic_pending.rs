//! `remove_pending` deletes every live temporary file of the process, so it gets a test binary
//! of its own (tests in one binary share the registry and run in parallel).

use std::io::Write;

use smelt_convert::atomic::{remove_pending, AtomicFile};

#[test]
fn remove_pending_deletes_live_temporaries() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.bin");
    let mut f = AtomicFile::create(&dest).unwrap();
    f.write_all(b"partial").unwrap();
    f.flush().unwrap();
    let tmp = f.temp_path().to_path_buf();
    assert!(tmp.exists());
    remove_pending();
    assert!(!tmp.exists());
    assert!(!dest.exists());
    // Dropping afterwards must not fail on the already removed file.
    drop(f);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
