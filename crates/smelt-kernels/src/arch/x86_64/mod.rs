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
pub(crate) mod q4;
pub(crate) mod ternary;

use std::arch::x86_64::*;

/// Horizontal sum of 8 lanes, in a fixed order: (0+4, 1+5, 2+6, 3+7), then pairs, then the
/// last two.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn hsum256(v: __m256) -> f32 {
    let lo = _mm256_castps256_ps128(v);
    let hi = _mm256_extractf128_ps::<1>(v);
    let s = _mm_add_ps(lo, hi);
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s));
    _mm_cvtss_f32(s)
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
