//! f32 GEMM kernels with NEON (128-bit, 4 lanes; every aarch64 CPU has them), the same
//! arithmetic contracts as the x86-64 ones:
//!
//! - `gemm_cols` (`B` is `k×n`) and the blocked micro-kernel `panel`: each output element is
//!   the chain `acc = fma(a[i,kk], b[kk,j], acc)` over `kk` in order from 0 (`fmla`, one
//!   rounding per step), so an element's bits never depend on the tile, the row count, the
//!   column chunk or the `kc` blocking (the blocked kernel carries the chain through `C`; an
//!   f32 store and reload is exact). Column tails that do not fill a vector run the same chain
//!   with `f32::mul_add`, which is the same fused operation.
//! - `gemm_bt_cols` (`B` is `n×k`): dot products in 4-lane partial sums over `kk` (a tail
//!   shorter than 4 read into a zero-padded vector), then `faddp`-style pairwise reduction
//!   (`vaddvq_f32`), a fixed order.

use std::arch::aarch64::*;

use crate::blocked::NR;
use crate::dispatch::Isa;

/// Rows of the blocked kernel's tile: 6 rows × 16 columns keep 24 accumulators, 4 vectors of
/// `B` and the tile's 6 values of `A` (two vectors, read by lane) in the 32 registers.
const MR: usize = 6;

/// Rows of `A` per packed tile for `isa`, `None` without a blocked kernel.
pub(crate) fn row_tile(isa: Isa) -> Option<usize> {
    matches!(isa, Isa::Neon | Isa::NeonDot).then_some(MR)
}

/// See `arch::gemm_f32_cols`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_cols(
    isa: Isa,
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    b: &[f32],
    j0: usize,
    j1: usize,
    out: &mut [f32],
    ld: usize,
) -> bool {
    if !matches!(isa, Isa::Neon | Isa::NeonDot) {
        return false;
    }
    crate::arch::check_cols(m, n, k, a, b, j0, j1, out, ld);
    let mut i = 0;
    while i < m {
        // SAFETY (all four): NEON is available (`Isa::Neon` passed `or_scalar`); rows
        // i..i+MR are < m and `check_cols` asserted the bounds of every access.
        let mr = match m - i {
            1 => unsafe {
                gemm_tile::<1>(i, n, k, a, b, j0, j1, out, ld);
                1
            },
            2 => unsafe {
                gemm_tile::<2>(i, n, k, a, b, j0, j1, out, ld);
                2
            },
            3 => unsafe {
                gemm_tile::<3>(i, n, k, a, b, j0, j1, out, ld);
                3
            },
            _ => unsafe {
                gemm_tile::<4>(i, n, k, a, b, j0, j1, out, ld);
                4
            },
        };
        i += mr;
    }
    true
}

/// Rows `i..i + R` of `gemm_cols`: 16 columns (4 vectors) at a time, then the last `< 16`
/// columns one vector or one element at a time.
///
/// # Safety
/// NEON available; the bounds `check_cols` asserts; `i + R ≤ m`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "neon")]
unsafe fn gemm_tile<const R: usize>(
    i: usize,
    n: usize,
    k: usize,
    a: &[f32],
    b: &[f32],
    j0: usize,
    j1: usize,
    out: &mut [f32],
    ld: usize,
) {
    let mut j = j0;
    while j + 16 <= j1 {
        let mut acc = [[vdupq_n_f32(0.0); 4]; R];
        for kk in 0..k {
            let bp = b.as_ptr().wrapping_add(kk * n + j);
            // SAFETY: columns j..j+16 ≤ j1 ≤ n of row kk < k.
            let bv =
                unsafe { [vld1q_f32(bp), vld1q_f32(bp.add(4)), vld1q_f32(bp.add(8)), vld1q_f32(bp.add(12))] };
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let av = vdupq_n_f32(a[(i + r) * k + kk]);
                for (c, v) in acc_r.iter_mut().enumerate() {
                    *v = vfmaq_f32(*v, av, bv[c]);
                }
            }
        }
        for (r, acc_r) in acc.iter().enumerate() {
            let op = out.as_mut_ptr().wrapping_add((i + r) * ld + (j - j0));
            for (c, v) in acc_r.iter().enumerate() {
                // SAFETY: elements (i+r)·ld + (j-j0) .. + 16 of `out` (see `check_cols`).
                unsafe { vst1q_f32(op.add(4 * c), *v) };
            }
        }
        j += 16;
    }
    while j + 4 <= j1 {
        let mut acc = [vdupq_n_f32(0.0); R];
        for kk in 0..k {
            // SAFETY: columns j..j+4 ≤ n of row kk.
            let bv = unsafe { vld1q_f32(b.as_ptr().add(kk * n + j)) };
            for (r, v) in acc.iter_mut().enumerate() {
                *v = vfmaq_f32(*v, vdupq_n_f32(a[(i + r) * k + kk]), bv);
            }
        }
        for (r, v) in acc.iter().enumerate() {
            // SAFETY: elements (i+r)·ld + (j-j0) .. + 4 of `out`.
            unsafe { vst1q_f32(out.as_mut_ptr().add((i + r) * ld + (j - j0)), *v) };
        }
        j += 4;
    }
    for jj in j..j1 {
        for r in 0..R {
            let mut s = 0.0f32;
            for kk in 0..k {
                s = a[(i + r) * k + kk].mul_add(b[kk * n + jj], s);
            }
            out[(i + r) * ld + (jj - j0)] = s;
        }
    }
}

/// See `arch::gemm_f32_bt_cols`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_bt_cols(
    isa: Isa,
    m: usize,
    k: usize,
    a: &[f32],
    b: &[f32],
    j0: usize,
    j1: usize,
    out: &mut [f32],
    ld: usize,
) -> bool {
    if !matches!(isa, Isa::Neon | Isa::NeonDot) {
        return false;
    }
    let n = b.len().checked_div(k).unwrap_or(0);
    crate::arch::check_cols(m, n, k, a, b, j0, j1, out, ld);
    let mut i = 0;
    while i < m {
        let mr = 2.min(m - i);
        let mut j = j0;
        while j < j1 {
            let nc = if j1 - j >= 4 { 4 } else { 1 };
            // SAFETY (all): NEON is available; rows i..i+mr < m, columns j..j+nc ≤ j1 ≤ n.
            unsafe {
                match (mr, nc) {
                    (2, 4) => bt_tile::<2, 4>(i, j, k, a, b, j0, out, ld),
                    (1, 4) => bt_tile::<1, 4>(i, j, k, a, b, j0, out, ld),
                    (2, _) => bt_tile::<2, 1>(i, j, k, a, b, j0, out, ld),
                    _ => bt_tile::<1, 1>(i, j, k, a, b, j0, out, ld),
                }
            }
            j += nc;
        }
        i += mr;
    }
    true
}

/// Four floats from `p` (`len` ≥ 4) or the `len < 4` there, zero-padded.
///
/// # Safety
/// NEON available; `p` is valid for `len.min(4)` reads.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn load_upto4(p: *const f32, len: usize) -> float32x4_t {
    if len >= 4 {
        // SAFETY: the caller's contract.
        unsafe { vld1q_f32(p) }
    } else {
        let mut t = [0.0f32; 4];
        // SAFETY: the caller's contract; `t` holds 4.
        unsafe { std::ptr::copy_nonoverlapping(p, t.as_mut_ptr(), len) };
        // SAFETY: `t` holds 4 floats.
        unsafe { vld1q_f32(t.as_ptr()) }
    }
}

/// `R × C` dot products of rows `i..` of `a` with rows `j..` of `b` (both `k` long).
///
/// # Safety
/// NEON available; rows `i + R ≤ m` of `a`, `j + C ≤ n` of `b`; `out` as `check_cols` asserts.
#[allow(clippy::too_many_arguments)]
#[inline]
#[target_feature(enable = "neon")]
unsafe fn bt_tile<const R: usize, const C: usize>(
    i: usize,
    j: usize,
    k: usize,
    a: &[f32],
    b: &[f32],
    j0: usize,
    out: &mut [f32],
    ld: usize,
) {
    let mut acc = [[vdupq_n_f32(0.0); C]; R];
    let mut kk = 0;
    while kk < k {
        let len = k - kk;
        let mut bv = [vdupq_n_f32(0.0); C];
        for (c, v) in bv.iter_mut().enumerate() {
            // SAFETY: elements kk..kk+min(len,4) of row j+c of `b`.
            *v = unsafe { load_upto4(b.as_ptr().add((j + c) * k + kk), len) };
        }
        for (r, acc_r) in acc.iter_mut().enumerate() {
            // SAFETY: elements kk..kk+min(len,4) of row i+r of `a`.
            let av = unsafe { load_upto4(a.as_ptr().add((i + r) * k + kk), len) };
            for c in 0..C {
                acc_r[c] = vfmaq_f32(acc_r[c], av, bv[c]);
            }
        }
        kk += 4;
    }
    for (r, acc_r) in acc.iter().enumerate() {
        for (c, v) in acc_r.iter().enumerate() {
            out[(i + r) * ld + (j + c - j0)] = vaddvq_f32(*v);
        }
    }
}

/// See `arch::blocked_panel`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn panel(
    isa: Isa,
    m: usize,
    k: usize,
    kc0: usize,
    kc: usize,
    pa: &[f32],
    b: &[f32],
    w: usize,
    out: &mut [f32],
    ld: usize,
) -> bool {
    if !matches!(isa, Isa::Neon | Isa::NeonDot) {
        return false;
    }
    assert!(kc0 + kc <= k && w <= NR && b.len() >= kc * NR);
    assert!(pa.len() >= m.div_ceil(MR) * MR * k);
    assert!(m == 0 || (out.len() >= (m - 1) * ld + w && ld >= w));
    // SAFETY: NEON is available; the assertions bound every access: packed tile `t` reads
    // `pa[(t·k + kc0)·MR ..][.. kc·MR]`, `B` rows `0..kc` of 32, `out` rows `< m` columns `< w`.
    unsafe { panel_neon(m, k, kc0, kc, kc0 > 0, pa, b, w, out, ld) };
    true
}

/// # Safety
/// NEON available; the bounds `panel` asserts.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "neon")]
unsafe fn panel_neon(
    m: usize,
    k: usize,
    kc0: usize,
    kc: usize,
    accumulate: bool,
    pa: &[f32],
    b: &[f32],
    w: usize,
    out: &mut [f32],
    ld: usize,
) {
    for half in 0..2 {
        let c0 = half * 16;
        if c0 >= w {
            break;
        }
        let wh = (w - c0).min(16);
        // SAFETY (whole loop): bounds asserted by `panel`; the panel is 32 columns wide, so
        // all 16 columns of a half are readable (zeros past `w`).
        let bp = unsafe { b.as_ptr().add(c0) };
        for t in 0..m.div_ceil(MR) {
            let rows = (m - t * MR).min(MR);
            let ap = unsafe { pa.as_ptr().add((t * k + kc0) * MR) };
            let op = unsafe { out.as_mut_ptr().add(t * MR * ld + c0) };
            let mut acc = [[vdupq_n_f32(0.0); 4]; MR];
            if accumulate {
                for (r, acc_r) in acc.iter_mut().enumerate().take(rows) {
                    let mut row = [0.0f32; 16];
                    // SAFETY: row t·MR + r < m, columns c0..c0 + wh ≤ w of `out`.
                    unsafe { std::ptr::copy_nonoverlapping(op.add(r * ld), row.as_mut_ptr(), wh) };
                    for (c, v) in acc_r.iter_mut().enumerate() {
                        // SAFETY: `row` holds 16 floats.
                        *v = unsafe { vld1q_f32(row.as_ptr().add(4 * c)) };
                    }
                }
            }
            for kk in 0..kc {
                let (bv, a03, a45) = unsafe {
                    let p = bp.add(kk * NR);
                    (
                        [vld1q_f32(p), vld1q_f32(p.add(4)), vld1q_f32(p.add(8)), vld1q_f32(p.add(12))],
                        vld1q_f32(ap.add(kk * MR)),
                        vld1_f32(ap.add(kk * MR + 4)),
                    )
                };
                for c in 0..4 {
                    acc[0][c] = vfmaq_laneq_f32::<0>(acc[0][c], bv[c], a03);
                    acc[1][c] = vfmaq_laneq_f32::<1>(acc[1][c], bv[c], a03);
                    acc[2][c] = vfmaq_laneq_f32::<2>(acc[2][c], bv[c], a03);
                    acc[3][c] = vfmaq_laneq_f32::<3>(acc[3][c], bv[c], a03);
                    acc[4][c] = vfmaq_lane_f32::<0>(acc[4][c], bv[c], a45);
                    acc[5][c] = vfmaq_lane_f32::<1>(acc[5][c], bv[c], a45);
                }
            }
            for (r, acc_r) in acc.iter().enumerate().take(rows) {
                if wh == 16 {
                    for (c, v) in acc_r.iter().enumerate() {
                        // SAFETY: columns c0..c0 + 16 ≤ w of row t·MR + r < m.
                        unsafe { vst1q_f32(op.add(r * ld + 4 * c), *v) };
                    }
                } else {
                    let mut row = [0.0f32; 16];
                    for (c, v) in acc_r.iter().enumerate() {
                        // SAFETY: `row` holds 16 floats.
                        unsafe { vst1q_f32(row.as_mut_ptr().add(4 * c), *v) };
                    }
                    // SAFETY: columns c0..c0 + wh ≤ w of row t·MR + r < m.
                    unsafe { std::ptr::copy_nonoverlapping(row.as_ptr(), op.add(r * ld), wh) };
                }
            }
        }
    }
}
