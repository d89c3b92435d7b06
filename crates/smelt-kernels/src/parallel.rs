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
/// stride `ld`, without reading one first (`out` may be the worker's scratch,
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
    let one_thread = rayon::current_num_threads() == 1;
    if m == 0 || n == 0 || work < PARALLEL_MIN_WORK || n <= chunk || (one_thread && m == 1) {
        let c = c.into_slice(m * n);
        if m == 0 || n == 0 {
            return;
        }
        if m == 1 {
            f(0, n, c, n);
            return;
        }
        // Several rows go chunk by chunk here too: a chunk's output block stays in cache
        // across the kernel's `k` blocks, where the whole width at once (16 MB for a 128-row
        // product with 32000 columns) goes back to memory for every block (single thread,
        // 128×1024×32000: 86 ms against 106).
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
    // L2, reused from task to task) and copies it into place. A single thread takes this path
    // too: written in place, a tile's rows are the whole width apart, and the blocked f32
    // kernel on one thread of the AVX2 machine (alternating in one process) took 9.9 against
    // 8.8 ms at 128×1024×2816, 3.5 against 3.2 at 128×1024×1024, 104.5 against 102.3 at
    // 128×32000×1024, and the same at 128×2816×1024 and 16×2816×1024.
    for_column_blocks(m, n, chunk, work, c, |j0, j1, block| {
        let w = j1 - j0;
        with_scratch(m * w, |buf: &mut [T]| {
            f(j0, j1, buf, w);
            for (r, row) in buf.chunks_exact(w).enumerate() {
                block.write_row(r, 0, row);
            }
        });
    });
}

/// Fills `c` (`m × n`, row-major) by calling `f(j0, j1, block)` for column ranges `j0..j1`
/// (fixed multiples of `chunk`, on the pool when `work` is worth it, else one after another);
/// `f` writes every element of its [`ColBlock`] (`m` rows of `j1 - j0`), in place: no scratch,
/// no copy, for kernels that store whole tiles (where [`for_column_ranges`], whose kernels
/// write a slice, computes each block aside and copies it).
pub(crate) fn for_column_blocks<'c, T, F>(
    m: usize,
    n: usize,
    chunk: usize,
    work: usize,
    c: impl Into<Out<'c, T>>,
    f: F,
) where
    T: Copy + Send + Sync + 'c,
    F: Fn(usize, usize, &mut ColBlock<'_, T>) + Sync + Send,
{
    for_batch_column_blocks(1, m, n, chunk, work, c, |_, j0, j1, block| f(j0, j1, block));
}

/// [`for_column_blocks`] over `nb` stacked `m × n` results (result `i` in rows `i·m..(i+1)·m`
/// of `c`, `nb·m × n`): `f(i, j0, j1, block)` for every result and column range, the tasks of
/// all results shared out together.
pub(crate) fn for_batch_column_blocks<'c, T, F>(
    nb: usize,
    m: usize,
    n: usize,
    chunk: usize,
    work: usize,
    c: impl Into<Out<'c, T>>,
    f: F,
) where
    T: Copy + Send + Sync + 'c,
    F: Fn(usize, usize, usize, &mut ColBlock<'_, T>) + Sync + Send,
{
    let chunk = chunk.max(1);
    let len = nb * m * n;
    let (dst, fresh) = match c.into() {
        Out::Slice(s) => {
            assert_eq!(s.len(), len, "output has {} elements, nb·m·n = {len}", s.len());
            (SharedOut(s.as_mut_ptr()), None)
        }
        Out::Fresh(v) => {
            v.clear();
            v.reserve_exact(len);
            (SharedOut(v.as_mut_ptr()), Some(v))
        }
    };
    let dst = &dst;
    let chunks = n.div_ceil(chunk);
    let task = |t: usize| {
        let (i, j0) = (t / chunks, (t % chunks) * chunk);
        let j1 = (j0 + chunk).min(n);
        // SAFETY: `dst` points at `nb·m·n` elements (a slice borrowed mutably for this whole
        // call, or a vector's reserved capacity); the block covers rows 0..m, columns j0..j1
        // of result i, which no other task's block covers (the ranges are disjoint).
        let mut block = unsafe { ColBlock::new(dst.0.add(i * m * n + j0), m, j1 - j0, n) };
        f(i, j0, j1, &mut block);
    };
    if len > 0 {
        let tasks = nb * chunks;
        if work < PARALLEL_MIN_WORK || tasks == 1 || rayon::current_num_threads() == 1 {
            (0..tasks).for_each(task);
        } else {
            (0..tasks).into_par_iter().for_each(task);
        }
    }
    if let Some(v) = fresh {
        // SAFETY: the capacity is nb·m·n (reserved above) and the tasks, whose column ranges
        // cover 0..n of every result, have each written every element of their block (`f`'s
        // contract). A panicking task propagates before this line, leaving the vector empty.
        unsafe { v.set_len(len) };
    }
}

/// One task's columns of a row-major output: `rows` rows of `width` elements, row `r` at
/// `ptr + r·ld`. Blocks of different tasks interleave in memory, so a block is never one
/// slice (and its memory may not be initialized yet: it is written, never read, until the
/// task has written it): rows are copied in with [`ColBlock::write_row`], or a kernel that
/// stores whole tiles takes the pointer ([`ColBlock::tile_ptr`]).
pub(crate) struct ColBlock<'a, T> {
    ptr: *mut T,
    rows: usize,
    width: usize,
    ld: usize,
    _out: std::marker::PhantomData<&'a mut [T]>,
}

impl<T: Copy> ColBlock<'_, T> {
    /// # Safety
    /// `ptr + r·ld + j` for `r < rows`, `j < width` is valid for writes (and for reads of what
    /// was written through the block) for the block's lifetime, and nothing else accesses
    /// those elements meanwhile.
    unsafe fn new(ptr: *mut T, rows: usize, width: usize, ld: usize) -> Self {
        debug_assert!(width <= ld || rows <= 1);
        ColBlock { ptr, rows, width, ld, _out: std::marker::PhantomData }
    }

    /// Elements between the starts of two rows.
    pub(crate) fn ld(&self) -> usize {
        self.ld
    }

    /// Writes `src` into row `r` from column `col` on.
    ///
    /// # Panics
    /// When `r` or the columns are outside the block.
    pub(crate) fn write_row(&mut self, r: usize, col: usize, src: &[T]) {
        assert!(r < self.rows && col + src.len() <= self.width, "row {r}, columns {col}.. outside the block");
        // SAFETY: inside the block (asserted), which `new`'s contract makes writable.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.add(r * self.ld + col), src.len()) };
    }

    /// The element at row 0, column `col`, for a kernel that stores a `rows × w` tile with
    /// row stride [`ColBlock::ld`] (and may read back what it stored).
    ///
    /// # Panics
    /// When `rows` rows of `w` columns from `col` do not fit in the block.
    pub(crate) fn tile_ptr(&mut self, rows: usize, col: usize, w: usize) -> *mut T {
        assert!(
            rows <= self.rows && col + w <= self.width,
            "a {rows}×{w} tile at column {col} outside the block"
        );
        // SAFETY: `col <= width`, inside the allocation.
        unsafe { self.ptr.add(col) }
    }
}

/// Runs `f` on `len` elements of this thread's scratch (contents unspecified: earlier tasks'
/// values, or all-ones bits in debug builds).
pub(crate) fn with_scratch<T: bytemuck::Pod, R>(len: usize, f: impl FnOnce(&mut [T]) -> R) -> R {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every element of the output is written once, by the block holding its column, on one
    /// thread and on several, into a slice and into a fresh vector.
    #[test]
    fn column_blocks_cover_the_output_once() {
        for threads in [1usize, 3] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            for (m, n, chunk) in
                [(1usize, 1usize, 64usize), (5, 130, 64), (9, 64, 64), (3, 200, 32), (0, 10, 4)]
            {
                let want: Vec<u32> = (0..m * n).map(|i| i as u32).collect();
                let fill = |j0: usize, j1: usize, b: &mut ColBlock<'_, u32>| {
                    for r in 0..m {
                        let row: Vec<u32> = (j0..j1).map(|j| (r * n + j) as u32).collect();
                        b.write_row(r, 0, &row);
                    }
                };
                pool.install(|| {
                    let mut s = vec![u32::MAX; m * n];
                    for_column_blocks(m, n, chunk, usize::MAX, &mut s[..], fill);
                    assert_eq!(s, want, "slice, {threads} threads, {m}×{n}");
                    let mut v = vec![7u32; 3];
                    for_column_blocks(m, n, chunk, usize::MAX, Out::Fresh(&mut v), fill);
                    assert_eq!(v, want, "fresh, {threads} threads, {m}×{n}");
                });
            }
        }
    }

    #[test]
    #[should_panic(expected = "outside the block")]
    fn a_row_past_the_block_is_refused() {
        let mut s = [0u32; 2 * 8];
        for_column_blocks(2, 8, 4, 0, &mut s[..], |_, _, b| b.write_row(0, 2, &[1, 2, 3]));
    }
}
