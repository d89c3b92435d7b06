//! Round-to-nearest affine quantization of a run of weights that share one scale and zero
//! point, with the decoded weights in the same pass: ONNX `QuantizeLinear` as smelt's INT8
//! (per channel) computes it, and GPTQ's `quantize` as its block int4 does, for `smelt
//! convert`.
//!
//! Per weight `x`: `q = round_half_even(x / scale) + zero`; the code is `zero_code` when `q` is
//! NaN, else `clamp(q, lo, hi)` as an integer; its stored byte is the code's low byte (two's
//! complement for negative codes); the decoded weight is `(code - zero_code) as f32 * scale`.
//! [`quantize_affine_scalar`] is that formula, written for clarity: the reference.
//!
//! `x / scale` is a true division, which is what the references divide by (ORT's MLAS and
//! GPTQ), and the division is the slowest instruction of the loop (on AVX-512, one per sixteen
//! weights every ten cycles or so). The SIMD kernels multiply by `r = 1/scale` instead and keep
//! the result only where it provably rounds to the same integer as the quotient:
//! - `r` is the correctly rounded reciprocal and (checked once per run) a normal float, so
//!   `x·r = (x/scale)(1 + δ₁)` with `|δ₁| ≤ 2⁻²⁴`; the product is rounded once more
//!   (`|δ₂| ≤ 2⁻²⁴`) and the quotient the reference rounds is itself `(x/scale)(1 + δ₃)`,
//!   `|δ₃| ≤ 2⁻²⁴`. So `y = fl(x·r)` and `fl(x/scale)` differ by less than `4·2⁻²⁴·|x/scale|`
//!   (an underflowed product differs by less than 2⁻¹⁴⁹, and then `|y|` is far from ½);
//! - where `|y| < 2⁹` that is below 2⁻¹³, so where `y` is farther than 2⁻¹² from every
//!   half-integer (`|y − rne(y)| < ½ − 2⁻¹²`, the subtraction exact), the quotient lies
//!   strictly inside the same interval around the same integer, and both round to it (with
//!   the same sign of zero: `y` and the quotient have `x`'s sign);
//! - a group of lanes where either test fails (a weight near a tie, a large or non-finite
//!   quotient) is computed again with the true division, as the reference. On real weights
//!   that is about one group in a few hundred.
//!
//! The remaining steps are the reference's own: `+ zero` (one rounded f32 addition), a
//! NaN test, the clamp, an exact conversion of the integral result, and the decoded weight from
//! the integer code. So every kernel gives the reference's bytes and bits for every input;
//! the tests compare them on ties, signed zeros, subnormals, huge and non-finite weights and
//! scales, and lengths around the vector width.

use crate::dispatch::Isa;

/// The parameters a run of weights shares.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AffineParams {
    /// The divisor.
    pub scale: f32,
    /// Added to the rounded quotient (as f32).
    pub zero: f32,
    /// The code of a NaN result, and the integer subtracted from a code to decode it.
    pub zero_code: i32,
    /// Smallest code (integral, with `lo <= hi`).
    pub lo: f32,
    /// Largest code (integral, within `i32`).
    pub hi: f32,
}

/// The reference: the formula of the module documentation, weight by weight.
///
/// Panics when the lengths differ or `lo > hi`.
pub fn quantize_affine_scalar(x: &[f32], p: AffineParams, codes: &mut [u8], decoded: &mut [f32]) {
    assert!(codes.len() == x.len() && decoded.len() == x.len(), "affine run lengths");
    assert!(p.lo <= p.hi, "affine clamp range");
    for ((&v, c), y) in x.iter().zip(codes.iter_mut()).zip(decoded.iter_mut()) {
        let q = (v / p.scale).round_ties_even() + p.zero;
        let code = if q.is_nan() { p.zero_code } else { q.clamp(p.lo, p.hi) as i32 };
        *c = code as u8;
        *y = (code - p.zero_code) as f32 * p.scale;
    }
}

/// [`quantize_affine_scalar`] at instruction set `isa`: the same bytes and bits. Returns
/// `false`, writing nothing, when `isa` (or the CPU) has no kernel for it (scalar, NEON): the
/// caller runs the reference.
///
/// Panics when the lengths differ or `lo > hi`.
pub fn quantize_affine_with(
    isa: Isa,
    x: &[f32],
    p: AffineParams,
    codes: &mut [u8],
    decoded: &mut [f32],
) -> bool {
    quantize_affine_groups_with(isa, x, x.len().max(1), &[p], codes, decoded)
}

/// [`quantize_affine_with`] over consecutive groups of `group` weights (the last may be
/// shorter), group `g` with `params[g]`: one call for the many small groups of a block int4
/// row, or the rows of a per-channel INT8 piece.
///
/// Panics when the lengths differ, `group` is 0, `params` has fewer entries than groups, or
/// a group's `lo > hi`.
pub fn quantize_affine_groups_with(
    isa: Isa,
    x: &[f32],
    group: usize,
    params: &[AffineParams],
    codes: &mut [u8],
    decoded: &mut [f32],
) -> bool {
    assert!(codes.len() == x.len() && decoded.len() == x.len(), "affine run lengths");
    assert!(group > 0 && params.len() >= x.len().div_ceil(group), "a parameter set per group");
    assert!(params.iter().all(|p| p.lo <= p.hi), "affine clamp range");
    #[cfg(target_arch = "x86_64")]
    {
        let kernel: fn(&[f32], AffineParams, &mut [u8], &mut [f32]) = match isa.or_scalar() {
            // SAFETY: `or_scalar` confirmed the CPU features.
            Isa::Avx512 | Isa::Avx512Vnni => {
                |x: &[f32], p, c: &mut [u8], d: &mut [f32]| unsafe { x86::affine_avx512(x, p, c, d) }
            }
            // SAFETY: as above.
            Isa::Avx2 | Isa::AvxVnni => {
                |x: &[f32], p, c: &mut [u8], d: &mut [f32]| unsafe { x86::affine_avx2(x, p, c, d) }
            }
            _ => return false,
        };
        let groups = x.chunks(group).zip(codes.chunks_mut(group)).zip(decoded.chunks_mut(group));
        for (((x, c), d), &p) in groups.zip(params) {
            kernel(x, p, c, d);
        }
        true
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (isa, x, group, params, codes, decoded);
        false
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::AffineParams;
    use std::arch::x86_64::*;

    /// `|y|` must be below this for the product to be trusted.
    const BOUND: f32 = 512.0;
    /// `|y − rne(y)|` must be below this (½ − 2⁻¹²).
    const NOT_TIE: f32 = 0.5 - 1.0 / 4096.0;
    const RNE: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

    /// `1/scale`, whether the fast path may be taken (a normal reciprocal, so that the error
    /// bound holds; a finite zero; small codes), and the zero made `+0.0` if it was `-0.0`
    /// (which changes no code: it only decides the sign of a zero sum, and every code is an
    /// integer) so that on the fast path the decoded `(c − zero_code)·scale`, computed in f32
    /// from the clamped float `c`, is never `-0.0·scale`. The clamp bounds are made `+0.0`
    /// likewise (`maxps` returns its second operand for two zeros).
    #[inline(always)]
    fn setup(p: &AffineParams) -> (f32, bool, f32) {
        let r = 1.0 / p.scale;
        // Codes and zero code within 2²² keep `c − zero_code` exact in f32.
        let small = |v: f32| v.abs() < 4_194_304.0;
        let exact = small(p.lo) && small(p.hi) && p.zero_code.unsigned_abs() < 1 << 22;
        (r, r.is_normal() && p.zero.is_finite() && exact, p.zero + 0.0)
    }

    /// Sixteen weights at a time; the last few under a mask.
    ///
    /// # Safety
    /// AVX-512 F/BW/VL; `codes` and `decoded` as long as `x`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(super) unsafe fn affine_avx512(x: &[f32], p: AffineParams, codes: &mut [u8], decoded: &mut [f32]) {
        let (r, fast, zero) = setup(&p);
        let (rv, scale, zero) = (_mm512_set1_ps(r), _mm512_set1_ps(p.scale), _mm512_set1_ps(zero));
        let (lo, hi) = (_mm512_set1_ps(p.lo + 0.0), _mm512_set1_ps(p.hi + 0.0));
        let (zc, zcf) = (_mm512_set1_epi32(p.zero_code), _mm512_set1_ps(p.zero_code as f32));
        let (bound, not_tie) = (_mm512_set1_ps(BOUND), _mm512_set1_ps(NOT_TIE));
        // Lanes `m` of sixteen at `i`: the product where it is trusted, else the division.
        let group = |i: usize, m: __mmask16, codes: &mut [u8], decoded: &mut [f32]| {
            // SAFETY: the mask covers lanes i .. min(i + 16, len), inside the slices.
            let v = unsafe { _mm512_maskz_loadu_ps(m, x.as_ptr().add(i)) };
            if fast {
                let y = _mm512_mul_ps(v, rv);
                let k = _mm512_roundscale_ps::<RNE>(y);
                let f = _mm512_abs_ps(_mm512_sub_ps(y, k));
                let good = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(_mm512_abs_ps(y), bound)
                    & _mm512_cmp_ps_mask::<_CMP_LT_OQ>(f, not_tie);
                if good & m == m {
                    // Finite and small: q is finite, no NaN test.
                    let c = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(k, zero), lo), hi);
                    let y = _mm512_mul_ps(_mm512_sub_ps(c, zcf), scale);
                    // SAFETY: as the load.
                    unsafe {
                        _mm512_mask_cvtepi32_storeu_epi8(
                            codes.as_mut_ptr().add(i).cast(),
                            m,
                            _mm512_cvttps_epi32(c),
                        );
                        _mm512_mask_storeu_ps(decoded.as_mut_ptr().add(i), m, y);
                    }
                    return;
                }
            }
            let q = _mm512_add_ps(_mm512_roundscale_ps::<RNE>(_mm512_div_ps(v, scale)), zero);
            let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(q, q);
            let c = _mm512_min_ps(_mm512_max_ps(q, lo), hi);
            let c = _mm512_mask_mov_epi32(_mm512_cvttps_epi32(c), nan, zc);
            let y = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(c, zc)), scale);
            // SAFETY: as the load.
            unsafe {
                _mm512_mask_cvtepi32_storeu_epi8(codes.as_mut_ptr().add(i).cast(), m, c);
                _mm512_mask_storeu_ps(decoded.as_mut_ptr().add(i), m, y);
            }
        };
        let n = x.len();
        let whole = n / 16 * 16;
        for i in (0..whole).step_by(16) {
            group(i, 0xffff, codes, decoded);
        }
        if whole < n {
            group(whole, (1u16 << (n - whole)) - 1, codes, decoded);
        }
    }

    /// Eight weights at a time; the last few by the reference.
    ///
    /// # Safety
    /// AVX2; `codes` and `decoded` as long as `x`.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn affine_avx2(x: &[f32], p: AffineParams, codes: &mut [u8], decoded: &mut [f32]) {
        let (r, fast, zero) = setup(&p);
        let abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
        let (rv, scale, zero) = (_mm256_set1_ps(r), _mm256_set1_ps(p.scale), _mm256_set1_ps(zero));
        let (lo, hi) = (_mm256_set1_ps(p.lo), _mm256_set1_ps(p.hi));
        let zc = _mm256_set1_epi32(p.zero_code);
        let (bound, not_tie) = (_mm256_set1_ps(BOUND), _mm256_set1_ps(NOT_TIE));
        // Byte 0 of each 32-bit lane to the lane's first four bytes.
        let low_bytes = _mm256_setr_epi8(
            0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 4, 8, 12, -1, -1, -1, -1, -1, -1,
            -1, -1, -1, -1, -1, -1,
        );
        let whole = x.len() / 8 * 8;
        for i in (0..whole).step_by(8) {
            // SAFETY: i + 8 <= whole <= the slices' length.
            let v = unsafe { _mm256_loadu_ps(x.as_ptr().add(i)) };
            let mut k = _mm256_setzero_ps();
            let mut good = false;
            if fast {
                let y = _mm256_mul_ps(v, rv);
                k = _mm256_round_ps::<RNE>(y);
                let f = _mm256_and_ps(_mm256_sub_ps(y, k), abs);
                let ok = _mm256_and_ps(
                    _mm256_cmp_ps::<_CMP_LT_OQ>(_mm256_and_ps(y, abs), bound),
                    _mm256_cmp_ps::<_CMP_LT_OQ>(f, not_tie),
                );
                good = _mm256_movemask_ps(ok) == 0xff;
            }
            if !good {
                k = _mm256_round_ps::<RNE>(_mm256_div_ps(v, scale));
            }
            let q = _mm256_add_ps(k, zero);
            let nan = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_UNORD_Q>(q, q));
            let c = _mm256_min_ps(_mm256_max_ps(q, lo), hi);
            let c = _mm256_blendv_epi8(_mm256_cvttps_epi32(c), zc, nan);
            let y = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(c, zc)), scale);
            let b = _mm256_shuffle_epi8(c, low_bytes);
            let b = _mm_unpacklo_epi32(_mm256_castsi256_si128(b), _mm256_extracti128_si256::<1>(b));
            // SAFETY: as the load; eight code bytes at i.
            unsafe {
                _mm_storel_epi64(codes.as_mut_ptr().add(i).cast(), b);
                _mm256_storeu_ps(decoded.as_mut_ptr().add(i), y);
            }
        }
        super::quantize_affine_scalar(&x[whole..], p, &mut codes[whole..], &mut decoded[whole..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Weights of every kind that matter: ties of the quotient and their neighbours, signed
    /// zeros, subnormals, huge values, infinities and NaN.
    fn awkward(scale: f32) -> Vec<f32> {
        let mut v = Vec::new();
        for k in -300..300 {
            let h = (k as f32 + 0.5) * scale;
            for d in -3i32..=3 {
                v.push(f32::from_bits((h.to_bits() as i32 + d) as u32));
            }
            v.push(k as f32 * scale);
        }
        v.extend([0.0, -0.0, 1e-45, -1e-45, 1e-39, f32::MIN_POSITIVE, 3e38, -3e38, f32::MAX]);
        v.extend([f32::INFINITY, f32::NEG_INFINITY, f32::NAN, -f32::NAN]);
        let mut x = 0x2545_f491u32;
        for _ in 0..3000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            v.push((x as f32 / u32::MAX as f32 - 0.5) * 300.0 * scale);
        }
        v
    }

    fn params() -> Vec<AffineParams> {
        let mut out = Vec::new();
        for scale in
            [0.0123f32, 1.0 / 127.0, 3.7e-5, 1.0, 2.0 / 15.0, 1e-39, 2e38, 0.0, f32::INFINITY, f32::NAN]
        {
            // INT8 symmetric and asymmetric, int4 symmetric and asymmetric (a -0.0 zero too).
            out.push(AffineParams { scale, zero: 0.0, zero_code: 0, lo: -128.0, hi: 127.0 });
            out.push(AffineParams { scale, zero: 37.0, zero_code: 37, lo: 0.0, hi: 255.0 });
            out.push(AffineParams { scale, zero: 8.0, zero_code: 8, lo: 0.0, hi: 15.0 });
            out.push(AffineParams { scale, zero: -0.0, zero_code: 0, lo: 0.0, hi: 15.0 });
        }
        out.push(AffineParams { scale: 0.5, zero: f32::NAN, zero_code: 0, lo: 0.0, hi: 15.0 });
        out.push(AffineParams { scale: 0.01, zero: -0.0, zero_code: 0, lo: -0.0, hi: 15.0 });
        out.push(AffineParams { scale: 0.01, zero: 0.0, zero_code: 0, lo: -15.0, hi: -0.0 });
        out.push(AffineParams { scale: 0.01, zero: 3.0, zero_code: 1 << 23, lo: 0.0, hi: 20.0 });
        out.push(AffineParams { scale: 0.01, zero: 3.0, zero_code: 3, lo: -9e6, hi: 9e6 });
        out.push(AffineParams { scale: 0.5, zero: f32::INFINITY, zero_code: 3, lo: 0.0, hi: 15.0 });
        out
    }

    /// Every kernel the CPU has gives the reference's bytes and bits, for every length from
    /// 0 to 40 and at every offset of the awkward weights, with every kind of parameters.
    #[test]
    fn every_kernel_matches_the_reference() {
        for isa in Isa::ALL {
            if !isa.is_available() || isa == Isa::Scalar {
                eprintln!("affine: {isa} skipped (not on this CPU)");
                continue;
            }
            if !cfg!(target_arch = "x86_64") {
                // No kernel here (NEON): the call says so and writes nothing; callers run the
                // reference.
                let (mut c, mut d) = (vec![0xa5u8; 3], vec![7f32; 3]);
                assert!(!quantize_affine_with(isa, &[1.0, 2.0, 3.0], params()[0], &mut c, &mut d), "{isa}");
                assert!(c == [0xa5; 3] && d == [7.0; 3], "{isa}: wrote without a kernel");
                continue;
            }
            for p in params() {
                let mut x = awkward(if p.scale.is_normal() { p.scale } else { 0.01 });
                if p.scale == 0.0 {
                    x.extend([0.0, -0.0]);
                }
                let check = |x: &[f32]| {
                    let (mut c0, mut d0) = (vec![0u8; x.len()], vec![0f32; x.len()]);
                    let (mut c1, mut d1) = (vec![0xa5u8; x.len()], vec![7f32; x.len()]);
                    quantize_affine_scalar(x, p, &mut c0, &mut d0);
                    assert!(quantize_affine_with(isa, x, p, &mut c1, &mut d1), "{isa}");
                    assert_eq!(c0, c1, "{isa} {p:?} codes");
                    let bits = |d: &[f32]| d.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&d0), bits(&d1), "{isa} {p:?} decoded");
                };
                check(&x);
                for len in 0..=40 {
                    for start in (0..x.len().saturating_sub(len)).step_by(97) {
                        check(&x[start..start + len]);
                    }
                }
            }
        }
    }

    /// Groups take their own parameters, the last group shorter.
    #[test]
    fn groups_take_their_own_parameters() {
        let ps = params();
        let x = awkward(0.01);
        for group in [1usize, 5, 16, 33, 128] {
            let x = &x[..(x.len() / group - 1) * group + group / 2 + 1];
            let groups = x.len().div_ceil(group);
            let p: Vec<AffineParams> = (0..groups).map(|g| ps[g * 7 % ps.len()]).collect();
            let (mut c0, mut d0) = (vec![0u8; x.len()], vec![0f32; x.len()]);
            for (((x, c), d), &p) in
                x.chunks(group).zip(c0.chunks_mut(group)).zip(d0.chunks_mut(group)).zip(&p)
            {
                quantize_affine_scalar(x, p, c, d);
            }
            for isa in Isa::ALL.into_iter().filter(|i| i.is_available()) {
                let (mut c1, mut d1) = (vec![0u8; x.len()], vec![0f32; x.len()]);
                if !quantize_affine_groups_with(isa, x, group, &p, &mut c1, &mut d1) {
                    assert!(matches!(isa, Isa::Scalar | Isa::Neon | Isa::NeonDot), "{isa} has a kernel");
                    continue;
                }
                assert_eq!(c0, c1, "{isa} group {group}");
                let bits = |d: &[f32]| d.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&d0), bits(&d1), "{isa} group {group}");
            }
        }
    }

    #[test]
    fn all_zero_runs_decode_to_zero() {
        let p = AffineParams { scale: 1.0, zero: 0.0, zero_code: 0, lo: -128.0, hi: 127.0 };
        for isa in Isa::ALL.into_iter().filter(|i| i.is_available()) {
            let x = [0.0f32; 35];
            let (mut c, mut d) = (vec![9u8; 35], vec![9f32; 35]);
            if !quantize_affine_with(isa, &x, p, &mut c, &mut d) {
                quantize_affine_scalar(&x, p, &mut c, &mut d);
            }
            assert!(c.iter().all(|&b| b == 0) && d.iter().all(|v| v.to_bits() == 0), "{isa}");
        }
    }
}
