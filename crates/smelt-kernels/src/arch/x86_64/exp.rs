//! f64 `exp` of non-positive arguments, 8 (AVX-512) or 4 (AVX2) lanes, and the sigmoid and
//! softmax loops over it (see `exp.rs` for the method and the accuracy).

use std::arch::x86_64::*;

use crate::dispatch::Isa;
use crate::exp::EXP_FLUSH;

const LOG2E: f64 = std::f64::consts::LOG2_E;
/// `ln 2` split as fdlibm does: `LN2_HI` has 32 significant bits.
const LN2_HI: f64 = 6.931_471_803_691_238e-1;
const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
/// 1.5·2⁵²: added to `x·log₂e`, leaves the nearest integer in the low bits.
const MAGIC: f64 = 6_755_399_441_055_744.0;
/// `1/k!` for `k = 13, 12, ..., 0` (Horner order).
const COEF: [f64; 14] = {
    let mut c = [0.0f64; 14];
    let mut k = 0;
    let mut f = 1.0f64;
    while k < 14 {
        if k > 0 {
            f *= k as f64;
        }
        c[13 - k] = 1.0 / f;
        k += 1;
    }
    c
};

/// Elements done (whole vectors); the caller finishes the rest with the scalar reference.
pub(crate) fn sigmoid_f32(isa: Isa, x: &[f32], out: &mut [f32]) -> usize {
    assert_eq!(x.len(), out.len());
    match isa {
        // SAFETY: `isa` is available (arch/mod.rs contract); loads and stores stay below
        // `x.len()` (whole vectors only).
        Isa::Avx512 | Isa::Avx512Vnni => unsafe { sigmoid_avx512(x, out) },
        // SAFETY: as above.
        Isa::Avx2 | Isa::AvxVnni => unsafe { sigmoid_avx2(x, out) },
        Isa::Scalar | Isa::Neon | Isa::NeonDot => 0,
    }
}

/// Elements done (whole vectors); the caller finishes the rest with the scalar reference.
pub(crate) fn exp_shifted_f64(isa: Isa, x: &[f32], shift: f64, out: &mut [f64]) -> usize {
    assert_eq!(x.len(), out.len());
    match isa {
        // SAFETY: as in `sigmoid_f32`.
        Isa::Avx512 | Isa::Avx512Vnni => unsafe { exp_shifted_avx512(x, shift, out) },
        // SAFETY: as above.
        Isa::Avx2 | Isa::AvxVnni => unsafe { exp_shifted_avx2(x, shift, out) },
        Isa::Scalar | Isa::Neon | Isa::NeonDot => 0,
    }
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
fn exp_nonpos_512(x: __m512d) -> __m512d {
    let magic = _mm512_set1_pd(MAGIC);
    let t = _mm512_fmadd_pd(x, _mm512_set1_pd(LOG2E), magic);
    let n = _mm512_sub_pd(t, magic);
    let r = _mm512_fnmadd_pd(n, _mm512_set1_pd(LN2_HI), x);
    let r = _mm512_fnmadd_pd(n, _mm512_set1_pd(LN2_LO), r);
    let mut p = _mm512_set1_pd(COEF[0]);
    for &c in &COEF[1..] {
        p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(c));
    }
    let ni = _mm512_sub_epi64(_mm512_castpd_si512(t), _mm512_castpd_si512(magic));
    let scale = _mm512_castsi512_pd(_mm512_slli_epi64::<52>(_mm512_add_epi64(ni, _mm512_set1_epi64(1023))));
    let y = _mm512_mul_pd(p, scale);
    let small = _mm512_cmp_pd_mask::<_CMP_LT_OQ>(x, _mm512_set1_pd(EXP_FLUSH));
    let y = _mm512_mask_blend_pd(small, y, _mm512_setzero_pd());
    let nan = _mm512_cmp_pd_mask::<_CMP_UNORD_Q>(x, x);
    _mm512_mask_blend_pd(nan, y, x)
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn exp_nonpos_256(x: __m256d) -> __m256d {
    let magic = _mm256_set1_pd(MAGIC);
    let t = _mm256_fmadd_pd(x, _mm256_set1_pd(LOG2E), magic);
    let n = _mm256_sub_pd(t, magic);
    let r = _mm256_fnmadd_pd(n, _mm256_set1_pd(LN2_HI), x);
    let r = _mm256_fnmadd_pd(n, _mm256_set1_pd(LN2_LO), r);
    // Estrin's scheme: pairs `c₂ⱼ + c₂ⱼ₊₁·r`, joined by r², r⁴ and r⁸. Four levels of FMAs
    // instead of Horner's chain of thirteen (4 cycles each), which bounded the loop on Zen 3.
    let c = |k: usize| _mm256_set1_pd(COEF[13 - k]);
    let (r2, q): (__m256d, [__m256d; 7]) =
        (_mm256_mul_pd(r, r), std::array::from_fn(|j| _mm256_fmadd_pd(c(2 * j + 1), r, c(2 * j))));
    let r4 = _mm256_mul_pd(r2, r2);
    let s =
        [_mm256_fmadd_pd(q[1], r2, q[0]), _mm256_fmadd_pd(q[3], r2, q[2]), _mm256_fmadd_pd(q[5], r2, q[4])];
    let t0 = _mm256_fmadd_pd(s[1], r4, s[0]);
    let t1 = _mm256_fmadd_pd(q[6], r4, s[2]);
    let p = _mm256_fmadd_pd(t1, _mm256_mul_pd(r4, r4), t0);
    let ni = _mm256_sub_epi64(_mm256_castpd_si256(t), _mm256_castpd_si256(magic));
    let scale = _mm256_castsi256_pd(_mm256_slli_epi64::<52>(_mm256_add_epi64(ni, _mm256_set1_epi64x(1023))));
    let y = _mm256_mul_pd(p, scale);
    let small = _mm256_cmp_pd::<_CMP_LT_OQ>(x, _mm256_set1_pd(EXP_FLUSH));
    let y = _mm256_blendv_pd(y, _mm256_setzero_pd(), small);
    let nan = _mm256_cmp_pd::<_CMP_UNORD_Q>(x, x);
    _mm256_blendv_pd(y, x, nan)
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn sigmoid_avx512(x: &[f32], out: &mut [f32]) -> usize {
    let sign = _mm512_set1_epi64(i64::MIN);
    let one = _mm512_set1_pd(1.0);
    let mut i = 0;
    while i + 8 <= x.len() {
        // SAFETY: i + 8 ≤ len.
        let xd = _mm512_cvtps_pd(unsafe { _mm256_loadu_ps(x.as_ptr().add(i)) });
        let e = exp_nonpos_512(_mm512_castsi512_pd(_mm512_or_si512(_mm512_castpd_si512(xd), sign)));
        let d = _mm512_add_pd(one, e);
        // 1/d for x ≥ 0, e/d otherwise: one division of the selected numerator (a division
        // costs more than the rest of the element).
        let pos = _mm512_cmp_pd_mask::<_CMP_GE_OQ>(xd, _mm512_setzero_pd());
        let s = _mm512_div_pd(_mm512_mask_blend_pd(pos, e, one), d);
        // SAFETY: as above.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(i), _mm512_cvtpd_ps(s)) };
        i += 8;
    }
    i
}

#[target_feature(enable = "avx2,fma")]
unsafe fn sigmoid_avx2(x: &[f32], out: &mut [f32]) -> usize {
    let sign = _mm256_set1_pd(-0.0);
    let one = _mm256_set1_pd(1.0);
    let mut i = 0;
    while i + 4 <= x.len() {
        // SAFETY: i + 4 ≤ len.
        let xd = _mm256_cvtps_pd(unsafe { _mm_loadu_ps(x.as_ptr().add(i)) });
        let e = exp_nonpos_256(_mm256_or_pd(xd, sign));
        let d = _mm256_add_pd(one, e);
        // As in `sigmoid_avx512`: one division of the selected numerator.
        let pos = _mm256_cmp_pd::<_CMP_GE_OQ>(xd, _mm256_setzero_pd());
        let s = _mm256_div_pd(_mm256_blendv_pd(e, one, pos), d);
        // SAFETY: as above.
        unsafe { _mm_storeu_ps(out.as_mut_ptr().add(i), _mm256_cvtpd_ps(s)) };
        i += 4;
    }
    i
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn exp_shifted_avx512(x: &[f32], shift: f64, out: &mut [f64]) -> usize {
    let sh = _mm512_set1_pd(shift);
    let mut i = 0;
    while i + 8 <= x.len() {
        // SAFETY: i + 8 ≤ len.
        let arg = _mm512_sub_pd(_mm512_cvtps_pd(unsafe { _mm256_loadu_ps(x.as_ptr().add(i)) }), sh);
        // SAFETY: as above.
        unsafe { _mm512_storeu_pd(out.as_mut_ptr().add(i), exp_nonpos_512(arg)) };
        if _mm512_cmp_pd_mask::<_CMP_GT_OQ>(arg, _mm512_setzero_pd()) != 0 {
            for j in i..i + 8 {
                out[j] = (x[j] as f64 - shift).exp();
            }
        }
        i += 8;
    }
    i
}

#[target_feature(enable = "avx2,fma")]
unsafe fn exp_shifted_avx2(x: &[f32], shift: f64, out: &mut [f64]) -> usize {
    let sh = _mm256_set1_pd(shift);
    let mut i = 0;
    while i + 4 <= x.len() {
        // SAFETY: i + 4 ≤ len.
        let arg = _mm256_sub_pd(_mm256_cvtps_pd(unsafe { _mm_loadu_ps(x.as_ptr().add(i)) }), sh);
        // SAFETY: as above.
        unsafe { _mm256_storeu_pd(out.as_mut_ptr().add(i), exp_nonpos_256(arg)) };
        if _mm256_movemask_pd(_mm256_cmp_pd::<_CMP_GT_OQ>(arg, _mm256_setzero_pd())) != 0 {
            for j in i..i + 4 {
                out[j] = (x[j] as f64 - shift).exp();
            }
        }
        i += 4;
    }
    i
}
