//! ONNX `DynamicQuantizeLinear` on f32 data: the range `[min(0, x), max(0, x)]` (NaN skipped),
//! `scale = (max - min) / 255`, `zero_point = clamp(round(-min / scale), 0, 255)` and
//! `q = clamp(round(x / scale) + zero_point, 0, 255)`, rounding half to even, a zero scale
//! giving `q = zero_point` everywhere ([`dynamic_quantize_u8`]).
//!
//! Every step is an exactly rounded IEEE operation (min, max, one subtraction, one division,
//! a rounding to an integer, one addition, a clamp), so the SIMD versions (the range kept in
//! vectors of running minima and maxima; the codes by AVX-512's conversion to nearest even
//! and an integer clamp, or the lane loop compiled for AVX2: see `x86` below) give the scalar
//! reference's bits. The only freedom, which of `+0` and `-0` a min or max returns, changes
//! neither the scale, the zero point nor any code. Long inputs are split over rayon's pool in
//! fixed chunks: min and max are exact whatever the split.

use rayon::prelude::*;

use crate::dispatch::{selected, Isa};

/// Elements per task, and below twice this the call stays on the calling thread.
const CHUNK: usize = 1 << 15;
/// Lanes of the range fold (one AVX-512 register of f32).
const LANES: usize = 16;

/// Quantizes `x` into `q` as ONNX `DynamicQuantizeLinear` does (see the module doc); returns
/// `(scale, zero_point)`.
///
/// # Panics
/// When `q.len() != x.len()`.
pub fn dynamic_quantize_u8(x: &[f32], q: &mut [u8]) -> (f32, u8) {
    dynamic_quantize_u8_with(selected().float, x, q)
}

/// [`dynamic_quantize_u8`] on a chosen instruction set (scalar when the CPU lacks it).
///
/// # Panics
/// As [`dynamic_quantize_u8`].
pub fn dynamic_quantize_u8_with(isa: Isa, x: &[f32], q: &mut [u8]) -> (f32, u8) {
    assert_eq!(x.len(), q.len(), "dynamic_quantize_u8: {} inputs, {} outputs", x.len(), q.len());
    let isa = isa.or_scalar();
    if isa == Isa::Scalar {
        return reference(x, q);
    }
    let (lo, hi) = if x.len() < 2 * CHUNK {
        range(isa, x)
    } else {
        x.par_chunks(CHUNK).map(|c| range(isa, c)).reduce(|| (0.0, 0.0), |a, b| (a.0.min(b.0), a.1.max(b.1)))
    };
    let (scale, zp) = params(lo, hi);
    if x.len() < 2 * CHUNK {
        quantize(isa, x, scale, zp, q);
    } else {
        x.par_chunks(CHUNK).zip(q.par_chunks_mut(CHUNK)).for_each(|(x, q)| quantize(isa, x, scale, zp, q));
    }
    (scale, zp as u8)
}

/// The scalar reference: the definition, element by element.
fn reference(x: &[f32], q: &mut [u8]) -> (f32, u8) {
    let (lo, hi) = x.iter().fold((0.0f32, 0.0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let (scale, zp) = params(lo, hi);
    for (o, &v) in q.iter_mut().zip(x) {
        *o = code(v, scale, zp);
    }
    (scale, zp as u8)
}

/// Scale and zero point (as an f32 integer) of the range `[lo, hi]` (`lo ≤ 0 ≤ hi`).
fn params(lo: f32, hi: f32) -> (f32, f32) {
    let scale = (hi - lo) / 255.0;
    let zp = if scale == 0.0 { 0.0 } else { round_even((0.0 - lo) / scale).clamp(0.0, 255.0) };
    (scale, zp)
}

/// One element's code.
#[inline(always)]
fn code(v: f32, scale: f32, zp: f32) -> u8 {
    if scale == 0.0 {
        zp as u8
    } else {
        (round_even(v / scale) + zp).clamp(0.0, 255.0) as u8
    }
}

/// Round half to even without a libm call (baseline x86-64 has no `roundps`); the same
/// function as `smelt_quant::rounding::round_half_even`, which this crate cannot use (smelt-quant
/// depends on it). Below 2²³,
/// adding and removing 2²³ with `x`'s sign rounds to an integer in the default rounding mode;
/// from 2²³ on (and for Inf and NaN) `x` is integral.
#[inline(always)]
pub(crate) fn round_even(x: f32) -> f32 {
    const TWO_23: f32 = 8_388_608.0;
    if x.abs() < TWO_23 {
        let big = TWO_23.copysign(x);
        ((x + big) - big).copysign(x)
    } else {
        x
    }
}

/// `[min(0, x), max(0, x)]` of one chunk, kept per lane so that it vectorizes.
#[inline(always)]
fn range_lanes(x: &[f32]) -> (f32, f32) {
    let (mut lo, mut hi) = ([0.0f32; LANES], [0.0f32; LANES]);
    let mut it = x.chunks_exact(LANES);
    for c in &mut it {
        for i in 0..LANES {
            // A NaN compares false and leaves the lane as it was (f32::min/max skip it too).
            lo[i] = if c[i] < lo[i] { c[i] } else { lo[i] };
            hi[i] = if c[i] > hi[i] { c[i] } else { hi[i] };
        }
    }
    for (i, &v) in it.remainder().iter().enumerate() {
        lo[i] = if v < lo[i] { v } else { lo[i] };
        hi[i] = if v > hi[i] { v } else { hi[i] };
    }
    (lo.iter().fold(0.0f32, |a, &b| a.min(b)), hi.iter().fold(0.0f32, |a, &b| a.max(b)))
}

#[inline(always)]
fn quantize_lanes(x: &[f32], scale: f32, zp: f32, q: &mut [u8]) {
    if scale == 0.0 {
        q.fill(zp as u8);
        return;
    }
    for (o, &v) in q.iter_mut().zip(x) {
        // `clamp(0, 255) as u8` spelled so that it vectorizes (a saturating `as u8` does
        // not): NaN fails `r > 0` and becomes 0, as `NaN as u8` is.
        let r = round_even(v / scale) + zp;
        let r = if r > 0.0 { r } else { 0.0 };
        let r = if r < 255.0 { r } else { 255.0 };
        // SAFETY: `r` is an integer in 0..=255 (rounded, plus an integral `zp`), which i32 holds.
        *o = unsafe { r.to_int_unchecked::<i32>() } as u8;
    }
}

fn range(isa: Isa, x: &[f32]) -> (f32, f32) {
    match isa {
        // SAFETY: `isa` went through `or_scalar`, so the CPU has these features.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 | Isa::Avx512Vnni => unsafe { x86::range_avx512(x) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 | Isa::AvxVnni => unsafe { x86::range_avx2(x) },
        _ => range_lanes(x),
    }
}

fn quantize(isa: Isa, x: &[f32], scale: f32, zp: f32, q: &mut [u8]) {
    match isa {
        // SAFETY: as in `range`.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 | Isa::Avx512Vnni => unsafe { x86::quantize_avx512(x, scale, zp, q) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 | Isa::AvxVnni => unsafe { x86::quantize_avx2(x, scale, zp, q) },
        _ => quantize_lanes(x, scale, zp, q),
    }
}

/// The x86 kernels. The ranges keep four vectors of running minima and maxima each
/// (`vminps(v, lo)` is `v < lo ? v : lo`, the lane loop's own selection, NaN keeping `lo`);
/// the compiler's vectorization of the lane loop shuffled every step. AVX-512's codes
/// convert `round(x / scale)` to an integer by the conversion's own rounding to nearest even
/// (the division exact, as the reference's), add the zero point and clamp as integers: the
/// same code, as `round(x / scale)` is an integer of at most a few hundred and adding the
/// integral zero point is exact in f32 too. NaN converts to `i32::MIN` and clamps to 0, as
/// the reference's NaN does. A zero point that is not a number (both infinities in the
/// input) takes the lane loop.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Folds the lanes' bounds and the tail's elements into the range (`lo ≤ 0 ≤ hi`).
    fn finish(lanes_lo: &[f32], lanes_hi: &[f32], tail: &[f32]) -> (f32, f32) {
        let (lo, hi) = super::range_lanes(tail);
        let lo = lanes_lo.iter().fold(lo, |a, &b| a.min(b));
        let hi = lanes_hi.iter().fold(hi, |a, &b| a.max(b));
        (lo, hi)
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn range_avx512(x: &[f32]) -> (f32, f32) {
        let mut lo = [_mm512_setzero_ps(); 4];
        let mut hi = [_mm512_setzero_ps(); 4];
        let mut it = x.chunks_exact(64);
        for c in &mut it {
            for i in 0..4 {
                // SAFETY: `c` holds 64 elements.
                let v = unsafe { _mm512_loadu_ps(c.as_ptr().add(16 * i)) };
                lo[i] = _mm512_min_ps(v, lo[i]);
                hi[i] = _mm512_max_ps(v, hi[i]);
            }
        }
        let (mut l, mut h) = ([0f32; 64], [0f32; 64]);
        for i in 0..4 {
            // SAFETY: 16 elements at 16·i of 64.
            unsafe {
                _mm512_storeu_ps(l.as_mut_ptr().add(16 * i), lo[i]);
                _mm512_storeu_ps(h.as_mut_ptr().add(16 * i), hi[i]);
            }
        }
        finish(&l, &h, it.remainder())
    }

    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn range_avx2(x: &[f32]) -> (f32, f32) {
        let mut lo = [_mm256_setzero_ps(); 4];
        let mut hi = [_mm256_setzero_ps(); 4];
        let mut it = x.chunks_exact(32);
        for c in &mut it {
            for i in 0..4 {
                // SAFETY: `c` holds 32 elements.
                let v = unsafe { _mm256_loadu_ps(c.as_ptr().add(8 * i)) };
                lo[i] = _mm256_min_ps(v, lo[i]);
                hi[i] = _mm256_max_ps(v, hi[i]);
            }
        }
        let (mut l, mut h) = ([0f32; 32], [0f32; 32]);
        for i in 0..4 {
            // SAFETY: 8 elements at 8·i of 32.
            unsafe {
                _mm256_storeu_ps(l.as_mut_ptr().add(8 * i), lo[i]);
                _mm256_storeu_ps(h.as_mut_ptr().add(8 * i), hi[i]);
            }
        }
        finish(&l, &h, it.remainder())
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
    pub(super) unsafe fn quantize_avx512(x: &[f32], scale: f32, zp: f32, q: &mut [u8]) {
        if scale == 0.0 || zp.is_nan() {
            super::quantize_lanes(x, scale, zp, q);
            return;
        }
        let (s, z) = (_mm512_set1_ps(scale), _mm512_set1_epi32(zp as i32));
        let (zero, top) = (_mm512_setzero_si512(), _mm512_set1_epi32(255));
        let n = x.len().min(q.len());
        let mut i = 0;
        while i + 16 <= n {
            // SAFETY: elements i..i + 16 of both (i + 16 ≤ n).
            unsafe {
                let v = _mm512_div_ps(_mm512_loadu_ps(x.as_ptr().add(i)), s);
                let r = _mm512_cvt_roundps_epi32::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v);
                let c = _mm512_min_epi32(_mm512_max_epi32(_mm512_add_epi32(r, z), zero), top);
                _mm_storeu_si128(q.as_mut_ptr().add(i).cast(), _mm512_cvtepi32_epi8(c));
            }
            i += 16;
        }
        super::quantize_lanes(&x[i..], scale, zp, &mut q[i..]);
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn quantize_avx2(x: &[f32], scale: f32, zp: f32, q: &mut [u8]) {
        super::quantize_lanes(x, scale, zp, q)
    }
}
