//! Where tensor bytes live: a read-only mmap of the input file, shared as [`bytes::Bytes`] so
//! that slicing a tensor out of it (and prost decoding `raw_data` from it) copies nothing.
//!
//! This is one of the two places in smelt allowed `unsafe` (the other is the kernels' arch
//! modules): mapping a file is unsafe because another process could change it under us.

use std::borrow::Cow;
use std::fs::File;
use std::io;

use bytes::Bytes;

/// Maps `file` read-only and returns its bytes. An empty file gives empty `Bytes` (mmap of
/// length zero is an error on Linux).
pub fn map_file(file: &File) -> io::Result<Bytes> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(Bytes::new());
    }
    // SAFETY: the mapping is read-only and private to this process. The remaining hazard of
    // file-backed maps — another process truncating or rewriting the file while we read it —
    // is accepted, as every mmap-based model loader (llama.cpp, safetensors) accepts it: smelt
    // maps its own output only to hash it, as the temporary file it has just written and not
    // yet renamed.
    let map = unsafe { memmap2::MmapOptions::new().map(file)? };
    #[cfg(unix)]
    {
        // Sequential reads dominate (convert streams tensor after tensor); advice is a hint,
        // so its failure is ignored.
        let _ = map.advise(memmap2::Advice::Sequential);
    }
    Ok(Bytes::from_owner(Mapped::register(map)))
}

/// Tells the kernel that the pages wholly inside `bytes` will not be read again soon, so
/// they leave this process's resident set (they stay in the page cache, and reading them
/// again maps them back in). This is what keeps a conversion's memory bounded by a few
/// tensors rather than by the input file: without it, every page of the input mmap that was
/// read stays counted in the process's RSS.
///
/// Does nothing unless `bytes` lies inside a live mapping made by [`map_file`] (owned bytes
/// are never touched), and on platforms without `madvise`.
pub fn release_pages(bytes: &[u8]) {
    #[cfg(unix)]
    {
        let start = bytes.as_ptr() as usize;
        let end = start + bytes.len();
        let live = LIVE_MAPS.lock().unwrap_or_else(|e| e.into_inner());
        if !live.iter().any(|&(s, e)| s <= start && end <= e) {
            return;
        }
        let page = page_size();
        let first = start.div_ceil(page) * page;
        let last = end / page * page;
        if last > first {
            // SAFETY: [first, last) is page-aligned and lies inside a read-only private file
            // mapping that is still alive: `LIVE_MAPS` is locked, and a mapping leaves it (in
            // `Mapped::drop`, under the same lock) before it is unmapped. For such a mapping
            // MADV_DONTNEED only drops this process's page-table entries: the next read faults
            // the same file bytes back in, so no byte any `&[u8]` can see ever changes.
            unsafe {
                libc::madvise(first as *mut libc::c_void, last - first, libc::MADV_DONTNEED);
            }
        }
    }
    #[cfg(not(unix))]
    let _ = bytes;
}

#[cfg(unix)]
fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

/// The address ranges of the live mappings made by [`map_file`].
static LIVE_MAPS: std::sync::Mutex<Vec<(usize, usize)>> = std::sync::Mutex::new(Vec::new());

/// An mmap that is listed in [`LIVE_MAPS`] for as long as it is mapped.
struct Mapped(memmap2::Mmap);

impl Mapped {
    fn register(map: memmap2::Mmap) -> Mapped {
        let range = (map.as_ptr() as usize, map.as_ptr() as usize + map.len());
        LIVE_MAPS.lock().unwrap_or_else(|e| e.into_inner()).push(range);
        Mapped(map)
    }
}

impl AsRef<[u8]> for Mapped {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        let start = self.0.as_ptr() as usize;
        let mut live = LIVE_MAPS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = live.iter().position(|&(s, _)| s == start) {
            live.swap_remove(i);
        }
        // the Mmap itself is unmapped after this, when the field is dropped
    }
}

/// Views `bytes` as a slice of `T` when its address and length allow it, or copies it into a
/// properly aligned `Vec<T>` when they do not. `None` when the length is not a multiple of
/// `size_of::<T>()`. File formats do not all guarantee alignment (safetensors does not), so
/// this is how every typed read of tensor bytes goes.
pub fn cast_or_copy<T: bytemuck::Pod>(bytes: &[u8]) -> Option<Cow<'_, [T]>> {
    let size = std::mem::size_of::<T>();
    if size == 0 || bytes.len() % size != 0 {
        return None;
    }
    match bytemuck::try_cast_slice::<u8, T>(bytes) {
        Ok(s) => Some(Cow::Borrowed(s)),
        Err(_) => {
            let mut v = vec![T::zeroed(); bytes.len() / size];
            bytemuck::cast_slice_mut::<T, u8>(&mut v).copy_from_slice(bytes);
            Some(Cow::Owned(v))
        }
    }
}

/// Makes the C allocator keep the memory of freed tensors for the next allocations instead of
/// returning it to the kernel, for a process that runs a model repeatedly (`smelt run
/// --repeat`, `smelt validate`, a server).
///
/// A run allocates its intermediate tensors afresh; with glibc's defaults a large one (above
/// the adaptive mmap threshold) or a heap top that grew past the trim threshold goes back to
/// the kernel when freed, and the next run takes page faults (and zeroing) on every page again:
/// about 8,300 faults, 33 MB, per run of the e2e benchmark's float prefill. Here: blocks up to
/// 32 MiB (glibc's largest allowed threshold) come from the heap, and the heap is never
/// trimmed, so after the first run a run takes no page faults; resident memory stays at the
/// peak of a run, as with ONNX Runtime's arena. A no-op other than on Linux with glibc.
pub fn retain_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; both values are in glibc's ranges.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn released_pages_read_back_the_same_bytes() {
        let path = std::env::temp_dir().join(format!("smelt-release-{}", std::process::id()));
        let data: Vec<u8> = (0..3 * 4096 + 123).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let mapped = map_file(&File::open(&path).unwrap()).unwrap();
        assert_eq!(&mapped[..], &data[..]);
        release_pages(&mapped[100..]);
        release_pages(&mapped);
        assert_eq!(&mapped[..], &data[..], "bytes after MADV_DONTNEED");
        // Owned bytes are left alone (DONTNEED on anonymous memory would zero it).
        let owned = data.clone();
        release_pages(&owned);
        assert_eq!(owned, data);
        drop(mapped);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn cast_or_copy_handles_misaligned_input() {
        let raw: Vec<u8> = (0..17u8).collect();
        let aligned = cast_or_copy::<u32>(&raw[..16]).unwrap();
        let misaligned = cast_or_copy::<u32>(&raw[1..17]).unwrap();
        assert_eq!(aligned[0], u32::from_le_bytes([0, 1, 2, 3]));
        assert_eq!(misaligned[0], u32::from_le_bytes([1, 2, 3, 4]));
        assert!(cast_or_copy::<u32>(&raw[..15]).is_none());
    }

    #[test]
    fn map_empty_and_nonempty_files() {
        let dir = std::env::temp_dir().join(format!("smelt-map-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a");
        std::fs::write(&p, b"").unwrap();
        assert!(map_file(&File::open(&p).unwrap()).unwrap().is_empty());
        std::fs::write(&p, b"hello").unwrap();
        assert_eq!(&map_file(&File::open(&p).unwrap()).unwrap()[..], b"hello");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
