//! f32 GEMM kernels. `gemm`: `B` is `k×n`; each output column lane accumulates
//! `fma(a[i,kk], b[kk,j], acc)` over `kk` in order, tails by masked loads, so an element's
//! arithmetic never depends on which tile computed it. `gemm_bt`: `B` is `n×k`; dot products
//! in 16 (or 8) lane partial sums over `kk`, masked tails, fixed horizontal reduction.

use std::arch::x86_64::*;

use super::{hsum256, tail_mask16, tail_mask256};
use crate::blocked::NR as PANEL;
use crate::dispatch::Isa;

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
    crate::arch::check_cols(m, n, k, a, b, j0, j1, out, ld);
    match isa {
        // SAFETY: `isa` is available on this CPU (arch/mod.rs contract), and `check_cols` asserted
        // the lengths every load and store below stays within.
        Isa::Avx512 | Isa::Avx512Vnni => unsafe { gemm_avx512(m, n, k, a, b, j0, j1, out, ld) },
        // SAFETY: as above.
        Isa::Avx2 | Isa::AvxVnni => unsafe { gemm_avx2(m, n, k, a, b, j0, j1, out, ld) },
        Isa::Scalar | Isa::Neon | Isa::NeonDot => return false,
    }
    true
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
    let n = b.len().checked_div(k).unwrap_or(0);
    crate::arch::check_cols(m, n, k, a, b, j0, j1, out, ld);
    match isa {
        // SAFETY: `isa` is available (arch/mod.rs contract); `check_cols` asserted lengths.
        Isa::Avx512 | Isa::Avx512Vnni => unsafe { gemm_bt_avx512(m, k, a, b, j0, j1, out, ld) },
        // SAFETY: as above.
        Isa::Avx2 | Isa::AvxVnni => unsafe { gemm_bt_avx2(m, k, a, b, j0, j1, out, ld) },
        Isa::Scalar | Isa::Neon | Isa::NeonDot => return false,
    }
    true
}

/// See `arch::gemv_f32_panels`.
pub(crate) fn gemv_panels(
    isa: Isa,
    k: usize,
    a: &[f32],
    panels: &[f32],
    width: usize,
    out: &mut [f32],
) -> bool {
    if matches!(isa, Isa::Scalar | Isa::Neon | Isa::NeonDot) {
        return false;
    }
    let np = width.div_ceil(PANEL);
    assert!(a.len() >= k && panels.len() >= np * PANEL * k && out.len() >= width);
    // SAFETY: `isa`'s features are available (arch/mod.rs contract); panel `p < np` reads
    // `panels[p·32·k ..][.. 32·k]`, and `out` is written below `width` only.
    unsafe {
        match isa {
            Isa::Avx512 | Isa::Avx512Vnni => gemv_panels_avx512(k, a, panels, width, out),
            _ => gemv_panels_avx2(k, a, panels, width, out),
        }
    }
    true
}

/// # Safety
/// AVX2 and FMA available; the bounds `gemv_panels` asserts.
#[target_feature(enable = "avx2,fma")]
unsafe fn gemv_panels_avx2(k: usize, a: &[f32], panels: &[f32], width: usize, out: &mut [f32]) {
    let np = width.div_ceil(PANEL);
    let mut p = 0;
    while p < np {
        // SAFETY (all three): panels p..p+P < np; bounds as `gemv_panels` asserts.
        p += match np - p {
            1 => unsafe { gemv_group_avx2::<1>(k, a, panels, p, width, out) },
            2 => unsafe { gemv_group_avx2::<2>(k, a, panels, p, width, out) },
            _ => unsafe { gemv_group_avx2::<3>(k, a, panels, p, width, out) },
        };
    }
}

/// [`gemv_group_avx512`] on AVX2: panels `p0..p0 + P` at once, four vectors each (`4·P`
/// independent FMA chains; with `P = 3`, 12 of them, enough to cover the FMA latency twice
/// over), each element `fma(a[kk], b[kk, j], acc)` over `kk` in order. Returns `P`.
///
/// # Safety
/// AVX2 and FMA available; panels `p0 + P ≤ width.div_ceil(32)`; bounds as `gemv_panels`
/// asserts.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn gemv_group_avx2<const P: usize>(
    k: usize,
    a: &[f32],
    panels: &[f32],
    p0: usize,
    width: usize,
    out: &mut [f32],
) -> usize {
    let mut acc = [[_mm256_setzero_ps(); 4]; P];
    let base = panels.as_ptr().wrapping_add(p0 * PANEL * k);
    for (kk, &x) in a[..k].iter().enumerate() {
        let av = _mm256_set1_ps(x);
        for (q, acc_q) in acc.iter_mut().enumerate() {
            // SAFETY: row kk of panel p0 + q (32 floats).
            let bp = unsafe { base.add(q * PANEL * k + kk * PANEL) };
            for (v, acc_v) in acc_q.iter_mut().enumerate() {
                *acc_v = _mm256_fmadd_ps(av, unsafe { _mm256_loadu_ps(bp.add(8 * v)) }, *acc_v);
            }
        }
    }
    for (q, acc_q) in acc.iter().enumerate() {
        let j = (p0 + q) * PANEL;
        let w = (width - j).min(PANEL);
        let mut row = [0f32; PANEL];
        for (v, acc_v) in acc_q.iter().enumerate() {
            // SAFETY: row[8v..8v + 8] is inside the 32-element array.
            unsafe { _mm256_storeu_ps(row.as_mut_ptr().add(8 * v), *acc_v) };
        }
        out[j..j + w].copy_from_slice(&row[..w]);
    }
    P
}

/// # Safety
/// AVX-512 F available; the bounds `gemv_panels` asserts.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn gemv_panels_avx512(k: usize, a: &[f32], panels: &[f32], width: usize, out: &mut [f32]) {
    let np = width.div_ceil(PANEL);
    let mut p = 0;
    while p < np {
        // SAFETY (all three): panels p..p+P < np; bounds as `gemv_panels` asserts.
        p += match np - p {
            1 => unsafe { gemv_group_avx512::<1>(k, a, panels, p, width, out) },
            2 | 3 => unsafe { gemv_group_avx512::<2>(k, a, panels, p, width, out) },
            _ => unsafe { gemv_group_avx512::<4>(k, a, panels, p, width, out) },
        };
    }
}

/// Panels `p0..p0 + P` at once: `2·P` independent FMA chains and `P` streams of `B`, each
/// element still `fma(a[kk], b[kk, j], acc)` over `kk` in order. Returns `P`.
///
/// # Safety
/// AVX-512 F available; panels `p0 + P ≤ width.div_ceil(32)`; bounds as `gemv_panels` asserts.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn gemv_group_avx512<const P: usize>(
    k: usize,
    a: &[f32],
    panels: &[f32],
    p0: usize,
    width: usize,
    out: &mut [f32],
) -> usize {
    let mut acc = [[_mm512_setzero_ps(); 2]; P];
    let base = panels.as_ptr().wrapping_add(p0 * PANEL * k);
    for (kk, &x) in a[..k].iter().enumerate() {
        let av = _mm512_set1_ps(x);
        for (q, acc_q) in acc.iter_mut().enumerate() {
            // SAFETY: row kk of panel p0 + q (32 floats).
            let bp = unsafe { base.add(q * PANEL * k + kk * PANEL) };
            let (b0, b1) = unsafe { (_mm512_loadu_ps(bp), _mm512_loadu_ps(bp.add(16))) };
            acc_q[0] = _mm512_fmadd_ps(av, b0, acc_q[0]);
            acc_q[1] = _mm512_fmadd_ps(av, b1, acc_q[1]);
        }
    }
    for (q, acc_q) in acc.iter().enumerate() {
        let j = (p0 + q) * PANEL;
        let w = (width - j).min(PANEL);
        let op = out.as_mut_ptr().wrapping_add(j);
        // SAFETY: enabled lanes are out[j .. j + w], w ≤ width - j.
        unsafe {
            _mm512_mask_storeu_ps(op, tail_mask16(w), acc_q[0]);
            _mm512_mask_storeu_ps(op.wrapping_add(16), tail_mask16(w.saturating_sub(16)), acc_q[1]);
        }
    }
    P
}

// ---------------------------------------------------------------- gemm, B k×n

#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn gemm_avx512(
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
    let mut i = 0;
    while i < m {
        // Eight rows share each pair of B loads (16 accumulators of the 32 registers).
        // SAFETY (all five): rows i..i+MR are < m; same bounds as the caller's.
        let mr = match m - i {
            1 => unsafe {
                gemm_tile_avx512::<1>(i, n, k, a, b, j0, j1, out, ld);
                1
            },
            2 => unsafe {
                gemm_tile_avx512::<2>(i, n, k, a, b, j0, j1, out, ld);
                2
            },
            3 => unsafe {
                gemm_tile_avx512::<3>(i, n, k, a, b, j0, j1, out, ld);
                3
            },
            4..=7 => unsafe {
                gemm_tile_avx512::<4>(i, n, k, a, b, j0, j1, out, ld);
                4
            },
            _ => unsafe {
                gemm_tile_avx512::<8>(i, n, k, a, b, j0, j1, out, ld);
                8
            },
        };
        i += mr;
    }
}

#[allow(clippy::too_many_arguments)]
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn gemm_tile_avx512<const MR: usize>(
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
    while j < j1 {
        let w = (j1 - j).min(32);
        let (m0, m1) = (tail_mask16(w), tail_mask16(w.saturating_sub(16)));
        let mut acc = [[_mm512_setzero_ps(); 2]; MR];
        for kk in 0..k {
            let bp = b.as_ptr().wrapping_add(kk * n + j);
            // SAFETY: lanes enabled by m0/m1 are columns j..j+w of row kk, inside `b`
            // (j + w ≤ j1 ≤ n); masked-off lanes are not accessed (no fault).
            let (b0, b1) =
                unsafe { (_mm512_maskz_loadu_ps(m0, bp), _mm512_maskz_loadu_ps(m1, bp.wrapping_add(16))) };
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(a[(i + r) * k + kk]);
                acc_r[0] = _mm512_fmadd_ps(av, b0, acc_r[0]);
                acc_r[1] = _mm512_fmadd_ps(av, b1, acc_r[1]);
            }
        }
        for (r, acc_r) in acc.iter().enumerate() {
            let op = out.as_mut_ptr().wrapping_add((i + r) * ld + (j - j0));
            // SAFETY: enabled lanes are elements (i+r)·ld + (j - j0) .. + w of `out`, within
            // its length by `check_cols`.
            unsafe {
                _mm512_mask_storeu_ps(op, m0, acc_r[0]);
                _mm512_mask_storeu_ps(op.wrapping_add(16), m1, acc_r[1]);
            }
        }
        j += w;
    }
}

#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
unsafe fn gemm_avx2(
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
    let mut i = 0;
    while i < m {
        // SAFETY (all four): rows i..i+MR are < m; same bounds as the caller's.
        match m - i {
            1 => unsafe { gemm_tile_avx2::<1>(i, n, k, a, b, j0, j1, out, ld) },
            2 => unsafe { gemm_tile_avx2::<2>(i, n, k, a, b, j0, j1, out, ld) },
            3 => unsafe { gemm_tile_avx2::<3>(i, n, k, a, b, j0, j1, out, ld) },
            _ => unsafe { gemm_tile_avx2::<4>(i, n, k, a, b, j0, j1, out, ld) },
        }
        i += 4.min(m - i);
    }
}

#[allow(clippy::too_many_arguments)]
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn gemm_tile_avx2<const MR: usize>(
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
    while j < j1 {
        let w = (j1 - j).min(16);
        let (m0, m1) = (tail_mask256(w.min(8)), tail_mask256(w.saturating_sub(8)));
        let mut acc = [[_mm256_setzero_ps(); 2]; MR];
        for kk in 0..k {
            let bp = b.as_ptr().wrapping_add(kk * n + j);
            // SAFETY: lanes enabled by m0/m1 are columns j..j+w of row kk, inside `b`;
            // masked-off lanes are not accessed. A whole 16 columns are loaded plainly (the
            // same lanes: masked loads are slower, on AMD much slower).
            let (b0, b1) = unsafe {
                if w == 16 {
                    (_mm256_loadu_ps(bp), _mm256_loadu_ps(bp.add(8)))
                } else {
                    (_mm256_maskload_ps(bp, m0), _mm256_maskload_ps(bp.wrapping_add(8), m1))
                }
            };
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let av = _mm256_set1_ps(a[(i + r) * k + kk]);
                acc_r[0] = _mm256_fmadd_ps(av, b0, acc_r[0]);
                acc_r[1] = _mm256_fmadd_ps(av, b1, acc_r[1]);
            }
        }
        for (r, acc_r) in acc.iter().enumerate() {
            let op = out.as_mut_ptr().wrapping_add((i + r) * ld + (j - j0));
            // SAFETY: enabled lanes are inside `out` (see `check_cols`).
            unsafe {
                _mm256_maskstore_ps(op, m0, acc_r[0]);
                _mm256_maskstore_ps(op.wrapping_add(8), m1, acc_r[1]);
            }
        }
        j += w;
    }
}

// ---------------------------------------------------------------- gemm_bt, B n×k

#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn gemm_bt_avx512(
    m: usize,
    k: usize,
    a: &[f32],
    b: &[f32],
    j0: usize,
    j1: usize,
    out: &mut [f32],
    ld: usize,
) {
    let mut i = 0;
    while i < m {
        let mr = 4.min(m - i);
        let mut j = j0;
        while j < j1 {
            let nc = if j1 - j >= 4 { 4 } else { 1 };
            // SAFETY (all): rows i..i+mr < m, columns j..j+nc ≤ j1; bounds as the caller's.
            unsafe {
                match (mr, nc) {
                    (4, 4) => bt_tile_avx512::<4, 4>(i, j, k, a, b, j0, out, ld),
                    (3, 4) => bt_tile_avx512::<3, 4>(i, j, k, a, b, j0, out, ld),
                    (2, 4) => bt_tile_avx512::<2, 4>(i, j, k, a, b, j0, out, ld),
                    (1, 4) => bt_tile_avx512::<1, 4>(i, j, k, a, b, j0, out, ld),
                    (4, _) => bt_tile_avx512::<4, 1>(i, j, k, a, b, j0, out, ld),
                    (3, _) => bt_tile_avx512::<3, 1>(i, j, k, a, b, j0, out, ld),
                    (2, _) => bt_tile_avx512::<2, 1>(i, j, k, a, b, j0, out, ld),
                    _ => bt_tile_avx512::<1, 1>(i, j, k, a, b, j0, out, ld),
                }
            }
            j += nc;
        }
        i += mr;
    }
}

#[allow(clippy::too_many_arguments)]
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn bt_tile_avx512<const MR: usize, const NC: usize>(
    i: usize,
    j: usize,
    k: usize,
    a: &[f32],
    b: &[f32],
    j0: usize,
    out: &mut [f32],
    ld: usize,
) {
    let mut acc = [[_mm512_setzero_ps(); NC]; MR];
    let mut kk = 0;
    while kk < k {
        let mask = tail_mask16(k - kk);
        let mut bv = [_mm512_setzero_ps(); NC];
        for (c, v) in bv.iter_mut().enumerate() {
            // SAFETY: enabled lanes are elements kk.. of row j+c of `b` (n×k, j+c < n).
            *v = unsafe { _mm512_maskz_loadu_ps(mask, b.as_ptr().wrapping_add((j + c) * k + kk)) };
        }
        for (r, acc_r) in acc.iter_mut().enumerate() {
            // SAFETY: enabled lanes are elements kk.. of row i+r of `a` (m×k, i+r < m).
            let av = unsafe { _mm512_maskz_loadu_ps(mask, a.as_ptr().wrapping_add((i + r) * k + kk)) };
            for c in 0..NC {
                acc_r[c] = _mm512_fmadd_ps(av, bv[c], acc_r[c]);
            }
        }
        kk += 16;
    }
    for (r, acc_r) in acc.iter().enumerate() {
        for (c, v) in acc_r.iter().enumerate() {
            out[(i + r) * ld + (j + c - j0)] = _mm512_reduce_add_ps(*v);
        }
    }
}

#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
unsafe fn gemm_bt_avx2(
    m: usize,
    k: usize,
    a: &[f32],
    b: &[f32],
    j0: usize,
    j1: usize,
    out: &mut [f32],
    ld: usize,
) {
    let mut i = 0;
    while i < m {
        let mr = 2.min(m - i);
        let mut j = j0;
        while j < j1 {
            let nc = if j1 - j >= 4 { 4 } else { 1 };
            // SAFETY (all): rows i..i+mr < m, columns j..j+nc ≤ j1; bounds as the caller's.
            unsafe {
                match (mr, nc) {
                    (2, 4) => bt_tile_avx2::<2, 4>(i, j, k, a, b, j0, out, ld),
                    (1, 4) => bt_tile_avx2::<1, 4>(i, j, k, a, b, j0, out, ld),
                    (2, _) => bt_tile_avx2::<2, 1>(i, j, k, a, b, j0, out, ld),
                    _ => bt_tile_avx2::<1, 1>(i, j, k, a, b, j0, out, ld),
                }
            }
            j += nc;
        }
        i += mr;
    }
}

#[allow(clippy::too_many_arguments)]
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn bt_tile_avx2<const MR: usize, const NC: usize>(
    i: usize,
    j: usize,
    k: usize,
    a: &[f32],
    b: &[f32],
    j0: usize,
    out: &mut [f32],
    ld: usize,
) {
    let mut acc = [[_mm256_setzero_ps(); NC]; MR];
    let mut kk = 0;
    // Whole vectors with plain loads (masked loads are slower, on AMD much slower), then the
    // tail, if any, masked: the same lanes, the same FMAs.
    while kk + 8 <= k {
        let mut bv = [_mm256_setzero_ps(); NC];
        for (c, v) in bv.iter_mut().enumerate() {
            // SAFETY: elements kk..kk + 8 of row j+c of `b`.
            *v = unsafe { _mm256_loadu_ps(b.as_ptr().add((j + c) * k + kk)) };
        }
        for (r, acc_r) in acc.iter_mut().enumerate() {
            // SAFETY: elements kk..kk + 8 of row i+r of `a`.
            let av = unsafe { _mm256_loadu_ps(a.as_ptr().add((i + r) * k + kk)) };
            for c in 0..NC {
                acc_r[c] = _mm256_fmadd_ps(av, bv[c], acc_r[c]);
            }
        }
        kk += 8;
    }
    if kk < k {
        let mask = tail_mask256(k - kk);
        let mut bv = [_mm256_setzero_ps(); NC];
        for (c, v) in bv.iter_mut().enumerate() {
            // SAFETY: enabled lanes are elements kk.. of row j+c of `b`.
            *v = unsafe { _mm256_maskload_ps(b.as_ptr().wrapping_add((j + c) * k + kk), mask) };
        }
        for (r, acc_r) in acc.iter_mut().enumerate() {
            // SAFETY: enabled lanes are elements kk.. of row i+r of `a`.
            let av = unsafe { _mm256_maskload_ps(a.as_ptr().wrapping_add((i + r) * k + kk), mask) };
            for c in 0..NC {
                acc_r[c] = _mm256_fmadd_ps(av, bv[c], acc_r[c]);
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate() {
        for (c, v) in acc_r.iter().enumerate() {
            out[(i + r) * ld + (j + c - j0)] = hsum256(*v);
        }
    }
}
