//! The f64 `exp` kernels behind the runtime's Sigmoid and Softmax, every SIMD tier against
//! the scalar reference (libm's `exp`): sigmoid within one f32 ulp (the same bits but for
//! arguments within ~2⁻⁵⁰ of a rounding boundary), `exp` within 2 f64 ulp, 0 below -708
//! where libm gives a subnormal, NaN for NaN.

mod common;

use common::{simd_tiers, Rng};
use smelt_kernels::explicit::*;
use smelt_kernels::Isa;

fn ulps32(a: f32, b: f32) -> u32 {
    (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
}

fn inputs() -> Vec<f32> {
    let mut v =
        vec![0.0f32, -0.0, 1.0, -1.0, 0.5, -0.5, 20.0, -20.0, 88.0, -88.0, 104.0, -104.0, 1e-30, -1e-30];
    v.extend([
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::MAX,
        f32::MIN,
        f32::MIN_POSITIVE,
        745.0,
        -745.0,
        -708.5,
    ]);
    let mut rng = Rng::new(31);
    v.extend((0..20_000).map(|_| rng.f32() * 40.0));
    v.extend((0..20_000).map(|_| rng.f32() * 1000.0));
    v.extend((0..20_000).map(|i| f32::from_bits((i as u32).wrapping_mul(2_654_435_761))));
    v
}

#[test]
fn sigmoid_tiers_match_scalar() {
    let x = inputs();
    let mut want = vec![0.0f32; x.len()];
    sigmoid_f32_with(Isa::Scalar, &x, &mut want);
    for (&v, &w) in x.iter().zip(&want) {
        // The reference is the f64 formula of the runtime's general path.
        let v = v as f64;
        let r = if v >= 0.0 { 1.0 / (1.0 + (-v).exp()) } else { v.exp() / (1.0 + v.exp()) };
        assert!((r as f32).to_bits() == w.to_bits() || (w.is_nan() && r.is_nan()), "scalar sigmoid({v})");
    }
    let mut differ = 0;
    for isa in simd_tiers("sigmoid") {
        for off in [0usize, 1, 3] {
            let mut got = vec![f32::NAN; x.len() - off];
            sigmoid_f32_with(isa, &x[off..], &mut got);
            for ((&v, &g), &w) in x[off..].iter().zip(&got).zip(&want[off..]) {
                if w.is_nan() {
                    assert!(g.is_nan(), "sigmoid {isa}({v}) = {g}, want NaN");
                    continue;
                }
                assert!(ulps32(g, w) <= 1, "sigmoid {isa}({v}) = {g}, reference {w}");
                differ += (g != w) as usize;
            }
        }
    }
    assert!(differ * 10_000 < x.len(), "{differ} results differ from the reference's bits");
}

#[test]
fn exp_shifted_tiers_match_scalar() {
    let x = inputs();
    for shift in [0.0f64, 1000.0, 3.4e38, -5.0, f64::INFINITY] {
        let mut want = vec![0.0f64; x.len()];
        exp_shifted_f64_with(Isa::Scalar, &x, shift, &mut want);
        for isa in simd_tiers("exp_shifted") {
            let mut got = vec![f64::NAN; x.len()];
            exp_shifted_f64_with(isa, &x, shift, &mut got);
            for ((&v, &g), &w) in x.iter().zip(&got).zip(&want) {
                let arg = v as f64 - shift;
                if g.to_bits() == w.to_bits() {
                    continue; // (a vector holding a positive argument is done by the reference)
                }
                if w.is_nan() {
                    assert!(g.is_nan(), "exp {isa}({arg}) = {g}, want NaN");
                } else if arg > 0.0 || arg.is_infinite() {
                    // Positive arguments go to the scalar reference; -inf gives 0 both ways.
                    assert_eq!(g.to_bits(), w.to_bits(), "exp {isa}({arg})");
                } else if arg < -708.0 {
                    assert!(g == 0.0 && w < 1e-307, "exp {isa}({arg}) = {g}, reference {w}");
                } else {
                    assert!(
                        (g - w).abs() <= 2.0 * f64::EPSILON * w,
                        "exp {isa}({arg}) = {g:e}, reference {w:e}"
                    );
                }
            }
        }
    }
}
