//! Sharing elementwise and row-wise work out over rayon's pool (the kernels' pool). Each
//! element or row is computed by the same code wherever its chunk falls, so results do not
//! depend on the number of threads; small inputs stay on the calling thread.

use rayon::prelude::*;

/// Below this many elements work stays on the calling thread.
const MIN_PARALLEL: usize = 1 << 15;
/// Elements per task (a fixed size, so the split never depends on the thread count).
const CHUNK: usize = 1 << 13;

/// `f` of every element, in order.
pub(crate) fn map<T: Copy + Sync, O: Send>(v: &[T], f: impl Fn(T) -> O + Sync + Send) -> Vec<O> {
    if v.len() < MIN_PARALLEL {
        return v.iter().map(|&x| f(x)).collect();
    }
    v.par_iter().with_min_len(CHUNK).map(|&x| f(x)).collect()
}

/// `f` of every pair of elements of `a` and `b` (the same length), in order.
pub(crate) fn zip_map<T: Copy + Sync, U: Copy + Sync, O: Send>(
    a: &[T],
    b: &[U],
    f: impl Fn(T, U) -> O + Sync + Send,
) -> Vec<O> {
    debug_assert_eq!(a.len(), b.len());
    if a.len() < MIN_PARALLEL {
        return a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect();
    }
    a.par_iter().zip(b.par_iter()).with_min_len(CHUNK).map(|(&x, &y)| f(x, y)).collect()
}

/// Calls `f((input_row, output_row))` for each of the `len`-element rows of `v` and `out`.
pub(crate) fn for_rows<T: Sync, O: Send>(
    v: &[T],
    out: &mut [O],
    len: usize,
    f: impl Fn((&[T], &mut [O])) + Sync + Send,
) {
    debug_assert_eq!(v.len(), out.len());
    if v.len() < MIN_PARALLEL || len == 0 {
        v.chunks(len.max(1)).zip(out.chunks_mut(len.max(1))).for_each(f);
        return;
    }
    let rows_per_task = (CHUNK / len).max(1);
    v.par_chunks(len * rows_per_task).zip(out.par_chunks_mut(len * rows_per_task)).for_each(|(x, o)| {
        x.chunks(len).zip(o.chunks_mut(len)).for_each(&f);
    });
}
