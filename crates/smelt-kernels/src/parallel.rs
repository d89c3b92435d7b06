//! Splitting work over output columns on rayon's pool.
//!
//! Chunk boundaries are fixed multiples of a kernel's tile computed from the problem size
//! only, never from the thread count, and every kernel computes an output element with the
//! same instruction sequence wherever its column range starts (pinned by the crate's
//! `split_invariance` tests), so results are bit-identical however many threads run.

use std::cell::Cell;

use rayon::prelude::*;

/// Below this many multiply-adds a call stays on the calling thread.
const PARALLEL_MIN_WORK: usize = 1 << 17;

/// Largest block (bytes) a worker keeps as its scratch between tasks; a larger one is
/// allocated for the task and freed after it.
const SCRATCH_KEEP: usize = 4 << 20;

thread_local! {
    /// The worker's block buffer, reused by every column task it runs (taken out while a
    /// task uses it, so a task that starts another split on this thread gets its own).
    static SCRATCH: Cell<Vec<u64>> = const { Cell::new(Vec::new()) };
}

/// Where a column-split kernel's `m × n` result goes.
pub(crate) enum Out<'a, T> {
    /// An `m·n` buffer, overwritten.
    Slice(&'a mut [T]),
    /// A vector that is given the `m·n` elements (its old contents are dropped). Split over
    /// threads, every element is written once, straight into the new allocation: the result
    /// is never zero-filled first.
    Fresh(&'a mut Vec<T>),
}

impl<'a, T> From<&'a mut [T]> for Out<'a, T> {
    fn from(c: &'a mut [T]) -> Self {
        Out::Slice(c)
    }
}

impl<'a, T: Copy + Default> Out<'a, T> {
    /// The output as an initialized `len`-element slice (a fresh vector zero-filled).
    pub(crate) fn into_slice(self, len: usize) -> &'a mut [T] {
        match self {
            Out::Slice(c) => {
                assert_eq!(c.len(), len, "output has {} elements, expected {len}", c.len());
                c
            }
            Out::Fresh(v) => {
                v.clear();
                v.resize(len, T::default());
                v
            }
        }
    }

    /// Elements the output holds or will hold: `None` for a fresh vector (it is sized by
    /// the call).
    pub(crate) fn len(&self) -> Option<usize> {
        match self {
            Out::Slice(c) => Some(c.len()),
            Out::Fresh(_) => None,
        }
    }
}

/// Fills `c` (`m × n`, row-major) by calling `f(j0, j1, out, ld)` for column ranges
/// `j0..j1`; `f` writes every element of the `m × (j1 - j0)` block into `out` with row
/// stride `ld`, without reading one first (on the threads `out` is the worker's scratch,
/// holding an earlier task's values; debug builds fill it with all-ones bits, NaN for f32,
/// so that a kernel reading before writing fails the tests).
///
/// `work` is the number of multiply-adds (or weight bytes) of the whole call, used only to
/// decide whether threads are worth starting; `chunk` is the column chunk (a tile multiple).
pub(crate) fn for_column_ranges<'c, T, F>(
    m: usize,
    n: usize,
    chunk: usize,
    work: usize,
    c: impl Into<Out<'c, T>>,
    f: F,
) where
    T: bytemuck::Pod + Default + Send + Sync,
    F: Fn(usize, usize, &mut [T], usize) + Sync + Send,
{
    let c = c.into();
    let chunk = chunk.max(1);
    if m == 0 || n == 0 || work < PARALLEL_MIN_WORK || n <= chunk || rayon::current_num_threads() == 1 {
        let c = c.into_slice(m * n);
        if m == 0 || n == 0 {
            return;
        }
        if m == 1 {
            f(0, n, c, n);
            return;
        }
        // Several rows go chunk by chunk on one thread too: a chunk's output block stays in
        // cache across the kernel's `k` blocks, where the whole width at once (16 MB for a
        // 128-row product with 32000 columns) goes back to memory for every block (single
        // thread, 128×1024×32000: 86 ms against 106).
        for j0 in (0..n).step_by(chunk) {
            f(j0, (j0 + chunk).min(n), &mut c[j0..], n);
        }
        return;
    }
    if m == 1 {
        let c = c.into_slice(n);
        c.par_chunks_mut(chunk).enumerate().for_each(|(i, out)| {
            let j0 = i * chunk;
            let w = out.len();
            f(j0, j0 + w, out, w);
        });
        return;
    }
    // Several rows: each task computes its column block into its worker's scratch (in L1 or
    // L2, reused from task to task) and copies it into place.
    let (dst, fresh) = match c {
        Out::Slice(s) => {
            assert_eq!(s.len(), m * n, "output has {} elements, m·n = {}", s.len(), m * n);
            (SharedOut(s.as_mut_ptr()), None)
        }
        Out::Fresh(v) => {
            v.clear();
            v.reserve_exact(m * n);
            (SharedOut(v.as_mut_ptr()), Some(v))
        }
    };
    let dst = &dst;
    (0..n.div_ceil(chunk)).into_par_iter().for_each(|i| {
        let (j0, j1) = (i * chunk, ((i + 1) * chunk).min(n));
        let w = j1 - j0;
        with_scratch(m * w, |buf: &mut [T]| {
            f(j0, j1, buf, w);
            for r in 0..m {
                // SAFETY: `dst` points at `m·n` elements of `c` (a slice borrowed mutably for
                // this whole call, or a vector's reserved capacity), written only here,
                // through raw pointers: row r, columns j0..j1, which no other task writes
                // (the column ranges are disjoint); `buf` holds m × w elements.
                unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr().add(r * w), dst.0.add(r * n + j0), w) };
            }
        });
    });
    if let Some(v) = fresh {
        // SAFETY: the capacity is m·n (reserved above) and the tasks, whose column ranges
        // cover 0..n, have each written rows 0..m of their range: every element is set.
        // A panicking task propagates before this line, leaving the vector empty.
        unsafe { v.set_len(m * n) };
    }
}

/// Runs `f` on `len` elements of this thread's scratch (contents unspecified: earlier tasks'
/// values, or all-ones bits in debug builds).
fn with_scratch<T: bytemuck::Pod, R>(len: usize, f: impl FnOnce(&mut [T]) -> R) -> R {
    let bytes = len * std::mem::size_of::<T>();
    let mut buf = SCRATCH.with(Cell::take);
    if buf.len() * 8 < bytes {
        buf = vec![0u64; bytes.div_ceil(8)];
    }
    let block: &mut [u8] = &mut bytemuck::cast_slice_mut::<u64, u8>(&mut buf)[..bytes];
    if cfg!(debug_assertions) {
        block.fill(0xFF);
    }
    let r = f(bytemuck::cast_slice_mut(block));
    if buf.len() * 8 <= SCRATCH_KEEP {
        SCRATCH.with(|s| s.set(buf));
    }
    r
}

/// `C`'s base pointer, shared by the tasks that write its disjoint column blocks.
struct SharedOut<T>(*mut T);

// SAFETY: the tasks write disjoint elements through it (see `for_column_ranges`), and `T` is
// `Send`.
unsafe impl<T: Send> Sync for SharedOut<T> {}
