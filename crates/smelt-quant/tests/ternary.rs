//! smelt's ternary quantizer against BitNet b1.58's reference `weight_quant` (torch, 2
//! threads), bit for bit: codes, mean |W|, scale and dequantized weights; its packings against
//! numpy implementations of the documented layouts (the base-3 one is blob-format.md's
//! `ternary3`, not TQ1_0's byte encoding, which a gguf-py TQ1_0 block checks) and transformers' BitNet `pack_weights` (fixtures/quant/ternary).

mod quant_refs;

use quant_refs::{assert_bits, assert_same, exists, f32s, i8s, u8s};
use smelt_quant::rounding::TorchReduction;
use smelt_quant::ternary::{
    pack_2bit, pack_2bit_hf_rows, pack_base3, quantize_ternary, unpack_2bit, unpack_2bit_hf_rows,
    unpack_base3,
};

const CASES: &[&str] = &["w_32x256", "w_3x100", "w_40x1000", "w_1", "w_65"];

/// The generator runs torch with 2 threads; w_40x1000 (40000 weights) is above torch's grain
/// size, so its mean is split across them.
const TORCH: TorchReduction = TorchReduction { threads: 2, lanes: 8 };

#[test]
fn matches_bitnet_reference_bit_for_bit() {
    for &case in CASES {
        let (shape, values) = f32s(&format!("inputs/{case}.npy"));
        let t = quantize_ternary(&values, TORCH);
        assert_same(&format!("{case}: codes"), &t.codes, &i8s(&format!("ternary/{case}.codes.npy")));
        let (_, scale) = f32s(&format!("ternary/{case}.scale.npy"));
        assert_bits(&format!("{case}: mean |W|, scale"), &[t.mean_abs, t.scale], &scale);
        if exists(&format!("ternary/{case}.dequant.npy")) {
            // torch.round keeps the sign of a small negative weight (-0.0), so the reference has
            // -0.0 where the code is 0; an integer code has no sign, smelt gives +0.0.
            let want: Vec<f32> = f32s(&format!("ternary/{case}.dequant.npy"))
                .1
                .into_iter()
                .map(|v| if v == 0.0 { 0.0 } else { v })
                .collect();
            assert_bits(&format!("{case}: dequantized"), &t.dequantize(), &want);
        }

        let p2 = pack_2bit(&t.codes).unwrap();
        assert_same(&format!("{case}: 2-bit"), &p2, &u8s(&format!("ternary/{case}.packed2.npy")));
        assert_eq!(unpack_2bit(&p2, t.codes.len()).unwrap(), t.codes);
        let p3 = pack_base3(&t.codes).unwrap();
        assert_same(&format!("{case}: base 3"), &p3, &u8s(&format!("ternary/{case}.packed3.npy")));
        assert_eq!(unpack_base3(&p3, t.codes.len()).unwrap(), t.codes);
        if shape.len() == 2 {
            let hf = pack_2bit_hf_rows(&t.codes, shape[0], shape[1]).unwrap();
            assert_same(&format!("{case}: HF rows"), &hf, &u8s(&format!("ternary/{case}.hf_rows.npy")));
            assert_eq!(unpack_2bit_hf_rows(&hf, shape[0], shape[1]).unwrap(), t.codes);
        }
    }
}

/// Regression guard for the thread split of torch's reduction: on this 40000-weight tensor a
/// one-thread sum differs from torch's two-thread result in the last bits.
#[test]
fn thread_count_matters_for_big_tensors() {
    let (_, values) = f32s("inputs/w_40x1000.npy");
    let (_, want) = f32s("ternary/w_40x1000.scale.npy");
    let two = quantize_ternary(&values, TORCH).mean_abs;
    let one = quantize_ternary(&values, TorchReduction { threads: 1, lanes: 8 }).mean_abs;
    assert_eq!(two.to_bits(), want[0].to_bits());
    assert_ne!(one.to_bits(), want[0].to_bits());
}

/// ggml's TQ1_0 keeps its own byte encoding (not the blob's plain base 3): gguf-py quantized a
/// block whose weight m + 32n is code 5m + n of w_32x256, and smelt's TQ1_0 decoder gives those
/// codes back, times the block scale.
#[test]
fn tq1_0_block_decodes_to_its_codes() {
    use smelt_quant::ggml::ternary::BlockTQ1_0;
    use smelt_quant::ggml::Block;
    let codes = i8s("ternary/w_32x256.codes.npy");
    let bytes = u8s("ternary/tq1_0_block.npy");
    assert_eq!(bytes.len(), 54);
    let block: BlockTQ1_0 = bytemuck::pod_read_unaligned(&bytes);
    let mut out = [0f32; 256];
    block.dequantize(&mut out);
    let d = half::f16::from_le_bytes(block.d).to_f32();
    assert!(d > 0.0);
    for m in 0..32 {
        for n in 0..5 {
            assert_eq!(out[m + 32 * n], codes[5 * m + n] as f32 * d, "weight {}", m + 32 * n);
        }
    }
    // The blob's base-3 bytes of the same 160 codes are not TQ1_0's qs bytes.
    assert_ne!(pack_base3(&codes[..160]).unwrap(), block.qs[..32].to_vec());
}

mod properties {
    use proptest::prelude::*;
    use smelt_quant::rounding::TorchReduction;
    use smelt_quant::ternary::*;

    proptest! {
        /// Any bit pattern quantizes without panicking, and every packing round-trips.
        #[test]
        fn any_input_quantizes_and_packings_round_trip(
            bits in proptest::collection::vec(any::<u32>(), 0..300),
            cols in 1usize..5,
        ) {
            let values: Vec<f32> = bits.iter().map(|&b| f32::from_bits(b)).collect();
            let t = quantize_ternary(&values, TorchReduction::default());
            prop_assert!(t.codes.iter().all(|&c| (-1..=1).contains(&c)));
            let n = t.codes.len();
            prop_assert_eq!(unpack_2bit(&pack_2bit(&t.codes).unwrap(), n).unwrap(), t.codes.clone());
            prop_assert_eq!(unpack_base3(&pack_base3(&t.codes).unwrap(), n).unwrap(), t.codes.clone());
            let rows = n / cols;
            let part = &t.codes[..rows * cols];
            prop_assert_eq!(unpack_2bit_hf_rows(&pack_2bit_hf_rows(part, rows, cols).unwrap(), rows, cols).unwrap(), part.to_vec());
        }
    }
}
