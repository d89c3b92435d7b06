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
    // never maps its own outputs, which it writes to a temporary file and renames.
    let map = unsafe { memmap2::MmapOptions::new().map(file)? };
    #[cfg(unix)]
    {
        // Sequential reads dominate (convert streams tensor after tensor); advice is a hint,
        // so its failure is ignored.
        let _ = map.advise(memmap2::Advice::Sequential);
    }
    Ok(Bytes::from_owner(map))
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

#[cfg(test)]
mod tests {
    use super::*;

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
