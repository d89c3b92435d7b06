//! Output buffers reused from tensor to tensor.
//!
//! A large tensor's encoded bytes need a buffer of tens of megabytes. Allocated fresh per
//! tensor, each one is a new mapping: the kernel zeroes every page on first touch, charges it,
//! and unmaps it again when the writer is done (with a TLB shootdown on every core). On a
//! 0.85B-parameter q8_0 conversion that was about 5–10% of the samples in `perf record`. Here a buffer goes back
//! to a small pool when the last [`Bytes`] referring to it is dropped (after the sink wrote
//! it), and the next tensor takes it, its pages already mapped.
//!
//! At most [`KEEP`] buffers stay in the pool, so the pool holds no more than the pipeline
//! already keeps alive (one tensor being encoded, one waiting, one being written).

use std::sync::Mutex;

use bytes::Bytes;

/// Buffers kept for reuse.
const KEEP: usize = 3;

static POOL: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// A buffer of `len` bytes whose contents are unspecified (bytes left from an earlier tensor;
/// new memory is zero): the caller overwrites all of it.
pub(crate) fn take(len: usize) -> Vec<u8> {
    let mut pool = POOL.lock().unwrap_or_else(|p| p.into_inner());
    // The smallest buffer that holds `len`, else the largest (it grows).
    let pick = pool
        .iter()
        .enumerate()
        .filter(|(_, b)| b.capacity() >= len)
        .min_by_key(|(_, b)| b.capacity())
        .or_else(|| pool.iter().enumerate().max_by_key(|(_, b)| b.capacity()))
        .map(|(i, _)| i);
    let mut buf = match pick {
        Some(i) => pool.swap_remove(i),
        None => Vec::new(),
    };
    drop(pool);
    if buf.len() > len {
        buf.truncate(len);
    } else {
        buf.resize(len, 0);
    }
    buf
}

/// Hands a buffer back for reuse (one a caller took with [`take`] and no longer needs).
pub(crate) fn give(buf: Vec<u8>) {
    drop(Pooled(buf));
}

/// `buf` as [`Bytes`] that return it to the pool when the last reference is dropped.
pub(crate) fn into_bytes(buf: Vec<u8>) -> Bytes {
    Bytes::from_owner(Pooled(buf))
}

struct Pooled(Vec<u8>);

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.0);
        if buf.capacity() == 0 {
            return;
        }
        let mut pool = POOL.lock().unwrap_or_else(|p| p.into_inner());
        pool.push(buf);
        if pool.len() > KEEP {
            // The smallest goes: large tensors are the ones worth a mapped buffer.
            let smallest = (0..pool.len()).min_by_key(|&i| pool[i].capacity()).unwrap_or(0);
            pool.swap_remove(smallest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A buffer dropped by its last `Bytes` is handed out again (same memory), with the length
    /// asked for; the pool never keeps more than `KEEP`.
    #[test]
    fn buffers_come_back() {
        let b = into_bytes(take(1 << 20));
        let ptr = b.as_ptr();
        let copy = b.clone();
        drop(b);
        drop(copy);
        let again = take(1000);
        assert_eq!(again.len(), 1000);
        // Other tests may run in parallel and take it first; only check when it came back here.
        if again.as_ptr() == ptr {
            assert!(again.capacity() >= 1 << 20);
        }
        let many: Vec<Bytes> = (0..8).map(|i| into_bytes(take(4096 * (i + 1)))).collect();
        drop(many);
        assert!(POOL.lock().unwrap().len() <= KEEP);
    }
}
