//! 4-bit dequantize-GEMV through a per-block 16-entry table (`vpermps`).
//!
//! For each block the table holds the block's 16 possible dequantized values, computed with
//! the scalar reference's formula (`(q - zp)·scale` or `NF4[q]·absmax`), so every weight is
//! bit-identical to the reference's; codes index the table directly (`vpermps` reads the low
//! 4 bits of each i32 lane, AVX2 selects between two 8-entry halves on bit 3). `A` arrives
//! permuted (`arch::permute_nibble_lanes`) so that low-nibble and high-nibble codes each meet
//! their activations in plain vector loads.

use std::arch::x86_64::*;

use super::hsum256;
use crate::arch::Lut4Weights;
use crate::bnb4::NF4_CODE;
use crate::dispatch::Isa;

/// See `arch::lut4_gemv_cols`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemv_cols(
    isa: Isa,
    w: &Lut4Weights<'_>,
    m: usize,
    a_perm: &[f32],
    j0: usize,
    j1: usize,
    out: &mut [f32],
    ld: usize,
) -> bool {
    let bs = w.block_size();
    let kp = w.blocks_per_row() * bs;
    let width = j1 - j0;
    assert!(bs >= 16 && bs.is_power_of_two() && a_perm.len() >= m * kp);
    assert!(m == 0 || (out.len() >= (m - 1) * ld + width && ld >= width));
    for j in j0..j1 {
        // Every row the kernels read holds its kp / 2 bytes (also checks j < n).
        assert!(w.row(j).len() == kp / 2);
    }
    let g32 = bs >= 32;
    for i in 0..m {
        let ap = &a_perm[i * kp..(i + 1) * kp];
        let o = &mut out[i * ld..i * ld + width];
        let mut j = j0;
        while j < j1 {
            let nc = if j1 - j >= 4 { 4 } else { 1 };
            let dst = &mut o[j - j0..j - j0 + nc];
            // SAFETY: `isa` is available (arch/mod.rs contract); rows j..j+nc hold kp/2 bytes
            // and `ap` kp floats (asserted above), which bound every load in the tiles.
            unsafe {
                match (isa, nc, g32) {
                    (Isa::Avx512 | Isa::Avx512Vnni, 4, true) => tile_avx512::<4, true>(w, ap, j, dst),
                    (Isa::Avx512 | Isa::Avx512Vnni, 4, false) => tile_avx512::<4, false>(w, ap, j, dst),
                    (Isa::Avx512 | Isa::Avx512Vnni, _, true) => tile_avx512::<1, true>(w, ap, j, dst),
                    (Isa::Avx512 | Isa::Avx512Vnni, _, false) => tile_avx512::<1, false>(w, ap, j, dst),
                    (Isa::Avx2 | Isa::AvxVnni, 4, true) => tile_avx2::<4, true>(w, ap, j, dst),
                    (Isa::Avx2 | Isa::AvxVnni, 4, false) => tile_avx2::<4, false>(w, ap, j, dst),
                    (Isa::Avx2 | Isa::AvxVnni, _, true) => tile_avx2::<1, true>(w, ap, j, dst),
                    (Isa::Avx2 | Isa::AvxVnni, _, false) => tile_avx2::<1, false>(w, ap, j, dst),
                    (Isa::Scalar, _, _) => return false,
                }
            }
            j += nc;
        }
    }
    true
}

/// # Safety
/// AVX-512 F/BW/VL available; rows `j..j+NC` of `w` hold `kp/2` bytes, `ap` holds `kp` floats.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn tile_avx512<const NC: usize, const G32: bool>(w: &Lut4Weights<'_>, ap: &[f32], j: usize, dst: &mut [f32]) {
    let bs = w.block_size();
    let nf4 = w.is_nf4();
    let iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    // SAFETY: NF4_CODE has 16 floats.
    let code = unsafe { _mm512_loadu_ps(NF4_CODE.as_ptr()) };
    let rows: [&[u8]; NC] = std::array::from_fn(|c| w.row(j + c));
    let mut acc = [_mm512_setzero_ps(); NC];
    for blk in 0..w.blocks_per_row() {
        let mut lut = [_mm512_setzero_ps(); NC];
        for (c, l) in lut.iter_mut().enumerate() {
            let (s, zp) = w.block(j + c, blk);
            let vals = if nf4 { code } else { _mm512_cvtepi32_ps(_mm512_sub_epi32(iota, _mm512_set1_epi32(zp))) };
            *l = _mm512_mul_ps(vals, _mm512_set1_ps(s));
        }
        let base = blk * bs;
        if G32 {
            let mut g = base;
            while g < base + bs {
                // SAFETY: g + 32 ≤ kp = ap.len() (bs is a multiple of 32 here).
                let (a_lo, a_hi) = unsafe { (_mm512_loadu_ps(ap.as_ptr().add(g)), _mm512_loadu_ps(ap.as_ptr().add(g + 16))) };
                for c in 0..NC {
                    // SAFETY: bytes g/2 .. g/2 + 16 ≤ kp/2 = row length.
                    let bytes = unsafe { _mm_loadu_si128(rows[c].as_ptr().add(g / 2).cast()) };
                    let idx = _mm512_cvtepu8_epi32(bytes);
                    let w_lo = _mm512_permutexvar_ps(idx, lut[c]);
                    let w_hi = _mm512_permutexvar_ps(_mm512_srli_epi32::<4>(idx), lut[c]);
                    acc[c] = _mm512_fmadd_ps(a_lo, w_lo, acc[c]);
                    acc[c] = _mm512_fmadd_ps(a_hi, w_hi, acc[c]);
                }
                g += 32;
            }
        } else {
            // bs == 16: one group of 8 bytes.
            // SAFETY: base + 16 ≤ kp.
            let av = unsafe { _mm512_loadu_ps(ap.as_ptr().add(base)) };
            for c in 0..NC {
                // SAFETY: bytes base/2 .. base/2 + 8 ≤ kp/2.
                let v = unsafe { _mm_loadl_epi64(rows[c].as_ptr().add(base / 2).cast()) };
                let x = _mm_unpacklo_epi64(v, _mm_srli_epi16::<4>(v));
                let wv = _mm512_permutexvar_ps(_mm512_cvtepu8_epi32(x), lut[c]);
                acc[c] = _mm512_fmadd_ps(av, wv, acc[c]);
            }
        }
    }
    for c in 0..NC {
        dst[c] = _mm512_reduce_add_ps(acc[c]);
    }
}

/// Table lookup of 8 codes (low 4 bits of each lane) in a 16-entry table held as two halves.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn lookup16(idx: __m256i, lo: __m256, hi: __m256) -> __m256 {
    let from_lo = _mm256_permutevar8x32_ps(lo, idx);
    let from_hi = _mm256_permutevar8x32_ps(hi, idx);
    _mm256_blendv_ps(from_lo, from_hi, _mm256_castsi256_ps(_mm256_slli_epi32::<28>(idx)))
}

/// # Safety
/// AVX2 + FMA available; rows `j..j+NC` of `w` hold `kp/2` bytes, `ap` holds `kp` floats.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_avx2<const NC: usize, const G32: bool>(w: &Lut4Weights<'_>, ap: &[f32], j: usize, dst: &mut [f32]) {
    let bs = w.block_size();
    let nf4 = w.is_nf4();
    let iota_lo = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let iota_hi = _mm256_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15);
    // SAFETY: NF4_CODE has 16 floats.
    let (code_lo, code_hi) = unsafe { (_mm256_loadu_ps(NF4_CODE.as_ptr()), _mm256_loadu_ps(NF4_CODE.as_ptr().add(8))) };
    let rows: [&[u8]; NC] = std::array::from_fn(|c| w.row(j + c));
    let mut acc = [_mm256_setzero_ps(); NC];
    for blk in 0..w.blocks_per_row() {
        let mut lut = [(_mm256_setzero_ps(), _mm256_setzero_ps()); NC];
        for (c, l) in lut.iter_mut().enumerate() {
            let (s, zp) = w.block(j + c, blk);
            let sv = _mm256_set1_ps(s);
            *l = if nf4 {
                (_mm256_mul_ps(code_lo, sv), _mm256_mul_ps(code_hi, sv))
            } else {
                let z = _mm256_set1_epi32(zp);
                (
                    _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(iota_lo, z)), sv),
                    _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(iota_hi, z)), sv),
                )
            };
        }
        let base = blk * bs;
        let step = if G32 { 32 } else { 16 };
        let mut g = base;
        while g < base + bs {
            if G32 {
                // SAFETY: g + 32 ≤ kp = ap.len().
                let a4 = unsafe {
                    let p = ap.as_ptr().add(g);
                    [_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8)), _mm256_loadu_ps(p.add(16)), _mm256_loadu_ps(p.add(24))]
                };
                for c in 0..NC {
                    // SAFETY: bytes g/2 .. g/2 + 16 ≤ kp/2.
                    let bytes = unsafe { _mm_loadu_si128(rows[c].as_ptr().add(g / 2).cast()) };
                    let i0 = _mm256_cvtepu8_epi32(bytes);
                    let i1 = _mm256_cvtepu8_epi32(_mm_srli_si128::<8>(bytes));
                    let (lo, hi) = lut[c];
                    acc[c] = _mm256_fmadd_ps(a4[0], lookup16(i0, lo, hi), acc[c]);
                    acc[c] = _mm256_fmadd_ps(a4[1], lookup16(i1, lo, hi), acc[c]);
                    acc[c] = _mm256_fmadd_ps(a4[2], lookup16(_mm256_srli_epi32::<4>(i0), lo, hi), acc[c]);
                    acc[c] = _mm256_fmadd_ps(a4[3], lookup16(_mm256_srli_epi32::<4>(i1), lo, hi), acc[c]);
                }
            } else {
                // SAFETY: g + 16 ≤ kp.
                let (a0, a1) = unsafe { (_mm256_loadu_ps(ap.as_ptr().add(g)), _mm256_loadu_ps(ap.as_ptr().add(g + 8))) };
                for c in 0..NC {
                    // SAFETY: bytes g/2 .. g/2 + 8 ≤ kp/2.
                    let v = unsafe { _mm_loadl_epi64(rows[c].as_ptr().add(g / 2).cast()) };
                    let i0 = _mm256_cvtepu8_epi32(v);
                    let (lo, hi) = lut[c];
                    acc[c] = _mm256_fmadd_ps(a0, lookup16(i0, lo, hi), acc[c]);
                    acc[c] = _mm256_fmadd_ps(a1, lookup16(_mm256_srli_epi32::<4>(i0), lo, hi), acc[c]);
                }
            }
            g += step;
        }
    }
    for c in 0..NC {
        dst[c] = hsum256(acc[c]);
    }
}
