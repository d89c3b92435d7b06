//! Reads the reference arrays tools/fixtures/gen_quant_refs.py wrote under fixtures/quant/
//! (outputs of ONNX Runtime, bitsandbytes, GPTQ's and BitNet's reference code), and compares
//! smelt's results with them bit for bit.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use smelt_formats::npy::NpyArray;
use smelt_tensor::DType;

/// fixtures/quant/.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/quant")
}

/// A reference array; panics with the way to regenerate it.
pub fn npy(rel: &str) -> NpyArray {
    smelt_formats::npy::read(&dir().join(rel))
        .unwrap_or_else(|e| panic!("{e} (regenerate with tools/fixtures/gen_quant_refs.py)"))
}

/// True if the reference file exists (some cases only have some outputs).
pub fn exists(rel: &str) -> bool {
    dir().join(rel).exists()
}

fn typed(rel: &str, dtype: DType) -> (Vec<usize>, NpyArray) {
    let a = npy(rel);
    assert_eq!(a.dtype, dtype, "{rel}: dtype");
    (a.shape.iter().map(|&d| d as usize).collect(), a)
}

/// An f32 array and its shape.
pub fn f32s(rel: &str) -> (Vec<usize>, Vec<f32>) {
    let (shape, a) = typed(rel, DType::F32);
    (shape, a.data.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect())
}

/// An f64 array.
pub fn f64s(rel: &str) -> Vec<f64> {
    let (_, a) = typed(rel, DType::F64);
    a.data.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect()
}

/// A u8 array.
pub fn u8s(rel: &str) -> Vec<u8> {
    typed(rel, DType::U8).1.data.to_vec()
}

/// An i8 array.
pub fn i8s(rel: &str) -> Vec<i8> {
    typed(rel, DType::I8).1.data.iter().map(|&b| b as i8).collect()
}

/// An i32 array.
pub fn i32s(rel: &str) -> Vec<i32> {
    let (_, a) = typed(rel, DType::I32);
    a.data.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap())).collect()
}

/// An i64 array.
pub fn i64s(rel: &str) -> Vec<i64> {
    let (_, a) = typed(rel, DType::I64);
    a.data.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect()
}

/// An f16 array as bit patterns.
pub fn f16_bits(rel: &str) -> Vec<u16> {
    let (_, a) = typed(rel, DType::F16);
    a.data.chunks_exact(2).map(|c| u16::from_le_bytes(c.try_into().unwrap())).collect()
}

/// Asserts equal f32 bit patterns (any NaN matches any NaN: numpy and torch NaN payloads
/// differ from Rust's), naming the first mismatch.
pub fn assert_bits(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let bad: Vec<usize> = (0..got.len())
        .filter(|&i| !(got[i].to_bits() == want[i].to_bits() || (got[i].is_nan() && want[i].is_nan())))
        .collect();
    if let Some(&i) = bad.first() {
        panic!(
            "{what}: {} of {} values differ; first at {i}: smelt {:e} ({:#010x}), reference {:e} ({:#010x})",
            bad.len(),
            got.len(),
            got[i],
            got[i].to_bits(),
            want[i],
            want[i].to_bits()
        );
    }
}

/// Asserts equal integer-like slices, naming the first mismatch.
pub fn assert_same<T: PartialEq + std::fmt::Debug>(what: &str, got: &[T], want: &[T]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
        let n = (0..got.len()).filter(|&i| got[i] != want[i]).count();
        panic!(
            "{what}: {n} of {} differ; first at {i}: smelt {:?}, reference {:?}",
            got.len(),
            got[i],
            want[i]
        );
    }
}
