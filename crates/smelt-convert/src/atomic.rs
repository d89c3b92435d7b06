//! Output files that appear whole or not at all.
//!
//! An [`AtomicFile`] writes to a temporary file in the destination's directory (so the final
//! rename stays on one filesystem and is atomic), and on [`AtomicFile::commit`] flushes, fsyncs,
//! renames over the destination and fsyncs the directory. Dropped without a commit — an error,
//! a panic — it deletes the temporary file. A process killed by Ctrl-C runs no destructors, so
//! every live temporary path is also registered, and the binary's signal handler calls
//! [`remove_pending`] before exiting.
//!
//! Made with [`AtomicFile::create_hashed`], it also takes the file's BLAKE3 as the bytes go
//! out ([`crate::write_hash`]), so the conversion report's output hash costs no second read.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::write_hash::WriteHasher;

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
    /// The stream position, and the largest one reached (the file's length).
    pos: u64,
    len: u64,
    hasher: Option<WriteHasher>,
}

/// The BLAKE3 and length of a finished file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileDigest {
    /// Length in bytes.
    pub bytes: u64,
    /// BLAKE3 of the bytes.
    pub blake3: blake3::Hash,
}

impl AtomicFile {
    /// Creates the temporary file next to `dest`.
    pub fn create(dest: &Path) -> io::Result<AtomicFile> {
        AtomicFile::create_with(dest, None)
    }

    /// Creates the temporary file next to `dest`, hashing what is written to it: a file written
    /// in order, except for rewrites of its first `prefix` bytes, gets its BLAKE3 from
    /// [`AtomicFile::written_hash`] without being read again. `prefix` is a power-of-two
    /// multiple of 1024 (BLAKE3's chunk); those bytes are read back at the end.
    ///
    /// Errors: `prefix` is not such a multiple (`InvalidInput`), or as [`AtomicFile::create`].
    pub fn create_hashed(dest: &Path, prefix: u64) -> io::Result<AtomicFile> {
        let hasher = WriteHasher::new(prefix).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("hash prefix {prefix} is not a power-of-two multiple of 1024"),
            )
        })?;
        AtomicFile::create_with(dest, Some(hasher))
    }

    fn create_with(dest: &Path, hasher: Option<WriteHasher>) -> io::Result<AtomicFile> {
        check_destination(dest)?;
        let dir = parent_dir(dest);
        let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.smelt-tmp-{}-{n}", std::process::id()));
        let file = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        register(&tmp);
        Ok(AtomicFile {
            dest: dest.to_path_buf(),
            tmp,
            file: Some(BufWriter::with_capacity(WRITE_PIECE, file)),
            pos: 0,
            len: 0,
            hasher,
        })
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

    /// Records that `buf` went out at the current position.
    fn wrote(&mut self, buf: &[u8]) {
        if let Some(h) = &mut self.hasher {
            h.wrote(self.pos, buf);
        }
        self.pos += buf.len() as u64;
        self.len = self.len.max(self.pos);
    }

    /// The BLAKE3 and length of what was written, for a file made with
    /// [`AtomicFile::create_hashed`]: flushes, reads back the prefix and merges it with the
    /// hash taken while writing. `None` when the file was not made to hash, or was written
    /// in an order the streamed hash cannot follow (the caller then hashes the file).
    pub fn written_hash(&mut self) -> io::Result<Option<FileDigest>> {
        let Some(hasher) = self.hasher.take() else { return Ok(None) };
        self.flush()?;
        let head = self.len.min(hasher.prefix()) as usize;
        let mut prefix = vec![0u8; head];
        File::open(&self.tmp)?.read_exact(&mut prefix)?;
        Ok(hasher.finish(self.len, &prefix).map(|blake3| FileDigest { bytes: self.len, blake3 }))
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

/// The write buffer's size, and the pieces [`AtomicFile::write_all`] hands on (and hashes).
const WRITE_PIECE: usize = 1 << 20;

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner().write(buf)?;
        self.wrote(&buf[..n]);
        Ok(n)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        // In pieces of the buffer's size (written straight through when it is empty), each
        // hashed right after the kernel copied it, while it is in the core's cache: a tensor
        // of megabytes read twice from memory cost the hash about half its speed.
        for piece in buf.chunks(WRITE_PIECE) {
            if let Err(e) = self.inner().write_all(piece) {
                // How much went out is unknown: the streamed hash cannot follow any more.
                if let Some(h) = &mut self.hasher {
                    h.break_off();
                }
                return Err(e);
            }
            self.wrote(piece);
        }
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner().flush()
    }
}

impl Seek for AtomicFile {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        match self.inner().seek(pos) {
            Ok(at) => {
                self.pos = at;
                Ok(at)
            }
            Err(e) => {
                if let Some(h) = &mut self.hasher {
                    h.break_off();
                }
                Err(e)
            }
        }
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

    /// Through `Write` and `Seek`: a header patched inside the prefix after the body is
    /// streamed gives BLAKE3 of the file's final bytes; a patch past the prefix gives `None`
    /// (the caller reads the file again); a file not made to hash gives `None`.
    #[test]
    fn written_hash_follows_writes_and_seeks() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.bin");
        let body: Vec<u8> = (0..100_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 9) as u8).collect();
        let mut f = AtomicFile::create_hashed(&dest, 4096).unwrap();
        f.write_all(&[0u8; 300]).unwrap();
        for piece in body.chunks(7_777) {
            f.write_all(piece).unwrap();
        }
        f.seek(SeekFrom::Start(10)).unwrap();
        f.write_all(b"header").unwrap();
        f.seek(SeekFrom::End(0)).unwrap();
        let digest = f.written_hash().unwrap().unwrap();
        f.commit().unwrap();
        let bytes = std::fs::read(&dest).unwrap();
        assert_eq!(digest, FileDigest { bytes: bytes.len() as u64, blake3: blake3::hash(&bytes) });

        let mut f = AtomicFile::create_hashed(&dest, 4096).unwrap();
        f.write_all(&body).unwrap();
        f.seek(SeekFrom::Start(50_000)).unwrap();
        f.write_all(b"late").unwrap();
        assert_eq!(f.written_hash().unwrap(), None);
        let mut f = AtomicFile::create(&dest).unwrap();
        f.write_all(&body).unwrap();
        assert_eq!(f.written_hash().unwrap(), None);
        assert!(AtomicFile::create_hashed(&dest, 3000).is_err(), "not a power-of-two multiple of 1024");
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
