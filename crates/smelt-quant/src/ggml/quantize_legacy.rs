//! Q8_0, Q4_0, Q4_1, Q5_0 and Q5_1 quantizers: ggml's `quantize_row_q8_0_ref` ...
//! `quantize_row_q5_1_ref` (ggml-quants.c), one block of 32 weights at a time.
//!
//! Each block function is the C loop with the same f32 operations in the same order. What the
//! C leaves implicit is spelled out: `d ? 1.0f/d : 0.0f` is `d != 0.0` (true for NaN), the
//! integer division constants are f32 (`max / -8` divides by -8.0), and every float-to-integer
//! cast goes through [`x86_conversions`] so that out-of-range values give x86-64's bytes.
//! Where each code lands in the block (nibble halves, the fifth-bit word) is documented on
//! the block types in [`super::legacy`].
//!
//! Every block takes one of two paths that give the same bytes. When all its weights and
//! `1/d` are finite, every scaled weight is within a few units of the code range, and the
//! codes come from [`magic_rounding`], which vectorizes. Otherwise (NaN or infinite weights,
//! or a block so small that `1/d` overflows) the general conversions reproduce what ggml's
//! casts give on such values.

use super::block_extrema::{abs_max, min_max, signed_abs_max};
use super::float::f32_to_f16_bits;
use super::legacy::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0};
use super::magic_rounding::{round_half_away_small, trunc_small_nonnegative};
use super::quantize::QuantizeBlock;
use super::x86_conversions::{roundf_i32, trunc_i32};

/// C's `1.0f/d` guarded by `d ? ... : 0.0f`.
#[inline(always)]
fn inverse_or_zero(d: f32) -> f32 {
    if d != 0.0 {
        1.0 / d
    } else {
        0.0
    }
}

/// C's `MIN(top, (int8_t)v)` stored into a `uint8_t`, given the cast's integer.
#[inline(always)]
fn at_most(truncated: i32, top: i8) -> u8 {
    let c = truncated as i8;
    (if c < top { c } else { top }) as u8
}

/// Codes for the weights of a block: `code(scaled)` for each, where `scaled` is the value
/// ggml's cast receives, through the vectorizing conversion when `in_range` (see the module
/// doc) and the general one otherwise.
#[inline(always)]
fn codes(
    x: &[f32; 32],
    in_range: bool,
    scaled: impl Fn(f32) -> f32,
    fast: impl Fn(f32) -> u8,
    general: impl Fn(f32) -> u8,
) -> [u8; 32] {
    let mut out = [0u8; 32];
    if in_range {
        for (c, &v) in out.iter_mut().zip(x) {
            *c = fast(scaled(v));
        }
    } else {
        for (c, &v) in out.iter_mut().zip(x) {
            *c = general(scaled(v));
        }
    }
    out
}

/// Two 4-bit codes per byte: weight `j` in the low nibble of byte `j`, weight `j + 16` in the
/// high nibble (C's `xi0 | xi1 << 4` stored into a byte).
#[inline(always)]
fn pack_nibbles(codes: &[u8; 32]) -> [u8; 16] {
    let mut qs = [0u8; 16];
    let (first, second) = codes.split_at(16);
    for ((q, &xi0), &xi1) in qs.iter_mut().zip(first).zip(second) {
        *q = xi0 | (xi1 << 4);
    }
    qs
}

/// The low nibbles of 32 five-bit codes, two per byte, and their fifth bits as ggml's `qh`
/// (C's `qh |= ((xi & 0x10u) >> 4) << j`: bit 4 of code `j` becomes bit `j`).
#[inline(always)]
fn pack_five_bit(codes: &[u8; 32]) -> ([u8; 16], [u8; 4]) {
    let mut qs = [0u8; 16];
    let (first, second) = codes.split_at(16);
    for ((q, &xi0), &xi1) in qs.iter_mut().zip(first).zip(second) {
        *q = (xi0 & 0x0F) | ((xi1 & 0x0F) << 4);
    }
    // Eight codes at a time: bit 4 of each byte moved to bit 0, then one multiplication
    // gathers bit 0 of byte k into bit 56 + k (the partial products never overlap).
    let words: [u64; 4] = bytemuck::cast(*codes);
    let mut qh = 0u32;
    for (k, &word) in words.iter().enumerate() {
        let bits = (u64::from_le(word) >> 4) & 0x0101_0101_0101_0101;
        qh |= ((bits.wrapping_mul(0x0102_0408_1020_4080) >> 56) as u32) << (8 * k);
    }
    (qs, qh.to_le_bytes())
}

impl QuantizeBlock for BlockQ8_0 {
    /// `d = amax / 127`, code = `roundf(x / d)` (as `x * (1/d)`), half away from zero.
    #[inline(always)]
    fn quantize(x: &[f32; 32]) -> Self {
        let (amax, finite) = abs_max(x);
        let d = amax / 127.0;
        let id = inverse_or_zero(d);
        let codes = codes(
            x,
            finite && id.is_finite(),
            |v| v * id,
            |v| round_half_away_small(v) as u8,
            |v| roundf_i32(v) as u8,
        );
        BlockQ8_0 { d: f32_to_f16_bits(d).to_le_bytes(), qs: bytemuck::cast(codes) }
    }
}

impl QuantizeBlock for BlockQ4_0 {
    /// `d = max / -8` with `max` the weight of largest magnitude (so it decodes to code 0
    /// exactly), code = `min(15, trunc(x / d + 8.5))`.
    #[inline(always)]
    fn quantize(x: &[f32; 32]) -> Self {
        let (max, finite) = signed_abs_max(x);
        let d = max / -8.0;
        let id = inverse_or_zero(d);
        let codes = codes(
            x,
            finite && id.is_finite(),
            |v| v * id + 8.5,
            |v| at_most(trunc_small_nonnegative(v), 15),
            |v| at_most(trunc_i32(v), 15),
        );
        BlockQ4_0 { d: f32_to_f16_bits(d).to_le_bytes(), qs: pack_nibbles(&codes) }
    }
}

impl QuantizeBlock for BlockQ4_1 {
    /// `d = (max - min) / 15`, `m = min`, code = `min(15, trunc((x - min) / d + 0.5))`.
    #[inline(always)]
    fn quantize(x: &[f32; 32]) -> Self {
        let (min, max, finite) = min_max(x);
        let d = (max - min) / 15.0;
        let id = inverse_or_zero(d);
        let codes = codes(
            x,
            finite && d.is_finite() && id.is_finite(),
            |v| (v - min) * id + 0.5,
            |v| at_most(trunc_small_nonnegative(v), 15),
            |v| at_most(trunc_i32(v), 15),
        );
        BlockQ4_1 {
            d: f32_to_f16_bits(d).to_le_bytes(),
            m: f32_to_f16_bits(min).to_le_bytes(),
            qs: pack_nibbles(&codes),
        }
    }
}

impl QuantizeBlock for BlockQ5_0 {
    /// `d = max / -16` (as Q4_0), code = `min(31, trunc(x / d + 16.5))`.
    #[inline(always)]
    fn quantize(x: &[f32; 32]) -> Self {
        let (max, finite) = signed_abs_max(x);
        let d = max / -16.0;
        let id = inverse_or_zero(d);
        let codes = codes(
            x,
            finite && id.is_finite(),
            |v| v * id + 16.5,
            |v| at_most(trunc_small_nonnegative(v), 31),
            |v| at_most(trunc_i32(v), 31),
        );
        let (qs, qh) = pack_five_bit(&codes);
        BlockQ5_0 { d: f32_to_f16_bits(d).to_le_bytes(), qh, qs }
    }
}

impl QuantizeBlock for BlockQ5_1 {
    /// `d = (max - min) / 31`, `m = min`, code = `trunc((x - min) / d + 0.5)`, not clamped
    /// (ggml's C has no `MIN` here; the value cannot exceed 31.5 for finite weights).
    #[inline(always)]
    fn quantize(x: &[f32; 32]) -> Self {
        let (min, max, finite) = min_max(x);
        let d = (max - min) / 31.0;
        let id = inverse_or_zero(d);
        let codes = codes(
            x,
            finite && d.is_finite() && id.is_finite(),
            |v| (v - min) * id + 0.5,
            |v| trunc_small_nonnegative(v) as u8,
            |v| trunc_i32(v) as u8,
        );
        let (qs, qh) = pack_five_bit(&codes);
        BlockQ5_1 { d: f32_to_f16_bits(d).to_le_bytes(), m: f32_to_f16_bits(min).to_le_bytes(), qh, qs }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ggml::Block;

    trait DecodeBlock {
        fn dequantize_block(&self) -> [f32; 32];
    }
    impl<B: Block<Values = [f32; 32]>> DecodeBlock for B {
        fn dequantize_block(&self) -> [f32; 32] {
            let mut out = [0.0; 32];
            self.dequantize(&mut out);
            out
        }
    }

    fn ramp(scale: f32) -> [f32; 32] {
        std::array::from_fn(|j| (j as f32 - 16.0) * scale)
    }

    #[test]
    fn q8_0_scale_maps_the_largest_magnitude_to_127() {
        let b = BlockQ8_0::quantize(&ramp(1.0));
        assert_eq!(b.qs[0], -127, "-16 is the largest magnitude");
        assert_eq!(b.qs[16], 0);
        assert_eq!(b.qs[31], 119, "15 * 127 / 16 = 119.06");
        let d = half::f16::from_f32(16.0 / 127.0).to_f32();
        assert_eq!(b.dequantize_block()[0], -127.0 * d, "d = 16/127 rounded to f16");
    }

    #[test]
    fn fifth_bits_are_gathered_like_ggmls_loop() {
        let mut state = 0x1234_5678u32;
        for _ in 0..2000 {
            let codes: [u8; 32] = std::array::from_fn(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (state >> 24) as u8
            });
            let mut want = 0u32;
            for (j, &c) in codes.iter().enumerate() {
                want |= (((c & 0x10) >> 4) as u32) << j;
            }
            assert_eq!(pack_five_bit(&codes).1, want.to_le_bytes(), "{codes:?}");
        }
    }

    #[test]
    fn q4_and_q5_zero_blocks_have_negative_zero_scale_and_middle_codes() {
        // max = +0.0, so d = 0.0 / -8 = -0.0 and id = 0: every code is trunc(8.5) = 8.
        let zeros = [0.0f32; 32];
        assert_eq!(BlockQ4_0::quantize(&zeros), BlockQ4_0 { d: [0x00, 0x80], qs: [0x88; 16] });
        let q5 = BlockQ5_0::quantize(&zeros);
        assert_eq!((q5.d, q5.qh, q5.qs), ([0x00, 0x80], [0xFF; 4], [0x00; 16]), "code 16 = 0b1_0000");
        let q41 = BlockQ4_1::quantize(&zeros);
        assert_eq!((q41.d, q41.m, q41.qs), ([0, 0], [0, 0], [0; 16]));
    }
}
