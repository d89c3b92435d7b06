//! The outer-product `vpdpbusd` kernel over a VNNI-packed `B` panel (see `int8_packed.rs`):
//! up to 8 rows of `A` × 32 columns in 16 accumulators, one broadcast of 4 bytes of `a'` per
//! row and two 64-byte loads of the panel per group of 4 `k`. Integer and exact.

use std::arch::x86_64::*;

use super::tail_mask16;
use crate::dispatch::Isa;
use crate::int8_packed::PANEL;

/// See `arch::int8_packed_panel`.
pub(crate) fn panel(
    isa: Isa,
    m: usize,
    k4: usize,
    ap: &[u8],
    panel: &[u8],
    w: usize,
    out: &mut [i32],
    ld: usize,
) -> bool {
    if isa != Isa::Avx512Vnni {
        return false;
    }
    assert!(k4 & 3 == 0 && ap.len() >= m * k4 && panel.len() >= k4 / 4 * PANEL * 4 && w <= PANEL);
    assert!(m == 0 || (out.len() >= (m - 1) * ld + w && ld >= w));
    // SAFETY: the CPU has AVX512-VNNI (`isa` went through `or_scalar`, arch/mod.rs contract);
    // the assertions above bound every load and store below.
    unsafe { panel_avx512vnni(m, k4, ap, panel, w, out, ld) };
    true
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn panel_avx512vnni(
    m: usize,
    k4: usize,
    ap: &[u8],
    panel: &[u8],
    w: usize,
    out: &mut [i32],
    ld: usize,
) {
    let mut i = 0;
    while i < m {
        // SAFETY (all four): rows i..i+R are < m; bounds as the caller's.
        i += match m - i {
            1 => unsafe { tile::<1>(i, k4, ap, panel, w, out, ld) },
            2 | 3 => unsafe { tile::<2>(i, k4, ap, panel, w, out, ld) },
            4..=7 => unsafe { tile::<4>(i, k4, ap, panel, w, out, ld) },
            _ => unsafe { tile::<8>(i, k4, ap, panel, w, out, ld) },
        };
    }
}

/// Rows `i..i + R`; returns `R`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile<const R: usize>(
    i: usize,
    k4: usize,
    ap: &[u8],
    panel: &[u8],
    w: usize,
    out: &mut [i32],
    ld: usize,
) -> usize {
    let mut acc = [[_mm512_setzero_si512(); 2]; R];
    for g in 0..k4 / 4 {
        let bp = panel.as_ptr().wrapping_add(g * PANEL * 4);
        // SAFETY: bytes g·128 .. g·128 + 128 of the panel (k4/4 groups of 128, asserted).
        let (b0, b1) =
            unsafe { (_mm512_loadu_si512(bp.cast()), _mm512_loadu_si512(bp.wrapping_add(64).cast())) };
        for (r, acc_r) in acc.iter_mut().enumerate() {
            // SAFETY: 4 bytes at (i + r)·k4 + 4g, inside row i + r < m of `ap` (4g + 4 ≤ k4).
            let a4 = unsafe { ap.as_ptr().add((i + r) * k4 + 4 * g).cast::<i32>().read_unaligned() };
            let av = _mm512_set1_epi32(a4);
            acc_r[0] = _mm512_dpbusd_epi32(acc_r[0], av, b0);
            acc_r[1] = _mm512_dpbusd_epi32(acc_r[1], av, b1);
        }
    }
    let (m0, m1) = (tail_mask16(w), tail_mask16(w.saturating_sub(16)));
    for (r, acc_r) in acc.iter().enumerate() {
        let op = out.as_mut_ptr().wrapping_add((i + r) * ld);
        // SAFETY: enabled lanes are columns 0..w of row i + r, inside `out` (asserted).
        unsafe {
            _mm512_mask_storeu_epi32(op.cast(), m0, acc_r[0]);
            _mm512_mask_storeu_epi32(op.wrapping_add(16).cast(), m1, acc_r[1]);
        }
    }
    R
}
