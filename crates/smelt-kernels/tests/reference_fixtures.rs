//! The public kernels against numpy reference outputs (fixtures/kernels, made by
//! tools/fixtures/gen_kernel_refs.py, whose reading of the MatMulNBits / MatMulBnb4 /
//! MatMulInteger layouts is checked against ONNX Runtime when it runs). Independent of the
//! Rust code: a wrong nibble order, zero-point packing or scale convention fails here even if
//! scalar and SIMD agree with each other.

use std::path::PathBuf;

use smelt_formats::npy::{self, NpyArray};
use smelt_kernels::*;

fn load(case: &str, name: &str) -> NpyArray {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/kernels")
        .join(format!("{case}.{name}.npy"));
    npy::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn f32s(arr: &NpyArray) -> Vec<f32> {
    arr.to_f32().expect("f32 array")
}

fn dims(arr: &NpyArray) -> Vec<usize> {
    arr.shape.iter().map(|&d| d as usize).collect()
}

/// Within 1e-5 of Σ|a||w| (each reference is the correctly rounded sum; a kernel's f32
/// accumulation error is far below this for k ≤ 300).
#[allow(clippy::too_many_arguments)]
fn check(case: &str, got: &[f32], want: &[f32], a: &[f32], w: &[f32], m: usize, n: usize, k: usize) {
    for i in 0..m {
        for j in 0..n {
            let mag: f32 = (0..k).map(|kk| (a[i * k + kk] * w[j * k + kk]).abs()).sum();
            let (g, r) = (got[i * n + j], want[i * n + j]);
            assert!(
                (g - r).abs() <= 1e-5 * mag + 1e-6,
                "{case}: y[{i},{j}] = {g}, numpy {r} (Σ|a||w| = {mag})"
            );
        }
    }
}

fn mat(arr: &NpyArray) -> Int8Matrix<'_> {
    if matches!(arr.dtype, smelt_tensor::DType::I8) {
        Int8Matrix::I8(bytemuck::cast_slice(&arr.data))
    } else {
        Int8Matrix::U8(&arr.data)
    }
}

fn zp(z: &[i32]) -> ZeroPoints<'_> {
    if z.len() == 1 {
        ZeroPoints::PerTensor(z[0])
    } else {
        ZeroPoints::PerIndex(z)
    }
}

fn tiers() -> Vec<Isa> {
    Isa::ALL.iter().copied().filter(|i| i.is_available()).collect()
}

#[test]
fn matmul_nbits_matches_numpy() {
    for case in ["nbits_bs32_zp", "nbits_bs16_nozp", "nbits_bs128_zp"] {
        let a_arr = load(case, "a");
        let [m, k] = dims(&a_arr)[..] else { panic!() };
        let a = f32s(&a_arr);
        let b_arr = load(case, "b");
        let [n, _kb, blob] = dims(&b_arr)[..] else { panic!() };
        let scales = f32s(&load(case, "scales"));
        let zp_path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../../fixtures/kernels/{case}.zero_points.npy"));
        let zps = zp_path.exists().then(|| npy::read(&zp_path).unwrap().data.to_vec());
        let y = f32s(&load(case, "y"));
        let w = NBitsQ4 {
            n,
            k,
            block_size: blob * 2,
            b: &b_arr.data,
            scales: &scales,
            zero_points: zps.as_deref(),
        };
        let deq = dequantize_nbits_q4(&w, None);
        for isa in tiers() {
            let mut c = vec![0.0; m * n];
            explicit::matmul_nbits_q4_f32_with(isa, m, &a, &w, &mut c);
            check(&format!("{case} {isa}"), &c, &y, &a, &deq, m, n, k);
        }
    }
}

#[test]
fn matmul_bnb4_matches_numpy() {
    for (case, n, k, bs) in
        [("bnb4_bs64", 29, 256, 64), ("bnb4_bs64_straddle", 13, 100, 64), ("bnb4_bs16_odd", 7, 33, 16)]
    {
        let a_arr = load(case, "a");
        let m = dims(&a_arr)[0];
        assert_eq!(dims(&a_arr)[1], k);
        let a = f32s(&a_arr);
        let b = load(case, "b").data.to_vec();
        let absmax = f32s(&load(case, "absmax"));
        let y = f32s(&load(case, "y"));
        let w = Bnb4Nf4 { n, k, block_size: bs, b: &b, absmax: &absmax };
        let deq = dequantize_bnb4_nf4(&w);
        for isa in tiers() {
            let mut c = vec![0.0; m * n];
            explicit::matmul_bnb4_nf4_f32_with(isa, m, &a, &w, &mut c);
            check(&format!("{case} {isa}"), &c, &y, &a, &deq, m, n, k);
        }
    }
}

#[test]
fn matmul_ternary_matches_numpy() {
    for (case, n) in [("ternary_k256", 31), ("ternary_k70", 9)] {
        let a_arr = load(case, "a");
        let [m, k] = dims(&a_arr)[..] else { panic!() };
        let a = f32s(&a_arr);
        let packed = load(case, "packed").data.to_vec();
        let scale = f32s(&load(case, "scale"))[0];
        let y = f32s(&load(case, "y"));
        let w = Ternary2 { n, k, packed: &packed, scale };
        let deq = dequantize_ternary2(&w);
        for isa in tiers() {
            let mut c = vec![0.0; m * n];
            explicit::matmul_ternary2_f32_with(isa, m, &a, &w, &mut c);
            check(&format!("{case} {isa}"), &c, &y, &a, &deq, m, n, k);
        }
    }
}

#[test]
fn matmul_integer_matches_numpy() {
    let mut cases = vec!["int8_ui_rowcol".to_string()];
    for ab in ["uu", "ui", "iu", "ii"] {
        for z in ["tensor", "col"] {
            cases.push(format!("int8_{ab}_{z}"));
        }
    }
    for case in &cases {
        let a_arr = load(case, "a");
        let b_arr = load(case, "b");
        let [m, k] = dims(&a_arr)[..] else { panic!() };
        let n = dims(&b_arr)[1];
        let (za_arr, zb_arr) = (load(case, "a_zero"), load(case, "b_zero"));
        let zint = |arr: &NpyArray| -> Vec<i32> {
            let signed = matches!(arr.dtype, smelt_tensor::DType::I8);
            arr.data.iter().map(|&v| if signed { v as i8 as i32 } else { v as i32 }).collect()
        };
        let (za, zb) = (zint(&za_arr), zint(&zb_arr));
        let y: Vec<i32> =
            load(case, "y").data.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap())).collect();
        for isa in tiers() {
            let mut c = vec![0i32; m * n];
            explicit::matmul_integer_with(isa, m, n, k, mat(&a_arr), zp(&za), mat(&b_arr), zp(&zb), &mut c);
            assert_eq!(c, y, "{case} {isa}");
        }
    }
}
