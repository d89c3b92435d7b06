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
    // Several rows: each task computes its column block into its own buffer, copied into
    // place afterwards (m × n extra writes against m × n × k multiply-adds).
    let chunks = n.div_ceil(chunk);
    let blocks: Vec<Vec<T>> = (0..chunks)
        .into_par_iter()
        .map(|i| {
            let (j0, j1) = (i * chunk, ((i + 1) * chunk).min(n));
            let mut buf = vec![T::default(); m * (j1 - j0)];
            f(j0, j1, &mut buf, j1 - j0);
            buf
        })
        .collect();
    for (i, buf) in blocks.iter().enumerate() {
        let j0 = i * chunk;
        let w = buf.len() / m;
        for r in 0..m {
            c[r * n + j0..r * n + j0 + w].copy_from_slice(&buf[r * w..(r + 1) * w]);
        }
    }
}
