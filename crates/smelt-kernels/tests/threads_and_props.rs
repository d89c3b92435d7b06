//! Bit-identical results whatever the thread count (work is split over output columns only),
//! split invariance of the column-range kernels, property tests of every tier against the
//! scalar reference, the NF4 code against smelt-quant's, and the dispatch switch.

mod common;

use common::{assert_close, magnitudes, simd_tiers, Rng};
use proptest::prelude::*;
use smelt_kernels::explicit::*;
use smelt_kernels::*;

fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(f)
}

/// Runs `f` (which returns raw output bits) with 1, 2 and 3 threads and requires equal bits.
fn same_bits_for_all_thread_counts<F: Fn() -> Vec<u32> + Send + Sync>(what: &str, f: F) {
    let one = in_pool(1, &f);
    for t in [2, 3] {
        assert_eq!(in_pool(t, &f), one, "{what}: {t} threads differ from 1");
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn thread_count_does_not_change_bits() {
    let mut rng = Rng::new(11);
    let mut isas = simd_tiers("threads");
    isas.push(Isa::Scalar);
    for &isa in &isas {
        for m in [1usize, 3, 6, 9] {
            let (n, k) = (301, 1024);
            let a = rng.f32s(m * k);
            let b = rng.f32s(n * k);
            same_bits_for_all_thread_counts(&format!("gemm_f32 {isa} m={m}"), || {
                let mut c = vec![0.0; m * n];
                gemm_f32_with(isa, m, n, k, &a, &b, &mut c);
                bits(&c)
            });
            same_bits_for_all_thread_counts(&format!("gemm_f32_bt {isa} m={m}"), || {
                let mut c = vec![0.0; m * n];
                gemm_f32_bt_with(isa, m, n, k, &a, &b, &mut c);
                bits(&c)
            });
            let packed = PackedF32::new(k, n, &b);
            same_bits_for_all_thread_counts(&format!("gemm_f32_packed {isa} m={m}"), || {
                let mut c = vec![0.0; m * n];
                gemm_f32_packed_with(isa, m, &a, &packed, &mut c);
                bits(&c)
            });
            let q = rng.bytes(n * k / 2);
            let scales = rng.f32s(n * k / 32);
            let zps = rng.bytes(n * (k / 32).div_ceil(2));
            let w = NBitsQ4 { n, k, block_size: 32, b: &q, scales: &scales, zero_points: Some(&zps) };
            same_bits_for_all_thread_counts(&format!("nbits {isa} m={m}"), || {
                let mut c = vec![0.0; m * n];
                matmul_nbits_q4_f32_with(isa, m, &a, &w, &mut c);
                bits(&c)
            });
            let (q8, z8) = (rng.bytes(n * k), rng.f32s(n * k / 32));
            let w8 = NBitsQ8 { n, k, block_size: 32, b: &q8, scales: &scales, zero_points: Some(&z8) };
            same_bits_for_all_thread_counts(&format!("nbits8 {isa} m={m}"), || {
                let mut c = vec![0.0; m * n];
                matmul_nbits_q8_f32_with(isa, m, &a, &w8, &mut c);
                bits(&c)
            });
            let absmax = rng.f32s(n * k / 64);
            let w4 = Bnb4Nf4 { n, k, block_size: 64, b: &q, absmax: &absmax };
            same_bits_for_all_thread_counts(&format!("nf4 {isa} m={m}"), || {
                let mut c = vec![0.0; m * n];
                matmul_bnb4_nf4_f32_with(isa, m, &a, &w4, &mut c);
                bits(&c)
            });
            let t = Ternary2 { n, k, packed: &q[..n * k / 4], scale: 0.5 };
            same_bits_for_all_thread_counts(&format!("ternary {isa} m={m}"), || {
                let mut c = vec![0.0; m * n];
                matmul_ternary2_f32_with(isa, m, &a, &t, &mut c);
                bits(&c)
            });
            let (p4, pn, pt) =
                (Packed4Bit::from_nbits(&w), Packed4Bit::from_nf4(&w4).unwrap(), PackedTernary2::new(&t));
            same_bits_for_all_thread_counts(&format!("packed nbits {isa} m={m}"), || {
                let mut c = vec![0.0; m * n];
                matmul_packed4_f32_with(isa, m, &a, &p4, &mut c);
                bits(&c)
            });
            same_bits_for_all_thread_counts(&format!("packed nf4 {isa} m={m}"), || {
                let mut c = vec![0.0; m * n];
                matmul_packed4_f32_with(isa, m, &a, &pn, &mut c);
                bits(&c)
            });
            same_bits_for_all_thread_counts(&format!("packed ternary {isa} m={m}"), || {
                let mut c = vec![0.0; m * n];
                matmul_packed_ternary2_f32_with(isa, m, &a, &pt, &mut c);
                bits(&c)
            });
            let (ai, bi) = (rng.bytes(m * k), rng.bytes(n * k));
            same_bits_for_all_thread_counts(&format!("int8 {isa} m={m}"), || {
                let mut c = vec![0i32; m * n];
                matmul_integer_bt_with(
                    isa,
                    m,
                    n,
                    k,
                    Int8Matrix::U8(&ai),
                    ZeroPoints::PerTensor(3),
                    Int8Matrix::I8(bytemuck::cast_slice(&bi)),
                    ZeroPoints::PerTensor(-2),
                    &mut c,
                );
                c.iter().map(|&v| v as u32).collect()
            });
        }
    }
}

#[test]
fn nbits8_rows_compute_the_same_bits_alone_or_together() {
    // The 8-bit GEMV takes 4, 2 or 1 weight rows together depending on the activation rows:
    // each output is the same instruction sequence whatever the grouping, so a weight row
    // alone against one activation row gives the bits it gets in a group of four, or beside
    // three other activation rows.
    let mut rng = Rng::new(13);
    for isa in simd_tiers("nbits8 rows") {
        let (n, k, bs) = (11usize, 200usize, 32usize);
        let kb = k.div_ceil(bs);
        let (q, scales, zps) = (rng.bytes(n * kb * bs), rng.f32s(n * kb), rng.f32s(n * kb));
        let w = NBitsQ8 { n, k, block_size: bs, b: &q, scales: &scales, zero_points: Some(&zps) };
        let a = rng.f32s(4 * k);
        for m in 1..=4 {
            let mut all = vec![0.0; m * n];
            matmul_nbits_q8_f32_with(isa, m, &a[..m * k], &w, &mut all);
            for j in 0..n {
                let wj = NBitsQ8 {
                    n: 1,
                    b: &q[j * kb * bs..(j + 1) * kb * bs],
                    scales: &scales[j * kb..(j + 1) * kb],
                    zero_points: Some(&zps[j * kb..(j + 1) * kb]),
                    ..w
                };
                for i in 0..m {
                    let mut one = [0.0f32];
                    matmul_nbits_q8_f32_with(isa, 1, &a[i * k..(i + 1) * k], &wj, &mut one);
                    assert_eq!(
                        one[0].to_bits(),
                        all[i * n + j].to_bits(),
                        "nbits8 {isa} m={m} row {i} column {j}"
                    );
                }
            }
        }
    }
}

#[test]
fn column_subsets_compute_the_same_bits() {
    // A kernel computing only some columns (as one task does) gives those columns' bits: the
    // property that makes the fixed chunking thread-count independent, checked directly by
    // computing single columns through a one-column weight.
    let mut rng = Rng::new(12);
    for isa in simd_tiers("split") {
        let (m, n, k) = (2usize, 9usize, 96usize);
        let a = rng.f32s(m * k);
        let b = rng.f32s(n * k);
        let mut full = vec![0.0; m * n];
        gemm_f32_bt_with(isa, m, n, k, &a, &b, &mut full);
        let q = rng.bytes(n * k / 2);
        let scales = rng.f32s(n * k / 32);
        let w = NBitsQ4 { n, k, block_size: 32, b: &q, scales: &scales, zero_points: None };
        let mut full4 = vec![0.0; n];
        matmul_nbits_q4_f32_with(isa, 1, &a[..k], &w, &mut full4);
        // The same through the packed layouts: a row computes the same bits in any tile slot.
        let mut full_p4 = vec![0.0; n];
        matmul_packed4_f32_with(isa, 1, &a[..k], &Packed4Bit::from_nbits(&w), &mut full_p4);
        assert_eq!(bits(&full_p4), bits(&full4), "packed nbits {isa} = nbits");
        let tq: Vec<u8> = q.iter().map(|b| b & 0x66).collect(); // codes 0..=2
        let tw = Ternary2 { n, k, packed: &tq[..n * k / 4], scale: 0.25 };
        let mut full_t = vec![0.0; n];
        matmul_packed_ternary2_f32_with(isa, 1, &a[..k], &PackedTernary2::new(&tw), &mut full_t);
        for j in 0..n {
            let mut one = vec![0.0; m];
            gemm_f32_bt_with(isa, m, 1, k, &a, &b[j * k..(j + 1) * k], &mut one);
            assert_eq!(
                bits(&one),
                vec![full[j].to_bits(), full[n + j].to_bits()],
                "gemm_f32_bt {isa} column {j}"
            );
            let wj = NBitsQ4 {
                n: 1,
                k,
                block_size: 32,
                b: &q[j * k / 2..(j + 1) * k / 2],
                scales: &scales[j * 3..(j + 1) * 3],
                zero_points: None,
            };
            let mut one4 = [0.0f32];
            matmul_nbits_q4_f32_with(isa, 1, &a[..k], &wj, &mut one4);
            assert_eq!(one4[0].to_bits(), full4[j].to_bits(), "nbits {isa} column {j}");
            let tj = Ternary2 { n: 1, k, packed: &tq[j * k / 4..(j + 1) * k / 4], scale: 0.25 };
            let mut one_t = [0.0f32];
            matmul_packed_ternary2_f32_with(isa, 1, &a[..k], &PackedTernary2::new(&tj), &mut one_t);
            assert_eq!(one_t[0].to_bits(), full_t[j].to_bits(), "packed ternary {isa} column {j}");
        }
    }
}

#[test]
fn nf4_code_is_smelt_quants() {
    assert_eq!(NF4_CODE_BITS, smelt_quant::nf4::NF4_CODE_BITS);
}

#[test]
fn selection_is_reported() {
    let s = selected();
    eprintln!("kernels selected: {s}");
    assert!(s.float.is_available() && s.int8.is_available());
    if std::env::var_os("SMELT_FORCE_SCALAR").is_some_and(|v| v == "1") {
        assert_eq!((s.float, s.int8, s.forced_scalar), (Isa::Scalar, Isa::Scalar, true));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn prop_f32_gemm(m in 0usize..6, n in 0usize..40, k in 0usize..80, seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let a = rng.f32s(m * k);
        let b = rng.f32s(n * k);
        let mags = magnitudes(m, n, k, &a, &b);
        let mut want = vec![0.0; m * n];
        gemm_f32_bt_with(Isa::Scalar, m, n, k, &a, &b, &mut want);
        for isa in Isa::ALL.into_iter().filter(|i| i.is_available()) {
            let mut got = vec![0.0; m * n];
            gemm_f32_bt_with(isa, m, n, k, &a, &b, &mut got);
            assert_close("prop gemm_f32_bt", &got, &want, &mags, k);
        }
    }

    #[test]
    fn prop_int8(m in 0usize..4, n in 0usize..20, k in 0usize..140, signs in any::<(bool, bool)>(), za in -300i32..300, zb in -300i32..300, seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let (a, b) = (rng.bytes(m * k), rng.bytes(n * k));
        let am = if signs.0 { Int8Matrix::I8(bytemuck::cast_slice(&a)) } else { Int8Matrix::U8(&a) };
        let bm = if signs.1 { Int8Matrix::I8(bytemuck::cast_slice(&b)) } else { Int8Matrix::U8(&b) };
        let mut want = vec![0i32; m * n];
        matmul_integer_bt_with(Isa::Scalar, m, n, k, am, ZeroPoints::PerTensor(za), bm, ZeroPoints::PerTensor(zb), &mut want);
        for isa in Isa::ALL.into_iter().filter(|i| i.is_available()) {
            let mut got = vec![0i32; m * n];
            matmul_integer_bt_with(isa, m, n, k, am, ZeroPoints::PerTensor(za), bm, ZeroPoints::PerTensor(zb), &mut got);
            prop_assert_eq!(&got, &want);
        }
    }

    #[test]
    fn prop_nbits(m in 1usize..4, n in 1usize..12, k in 1usize..200, bs_log in 4u32..8, zp in any::<bool>(), seed in any::<u64>()) {
        let bs = 1usize << bs_log;
        let mut rng = Rng::new(seed);
        let kb = k.div_ceil(bs);
        let q = rng.bytes(n * kb * bs / 2);
        let scales = rng.f32s(n * kb);
        let zps = rng.bytes(n * kb.div_ceil(2));
        let w = NBitsQ4 { n, k, block_size: bs, b: &q, scales: &scales, zero_points: zp.then_some(&zps[..]) };
        let a = rng.f32s(m * k);
        let mags = magnitudes(m, n, k, &a, &dequantize_nbits_q4(&w, None));
        let mut want = vec![0.0; m * n];
        matmul_nbits_q4_f32_with(Isa::Scalar, m, &a, &w, &mut want);
        for isa in Isa::ALL.into_iter().filter(|i| i.is_available()) {
            let mut got = vec![0.0; m * n];
            matmul_nbits_q4_f32_with(isa, m, &a, &w, &mut got);
            assert_close("prop nbits", &got, &want, &mags, k);
        }
    }

    #[test]
    fn prop_packed4(m in 1usize..6, n in 1usize..40, k in 1usize..200, bs_log in 4u32..8, zp in any::<bool>(), seed in any::<u64>()) {
        let bs = 1usize << bs_log;
        let mut rng = Rng::new(seed);
        let kb = k.div_ceil(bs);
        let q = rng.bytes(n * kb * bs / 2);
        let scales = rng.f32s(n * kb);
        let zps = rng.bytes(n * kb.div_ceil(2));
        let w = NBitsQ4 { n, k, block_size: bs, b: &q, scales: &scales, zero_points: zp.then_some(&zps[..]) };
        let p = Packed4Bit::from_nbits(&w);
        let a = rng.f32s(m * k);
        let mags = magnitudes(m, n, k, &a, &dequantize_nbits_q4(&w, None));
        let mut want = vec![0.0; m * n];
        matmul_nbits_q4_f32_with(Isa::Scalar, m, &a, &w, &mut want);
        for isa in Isa::ALL.into_iter().filter(|i| i.is_available()) {
            let mut got = vec![0.0; m * n];
            matmul_packed4_f32_with(isa, m, &a, &p, &mut got);
            assert_close("prop packed4", &got, &want, &mags, k);
        }
    }

    #[test]
    fn prop_packed_ternary(m in 1usize..6, n in 1usize..40, k in 0usize..200, seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let packed: Vec<u8> = (0..(n * k).div_ceil(4)).map(|_| (0..4).fold(0u8, |b, i| b | ((rng.below(4) as u8) << (2 * i)))).collect();
        let w = Ternary2 { n, k, packed: &packed, scale: 1.5 };
        let p = PackedTernary2::new(&w);
        let a = rng.f32s(m * k);
        let mags = magnitudes(m, n, k, &a, &dequantize_ternary2(&w));
        let mut want = vec![0.0; m * n];
        matmul_ternary2_f32_with(Isa::Scalar, m, &a, &w, &mut want);
        for isa in Isa::ALL.into_iter().filter(|i| i.is_available()) {
            let mut got = vec![0.0; m * n];
            matmul_packed_ternary2_f32_with(isa, m, &a, &p, &mut got);
            assert_close("prop packed ternary", &got, &want, &mags, k);
        }
    }

    #[test]
    fn prop_ternary(m in 1usize..4, n in 1usize..12, k4 in 0usize..60, seed in any::<u64>()) {
        let k = 4 * k4;
        let mut rng = Rng::new(seed);
        let packed: Vec<u8> = (0..(n * k).div_ceil(4)).map(|_| (0..4).fold(0u8, |b, i| b | ((rng.below(3) as u8) << (2 * i)))).collect();
        let w = Ternary2 { n, k, packed: &packed, scale: 1.5 };
        let a = rng.f32s(m * k);
        let mags = magnitudes(m, n, k, &a, &dequantize_ternary2(&w));
        let mut want = vec![0.0; m * n];
        matmul_ternary2_f32_with(Isa::Scalar, m, &a, &w, &mut want);
        for isa in Isa::ALL.into_iter().filter(|i| i.is_available()) {
            let mut got = vec![0.0; m * n];
            matmul_ternary2_f32_with(isa, m, &a, &w, &mut got);
            assert_close("prop ternary", &got, &want, &mags, k);
        }
    }
}

#[test]
fn fresh_outputs_equal_overwritten_ones() {
    // The `_vec` forms write each element of a new vector once (never zero-filled when split
    // over threads); they must equal the slice forms, which must overwrite a buffer of NaNs,
    // with any thread count and on both sides of the blocked kernels' row count.
    let mut rng = Rng::new(29);
    let (n, k) = (301, 1024);
    let b = rng.f32s(n * k);
    let packed = PackedF32::new(k, n, &b);
    let q = rng.bytes(n * k / 2);
    let scales = rng.f32s(n * k / 32);
    let w = NBitsQ4 { n, k, block_size: 32, b: &q, scales: &scales, zero_points: None };
    let p4 = Packed4Bit::from_nbits(&w);
    let bi8: Vec<i8> = rng.bytes(n * k).into_iter().map(|x| x as i8).collect();
    let pi8 = PackedInt8::new(k, n, Int8Matrix::I8(&bi8));
    let scale = rng.f32s(n);
    for m in [1usize, 5, 9, 40] {
        let a = rng.f32s(m * k);
        let au8 = rng.bytes(m * k);
        for threads in [1, 2, 3] {
            let what = format!("m={m} threads={threads}");
            in_pool(threads, || {
                let mut c = vec![f32::NAN; m * n];
                gemm_f32_packed(m, &a, &packed, &mut c);
                assert_eq!(bits(&gemm_f32_packed_vec(m, &a, &packed)), bits(&c), "gemm_f32_packed {what}");
                c.fill(f32::NAN);
                p4.matmul(m, &a, &mut c);
                assert_eq!(bits(&p4.matmul_vec(m, &a)), bits(&c), "packed 4-bit {what}");
                c.fill(f32::NAN);
                let (za, zb) = (ZeroPoints::PerTensor(131), ZeroPoints::PerTensor(0));
                matmul_integer_packed_scaled(m, Int8Matrix::U8(&au8), za, &pi8, zb, &scale, &mut c);
                let fresh = matmul_integer_packed_scaled_vec(m, Int8Matrix::U8(&au8), za, &pi8, zb, &scale);
                assert_eq!(bits(&fresh), bits(&c), "int8 scaled {what}");
                assert!(c.iter().all(|x| !x.is_nan()), "{what}: an element was not written");
            });
        }
    }
}

#[test]
fn batched_products_equal_each_product_alone() {
    // Attention's per-head products: every product of the batch must have the bits
    // `gemm_f32` / `gemm_f32_bt` give it alone (then one division per element), with any
    // thread count, on both sides of the blocked kernels' row count, whole and partial
    // column chunks, `k` of 0 and across a `k` block.
    let mut rng = Rng::new(31);
    for (m, n, k) in
        [(1usize, 5usize, 3usize), (4, 64, 64), (8, 128, 64), (9, 33, 129), (40, 130, 64), (12, 64, 0)]
    {
        for nb in [0usize, 1, 3] {
            let a: Vec<Vec<f32>> = (0..nb).map(|_| rng.f32s(m * k)).collect();
            let b: Vec<Vec<f32>> = (0..nb).map(|_| rng.f32s(k * n)).collect();
            let (ar, br): (Vec<&[f32]>, Vec<&[f32]>) =
                (a.iter().map(|v| &v[..]).collect(), b.iter().map(|v| &v[..]).collect());
            // Also with one B (or A) shared by every product, as a broadcast batch dim gives.
            let shared_b: Vec<&[f32]> = br.iter().map(|_| br[0]).collect();
            let shared_a: Vec<&[f32]> = ar.iter().map(|_| ar[0]).collect();
            for (ar, br) in [(&ar, &br), (&ar, &shared_b), (&shared_a, &br)] {
                for bt in [false, true] {
                    for divisor in [None, Some(8.0f32), Some(3.0)] {
                        let mut want = Vec::new();
                        for i in 0..nb {
                            let mut c = vec![f32::NAN; m * n];
                            if bt {
                                gemm_f32_bt(m, n, k, ar[i], br[i], &mut c);
                            } else {
                                gemm_f32(m, n, k, ar[i], br[i], &mut c);
                            }
                            if let Some(d) = divisor {
                                c.iter_mut().for_each(|x| *x /= d);
                            }
                            want.extend(c);
                        }
                        for threads in [1, 2, 3] {
                            let got = in_pool(threads, || gemm_f32_batch_vec(m, n, k, ar, br, bt, divisor));
                            let what =
                                format!("{m}×{n}×{k} nb={nb} bt={bt} divisor={divisor:?} threads={threads}");
                            assert_eq!(bits(&got), bits(&want), "{what}");
                        }
                    }
                }
            }
        }
    }
}
