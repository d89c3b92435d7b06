//! x86-64 kernels: AVX2 + FMA, AVX-VNNI, AVX-512 (F, BW, VL) and AVX512-VNNI.
//!
//! Every `#[target_feature]` function here is private to its module and reached only through
//! a safe `*_cols` function that receives an [`Isa`](crate::Isa) the CPU has (see
//! `arch/mod.rs`) and that asserts the slice lengths the raw loads rely on.

pub(crate) mod blocked;
pub(crate) mod exp;
pub(crate) mod f32;
pub(crate) mod int8;
pub(crate) mod int8_packed;
pub(crate) mod int8_pairs;
pub(crate) mod q4;
pub(crate) mod q8;
pub(crate) mod rows;
pub(crate) mod ternary;

use std::arch::x86_64::*;

/// Horizontal sum of 8 lanes, in a fixed order: (0+4, 1+5, 2+6, 3+7), then pairs, then the
/// last two.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn hsum256(v: __m256) -> f32 {
    hsum128(_mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v)))
}

/// The sum of four lanes, `(v0 + v2) + (v1 + v3)`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn hsum128(v: __m128) -> f32 {
    let s = _mm_add_ps(v, _mm_movehl_ps(v, v));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s)))
}

/// The 8×8 transposition of eight rows of eight floats: `out[j]` holds element `j` of every
/// row, rows in order. Pairs of rows interleaved, then quads, then the 128-bit halves.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
    let t = [
        _mm256_unpacklo_ps(r[0], r[1]),
        _mm256_unpackhi_ps(r[0], r[1]),
        _mm256_unpacklo_ps(r[2], r[3]),
        _mm256_unpackhi_ps(r[2], r[3]),
        _mm256_unpacklo_ps(r[4], r[5]),
        _mm256_unpackhi_ps(r[4], r[5]),
        _mm256_unpacklo_ps(r[6], r[7]),
        _mm256_unpackhi_ps(r[6], r[7]),
    ];
    let s = [
        _mm256_shuffle_ps::<0x44>(t[0], t[2]),
        _mm256_shuffle_ps::<0xEE>(t[0], t[2]),
        _mm256_shuffle_ps::<0x44>(t[1], t[3]),
        _mm256_shuffle_ps::<0xEE>(t[1], t[3]),
        _mm256_shuffle_ps::<0x44>(t[4], t[6]),
        _mm256_shuffle_ps::<0xEE>(t[4], t[6]),
        _mm256_shuffle_ps::<0x44>(t[5], t[7]),
        _mm256_shuffle_ps::<0xEE>(t[5], t[7]),
    ];
    [
        _mm256_permute2f128_ps::<0x20>(s[0], s[4]),
        _mm256_permute2f128_ps::<0x20>(s[1], s[5]),
        _mm256_permute2f128_ps::<0x20>(s[2], s[6]),
        _mm256_permute2f128_ps::<0x20>(s[3], s[7]),
        _mm256_permute2f128_ps::<0x31>(s[0], s[4]),
        _mm256_permute2f128_ps::<0x31>(s[1], s[5]),
        _mm256_permute2f128_ps::<0x31>(s[2], s[6]),
        _mm256_permute2f128_ps::<0x31>(s[3], s[7]),
    ]
}

/// Lane mask for the first `r` (≤ 8) lanes, for `_mm256_maskload_ps`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn tail_mask256(r: usize) -> __m256i {
    let idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    _mm256_cmpgt_epi32(_mm256_set1_epi32(r as i32), idx)
}

/// Bit mask for the first `r` (≤ 16) lanes.
#[inline]
fn tail_mask16(r: usize) -> u16 {
    if r >= 16 {
        u16::MAX
    } else {
        ((1u32 << r) - 1) as u16
    }
}
