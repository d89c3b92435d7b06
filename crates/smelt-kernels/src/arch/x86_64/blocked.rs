//! The cache-blocked f32 GEMM's micro-kernels (see `blocked.rs`) and the 4-bit weights'
//! dequantization into its `B` panels.
//!
//! Micro-kernel: `A` arrives packed in row tiles (`MR` rows, `[kk][r]`), `B` as a `kc × 32` panel
//! (row stride 32, zero columns past `w`). AVX-512 keeps an 8×32 tile in 16 accumulators (two
//! 16-lane loads of `B` and eight broadcasts of `A` per `kk`); AVX2 a 6×16 tile in 12, twice per
//! panel (a last tile of at most four or two rows in 8 or 4). Each lane accumulates `fma(a[i,kk],
//! b[kk,j], acc)` over `kk` in order, starting from 0 on the first `kc` block and from the stored
//! `C` on the next ones (an f32 store and reload is exact), so an element's arithmetic is the same
//! chain of FMAs as in `f32::gemm_cols`, whatever the blocking, the tile or the thread.
//!
//! Dequantization: 16 weight rows (4 tiles) at a time, one lane per row: the rows' code words
//! of a group are gathered into one vector of their low halves (even elements) and one of
//! their high halves (odd elements); element `2i` of every row is then a shift by `4i` and a
//! lookup (`vpermps` of the 16-entry table, times the 16 rows' scales: the same product
//! `TABLE[q]·scale` as the scalar reference), or with zero points `(q - zp)·scale` computed as
//! `(f32(q) - f32(zp))·scale` (both exact small integers, so the same value again).

use std::arch::x86_64::*;

use super::tail_mask16;
use crate::dispatch::Isa;
use crate::packed4::{Code4, Tiles4, GROUP, TILE_ROWS, ZP_TABLES};

/// Columns of a `B` panel.
const NR: usize = 32;
/// Rows of the AVX-512 tile.
const MR512: usize = 8;
/// Rows of the AVX2 tile.
const MR256: usize = 6;

/// Rows of `A` per packed tile for `isa`, `None` without a blocked kernel.
pub(crate) fn row_tile(isa: Isa) -> Option<usize> {
    match isa {
        Isa::Avx512 | Isa::Avx512Vnni => Some(MR512),
        Isa::Avx2 | Isa::AvxVnni => Some(MR256),
        Isa::Scalar | Isa::Neon | Isa::NeonDot => None,
    }
}

/// See `arch::pack_a_tile`: 8-row tiles (the AVX-512 tiers'), 8 columns at a time by an
/// 8×8 transposition in AVX registers.
pub(crate) fn pack_a_tile(isa: Isa, mr: usize, k: usize, src: &[f32], tile: &mut [f32]) -> usize {
    if mr != 8 || !matches!(isa, Isa::Avx512 | Isa::Avx512Vnni | Isa::Avx2 | Isa::AvxVnni) {
        return 0;
    }
    assert!(src.len() >= 8 * k && tile.len() >= 8 * k);
    // SAFETY: AVX2 is available on these tiers (arch/mod.rs contract); the loop reads
    // `src[r·k + kk..][..8]` and writes `tile[(kk + j)·8..][..8]` for `kk + 8 ≤ k`, inside the
    // asserted lengths.
    unsafe { pack8_avx2(k, src.as_ptr(), tile.as_mut_ptr()) }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn pack8_avx2(k: usize, src: *const f32, dst: *mut f32) -> usize {
    let mut kk = 0;
    while kk + 8 <= k {
        // SAFETY (whole body): bounds as `pack_a_tile` states.
        let r: [__m256; 8] = std::array::from_fn(|i| unsafe { _mm256_loadu_ps(src.add(i * k + kk)) });
        let c = super::transpose8(r);
        for (j, cj) in c.into_iter().enumerate() {
            unsafe { _mm256_storeu_ps(dst.add((kk + j) * 8), cj) };
        }
        kk += 8;
    }
    kk
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
    next: &[f32],
    w: usize,
    out: &mut [f32],
    ld: usize,
) -> bool {
    let Some(mr) = row_tile(isa) else { return false };
    assert!(kc0 + kc <= k && w <= NR && b.len() >= kc * NR);
    assert!(pa.len() >= m.div_ceil(mr) * mr * k);
    assert!(m == 0 || (out.len() >= (m - 1) * ld + w && ld >= w));
    let accumulate = kc0 > 0;
    // SAFETY: `isa` is available (arch/mod.rs contract); the assertions bound every access:
    // packed tile `t` reads `pa[(t·k + kc0)·mr ..][.. kc·mr]`, `B` rows `0..kc` of 32, `out`
    // rows `< m` columns `< w`.
    unsafe {
        match isa {
            Isa::Avx512 | Isa::Avx512Vnni => panel_avx512(m, k, kc0, kc, accumulate, pa, b, next, w, out, ld),
            _ => panel_avx2(m, k, kc0, kc, accumulate, pa, b, next, w, out, ld),
        }
    }
    true
}

#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn panel_avx512(
    m: usize,
    k: usize,
    kc0: usize,
    kc: usize,
    accumulate: bool,
    pa: &[f32],
    b: &[f32],
    next: &[f32],
    w: usize,
    out: &mut [f32],
    ld: usize,
) {
    let (m0, m1) = (tail_mask16(w), tail_mask16(w.saturating_sub(16)));
    let bp = b.as_ptr();
    let mut pf_next = 0;
    for t in 0..m.div_ceil(MR512) {
        let rows = (m - t * MR512).min(MR512);
        // SAFETY (whole body): bounds asserted by `panel`.
        let ap = unsafe { pa.as_ptr().add((t * k + kc0) * MR512) };
        let op = unsafe { out.as_mut_ptr().add(t * MR512 * ld) };
        let mut acc = [[_mm512_setzero_ps(); 2]; MR512];
        if accumulate {
            for (r, acc_r) in acc.iter_mut().enumerate().take(rows) {
                unsafe {
                    acc_r[0] = _mm512_maskz_loadu_ps(m0, op.add(r * ld));
                    acc_r[1] = _mm512_maskz_loadu_ps(m1, op.add(r * ld + 16));
                }
            }
        }
        // The first tile streams the panel in from memory: it prefetches 8 rows ahead (the
        // others re-touch the row they read, in L1). Hints: past the panel they touch nothing.
        let ahead = if t == 0 { 8 * NR } else { 0 };
        for kk in 0..kc {
            let pf = bp.wrapping_add(kk * NR + ahead);
            _mm_prefetch::<_MM_HINT_T0>(pf.cast());
            _mm_prefetch::<_MM_HINT_T0>(pf.wrapping_add(16).cast());
            // The later tiles fetch the next panel into L2, a line per step: it is usually
            // elsewhere in memory (the same `k` block of the next 32 columns), where the
            // hardware prefetchers do not look.
            if t > 0 && pf_next < next.len() {
                _mm_prefetch::<_MM_HINT_T1>(next.as_ptr().wrapping_add(pf_next).cast());
                pf_next += 16;
            }
            let (b0, b1) =
                unsafe { (_mm512_loadu_ps(bp.add(kk * NR)), _mm512_loadu_ps(bp.add(kk * NR + 16))) };
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(unsafe { *ap.add(kk * MR512 + r) });
                acc_r[0] = _mm512_fmadd_ps(av, b0, acc_r[0]);
                acc_r[1] = _mm512_fmadd_ps(av, b1, acc_r[1]);
            }
        }
        for (r, acc_r) in acc.iter().enumerate().take(rows) {
            unsafe {
                _mm512_mask_storeu_ps(op.add(r * ld), m0, acc_r[0]);
                _mm512_mask_storeu_ps(op.add(r * ld + 16), m1, acc_r[1]);
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
unsafe fn panel_avx2(
    m: usize,
    k: usize,
    kc0: usize,
    kc: usize,
    accumulate: bool,
    pa: &[f32],
    b: &[f32],
    next: &[f32],
    w: usize,
    out: &mut [f32],
    ld: usize,
) {
    let mut pf_next = 0;
    for half in 0..2 {
        let c0 = half * 16;
        if c0 >= w {
            break;
        }
        let wh = (w - c0).min(16);
        // Masked moves only for a part-filled half: AMD's masked stores are slow (microcoded).
        let masks =
            (wh < 16).then(|| [super::tail_mask256(wh.min(8)), super::tail_mask256(wh.saturating_sub(8))]);
        // SAFETY (whole body): bounds asserted by `panel`; masked lanes are not accessed.
        let bp = unsafe { b.as_ptr().add(c0) };
        for t in 0..m.div_ceil(MR256) {
            let rows = (m - t * MR256).min(MR256);
            let ap = unsafe { pa.as_ptr().add((t * k + kc0) * MR256) };
            let op = unsafe { out.as_mut_ptr().add(t * MR256 * ld + c0) };
            // The later tiles fetch the next panel into L2, a line per step (as
            // `panel_avx512`), in steps of their own so the rest of the loop has no test.
            let pf_steps = if t > 0 { next.len().saturating_sub(pf_next).div_ceil(16).min(kc) } else { 0 };
            let pf = next.as_ptr().wrapping_add(pf_next);
            pf_next += 16 * pf_steps;
            // A last tile of fewer rows runs a narrower kernel (m = 128: 21 tiles of six and
            // one of two), which computes each of its rows by the same chain of FMAs.
            let args = (rows, kc, ap, bp, op, ld, masks, accumulate, pf, pf_steps);
            unsafe {
                match rows {
                    5..=6 => tile_avx2::<6>(args),
                    3..=4 => tile_avx2::<4>(args),
                    _ => tile_avx2::<2>(args),
                }
            }
        }
    }
}

/// The arguments of [`tile_avx2`]: rows (≤ `R`), `kc`, the packed `A` tile at its `kc0`
/// step, the `B` half-panel, the output, its stride, the tail masks, whether to add to the
/// output, and the next panel's prefetch pointer and step count.
type TileArgs =
    (usize, usize, *const f32, *const f32, *mut f32, usize, Option<[__m256i; 2]>, bool, *const f32, usize);

/// One row tile of `panel_avx2`: `R` rows of accumulators (of which `rows` are loaded and
/// stored), 16 columns.
///
/// # Safety
/// AVX2 + FMA; the pointers as `panel_avx2` computes them (`ap` holds `kc` steps of
/// [`MR256`] floats, `bp` `kc` rows of [`NR`], `op` `rows` rows of stride `ld`).
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_avx2<const R: usize>((rows, kc, ap, bp, op, ld, masks, accumulate, pf, pf_steps): TileArgs) {
    let mut acc = [[_mm256_setzero_ps(); 2]; R];
    if accumulate {
        for (r, acc_r) in acc.iter_mut().enumerate().take(rows) {
            unsafe {
                *acc_r = match masks {
                    None => [_mm256_loadu_ps(op.add(r * ld)), _mm256_loadu_ps(op.add(r * ld + 8))],
                    Some([m0, m1]) => {
                        [_mm256_maskload_ps(op.add(r * ld), m0), _mm256_maskload_ps(op.add(r * ld + 8), m1)]
                    }
                };
            }
        }
    }
    for kk in 0..pf_steps {
        _mm_prefetch::<_MM_HINT_T1>(pf.wrapping_add(16 * kk).cast());
        // SAFETY: `kk < kc`.
        unsafe { fma_step(&mut acc, ap.add(kk * MR256), bp.add(kk * NR)) };
    }
    // Two steps per turn of the loop: a sixth fewer instructions for its counting.
    let mut kk = pf_steps;
    while kk + 2 <= kc {
        // SAFETY: `kk + 1 < kc`.
        unsafe {
            fma_step(&mut acc, ap.add(kk * MR256), bp.add(kk * NR));
            fma_step(&mut acc, ap.add((kk + 1) * MR256), bp.add((kk + 1) * NR));
        }
        kk += 2;
    }
    for kk in kk..kc {
        // SAFETY: `kk < kc`.
        unsafe { fma_step(&mut acc, ap.add(kk * MR256), bp.add(kk * NR)) };
    }
    for (r, acc_r) in acc.iter().enumerate().take(rows) {
        unsafe {
            match masks {
                None => {
                    _mm256_storeu_ps(op.add(r * ld), acc_r[0]);
                    _mm256_storeu_ps(op.add(r * ld + 8), acc_r[1]);
                }
                Some([m0, m1]) => {
                    _mm256_maskstore_ps(op.add(r * ld), m0, acc_r[0]);
                    _mm256_maskstore_ps(op.add(r * ld + 8), m1, acc_r[1]);
                }
            }
        }
    }
}

/// One `kk` step of the AVX2 tile: 16 columns of `B` at `bp` times the `R` `A` values at `ap`,
/// added into the accumulators.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_step<const R: usize>(acc: &mut [[__m256; 2]; R], ap: *const f32, bp: *const f32) {
    // SAFETY: the caller's `ap[..R]` and `bp[..16]` are in bounds.
    let (b0, b1) = unsafe { (_mm256_loadu_ps(bp), _mm256_loadu_ps(bp.add(8))) };
    for (r, acc_r) in acc.iter_mut().enumerate() {
        let av = _mm256_set1_ps(unsafe { *ap.add(r) });
        acc_r[0] = _mm256_fmadd_ps(av, b0, acc_r[0]);
        acc_r[1] = _mm256_fmadd_ps(av, b1, acc_r[1]);
    }
}

/// See `arch::q4_dequant_panel`.
pub(crate) fn q4_dequant_panel(
    isa: Isa,
    t: &Tiles4<'_>,
    tile0: usize,
    kc0: usize,
    kc: usize,
    buf: &mut [f32],
) -> bool {
    let bs = t.block_size;
    assert!(bs >= GROUP && bs.is_multiple_of(GROUP) && kc0.is_multiple_of(GROUP));
    let (blocks, groups) = (t.blocks, bs / GROUP);
    let g1 = (kc0 + kc).div_ceil(GROUP);
    assert!(g1 * GROUP <= blocks * bs && buf.len() >= (g1 * GROUP - kc0) * NR);
    assert_eq!(t.codes.len(), t.tiles * blocks * groups * TILE_ROWS);
    assert_eq!(t.scales.len(), t.tiles * blocks * TILE_ROWS);
    assert!(t.zero_points.is_none_or(|z| z.len() == t.tiles * blocks));
    // SAFETY: `isa` is available (arch/mod.rs contract); the assertions bound every access:
    // tiles `< t.tiles` only, groups `< g1 ≤ blocks · groups`, `buf` rows `< g1·16 - kc0`.
    unsafe {
        match isa {
            Isa::Avx512 | Isa::Avx512Vnni => {
                for half in 0..2 {
                    dequant16_avx512(t, tile0 + 4 * half, kc0, g1, buf.as_mut_ptr().add(16 * half));
                }
            }
            Isa::Avx2 | Isa::AvxVnni => {
                for quarter in 0..4 {
                    dequant8_avx2(t, tile0 + 2 * quarter, kc0, g1, buf.as_mut_ptr().add(8 * quarter));
                }
            }
            Isa::Scalar | Isa::Neon | Isa::NeonDot => return false,
        }
    }
    true
}

/// Word `g` (a group in the row) of each row of tiles `tile0..tile0 + n` (0 past `t.tiles`),
/// as `n · 4` u64 at `dst`; also returns the block of group `g`.
///
/// # Safety
/// `g < blocks · groups`; `dst` holds `n · 4` words.
#[inline(always)]
unsafe fn tile_words(t: &Tiles4<'_>, tile0: usize, n: usize, g: usize, dst: *mut u64) {
    let groups = t.block_size / GROUP;
    let (blk, gi) = (g / groups, g % groups);
    for q in 0..n {
        let tile = tile0 + q;
        for r in 0..TILE_ROWS {
            let v = if tile < t.tiles {
                // SAFETY: tile < tiles, blk < blocks, gi < groups.
                unsafe { *t.codes.as_ptr().add(((tile * t.blocks + blk) * groups + gi) * TILE_ROWS + r) }
            } else {
                0
            };
            // SAFETY: the caller's contract.
            unsafe { *dst.add(q * TILE_ROWS + r) = v };
        }
    }
}

/// Scales and zero points (as f32) of block `blk` for the rows of tiles `tile0..tile0 + n`
/// (0 past `t.tiles`).
#[inline(always)]
fn block_params<const N: usize>(
    t: &Tiles4<'_>,
    tile0: usize,
    blk: usize,
    scales: &mut [f32; N],
    zps: &mut [f32; N],
) {
    for (j, (s, z)) in scales.iter_mut().zip(zps.iter_mut()).enumerate() {
        let tile = tile0 + j / TILE_ROWS;
        let r = j % TILE_ROWS;
        if tile < t.tiles {
            *s = t.scales[(tile * t.blocks + blk) * TILE_ROWS + r];
            *z = match t.zero_points {
                Some(zp) => ((zp[tile * t.blocks + blk] >> (4 * r)) & 0xF) as f32,
                None => 8.0,
            };
        } else {
            (*s, *z) = (0.0, 0.0);
        }
    }
}

/// Rows of tiles `tile0..tile0 + 4` (16 columns of the panel at `dst`, row stride 32),
/// elements `kc0..16·g1`.
///
/// # Safety
/// AVX-512 F/BW/VL; the bounds `q4_dequant_panel` asserts.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn dequant16_avx512(t: &Tiles4<'_>, tile0: usize, kc0: usize, g1: usize, dst: *mut f32) {
    let groups = t.block_size / GROUP;
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    let nf4 = t.code == Code4::Nf4;
    // SAFETY: both tables hold 16 floats.
    let table =
        unsafe { _mm512_loadu_ps(if nf4 { crate::bnb4::NF4_CODE.as_ptr() } else { ZP_TABLES[0].as_ptr() }) };
    let fifteen = _mm512_set1_epi32(0xF);
    let (mut scale, mut zp) = (_mm512_setzero_ps(), _mm512_setzero_ps());
    let mut cur_blk = usize::MAX;
    let mut words = [0u64; 16];
    // All four tiles exist (every panel but a last one of fewer than 16 rows): their words and
    // scales are read straight into vectors, 32 and 16 bytes per tile (a tile's 4 rows are
    // side by side), instead of element by element through memory.
    let full = tile0 + 4 <= t.tiles;
    let tile_stride = t.blocks * groups * TILE_ROWS;
    let zp_shift = _mm512_setr_epi32(0, 4, 8, 12, 0, 4, 8, 12, 0, 4, 8, 12, 0, 4, 8, 12);
    for g in kc0 / GROUP..g1 {
        let blk = g / groups;
        if blk != cur_blk {
            if full {
                // SAFETY: tiles tile0..tile0 + 4 < t.tiles, blk < blocks: 4 scales each.
                scale = unsafe {
                    let sp = |q: usize| {
                        _mm_loadu_ps(t.scales.as_ptr().add(((tile0 + q) * t.blocks + blk) * TILE_ROWS))
                    };
                    let lo = _mm256_insertf128_ps::<1>(_mm256_castps128_ps256(sp(0)), sp(1));
                    let hi = _mm256_insertf128_ps::<1>(_mm256_castps128_ps256(sp(2)), sp(3));
                    _mm512_castpd_ps(_mm512_insertf64x4::<1>(
                        _mm512_castpd256_pd512(_mm256_castps_pd(lo)),
                        _mm256_castps_pd(hi),
                    ))
                };
                zp = match t.zero_points {
                    None => _mm512_set1_ps(8.0),
                    Some(z) => {
                        let w = |q: usize| z[(tile0 + q) * t.blocks + blk] as i32;
                        let (a, b, c, d) = (w(0), w(1), w(2), w(3));
                        let v = _mm512_setr_epi32(a, a, a, a, b, b, b, b, c, c, c, c, d, d, d, d);
                        _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srlv_epi32(v, zp_shift), fifteen))
                    }
                };
            } else {
                let (mut s, mut z) = ([0f32; 16], [0f32; 16]);
                block_params(t, tile0, blk, &mut s, &mut z);
                // SAFETY: 16 floats each.
                (scale, zp) = unsafe { (_mm512_loadu_ps(s.as_ptr()), _mm512_loadu_ps(z.as_ptr())) };
            }
            cur_blk = blk;
        }
        let (w0, w1) = if full {
            // SAFETY: word ((tile·blocks + blk)·groups + gi)·4 + r of tiles < t.tiles, g <
            // blocks · groups: 4 words (32 bytes) per tile.
            unsafe {
                let p = t.codes.as_ptr().add(tile0 * tile_stride + g * TILE_ROWS);
                let tw = |q: usize| _mm256_loadu_si256(p.add(q * tile_stride).cast());
                (
                    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(tw(0)), tw(1)),
                    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(tw(2)), tw(3)),
                )
            }
        } else {
            // SAFETY: g < g1 ≤ blocks · groups; `words` holds 16.
            unsafe { tile_words(t, tile0, 4, g, words.as_mut_ptr()) };
            // SAFETY: 16 u64 = two vectors.
            unsafe {
                (_mm512_loadu_si512(words.as_ptr().cast()), _mm512_loadu_si512(words.as_ptr().add(8).cast()))
            }
        };
        let lo = _mm512_permutex2var_epi32(w0, even, w1);
        let hi = _mm512_permutex2var_epi32(w0, odd, w1);
        let row0 = g * GROUP - kc0;
        for i in 0..8 {
            let count = _mm_cvtsi32_si128(4 * i as i32);
            for (e, half) in [(2 * i, lo), (2 * i + 1, hi)] {
                let q = _mm512_srl_epi32(half, count);
                let v = if nf4 {
                    _mm512_mul_ps(_mm512_permutexvar_ps(q, table), scale)
                } else {
                    _mm512_mul_ps(_mm512_sub_ps(_mm512_cvtepi32_ps(_mm512_and_si512(q, fifteen)), zp), scale)
                };
                // SAFETY: row row0 + e < 16·g1 - kc0 of `buf`, 16 columns.
                unsafe { _mm512_storeu_ps(dst.add((row0 + e) * NR), v) };
            }
        }
    }
}

/// Rows of tiles `tile0..tile0 + 2` (8 columns of the panel at `dst`, row stride 32),
/// elements `kc0..16·g1`.
///
/// # Safety
/// AVX2 + FMA; the bounds `q4_dequant_panel` asserts.
#[target_feature(enable = "avx2,fma")]
unsafe fn dequant8_avx2(t: &Tiles4<'_>, tile0: usize, kc0: usize, g1: usize, dst: *mut f32) {
    let groups = t.block_size / GROUP;
    let nf4 = t.code == Code4::Nf4;
    // SAFETY: the table holds 16 floats.
    let (tlo, thi) = unsafe {
        let p = crate::bnb4::NF4_CODE.as_ptr();
        (_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8)))
    };
    let fifteen = _mm256_set1_epi32(0xF);
    let (mut scale, mut zp) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut cur_blk = usize::MAX;
    let mut words = [0u64; 8];
    for g in kc0 / GROUP..g1 {
        let blk = g / groups;
        if blk != cur_blk {
            let (mut s, mut z) = ([0f32; 8], [0f32; 8]);
            block_params(t, tile0, blk, &mut s, &mut z);
            // SAFETY: 8 floats each.
            (scale, zp) = unsafe { (_mm256_loadu_ps(s.as_ptr()), _mm256_loadu_ps(z.as_ptr())) };
            cur_blk = blk;
        }
        // SAFETY: g < g1 ≤ blocks · groups; `words` holds 8.
        unsafe { tile_words(t, tile0, 2, g, words.as_mut_ptr()) };
        // SAFETY: 8 u64 = two vectors.
        let (a, b) = unsafe {
            (
                _mm256_castsi256_ps(_mm256_loadu_si256(words.as_ptr().cast())),
                _mm256_castsi256_ps(_mm256_loadu_si256(words.as_ptr().add(4).cast())),
            )
        };
        // Per 128-bit lane: [a0, a1, b0, b1] of low (high) halves; then lanes reordered.
        let lo = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_castps_si256(_mm256_shuffle_ps::<
            0b10_00_10_00,
        >(a, b)));
        let hi = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_castps_si256(_mm256_shuffle_ps::<
            0b11_01_11_01,
        >(a, b)));
        let row0 = g * GROUP - kc0;
        for i in 0..8 {
            let count = _mm_cvtsi32_si128(4 * i as i32);
            for (e, half) in [(2 * i, lo), (2 * i + 1, hi)] {
                let q = _mm256_srl_epi32(half, count);
                let v = if nf4 {
                    _mm256_mul_ps(super::q4::lookup16(q, tlo, thi), scale)
                } else {
                    _mm256_mul_ps(_mm256_sub_ps(_mm256_cvtepi32_ps(_mm256_and_si256(q, fifteen)), zp), scale)
                };
                // SAFETY: row row0 + e < 16·g1 - kc0 of `buf`, 8 columns.
                unsafe { _mm256_storeu_ps(dst.add((row0 + e) * NR), v) };
            }
        }
    }
}
