//! Every SIMD tier this CPU has against the scalar reference: awkward shapes (0, 1, 15, 16,
//! 17, 63, 64, 65, 255, non-multiples of blocks), misaligned slices, integer kernels bit for
//! bit, float kernels within `2·(k+2)·ε·Σ|a||w|` (see `common::assert_close`).

mod common;

use common::{assert_close, at_offset, magnitudes, simd_tiers, Rng};
use smelt_kernels::explicit::*;
use smelt_kernels::*;

const MS: &[usize] = &[0, 1, 2, 3, 4, 5, 7, 8, 9, 12, 17];
const NS: &[usize] = &[0, 1, 3, 4, 5, 15, 16, 17, 33, 64, 65, 129];
const KS: &[usize] = &[0, 1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 255];

fn transpose(rows: usize, cols: usize, v: &[f32]) -> Vec<f32> {
    let mut t = vec![0.0; v.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = v[r * cols + c];
        }
    }
    t
}

#[test]
fn f32_gemm_tiers_match_scalar() {
    let tiers = simd_tiers("f32_gemm");
    let mut rng = Rng::new(1);
    for &m in MS {
        for &n in NS {
            for &k in KS {
                let a = rng.f32s(m * k);
                let b = rng.f32s(k * n); // k×n
                let bt = transpose(k, n, &b); // n×k
                let mags = magnitudes(m, n, k, &a, &bt);
                let mut want = vec![0.0; m * n];
                gemm_f32_with(Isa::Scalar, m, n, k, &a, &b, &mut want);
                let mut want_packed = vec![0.0; m * n];
                gemm_f32_packed_with(Isa::Scalar, m, &a, &PackedF32::new(k, n, &b), &mut want_packed);
                assert_eq!(
                    want_packed, want,
                    "scalar gemm_f32_packed is gemm_f32's reference, m={m} n={n} k={k}"
                );
                let mut want_bt = vec![0.0; m * n];
                gemm_f32_bt_with(Isa::Scalar, m, n, k, &a, &bt, &mut want_bt);
                assert_close("scalar gemm vs gemm_bt", &want, &want_bt, &mags, k);
                for &isa in &tiers {
                    let off = (m + n + k) % 4;
                    let (a2, b2, bt2) = (at_offset(&a, off), at_offset(&b, off), at_offset(&bt, off));
                    let mut c2 = vec![f32::NAN; m * n + off];
                    gemm_f32_with(isa, m, n, k, &a2[off..], &b2[off..], &mut c2[off..]);
                    assert_close(&format!("gemm_f32 {isa} m={m} n={n} k={k}"), &c2[off..], &want, &mags, k);
                    let mut c3 = vec![f32::NAN; m * n + off];
                    gemm_f32_bt_with(isa, m, n, k, &a2[off..], &bt2[off..], &mut c3[off..]);
                    assert_close(
                        &format!("gemm_f32_bt {isa} m={m} n={n} k={k}"),
                        &c3[off..],
                        &want_bt,
                        &mags,
                        k,
                    );
                    // Packed B: the same arithmetic as gemm_f32's outer-product kernel.
                    let packed = PackedF32::new(k, n, &b);
                    let mut c4 = vec![f32::NAN; m * n + off];
                    gemm_f32_packed_with(isa, m, &a2[off..], &packed, &mut c4[off..]);
                    assert_close(
                        &format!("gemm_f32_packed {isa} m={m} n={n} k={k}"),
                        &c4[off..],
                        &want,
                        &mags,
                        k,
                    );
                    if m < 8 {
                        assert_eq!(
                            c4[off..],
                            c2[off..],
                            "gemm_f32_packed {isa} m={m} n={n} k={k}: not gemm_f32's bits"
                        );
                    }
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn int8_case(
    isa: Isa,
    m: usize,
    n: usize,
    k: usize,
    a: &[u8],
    b: &[u8],
    signs: (bool, bool),
    zps: (&[i32], &[i32]),
    off: usize,
) {
    let (a2, b2) = (at_offset(a, off), at_offset(b, off));
    let am = if signs.0 { Int8Matrix::I8(bytemuck_i8(&a2[off..])) } else { Int8Matrix::U8(&a2[off..]) };
    let bm = if signs.1 { Int8Matrix::I8(bytemuck_i8(&b2[off..])) } else { Int8Matrix::U8(&b2[off..]) };
    let za = if zps.0.len() == 1 { ZeroPoints::PerTensor(zps.0[0]) } else { ZeroPoints::PerIndex(zps.0) };
    let zb = if zps.1.len() == 1 { ZeroPoints::PerTensor(zps.1[0]) } else { ZeroPoints::PerIndex(zps.1) };
    let mut want = vec![0i32; m * n];
    matmul_integer_bt_with(Isa::Scalar, m, n, k, am, za, bm, zb, &mut want);
    let mut got = vec![i32::MIN; m * n + off];
    matmul_integer_bt_with(isa, m, n, k, am, za, bm, zb, &mut got[off..]);
    assert_eq!(
        &got[off..],
        &want[..],
        "matmul_integer_bt {isa} m={m} n={n} k={k} signs={signs:?} zps={zps:?}"
    );
    // The k×n entry point transposes B first: same bits.
    let b_kn = transpose_bytes(n, k, &b2[off..]);
    let bm_kn = if signs.1 { Int8Matrix::I8(bytemuck_i8(&b_kn)) } else { Int8Matrix::U8(&b_kn) };
    let mut got_kn = vec![0i32; m * n];
    matmul_integer_with(isa, m, n, k, am, za, bm_kn, zb, &mut got_kn);
    assert_eq!(got_kn, want, "matmul_integer {isa} m={m} n={n} k={k}");
    // B packed once (VNNI panels on AVX512-VNNI, pair panels on AVX2, Bᵀ otherwise): same
    // bits, on the packing tier and, for the panels, through the scalar definition too.
    let packed = PackedInt8::new_for(isa, k, n, bm_kn);
    let runs: &[Isa] = if matches!(isa, Isa::Avx512Vnni | Isa::Avx2) { &[isa, Isa::Scalar] } else { &[isa] };
    for &run_isa in runs {
        let mut got_p = vec![i32::MIN; m * n];
        matmul_integer_packed_with(run_isa, m, am, za, &packed, zb, &mut got_p);
        assert_eq!(
            got_p, want,
            "matmul_integer_packed packed for {isa}, run on {run_isa}, m={m} n={n} k={k} signs={signs:?}"
        );
    }
}

fn bytemuck_i8(s: &[u8]) -> &[i8] {
    bytemuck::cast_slice(s)
}

#[test]
fn int8_tiers_match_scalar_bit_for_bit() {
    let tiers = simd_tiers("int8");
    let mut rng = Rng::new(2);
    let ks: &[usize] = &[0, 1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255];
    // m covers the 8-, 4- and 2-row passes of the SIMD kernels and their remainders; n one
    // and several 32-column panels with tails.
    for &m in &[0usize, 1, 3, 4, 9, 17] {
        for &n in &[0usize, 1, 5, 17, 33, 65] {
            for &k in ks {
                let a = rng.bytes(m * k);
                let b = rng.bytes(n * k);
                for signs in [(false, true), (true, false), (true, true), (false, false)] {
                    let za_row: Vec<i32> =
                        (0..m).map(|_| rng.u8() as i32 - if signs.0 { 128 } else { 0 }).collect();
                    let zb_col: Vec<i32> =
                        (0..n).map(|_| rng.u8() as i32 - if signs.1 { 128 } else { 0 }).collect();
                    let zero: &[i32] = &[0];
                    let za_t = [rng.u8() as i32];
                    let zb_t = [rng.u8() as i32 - 128];
                    for zps in [
                        (zero, zero),
                        (&za_t[..], &zb_t[..]),
                        (&za_row[..], &zb_col[..]),
                        (zero, &zb_col[..]),
                        (&za_row[..], zero),
                    ] {
                        for &isa in &tiers {
                            int8_case(isa, m, n, k, &a, &b, signs, zps, (m + n + k) % 7);
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn int8_extremes_do_not_saturate() {
    // 255·(-128) and 255·127 pairs: vpmaddubsw would saturate these in i16, the kernels must not.
    let tiers = simd_tiers("int8_extremes");
    for k in [32usize, 64, 65, 512, 1000] {
        for (av, bv) in [(255u8, 0x80u8), (255, 0x7F), (0, 0x80), (128, 0x80)] {
            let a = vec![av; 2 * k];
            let b = vec![bv; 5 * k];
            for signs in [(false, true), (true, false), (true, true), (false, false)] {
                for &isa in &tiers {
                    int8_case(isa, 2, 5, k, &a, &b, signs, (&[3], &[-7]), 0);
                }
            }
        }
    }
    // And the value the definition gives, independently of both implementations.
    let k = 1000;
    let mut c = [0i32; 1];
    matmul_integer(
        1,
        1,
        k,
        Int8Matrix::U8(&vec![255; k]),
        ZeroPoints::PerTensor(0),
        Int8Matrix::I8(&vec![-128; k]),
        ZeroPoints::PerTensor(0),
        &mut c,
    );
    assert_eq!(c[0], -255 * 128 * 1000);
}

fn nbits_weight(
    rng: &mut Rng,
    n: usize,
    k: usize,
    bs: usize,
    zp: bool,
) -> (Vec<u8>, Vec<f32>, Option<Vec<u8>>) {
    let kb = k.div_ceil(bs);
    let b = rng.bytes(n * kb * bs / 2);
    let scales = rng.f32s(n * kb);
    let zps = zp.then(|| rng.bytes(n * kb.div_ceil(2)));
    (b, scales, zps)
}

#[test]
fn nbits_q4_tiers_match_scalar() {
    let tiers = simd_tiers("nbits_q4");
    let mut rng = Rng::new(3);
    for &bs in &[16usize, 32, 64, 128] {
        for &m in &[1usize, 2, 3, 5] {
            for &n in &[1usize, 3, 4, 5, 17] {
                for &k in &[1usize, 15, 16, 17, 33, 63, 64, 65, 255, 256] {
                    for zp in [false, true] {
                        let (b, scales, zps) = nbits_weight(&mut rng, n, k, bs, zp);
                        let w = NBitsQ4 {
                            n,
                            k,
                            block_size: bs,
                            b: &b,
                            scales: &scales,
                            zero_points: zps.as_deref(),
                        };
                        let a = rng.f32s(m * k);
                        let deq = dequantize_nbits_q4(&w, None);
                        let mags = magnitudes(m, n, k, &a, &deq);
                        let mut want = vec![0.0; m * n];
                        matmul_nbits_q4_f32_with(Isa::Scalar, m, &a, &w, &mut want);
                        // The scalar kernel is the dequantized weight times A.
                        let mut via_deq = vec![0.0; m * n];
                        gemm_f32_bt_with(Isa::Scalar, m, n, k, &a, &deq, &mut via_deq);
                        assert_eq!(want, via_deq, "scalar MatMulNBits = dequantize + gemm_bt");
                        for &isa in &tiers {
                            let off = (n + k) % 4;
                            let a2 = at_offset(&a, off);
                            let mut got = vec![f32::NAN; m * n];
                            matmul_nbits_q4_f32_with(isa, m, &a2[off..], &w, &mut got);
                            assert_close(
                                &format!("nbits {isa} bs={bs} m={m} n={n} k={k} zp={zp}"),
                                &got,
                                &want,
                                &mags,
                                k,
                            );
                        }
                    }
                }
            }
        }
    }
}

/// Zero points of an 8-bit MatMulNBits weight: none, a u8 per block (as f32), or floats.
#[derive(Clone, Copy, Debug)]
enum Zp8 {
    None,
    Bytes,
    Floats,
}

#[test]
fn nbits_q8_tiers_match_scalar() {
    let tiers = simd_tiers("nbits_q8");
    let mut rng = Rng::new(8);
    for &bs in &[16usize, 32, 128] {
        for &m in &[1usize, 2, 3, 4, 5, 9] {
            for &n in &[1usize, 2, 3, 4, 5, 7, 17, 65, 129] {
                for &k in &[1usize, 15, 16, 17, 33, 64, 65, 255, 256] {
                    for zp in [Zp8::None, Zp8::Bytes, Zp8::Floats] {
                        let kb = k.div_ceil(bs);
                        let b = rng.bytes(n * kb * bs);
                        let scales = rng.f32s(n * kb);
                        let zps: Option<Vec<f32>> = match zp {
                            Zp8::None => None,
                            Zp8::Bytes => Some(rng.bytes(n * kb).into_iter().map(f32::from).collect()),
                            Zp8::Floats => {
                                Some(rng.f32s(n * kb).into_iter().map(|x| 128.0 + 100.0 * x).collect())
                            }
                        };
                        let w = NBitsQ8 {
                            n,
                            k,
                            block_size: bs,
                            b: &b,
                            scales: &scales,
                            zero_points: zps.as_deref(),
                        };
                        let a = rng.f32s(m * k);
                        let deq = dequantize_nbits_q8(&w);
                        let mags = magnitudes(m, n, k, &a, &deq);
                        let mut want = vec![0.0; m * n];
                        matmul_nbits_q8_f32_with(Isa::Scalar, m, &a, &w, &mut want);
                        let mut via_deq = vec![0.0; m * n];
                        gemm_f32_bt_with(Isa::Scalar, m, n, k, &a, &deq, &mut via_deq);
                        assert_eq!(want, via_deq, "scalar 8-bit MatMulNBits = dequantize + gemm_bt");
                        for &isa in &tiers {
                            let off = (n + k) % 4;
                            let a2 = at_offset(&a, off);
                            let mut got = vec![f32::NAN; m * n];
                            matmul_nbits_q8_f32_with(isa, m, &a2[off..], &w, &mut got);
                            assert_close(
                                &format!("nbits8 {isa} bs={bs} m={m} n={n} k={k} zp={zp:?}"),
                                &got,
                                &want,
                                &mags,
                                k,
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn nbits_q8_codes_at_their_zero_point_give_exact_zeros() {
    // Every code equal to its block's zero point: each block's sum is exactly 0 on every tier,
    // whatever the activations (the kernels subtract the zero point before multiplying).
    let mut rng = Rng::new(81);
    let (n, k, bs) = (9usize, 200usize, 32usize);
    let kb = k.div_ceil(bs);
    let zb = rng.bytes(n * kb);
    let b: Vec<u8> = (0..n * kb * bs).map(|e| zb[e / bs]).collect();
    let zps: Vec<f32> = zb.iter().map(|&z| f32::from(z)).collect();
    let scales = rng.f32s(n * kb);
    let w = NBitsQ8 { n, k, block_size: bs, b: &b, scales: &scales, zero_points: Some(&zps) };
    let default = vec![128u8; n * kb * bs];
    let w128 = NBitsQ8 { b: &default, zero_points: None, ..w };
    for isa in std::iter::once(Isa::Scalar).chain(simd_tiers("nbits_q8_zeros")) {
        for m in 1..=4 {
            let a: Vec<f32> = rng.f32s(m * k).into_iter().map(|x| x * 1e30).collect();
            for w in [&w, &w128] {
                let mut got = vec![f32::NAN; m * n];
                matmul_nbits_q8_f32_with(isa, m, &a, w, &mut got);
                assert!(got.iter().all(|&y| y == 0.0), "{isa} m={m}: {got:?}");
            }
        }
    }
}

#[test]
fn bnb4_nf4_tiers_match_scalar() {
    let tiers = simd_tiers("bnb4_nf4");
    let mut rng = Rng::new(4);
    for &bs in &[16usize, 32, 64, 128] {
        for &m in &[1usize, 2, 5] {
            for &n in &[1usize, 3, 4, 5, 17] {
                for &k in &[1usize, 15, 16, 17, 32, 63, 64, 65, 128, 255, 256] {
                    let b = rng.bytes((n * k).div_ceil(2));
                    let absmax: Vec<f32> = rng.f32s((n * k).div_ceil(bs)).iter().map(|v| v.abs()).collect();
                    let w = Bnb4Nf4 { n, k, block_size: bs, b: &b, absmax: &absmax };
                    let a = rng.f32s(m * k);
                    let deq = dequantize_bnb4_nf4(&w);
                    let mags = magnitudes(m, n, k, &a, &deq);
                    let mut want = vec![0.0; m * n];
                    matmul_bnb4_nf4_f32_with(Isa::Scalar, m, &a, &w, &mut want);
                    for &isa in &tiers {
                        let off = k % 3;
                        let a2 = at_offset(&a, off);
                        let mut got = vec![f32::NAN; m * n];
                        matmul_bnb4_nf4_f32_with(isa, m, &a2[off..], &w, &mut got);
                        assert_close(&format!("nf4 {isa} bs={bs} m={m} n={n} k={k}"), &got, &want, &mags, k);
                    }
                }
            }
        }
    }
}

#[test]
fn ternary_tiers_match_scalar() {
    let tiers = simd_tiers("ternary");
    let mut rng = Rng::new(5);
    for &m in &[1usize, 2, 3, 5] {
        for &n in &[0usize, 1, 3, 4, 5, 17, 64] {
            for &k in &[0usize, 1, 3, 4, 8, 12, 16, 17, 28, 32, 36, 60, 64, 65, 252, 256] {
                // Mostly valid codes 0..=2, with the never-written code 3 now and then.
                let packed: Vec<u8> = (0..(n * k).div_ceil(4))
                    .map(|_| {
                        (0..4).fold(0u8, |b, i| {
                            b | (((rng.below(13) % 4) as u8).min(if rng.below(8) == 0 { 3 } else { 2 })
                                << (2 * i))
                        })
                    })
                    .collect();
                let w = Ternary2 { n, k, packed: &packed, scale: 0.037 };
                let a = rng.f32s(m * k);
                let deq = dequantize_ternary2(&w);
                let mags = magnitudes(m, n, k, &a, &deq);
                let mut want = vec![0.0; m * n];
                matmul_ternary2_f32_with(Isa::Scalar, m, &a, &w, &mut want);
                for &isa in &tiers {
                    let off = (m + k) % 4;
                    let a2 = at_offset(&a, off);
                    let mut got = vec![f32::NAN; m * n];
                    matmul_ternary2_f32_with(isa, m, &a2[off..], &w, &mut got);
                    assert_close(&format!("ternary {isa} m={m} n={n} k={k}"), &got, &want, &mags, k);
                }
            }
        }
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn packed4_nbits_tiers_match_scalar() {
    // The packed layout: scalar on it is the ONNX-layout scalar reference bit for bit, its
    // dequantization the same values, and every SIMD tier within the float bound.
    let tiers = simd_tiers("packed4_nbits");
    let mut rng = Rng::new(6);
    for &bs in &[16usize, 32, 64, 128] {
        for &n in &[1usize, 3, 4, 5, 17, 65] {
            for &k in &[1usize, 15, 16, 17, 33, 63, 64, 65, 255, 256] {
                for zp in [false, true] {
                    let (b, scales, zps) = nbits_weight(&mut rng, n, k, bs, zp);
                    let w =
                        NBitsQ4 { n, k, block_size: bs, b: &b, scales: &scales, zero_points: zps.as_deref() };
                    let p = Packed4Bit::from_nbits(&w);
                    assert_eq!((p.n(), p.k(), p.code()), (n, k, Code4::Int4));
                    let deq = dequantize_nbits_q4(&w, None);
                    assert_eq!(bits(&p.dequantize()), bits(&deq), "dequantize bs={bs} n={n} k={k} zp={zp}");
                    for &m in &[1usize, 2, 3, 4, 5] {
                        let a = rng.f32s(m * k);
                        let mags = magnitudes(m, n, k, &a, &deq);
                        let mut want = vec![0.0; m * n];
                        matmul_nbits_q4_f32_with(Isa::Scalar, m, &a, &w, &mut want);
                        let mut got = vec![f32::NAN; m * n];
                        matmul_packed4_f32_with(Isa::Scalar, m, &a, &p, &mut got);
                        assert_eq!(
                            bits(&got),
                            bits(&want),
                            "packed scalar bs={bs} m={m} n={n} k={k} zp={zp}"
                        );
                        for &isa in &tiers {
                            let off = (n + k) % 4;
                            let a2 = at_offset(&a, off);
                            let mut got = vec![f32::NAN; m * n];
                            matmul_packed4_f32_with(isa, m, &a2[off..], &p, &mut got);
                            assert_close(
                                &format!("packed nbits {isa} bs={bs} m={m} n={n} k={k} zp={zp}"),
                                &got,
                                &want,
                                &mags,
                                k,
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn packed4_int4_codes_at_their_zero_point_give_exact_zeros() {
    // Every code equal to its block's zero point: every weight is 0, so every output is
    // exactly 0 on every tier, whatever the activations (a kernel that summed `a·q` and then
    // subtracted `z·Σa` would leave rounding noise here).
    let tiers = simd_tiers("packed4_int4_zero");
    let mut rng = Rng::new(11);
    for &bs in &[16usize, 32, 128] {
        let (n, k) = (9usize, 2 * bs + 16);
        let kb = k.div_ceil(bs);
        let zps: Vec<u8> = rng.bytes(n * kb.div_ceil(2));
        let zp_of = |j: usize, blk: usize| (zps[j * kb.div_ceil(2) + blk / 2] >> (4 * (blk % 2))) & 0xF;
        let mut b = vec![0u8; n * kb * bs / 2];
        for j in 0..n {
            for blk in 0..kb {
                let z = zp_of(j, blk);
                for byte in &mut b[(j * kb + blk) * bs / 2..(j * kb + blk + 1) * bs / 2] {
                    *byte = z | (z << 4);
                }
            }
        }
        let scales: Vec<f32> = rng.f32s(n * kb).iter().map(|s| s.abs() + 0.5).collect();
        for zp in [true, false] {
            let (b8, z) = if zp { (b.clone(), Some(&zps[..])) } else { (vec![0x88u8; b.len()], None) };
            let w = NBitsQ4 { n, k, block_size: bs, b: &b8, scales: &scales, zero_points: z };
            let p = Packed4Bit::from_nbits(&w);
            for m in 1..=4usize {
                let a: Vec<f32> = rng.f32s(m * k).iter().map(|v| v * 1e3).collect();
                for &isa in &tiers {
                    let mut got = vec![f32::NAN; m * n];
                    matmul_packed4_f32_with(isa, m, &a, &p, &mut got);
                    assert!(got.iter().all(|&v| v == 0.0), "{isa} bs={bs} m={m} zp={zp}: {got:?}");
                }
            }
        }
    }
}

#[test]
fn packed4_nf4_tiers_match_scalar() {
    let tiers = simd_tiers("packed4_nf4");
    let mut rng = Rng::new(7);
    for &bs in &[16usize, 32, 64, 128] {
        for &n in &[1usize, 3, 4, 5, 17, 65] {
            for &k in &[16usize, 17, 32, 48, 64, 65, 128, 256, 384] {
                let b = rng.bytes((n * k).div_ceil(2));
                let absmax: Vec<f32> = rng.f32s((n * k).div_ceil(bs)).iter().map(|v| v.abs()).collect();
                let w = Bnb4Nf4 { n, k, block_size: bs, b: &b, absmax: &absmax };
                let Some(p) = Packed4Bit::from_nf4(&w) else {
                    assert!(k % bs != 0, "from_nf4 refused bs={bs} k={k}");
                    continue;
                };
                assert!(k % bs == 0, "from_nf4 accepted a block straddling rows: bs={bs} k={k}");
                let deq = dequantize_bnb4_nf4(&w);
                assert_eq!(bits(&p.dequantize()), bits(&deq), "dequantize bs={bs} n={n} k={k}");
                for &m in &[1usize, 2, 4, 5] {
                    let a = rng.f32s(m * k);
                    let mags = magnitudes(m, n, k, &a, &deq);
                    let mut want = vec![0.0; m * n];
                    matmul_bnb4_nf4_f32_with(Isa::Scalar, m, &a, &w, &mut want);
                    let mut got = vec![f32::NAN; m * n];
                    matmul_packed4_f32_with(Isa::Scalar, m, &a, &p, &mut got);
                    assert_eq!(bits(&got), bits(&want), "packed scalar bs={bs} m={m} n={n} k={k}");
                    for &isa in &tiers {
                        let mut got = vec![f32::NAN; m * n];
                        matmul_packed4_f32_with(isa, m, &a, &p, &mut got);
                        assert_close(
                            &format!("packed nf4 {isa} bs={bs} m={m} n={n} k={k}"),
                            &got,
                            &want,
                            &mags,
                            k,
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn packed_ternary_tiers_match_scalar() {
    let tiers = simd_tiers("packed_ternary");
    let mut rng = Rng::new(8);
    for &n in &[0usize, 1, 3, 15, 16, 17, 33, 128, 129] {
        for &k in &[0usize, 1, 3, 4, 15, 16, 17, 31, 32, 33, 63, 64, 65, 255, 256] {
            // Mostly valid codes 0..=2, with the never-written code 3 now and then.
            let packed: Vec<u8> = (0..(n * k).div_ceil(4))
                .map(|_| {
                    (0..4).fold(0u8, |b, i| {
                        b | (((rng.below(13) % 4) as u8).min(if rng.below(8) == 0 { 3 } else { 2 })
                            << (2 * i))
                    })
                })
                .collect();
            let w = Ternary2 { n, k, packed: &packed, scale: 0.037 };
            let p = PackedTernary2::new(&w);
            assert_eq!((p.n(), p.k()), (n, k));
            let deq = dequantize_ternary2(&w);
            assert_eq!(bits(&p.dequantize()), bits(&deq), "dequantize n={n} k={k}");
            for &m in &[1usize, 2, 4, 5] {
                let a = rng.f32s(m * k);
                let mags = magnitudes(m, n, k, &a, &deq);
                let mut want = vec![0.0; m * n];
                matmul_ternary2_f32_with(Isa::Scalar, m, &a, &w, &mut want);
                let mut got = vec![f32::NAN; m * n];
                matmul_packed_ternary2_f32_with(Isa::Scalar, m, &a, &p, &mut got);
                assert_eq!(bits(&got), bits(&want), "packed scalar m={m} n={n} k={k}");
                for &isa in &tiers {
                    let off = (m + k) % 4;
                    let a2 = at_offset(&a, off);
                    let mut got = vec![f32::NAN; m * n];
                    matmul_packed_ternary2_f32_with(isa, m, &a2[off..], &p, &mut got);
                    assert_close(&format!("packed ternary {isa} m={m} n={n} k={k}"), &got, &want, &mags, k);
                }
            }
        }
    }
}
