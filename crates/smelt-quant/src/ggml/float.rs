//! ggml's plain float storage types (F32, F16, BF16) and the f16 scale decoding every block
//! type shares.
//!
//! These conversions are exact, so ggml's `ggml_fp16_to_fp32_row` / `ggml_bf16_to_fp32_row`
//! and any correct conversion agree on every non-NaN input. NaNs stay NaN: F16 NaNs come out
//! quiet with their payload (as ggml's and the hardware's conversions give), BF16 and F32 bits
//! pass through unchanged.
//!
//! The narrowing direction (f32 to F16 / BF16, and every block scale) rounds, so it follows
//! ggml's own code: [`f32_to_f16_bits`] is `ggml_compute_fp32_to_fp16` (ggml-impl.h, the
//! software path ggml uses where there is no F16C) and [`f32_to_bf16_bits`] is
//! `ggml_compute_fp32_to_bf16`. Both round to nearest even; they differ from `half`'s
//! conversions only in the NaNs they produce.

use half::f16;

use crate::QuantError;
use smelt_tensor::DType;

/// Decodes a `ggml_half` scale field stored as two little-endian bytes.
#[inline]
pub fn f16_le_to_f32(bytes: [u8; 2]) -> f32 {
    f16::from_le_bytes(bytes).to_f32()
}

/// ggml's `ggml_compute_fp32_to_fp16` (`GGML_FP32_TO_FP16`), bit for bit: round to nearest
/// even with subnormals and overflow to infinity, every NaN becoming `0x7E00` with its sign.
///
/// The algorithm (from Maratyszcza's FP16 library) lets the f32 adder do the rounding: the
/// magnitude is scaled so that an addition to a suitably chosen power of two leaves exactly
/// the f16 mantissa bits in the low bits of the sum. The same f32 operations in the same order
/// (no fused multiply-add) give the same bits.
#[inline(always)]
pub fn f32_to_f16_bits(f: f32) -> u16 {
    let scale_to_inf = f32::from_bits(0x7780_0000); // 2^112
    let scale_to_zero = f32::from_bits(0x0880_0000); // 2^-110
    let mut base = (f.abs() * scale_to_inf) * scale_to_zero;

    let w = f.to_bits();
    let shl1_w = w.wrapping_add(w);
    let sign = w & 0x8000_0000;
    let mut bias = shl1_w & 0xFF00_0000;
    if bias < 0x7100_0000 {
        bias = 0x7100_0000;
    }

    base += f32::from_bits((bias >> 1) + 0x0780_0000); // IEEE addition commutes: C order, same bits
    let bits = base.to_bits();
    let exp_bits = (bits >> 13) & 0x0000_7C00;
    let mantissa_bits = bits & 0x0000_0FFF;
    let nonsign = exp_bits + mantissa_bits;
    ((sign >> 16) | if shl1_w > 0xFF00_0000 { 0x7E00 } else { nonsign }) as u16
}

/// ggml's `ggml_compute_fp32_to_bf16` (`GGML_FP32_TO_BF16`), bit for bit: round to nearest
/// even on the upper half of the f32 bits; a NaN keeps its upper half with the quiet bit set.
#[inline(always)]
pub fn f32_to_bf16_bits(f: f32) -> u16 {
    let u = f.to_bits();
    if (u & 0x7fff_ffff) > 0x7f80_0000 {
        return ((u >> 16) | 64) as u16;
    }
    // No overflow: the largest non-NaN pattern, 0xff80_0000, plus 0x8000 stays below 2^32.
    ((u + (0x7fff + ((u >> 16) & 1))) >> 16) as u16
}

/// Stores f32 values as little-endian F32, F16 or BF16 (`dst.len()` already checked to be
/// `src.len()` times the element size).
pub(crate) fn quantize_float(dtype: DType, src: &[f32], dst: &mut [u8]) -> Result<(), QuantError> {
    let found = dst.len();
    let length_error = || QuantError::QuantizedLength {
        dtype,
        expected: src.len().saturating_mul(dtype.block_bytes() as usize),
        found,
    };
    match dtype {
        DType::F32 => {
            let out: &mut [[u8; 4]] = bytemuck::try_cast_slice_mut(dst).map_err(|_| length_error())?;
            if out.len() != src.len() {
                return Err(length_error());
            }
            for (o, v) in out.iter_mut().zip(src) {
                *o = v.to_le_bytes();
            }
        }
        DType::F16 | DType::BF16 => {
            let out: &mut [[u8; 2]] = bytemuck::try_cast_slice_mut(dst).map_err(|_| length_error())?;
            if out.len() != src.len() {
                return Err(length_error());
            }
            if dtype == DType::F16 {
                for (o, &v) in out.iter_mut().zip(src) {
                    *o = f32_to_f16_bits(v).to_le_bytes();
                }
            } else {
                for (o, &v) in out.iter_mut().zip(src) {
                    *o = f32_to_bf16_bits(v).to_le_bytes();
                }
            }
        }
        _ => return Err(QuantError::NoQuantizer { dtype }),
    }
    Ok(())
}

/// Copies little-endian f32 values (`src.len() == 4 * dst.len()`).
pub(crate) fn dequantize_f32(src: &[u8], dst: &mut [f32]) -> Result<(), QuantError> {
    let values: &[[u8; 4]] = cast_elements(DType::F32, src, dst.len())?;
    for (v, out) in values.iter().zip(dst.iter_mut()) {
        *out = f32::from_le_bytes(*v);
    }
    Ok(())
}

/// Widens little-endian f16 values (`src.len() == 2 * dst.len()`).
pub(crate) fn dequantize_f16(src: &[u8], dst: &mut [f32]) -> Result<(), QuantError> {
    let values: &[[u8; 2]] = cast_elements(DType::F16, src, dst.len())?;
    for (v, out) in values.iter().zip(dst.iter_mut()) {
        *out = f16_le_to_f32(*v);
    }
    Ok(())
}

/// Widens little-endian bf16 values (`src.len() == 2 * dst.len()`): ggml's
/// `ggml_compute_bf16_to_fp32`, the bits shifted into the upper half of an f32. Not
/// `half::bf16::to_f32`, which sets the quiet bit of signalling NaNs where ggml keeps them.
pub(crate) fn dequantize_bf16(src: &[u8], dst: &mut [f32]) -> Result<(), QuantError> {
    let values: &[[u8; 2]] = cast_elements(DType::BF16, src, dst.len())?;
    for (v, out) in values.iter().zip(dst.iter_mut()) {
        *out = f32::from_bits((u16::from_le_bytes(*v) as u32) << 16);
    }
    Ok(())
}

/// Views `src` as byte arrays `T`, one per element, checking there is exactly one per output
/// value.
fn cast_elements<T: bytemuck::Pod>(dtype: DType, src: &[u8], dst_len: usize) -> Result<&[T], QuantError> {
    let block_bytes = std::mem::size_of::<T>();
    let values: &[T] = bytemuck::try_cast_slice(src).map_err(|_| QuantError::PartialBlock {
        dtype,
        block_bytes,
        found: src.len(),
    })?;
    if values.len() != dst_len {
        return Err(QuantError::OutputLength { dtype, expected: values.len(), found: dst_len });
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_is_the_upper_half_of_f32() {
        let mut out = [0.0f32; 3];
        dequantize_bf16(&[0x80, 0x3f, 0x00, 0xc0, 0x81, 0x7f], &mut out).unwrap();
        assert_eq!(out[0], 1.0);
        assert_eq!(out[1], -2.0);
        // Regression: half's bf16::to_f32 quiets this NaN (0x7fc1_0000); ggml does not.
        assert_eq!(out[2].to_bits(), 0x7f81_0000, "signalling NaN bits pass through");
    }

    #[test]
    fn f16_is_exact_including_subnormals_and_infinities() {
        let mut out = [0.0f32; 5];
        dequantize_f16(&[0x00, 0x3c, 0x01, 0x00, 0x00, 0x80, 0x00, 0xfc, 0xff, 0x7b], &mut out).unwrap();
        assert_eq!(out[0], 1.0);
        assert_eq!(out[1], 2f32.powi(-24), "smallest subnormal");
        assert_eq!(out[2].to_bits(), 0x8000_0000, "negative zero");
        assert_eq!(out[3], f32::NEG_INFINITY);
        assert_eq!(out[4], 65504.0);
    }

    #[test]
    fn f16_narrowing_rounds_to_nearest_even_like_half() {
        // half's software conversion is IEEE round to nearest even; ggml's agrees on every
        // non-NaN value. Every 997th f32 bit pattern plus the edges of each f16 binade.
        let mut patterns: Vec<u32> = (0..=u32::MAX / 997).map(|i| i * 997).collect();
        for e in 0..=31u32 {
            for m in [0u32, 1, 0x0fff, 0x1000, 0x1001, 0x1fff, 0x2000, 0x3fff, 0x7fe000, 0x7fefff, 0x7ff000] {
                let exp = 103 + e; // f32 exponents around the f16 range, subnormals included
                patterns.push((exp << 23) | m);
                patterns.push(0x8000_0000 | (exp << 23) | m);
            }
        }
        for bits in patterns {
            let v = f32::from_bits(bits);
            if v.is_nan() {
                continue;
            }
            assert_eq!(f32_to_f16_bits(v), half::f16::from_f32(v).to_bits(), "{bits:#010x} ({v:e})");
        }
    }

    #[test]
    fn f16_narrowing_makes_ggml_nans_and_keeps_signed_zero_and_infinity() {
        assert_eq!(f32_to_f16_bits(f32::NAN), 0x7E00);
        assert_eq!(f32_to_f16_bits(f32::from_bits(0xff80_0001)), 0xFE00, "signalling, negative");
        assert_eq!(f32_to_f16_bits(-0.0), 0x8000);
        assert_eq!(f32_to_f16_bits(65520.0), 0x7C00, "rounds up to infinity");
        assert_eq!(f32_to_f16_bits(65519.996), 0x7BFF, "largest finite");
        assert_eq!(f32_to_f16_bits(f32::NEG_INFINITY), 0xFC00);
        let half_smallest_subnormal = f32::from_bits(0x3300_0000); // 2^-25
        assert_eq!(f32_to_f16_bits(half_smallest_subnormal), 0x0000, "tie to even: 0");
        assert_eq!(f32_to_f16_bits(f32::from_bits(0x3300_0001)), 0x0001, "above the tie rounds up");
        assert_eq!(f32_to_f16_bits(f32::from_bits(0x33C0_0000)), 0x0002, "1.5 * 2^-24: tie to even 2");
    }

    #[test]
    fn bf16_narrowing_rounds_to_nearest_even_and_quiets_nans() {
        assert_eq!(f32_to_bf16_bits(1.0), 0x3f80);
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0x3f80_8000)), 0x3f80, "tie to even (down)");
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0x3f81_8000)), 0x3f82, "tie to even (up)");
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0x3f80_8001)), 0x3f81);
        assert_eq!(f32_to_bf16_bits(f32::MAX), 0x7f80, "rounds to infinity");
        assert_eq!(f32_to_bf16_bits(-f32::MAX), 0xff80);
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0x7f80_0001)), 0x7fc0, "signalling NaN quieted");
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0xffa1_2345)), 0xffe1, "payload's upper half kept");
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0x0000_8000)), 0x0000, "subnormal tie to even");
    }

    #[test]
    fn f32_bits_pass_through() {
        let mut out = [0.0f32; 2];
        dequantize_f32(&[0x01, 0x00, 0x80, 0x7f, 0x00, 0x00, 0x80, 0x3f], &mut out).unwrap();
        assert_eq!(out[0].to_bits(), 0x7f80_0001, "signalling NaN kept as is");
        assert_eq!(out[1], 1.0);
    }
}
