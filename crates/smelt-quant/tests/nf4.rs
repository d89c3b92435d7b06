//! smelt's NF4 quantizer against bitsandbytes 0.50.2 (`quantize_4bit` on CPU, with and without
//! `compress_statistics`), bit for bit: packed codes, absmax, double-quantization codes, nested
//! absmax and offset; dequantized values against the formula `code · absmax` computed in numpy
//! from bitsandbytes' state; the state dict against a `Linear4bit` saved with safetensors; and
//! the torch summation order the offset depends on (fixtures/quant, written by
//! tools/fixtures/gen_quant_refs.py).

mod quant_refs;

use quant_refs::{assert_bits, assert_same, exists, f32s, i64s, u8s};
use smelt_quant::nf4::{
    blockwise8::dynamic_map_signed, quantize_nf4, Nf4Absmax, Nf4Options, Nf4Tensor, NF4_CODE,
};
use smelt_quant::rounding::TorchReduction;
use smelt_tensor::DType;

const PLAIN: &[&str] =
    &["w_32x256", "w_3x100", "w_1", "w_63", "w_64", "w_65", "w_tail0_100", "w_special_192"];
const DOUBLE: &[&str] = &["w_32x256", "w_3x100", "w_40x1000", "w_special_192"];

fn quantize(input: &str, double_quant: bool) -> Nf4Tensor {
    let (shape, values) = f32s(&format!("inputs/{input}.npy"));
    let reduction = TorchReduction { threads: 2, lanes: 8 };
    quantize_nf4(&values, &shape, Nf4Options { double_quant, reduction, ..Default::default() }).unwrap()
}

#[test]
fn plain_matches_bitsandbytes_bit_for_bit() {
    for &input in PLAIN {
        let t = quantize(input, false);
        assert_same(&format!("{input}: packed"), &t.packed, &u8s(&format!("nf4/{input}.packed.npy")));
        let Nf4Absmax::Plain(absmax) = &t.absmax else { panic!("{input}: plain absmax expected") };
        assert_bits(&format!("{input}: absmax"), absmax, &f32s(&format!("nf4/{input}.absmax.npy")).1);
        assert_bits(
            &format!("{input}: dequantized"),
            &t.dequantize(),
            &f32s(&format!("nf4/{input}.dequant.npy")).1,
        );
    }
}

#[test]
fn double_quant_matches_bitsandbytes_bit_for_bit() {
    for &input in DOUBLE {
        let case = format!("{input}.dq");
        let t = quantize(input, true);
        assert_same(&format!("{case}: packed"), &t.packed, &u8s(&format!("nf4/{case}.packed.npy")));
        let Nf4Absmax::Double(dq) = &t.absmax else { panic!("{case}: double absmax expected") };
        assert_bits(&format!("{case}: offset"), &[dq.offset], &f32s(&format!("nf4/{case}.offset.npy")).1);
        assert_same(&format!("{case}: absmax codes"), &dq.codes, &u8s(&format!("nf4/{case}.absmax.npy")));
        let nested = f32s(&format!("nf4/{case}.nested_absmax.npy")).1;
        assert_bits(&format!("{case}: nested absmax"), &dq.nested_absmax, &nested);
        assert_bits(
            &format!("{case}: dequantized"),
            &t.dequantize(),
            &f32s(&format!("nf4/{case}.dequant.npy")).1,
        );
    }
}

#[test]
fn code_tables_are_bitsandbytes() {
    assert_bits("dynamic map", &dynamic_map_signed(), &f32s("nf4/dynamic_map.npy").1);
    // The quant_map bitsandbytes saved is the NF4 code.
    let model =
        smelt_formats::safetensors::read_file(&quant_refs::dir().join("bnb/linear4bit_nf4.safetensors"))
            .unwrap();
    let map = model.tensors.iter().find(|t| t.name == "weight.quant_map").expect("quant_map");
    let saved: Vec<f32> =
        map.data.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    assert_bits("NF4 code", &NF4_CODE, &saved);
}

#[test]
fn all_zero_blocks_and_zero_tail() {
    // w_tail0_100: the 36-element tail is zero, so bitsandbytes stores the clamped 1e-38.
    let t = quantize("w_tail0_100", false);
    let Nf4Absmax::Plain(absmax) = &t.absmax else { unreachable!() };
    assert_eq!(absmax[1].to_bits(), 0x006C_E3EE);
    // w_32x256 row 3 (blocks 12..16) is zero: absmax 0, every code 7 (0.0).
    let t = quantize("w_32x256", false);
    let Nf4Absmax::Plain(absmax) = &t.absmax else { unreachable!() };
    assert_eq!(&absmax[12..16], &[0.0; 4]);
    assert!(t.packed[3 * 128..4 * 128].iter().all(|&b| b == 0x77));
}

#[test]
fn torch_mean_summation_order() {
    let values = f32s("torch_mean/values.npy").1;
    let lengths = i64s("torch_mean/lengths.npy");
    let threads = i64s("torch_mean/threads.npy");
    let means = f32s("torch_mean/means.npy").1;
    for (ti, &th) in threads.iter().enumerate() {
        let r = TorchReduction { threads: th as usize, lanes: 8 };
        let got: Vec<f32> = lengths.iter().map(|&n| r.mean(&values[..n as usize])).collect();
        assert_bits(
            &format!("torch.mean with {th} threads"),
            &got,
            &means[ti * lengths.len()..(ti + 1) * lengths.len()],
        );
    }
}

/// (file, double quantization, source dtype)
const SAVED: &[(&str, bool, DType)] = &[
    ("linear4bit_nf4", false, DType::F32),
    ("linear4bit_nf4_dq", true, DType::F32),
    ("linear4bit_nf4_dq_bf16", true, DType::BF16),
];

#[test]
fn state_dict_matches_saved_linear4bit() {
    let (shape, values) = f32s("inputs/w_3x100.npy");
    for &(file, double_quant, dtype) in SAVED {
        let path = quant_refs::dir().join(format!("bnb/{file}.safetensors"));
        assert!(exists(&format!("bnb/{file}.safetensors")), "{file}");
        let saved = smelt_formats::safetensors::read_file(&path).unwrap();
        let source: Vec<f32> = match dtype {
            DType::BF16 => values.iter().map(|&v| half::bf16::from_f32(v).to_f32()).collect(),
            _ => values.clone(),
        };
        let t = quantize_nf4(&source, &shape, Nf4Options { double_quant, ..Default::default() }).unwrap();
        let mine = t.bnb_state_dict("weight", dtype).unwrap();
        let mut names: Vec<&str> = mine.iter().map(|e| e.name.as_str()).collect();
        let mut theirs: Vec<&str> = saved.tensors.iter().map(|t| t.name.as_str()).collect();
        names.sort_unstable();
        theirs.sort_unstable();
        assert_eq!(names, theirs, "{file}: keys");
        for e in &mine {
            let s = saved.tensors.iter().find(|t| t.name == e.name).unwrap();
            assert_eq!(s.dtype, e.dtype, "{file}: {} dtype", e.name);
            let shape: Vec<usize> = s.shape.iter().map(|&d| d as usize).collect();
            assert_eq!(shape, e.shape, "{file}: {} shape", e.name);
            if e.name.ends_with("bitsandbytes__nf4") {
                assert_eq!(
                    String::from_utf8_lossy(&e.bytes),
                    String::from_utf8_lossy(&s.data),
                    "{file}: packed quant state JSON"
                );
            }
            assert_same(&format!("{file}: {} bytes", e.name), &e.bytes, &s.data);
        }
    }
}

#[test]
fn odd_sizes_never_panic() {
    for n in [0usize, 1, 2, 63, 64, 65, 127, 129, 256 * 64 + 1] {
        let v: Vec<f32> = (0..n).map(|i| ((i * 7919) % 211) as f32 / 100.0 - 1.0).collect();
        for block_size in [32, 64, 4096] {
            for double_quant in [false, true] {
                let o = Nf4Options { block_size, double_quant, ..Default::default() };
                let t = quantize_nf4(&v, &[n], o).unwrap();
                assert_eq!(t.dequantize().len(), n);
                assert_eq!(t.packed.len(), n.div_ceil(2));
            }
        }
    }
}

/// Regression guard: bitsandbytes' CPU `quantize_blockwise` goes through a 65536-entry lookup
/// table, not an exact nearest-code search; on w_40x1000's absmax values the two differ (the
/// reference codes are the table's).
#[test]
fn blockwise8_is_bitsandbytes_lookup_table_not_exact_nearest() {
    let t = quantize("w_40x1000", true);
    let Nf4Absmax::Double(dq) = &t.absmax else { unreachable!() };
    let Nf4Absmax::Plain(absmax) = quantize("w_40x1000", false).absmax else { unreachable!() };
    let map = dynamic_map_signed();
    let exact_differs = absmax
        .iter()
        .enumerate()
        .filter(|&(i, &a)| {
            let n = (a - dq.offset) * (1.0 / dq.nested_absmax[i / 256]);
            let nearest = (0..256)
                .min_by(|&x, &y| (n - map[x]).abs().partial_cmp(&(n - map[y]).abs()).unwrap())
                .unwrap();
            nearest as u8 != dq.codes[i]
        })
        .count();
    assert_same("codes", &dq.codes, &u8s("nf4/w_40x1000.dq.absmax.npy"));
    assert!(exact_differs >= 1, "the fixture no longer tells the lookup table from an exact search");
}

mod properties {
    use proptest::prelude::*;
    use smelt_quant::nf4::{quantize_nf4, Nf4Options, NF4_CODE};

    proptest! {
        /// Any bit pattern (NaN, infinities, subnormals) quantizes without panicking, and
        /// finite values come back within half the widest NF4 gap of their block's absmax.
        #[test]
        fn any_input_quantizes(
            bits in proptest::collection::vec(any::<u32>(), 0..400),
            finite in proptest::collection::vec(-10f32..10.0, 1..400),
            double_quant in any::<bool>(),
        ) {
            let wild: Vec<f32> = bits.iter().map(|&b| f32::from_bits(b)).collect();
            let o = Nf4Options { double_quant, ..Default::default() };
            let t = quantize_nf4(&wild, &[wild.len()], o).unwrap();
            prop_assert_eq!(t.dequantize().len(), wild.len());

            let t = quantize_nf4(&finite, &[finite.len()], Nf4Options::default()).unwrap();
            let gap = NF4_CODE.windows(2).map(|w| w[1] - w[0]).fold(0.0f32, f32::max);
            let absmax = t.block_absmax();
            for (i, (x, y)) in finite.iter().zip(t.dequantize()).enumerate() {
                let a = absmax[i / 64];
                prop_assert!((x - y).abs() <= a * (gap / 2.0 + 1e-5), "{} -> {} (absmax {})", x, y, a);
            }
        }
    }
}
