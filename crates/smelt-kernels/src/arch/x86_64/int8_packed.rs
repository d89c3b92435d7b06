//! The outer-product `vpdpbusd` kernel over a VNNI-packed `B` panel (see `int8_packed.rs`):
//! up to 8 rows of `A` × 32 columns in 16 accumulators, one broadcast of 4 bytes of `a'` per
//! row and two 64-byte loads of the panel per group of 4 `k`. Integer and exact.
//!
//! With many rows (`tiled`), `A` comes packed in tiles of 8 rows (the 4 bytes of each row for
//! a group side by side, 32 bytes per group) and `k` is taken in blocks of [`KG`] groups, so a
//! block of the panel (32 KiB) stays in L1 while every tile runs over it; the i32 sums carry
//! across blocks through `out` (exact, so the same bits).

use std::arch::x86_64::*;

use super::tail_mask16;
use crate::dispatch::Isa;
use crate::int8_packed::{Finish, PANEL};
use crate::parallel::ColBlock;

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
            1 => unsafe { row(i, k4, ap, panel, w, out, ld) },
            2 | 3 => unsafe { tile::<2>(i, k4, ap, panel, w, out, ld) },
            4..=7 => unsafe { tile::<4>(i, k4, ap, panel, w, out, ld) },
            _ => unsafe { tile::<8>(i, k4, ap, panel, w, out, ld) },
        };
    }
}

/// Groups of 4 `k` per block of the tiled kernel (`KG · 128` bytes of the panel).
const KG: usize = 256;
/// Rows per tile of the tiled layout.
pub(crate) const TILE: usize = 8;

/// See `arch::int8_packed_panel_tiled`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn panel_tiled(
    isa: Isa,
    m: usize,
    k4: usize,
    apt: &[u8],
    panel: &[u8],
    next: &[u8],
    w: usize,
    out: &mut [i32],
    ld: usize,
) -> bool {
    if isa != Isa::Avx512Vnni {
        return false;
    }
    check_tiled(m, k4, apt, panel, w);
    assert!(m == 0 || (out.len() >= (m - 1) * ld + w && ld >= w));
    // SAFETY: the CPU has AVX512-VNNI (`isa` went through `or_scalar`, arch/mod.rs contract);
    // `check_tiled` bounds every load below, the assertion above every store.
    unsafe { tiled_avx512vnni(m, k4, apt, panel, next, w, None, out.as_mut_ptr(), ld) };
    true
}

/// See `arch::int8_packed_panel_tiled_scaled`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn panel_tiled_scaled(
    isa: Isa,
    m: usize,
    k4: usize,
    apt: &[u8],
    panel: &[u8],
    next: &[u8],
    w: usize,
    fin: &Finish<'_>,
    block: &mut ColBlock<'_, f32>,
    col: usize,
) -> bool {
    if isa != Isa::Avx512Vnni {
        return false;
    }
    // Panics unless `m` rows of `w` columns from `col` lie in the block.
    let out = block.tile_ptr(m, col, w);
    check_tiled(m, k4, apt, panel, w);
    assert!(fin.row_c.len() >= m && fin.row_f.len() >= m && fin.col_sums.len() >= w);
    assert!(fin.scale.len() == 1 || fin.scale.len() >= w);
    // SAFETY: as `panel_tiled` for the loads; the stores stay in the block's `m × w` tile
    // (`tile_ptr`), which is writable and, once written, readable (`ColBlock`'s contract). The
    // partial sums are stored there as i32 bits until the last block, which overwrites them.
    unsafe { tiled_avx512vnni(m, k4, apt, panel, next, w, Some(fin), out.cast(), block.ld()) };
    true
}

fn check_tiled(m: usize, k4: usize, apt: &[u8], panel: &[u8], w: usize) {
    assert!(k4 & 3 == 0 && apt.len() >= m.div_ceil(TILE) * TILE * k4);
    assert!(panel.len() >= k4 / 4 * PANEL * 4 && w <= PANEL);
}

/// The tiled kernel. Without `fin` it stores the sums `D` (i32); with it, the last `k` block
/// stores `f32(D - row_c[i] - row_f[i]·col_sums[j]) · scale[j]` instead (i32 wrapping, then
/// the conversion to nearest and one f32 product: `Finish`'s definition, bit for bit).
///
/// # Safety
/// AVX512-VNNI available; `out + r·ld + j` (`r < m`, `j < w`, `ld ≥ w`) valid for writes, and
/// for reads once written; the other bounds as `check_tiled` asserts.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tiled_avx512vnni(
    m: usize,
    k4: usize,
    apt: &[u8],
    panel: &[u8],
    next: &[u8],
    w: usize,
    fin: Option<&Finish<'_>>,
    out: *mut i32,
    ld: usize,
) {
    let groups = k4 / 4;
    // The next panel is fetched into L2 while the tiles after the first run over this one
    // (from L1): one cache line per group step, so a model's weights, which do not stay in
    // the caches from one run to the next, do not stall the next panel's first tile.
    let mut pf = 0;
    let (m0, m1) = (tail_mask16(w), tail_mask16(w.saturating_sub(16)));
    // The epilogue's per-column vectors (lanes past `w` zero and never stored).
    let cols = fin.map(|f| unsafe {
        let sb = f.col_sums.as_ptr();
        let (s0, s1) = if f.scale.len() == 1 {
            (_mm512_set1_ps(f.scale[0]), _mm512_set1_ps(f.scale[0]))
        } else {
            (_mm512_maskz_loadu_ps(m0, f.scale.as_ptr()), _mm512_maskz_loadu_ps(m1, f.scale.as_ptr().add(16)))
        };
        ([_mm512_maskz_loadu_epi32(m0, sb), _mm512_maskz_loadu_epi32(m1, sb.add(16))], [s0, s1])
    });
    for g0 in (0..groups).step_by(KG) {
        let g1 = (g0 + KG).min(groups);
        for t in 0..m.div_ceil(TILE) {
            let rows = (m - t * TILE).min(TILE);
            // SAFETY (whole body): bounds asserted by `check_tiled` and the caller.
            let op = unsafe { out.add(t * TILE * ld) };
            let ap = unsafe { apt.as_ptr().add(t * TILE * k4) };
            let mut acc = [[_mm512_setzero_si512(); 2]; TILE];
            if g0 > 0 {
                for (r, acc_r) in acc.iter_mut().enumerate().take(rows) {
                    unsafe {
                        acc_r[0] = _mm512_maskz_loadu_epi32(m0, op.add(r * ld).cast());
                        acc_r[1] = _mm512_maskz_loadu_epi32(m1, op.add(r * ld + 16).cast());
                    }
                }
            }
            for g in g0..g1 {
                if t > 0 && pf < next.len() {
                    // A hint only: never faults, whatever the address.
                    _mm_prefetch::<_MM_HINT_T1>(next.as_ptr().wrapping_add(pf).cast());
                    pf += 64;
                }
                let bp = unsafe { panel.as_ptr().add(g * PANEL * 4) };
                let (b0, b1) =
                    unsafe { (_mm512_loadu_si512(bp.cast()), _mm512_loadu_si512(bp.add(64).cast())) };
                for (r, acc_r) in acc.iter_mut().enumerate() {
                    let a4 = unsafe { ap.add(g * TILE * 4 + r * 4).cast::<i32>().read_unaligned() };
                    let av = _mm512_set1_epi32(a4);
                    acc_r[0] = _mm512_dpbusd_epi32(acc_r[0], av, b0);
                    acc_r[1] = _mm512_dpbusd_epi32(acc_r[1], av, b1);
                }
            }
            match (fin, cols) {
                (Some(f), Some((sb, sc))) if g1 == groups => {
                    for (r, acc_r) in acc.iter().enumerate().take(rows) {
                        let i = t * TILE + r;
                        let (rc, rf) = unsafe { (*f.row_c.get_unchecked(i), *f.row_f.get_unchecked(i)) };
                        let (rc, rf) = (_mm512_set1_epi32(rc), _mm512_set1_epi32(rf));
                        let fo = unsafe { op.add(r * ld) }.cast::<f32>();
                        for h in 0..2 {
                            let v = _mm512_sub_epi32(
                                _mm512_sub_epi32(acc_r[h], rc),
                                _mm512_mullo_epi32(rf, sb[h]),
                            );
                            let y = _mm512_mul_ps(_mm512_cvtepi32_ps(v), sc[h]);
                            unsafe { _mm512_mask_storeu_ps(fo.add(16 * h), if h == 0 { m0 } else { m1 }, y) };
                        }
                    }
                }
                _ => {
                    for (r, acc_r) in acc.iter().enumerate().take(rows) {
                        unsafe {
                            _mm512_mask_storeu_epi32(op.add(r * ld).cast(), m0, acc_r[0]);
                            _mm512_mask_storeu_epi32(op.add(r * ld + 16).cast(), m1, acc_r[1]);
                        }
                    }
                }
            }
        }
    }
}

/// Bytes ahead of the panel that the one-row kernel prefetches.
const ROW_PREFETCH: usize = 4096;

/// Row `i` alone (decode): two groups of 4 `k` per step into four accumulators, so four
/// `vpdpbusd` chains are in flight instead of two (the instruction's latency, not the loads,
/// bounded the one-row kernel), added at the end (i32 wrapping: any order is exact). Returns 1.
///
/// # Safety
/// AVX512-VNNI available; bounds as `panel` asserts; `i < m`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn row(i: usize, k4: usize, ap: &[u8], panel: &[u8], w: usize, out: &mut [i32], ld: usize) -> usize {
    let groups = k4 / 4;
    let mut acc = [_mm512_setzero_si512(); 4];
    let mut g = 0;
    while g < groups {
        let step = (groups - g).min(2);
        for h in 0..step {
            let bp = panel.as_ptr().wrapping_add((g + h) * PANEL * 4);
            // Hints only (past the panel they reach the task's next one, or nothing): the
            // weights stream from L3 or memory, and the hardware prefetchers stop at each page.
            _mm_prefetch::<_MM_HINT_T0>(bp.wrapping_add(ROW_PREFETCH).cast());
            _mm_prefetch::<_MM_HINT_T0>(bp.wrapping_add(ROW_PREFETCH + 64).cast());
            // SAFETY: bytes (g+h)·128 .. + 128 of the panel (k4/4 groups of 128, asserted); 4
            // bytes at i·k4 + 4(g+h) inside row i of `ap`.
            let (b0, b1, a4) = unsafe {
                (
                    _mm512_loadu_si512(bp.cast()),
                    _mm512_loadu_si512(bp.wrapping_add(64).cast()),
                    ap.as_ptr().add(i * k4 + 4 * (g + h)).cast::<i32>().read_unaligned(),
                )
            };
            let av = _mm512_set1_epi32(a4);
            acc[2 * h] = _mm512_dpbusd_epi32(acc[2 * h], av, b0);
            acc[2 * h + 1] = _mm512_dpbusd_epi32(acc[2 * h + 1], av, b1);
        }
        g += step;
    }
    let (s0, s1) = (_mm512_add_epi32(acc[0], acc[2]), _mm512_add_epi32(acc[1], acc[3]));
    let (m0, m1) = (tail_mask16(w), tail_mask16(w.saturating_sub(16)));
    let op = out.as_mut_ptr().wrapping_add(i * ld);
    // SAFETY: enabled lanes are columns 0..w of row i, inside `out` (asserted).
    unsafe {
        _mm512_mask_storeu_epi32(op.cast(), m0, s0);
        _mm512_mask_storeu_epi32(op.wrapping_add(16).cast(), m1, s1);
    }
    1
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
