//! smelt's ggml dequantizers against gguf-py's numpy port of ggml (`gguf.quants.dequantize`),
//! bit for bit, on the fixtures tools/fixtures/gen_ggml_blocks.py writes: for each type,
//! `fixtures/ggml/<TYPE>.blocks.npy` (stored bytes, one row per tensor row) and
//! `<TYPE>.f32.npy` (what gguf-py decodes them to). The same bytes also sit in
//! `fixtures/gguf/all-types.gguf`, read here through smelt's GGUF reader.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use smelt_quant::ggml;
use smelt_quant::QuantError;
use smelt_tensor::DType;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn read_npy(path: &Path) -> smelt_formats::npy::NpyArray {
    smelt_formats::npy::read(path)
        .unwrap_or_else(|e| panic!("{e} (regenerate with tools/fixtures/gen_ggml_blocks.py)"))
}

/// The reference values for `dtype` as (rows, cols, values).
fn reference(dtype: DType) -> (usize, usize, Vec<f32>) {
    let want = read_npy(&fixtures().join(format!("ggml/{}.f32.npy", dtype.name())));
    assert_eq!(want.dtype, DType::F32);
    let [rows, cols] = want.shape[..] else { panic!("{dtype}: reference is not 2-D") };
    (rows as usize, cols as usize, want.to_f32().expect("f32 values"))
}

/// Asserts bit equality, counting any NaN as equal to any NaN (payloads of F16 NaNs differ
/// between numpy's software conversion and ggml's).
fn assert_bits_equal(what: &str, cols: usize, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mismatches: Vec<usize> = (0..got.len())
        .filter(|&i| {
            let (g, w) = (got[i], want[i]);
            !(g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()))
        })
        .collect();
    if let Some(&i) = mismatches.first() {
        panic!(
            "{what}: {} of {} values differ; first at row {} col {}: smelt {:e} ({:#010x}), \
             gguf-py {:e} ({:#010x})",
            mismatches.len(),
            got.len(),
            i / cols,
            i % cols,
            got[i],
            got[i].to_bits(),
            want[i],
            want[i].to_bits()
        );
    }
}

/// Decodes `<TYPE>.blocks.npy` whole and row by row and compares with `<TYPE>.f32.npy`.
fn check_against_gguf_py(dtype: DType) {
    let blocks = read_npy(&fixtures().join(format!("ggml/{}.blocks.npy", dtype.name())));
    assert_eq!(blocks.dtype, DType::U8);
    let [rows, row_bytes] = blocks.shape[..] else { panic!("{dtype}: blocks are not 2-D") };
    let (want_rows, cols, want) = reference(dtype);
    assert_eq!(rows as usize, want_rows, "{dtype}: row count");
    assert_eq!(Some(row_bytes), dtype.storage_bytes(&[cols as u64]), "{dtype}: bytes per row");

    let whole = ggml::dequantize_to_vec(dtype, &blocks.data).expect("whole tensor decodes");
    assert_bits_equal(&format!("{dtype} (whole tensor)"), cols, &whole, &want);

    // ggml dequantizes row by row; each row is whole blocks, so the result is the same.
    let mut by_rows = vec![f32::NAN; want.len()];
    for (src, dst) in blocks.data.chunks_exact(row_bytes as usize).zip(by_rows.chunks_exact_mut(cols)) {
        ggml::dequantize(dtype, src, dst).expect("row decodes");
    }
    assert_bits_equal(&format!("{dtype} (row by row)"), cols, &by_rows, &want);
}

macro_rules! matches_gguf_py {
    ($($test:ident => $dtype:ident,)*) => {
        $(
            #[test]
            fn $test() {
                check_against_gguf_py(DType::$dtype);
            }
        )*

        #[test]
        fn every_supported_dtype_has_a_reference_test() {
            let tested = [$(DType::$dtype),*];
            for d in ggml::SUPPORTED {
                assert!(tested.contains(d), "{d} has no test against gguf-py");
            }
        }
    };
}

matches_gguf_py! {
    f32_matches_gguf_py => F32,
    f16_matches_gguf_py => F16,
    bf16_matches_gguf_py => BF16,
    q4_0_matches_gguf_py => Q4_0,
    q4_1_matches_gguf_py => Q4_1,
    q5_0_matches_gguf_py => Q5_0,
    q5_1_matches_gguf_py => Q5_1,
    q8_0_matches_gguf_py => Q8_0,
    q2_k_matches_gguf_py => Q2_K,
    q3_k_matches_gguf_py => Q3_K,
    q4_k_matches_gguf_py => Q4_K,
    q5_k_matches_gguf_py => Q5_K,
    q6_k_matches_gguf_py => Q6_K,
    tq1_0_matches_gguf_py => TQ1_0,
    tq2_0_matches_gguf_py => TQ2_0,
    mxfp4_matches_gguf_py => MXFP4,
}

/// The GGUF container path: smelt's reader hands out each tensor's bytes, which must decode
/// to gguf-py's values. Fails until the GGUF reader (smelt_formats::gguf) lands.
#[test]
fn all_types_gguf_dequantizes_like_gguf_py() {
    let path = fixtures().join("gguf/all-types.gguf");
    let model = smelt_formats::gguf::read(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(model.tensors.len(), ggml::SUPPORTED.len(), "one tensor per supported dtype");
    for &dtype in ggml::SUPPORTED {
        let t = model.tensor(dtype.name()).unwrap_or_else(|| panic!("tensor {dtype} missing"));
        assert_eq!(t.dtype, dtype, "tensor {} dtype", t.name);
        let (rows, cols, want) = reference(dtype);
        assert_eq!(t.shape, vec![rows as u64, cols as u64], "tensor {} shape", t.name);
        let got = ggml::dequantize_to_vec(t.dtype, &t.data).expect("tensor decodes");
        assert_bits_equal(&format!("all-types.gguf tensor {}", t.name), cols, &got, &want);
    }
}

proptest! {
    /// Any bytes and any output length: an error or a full decode, never a panic, and
    /// the error says which size was wrong.
    #[test]
    fn arbitrary_input_never_panics(
        dtype_index in 0..smelt_tensor::ALL_DTYPES.len(),
        src in proptest::collection::vec(any::<u8>(), 0..700),
        dst_len in 0usize..1400,
    ) {
        let dtype = smelt_tensor::ALL_DTYPES[dtype_index];
        let mut dst = vec![0.0f32; dst_len];
        let result = ggml::dequantize(dtype, &src, &mut dst);
        if !ggml::SUPPORTED.contains(&dtype) {
            prop_assert_eq!(result, Err(QuantError::Unsupported { dtype }));
        } else if src.len() as u64 % dtype.block_bytes() != 0 {
            let is_partial_block = matches!(result, Err(QuantError::PartialBlock { .. }));
            prop_assert!(is_partial_block);
        } else if (src.len() as u64 / dtype.block_bytes()) * dtype.block_elems() != dst_len as u64 {
            let is_output_length = matches!(result, Err(QuantError::OutputLength { .. }));
            prop_assert!(is_output_length);
        } else {
            prop_assert_eq!(result, Ok(()));
        }
    }

    /// Whole blocks of random bytes decode, and decoding a prefix of blocks gives a prefix of
    /// the values (blocks are independent).
    #[test]
    fn blocks_decode_independently(
        dtype_index in 0..ggml::SUPPORTED.len(),
        seed in proptest::collection::vec(any::<u8>(), 1..8),
        blocks in 1usize..4,
    ) {
        let dtype = ggml::SUPPORTED[dtype_index];
        let block_bytes = dtype.block_bytes() as usize;
        let src: Vec<u8> = seed.iter().copied().cycle().take(block_bytes * blocks).collect();
        let all = ggml::dequantize_to_vec(dtype, &src).unwrap();
        let first = ggml::dequantize_to_vec(dtype, &src[..block_bytes]).unwrap();
        let same = all[..first.len()]
            .iter()
            .zip(&first)
            .all(|(a, b)| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()));
        prop_assert!(same);
    }
}
