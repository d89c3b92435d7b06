//! TQ1_0 and TQ2_0 quantizers: ggml's `quantize_row_tq1_0_ref` and `quantize_row_tq2_0_ref`
//! (ggml-quants.c), one block of 256 weights at a time.
//!
//! Both take the block's largest magnitude as the scale `d` and store each weight as the trit
//! `lroundf(x / d)` (computed as `x * (1/d)`, rounded half away from zero), which is -1, 0 or
//! 1 for finite weights. ggml does its digit arithmetic in `uint8_t` and `int`; it is done
//! here with the same wrap-around, so even the out-of-range `lroundf` results of a block of
//! subnormal weights (x86-64 gives `LONG_MIN`, so the digit `LONG_MIN + 1` keeps a low byte
//! of 1, a zero trit) come out as ggml's bytes. Element order and the base-3 packing are
//! documented on the block types in [`super::ternary`].

use super::block_extrema::abs_max;
use super::float::f32_to_f16_bits;
use super::magic_rounding::round_half_away_small;
use super::quantize::QuantizeBlock;
use super::ternary::{BlockTQ1_0, BlockTQ2_0};
use super::x86_conversions::lroundf_i64;

/// ggml's `int xi = lroundf(x * id) + 1` for every weight of a block, kept as the low byte
/// (all that ggml's `uint8_t` arithmetic on it retains): the digit 0, 1 or 2 of trit -1, 0, 1.
/// Also the scale `d`.
#[inline(always)]
fn digits(x: &[f32; 256]) -> ([u8; 256], f32) {
    let (d, finite) = abs_max(x);
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut out = [0u8; 256];
    if finite && id.is_finite() {
        // |x * id| <= 1 up to rounding: the vectorizing conversion is exact here.
        for (digit, &v) in out.iter_mut().zip(x) {
            *digit = (round_half_away_small(v * id) + 1) as u8;
        }
    } else {
        for (digit, &v) in out.iter_mut().zip(x) {
            *digit = lroundf_i64(v * id).wrapping_add(1) as u8;
        }
    }
    (out, d)
}

/// ggml's `((uint16_t)q * 256 + (243 - 1)) / 243` stored back into a `uint8_t`: the base-3
/// value `q` (< 243) as a fixed-point fraction of 256, rounded up.
#[inline(always)]
fn pow3_fraction(q: u8) -> u8 {
    (q as u16 * 256).div_ceil(243) as u8
}

impl QuantizeBlock for BlockTQ1_0 {
    #[inline(always)]
    fn quantize(x: &[f32; 256]) -> Self {
        let (digits, d) = digits(x);
        let mut qs = [0u8; 48];
        // Bytes 0..32: five trits each, weights m, m + 32, ..., m + 128 (most significant
        // first). Bytes 32..48: weights 160 + m, 176 + m, ..., 224 + m.
        for (m, q) in qs[..32].iter_mut().enumerate() {
            let mut v = 0u8;
            for n in 0..5 {
                v = v.wrapping_mul(3).wrapping_add(digits[m + 32 * n]);
            }
            *q = pow3_fraction(v);
        }
        for (m, q) in qs[32..].iter_mut().enumerate() {
            let mut v = 0u8;
            for n in 0..5 {
                v = v.wrapping_mul(3).wrapping_add(digits[160 + m + 16 * n]);
            }
            *q = pow3_fraction(v);
        }
        // qh: four trits each, weights 240 + j, 244 + j, 248 + j, 252 + j, then a zero fifth
        // digit so the first lands in the most significant place.
        let mut qh = [0u8; 4];
        for (j, q) in qh.iter_mut().enumerate() {
            let mut v = 0u8;
            for m in 0..4 {
                v = v.wrapping_mul(3).wrapping_add(digits[240 + j + 4 * m]);
            }
            *q = pow3_fraction(v.wrapping_mul(3));
        }
        BlockTQ1_0 { qs, qh, d: f32_to_f16_bits(d).to_le_bytes() }
    }
}

impl QuantizeBlock for BlockTQ2_0 {
    #[inline(always)]
    fn quantize(x: &[f32; 256]) -> Self {
        let (digits, d) = digits(x);
        let mut qs = [0u8; 64];
        // Byte 32 * g + m holds weights 128 * g + m + 32 * n in bits 2n..2n+2.
        for (g, (bytes, group)) in qs.chunks_exact_mut(32).zip(digits.chunks_exact(128)).enumerate() {
            debug_assert!(g < 2);
            for (m, q) in bytes.iter_mut().enumerate() {
                let mut v = 0u8;
                for n in 0..4 {
                    v = v.wrapping_add((group[m + 32 * n] & 3) << (2 * n));
                }
                *q = v;
            }
        }
        BlockTQ2_0 { qs, d: f32_to_f16_bits(d).to_le_bytes() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ggml::Block;

    #[test]
    fn every_byte_of_five_trits_decodes_back() {
        // Weights m + 32 n of a block: five trits into qs[m]; the decoder must read them back.
        for v in 0..243u32 {
            let trits: [f32; 5] = std::array::from_fn(|n| ((v / 3u32.pow(4 - n as u32)) % 3) as f32 - 1.0);
            let mut x = [0.0f32; 256];
            x[255] = 1.0; // d = 1
            for (n, &t) in trits.iter().enumerate() {
                x[7 + 32 * n] = t;
            }
            let mut out = [0.0f32; 256];
            BlockTQ1_0::quantize(&x).dequantize(&mut out);
            for (n, &t) in trits.iter().enumerate() {
                assert_eq!(out[7 + 32 * n], t, "v={v} trit {n}");
            }
        }
    }

    #[test]
    fn subnormal_blocks_become_zero_trits_with_zero_scale() {
        // amax = 1e-40: 1/d overflows to infinity, every product is +-inf (or NaN for the
        // zero), lroundf gives LONG_MIN on x86-64, and LONG_MIN + 1 has low byte 1.
        let mut x = [1e-40f32; 256];
        x[3] = -1e-40;
        x[4] = 0.0;
        let b = BlockTQ2_0::quantize(&x);
        assert_eq!(b.d, [0, 0]);
        assert_eq!(b.qs, [0b01_01_01_01; 64]);
        let b = BlockTQ1_0::quantize(&x);
        assert_eq!((b.qs, b.qh, b.d), ([pow3_fraction(121); 48], [pow3_fraction(120); 4], [0, 0]));
    }
}
