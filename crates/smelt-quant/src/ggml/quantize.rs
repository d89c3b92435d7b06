//! f32 weights encoded into ggml's storage types, byte for byte as ggml's reference
//! quantizers (`quantize_row_*_ref` in ggml/src/ggml-quants.c) write them.
//!
//! `smelt convert --quant q8_0` must give the file `llama-quantize` would: same bytes, so a
//! model's hash, its llama.cpp outputs and smelt's error figures all agree whichever tool made
//! it. Bit-exactness takes the same care as the decoders in this module, plus:
//! - the same f32 operations in ggml's order, with no fused multiply-add (`x * id + 8.5` is a
//!   rounded product then a rounded sum). ggml-quants.c is built into ggml-base without any
//!   `-march` flag, so on x86-64 the compiler has no FMA to contract into; gcc on aarch64
//!   does contract, and its bytes then differ from these on values near a rounding tie;
//! - ggml's scale conversions ([`super::float::f32_to_f16_bits`]);
//! - the block maxima of ggml's sequential loops, sign of zero included
//!   ([`super::block_extrema`]);
//! - C's casts and `roundf` / `lroundf` as x86-64 evaluates them, including on the NaN and
//!   infinite products a block of subnormal weights produces ([`super::x86_conversions`]).
//!
//! Blocks are independent, so a tensor is quantized as one sequence of values, rows
//! concatenated; each row's length must be a multiple of the block size, and so is the whole.
//!
//! Inputs are meant to be finite (smelt's converter refuses NaN and infinity before it gets
//! here). Non-finite values still give ggml's bytes, never a panic.

use smelt_tensor::DType;

use super::{float, legacy, ternary, Block};
use crate::QuantError;

/// A block type ggml can quantize to: the inverse of [`Block::dequantize`], as ggml's
/// `quantize_row_*_ref` computes it.
pub trait QuantizeBlock: Block {
    /// Encodes one block of weights, in ggml's element order.
    fn quantize(values: &Self::Values) -> Self;
}

/// The dtypes [`quantize`] encodes.
pub const QUANTIZABLE: &[DType] = &[
    DType::F32,
    DType::F16,
    DType::BF16,
    DType::Q8_0,
    DType::Q4_0,
    DType::Q4_1,
    DType::Q5_0,
    DType::Q5_1,
    DType::TQ1_0,
    DType::TQ2_0,
];

/// The number of bytes `values` f32 weights take once quantized to `dtype`, if `dtype` has a
/// quantizer and `values` is a whole number of its blocks.
pub fn quantized_len(dtype: DType, values: usize) -> Result<usize, QuantError> {
    if !QUANTIZABLE.contains(&dtype) {
        return Err(QuantError::NoQuantizer { dtype });
    }
    // Quantizable dtypes have 1 to 256 values and 2 to 66 bytes per block.
    let block_elems = dtype.block_elems() as usize;
    let block_bytes = dtype.block_bytes() as usize;
    if block_elems == 0 || values % block_elems != 0 {
        return Err(QuantError::PartialRow { dtype, block_elems, found: values });
    }
    // At most 4 bytes per value (F32): only a length no buffer could have overflows.
    (values / block_elems).checked_mul(block_bytes).ok_or(QuantError::PartialRow {
        dtype,
        block_elems,
        found: values,
    })
}

/// Encodes `src` (one row or many, rows concatenated) as `dtype` into `dst`, byte for byte
/// as ggml's `quantize_row_*_ref` (or, for F16 and BF16, `GGML_FP32_TO_FP16` /
/// `GGML_FP32_TO_BF16`) would.
///
/// `src.len()` must be a multiple of `dtype.block_elems()` and `dst.len()` must be
/// [`quantized_len`] of it; nothing is written otherwise.
pub fn quantize(dtype: DType, src: &[f32], dst: &mut [u8]) -> Result<(), QuantError> {
    quantize_with(smelt_tensor::simd::tier(), dtype, src, dst)
}

/// [`quantize`] compiled for a given [`smelt_tensor::simd::Tier`]: the same bytes at every
/// one (for differential tests).
pub fn quantize_with(
    tier: smelt_tensor::simd::Tier,
    dtype: DType,
    src: &[f32],
    dst: &mut [u8],
) -> Result<(), QuantError> {
    let expected = quantized_len(dtype, src.len())?;
    if dst.len() != expected {
        return Err(QuantError::QuantizedLength { dtype, expected, found: dst.len() });
    }
    quantize_tiered(tier, dtype, src, dst)
}

smelt_tensor::tiered!(fn quantize_tiered(dtype: DType, src: &[f32], dst: &mut [u8]) -> Result<(), QuantError> = quantize_body);

#[inline(always)]
fn quantize_body(dtype: DType, src: &[f32], dst: &mut [u8]) -> Result<(), QuantError> {
    match dtype {
        DType::F32 | DType::F16 | DType::BF16 => float::quantize_float(dtype, src, dst),
        DType::Q8_0 => quantize_blocks::<legacy::BlockQ8_0>(src, dst),
        DType::Q4_0 => quantize_blocks::<legacy::BlockQ4_0>(src, dst),
        DType::Q4_1 => quantize_blocks::<legacy::BlockQ4_1>(src, dst),
        DType::Q5_0 => quantize_blocks::<legacy::BlockQ5_0>(src, dst),
        DType::Q5_1 => quantize_blocks::<legacy::BlockQ5_1>(src, dst),
        DType::TQ1_0 => quantize_blocks::<ternary::BlockTQ1_0>(src, dst),
        DType::TQ2_0 => quantize_blocks::<ternary::BlockTQ2_0>(src, dst),
        _ => Err(QuantError::NoQuantizer { dtype }),
    }
}

/// [`quantize`], and the decoded weights ([`super::dequantize`] of the bytes written) into
/// `decoded`, which must be as long as `src`: what a converter needs to measure the error. For
/// Q8_0 on AVX2 or AVX-512, and Q4_0, Q4_1, Q5_0 and Q5_1 on AVX-512, both come from one pass
/// (`smelt_kernels`' explicit kernels, with the reference taking the blocks they leave); TQ1_0
/// and TQ2_0 decode from the digits they just packed (at every tier); other types quantize,
/// then decode.
pub fn quantize_decode(
    dtype: DType,
    src: &[f32],
    dst: &mut [u8],
    decoded: &mut [f32],
) -> Result<(), QuantError> {
    quantize_decode_with(smelt_tensor::simd::tier(), dtype, src, dst, decoded)
}

/// [`quantize_decode`] at a given [`smelt_tensor::simd::Tier`]: the same bytes and bits at
/// every one.
pub fn quantize_decode_with(
    tier: smelt_tensor::simd::Tier,
    dtype: DType,
    src: &[f32],
    dst: &mut [u8],
    decoded: &mut [f32],
) -> Result<(), QuantError> {
    use smelt_tensor::simd::Tier;
    let expected = quantized_len(dtype, src.len())?;
    if dst.len() != expected {
        return Err(QuantError::QuantizedLength { dtype, expected, found: dst.len() });
    }
    if decoded.len() != src.len() {
        return Err(QuantError::QuantizedLength {
            dtype: DType::F32,
            expected: src.len() * 4,
            found: decoded.len() * 4,
        });
    }
    let isa = match tier {
        Tier::Avx512 => Some(smelt_kernels::Isa::Avx512),
        Tier::Avx2 => Some(smelt_kernels::Isa::Avx2),
        Tier::Scalar => None,
    };
    if let (DType::Q8_0, Some(isa)) = (dtype, isa) {
        if let Some(slow) = smelt_kernels::explicit::quantize_q8_0_with(isa, src, dst, Some(&mut *decoded)) {
            const E: usize = smelt_kernels::Q8_0_BLOCK;
            const B: usize = smelt_kernels::Q8_0_BYTES;
            for b in slow {
                let (x, out) = (&src[b * E..(b + 1) * E], &mut dst[b * B..(b + 1) * B]);
                quantize_tiered(Tier::Scalar, dtype, x, out)?;
                super::dequantize_with(Tier::Scalar, dtype, out, &mut decoded[b * E..(b + 1) * E])?;
            }
            return Ok(());
        }
    }
    let legacy = match dtype {
        DType::Q4_0 => Some(smelt_kernels::LegacyType::Q4_0),
        DType::Q4_1 => Some(smelt_kernels::LegacyType::Q4_1),
        DType::Q5_0 => Some(smelt_kernels::LegacyType::Q5_0),
        DType::Q5_1 => Some(smelt_kernels::LegacyType::Q5_1),
        _ => None,
    };
    if let (Some(t), Some(isa)) = (legacy, isa) {
        // AVX2 and AVX-512 (`None` elsewhere: the tiered reference below runs).
        if let Some(slow) = smelt_kernels::explicit::quantize_legacy_with(isa, t, src, dst, decoded) {
            const E: usize = smelt_kernels::LEGACY_BLOCK;
            let bb = t.block_bytes();
            for b in slow {
                let (x, out) = (&src[b * E..(b + 1) * E], &mut dst[b * bb..(b + 1) * bb]);
                quantize_tiered(Tier::Scalar, dtype, x, out)?;
                super::dequantize_with(Tier::Scalar, dtype, out, &mut decoded[b * E..(b + 1) * E])?;
            }
            return Ok(());
        }
    }
    if matches!(dtype, DType::TQ1_0 | DType::TQ2_0) {
        ternary_quantize_decode_tiered(tier, dtype, src, dst, decoded);
        return Ok(());
    }
    quantize_tiered(tier, dtype, src, dst)?;
    super::dequantize_with(tier, dtype, dst, decoded)
}

smelt_tensor::tiered!(fn ternary_quantize_decode_tiered(dtype: DType, src: &[f32], dst: &mut [u8], decoded: &mut [f32]) = ternary_quantize_decode_body);

/// TQ1_0 and TQ2_0 blocks with their decoded weights from the digits (lengths checked).
#[inline(always)]
fn ternary_quantize_decode_body(dtype: DType, src: &[f32], dst: &mut [u8], decoded: &mut [f32]) {
    use super::quantize_ternary::quantize_decode_blocks;
    match dtype {
        DType::TQ1_0 => quantize_decode_blocks::<ternary::BlockTQ1_0>(src, dst, decoded),
        _ => quantize_decode_blocks::<ternary::BlockTQ2_0>(src, dst, decoded),
    }
}

/// [`quantize`] into a new vector of the right length.
pub fn quantize_to_vec(dtype: DType, src: &[f32]) -> Result<Vec<u8>, QuantError> {
    let mut out = vec![0u8; quantized_len(dtype, src.len())?];
    quantize(dtype, src, &mut out)?;
    Ok(out)
}

/// Encodes whole blocks of `B` (lengths already checked by the caller; the casts re-check
/// them, so a mismatch is an error, never a panic).
#[inline(always)]
fn quantize_blocks<B: QuantizeBlock>(src: &[f32], dst: &mut [u8]) -> Result<(), QuantError> {
    let dtype = B::DTYPE;
    let block_elems = dtype.block_elems() as usize;
    let values: &[B::Values] = bytemuck::try_cast_slice(src).map_err(|_| QuantError::PartialRow {
        dtype,
        block_elems,
        found: src.len(),
    })?;
    let expected = values.len().saturating_mul(std::mem::size_of::<B>());
    let found = dst.len();
    let blocks: &mut [B] = bytemuck::try_cast_slice_mut(dst).map_err(|_| QuantError::QuantizedLength {
        dtype,
        expected,
        found,
    })?;
    if blocks.len() != values.len() {
        return Err(QuantError::QuantizedLength { dtype, expected, found });
    }
    for (block, v) in blocks.iter_mut().zip(values) {
        *block = B::quantize(v);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_checked_before_writing() {
        let mut dst = [7u8; 40];
        assert_eq!(
            quantize(DType::Q8_0, &[0.0; 31], &mut dst[..34]),
            Err(QuantError::PartialRow { dtype: DType::Q8_0, block_elems: 32, found: 31 })
        );
        assert_eq!(
            quantize(DType::Q8_0, &[0.0; 32], &mut dst[..35]),
            Err(QuantError::QuantizedLength { dtype: DType::Q8_0, expected: 34, found: 35 })
        );
        assert_eq!(
            quantize(DType::TQ1_0, &[0.0; 255], &mut []),
            Err(QuantError::PartialRow { dtype: DType::TQ1_0, block_elems: 256, found: 255 })
        );
        assert_eq!(
            quantize(DType::F16, &[0.0; 3], &mut dst[..5]),
            Err(QuantError::QuantizedLength { dtype: DType::F16, expected: 6, found: 5 })
        );
        assert!(dst.iter().all(|&b| b == 7));
    }

    #[test]
    fn dtypes_without_a_quantizer_are_refused() {
        for &dtype in smelt_tensor::ALL_DTYPES {
            if QUANTIZABLE.contains(&dtype) {
                continue;
            }
            assert_eq!(quantize(dtype, &[], &mut []), Err(QuantError::NoQuantizer { dtype }), "{dtype}");
            assert_eq!(
                quantize_to_vec(dtype, &[0.0; 256]),
                Err(QuantError::NoQuantizer { dtype }),
                "{dtype}"
            );
        }
    }

    #[test]
    fn every_quantizable_dtype_round_trips_its_length() {
        for &dtype in QUANTIZABLE {
            let n = dtype.block_elems() as usize * 3;
            let out = quantize_to_vec(dtype, &vec![0.25; n]).unwrap_or_else(|e| panic!("{dtype}: {e}"));
            assert_eq!(out.len() as u64, dtype.block_bytes() * 3, "{dtype}");
            assert_eq!(super::super::dequantize_to_vec(dtype, &out).unwrap().len(), n, "{dtype}");
            assert_eq!(quantize_to_vec(dtype, &[]).unwrap(), Vec::<u8>::new(), "{dtype}: empty");
        }
    }

    /// Q8_0's explicit kernels (groups of sixteen blocks on AVX-512, one block at a time on
    /// AVX2) against the reference, over many block counts (every tail length of a group),
    /// magnitudes from subnormal to huge, exact rounding ties (`x·id = k + 0.5`), signed zeros,
    /// and NaN or infinite weights anywhere in a group.
    #[test]
    fn q8_0_kernels_match_the_reference() {
        use smelt_tensor::simd::Tier;
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for blocks in [1usize, 2, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100] {
            for round in 0..8 {
                let mut v = Vec::with_capacity(blocks * 32);
                for b in 0..blocks {
                    let kind = (next() % 8) as u32;
                    let exp = (next() % 200) as i32 - 130;
                    let scale = 2f32.powi(exp);
                    for j in 0..32 {
                        let r = ((next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0;
                        v.push(match kind {
                            // amax = 127/8 so that d = 1/8 and id = 8: (k + 0.5)/8 ties exactly.
                            0 if j == 0 => 127.0 / 8.0,
                            0 => ((next() % 254) as f32 - 127.0 + 0.5) / 8.0,
                            1 => {
                                if j % 2 == 0 {
                                    0.0
                                } else {
                                    -0.0
                                }
                            }
                            2 => {
                                f32::from_bits((next() % 0x80_0000) as u32)
                                    * if j % 3 == 0 { -1.0 } else { 1.0 }
                            }
                            3 if round % 2 == 0 && j == (b * 7) % 32 => f32::NAN,
                            3 if j == (b * 5) % 32 => f32::INFINITY * if b % 2 == 0 { 1.0 } else { -1.0 },
                            _ => r * scale,
                        });
                    }
                }
                let len = quantized_len(DType::Q8_0, v.len()).unwrap();
                let (mut want, mut want_f) = (vec![0u8; len], vec![0f32; v.len()]);
                quantize_with(Tier::Scalar, DType::Q8_0, &v, &mut want).unwrap();
                super::super::dequantize_with(Tier::Scalar, DType::Q8_0, &want, &mut want_f).unwrap();
                for tier in Tier::ALL {
                    let (mut got, mut got_f) = (vec![0u8; len], vec![0f32; v.len()]);
                    quantize_decode_with(tier, DType::Q8_0, &v, &mut got, &mut got_f).unwrap();
                    assert!(got == want, "{} blocks, round {round}: {} bytes differ", blocks, tier.name());
                    assert!(
                        got_f.iter().zip(&want_f).all(|(a, b)| a.to_bits() == b.to_bits()),
                        "{blocks} blocks, round {round}: {} decoded bits differ",
                        tier.name()
                    );
                }
            }
        }
    }

    /// The explicit Q4_0, Q4_1, Q5_0 and Q5_1 kernels (groups of sixteen blocks with AVX-512,
    /// eight with AVX2)
    /// against the reference, bytes and decoded bits, over every tail length of a group and
    /// blocks made to hit each of their fallbacks and decisions: the largest magnitude held by
    /// weights of both signs (in either order), zero minima or maxima of either sign, all-zero
    /// blocks, exact halves on the rounding grid, subnormals, huge values (where `max - min`
    /// overflows), NaN and infinities.
    #[test]
    fn legacy_kernels_match_the_reference() {
        use smelt_tensor::simd::Tier;
        let mut x = 0x5851_f42d_4c95_7f2du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for dtype in [DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1] {
            for blocks in [1usize, 2, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100] {
                for round in 0..8 {
                    let mut v = Vec::with_capacity(blocks * 32);
                    for b in 0..blocks {
                        let kind = (next() % 13) as u32;
                        let exp = (next() % 200) as i32 - 130;
                        let scale = 2f32.powi(exp);
                        let (tie_a, tie_b) = ((next() % 32) as usize, (next() % 32) as usize);
                        let spread = 1.0 + (next() >> 40) as f32 / (1u64 << 24) as f32;
                        for j in 0..32 {
                            let r = ((next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0;
                            v.push(match kind {
                                // A grid of halves: extremes ±8 and ±16 make d a power of two.
                                0 if j == 0 => -16.0,
                                0 if j == 1 => 15.0,
                                0 => (next() % 62) as f32 * 0.5 - 15.5,
                                1 => {
                                    if (j + b) % 2 == 0 {
                                        0.0
                                    } else {
                                        -0.0
                                    }
                                }
                                2 => {
                                    f32::from_bits((next() % 0x80_0000) as u32)
                                        * if j % 3 == 0 { -1.0 } else { 1.0 }
                                }
                                3 if round % 2 == 0 && j == (b * 7) % 32 => f32::NAN,
                                3 if j == (b * 5) % 32 => f32::INFINITY * if b % 2 == 0 { 1.0 } else { -1.0 },
                                // Largest magnitude on both signs, either one first.
                                4 if j == tie_a => 2.0 * scale,
                                4 if j == tie_b => -2.0 * scale,
                                4 => r * scale,
                                // Non-negative with zeros of both signs (a zero minimum), or
                                // non-positive (a zero maximum), the first zero's sign random.
                                5 | 6 => {
                                    let z = if next() % 2 == 0 { 0.0 } else { -0.0 };
                                    let w = if j % 5 == (b % 5) { z } else { r.abs() * scale };
                                    if kind == 6 {
                                        -w
                                    } else {
                                        w
                                    }
                                }
                                // Huge: max - min overflows.
                                7 => 3.0e38 * r,
                                // All equal (min = max, d = 0).
                                8 => scale,
                                // Weights whose scaled value lands within rounding of a
                                // truncation boundary (`x·id + bias` near a small integer),
                                // from the block's own d: a fused multiply-add, or any other
                                // order of operations, truncates some of them differently.
                                9 | 10 => {
                                    let (lo, hi) = (-spread * scale, spread * scale * 0.75);
                                    let (d, bias, base) = match dtype {
                                        DType::Q4_0 => (lo / -8.0, 8.5, 0.0),
                                        DType::Q5_0 => (lo / -16.0, 16.5, 0.0),
                                        DType::Q4_1 => ((hi - lo) / 15.0, 0.5, lo),
                                        _ => ((hi - lo) / 31.0, 0.5, lo),
                                    };
                                    let id = 1.0 / d;
                                    match j {
                                        0 => lo,
                                        1 => hi,
                                        _ => base + ((1 + next() % 6) as f32 - bias) / id,
                                    }
                                }
                                _ => r * scale,
                            });
                        }
                    }
                    let len = quantized_len(dtype, v.len()).unwrap();
                    let (mut want, mut want_f) = (vec![0u8; len], vec![0f32; v.len()]);
                    quantize_with(Tier::Scalar, dtype, &v, &mut want).unwrap();
                    super::super::dequantize_with(Tier::Scalar, dtype, &want, &mut want_f).unwrap();
                    for tier in Tier::ALL {
                        let (mut got, mut got_f) = (vec![0u8; len], vec![0f32; v.len()]);
                        quantize_decode_with(tier, dtype, &v, &mut got, &mut got_f).unwrap();
                        let bb = dtype.block_bytes() as usize;
                        let bad =
                            (0..blocks).find(|&b| got[b * bb..(b + 1) * bb] != want[b * bb..(b + 1) * bb]);
                        assert!(
                            bad.is_none(),
                            "{dtype} {blocks} blocks, round {round}, {}: block {bad:?} differs: {:?}",
                            tier.name(),
                            bad.map(|b| (
                                &v[b * 32..(b + 1) * 32],
                                &got[b * bb..(b + 1) * bb],
                                &want[b * bb..(b + 1) * bb]
                            ))
                        );
                        assert!(
                            got_f.iter().zip(&want_f).all(|(a, b)| a.to_bits() == b.to_bits()),
                            "{dtype} {blocks} blocks, round {round}: {} decoded bits differ",
                            tier.name()
                        );
                    }
                }
            }
        }
    }

    /// Every SIMD level writes the bytes the baseline copy writes, and decodes them to the
    /// same bits, on ordinary weights and on the edge cases of every block path: rounding
    /// ties, zero and subnormal blocks, huge values, NaN and infinities.
    #[test]
    fn every_simd_level_gives_the_same_bytes() {
        use smelt_tensor::simd::Tier;
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let n = 256 * 48;
        let mut v: Vec<f32> =
            (0..n).map(|_| ((next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2).collect();
        // Block 1: exact ties of x * id; block 2: all zero; block 3: subnormals; block 4:
        // huge; blocks 5-6: NaN and infinity among ordinary weights; block 7: random bits.
        for i in 0..32 {
            v[32 + i] = (i as f32 - 16.0) * 0.5;
            v[64 + i] = 0.0;
            v[96 + i] = f32::from_bits(1 + i as u32 * 3) * if i % 2 == 0 { 1.0 } else { -1.0 };
            v[128 + i] = 3.0e38 * (i as f32 / 32.0 - 0.5);
            v[224 + i] = f32::from_bits(next() as u32);
        }
        v[160 + 5] = f32::NAN;
        v[192 + 9] = f32::INFINITY;
        v[192 + 10] = f32::NEG_INFINITY;
        // The same cases as whole blocks of 256 (TQ1_0, TQ2_0): subnormal (1/d overflows),
        // all zero, exact ties of x * id (d = 1), huge, and -0.0 beside +0.0.
        for i in 0..256 {
            v[512 + i] = f32::from_bits(1 + i as u32 * 5) * if i % 3 == 0 { -1.0 } else { 1.0 };
            v[768 + i] = 0.0;
            v[1024 + i] = ((i % 5) as f32 - 2.0) * 0.5;
            v[1280 + i] = 3.0e38 * (i as f32 / 256.0 - 0.5);
            v[1536 + i] = if i % 2 == 0 { 0.0 } else { -0.0 };
        }
        v[1536 + 77] = -1e-3;
        for &dtype in QUANTIZABLE {
            let len = quantized_len(dtype, n).unwrap();
            let mut want = vec![0u8; len];
            quantize_with(Tier::Scalar, dtype, &v, &mut want).unwrap();
            let mut want_f = vec![0f32; n];
            super::super::dequantize_with(Tier::Scalar, dtype, &want, &mut want_f).unwrap();
            for tier in Tier::ALL {
                let mut got = vec![0u8; len];
                quantize_with(tier, dtype, &v, &mut got).unwrap();
                assert!(got == want, "{dtype}: {} bytes differ from scalar", tier.name());
                let (mut fused, mut fused_f) = (vec![0u8; len], vec![0f32; n]);
                quantize_decode_with(tier, dtype, &v, &mut fused, &mut fused_f).unwrap();
                assert!(fused == want, "{dtype}: {} quantize_decode bytes differ from scalar", tier.name());
                assert!(
                    fused_f.iter().zip(&want_f).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{dtype}: {} quantize_decode decoded bits differ",
                    tier.name()
                );
                let mut got_f = vec![0f32; n];
                super::super::dequantize_with(tier, dtype, &want, &mut got_f).unwrap();
                assert!(
                    got_f.iter().zip(&want_f).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{dtype}: {} decoded bits differ",
                    tier.name()
                );
            }
        }
    }
}
