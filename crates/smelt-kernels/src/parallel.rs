//! Splitting work over output columns on rayon's pool.
//!
//! Chunk boundaries are fixed multiples of a kernel's tile computed from the problem size
//! only, never from the thread count, and every kernel computes an output element with the
//! same instruction sequence wherever its column range starts (pinned by the crate's
//! `split_invariance` tests), so results are bit-identical however many threads run.

use rayon::prelude::*;

/// Below this many multiply-adds a call stays on the calling thread.
const PARALLEL_MIN_WORK: usize = 1 << 17;

/// Fills `c` (`m × n`, row-major) by calling `f(j0, j1, out, ld)` for column ranges
/// `j0..j1`; `f` writes the `m × (j1 - j0)` block into `out` with row stride `ld`.
///
/// `work` is the number of multiply-adds (or weight bytes) of the whole call, used only to
/// decide whether threads are worth starting; `chunk` is the column chunk (a tile multiple).
pub(crate) fn for_column_ranges<T, F>(m: usize, n: usize, chunk: usize, work: usize, c: &mut [T], f: F)
where
    T: Copy + Default + Send + Sync,
    F: Fn(usize, usize, &mut [T], usize) + Sync + Send,
{
    debug_assert_eq!(c.len(), m * n);
    if m == 0 || n == 0 {
        return;
    }
    let chunk = chunk.max(1);
    if work < PARALLEL_MIN_WORK || n <= chunk || rayon::current_num_threads() == 1 {
        f(0, n, c, n);
        return;
    }
    if m == 1 {
        c.par_chunks_mut(chunk).enumerate().for_each(|(i, out)| {
            let j0 = i * chunk;
            let w = out.len();
            f(j0, j0 + w, out, w);
        });
        return;
    }
    // Several rows: each task computes its column block into its own buffer (freed right
    // away, so the allocator hands the same memory to the next task instead of fresh pages)
    // and copies it into place (m × n extra writes against m × n × k multiply-adds).
    let dst = SharedOut(c.as_mut_ptr());
    let dst = &dst;
    (0..n.div_ceil(chunk)).into_par_iter().for_each(|i| {
        let (j0, j1) = (i * chunk, ((i + 1) * chunk).min(n));
        let w = j1 - j0;
        let mut buf = vec![T::default(); m * w];
        f(j0, j1, &mut buf, w);
        for r in 0..m {
            // SAFETY: `dst` points at `c` (m × n), borrowed mutably for this whole call and
            // written only here, through raw pointers: row r, columns j0..j1, which no other
            // task writes (the column ranges are disjoint); `buf` holds m × w elements.
            unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr().add(r * w), dst.0.add(r * n + j0), w) };
        }
    });
}

/// `C`'s base pointer, shared by the tasks that write its disjoint column blocks.
struct SharedOut<T>(*mut T);

// SAFETY: the tasks write disjoint elements through it (see `for_column_ranges`), and `T` is
// `Send`.
unsafe impl<T: Send> Sync for SharedOut<T> {}
