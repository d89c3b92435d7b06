//! ggml's plain float storage types (F32, F16, BF16) and the f16 scale decoding every block
//! type shares.
//!
//! These conversions are exact, so ggml's `ggml_fp16_to_fp32_row` / `ggml_bf16_to_fp32_row`
//! and any correct conversion agree on every non-NaN input. NaNs stay NaN: F16 NaNs come out
//! quiet with their payload (as ggml's and the hardware's conversions give), BF16 and F32 bits
//! pass through unchanged.

use half::f16;

use crate::QuantError;
use smelt_tensor::DType;

/// Decodes a `ggml_half` scale field stored as two little-endian bytes.
#[inline]
pub fn f16_le_to_f32(bytes: [u8; 2]) -> f32 {
    f16::from_le_bytes(bytes).to_f32()
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
    fn f32_bits_pass_through() {
        let mut out = [0.0f32; 2];
        dequantize_f32(&[0x01, 0x00, 0x80, 0x7f, 0x00, 0x00, 0x80, 0x3f], &mut out).unwrap();
        assert_eq!(out[0].to_bits(), 0x7f80_0001, "signalling NaN kept as is");
        assert_eq!(out[1], 1.0);
    }
}
