//! `dynamic_quantize_u8` (ONNX DynamicQuantizeLinear) on every instruction set against the
//! ONNX definition written out here with std's `round_ties_even`: the same scale, zero point
//! and codes, bit for bit, on inputs with ties, zeros of both signs, subnormals, huge values,
//! NaN and infinities, at every tail length and across the parallel split.

mod common;

use common::{simd_tiers, Rng};
use smelt_kernels::explicit::dynamic_quantize_u8_with;
use smelt_kernels::Isa;

/// The operator's definition (ONNX spec, opset 11).
fn onnx_dql(x: &[f32]) -> (f32, u8, Vec<u8>) {
    let mut lo = 0.0f32;
    let mut hi = 0.0f32;
    for &v in x {
        if v < lo {
            lo = v;
        }
        if v > hi {
            hi = v;
        }
    }
    let scale = (hi - lo) / 255.0;
    let zp = if scale == 0.0 { 0.0 } else { ((0.0 - lo) / scale).round_ties_even().clamp(0.0, 255.0) };
    let q = x
        .iter()
        .map(|&v| {
            if scale == 0.0 {
                zp as u8
            } else {
                ((v / scale).round_ties_even() + zp).clamp(0.0, 255.0) as u8
            }
        })
        .collect();
    (scale, zp as u8, q)
}

fn check(what: &str, x: &[f32], isas: &[Isa]) {
    let (ws, wz, wq) = onnx_dql(x);
    for &isa in isas {
        let mut q = vec![0xAAu8; x.len()];
        let (s, z) = dynamic_quantize_u8_with(isa, x, &mut q);
        assert_eq!((s.to_bits(), z), (ws.to_bits(), wz), "{what} {isa}: scale/zero point");
        if let Some(i) = (0..x.len()).find(|&i| q[i] != wq[i]) {
            panic!("{what} {isa}: element {i} ({}) got code {}, want {}", x[i], q[i], wq[i]);
        }
    }
}

#[test]
fn dynamic_quantize_matches_the_onnx_definition() {
    let mut isas = vec![Isa::Scalar];
    isas.extend(simd_tiers("dynamic_quantize_u8"));
    let mut rng = Rng::new(7);
    for len in (0..70).chain([255, 256, 257, 1000, 65_535, 65_536, 65_537, 200_003]) {
        let x: Vec<f32> = rng.f32s(len).iter().map(|v| v * 3.0).collect();
        check(&format!("uniform len {len}"), &x, &isas);
        let pos: Vec<f32> = x.iter().map(|v| v.abs() + 0.5).collect();
        check(&format!("positive len {len}"), &pos, &isas);
        let neg: Vec<f32> = x.iter().map(|v| -v.abs() - 0.5).collect();
        check(&format!("negative len {len}"), &neg, &isas);
    }
    // Ties: the range [-127.5, 0] makes the scale 0.5 and every x = k/4 a tie of x/scale.
    let ties: Vec<f32> = (0..511).map(|i| -(i as f32) / 4.0).chain([-127.5]).collect();
    check("ties", &ties, &isas);
    let specials = [0.0, -0.0, f32::MIN_POSITIVE / 4.0, -f32::MIN_POSITIVE, 1e38, -1e38, 3.0e38, 1.0];
    for n in [1usize, 15, 16, 17, 33, 100_000] {
        for (s, &v) in specials.iter().enumerate() {
            let mut x: Vec<f32> = rng.f32s(n);
            x[(s * 7919) % n] = v;
            check(&format!("special {v} len {n}"), &x, &isas);
        }
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut x = rng.f32s(n);
            x[n / 2] = bad;
            check(&format!("{bad} len {n}"), &x, &isas);
        }
        if n > 70 {
            // A NaN after a lane's extreme, in the same lane of every vector width: the range
            // must keep the extreme (a NaN that replaces a lane's bound loses it).
            for extreme in [-10.0f32, 10.0] {
                let mut x = rng.f32s(n);
                x[5] = extreme;
                x[69] = f32::NAN;
                check(&format!("NaN after {extreme} len {n}"), &x, &isas);
            }
        }
        if n > 1 {
            // Both infinities: the scale is infinite and the zero point not a number.
            let mut x = rng.f32s(n);
            x[0] = f32::INFINITY;
            x[n - 1] = f32::NEG_INFINITY;
            check(&format!("both infinities len {n}"), &x, &isas);
        }
        check(&format!("zeros len {n}"), &vec![0.0; n], &isas);
        check(&format!("negative zeros len {n}"), &vec![-0.0; n], &isas);
        check(&format!("constant len {n}"), &vec![0.25; n], &isas);
        check(&format!("subnormals len {n}"), &vec![-1e-40; n], &isas);
    }
}
