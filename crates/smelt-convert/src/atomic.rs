//! Output files that appear whole or not at all.
//!
//! An [`AtomicFile`] writes to a temporary file in the destination's directory (so the final
//! rename stays on one filesystem and is atomic), and on [`AtomicFile::commit`] flushes, fsyncs,
//! renames over the destination and fsyncs the directory. Dropped without a commit — an error,
//! a panic — it deletes the temporary file. A process killed by Ctrl-C runs no destructors, so
//! every live temporary path is also registered, and the binary's signal handler calls
//! [`remove_pending`] before exiting.

use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

static PENDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Deletes every temporary file that has not been committed yet. For signal handlers; safe to
/// call at any time.
pub fn remove_pending() {
    let paths = match PENDING.lock() {
        Ok(mut g) => std::mem::take(&mut *g),
        Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
    };
    for p in paths {
        let _ = std::fs::remove_file(p);
    }
}

fn register(p: &Path) {
    if let Ok(mut g) = PENDING.lock() {
        g.push(p.to_path_buf());
    }
}

fn unregister(p: &Path) {
    if let Ok(mut g) = PENDING.lock() {
        g.retain(|q| q != p);
    }
}

/// Checks, before any work starts, that `dest` can be written: its directory exists and is a
/// directory, and `dest` is not itself a directory.
pub fn check_destination(dest: &Path) -> io::Result<()> {
    let dir = parent_dir(dest);
    let meta = std::fs::metadata(&dir).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("output directory {} does not exist or cannot be read: {e}", dir.display()),
        )
    })?;
    if !meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotADirectory,
            format!("{} is not a directory", dir.display()),
        ));
    }
    if dest.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::IsADirectory,
            format!("output {} is a directory", dest.display()),
        ));
    }
    Ok(())
}

fn parent_dir(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A file being written that replaces its destination only when committed.
pub struct AtomicFile {
    dest: PathBuf,
    tmp: PathBuf,
    file: Option<BufWriter<File>>,
}

impl AtomicFile {
    /// Creates the temporary file next to `dest`.
    pub fn create(dest: &Path) -> io::Result<AtomicFile> {
        check_destination(dest)?;
        let dir = parent_dir(dest);
        let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.smelt-tmp-{}-{n}", std::process::id()));
        let file = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        register(&tmp);
        Ok(AtomicFile { dest: dest.to_path_buf(), tmp, file: Some(BufWriter::with_capacity(1 << 20, file)) })
    }

    /// The temporary path (for messages and tests).
    pub fn temp_path(&self) -> &Path {
        &self.tmp
    }

    /// The final path.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    fn inner(&mut self) -> &mut BufWriter<File> {
        self.file.as_mut().expect("AtomicFile used after commit")
    }

    /// Flushes, fsyncs, renames over the destination, and fsyncs the directory.
    pub fn commit(mut self) -> io::Result<()> {
        let buf = self.file.take().expect("AtomicFile committed twice");
        let file = buf.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&self.tmp, &self.dest)?;
        unregister(&self.tmp);
        #[cfg(unix)]
        {
            if let Ok(d) = File::open(parent_dir(&self.dest)) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner().write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner().write_all(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner().flush()
    }
}

impl Seek for AtomicFile {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner().seek(pos)
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
            unregister(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_replaces_destination() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.bin");
        std::fs::write(&dest, b"old").unwrap();
        let mut f = AtomicFile::create(&dest).unwrap();
        f.write_all(b"new contents").unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"old", "destination untouched before commit");
        f.commit().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"new contents");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left");
    }

    #[test]
    fn drop_without_commit_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.bin");
        {
            let mut f = AtomicFile::create(&dest).unwrap();
            f.write_all(b"partial").unwrap();
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn missing_directory_fails_before_work() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("no/such/dir/out.bin");
        assert!(check_destination(&dest).is_err());
        assert!(AtomicFile::create(&dest).is_err());
        assert!(check_destination(dir.path()).is_err(), "a directory is not a valid output file");
    }
}
