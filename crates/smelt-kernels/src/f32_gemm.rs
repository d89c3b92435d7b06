//! f32 GEMM and GEMV: `C = A · B` with `B` either `k×n` ([`gemm_f32`]), `n×k`
//! ([`gemm_f32_bt`], a Linear weight `[out, in]`), or a constant `k×n` packed once into
//! 32-column panels ([`gemm_f32_packed`], the outer-product kernel of `gemm_f32` reading each
//! panel contiguously, 8 rows of `A` per pass with AVX-512).
//!
//! Scalar references: `gemm_f32` accumulates each output over `k` in order (`c += a·b`, two
//! roundings per step); `gemm_f32_bt` likewise as a dot product in `k` order. SIMD versions
//! use FMA (one rounding per step) and, for `gemm_f32_bt` (and `gemm_f32` with 8 rows or
//! more, which transposes `B` first), split each dot product into lane partial sums added at
//! the end (both pack `B` and run `gemm_f32_packed`'s blocked kernels from 8 rows on where
//! those exist). All stay within `|c - c_ref| ≤ 2·k·ε·Σ|a||b|` (ε = 2⁻²⁴)
//! of the reference, the bound the tests check.

use crate::arch;
use crate::blocked;
use crate::dispatch::{selected, Isa};
use crate::parallel::{for_batch_column_blocks, for_column_ranges, with_scratch, Out};
use crate::transpose::transpose;

/// Column chunk handed to one task (a multiple of every kernel's column tile).
const COL_CHUNK: usize = 64;
/// Column chunk of [`gemm_f32_packed`] with one row: four panels, which its GEMV kernel
/// streams together (more independent FMA chains and memory streams per task).
const GEMV_CHUNK: usize = 128;

/// From this many rows of `A` on, [`gemm_f32`]'s SIMD path transposes `B` and runs the
/// `gemm_f32_bt` kernel.
const TRANSPOSE_MIN_M: usize = 8;

/// Columns per panel of a [`PackedF32`] (the width of the outer-product kernels' tiles).
const PANEL: usize = 32;

/// A constant `B` (`k×n`) repacked for [`gemm_f32_packed`]: panels of 32 columns, each
/// stored as its own row-major `k×32` matrix (the last one zero-padded past `n`), so the
/// outer-product kernels read `B` contiguously whatever `n` is.
#[derive(Clone, Debug, PartialEq)]
pub struct PackedF32 {
    k: usize,
    n: usize,
    panels: Vec<f32>,
}

impl PackedF32 {
    /// Packs `b` (`k×n`, row-major).
    ///
    /// # Panics
    /// When `b.len() != k·n`.
    pub fn new(k: usize, n: usize, b: &[f32]) -> PackedF32 {
        assert_eq!(b.len(), k * n, "PackedF32: B has {} elements, k·n = {}", b.len(), k * n);
        let mut panels = vec![0.0f32; n.div_ceil(PANEL) * PANEL * k];
        for (p, panel) in panels.chunks_mut((PANEL * k).max(1)).enumerate() {
            let (j0, j1) = (p * PANEL, ((p + 1) * PANEL).min(n));
            for kk in 0..k {
                panel[kk * PANEL..kk * PANEL + (j1 - j0)].copy_from_slice(&b[kk * n + j0..kk * n + j1]);
            }
        }
        PackedF32 { k, n, panels }
    }

    /// Packs `B` given as `bt` = `Bᵀ` (`n×k`, row-major: a Linear weight `[out, in]`).
    ///
    /// # Panics
    /// When `bt.len() != n·k`.
    pub fn from_bt(k: usize, n: usize, bt: &[f32]) -> PackedF32 {
        assert_eq!(bt.len(), k * n, "PackedF32: Bᵀ has {} elements, k·n = {}", bt.len(), k * n);
        let mut panels = vec![0.0f32; n.div_ceil(PANEL) * PANEL * k];
        for (p, panel) in panels.chunks_mut((PANEL * k).max(1)).enumerate() {
            for c in 0..PANEL.min(n - p * PANEL) {
                let row = &bt[(p * PANEL + c) * k..(p * PANEL + c + 1) * k];
                for (kk, &v) in row.iter().enumerate() {
                    panel[kk * PANEL + c] = v;
                }
            }
        }
        PackedF32 { k, n, panels }
    }

    /// `B`'s shape, `[k, n]`.
    pub fn shape(&self) -> [usize; 2] {
        [self.k, self.n]
    }

    /// Columns `j0..j0 + w` (`j0` a multiple of 32) as a `k×32` matrix (zeros past `w`).
    fn panel(&self, j0: usize) -> (&[f32], usize) {
        let w = PANEL.min(self.n - j0);
        (&self.panels[j0 * self.k..(j0 + PANEL) * self.k], w)
    }
}

/// `C (m×n) = A (m×k) · B` with `B` packed once by [`PackedF32::new`]. Each output element
/// is computed exactly as by [`gemm_f32`] with fewer than 8 rows: accumulated over `k` in
/// order (FMA in the SIMD versions), so results do not depend on `m` or on the threads.
/// From 8 rows on the SIMD tiers run the cache-blocked kernels (`blocked.rs`), which keep
/// that arithmetic bit for bit.
///
/// # Panics
/// When `a.len() != m·k` or `c.len() != m·n` (`[k, n]` = `b.shape()`).
pub fn gemm_f32_packed(m: usize, a: &[f32], b: &PackedF32, c: &mut [f32]) {
    gemm_f32_packed_with(selected().float, m, a, b, c);
}

/// [`gemm_f32_packed`] on a chosen instruction set (scalar when the CPU lacks it).
///
/// # Panics
/// As [`gemm_f32_packed`].
pub fn gemm_f32_packed_with(isa: Isa, m: usize, a: &[f32], b: &PackedF32, c: &mut [f32]) {
    gemm_f32_packed_out(isa, m, a, b, c.into());
}

/// [`gemm_f32_packed`] into a new vector (`m·n` long), which on several threads is written
/// once per element and never zero-filled first (prefill's outputs are megabytes).
///
/// # Panics
/// When `a.len() != m·k`.
pub fn gemm_f32_packed_vec(m: usize, a: &[f32], b: &PackedF32) -> Vec<f32> {
    let mut c = Vec::new();
    gemm_f32_packed_out(selected().float, m, a, b, Out::Fresh(&mut c));
    c
}

fn gemm_f32_packed_out(isa: Isa, m: usize, a: &[f32], b: &PackedF32, c: Out<'_, f32>) {
    let [k, n] = b.shape();
    assert_eq!(a.len(), m * k, "gemm_f32_packed: A has {} elements, m·k = {}", a.len(), m * k);
    if let Some(len) = c.len() {
        assert_eq!(len, m * n, "gemm_f32_packed: C has {len} elements, m·n = {}", m * n);
    }
    if k == 0 {
        c.into_slice(m * n).fill(0.0);
        return;
    }
    let isa = isa.or_scalar();
    if m >= blocked::MIN_ROWS {
        if let Some(pa) = blocked::packed_a(isa, m, k, a) {
            for_column_ranges(m, n, COL_CHUNK, m * n * k, c, |j0, j1, out, ld| {
                let panels = blocked::Panels::F32(&b.panels[j0 * k..j1.div_ceil(PANEL) * PANEL * k]);
                let done = blocked::gemm_cols(isa, m, k, &pa, panels, j1 - j0, out, ld);
                debug_assert!(done, "blocked kernels exist for {isa}");
            });
            return;
        }
    }
    // One row (decode): chunks of four panels, run by a kernel that streams them together.
    let chunk = if m == 1 { GEMV_CHUNK } else { COL_CHUNK };
    for_column_ranges(m, n, chunk, m * n * k, c, |j0, j1, out, ld| {
        if m == 1 {
            let panels = &b.panels[j0 * k..j1.div_ceil(PANEL) * PANEL * k];
            if arch::gemv_f32_panels(isa, k, a, panels, j1 - j0, out) {
                return;
            }
        }
        for p0 in (j0..j1).step_by(PANEL) {
            let (panel, w) = b.panel(p0);
            let o = &mut out[p0 - j0..];
            if !arch::gemm_f32_cols(isa, m, PANEL, k, a, panel, 0, w, o, ld) {
                gemm_f32_cols_scalar(m, PANEL, k, a, panel, 0, w, o, ld);
            }
        }
    });
}

/// `nb` products at once, `A_i (m×k) · B_i` for `a[i]` and `b[i]` (`B_i` `k×n`, or given as
/// `Bᵀ`, `n×k`, when `bt`: [`gemm_f32_bt`]'s operand), every element then divided by `divisor`
/// when one is given, stacked into a new `nb·m × n` vector (product `i` in rows
/// `i·m..(i+1)·m`): attention's per-head products. Each product has the bits [`gemm_f32`] or
/// [`gemm_f32_bt`] gives it alone, then one division per element. With 8 rows or more (the
/// blocked kernels) the tasks run over products and column chunks together, each product's
/// operands packed once, and the result is written once, divided on its way out of the
/// task's scratch: never zero-filled, never passed over again.
///
/// # Panics
/// When `b.len() != a.len()`, an `a[i]` is not `m·k` long or a `b[i]` not `k·n`.
pub fn gemm_f32_batch_vec(
    m: usize,
    n: usize,
    k: usize,
    a: &[&[f32]],
    b: &[&[f32]],
    bt: bool,
    divisor: Option<f32>,
) -> Vec<f32> {
    use rayon::prelude::*;
    let nb = a.len();
    assert_eq!(b.len(), nb, "gemm_f32_batch_vec: {nb} A operands, {} B operands", b.len());
    for (ai, bi) in a.iter().zip(b) {
        assert_eq!(ai.len(), m * k, "gemm_f32_batch_vec: an A has {} elements, m·k = {}", ai.len(), m * k);
        assert_eq!(bi.len(), k * n, "gemm_f32_batch_vec: a B has {} elements, k·n = {}", bi.len(), k * n);
    }
    let divide = |row: &mut [f32]| {
        if let Some(d) = divisor {
            row.iter_mut().for_each(|x| *x /= d);
        }
    };
    let isa = selected().float.or_scalar();
    let mut c = Vec::new();
    if k > 0 && m >= blocked::MIN_ROWS && arch::blocked_row_tile(isa).is_some() {
        // As `gemm_f32` / `gemm_f32_bt` with this many rows: A in row tiles, B in panels, each
        // operand packed once however many products share it (a broadcast batch dimension
        // hands the same slice to every product).
        let (ua, first_a) = distinct(a);
        let (ub, first_b) = distinct(b);
        let pas: Vec<Vec<f32>> = first_a
            .par_iter()
            .map(|&i| blocked::packed_a(isa, m, k, a[i]).expect("blocked kernels exist for the tier"))
            .collect();
        let pbs: Vec<PackedF32> = first_b
            .par_iter()
            .map(|&i| if bt { PackedF32::from_bt(k, n, b[i]) } else { PackedF32::new(k, n, b[i]) })
            .collect();
        for_batch_column_blocks(
            nb,
            m,
            n,
            COL_CHUNK,
            nb * m * n * k,
            Out::Fresh(&mut c),
            |i, j0, j1, block| {
                let (pa, pb) = (&pas[ua[i]], &pbs[ub[i]]);
                let w = j1 - j0;
                with_scratch(m * w, |buf: &mut [f32]| {
                    let panels = blocked::Panels::F32(&pb.panels[j0 * k..j1.div_ceil(PANEL) * PANEL * k]);
                    let done = blocked::gemm_cols(isa, m, k, pa, panels, w, buf, w);
                    debug_assert!(done, "blocked kernels exist for {isa}");
                    for (r, row) in buf.chunks_exact_mut(w).enumerate() {
                        divide(row);
                        block.write_row(r, 0, row);
                    }
                });
            },
        );
        return c;
    }
    // Each product alone, as `gemm_f32` / `gemm_f32_bt` computes it.
    c.resize(nb * m * n, 0.0);
    let one = |(i, o): (usize, &mut [f32])| {
        if bt {
            gemm_f32_bt_with(isa, m, n, k, a[i], b[i], o);
        } else {
            gemm_f32_with(isa, m, n, k, a[i], b[i], o);
        }
        divide(o);
    };
    if m * n == 0 {
        return c;
    }
    if nb > 1 && m * n * k >= 1 << 16 {
        c.par_chunks_mut(m * n).enumerate().for_each(one);
    } else {
        c.chunks_mut(m * n).enumerate().for_each(one);
    }
    c
}

/// For operands that may repeat (the same slice for several products): each operand's index
/// among the distinct ones, and the first operand of each distinct one.
fn distinct(ops: &[&[f32]]) -> (Vec<usize>, Vec<usize>) {
    let mut seen = std::collections::HashMap::new();
    let mut first = Vec::new();
    let index = ops
        .iter()
        .enumerate()
        .map(|(i, op)| {
            *seen.entry((op.as_ptr() as usize, op.len())).or_insert_with(|| {
                first.push(i);
                first.len() - 1
            })
        })
        .collect();
    (index, first)
}

/// `C (m×n) = A (m×k) · B (k×n)`; all row-major and contiguous; `C` is overwritten.
///
/// # Panics
/// When `a.len() != m·k`, `b.len() != k·n` or `c.len() != m·n`.
pub fn gemm_f32(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    gemm_f32_with(selected().float, m, n, k, a, b, c);
}

/// `C (m×n) = A (m×k) · Bᵀ` where `B` is `n×k` row-major (a Linear weight `[out, in]`);
/// `C` is overwritten.
///
/// # Panics
/// When `a.len() != m·k`, `b.len() != n·k` or `c.len() != m·n`.
pub fn gemm_f32_bt(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    gemm_f32_bt_with(selected().float, m, n, k, a, b, c);
}

fn check_lengths(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &[f32]) {
    assert_eq!(a.len(), m * k, "gemm_f32: A has {} elements, m·k = {}", a.len(), m * k);
    assert_eq!(b.len(), k * n, "gemm_f32: B has {} elements, k·n = {}", b.len(), k * n);
    assert_eq!(c.len(), m * n, "gemm_f32: C has {} elements, m·n = {}", c.len(), m * n);
}

/// [`gemm_f32`] on a chosen instruction set (scalar when the CPU lacks it).
///
/// # Panics
/// As [`gemm_f32`].
pub fn gemm_f32_with(isa: Isa, m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    check_lengths(m, n, k, a, b, c);
    if k == 0 {
        c.fill(0.0);
        return;
    }
    let isa = isa.or_scalar();
    if m >= blocked::MIN_ROWS && arch::blocked_row_tile(isa).is_some() {
        // Many rows: B packed into panels (k·n moves against m·n·k FMAs) and the blocked
        // kernels, the same arithmetic as `gemm_f32_packed`.
        gemm_f32_packed_with(isa, m, a, &PackedF32::new(k, n, b), c);
        return;
    }
    if isa != Isa::Scalar && m >= TRANSPOSE_MIN_M {
        // Enough rows to pay for one transposition of B (n·k moves against m·n·k FMAs): the
        // dot-product kernel reads B contiguously.
        let bt = transpose(k, n, b);
        for_column_ranges(m, n, COL_CHUNK, m * n * k, c, |j0, j1, out, ld| {
            gemm_f32_bt_cols_isa(isa, m, k, a, &bt[j0 * k..j1 * k], 0, j1 - j0, out, ld);
        });
        return;
    }
    for_column_ranges(m, n, COL_CHUNK, m * n * k, c, |j0, j1, out, ld| {
        if !arch::gemm_f32_cols(isa, m, n, k, a, b, j0, j1, out, ld) {
            gemm_f32_cols_scalar(m, n, k, a, b, j0, j1, out, ld);
        }
    });
}

/// [`gemm_f32_bt`] on a chosen instruction set (scalar when the CPU lacks it).
///
/// # Panics
/// As [`gemm_f32_bt`].
pub fn gemm_f32_bt_with(isa: Isa, m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    check_lengths(m, n, k, a, b, c);
    if k == 0 {
        c.fill(0.0);
        return;
    }
    let isa = isa.or_scalar();
    if m >= blocked::MIN_ROWS && arch::blocked_row_tile(isa).is_some() {
        // Many rows (prefill attention's Q·Kᵀ): Bᵀ packed into panels and the blocked
        // kernels, as `gemm_f32` does.
        gemm_f32_packed_with(isa, m, a, &PackedF32::from_bt(k, n, b), c);
        return;
    }
    for_column_ranges(m, n, COL_CHUNK, m * n * k, c, |j0, j1, out, ld| {
        if !arch::gemm_f32_bt_cols(isa, m, k, a, b, j0, j1, out, ld) {
            gemm_f32_bt_cols_scalar(m, k, a, b, j0, j1, out, ld);
        }
    });
}

/// [`gemm_f32_bt`] columns `j0..j1` on `isa` (already checked available), scalar fallback.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_f32_bt_cols_isa(
    isa: Isa,
    m: usize,
    k: usize,
    a: &[f32],
    b: &[f32],
    j0: usize,
    j1: usize,
    out: &mut [f32],
    ld: usize,
) {
    if !arch::gemm_f32_bt_cols(isa, m, k, a, b, j0, j1, out, ld) {
        gemm_f32_bt_cols_scalar(m, k, a, b, j0, j1, out, ld);
    }
}

/// Scalar reference of [`gemm_f32`] for columns `j0..j1`, into `out` (row stride `ld`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_f32_cols_scalar(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    b: &[f32],
    j0: usize,
    j1: usize,
    out: &mut [f32],
    ld: usize,
) {
    let w = j1 - j0;
    for i in 0..m {
        let row = &mut out[i * ld..i * ld + w];
        row.fill(0.0);
        for (kk, &aik) in a[i * k..(i + 1) * k].iter().enumerate() {
            let brow = &b[kk * n + j0..kk * n + j1];
            for (o, &bv) in row.iter_mut().zip(brow) {
                *o += aik * bv;
            }
        }
    }
}

/// Scalar reference of [`gemm_f32_bt`] for columns `j0..j1`, into `out` (row stride `ld`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_f32_bt_cols_scalar(
    m: usize,
    k: usize,
    a: &[f32],
    b: &[f32],
    j0: usize,
    j1: usize,
    out: &mut [f32],
    ld: usize,
) {
    for i in 0..m {
        let arow = &a[i * k..(i + 1) * k];
        for j in j0..j1 {
            let brow = &b[j * k..(j + 1) * k];
            let mut s = 0.0f32;
            for (x, y) in arow.iter().zip(brow) {
                s += x * y;
            }
            out[i * ld + (j - j0)] = s;
        }
    }
}
