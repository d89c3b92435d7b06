//! The cache-blocked GEMM paths (many rows of `A`: prefill): `gemm_f32_packed` from 8 rows
//! and the packed 4-bit matmuls from 5 rows, on every SIMD tier this CPU has, over shapes that
//! cross the kernels' blocks (row tiles of 6 and 8, 32-column panels, 64-column chunks, `k`
//! blocks of 256) and misaligned slices.
//!
//! - Within the float bound of the scalar reference (`common::assert_close`).
//! - Bit for bit what each row computes alone (`m = 1`, the unblocked in-order FMA kernel): the
//!   blocking changes no bit, so results do not depend on how many rows a call has.
//! - The 4-bit paths, bit for bit, the f32 path on the weight dequantized by the ONNX-layout
//!   scalar reference (`dequantize_nbits_q4`, `dequantize_bnb4_nf4`): the panels are
//!   dequantized to exactly those values.

mod common;

use common::{assert_close, at_offset, magnitudes, simd_tiers, Rng};
use smelt_kernels::explicit::*;
use smelt_kernels::*;

fn transpose(rows: usize, cols: usize, v: &[f32]) -> Vec<f32> {
    let mut t = vec![0.0; v.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = v[r * cols + c];
        }
    }
    t
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// `gemm_f32_packed` of each row of `a` on its own.
fn row_by_row(isa: Isa, m: usize, k: usize, a: &[f32], b: &PackedF32) -> Vec<f32> {
    let n = b.shape()[1];
    let mut c = vec![f32::NAN; m * n];
    for i in 0..m {
        gemm_f32_packed_with(isa, 1, &a[i * k..(i + 1) * k], b, &mut c[i * n..(i + 1) * n]);
    }
    c
}

#[test]
fn blocked_f32_matches_scalar_and_rows_alone() {
    let tiers = simd_tiers("blocked_f32");
    let mut rng = Rng::new(21);
    for &(m, n, k) in &[
        (8usize, 1usize, 1usize),
        (8, 32, 16),
        (9, 7, 33),
        (12, 33, 255),
        (13, 65, 256),
        (17, 100, 257),
        (33, 129, 129),
        (7 * 6 + 1, 64, 513),
        (130, 40, 300),
    ] {
        let a = rng.f32s(m * k);
        let b = rng.f32s(k * n);
        let mags = magnitudes(m, n, k, &a, &transpose(k, n, &b));
        let mut want = vec![0.0; m * n];
        gemm_f32_with(Isa::Scalar, m, n, k, &a, &b, &mut want);
        let packed = PackedF32::new(k, n, &b);
        for &isa in &tiers {
            let off = (m + k) % 4;
            let a2 = at_offset(&a, off);
            let mut got = vec![f32::NAN; m * n + off];
            gemm_f32_packed_with(isa, m, &a2[off..], &packed, &mut got[off..]);
            let got = &got[off..];
            assert_close(&format!("blocked gemm_f32_packed {isa} m={m} n={n} k={k}"), got, &want, &mags, k);
            assert_eq!(
                bits(got),
                bits(&row_by_row(isa, m, k, &a, &packed)),
                "blocked gemm_f32_packed {isa} m={m} n={n} k={k}: not each row's bits"
            );
        }
    }
}

#[test]
fn blocked_int4_matches_scalar_and_dequantized_f32() {
    let tiers = simd_tiers("blocked_int4");
    let mut rng = Rng::new(22);
    for &(m, n, k, bs) in &[
        (5usize, 1usize, 1usize, 16usize),
        (5, 33, 17, 16),
        (8, 5, 48, 32),
        (9, 65, 272, 16),
        (6 * 3 + 1, 100, 300, 64),
        (33, 36, 520, 128),
        (40, 64, 256, 256),
    ] {
        for zp in [false, true] {
            let kb = k.div_ceil(bs);
            let b = rng.bytes(n * kb * bs / 2);
            let scales = rng.f32s(n * kb);
            let zps = zp.then(|| rng.bytes(n * kb.div_ceil(2)));
            let w = NBitsQ4 { n, k, block_size: bs, b: &b, scales: &scales, zero_points: zps.as_deref() };
            let deq = dequantize_nbits_q4(&w, None);
            let a = rng.f32s(m * k);
            let mags = magnitudes(m, n, k, &a, &deq);
            let mut want = vec![0.0; m * n];
            matmul_nbits_q4_f32_with(Isa::Scalar, m, &a, &w, &mut want);
            let p = Packed4Bit::from_nbits(&w);
            let deq_packed = PackedF32::new(k, n, &transpose(n, k, &deq));
            for &isa in &tiers {
                let what = format!("blocked int4 {isa} m={m} n={n} k={k} bs={bs} zp={zp}");
                let off = (n + k) % 4;
                let a2 = at_offset(&a, off);
                let mut got = vec![f32::NAN; m * n];
                matmul_packed4_f32_with(isa, m, &a2[off..], &p, &mut got);
                assert_close(&what, &got, &want, &mags, k);
                let mut f32_path = vec![f32::NAN; m * n];
                gemm_f32_packed_with(isa, m, &a, &deq_packed, &mut f32_path);
                assert_eq!(
                    bits(&got),
                    bits(&f32_path),
                    "{what}: not the f32 GEMM's bits on the dequantized weight"
                );
                // The ONNX-layout entry point packs chunks on the fly: the same bits.
                let mut onnx = vec![f32::NAN; m * n];
                matmul_nbits_q4_f32_with(isa, m, &a, &w, &mut onnx);
                assert_eq!(bits(&onnx), bits(&got), "{what}: ONNX layout");
            }
        }
    }
}

#[test]
fn blocked_nf4_matches_scalar_and_dequantized_f32() {
    let tiers = simd_tiers("blocked_nf4");
    let mut rng = Rng::new(23);
    for &(m, n, k, bs) in
        &[(5usize, 3usize, 16usize, 16usize), (9, 33, 64, 32), (17, 65, 320, 64), (33, 40, 512, 128)]
    {
        let b = rng.bytes((n * k).div_ceil(2));
        let absmax: Vec<f32> = rng.f32s((n * k).div_ceil(bs)).iter().map(|v| v.abs()).collect();
        let w = Bnb4Nf4 { n, k, block_size: bs, b: &b, absmax: &absmax };
        let deq = dequantize_bnb4_nf4(&w);
        let a = rng.f32s(m * k);
        let mags = magnitudes(m, n, k, &a, &deq);
        let mut want = vec![0.0; m * n];
        matmul_bnb4_nf4_f32_with(Isa::Scalar, m, &a, &w, &mut want);
        let p = Packed4Bit::from_nf4(&w).expect("block size divides k");
        let deq_packed = PackedF32::new(k, n, &transpose(n, k, &deq));
        for &isa in &tiers {
            let what = format!("blocked nf4 {isa} m={m} n={n} k={k} bs={bs}");
            let mut got = vec![f32::NAN; m * n];
            matmul_packed4_f32_with(isa, m, &a, &p, &mut got);
            assert_close(&what, &got, &want, &mags, k);
            let mut f32_path = vec![f32::NAN; m * n];
            gemm_f32_packed_with(isa, m, &a, &deq_packed, &mut f32_path);
            assert_eq!(
                bits(&got),
                bits(&f32_path),
                "{what}: not the f32 GEMM's bits on the dequantized weight"
            );
            let mut onnx = vec![f32::NAN; m * n];
            matmul_bnb4_nf4_f32_with(isa, m, &a, &w, &mut onnx);
            assert_eq!(bits(&onnx), bits(&got), "{what}: ONNX layout");
        }
    }
}

#[test]
fn tiled_int8_packed_matches_scalar_bit_for_bit() {
    // Many rows: A in tiles of 8 rows, k in blocks of 1024 (AVX512-VNNI); other tiers run
    // their own layout. Exact integers: the scalar definition's bits.
    let mut tiers = simd_tiers("tiled_int8");
    tiers.push(Isa::Scalar);
    let mut rng = Rng::new(24);
    for &(m, n, k) in
        &[(8usize, 1usize, 1usize), (9, 33, 5), (16, 64, 1024), (17, 40, 1100), (33, 65, 2051), (70, 9, 1001)]
    {
        let (a, b) = (rng.bytes(m * k), rng.bytes(k * n));
        for signs in [(false, true), (true, false), (false, false), (true, true)] {
            let am = if signs.0 { Int8Matrix::I8(bytemuck::cast_slice(&a)) } else { Int8Matrix::U8(&a) };
            let bm = if signs.1 { Int8Matrix::I8(bytemuck::cast_slice(&b)) } else { Int8Matrix::U8(&b) };
            let zas: Vec<i32> = (0..m as i32).map(|i| i * 7 - 20).collect();
            let zbs: Vec<i32> = (0..n as i32).map(|j| 3 - j).collect();
            for (za, zb) in [
                (ZeroPoints::PerTensor(0), ZeroPoints::PerTensor(0)),
                (ZeroPoints::PerTensor(-3), ZeroPoints::PerIndex(&zbs)),
                (ZeroPoints::PerIndex(&zas), ZeroPoints::PerTensor(5)),
            ] {
                let mut want = vec![0i32; m * n];
                matmul_integer_with(Isa::Scalar, m, n, k, am, za, bm, zb, &mut want);
                for &isa in &tiers {
                    let packed = PackedInt8::new_for(isa, k, n, bm);
                    let mut got = vec![i32::MIN; m * n];
                    matmul_integer_packed_with(isa, m, am, za, &packed, zb, &mut got);
                    assert_eq!(got, want, "matmul_integer_packed {isa} m={m} n={n} k={k} signs={signs:?}");
                }
            }
        }
    }
}

#[test]
fn scaled_int8_packed_is_the_product_cast_and_scaled() {
    // `matmul_integer_packed_scaled` = `matmul_integer_packed`, each i32 rounded to f32, times
    // the column's (or the one) scale in f32: those bits exactly, on every tier, one row and
    // many, shapes crossing the 32-column panels and 64-column chunks, scales with
    // subnormals, infinities and a NaN, whatever the thread count; zero points of `B` one,
    // per column, or per column all equal (run as one: the tiled kernel then finishes the
    // sums into f32 itself), `A` signed or not, `k` across the tiled kernel's 1024-wide blocks.
    let mut tiers = simd_tiers("scaled_int8");
    tiers.push(Isa::Scalar);
    let mut rng = Rng::new(25);
    let shapes =
        [(1usize, 1usize, 1usize), (1, 129, 300), (7, 65, 33), (16, 200, 1024), (33, 97, 259), (9, 70, 1500)];
    for (case, &(m, n, k)) in shapes.iter().enumerate() {
        let (a, b) = (rng.bytes(m * k), rng.bytes(k * n));
        let am = if case % 2 == 0 { Int8Matrix::U8(&a) } else { Int8Matrix::I8(bytemuck::cast_slice(&a)) };
        let bm = Int8Matrix::I8(bytemuck::cast_slice(&b));
        let mut per_col: Vec<f32> = rng.f32s(n).iter().map(|x| x * 1e-3).collect();
        let specials = [f32::MIN_POSITIVE / 8.0, f32::INFINITY, -0.0, f32::NAN, 3.4e38];
        for (s, v) in per_col.iter_mut().zip(specials) {
            *s = v;
        }
        let zbs: Vec<i32> = (0..n as i32).map(|j| j % 5 - 2).collect();
        let uniform = vec![-3i32; n];
        for scale in [vec![0.0123f32], per_col.clone()] {
            for (za, zb) in [
                (0, ZeroPoints::PerTensor(0)),
                (131, ZeroPoints::PerIndex(&zbs)),
                (-7, ZeroPoints::PerTensor(5)),
                (3, ZeroPoints::PerIndex(&uniform)),
            ] {
                for &isa in &tiers {
                    let packed = PackedInt8::new_for(isa, k, n, bm);
                    let mut acc = vec![0i32; m * n];
                    matmul_integer_packed_with(isa, m, am, ZeroPoints::PerTensor(za), &packed, zb, &mut acc);
                    let want: Vec<u32> = acc
                        .iter()
                        .enumerate()
                        .map(|(i, &x)| (x as f32 * scale[if scale.len() == 1 { 0 } else { i % n }]).to_bits())
                        .collect();
                    for threads in [1, 2, 3] {
                        let got =
                            rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(
                                || {
                                    let mut c = vec![f32::NAN; m * n];
                                    matmul_integer_packed_scaled_with(
                                        isa,
                                        m,
                                        am,
                                        ZeroPoints::PerTensor(za),
                                        &packed,
                                        zb,
                                        &scale,
                                        &mut c,
                                    );
                                    bits(&c)
                                },
                            );
                        assert_eq!(
                            got,
                            want,
                            "scaled {isa} m={m} n={n} k={k} scales={} za={za} threads={threads}",
                            scale.len()
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn packing_from_b_transposed_equals_packing_b() {
    let mut rng = Rng::new(5);
    for &(k, n) in &[(1usize, 1usize), (3, 31), (17, 32), (64, 33), (5, 100)] {
        let bt = rng.f32s(n * k);
        assert_eq!(PackedF32::from_bt(k, n, &bt), PackedF32::new(k, n, &transpose(n, k, &bt)), "k={k} n={n}");
    }
}
