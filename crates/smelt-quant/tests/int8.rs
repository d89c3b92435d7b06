//! smelt's INT8 quantizer against ONNX Runtime: parameters from ORT's quantization tool
//! (`quant_utils.quantize_data`, per channel as the tool does for weights), codes from ORT's
//! QuantizeLinear kernel, dequantized values from its DequantizeLinear kernel, all bit for bit
//! (fixtures/quant/int8, written by tools/fixtures/gen_quant_refs.py).

mod quant_refs;

use quant_refs::{assert_bits, assert_same, f32s, npy};
use smelt_quant::int8::{quantize_int8, Int8Granularity, Int8Mode};
use smelt_tensor::DType;

/// (case name, input, mode, granularity), as the generator's `int8_case` calls.
const CASES: &[(&str, &str, Int8Mode, Int8Granularity)] = &[
    ("w_32x256.sym.axis0", "w_32x256", Int8Mode::Symmetric, Int8Granularity::PerChannel { axis: 0 }),
    ("w_32x256.asym.axis0", "w_32x256", Int8Mode::Asymmetric, Int8Granularity::PerChannel { axis: 0 }),
    ("w_32x256.sym.tensor", "w_32x256", Int8Mode::Symmetric, Int8Granularity::PerTensor),
    ("w_32x256.asym.tensor", "w_32x256", Int8Mode::Asymmetric, Int8Granularity::PerTensor),
    ("w_3x100.sym.axis1", "w_3x100", Int8Mode::Symmetric, Int8Granularity::PerChannel { axis: 1 }),
    ("w_3x100.asym.axis0", "w_3x100", Int8Mode::Asymmetric, Int8Granularity::PerChannel { axis: 0 }),
];

#[test]
fn matches_onnx_runtime_bit_for_bit() {
    for &(case, input, mode, granularity) in CASES {
        let (shape, values) = f32s(&format!("inputs/{input}.npy"));
        let t = quantize_int8(&values, &shape, mode, granularity).unwrap();

        let codes = npy(&format!("int8/{case}.codes.npy"));
        assert_eq!(codes.dtype, mode.dtype(), "{case}: code dtype");
        assert_same(&format!("{case}: codes"), &t.codes, &codes.data);
        let (_, scales) = f32s(&format!("int8/{case}.scales.npy"));
        assert_bits(&format!("{case}: scales"), &t.scales, &scales);
        let zps = npy(&format!("int8/{case}.zero_points.npy"));
        assert_eq!(zps.dtype, t.dtype(), "{case}: zero point dtype");
        assert_same(&format!("{case}: zero points"), &t.zero_points, &zps.data);
        let (_, deq) = f32s(&format!("int8/{case}.dequant.npy"));
        assert_bits(&format!("{case}: dequantized"), &t.dequantize(), &deq);
    }
}

#[test]
fn all_zero_row_gets_scale_one_as_ort() {
    // Row 3 of w_32x256 is all zero.
    let (_, scales) = f32s("int8/w_32x256.sym.axis0.scales.npy");
    assert_eq!(scales[3], 1.0);
    let (shape, values) = f32s("inputs/w_32x256.npy");
    let t = quantize_int8(&values, &shape, Int8Mode::Asymmetric, Int8Granularity::PerChannel { axis: 0 })
        .unwrap();
    assert_eq!(t.params(3).map(|p| (p.scale, p.zero_point)), Some((1.0, 0)));
    assert!(t.codes[3 * 256..4 * 256].iter().all(|&c| c == 0));
}

#[test]
fn symmetric_codes_stay_within_plus_minus_127_and_ties_go_to_even() {
    let (shape, values) = f32s("inputs/w_32x256.npy");
    let t =
        quantize_int8(&values, &shape, Int8Mode::Symmetric, Int8Granularity::PerChannel { axis: 0 }).unwrap();
    assert_eq!(t.dtype(), DType::I8);
    assert!(t.codes.iter().all(|&b| b as i8 != -128));
    // Row 2: scale exactly 2^-7 and x / scale = k + 1/2 for k in -20..20.
    assert_eq!(t.scales[2], 1.0 / 128.0);
    for (j, k) in (-20i32..20).enumerate() {
        let want = (k as f32 + 0.5).round_ties_even() as i32;
        assert_eq!(t.code(2 * 256 + 1 + j), Some(want), "tie {k}.5");
    }
}

/// Regression guard: QuantizeLinear divides by the scale. Row 8 of w_32x256 holds values for
/// which `x * (1 / scale)` rounds to another code than `x / scale`; ORT's codes are the
/// division's, and a reciprocal implementation would miss them.
#[test]
fn quantize_linear_divides_not_multiplies_by_reciprocal() {
    let (shape, values) = f32s("inputs/w_32x256.npy");
    let t =
        quantize_int8(&values, &shape, Int8Mode::Symmetric, Int8Granularity::PerChannel { axis: 0 }).unwrap();
    let want = npy("int8/w_32x256.sym.axis0.codes.npy");
    let row = 8 * 256..9 * 256;
    assert_same("row 8", &t.codes[row.clone()], &want.data[row.clone()]);
    let recip = 1.0 / t.scales[8];
    let differ =
        row.filter(|&i| ((values[i] * recip).round_ties_even() as i32) != t.code(i).unwrap()).count();
    assert!(differ >= 40, "only {differ} values tell division from reciprocal");
}

mod properties {
    use proptest::prelude::*;
    use smelt_quant::int8::{quantize_int8, Int8Granularity, Int8Mode};

    proptest! {
        /// Any bit pattern quantizes without panicking; finite values come back within half a
        /// step (plus rounding of the dequantization itself).
        #[test]
        fn any_input_quantizes_and_finite_values_round_trip(
            bits in proptest::collection::vec(any::<u32>(), 0..300),
            finite in proptest::collection::vec(-1e4f32..1e4, 1..300),
            asym in any::<bool>(),
        ) {
            let mode = if asym { Int8Mode::Asymmetric } else { Int8Mode::Symmetric };
            let wild: Vec<f32> = bits.iter().map(|&b| f32::from_bits(b)).collect();
            let t = quantize_int8(&wild, &[wild.len()], mode, Int8Granularity::PerTensor).unwrap();
            prop_assert_eq!(t.dequantize().len(), wild.len());

            let t = quantize_int8(&finite, &[finite.len(), 1], mode, Int8Granularity::PerTensor).unwrap();
            let scale = t.scales[0];
            for (x, y) in finite.iter().zip(t.dequantize()) {
                prop_assert!((x - y).abs() <= scale * 0.5 + x.abs() * 1e-6 + 1e-30, "{} -> {} (scale {})", x, y, scale);
            }
        }
    }
}
