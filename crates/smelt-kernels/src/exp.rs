//! `exp` in f64 for the runtime's float activations, whose results are computed in f64 and
//! rounded to f32: the logistic sigmoid ([`sigmoid_f32`]) and softmax's exponentials
//! ([`exp_shifted_f64`], `exp(x - max) ≤ 1`). Both only ever need `exp` of a non-positive
//! argument.
//!
//! Scalar reference: the platform's `f64::exp` (libm, correctly rounded or within an ulp).
//! SIMD (AVX-512: 8 lanes, AVX2: 4): `x = n·ln 2 + r` with `n = round(x·log₂e)` (the 1.5·2⁵²
//! trick, so no AVX512-DQ conversion), `r` in two FMA steps with a split `ln 2`, `e^r` by its
//! Taylor polynomial to degree 13 (truncation below 2⁻⁵⁸ on `|r| ≤ ln 2 / 2`), in Horner form
//! on AVX-512 and by Estrin's scheme on AVX2 (four levels of FMAs instead of a chain of
//! thirteen, which bounded AVX2's loop on Zen 3), and `2ⁿ` built in the exponent bits: within 2 ulp (f64) of libm, so the f32 results are
//! the same but for arguments within ~2⁻⁵⁰ of an f32 rounding boundary. Arguments below -708
//! give 0 (libm gives a subnormal f64 there, which no f32 result above can tell apart: it
//! rounds to 0 in `e / (1 + e)`, and adds nothing to a softmax sum holding `exp(0) = 1`); NaN
//! stays NaN.

use crate::dispatch::{selected, Isa};

/// Below this the SIMD `exp` returns 0 (`exp(-708) ≈ 3·10⁻³⁰⁸`, the last normal results).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // only the x86-64 versions use it
pub(crate) const EXP_FLUSH: f64 = -708.0;

/// `out[i] = σ(x[i])` computed in f64 and rounded: `1 / (1 + e^-x)` for `x ≥ 0`, `e^x / (1 + e^x)`
/// below (the two forms that never overflow).
///
/// # Panics
/// When `out.len() != x.len()`.
pub fn sigmoid_f32(x: &[f32], out: &mut [f32]) {
    sigmoid_f32_with(selected().float, x, out);
}

/// [`sigmoid_f32`] on a chosen instruction set (scalar when the CPU lacks it).
///
/// # Panics
/// As [`sigmoid_f32`].
pub fn sigmoid_f32_with(isa: Isa, x: &[f32], out: &mut [f32]) {
    assert_eq!(x.len(), out.len(), "sigmoid_f32: {} inputs, {} outputs", x.len(), out.len());
    let done = crate::arch::sigmoid_f32(isa.or_scalar(), x, out);
    for (o, &v) in out[done..].iter_mut().zip(&x[done..]) {
        *o = sigmoid_scalar(v);
    }
}

/// Scalar reference of [`sigmoid_f32`] for one element.
pub(crate) fn sigmoid_scalar(x: f32) -> f32 {
    let x = x as f64;
    let s = if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    };
    s as f32
}

/// `out[i] = exp(x[i] - shift)` in f64, for `x[i] - shift ≤ 0` (softmax: `shift` is the row's
/// maximum). An element with `x[i] - shift > 0` is computed by the scalar reference.
///
/// # Panics
/// When `out.len() != x.len()`.
pub fn exp_shifted_f64(x: &[f32], shift: f64, out: &mut [f64]) {
    exp_shifted_f64_with(selected().float, x, shift, out);
}

/// [`exp_shifted_f64`] on a chosen instruction set (scalar when the CPU lacks it).
///
/// # Panics
/// As [`exp_shifted_f64`].
pub fn exp_shifted_f64_with(isa: Isa, x: &[f32], shift: f64, out: &mut [f64]) {
    assert_eq!(x.len(), out.len(), "exp_shifted_f64: {} inputs, {} outputs", x.len(), out.len());
    let done = crate::arch::exp_shifted_f64(isa.or_scalar(), x, shift, out);
    for (o, &v) in out[done..].iter_mut().zip(&x[done..]) {
        *o = (v as f64 - shift).exp();
    }
}
