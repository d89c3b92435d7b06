//! ONNX `DynamicQuantizeLinear` on f32 data: the range `[min(0, x), max(0, x)]` (NaN skipped),
//! `scale = (max - min) / 255`, `zero_point = clamp(round(-min / scale), 0, 255)` and
//! `q = clamp(round(x / scale) + zero_point, 0, 255)`, rounding half to even, a zero scale
//! giving `q = zero_point` everywhere ([`dynamic_quantize_u8`]).
//!
//! Every step is an exactly rounded IEEE operation (min, max, one subtraction, one division,
//! a rounding to an integer, one addition, a clamp), so the SIMD versions, which are the same
//! loops compiled for wider registers with the range kept per lane, give the scalar
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

/// The lane loops compiled for AVX-512 and AVX2 (the compiler vectorizes them; no FMA can
/// appear: Rust never contracts a multiply and an add).
#[cfg(target_arch = "x86_64")]
mod x86 {
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
    pub(super) unsafe fn range_avx512(x: &[f32]) -> (f32, f32) {
        super::range_lanes(x)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn range_avx2(x: &[f32]) -> (f32, f32) {
        super::range_lanes(x)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
    pub(super) unsafe fn quantize_avx512(x: &[f32], scale: f32, zp: f32, q: &mut [u8]) {
        super::quantize_lanes(x, scale, zp, q)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn quantize_avx2(x: &[f32], scale: f32, zp: f32, q: &mut [u8]) {
        super::quantize_lanes(x, scale, zp, q)
    }
}
