//! 4-bit GEMV over the packed tile layout (`packed4.rs`): up to 4 activation rows against
//! tiles of 4 weight rows.
//!
//! Per row-block the 16 possible weights `TABLE · scale` are built once (one multiply); per
//! group of 16 codes the row's u64 word is broadcast, a per-lane shift brings lane `e`'s nibble
//! to the low bits (the layout stores even elements in the low half, odd ones in the high
//! half, so lanes `2i` and `2i + 1` shift by the same `4i`), `vpermps` looks the weights up and
//! one FMA per activation row accumulates them. AVX2 does the same 8 lanes at a time for NF4,
//! a 16-entry lookup being two `vpermps` and a blend on bit 3, taking a tile's rows one after
//! another within each block (`tiles_avx2_rows`: from memory on Zen 3, 11008×4096, that was
//! about 3% faster than sharing each activation load among the four rows).
//!
//! AVX2 int4 (`tiles_avx2_int4`) looks nothing up: it computes `q - z` exactly from the codes,
//! sums `a·(q - z)` over each block and multiplies the sum by the block's scale once, so the
//! scale costs nothing per weight; the codes of a tile's four rows are turned into floats
//! a byte per lane by `vpshufb` (see the kernel). Against the kernel it replaced, which
//! computed every weight `(q - z)·scale` (a shift, AND, OR, subtraction and product per eight
//! weights), in-process alternation on Zen 3 gave 1.3–1.5× with blocks of 128 and 1.1–1.2× with
//! blocks of 32 and zero points (per-block work weighs more there), one thread or two.
//!
//! A tile's codes are one sequential stream, which the hardware prefetcher alone follows too
//! few lines ahead to keep memory busy (measured: about 30% slower from memory than with the
//! prefetches), so the kernels prefetch [`PREFETCH_BYTES`] ahead of the codes and the
//! matching distance ahead of the scales.

use std::arch::x86_64::*;

use super::{hsum128, hsum256};
use crate::dispatch::Isa;
use crate::packed4::{Code4, Tiles4, GROUP, TILE_ROWS, ZP_TABLES};

/// How far ahead of the codes being read the kernels prefetch (the scales: as many blocks
/// ahead). Prefetches are hints: past the end of the codes they touch nothing.
const PREFETCH_BYTES: usize = 4096;

/// See `arch::q4_gemv_tiles`.
pub(crate) fn gemv_tiles(
    isa: Isa,
    t: &Tiles4<'_>,
    m: usize,
    a: &[f32],
    width: usize,
    out: &mut [f32],
    ld: usize,
) -> bool {
    let bs = t.block_size;
    assert!(bs >= GROUP && bs.is_multiple_of(GROUP));
    let (blocks, groups) = (t.blocks, bs / GROUP);
    let kp = blocks * bs;
    assert_eq!(t.codes.len(), t.tiles * blocks * groups * TILE_ROWS);
    assert_eq!(t.scales.len(), t.tiles * blocks * TILE_ROWS);
    assert!(t.zero_points.is_none_or(|z| z.len() == t.tiles * blocks));
    assert!(m <= 4 && a.len() >= m * kp && width <= t.tiles * TILE_ROWS);
    assert!(m == 0 || (out.len() >= (m - 1) * ld + width && ld >= width));
    let zp = t.zero_points.is_some();
    macro_rules! run {
        ($f:ident) => {
            // SAFETY: `isa` is available (arch/mod.rs contract) and the assertions above bound
            // every load: codes, scales and zero points per tile and block, `a` by `m·kp`,
            // and `out` by `(m-1)·ld + width`.
            unsafe {
                match (m, zp) {
                    (0, _) => {}
                    (1, false) => $f::<1, false>(t, a, kp, width, out, ld),
                    (1, true) => $f::<1, true>(t, a, kp, width, out, ld),
                    (2, false) => $f::<2, false>(t, a, kp, width, out, ld),
                    (2, true) => $f::<2, true>(t, a, kp, width, out, ld),
                    (3, false) => $f::<3, false>(t, a, kp, width, out, ld),
                    (3, true) => $f::<3, true>(t, a, kp, width, out, ld),
                    (_, false) => $f::<4, false>(t, a, kp, width, out, ld),
                    (_, true) => $f::<4, true>(t, a, kp, width, out, ld),
                }
            }
        };
    }
    match isa {
        Isa::Avx512 | Isa::Avx512Vnni => run!(tiles_avx512),
        // int4 for any number of rows (1.04–1.28× the kernel it replaced with two to four
        // rows too, in-process at 512×1024 and 2816×1024).
        Isa::Avx2 | Isa::AvxVnni if t.code == Code4::Int4 => run!(tiles_avx2_int4),
        Isa::Avx2 | Isa::AvxVnni => run!(tiles_avx2),
        Isa::Scalar | Isa::Neon | Isa::NeonDot => return false,
    }
    true
}

/// The table a row-block indexes (before its scale); `ZP`: `zps` holds the tile's zero-point
/// words.
///
/// # Safety
/// With `ZP`, `zps` points at `blk + 1` readable words.
#[inline(always)]
unsafe fn table_ptr<const ZP: bool>(base: *const f32, zps: *const u16, blk: usize, r: usize) -> *const f32 {
    if ZP {
        // SAFETY: the caller's contract.
        let z = (unsafe { *zps.add(blk) } >> (4 * r)) & 0xF;
        ZP_TABLES[z as usize].as_ptr()
    } else {
        base
    }
}

/// Prefetches the lines [`PREFETCH_BYTES`] ahead of a row-block's codes (`groups · 32`
/// bytes at `words`) and the block's scales (16 bytes at `scales`) as many blocks ahead.
#[inline(always)]
fn prefetch_block(words: *const u64, scales: *const f32, groups: usize) {
    let codes = words.cast::<i8>();
    let mut at = 0;
    while at < groups * 32 {
        // SAFETY: a prefetch never faults; the address is computed without dereferencing.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(codes.wrapping_add(PREFETCH_BYTES + at)) };
        at += 64;
    }
    // SAFETY: as above.
    unsafe { _mm_prefetch::<_MM_HINT_T0>(scales.cast::<i8>().wrapping_add(PREFETCH_BYTES / (groups * 2))) };
}

/// The table every block uses when there are no zero-point words.
fn base_table(t: &Tiles4<'_>) -> *const f32 {
    match t.code {
        Code4::Nf4 => crate::bnb4::NF4_CODE.as_ptr(),
        Code4::Int4 => ZP_TABLES[8].as_ptr(),
    }
}

/// # Safety
/// AVX-512 F/BW/VL available; `t` holds whole tiles (lengths as asserted by [`gemv_tiles`]),
/// `a` holds `M` rows of `kp` floats, `out` holds `M` rows of stride `ld` ≥ `width`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn tiles_avx512<const M: usize, const ZP: bool>(
    t: &Tiles4<'_>,
    a: &[f32],
    kp: usize,
    width: usize,
    out: &mut [f32],
    ld: usize,
) {
    let shifts = _mm512_setr_epi32(0, 0, 4, 4, 8, 8, 12, 12, 16, 16, 20, 20, 24, 24, 28, 28);
    let (bs, blocks) = (t.block_size, t.blocks);
    let groups = bs / GROUP;
    let base = base_table(t);
    for tile in 0..t.tiles {
        let mut acc = [[_mm512_setzero_ps(); TILE_ROWS]; M];
        // SAFETY (pointer arithmetic below): tile < tiles and blk < blocks, so every offset is
        // inside the lengths `gemv_tiles` asserted.
        let zps = t.zero_points.map_or(std::ptr::null(), |z| unsafe { z.as_ptr().add(tile * blocks) });
        for blk in 0..blocks {
            let sc = unsafe { t.scales.as_ptr().add((tile * blocks + blk) * TILE_ROWS) };
            let mut lut = [_mm512_setzero_ps(); TILE_ROWS];
            for (r, l) in lut.iter_mut().enumerate() {
                // SAFETY: tables hold 16 floats; `sc` 4 scales; `zps` `blocks` words.
                *l = unsafe {
                    _mm512_mul_ps(
                        _mm512_loadu_ps(table_ptr::<ZP>(base, zps, blk, r)),
                        _mm512_set1_ps(*sc.add(r)),
                    )
                };
            }
            let words = unsafe { t.codes.as_ptr().add((tile * blocks + blk) * groups * TILE_ROWS) };
            prefetch_block(words, sc, groups);
            for g in 0..groups {
                let kk = blk * bs + g * GROUP;
                let mut av = [_mm512_setzero_ps(); M];
                for (i, v) in av.iter_mut().enumerate() {
                    // SAFETY: kk + 16 ≤ kp, row i < M.
                    *v = unsafe { _mm512_loadu_ps(a.as_ptr().add(i * kp + kk)) };
                }
                for r in 0..TILE_ROWS {
                    // SAFETY: g < groups, r < 4: inside the block's words.
                    let q = _mm512_set1_epi64(unsafe { *words.add(g * TILE_ROWS + r) } as i64);
                    let w = _mm512_permutexvar_ps(_mm512_srlv_epi32(q, shifts), lut[r]);
                    for i in 0..M {
                        acc[i][r] = _mm512_fmadd_ps(av[i], w, acc[i][r]);
                    }
                }
            }
        }
        for (i, acc_i) in acc.iter().enumerate() {
            for (r, v) in acc_i.iter().enumerate().take(width.saturating_sub(tile * TILE_ROWS)) {
                out[i * ld + tile * TILE_ROWS + r] = _mm512_reduce_add_ps(*v);
            }
        }
    }
}

/// Lookup of the low 4 bits of each lane in a 16-entry table held as two 8-entry halves.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(super) fn lookup16(idx: __m256i, lo: __m256, hi: __m256) -> __m256 {
    let from_lo = _mm256_permutevar8x32_ps(lo, idx);
    let from_hi = _mm256_permutevar8x32_ps(hi, idx);
    _mm256_blendv_ps(from_lo, from_hi, _mm256_castsi256_ps(_mm256_slli_epi32::<28>(idx)))
}

/// `vpshufb` controls for [`tiles_avx2_int4`]: quad `j` (elements `4j..4j + 4` of a
/// group) of a row's codes unpacked one per byte in nibble order (byte `i` holds element `2i`
/// for `i < 8`, `2(i - 8) + 1` from 8 on), each code into the low byte of its lane (zeros
/// above), the same in both 128-bit halves.
static QUAD_CTRL: [[i8; 32]; 4] = {
    let mut c = [[-128i8; 32]; 4];
    let mut j = 0;
    while j < 4 {
        let mut d = 0;
        while d < 4 {
            let e = 4 * j + d;
            let src = if e % 2 == 0 { e / 2 } else { 8 + e / 2 };
            c[j][4 * d] = src as i8;
            c[j][16 + 4 * d] = src as i8;
            d += 1;
        }
        j += 1;
    }
    c
};

/// [`tiles_avx2`] for int4 codes, computing `q - z` from the codes and applying the scale
/// once per row-block: `y += scale · Σ a·(q - z)`. Every `q - z` is an exact small integer,
/// made as `(2²³ + q) - (2²³ + z)` with `2²³ + q` the code OR-ed into the bits of 2²³, so each
/// product is exactly the reference's `a·w` divided by the scale and a block's sum gains one
/// rounding (the product by the scale) against the reference's one per weight: within the
/// ops' bound, and a block whose codes all equal its zero point adds exactly nothing (no
/// `Σa` is subtracted afterwards, which would cancel).
///
/// Per group of 16 codes of the tile's four rows (one 32-byte load: rows 0 and 1 in the low
/// 128-bit half, 2 and 3 in the high one), the low and high nibbles are split into bytes and
/// interleaved back into nibble order (`vpunpck[lh]bw`: rows 0 and 2 in one register, 1 and 3
/// in the other); each quad of elements is then one `vpshufb` (a code into its lane's low
/// byte), an OR, a subtraction and one FMA per activation row against the quad of `a` in both
/// halves. A lane holds one row's partial sum over a quad position, so an accumulator serves
/// two rows, one per half. Eight weights cost three instructions besides the FMA instead of
/// five, and the row parameters (scales, `2²³ + z`) are a few per block of four rows.
///
/// # Safety
/// As [`tiles_avx512`], with AVX2 + FMA available; `t.code` is [`Code4::Int4`].
#[target_feature(enable = "avx2,fma")]
unsafe fn tiles_avx2_int4<const M: usize, const ZP: bool>(
    t: &Tiles4<'_>,
    a: &[f32],
    kp: usize,
    width: usize,
    out: &mut [f32],
    ld: usize,
) {
    let (nib, magic) = (_mm256_set1_epi8(0x0F), _mm256_set1_epi32(0x4B00_0000));
    // SAFETY: QUAD_CTRL rows are 32 bytes.
    let ctrl: [__m256i; 4] =
        std::array::from_fn(|j| unsafe { _mm256_loadu_si256(QUAD_CTRL[j].as_ptr().cast()) });
    // Scales of rows (0, 2) and (1, 3), each over its half, from the block's four.
    let (pick02, pick13) =
        (_mm256_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2), _mm256_setr_epi32(1, 1, 1, 1, 3, 3, 3, 3));
    // The zero-point word's low byte (rows 0, 1) in the low half, its high byte (rows 2, 3) in
    // the high one.
    let zsplit = _mm256_setr_epi32(
        0x8080_8000u32 as i32,
        0x8080_8000u32 as i32,
        0x8080_8000u32 as i32,
        0x8080_8000u32 as i32,
        0x8080_8001u32 as i32,
        0x8080_8001u32 as i32,
        0x8080_8001u32 as i32,
        0x8080_8001u32 as i32,
    );
    let (bs, blocks) = (t.block_size, t.blocks);
    let groups = bs / GROUP;
    // One accumulator chain per activation row and row pair suffices from two rows on; one
    // row alone splits its chains in two (quads 0, 2 and 1, 3) to keep the FMAs independent.
    const fn halves(m: usize) -> usize {
        if m == 1 {
            2
        } else {
            1
        }
    }
    for tile in 0..t.tiles {
        let rows = width.saturating_sub(tile * TILE_ROWS).min(TILE_ROWS);
        if rows == 0 {
            // Tiles past `width` (callers pass none) have no outputs.
            break;
        }
        let mut acc = [[_mm256_setzero_ps(); 2]; M];
        // SAFETY (pointer arithmetic below): as in `tiles_avx512`.
        let zps = t.zero_points.map_or(std::ptr::null(), |z| unsafe { z.as_ptr().add(tile * blocks) });
        // `2²³ + z` of rows 0 and 2 (1 and 3), one row per half.
        let zero_points = |blk: usize| {
            if ZP {
                // SAFETY: `zps` holds `blocks` words.
                let zw = _mm256_set1_epi16(unsafe { *zps.add(blk) } as i16);
                let lo = _mm256_and_si256(zw, nib);
                let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(zw), nib);
                let bias = |z| _mm256_castsi256_ps(_mm256_or_si256(_mm256_shuffle_epi8(z, zsplit), magic));
                (bias(lo), bias(hi))
            } else {
                (_mm256_set1_ps(8_388_616.0), _mm256_set1_ps(8_388_616.0))
            }
        };
        let mut zf = zero_points(0);
        for blk in 0..blocks {
            let sc = unsafe { t.scales.as_ptr().add((tile * blocks + blk) * TILE_ROWS) };
            let words = unsafe { t.codes.as_ptr().add((tile * blocks + blk) * groups * TILE_ROWS) };
            prefetch_block(words, sc, groups);
            let (z02, z13) = zf;
            if ZP && blk + 1 < blocks {
                // The next block's, ahead of the loads that wait for it.
                zf = zero_points(blk + 1);
            }
            let mut p = [[[_mm256_setzero_ps(); 2]; 2]; M];
            for g in 0..groups {
                let kk = blk * bs + g * GROUP;
                // SAFETY: g < groups: the group's four words are inside the block's.
                let x = unsafe { _mm256_loadu_si256(words.add(g * TILE_ROWS).cast()) };
                let lo = _mm256_and_si256(x, nib);
                let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(x), nib);
                let u02 = _mm256_unpacklo_epi8(lo, hi);
                let u13 = _mm256_unpackhi_epi8(lo, hi);
                let weight = |u, c, zf| {
                    _mm256_sub_ps(_mm256_castsi256_ps(_mm256_or_si256(_mm256_shuffle_epi8(u, c), magic)), zf)
                };
                for (j, cj) in ctrl.iter().enumerate() {
                    let w02 = weight(u02, *cj, z02);
                    let w13 = weight(u13, *cj, z13);
                    let h = j % halves(M);
                    for (i, p_i) in p.iter_mut().enumerate() {
                        // SAFETY: kk + 16 ≤ kp, row i < M.
                        let aq = _mm256_broadcast_ps(&unsafe {
                            _mm_loadu_ps(a.as_ptr().add(i * kp + kk + 4 * j))
                        });
                        p_i[0][h] = _mm256_fmadd_ps(aq, w02, p_i[0][h]);
                        p_i[1][h] = _mm256_fmadd_ps(aq, w13, p_i[1][h]);
                    }
                }
            }
            // SAFETY: `sc` holds the block's 4 scales.
            let s = _mm256_broadcast_ps(&unsafe { _mm_loadu_ps(sc) });
            let (s02, s13) = (_mm256_permutevar_ps(s, pick02), _mm256_permutevar_ps(s, pick13));
            for (acc_i, p_i) in acc.iter_mut().zip(&p) {
                let (p02, p13) = if halves(M) == 2 {
                    (_mm256_add_ps(p_i[0][0], p_i[0][1]), _mm256_add_ps(p_i[1][0], p_i[1][1]))
                } else {
                    (p_i[0][0], p_i[1][0])
                };
                acc_i[0] = _mm256_fmadd_ps(s02, p02, acc_i[0]);
                acc_i[1] = _mm256_fmadd_ps(s13, p13, acc_i[1]);
            }
        }
        for (i, acc_i) in acc.iter().enumerate() {
            // Row r is pair r % 2, half r / 2.
            let sums = [
                hsum128(_mm256_castps256_ps128(acc_i[0])),
                hsum128(_mm256_castps256_ps128(acc_i[1])),
                hsum128(_mm256_extractf128_ps::<1>(acc_i[0])),
                hsum128(_mm256_extractf128_ps::<1>(acc_i[1])),
            ];
            out[i * ld + tile * TILE_ROWS..][..rows].copy_from_slice(&sums[..rows]);
        }
    }
}

/// # Safety
/// As [`tiles_avx512`], with AVX2 + FMA available.
#[target_feature(enable = "avx2,fma")]
unsafe fn tiles_avx2<const M: usize, const ZP: bool>(
    t: &Tiles4<'_>,
    a: &[f32],
    kp: usize,
    width: usize,
    out: &mut [f32],
    ld: usize,
) {
    let base = base_table(t);
    let row = |zps, blk, r, scale| {
        // SAFETY: tables hold 16 floats; with ZP, `zps` holds `blk + 1` words.
        let p = unsafe { table_ptr::<ZP>(base, zps, blk, r) };
        let s = _mm256_set1_ps(scale);
        // SAFETY: as above.
        unsafe { (_mm256_mul_ps(_mm256_loadu_ps(p), s), _mm256_mul_ps(_mm256_loadu_ps(p.add(8)), s)) }
    };
    let weight = |(lo, hi), idx| lookup16(idx, lo, hi);
    // SAFETY: the caller's contract, passed on.
    unsafe { tiles_avx2_rows::<M, ZP, _>(t, a, kp, width, out, ld, row, weight) }
}

/// The AVX2 kernels' common loop. Per row-block, `row(zps, blk, r, scale)` makes the row's
/// parameters (`zps`: the tile's zero-point words, null without them); per group of 16 codes
/// `weight(params, idx)` turns eight lanes, each holding its code in the low 4 bits (garbage
/// above), into weights.
///
/// A tile's rows go one after another within each block, so a row's parameters (the scale and
/// `2²³ + z`, or the two halves of its table) stay in registers across the block's groups and
/// the activations come from L1 as FMA operands. Taking the groups in the outer loop instead
/// shares each activation load among four rows but needs eight registers of row parameters
/// besides the accumulators, which spilled to the stack; every accumulator still takes its
/// groups in the same order, so the sums are the same bits.
///
/// # Safety
/// As [`tiles_avx512`], with AVX2 + FMA available.
#[inline]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn tiles_avx2_rows<const M: usize, const ZP: bool, P: Copy>(
    t: &Tiles4<'_>,
    a: &[f32],
    kp: usize,
    width: usize,
    out: &mut [f32],
    ld: usize,
    row: impl Fn(*const u16, usize, usize, f32) -> P,
    weight: impl Fn(P, __m256i) -> __m256,
) {
    // Elements 0..8 of a group: lanes alternate between the word's low (even elements) and
    // high (odd elements) halves; elements 8..16 likewise, 16 bits further.
    let shifts_lo = _mm256_setr_epi32(0, 0, 4, 4, 8, 8, 12, 12);
    let shifts_hi = _mm256_setr_epi32(16, 16, 20, 20, 24, 24, 28, 28);
    let (bs, blocks) = (t.block_size, t.blocks);
    let groups = bs / GROUP;
    for tile in 0..t.tiles {
        let mut acc = [[_mm256_setzero_ps(); TILE_ROWS]; M];
        // SAFETY (pointer arithmetic below): as in `tiles_avx512`.
        let zps = t.zero_points.map_or(std::ptr::null(), |z| unsafe { z.as_ptr().add(tile * blocks) });
        for blk in 0..blocks {
            let sc = unsafe { t.scales.as_ptr().add((tile * blocks + blk) * TILE_ROWS) };
            let words = unsafe { t.codes.as_ptr().add((tile * blocks + blk) * groups * TILE_ROWS) };
            prefetch_block(words, sc, groups);
            for r in 0..TILE_ROWS {
                // SAFETY: `sc` holds 4 scales.
                let params = row(zps, blk, r, unsafe { *sc.add(r) });
                for g in 0..groups {
                    let kk = blk * bs + g * GROUP;
                    // SAFETY: g < groups, r < 4: inside the block's words.
                    let q = _mm256_set1_epi64x(unsafe { *words.add(g * TILE_ROWS + r) } as i64);
                    let w0 = weight(params, _mm256_srlv_epi32(q, shifts_lo));
                    let w1 = weight(params, _mm256_srlv_epi32(q, shifts_hi));
                    for (i, acc_i) in acc.iter_mut().enumerate() {
                        // SAFETY: kk + 16 ≤ kp, row i < M.
                        let (a0, a1) = unsafe {
                            let p = a.as_ptr().add(i * kp + kk);
                            (_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8)))
                        };
                        acc_i[r] = _mm256_fmadd_ps(a0, w0, acc_i[r]);
                        acc_i[r] = _mm256_fmadd_ps(a1, w1, acc_i[r]);
                    }
                }
            }
        }
        for (i, acc_i) in acc.iter().enumerate() {
            for (r, v) in acc_i.iter().enumerate().take(width.saturating_sub(tile * TILE_ROWS)) {
                out[i * ld + tile * TILE_ROWS + r] = hsum256(*v);
            }
        }
    }
}
