//! Ternary GEMV over the 2-bit packing: `Σ a·q`, `q ∈ {-1, 0, 1}`.
//!
//! AVX-512: 32 codes (8 bytes) at a time; `pext` pulls out their high bits (code 2 or 3:
//! q = +1) and low bits (code 1: q = 0) as 32-bit masks, and the accumulator gets `+a` under
//! the first mask and `-a` where neither bit is set (q = -1): per lane exactly
//! `acc + a·q`. AVX2: codes are shifted into lanes and turned into ±1/0 floats through an
//! 8-entry `vpermps` table, then FMA. Both need `k % 4 == 0` (rows start on a byte).

use std::arch::x86_64::*;

use super::{hsum256, tail_mask256};
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
    assert!(k % 4 == 0 && a.len() >= m * k && j1 * (k / 4) <= packed.len());
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

/// Up to 8 bytes from `row[at..]` as a little-endian u64 (missing bytes 0).
#[inline]
fn load_codes(row: &[u8], at: usize) -> u64 {
    let end = (at + 8).min(row.len());
    let mut b = [0u8; 8];
    b[..end - at].copy_from_slice(&row[at..end]);
    u64::from_le_bytes(b)
}

/// # Safety
/// AVX-512 F/BW/VL and BMI2 available; `rows` holds `NC` rows of `rb = a.len() / 4` bytes.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,bmi2")]
unsafe fn tile_avx512<const NC: usize>(a: &[f32], rows: &[u8], rb: usize, dst: &mut [f32]) {
    let k = a.len();
    let mut acc = [_mm512_setzero_ps(); NC];
    let mut kk = 0;
    while kk < k {
        let r = (k - kk).min(32);
        let lim: u32 = if r == 32 { u32::MAX } else { (1u32 << r) - 1 };
        let p = a.as_ptr().wrapping_add(kk);
        // SAFETY: enabled lanes are elements kk .. kk + r ≤ k of `a`.
        let (a0, a1) = unsafe { (_mm512_maskz_loadu_ps(lim as u16, p), _mm512_maskz_loadu_ps((lim >> 16) as u16, p.wrapping_add(16))) };
        for (c, acc_c) in acc.iter_mut().enumerate() {
            let word = if r == 32 {
                // SAFETY: bytes kk/4 .. kk/4 + 8 of row c are inside `rows` (kk + 32 ≤ k).
                unsafe { (rows.as_ptr().add(c * rb + kk / 4) as *const u64).read_unaligned() }
            } else {
                load_codes(&rows[c * rb..(c + 1) * rb], kk / 4)
            };
            let hi = _pext_u64(word, 0xAAAA_AAAA_AAAA_AAAA) as u32;
            let lo = _pext_u64(word, 0x5555_5555_5555_5555) as u32;
            let pos = hi & lim;
            let neg = !(hi | lo) & lim;
            *acc_c = _mm512_mask_add_ps(*acc_c, pos as u16, *acc_c, a0);
            *acc_c = _mm512_mask_sub_ps(*acc_c, neg as u16, *acc_c, a0);
            let acc1 = _mm512_mask_add_ps(*acc_c, (pos >> 16) as u16, *acc_c, a1);
            *acc_c = _mm512_mask_sub_ps(acc1, (neg >> 16) as u16, acc1, a1);
        }
        kk += 32;
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
