//! ggml's storage types decoded to f32 exactly as ggml's reference C code decodes them.
//!
//! A GGUF model smelt reads must turn into the very weights llama.cpp computes with, or every
//! error figure smelt reports afterwards (its own quantizers against the original, a converted
//! model against its source) measures dequantizer drift instead of quantization error. So each
//! decoder here reproduces ggml's `dequantize_row_*` (ggml/src/ggml-quants.c, block layouts in
//! ggml/src/ggml-common.h) bit for bit, and the tests compare `f32::to_bits`, not tolerances.
//!
//! What "bit for bit" takes:
//! - the same f32 operations in the same order: ggml's Q6_K value `d * sc * q` is
//!   `(d * sc) * q`, its Q4_K value `d1 * q - m1` rounds the product before subtracting;
//! - no fused multiply-add: ggml's reference path is plain C compiled without FP contraction
//!   on the targets smelt compares against, so nothing here uses `mul_add`;
//! - ggml's scale decodings: f16 to f32 is exact (IEEE), BF16 is the upper half of an f32,
//!   MXFP4's E8M0 byte is `2^(e - 128)` with no NaN (255 is just a large power of two).
//!
//! Layout: each block is a `#[repr(C)]` struct of byte arrays (alignment 1, no padding, size
//! checked at compile time against ggml's), so any byte slice casts to blocks in place whatever
//! its address. Scale fields that ggml declares `ggml_half` are kept as their two little-endian
//! bytes. Where each weight sits inside its block (nibble, bit and trit order) is written on
//! each block type, in [`legacy`], [`kquants`], [`ternary`] and [`mxfp4`].
//!
//! This is the scalar reference, written for clarity; SIMD versions belong in smelt-kernels
//! and are tested against it.

use bytemuck::Pod;
use smelt_tensor::DType;

use crate::QuantError;

pub mod block_codes;
mod block_extrema;
pub mod float;
pub mod kquants;
pub mod legacy;
mod magic_rounding;
pub mod mxfp4;
mod quantize;
mod quantize_legacy;
mod quantize_ternary;
pub mod ternary;
mod x86_conversions;

pub use quantize::{
    quantize, quantize_decode, quantize_decode_with, quantize_to_vec, quantize_with, quantized_len,
    QuantizeBlock, QUANTIZABLE,
};

/// One ggml storage block: a fixed number of weights and the scales they share.
pub trait Block: Pod {
    /// The dtype whose storage is a sequence of these blocks.
    const DTYPE: DType;
    /// The decoded weights of one block, `[f32; 32]` or `[f32; 256]`.
    type Values: Pod;
    /// Decodes the block's weights in ggml's element order, as ggml computes them.
    fn dequantize(&self, out: &mut Self::Values);
}

/// The dtypes [`dequantize`] decodes.
pub const SUPPORTED: &[DType] = &[
    DType::F32,
    DType::F16,
    DType::BF16,
    DType::Q4_0,
    DType::Q4_1,
    DType::Q5_0,
    DType::Q5_1,
    DType::Q8_0,
    DType::Q2_K,
    DType::Q3_K,
    DType::Q4_K,
    DType::Q5_K,
    DType::Q6_K,
    DType::TQ1_0,
    DType::TQ2_0,
    DType::MXFP4,
];

/// Decodes `src`, the stored bytes of whole blocks of `dtype` (one row or many, in storage
/// order), into `dst`, one f32 per element, bit for bit as ggml's `dequantize_row_*` does.
///
/// `src.len()` must be a multiple of `dtype.block_bytes()` and `dst.len()` must be the
/// number of elements those blocks hold; nothing is written otherwise.
pub fn dequantize(dtype: DType, src: &[u8], dst: &mut [f32]) -> Result<(), QuantError> {
    dequantize_with(smelt_tensor::simd::tier(), dtype, src, dst)
}

/// [`dequantize`] compiled for a given [`smelt_tensor::simd::Tier`]: the same bits at every
/// one (for differential tests).
pub fn dequantize_with(
    tier: smelt_tensor::simd::Tier,
    dtype: DType,
    src: &[u8],
    dst: &mut [f32],
) -> Result<(), QuantError> {
    let expected = element_count(dtype, src.len())?;
    if dst.len() != expected {
        return Err(QuantError::OutputLength { dtype, expected, found: dst.len() });
    }
    dequantize_tiered(tier, dtype, src, dst)
}

smelt_tensor::tiered!(fn dequantize_tiered(dtype: DType, src: &[u8], dst: &mut [f32]) -> Result<(), QuantError> = dequantize_body);

#[inline(always)]
fn dequantize_body(dtype: DType, src: &[u8], dst: &mut [f32]) -> Result<(), QuantError> {
    match dtype {
        DType::F32 => float::dequantize_f32(src, dst),
        DType::F16 => float::dequantize_f16(src, dst),
        DType::BF16 => float::dequantize_bf16(src, dst),
        DType::Q4_0 => dequantize_blocks::<legacy::BlockQ4_0>(src, dst),
        DType::Q4_1 => dequantize_blocks::<legacy::BlockQ4_1>(src, dst),
        DType::Q5_0 => dequantize_blocks::<legacy::BlockQ5_0>(src, dst),
        DType::Q5_1 => dequantize_blocks::<legacy::BlockQ5_1>(src, dst),
        DType::Q8_0 => dequantize_blocks::<legacy::BlockQ8_0>(src, dst),
        DType::Q2_K => dequantize_blocks::<kquants::BlockQ2K>(src, dst),
        DType::Q3_K => dequantize_blocks::<kquants::BlockQ3K>(src, dst),
        DType::Q4_K => dequantize_blocks::<kquants::BlockQ4K>(src, dst),
        DType::Q5_K => dequantize_blocks::<kquants::BlockQ5K>(src, dst),
        DType::Q6_K => dequantize_blocks::<kquants::BlockQ6K>(src, dst),
        DType::TQ1_0 => dequantize_blocks::<ternary::BlockTQ1_0>(src, dst),
        DType::TQ2_0 => dequantize_blocks::<ternary::BlockTQ2_0>(src, dst),
        DType::MXFP4 => dequantize_blocks::<mxfp4::BlockMxfp4>(src, dst),
        _ => Err(QuantError::Unsupported { dtype }),
    }
}

/// [`dequantize`] into a new vector of the right length.
pub fn dequantize_to_vec(dtype: DType, src: &[u8]) -> Result<Vec<f32>, QuantError> {
    let n = element_count(dtype, src.len())?;
    let mut out = vec![0.0f32; n];
    dequantize(dtype, src, &mut out)?;
    Ok(out)
}

/// The number of elements `src_len` bytes of `dtype` hold, if they are whole blocks of a
/// supported dtype.
pub fn element_count(dtype: DType, src_len: usize) -> Result<usize, QuantError> {
    if !SUPPORTED.contains(&dtype) {
        return Err(QuantError::Unsupported { dtype });
    }
    // Supported dtypes have blocks of at most 256 elements and 292 bytes.
    let block_bytes = dtype.block_bytes() as usize;
    let block_elems = dtype.block_elems() as usize;
    if block_bytes == 0 || src_len % block_bytes != 0 {
        return Err(QuantError::PartialBlock { dtype, block_bytes, found: src_len });
    }
    // At most 256 / 54 elements per byte (TQ1_0): overflows only for absurd lengths, which no
    // output buffer could match anyway.
    Ok((src_len / block_bytes).saturating_mul(block_elems))
}

/// Decodes a run of whole blocks of `B` into `dst` (lengths already checked by the caller;
/// the casts re-check them, so a mismatch is an error, never a panic).
#[inline(always)]
fn dequantize_blocks<B: Block>(src: &[u8], dst: &mut [f32]) -> Result<(), QuantError> {
    let dtype = B::DTYPE;
    let blocks: &[B] = bytemuck::try_cast_slice(src).map_err(|_| QuantError::PartialBlock {
        dtype,
        block_bytes: std::mem::size_of::<B>(),
        found: src.len(),
    })?;
    let found = dst.len();
    let outs: &mut [B::Values] = bytemuck::try_cast_slice_mut(dst).map_err(|_| QuantError::OutputLength {
        dtype,
        expected: blocks.len().saturating_mul(dtype.block_elems() as usize),
        found,
    })?;
    if outs.len() != blocks.len() {
        return Err(QuantError::OutputLength {
            dtype,
            expected: blocks.len().saturating_mul(dtype.block_elems() as usize),
            found,
        });
    }
    for (block, out) in blocks.iter().zip(outs.iter_mut()) {
        block.dequantize(out);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every SIMD level decodes random block bytes (NaN and infinite scales included) to the
    /// bits the baseline copy gives, for every supported type.
    #[test]
    fn every_simd_level_decodes_the_same_bits() {
        use smelt_tensor::simd::Tier;
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let bytes: Vec<u8> = (0..64 * 210)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        for &dtype in SUPPORTED {
            let bb = dtype.block_bytes() as usize;
            let src = &bytes[..bytes.len() / bb * bb];
            let n = element_count(dtype, src.len()).unwrap();
            let mut want = vec![0f32; n];
            dequantize_with(Tier::Scalar, dtype, src, &mut want).unwrap();
            for tier in Tier::ALL {
                let mut got = vec![0f32; n];
                dequantize_with(tier, dtype, src, &mut got).unwrap();
                assert!(
                    got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{dtype} at {}",
                    tier.name()
                );
            }
        }
    }

    fn check_geometry<B: Block>() {
        assert_eq!(std::mem::size_of::<B>() as u64, B::DTYPE.block_bytes(), "{}", B::DTYPE);
        assert_eq!(std::mem::align_of::<B>(), 1, "{}", B::DTYPE);
        assert_eq!(std::mem::size_of::<B::Values>() as u64, B::DTYPE.block_elems() * 4, "{}", B::DTYPE);
    }

    #[test]
    fn block_structs_match_dtype_geometry() {
        check_geometry::<legacy::BlockQ4_0>();
        check_geometry::<legacy::BlockQ4_1>();
        check_geometry::<legacy::BlockQ5_0>();
        check_geometry::<legacy::BlockQ5_1>();
        check_geometry::<legacy::BlockQ8_0>();
        check_geometry::<kquants::BlockQ2K>();
        check_geometry::<kquants::BlockQ3K>();
        check_geometry::<kquants::BlockQ4K>();
        check_geometry::<kquants::BlockQ5K>();
        check_geometry::<kquants::BlockQ6K>();
        check_geometry::<ternary::BlockTQ1_0>();
        check_geometry::<ternary::BlockTQ2_0>();
        check_geometry::<mxfp4::BlockMxfp4>();
    }

    #[test]
    fn every_supported_dtype_dispatches() {
        for &dtype in SUPPORTED {
            let src = vec![0u8; dtype.block_bytes() as usize * 2];
            let out = dequantize_to_vec(dtype, &src).unwrap_or_else(|e| panic!("{dtype}: {e}"));
            assert_eq!(out.len() as u64, dtype.block_elems() * 2, "{dtype}");
        }
    }

    #[test]
    fn unsupported_dtypes_are_refused() {
        for &dtype in smelt_tensor::ALL_DTYPES {
            if SUPPORTED.contains(&dtype) {
                continue;
            }
            let src = vec![0u8; 292];
            assert_eq!(dequantize(dtype, &src, &mut []), Err(QuantError::Unsupported { dtype }), "{dtype}");
        }
    }

    #[test]
    fn wrong_source_length_is_refused_before_writing() {
        let mut dst = [7.0f32; 32];
        assert_eq!(
            dequantize(DType::Q4_0, &[0u8; 17], &mut dst),
            Err(QuantError::PartialBlock { dtype: DType::Q4_0, block_bytes: 18, found: 17 })
        );
        assert_eq!(
            dequantize(DType::Q6_K, &[0u8; 211], &mut []),
            Err(QuantError::PartialBlock { dtype: DType::Q6_K, block_bytes: 210, found: 211 })
        );
        assert_eq!(
            dequantize(DType::F16, &[0u8; 3], &mut []),
            Err(QuantError::PartialBlock { dtype: DType::F16, block_bytes: 2, found: 3 })
        );
        assert!(dst.iter().all(|&v| v == 7.0));
    }

    #[test]
    fn wrong_output_length_is_refused_before_writing() {
        let mut dst = [7.0f32; 33];
        assert_eq!(
            dequantize(DType::Q8_0, &[0u8; 34], &mut dst),
            Err(QuantError::OutputLength { dtype: DType::Q8_0, expected: 32, found: 33 })
        );
        assert_eq!(
            dequantize(DType::Q8_0, &[0u8; 34], &mut dst[..31]),
            Err(QuantError::OutputLength { dtype: DType::Q8_0, expected: 32, found: 31 })
        );
        assert!(dst.iter().all(|&v| v == 7.0));
        assert_eq!(
            dequantize(DType::TQ1_0, &[0u8; 54], &mut [0.0; 255]),
            Err(QuantError::OutputLength { dtype: DType::TQ1_0, expected: 256, found: 255 })
        );
    }

    #[test]
    fn empty_source_decodes_to_nothing() {
        for &dtype in SUPPORTED {
            assert_eq!(dequantize(dtype, &[], &mut []), Ok(()), "{dtype}");
        }
    }

    #[test]
    fn unaligned_source_is_fine() {
        // Blocks are alignment-1 structs: a source at an odd address casts in place.
        let mut buf = [0u8; 1 + 34];
        buf[1..3].copy_from_slice(&half::f16::from_f32(0.5).to_le_bytes());
        buf[3] = 4;
        let out = dequantize_to_vec(DType::Q8_0, &buf[1..]).unwrap();
        assert_eq!(out[0], 2.0);
    }
}
