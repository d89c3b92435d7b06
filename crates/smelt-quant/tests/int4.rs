//! smelt's block int4 round-to-nearest against GPTQ's reference `Quantizer` (IST-DASLab/gptq
//! quant.py, copied into tools/fixtures/gen_quant_refs.py): codes, scales, zeros and the
//! fake-quantized weight bit for bit; and the checkpoint layout against AutoGPTQ's `pack` loops
//! and GPTQModel's v1 conversion (fixtures/quant/int4).

mod quant_refs;

use quant_refs::{assert_bits, assert_same, exists, f16_bits, f32s, i32s, u8s};
use smelt_quant::int4::{pack_gptq, quantize_int4_rtn, Int4Mode, QzerosFormat};
use smelt_quant::SchemeError;
use smelt_tensor::DType;

/// (case, input, group size, mode), as the generator's `int4_case` calls.
const CASES: &[(&str, &str, usize, Int4Mode)] = &[
    ("w_32x256.g32.sym", "w_32x256", 32, Int4Mode::Symmetric),
    ("w_32x256.g64.asym", "w_32x256", 64, Int4Mode::Asymmetric),
    ("w_32x256.g128.sym", "w_32x256", 128, Int4Mode::Symmetric),
    ("w_32x256.g128.asym", "w_32x256", 128, Int4Mode::Asymmetric),
    ("w_32x224.g128.asym", "w_32x224", 128, Int4Mode::Asymmetric),
    ("w_32x224.g64.sym", "w_32x224", 64, Int4Mode::Symmetric),
    ("w_3x100.g32.sym", "w_3x100", 32, Int4Mode::Symmetric),
];

#[test]
fn matches_gptq_quantizer_bit_for_bit() {
    for &(case, input, group, mode) in CASES {
        let (shape, values) = f32s(&format!("inputs/{input}.npy"));
        let t = quantize_int4_rtn(&values, shape[0], shape[1], group, mode).unwrap();
        assert_same(&format!("{case}: codes"), &t.codes, &u8s(&format!("int4/{case}.codes.npy")));
        let (sshape, scales) = f32s(&format!("int4/{case}.scales.npy"));
        assert_eq!(sshape, vec![t.rows, t.groups()], "{case}: scales shape");
        assert_bits(&format!("{case}: scales"), &t.scales, &scales);
        // GPTQ keeps zeros as f32 and computes `round(-xmin / scale)` = -0.0 for a group with
        // no negative value; as an integer zero point that is 0, so compare values, not bits.
        let zeros: Vec<f32> = t.zeros.iter().map(|&z| z as f32).collect();
        let want = f32s(&format!("int4/{case}.zeros.npy")).1;
        assert_eq!(zeros.len(), want.len(), "{case}: zeros");
        assert!(zeros.iter().zip(&want).all(|(a, b)| a == b), "{case}: zeros");
        assert_bits(
            &format!("{case}: dequantized"),
            &t.dequantize(),
            &f32s(&format!("int4/{case}.dequant.npy")).1,
        );
    }
}

#[test]
fn checkpoint_layout_matches_autogptq_and_gptqmodel() {
    let mut packed_cases = 0;
    for &(case, input, group, mode) in CASES {
        if !exists(&format!("int4/{case}.qweight.npy")) {
            continue;
        }
        packed_cases += 1;
        let (shape, values) = f32s(&format!("inputs/{input}.npy"));
        let t = quantize_int4_rtn(&values, shape[0], shape[1], group, mode).unwrap();
        let v1 = pack_gptq(&t, QzerosFormat::V1).unwrap();
        let v2 = pack_gptq(&t, QzerosFormat::V2).unwrap();
        assert_same(&format!("{case}: qweight"), &v1.qweight, &i32s(&format!("int4/{case}.qweight.npy")));
        assert_same(&format!("{case}: qzeros v1"), &v1.qzeros, &i32s(&format!("int4/{case}.qzeros_v1.npy")));
        assert_same(&format!("{case}: qzeros v2"), &v2.qzeros, &i32s(&format!("int4/{case}.qzeros_v2.npy")));
        let scales: Vec<u16> = v1.scales.iter().map(|s| s.to_bits()).collect();
        assert_same(
            &format!("{case}: scales f16"),
            &scales,
            &f16_bits(&format!("int4/{case}.scales_f16.npy")),
        );
        assert_same(&format!("{case}: g_idx"), &v1.g_idx, &i32s(&format!("int4/{case}.g_idx.npy")));
        // Unpacking gives back what was packed, in both formats.
        assert_eq!(v1.unpack_codes(), t.codes, "{case}");
        assert_eq!(v1.unpack_zeros(), t.zeros, "{case}");
        assert_eq!(v2.unpack_zeros(), t.zeros, "{case}");
        let names: Vec<(String, DType, Vec<usize>)> =
            v1.tensors("layer").into_iter().map(|n| (n.name, n.dtype, n.shape)).collect();
        let (out, inp, groups) = (t.rows, t.cols, t.groups());
        assert_eq!(
            names,
            vec![
                ("layer.qweight".into(), DType::I32, vec![inp / 8, out]),
                ("layer.qzeros".into(), DType::I32, vec![groups, out / 8]),
                ("layer.scales".into(), DType::F16, vec![groups, out]),
                ("layer.g_idx".into(), DType::I32, vec![inp]),
            ]
        );
    }
    assert_eq!(packed_cases, 6);
}

#[test]
fn asymmetric_zero_of_zero_is_exact_in_v2_and_borrows_in_v1() {
    // Row 6 of w_32x256 is all positive: asymmetric zero 0.
    let (shape, values) = f32s("inputs/w_32x256.npy");
    let t = quantize_int4_rtn(&values, shape[0], shape[1], 128, Int4Mode::Asymmetric).unwrap();
    assert_eq!(t.zeros[6 * 2], 0);
    let v2 = pack_gptq(&t, QzerosFormat::V2).unwrap();
    let v1 = pack_gptq(&t, QzerosFormat::V1).unwrap();
    // Rows 0..8 of group 0 are word 0; row 6 is nibble 6.
    assert_eq!((v2.qzeros[0] as u32 >> 24) & 0xF, 0);
    assert_eq!(v1.qzeros[0] as u32, (v2.qzeros[0] as u32).wrapping_sub(0x1111_1111));
}

#[test]
fn short_last_group_and_unpackable_shapes() {
    // 224 columns in groups of 128: the second group has 96 columns.
    let (shape, values) = f32s("inputs/w_32x224.npy");
    let t = quantize_int4_rtn(&values, shape[0], shape[1], 128, Int4Mode::Asymmetric).unwrap();
    assert_eq!(t.groups(), 2);
    // [3, 100] quantizes (GPTQ handles it) but cannot be packed.
    let (shape, values) = f32s("inputs/w_3x100.npy");
    let t = quantize_int4_rtn(&values, shape[0], shape[1], 32, Int4Mode::Symmetric).unwrap();
    assert_eq!(t.groups(), 4);
    assert!(matches!(
        pack_gptq(&t, QzerosFormat::V1),
        Err(SchemeError::NotMultiple { what: "input features", found: 100, multiple: 8 })
    ));
}

mod properties {
    use proptest::prelude::*;
    use smelt_quant::int4::{pack_gptq, quantize_int4_rtn, Int4Mode, QzerosFormat};

    proptest! {
        /// Any bit pattern quantizes without panicking; whatever was packed unpacks unchanged.
        #[test]
        fn any_input_quantizes_and_packing_round_trips(
            rows8 in 1usize..4,
            cols8 in 1usize..12,
            group in prop_oneof![Just(8usize), Just(32), Just(64), Just(128), 1usize..100],
            asym in any::<bool>(),
            seed in proptest::collection::vec(any::<u32>(), 1..64),
        ) {
            let (rows, cols) = (8 * rows8, 8 * cols8);
            let values: Vec<f32> = (0..rows * cols).map(|i| f32::from_bits(seed[i % seed.len()].rotate_left(i as u32))).collect();
            let mode = if asym { Int4Mode::Asymmetric } else { Int4Mode::Symmetric };
            let t = quantize_int4_rtn(&values, rows, cols, group, mode).unwrap();
            prop_assert!(t.codes.iter().all(|&c| c <= 15) && t.zeros.iter().all(|&z| z <= 15));
            for format in [QzerosFormat::V1, QzerosFormat::V2] {
                let p = pack_gptq(&t, format).unwrap();
                prop_assert_eq!(p.unpack_codes(), t.codes.clone());
                prop_assert_eq!(p.unpack_zeros(), t.zeros.clone());
            }
        }
    }
}
