//! Ternary weights, BitNet b1.58's absmean quantizer, and the packings that store them.
//!
//! Quantizer, as the BitNet b1.58 reference `weight_quant` ("The Era of 1-bit LLMs: Training
//! Tips, Code and FAQ", Microsoft, 2024; the same code is `WeightQuant.forward` in transformers'
//! `integrations/bitnet.py`) computes it in f32:
//!
//! ```text
//! scale = 1.0 / w.abs().mean().clamp_(min=1e-5)
//! codes = (w * scale).round().clamp_(-1, 1)        # dequantized: codes / scale
//! ```
//!
//! so `mean_abs = max(mean|W|, 1e-5)` over the whole tensor (torch's summation order, see
//! [`TorchReduction`], which depends on torch's thread count above 32768 elements), `scale` is
//! its f32 reciprocal and codes are `round_half_even(w * scale)` clipped to {-1, 0, 1}: a
//! multiplication by the reciprocal, not a division by `mean_abs`, because that is what the
//! reference does (the two differ in the last bit often enough to move ties). transformers'
//! `BitLinear` stores `scale` (its `weight_scale`) and divides by it, as [`TernaryTensor::dequantize`]
//! does (bit-identical to the reference except that the reference's `torch.round` keeps the
//! sign of a small negative weight, giving -0.0 where smelt's integer code 0 gives +0.0). NaN
//! weights get code 0; a NaN or infinite mean gives whatever the formula gives, never a panic.
//!
//! Packings (element order is the tensor's row-major order unless said otherwise):
//! - [`pack_2bit`]: four weights per byte, code `q + 1` in {0, 1, 2} (3 unused), element
//!   `4k + i` in bits `2i .. 2i + 2` of byte `k` (first element in the lowest bits). This is
//!   TQ2_0's per-weight code but not its order: TQ2_0 interleaves 32 bytes per 128 weights
//!   inside 256-weight blocks with an f16 scale each.
//! - [`pack_base3`]: five weights per byte in plain base 3, as docs/blob-format.md specifies
//!   for the blob's `ternary3` scheme: digits `d = q + 1` in {0, 1, 2}, byte `k` holds elements
//!   `5k .. 5k + 5` as `Σ d_i · 3^i` (0..=242, the first element the least significant digit),
//!   so digit `i` is `byte / 3^i mod 3`. This is not ggml TQ1_0's byte encoding (first
//!   element most significant, stored as the fixed-point fraction `ceil(v · 256 / 243)`; see
//!   [`crate::ggml::ternary`]): the blob's format is read by plain C readers, for which the
//!   division-by-constant form is the simplest to get right.
//! - [`pack_2bit_hf_rows`]: transformers' BitNet checkpoint layout (`pack_weights`): a
//!   `[rows, cols]` weight becomes `[ceil(rows / 4), cols]` bytes, byte `[r, c]` holding rows
//!   `r`, `r + R`, `r + 2R`, `r + 3R` (`R = ceil(rows / 4)`) of column `c` in bits 0-1, 2-3,
//!   4-5, 6-7, code `q + 1`; slots past the last row are 0 bits (code 0, decoded as -1).
//!
//! In the two sequential packings a last partial byte is padded with the code of 0 (`1`),
//! so a decoder that runs past the element count adds zero weights.

use crate::rounding::{round_half_even, TorchReduction};
use crate::scheme_error::{check_shape, SchemeError};

/// BitNet's lower bound on `mean|W|` (`clamp_(min=1e-5)`).
pub const BITNET_MEAN_EPS: f32 = 1e-5;

/// A tensor quantized to {-1, 0, 1} with one tensor-wide scale.
#[derive(Clone, Debug, PartialEq)]
pub struct TernaryTensor {
    /// One code in {-1, 0, 1} per weight, in the input's order.
    pub codes: Vec<i8>,
    /// `max(mean|W|, 1e-5)`.
    pub mean_abs: f32,
    /// `1 / mean_abs` in f32: weights are `code / scale`.
    pub scale: f32,
}

/// Quantizes `values` with BitNet b1.58's absmean rule; `reduction` says how torch would sum
/// `|W|` (threads matter from 32768 weights on).
pub fn quantize_ternary(values: &[f32], reduction: TorchReduction) -> TernaryTensor {
    let abs: Vec<f32> = values.iter().map(|v| v.abs()).collect();
    let (mean_abs, scale) = ternary_scale(reduction.sum(&abs), values.len());
    let mut codes = vec![0i8; values.len()];
    ternary_codes_into(values, scale, &mut codes);
    TernaryTensor { codes, mean_abs, scale }
}

/// `(mean_abs, scale)` from `Σ|W|` (summed as torch does, see [`TorchReduction`] and
/// [`crate::rounding::StreamingSum`]) over `n` weights: `mean = sum / n` in f32, clamped
/// below at [`BITNET_MEAN_EPS`] (NaN stays NaN, as `torch.clamp_`), `scale = 1 / mean_abs`.
pub fn ternary_scale(abs_sum: f32, n: usize) -> (f32, f32) {
    let mean = abs_sum / n as f32;
    let mean_abs = if mean.is_nan() { mean } else { mean.max(BITNET_MEAN_EPS) };
    (mean_abs, 1.0 / mean_abs)
}

/// The codes of `values` under `scale` (see the module documentation), into `out`.
pub fn ternary_codes_into(values: &[f32], scale: f32, out: &mut [i8]) {
    ternary_codes_into_tiered(smelt_tensor::simd::tier(), values, scale, out)
}

smelt_tensor::tiered!(fn ternary_codes_into_tiered(values: &[f32], scale: f32, out: &mut [i8]) = ternary_codes_into_body);

#[inline(always)]
fn ternary_codes_into_body(values: &[f32], scale: f32, out: &mut [i8]) {
    for (o, &w) in out.iter_mut().zip(values) {
        *o = ternary_code(w * scale);
    }
}

/// [`ternary_codes_into`], and the decoded weights ([`TernaryTensor::dequantize`]'s
/// `code / scale`, the same bits) into `decoded`, in one pass.
///
/// Panics when the lengths differ.
pub fn ternary_codes_decode_into(values: &[f32], scale: f32, out: &mut [i8], decoded: &mut [f32]) {
    assert!(out.len() == values.len() && decoded.len() == values.len(), "ternary buffer lengths");
    ternary_codes_decode_tiered(smelt_tensor::simd::tier(), values, scale, out, decoded)
}

smelt_tensor::tiered!(fn ternary_codes_decode_tiered(values: &[f32], scale: f32, out: &mut [i8], decoded: &mut [f32]) = ternary_codes_decode_body);

#[inline(always)]
fn ternary_codes_decode_body(values: &[f32], scale: f32, out: &mut [i8], decoded: &mut [f32]) {
    // code / scale is ±(1 / scale) or 0 / scale: the same values from one division. Opaque
    // to the optimizer, which otherwise sees that the select below equals `code / scale` and
    // puts a division back into the loop (most of this loop's time).
    let (plus, minus, zero) = std::hint::black_box((1.0 / scale, -1.0 / scale, 0.0 / scale));
    for ((o, y), &w) in out.iter_mut().zip(decoded.iter_mut()).zip(values) {
        let q = ternary_code(w * scale);
        *o = q;
        *y = if q > 0 {
            plus
        } else if q < 0 {
            minus
        } else {
            zero
        };
    }
}

/// `round_half_even(x)` clipped to {-1, 0, 1}; NaN gives 0.
#[inline(always)]
fn ternary_code(x: f32) -> i8 {
    let q = round_half_even(x);
    let q = if q.is_nan() { 0.0 } else { q.clamp(-1.0, 1.0) };
    // q is -1, ±0 or 1: its bits give the code without a (scalar) saturating cast.
    crate::int8::small_int_bits(q) as i8
}

impl TernaryTensor {
    /// The dequantized weights `code / scale`, as BitNet's reference computes them.
    pub fn dequantize(&self) -> Vec<f32> {
        ternarytensor_dequantize_tiered(smelt_tensor::simd::tier(), self)
    }

    #[inline(always)]
    fn dequantize_impl(&self) -> Vec<f32> {
        self.codes.iter().map(|&q| q as f32 / self.scale).collect()
    }
}

fn checked_code(codes: &[i8], i: usize) -> Result<u8, SchemeError> {
    match codes[i] {
        q @ -1..=1 => Ok((q + 1) as u8),
        q => Err(SchemeError::Code { index: i, code: q as i32 }),
    }
}

/// Packs ternary codes four per byte (see the module documentation).
///
/// Errors: a code outside {-1, 0, 1}.
pub fn pack_2bit(codes: &[i8]) -> Result<Vec<u8>, SchemeError> {
    pack_2bit_with(smelt_tensor::simd::tier(), codes)
}

/// [`pack_2bit`] with its loops compiled for a given [`smelt_tensor::simd::Tier`] (the same
/// bytes at every one; for differential tests).
pub fn pack_2bit_with(tier: smelt_tensor::simd::Tier, codes: &[i8]) -> Result<Vec<u8>, SchemeError> {
    // Checked while packed, in one pass that vectorizes; only a bad tensor is searched for
    // the index.
    let fours = codes.len() / 4;
    let tail = &codes[fours * 4..];
    let mut out = vec![0u8; fours];
    if pack_fours(tier, &codes[..fours * 4], &mut out) || any_bad_code(tier, tail) {
        for i in 0..codes.len() {
            checked_code(codes, i)?;
        }
    }
    if !tail.is_empty() {
        // Slots past the end hold the code of 0 (1).
        out.push(
            tail.iter()
                .enumerate()
                .fold(0x55u8, |b, (i, &q)| (b & !(3 << (2 * i))) | (((q + 1) as u8) << (2 * i))),
        );
    }
    Ok(out)
}

smelt_tensor::tiered!(fn any_bad_code(codes: &[i8]) -> bool = any_bad_code_body);

#[inline(always)]
fn any_bad_code_body(codes: &[i8]) -> bool {
    codes.iter().fold(false, |bad, &q| bad | !(-1..=1).contains(&q))
}

smelt_tensor::tiered!(fn pack_fours(codes: &[i8], out: &mut [u8]) -> bool = pack_fours_body);

/// Four codes plus one (0..=2) as the bytes of one little-endian word, then the four 2-bit
/// fields gathered: a loop over words that vectorizes. Returns whether a code was outside
/// {-1, 0, 1} (its byte is then meaningless).
#[inline(always)]
fn pack_fours_body(codes: &[i8], out: &mut [u8]) -> bool {
    let mut bad = 0u32;
    for (o, f) in out.iter_mut().zip(codes.chunks_exact(4)) {
        let d = |q: i8| (q as u8).wrapping_add(1);
        let (a, b, c, e) = (d(f[0]), d(f[1]), d(f[2]), d(f[3]));
        bad |= (a.max(b).max(c).max(e) > 2) as u32;
        let w = u32::from_le_bytes([a, b, c, e]);
        *o = ((w & 0x3) | ((w >> 6) & 0xC) | ((w >> 12) & 0x30) | ((w >> 18) & 0xC0)) as u8;
    }
    bad != 0
}

/// Unpacks `count` codes packed by [`pack_2bit`].
///
/// Errors: `bytes` is not `ceil(count / 4)` long; a stored code 3.
pub fn unpack_2bit(bytes: &[u8], count: usize) -> Result<Vec<i8>, SchemeError> {
    check_packed_len(bytes, count, count.div_ceil(4))?;
    (0..count)
        .map(|i| match (bytes[i / 4] >> (2 * (i % 4))) & 3 {
            3 => Err(SchemeError::Code { index: i, code: 3 }),
            c => Ok(c as i8 - 1),
        })
        .collect()
}

/// Packs ternary codes five per byte in plain base 3, first element least significant (see
/// the module documentation); unused digits of the last byte are 1 (code 0).
///
/// Errors: a code outside {-1, 0, 1}.
pub fn pack_base3(codes: &[i8]) -> Result<Vec<u8>, SchemeError> {
    let mut out = Vec::with_capacity(codes.len().div_ceil(5));
    for start in (0..codes.len()).step_by(5) {
        let mut v = 0u8;
        // Horner from the most significant digit (element start + 4) down: max 242, fits a u8.
        for i in (start..start + 5).rev() {
            let digit = if i < codes.len() { checked_code(codes, i)? } else { 1 };
            v = v * 3 + digit;
        }
        out.push(v);
    }
    Ok(out)
}

/// Unpacks `count` codes packed by [`pack_base3`]: element `5k + i` is `byte_k / 3^i mod 3`,
/// minus 1.
///
/// Errors: `bytes` is not `ceil(count / 5)` long; a byte above 242 (`3^5 - 1`), whose fifth
/// digit would be 3 or more, when that digit is one of the `count` elements.
pub fn unpack_base3(bytes: &[u8], count: usize) -> Result<Vec<i8>, SchemeError> {
    check_packed_len(bytes, count, count.div_ceil(5))?;
    const POW3: [u8; 5] = [1, 3, 9, 27, 81];
    (0..count)
        .map(|i| match bytes[i / 5] / POW3[i % 5] {
            d if i % 5 == 4 && d > 2 => Err(SchemeError::Code { index: i, code: d as i32 }),
            d => Ok((d % 3) as i8 - 1),
        })
        .collect()
}

/// Packs a row-major `[rows, cols]` ternary weight in transformers' BitNet layout
/// (`integrations/bitnet.py` `pack_weights`), `[ceil(rows / 4), cols]` bytes.
///
/// Errors: `codes.len() != rows * cols`; a code outside {-1, 0, 1}.
pub fn pack_2bit_hf_rows(codes: &[i8], rows: usize, cols: usize) -> Result<Vec<u8>, SchemeError> {
    check_shape(&[rows, cols], codes.len())?;
    let packed_rows = rows.div_ceil(4);
    let mut out = vec![0u8; packed_rows * cols];
    for row in 0..rows {
        let (slot, r) = (row / packed_rows, row % packed_rows);
        for c in 0..cols {
            out[r * cols + c] |= checked_code(codes, row * cols + c)? << (2 * slot);
        }
    }
    Ok(out)
}

/// Unpacks a `[rows, cols]` weight packed by [`pack_2bit_hf_rows`].
///
/// Errors: `bytes` is not `ceil(rows / 4) * cols` long; a stored code 3.
pub fn unpack_2bit_hf_rows(bytes: &[u8], rows: usize, cols: usize) -> Result<Vec<i8>, SchemeError> {
    let count = check_shape(&[rows, cols], rows.saturating_mul(cols))?;
    let packed_rows = rows.div_ceil(4);
    check_packed_len(bytes, count, packed_rows * cols)?;
    let mut out = Vec::with_capacity(count);
    for row in 0..rows {
        let (slot, r) = (row / packed_rows, row % packed_rows);
        for c in 0..cols {
            match (bytes[r * cols + c] >> (2 * slot)) & 3 {
                3 => return Err(SchemeError::Code { index: row * cols + c, code: 3 }),
                q => out.push(q as i8 - 1),
            }
        }
    }
    Ok(out)
}

fn check_packed_len(bytes: &[u8], count: usize, expected: usize) -> Result<(), SchemeError> {
    if bytes.len() == expected {
        Ok(())
    } else {
        Err(SchemeError::PackedLength { count, expected, found: bytes.len() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every tier packs the bytes of the baseline copy (every tail length, all three codes in
    /// every slot), and every tier finds a bad code wherever it is.
    #[test]
    fn pack_2bit_is_the_same_at_every_tier() {
        use smelt_tensor::simd::Tier;
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for len in (0usize..70).chain([255, 256, 257, 4099]) {
            let codes: Vec<i8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x % 3) as i8 - 1
                })
                .collect();
            let want = pack_2bit_with(Tier::Scalar, &codes).unwrap();
            // Independent of the loops: code i in bits 2(i mod 4) of byte i / 4.
            let mut direct = vec![0x55u8; len.div_ceil(4)];
            for (i, &q) in codes.iter().enumerate() {
                let b = &mut direct[i / 4];
                *b = (*b & !(3 << (2 * (i % 4)))) | (((q + 1) as u8) << (2 * (i % 4)));
            }
            assert_eq!(want, direct, "{len}");
            for tier in Tier::ALL {
                assert_eq!(pack_2bit_with(tier, &codes).unwrap(), want, "{len} {}", tier.name());
                // A bad code in the packed words or in the tail, including ones whose code + 1
                // wraps: the error names the first.
                for (at, q) in [(len / 2, 2i8), (len / 3, -2), (len.saturating_sub(1), 127), (len / 2, -128)]
                {
                    if len == 0 {
                        break;
                    }
                    let mut bad = codes.clone();
                    bad[at] = q;
                    let err = pack_2bit_with(tier, &bad);
                    assert!(
                        matches!(err, Err(SchemeError::Code { index, code }) if index == at && code == q as i32),
                        "{len} {at} {q} {}: {err:?}",
                        tier.name()
                    );
                }
            }
        }
    }

    /// Codes and decoded values in one pass equal `ternary_codes_into` and `code / scale`,
    /// bit for bit, at every SIMD level (zeros, ties at ±0.5, NaN, huge values).
    #[test]
    fn codes_decode_into_matches_codes_then_dequantize() {
        let mut v: Vec<f32> = (0..1000).map(|i| ((i * 7919 % 1013) as f32 - 506.0) * 3.7e-3).collect();
        v.extend([0.0, -0.0, 0.5 / 1.7, -0.5 / 1.7, 1.5 / 1.7, f32::NAN, 3e38, -3e38]);
        for scale in [1.7f32, 1e-30, 1e30] {
            let mut want = vec![0i8; v.len()];
            ternary_codes_into(&v, scale, &mut want);
            let want_dec: Vec<u32> = want.iter().map(|&q| (q as f32 / scale).to_bits()).collect();
            for tier in smelt_tensor::simd::Tier::ALL {
                let (mut got, mut dec) = (vec![0i8; v.len()], vec![0f32; v.len()]);
                ternary_codes_decode_tiered(tier, &v, scale, &mut got, &mut dec);
                assert_eq!(got, want, "{} scale {scale}", tier.name());
                assert_eq!(dec.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), want_dec, "{}", tier.name());
            }
        }
    }

    #[test]
    fn absmean_codes_and_eps() {
        let t = quantize_ternary(&[0.5, -1.5, 0.2, 2.0], TorchReduction::default());
        assert_eq!(t.mean_abs, 1.05);
        assert_eq!(t.scale, 1.0 / 1.05f32);
        assert_eq!(t.codes, vec![0, -1, 0, 1]);
        let z = quantize_ternary(&[0.0; 7], TorchReduction::default());
        assert_eq!((z.mean_abs, z.codes.clone()), (1e-5, vec![0; 7]));
        assert_eq!(z.dequantize(), vec![0.0; 7]);
        let e = quantize_ternary(&[], TorchReduction::default());
        assert!(e.codes.is_empty() && e.mean_abs.is_nan());
        let n = quantize_ternary(&[f32::NAN, 1.0], TorchReduction::default());
        assert_eq!(n.codes, vec![0, 0]);
    }

    #[test]
    fn ties_round_to_even() {
        // mean |W| = 1, so w * scale = w: 0.5 rounds to 0, 1.5 to 2 then clips to 1.
        let t = quantize_ternary(&[0.5, -0.5, 1.5, 1.0, 1.5], TorchReduction::default());
        assert_eq!(t.scale, 1.0);
        assert_eq!(t.codes, vec![0, 0, 1, 1, 1]);
    }

    #[test]
    fn golden_bytes_2bit() {
        // codes -1, 0, 1, 1 | 0 -> digits 0, 1, 2, 2 | 1 (+ padding 1, 1, 1)
        let p = pack_2bit(&[-1, 0, 1, 1, 0]).unwrap();
        assert_eq!(p, vec![0b10_10_01_00, 0b01_01_01_01]);
        assert_eq!(unpack_2bit(&p, 5).unwrap(), vec![-1, 0, 1, 1, 0]);
        assert!(matches!(unpack_2bit(&[0b11 << 2], 2), Err(SchemeError::Code { index: 1, code: 3 })));
        assert!(matches!(unpack_2bit(&p, 9), Err(SchemeError::PackedLength { expected: 3, found: 2, .. })));
        assert!(matches!(pack_2bit(&[0, 2]), Err(SchemeError::Code { index: 1, code: 2 })));
    }

    #[test]
    fn golden_bytes_base3() {
        // digits 2,0,1,2,1 (first least significant) -> 2 + 0*3 + 1*9 + 2*27 + 1*81 = 146.
        let p = pack_base3(&[1, -1, 0, 1, 0, 1]).unwrap();
        assert_eq!(p[0], 146);
        // second byte: digit 2 then padding 1,1,1,1 -> 2 + 3 + 9 + 27 + 81 = 122
        assert_eq!(p[1], 122);
        assert_eq!(unpack_base3(&p, 6).unwrap(), vec![1, -1, 0, 1, 0, 1]);
        // Every byte 0..=242 is one combination of five digits, and back.
        let all: Vec<i8> =
            (0..243 * 5).map(|i| ((i / 5) / 3usize.pow((i % 5) as u32) % 3) as i8 - 1).collect();
        let packed = pack_base3(&all).unwrap();
        assert_eq!(packed, (0..=242u8).collect::<Vec<_>>());
        assert_eq!(unpack_base3(&packed, all.len()).unwrap(), all);
        // 243 = digits 0,0,0,0,3: the fifth digit is out of range, unless it is not asked for.
        assert!(matches!(unpack_base3(&[243], 5), Err(SchemeError::Code { index: 4, code: 3 })));
        assert_eq!(unpack_base3(&[243], 4).unwrap(), vec![-1; 4]);
    }

    #[test]
    fn hf_rows_layout() {
        // 5 rows x 2 cols: R = 2; byte [0, c] holds rows 0, 2, 4 (and an empty slot).
        let codes: Vec<i8> = vec![1, -1, 0, 0, -1, 1, 1, 1, 0, -1];
        let p = pack_2bit_hf_rows(&codes, 5, 2).unwrap();
        assert_eq!(p.len(), 4);
        // [0,0]: row0=1 -> 2 (bits 0-1), row2=-1 -> 0 (bits 2-3), row4=0 -> 1 (bits 4-5),
        // slot 3 empty.
        assert_eq!(p[0], 0b00_01_00_10);
        assert_eq!(unpack_2bit_hf_rows(&p, 5, 2).unwrap(), codes);
        assert!(matches!(pack_2bit_hf_rows(&codes, 3, 3), Err(SchemeError::Shape { .. })));
    }

    #[test]
    fn odd_lengths_round_trip() {
        for n in [0usize, 1, 63, 64, 65] {
            let codes: Vec<i8> = (0..n).map(|i| (i % 3) as i8 - 1).collect();
            assert_eq!(unpack_2bit(&pack_2bit(&codes).unwrap(), n).unwrap(), codes);
            assert_eq!(unpack_base3(&pack_base3(&codes).unwrap(), n).unwrap(), codes);
            assert_eq!(unpack_2bit_hf_rows(&pack_2bit_hf_rows(&codes, n, 1).unwrap(), n, 1).unwrap(), codes);
        }
    }
}

#[inline(always)]
fn ternarytensor_dequantize_body(t: &TernaryTensor) -> Vec<f32> {
    t.dequantize_impl()
}
smelt_tensor::tiered!(fn ternarytensor_dequantize_tiered(t: &TernaryTensor) -> Vec<f32> = ternarytensor_dequantize_body);
