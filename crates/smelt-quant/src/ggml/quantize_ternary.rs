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
/// Also the scale `d`, and whether the block took the fast path (finite weights and `1/d`),
/// where every digit is 0, 1 or 2.
#[inline(always)]
fn digits(x: &[f32; 256]) -> ([u8; 256], f32, bool) {
    let (d, finite) = abs_max(x);
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut out = [0u8; 256];
    let regular = finite && id.is_finite();
    if regular {
        // |x * id| <= 1 up to rounding: the vectorizing conversion is exact here.
        for (digit, &v) in out.iter_mut().zip(x) {
            *digit = (round_half_away_small(v * id) + 1) as u8;
        }
    } else {
        for (digit, &v) in out.iter_mut().zip(x) {
            *digit = lroundf_i64(v * id).wrapping_add(1) as u8;
        }
    }
    (out, d, regular)
}

/// ggml's `((uint16_t)q * 256 + (243 - 1)) / 243` stored back into a `uint8_t`: the base-3
/// value `q` (< 243) as a fixed-point fraction of 256, rounded up.
#[inline(always)]
fn pow3_fraction(q: u8) -> u8 {
    (q as u16 * 256).div_ceil(243) as u8
}

/// `M` bytes of `T` trits each, byte `m` from digits `start + m + M·n` (`n < T`, the first most
/// significant), then `E` zero digits: ggml's loops with the byte index innermost, so that
/// they vectorize (the same wrapping `uint8_t` arithmetic).
#[inline(always)]
fn pow3_bytes<const M: usize, const T: usize, const E: usize>(digits: &[u8; 256], start: usize) -> [u8; M] {
    let mut v = [0u8; M];
    for n in 0..T {
        let row = &digits[start + M * n..start + M * (n + 1)];
        for (v, &d) in v.iter_mut().zip(row) {
            *v = v.wrapping_mul(3).wrapping_add(d);
        }
    }
    for _ in 0..E {
        v.iter_mut().for_each(|v| *v = v.wrapping_mul(3));
    }
    v.map(pow3_fraction)
}

/// A ternary block built from its digits and scale.
pub(super) trait TernaryDigits: QuantizeBlock<Values = [f32; 256]> + bytemuck::Pod {
    /// The block of these digits (see [`digits`]) and scale `d`.
    fn from_digits(digits: &[u8; 256], d: f32) -> Self;
}

impl TernaryDigits for BlockTQ1_0 {
    #[inline(always)]
    fn from_digits(digits: &[u8; 256], d: f32) -> Self {
        let mut qs = [0u8; 48];
        // Bytes 0..32: five trits each, weights m, m + 32, ..., m + 128 (most significant
        // first). Bytes 32..48: weights 160 + m, 176 + m, ..., 224 + m.
        qs[..32].copy_from_slice(&pow3_bytes::<32, 5, 0>(digits, 0));
        qs[32..].copy_from_slice(&pow3_bytes::<16, 5, 0>(digits, 160));
        // qh: four trits each, weights 240 + j, 244 + j, 248 + j, 252 + j, then a zero fifth
        // digit so the first lands in the most significant place.
        let qh = pow3_bytes::<4, 4, 1>(digits, 240);
        BlockTQ1_0 { qs, qh, d: f32_to_f16_bits(d).to_le_bytes() }
    }
}

impl QuantizeBlock for BlockTQ1_0 {
    #[inline(always)]
    fn quantize(x: &[f32; 256]) -> Self {
        let (digits, d, _) = digits(x);
        Self::from_digits(&digits, d)
    }
}

impl TernaryDigits for BlockTQ2_0 {
    #[inline(always)]
    fn from_digits(digits: &[u8; 256], d: f32) -> Self {
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

impl QuantizeBlock for BlockTQ2_0 {
    #[inline(always)]
    fn quantize(x: &[f32; 256]) -> Self {
        let (digits, d, _) = digits(x);
        Self::from_digits(&digits, d)
    }
}

/// Blocks of `B` and their decoded weights in one pass (lengths checked by the caller: whole
/// blocks, `dst` and `decoded` to match). A block on the fast path decodes from its digits,
/// `(digit - 1) · f32(f16(d))`, which is [`super::Block::dequantize`] of its bytes: both
/// packings store digits 0..=2 exactly (the tests decode every byte value back). Other blocks
/// decode from their bytes.
#[inline(always)]
pub(super) fn quantize_decode_blocks<B: TernaryDigits>(src: &[f32], dst: &mut [u8], decoded: &mut [f32]) {
    let blocks = dst.chunks_exact_mut(std::mem::size_of::<B>());
    for ((x, out), y) in src.chunks_exact(256).zip(blocks).zip(decoded.chunks_exact_mut(256)) {
        let x: &[f32; 256] = x.try_into().expect("blocks of 256");
        let y: &mut [f32; 256] = y.try_into().expect("blocks of 256");
        let (digits, d, regular) = digits(x);
        let b = B::from_digits(&digits, d);
        out.copy_from_slice(bytemuck::bytes_of(&b));
        if regular {
            let df = super::float::f16_le_to_f32(f32_to_f16_bits(d).to_le_bytes());
            for (y, &t) in y.iter_mut().zip(&digits) {
                *y = (t as i16 - 1) as f32 * df;
            }
        } else {
            b.dequantize(y);
        }
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
