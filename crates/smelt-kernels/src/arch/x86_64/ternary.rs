//! Ternary GEMV over the 2-bit packing: `Σ a·q`, `q ∈ {-1, 0, 1}`.
//!
//! 16 (AVX-512) or 8 (AVX2) codes at a time: their 32- or 16-bit word is broadcast, shifted
//! per lane so each lane's code is in its low bits, and turned into a ±1/0 float by a
//! `vpermps` table lookup, then FMA with the activations (`a·q` is exact, so each lane's sum is
//! exactly a lane partial sum of `a·q`). Both need `k % 4 == 0` (rows start on a byte).

use std::arch::x86_64::*;

use super::{hsum256, tail_mask16, tail_mask256};
use crate::dispatch::Isa;

/// See `arch::ternary_gemv_cols`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemv_cols(
    isa: Isa,
    m: usize,
    k: usize,
    a: &[f32],
    packed: &[u8],
    j0: usize,
    j1: usize,
    out: &mut [f32],
    ld: usize,
) -> bool {
    let width = j1 - j0;
    assert!(k.is_multiple_of(4) && a.len() >= m * k && j1 * (k / 4) <= packed.len());
    assert!(m == 0 || (out.len() >= (m - 1) * ld + width && ld >= width));
    let rb = k / 4;
    for i in 0..m {
        let ar = &a[i * k..(i + 1) * k];
        let o = &mut out[i * ld..i * ld + width];
        let mut j = j0;
        while j < j1 {
            let nc = if j1 - j >= 4 { 4 } else { 1 };
            let rows = &packed[j * rb..(j + nc) * rb];
            let dst = &mut o[j - j0..j - j0 + nc];
            // SAFETY: `isa` is available (arch/mod.rs contract); `rows` holds nc rows of k/4
            // bytes and `ar` k floats, which bound every load in the tiles.
            unsafe {
                match (isa, nc) {
                    (Isa::Avx512 | Isa::Avx512Vnni, 4) => tile_avx512::<4>(ar, rows, rb, dst),
                    (Isa::Avx512 | Isa::Avx512Vnni, _) => tile_avx512::<1>(ar, rows, rb, dst),
                    (Isa::Avx2 | Isa::AvxVnni, 4) => tile_avx2::<4>(ar, rows, rb, dst),
                    (Isa::Avx2 | Isa::AvxVnni, _) => tile_avx2::<1>(ar, rows, rb, dst),
                    (Isa::Scalar, _) => return false,
                }
            }
            j += nc;
        }
    }
    true
}

/// # Safety
/// AVX-512 F/BW/VL available; `rows` holds `NC` rows of `rb = a.len() / 4` bytes.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn tile_avx512<const NC: usize>(a: &[f32], rows: &[u8], rb: usize, dst: &mut [f32]) {
    let k = a.len();
    // q for the 4 low bits of a shifted code word: bits 0-1 are the code (0 → -1, 1 → 0,
    // 2 and 3 → +1), bits 2-3 belong to the next code and are ignored.
    let table =
        _mm512_setr_ps(-1.0, 0.0, 1.0, 1.0, -1.0, 0.0, 1.0, 1.0, -1.0, 0.0, 1.0, 1.0, -1.0, 0.0, 1.0, 1.0);
    let shifts = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let mut acc = [_mm512_setzero_ps(); NC];
    let mut kk = 0;
    while kk + 16 <= k {
        // SAFETY: kk + 16 ≤ k.
        let av = unsafe { _mm512_loadu_ps(a.as_ptr().add(kk)) };
        for (c, acc_c) in acc.iter_mut().enumerate() {
            // SAFETY: bytes kk/4 .. kk/4 + 4 ≤ rb of row c, inside `rows`.
            let word = unsafe { (rows.as_ptr().add(c * rb + kk / 4) as *const u32).read_unaligned() };
            let q = _mm512_permutexvar_ps(_mm512_srlv_epi32(_mm512_set1_epi32(word as i32), shifts), table);
            *acc_c = _mm512_fmadd_ps(av, q, *acc_c);
        }
        kk += 16;
    }
    if kk < k {
        // Tail of r < 16 elements (a multiple of 4): missing lanes have a = 0 (and code 0,
        // q = -1, adding 0·(-1)).
        let r = k - kk;
        let mask = tail_mask16(r);
        // SAFETY: enabled lanes are elements kk .. k of `a`.
        let av = unsafe { _mm512_maskz_loadu_ps(mask, a.as_ptr().add(kk)) };
        for (c, acc_c) in acc.iter_mut().enumerate() {
            let mut b = [0u8; 4];
            b[..r / 4].copy_from_slice(&rows[c * rb + kk / 4..c * rb + kk / 4 + r / 4]);
            let word = u32::from_le_bytes(b);
            let q = _mm512_permutexvar_ps(_mm512_srlv_epi32(_mm512_set1_epi32(word as i32), shifts), table);
            *acc_c = _mm512_fmadd_ps(av, q, *acc_c);
        }
    }
    for c in 0..NC {
        dst[c] = _mm512_reduce_add_ps(acc[c]);
    }
}

/// # Safety
/// AVX2 + FMA available; `rows` holds `NC` rows of `rb = a.len() / 4` bytes.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_avx2<const NC: usize>(a: &[f32], rows: &[u8], rb: usize, dst: &mut [f32]) {
    let k = a.len();
    // q for the 3 low bits of a shifted code word: bits 0-1 are the code (0 → -1, 1 → 0,
    // 2 and 3 → +1), bit 2 belongs to the next code and is ignored.
    let table = _mm256_setr_ps(-1.0, 0.0, 1.0, 1.0, -1.0, 0.0, 1.0, 1.0);
    let shifts = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
    let mut acc = [_mm256_setzero_ps(); NC];
    let mut kk = 0;
    while kk < k {
        let r = (k - kk).min(8);
        let mask = tail_mask256(r);
        // SAFETY: enabled lanes are elements kk .. kk + r ≤ k of `a`.
        let av = unsafe { _mm256_maskload_ps(a.as_ptr().wrapping_add(kk), mask) };
        for (c, acc_c) in acc.iter_mut().enumerate() {
            let at = c * rb + kk / 4;
            // r is a multiple of 4 (k % 4 == 0): r / 4 bytes belong to this row.
            let word = if r == 8 { u16::from_le_bytes([rows[at], rows[at + 1]]) } else { rows[at] as u16 };
            let codes = _mm256_srlv_epi32(_mm256_set1_epi32(word as i32), shifts);
            let q = _mm256_permutevar8x32_ps(table, codes);
            // Lanes past r have av = 0 and a code read from zero bits (q = -1): 0·(-1) adds 0.
            *acc_c = _mm256_fmadd_ps(av, q, *acc_c);
        }
        kk += 8;
    }
    for c in 0..NC {
        dst[c] = hsum256(acc[c]);
    }
}
