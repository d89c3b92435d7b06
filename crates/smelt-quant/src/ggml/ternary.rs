//! ggml's ternary types for BitNet b1.58 / TriLM weights: TQ1_0 (base-3 packing, 1.6875 bits
//! per weight) and TQ2_0 (2 bits per weight). Weights are `t * d` with `t` in {-1, 0, 1} and
//! one f16 scale `d` per 256 weights, computed as ggml does: `(t as f32) * d`, so a zero
//! trit times a negative scale is -0.0.

use bytemuck::{Pod, Zeroable};
use smelt_tensor::DType;

use super::float::f16_le_to_f32;
use super::Block;

/// ggml `block_tq1_0` (54 bytes): 256 trits, five per byte in `qs` and four per byte in `qh`.
///
/// Trit packing: a byte holding trits `t0 .. t4` (digits `t + 1` in 0..3, `t0` most
/// significant) stores `ceil(v * 256 / 243)` with `v = sum(digit_i * 3^(4 - i))`, a fixed-point
/// fraction of 1. Trit `n` is read back as the integer part of `3 * frac(byte * 3^n / 256)`,
/// i.e. `((byte * 3^n mod 256) * 3) >> 8`. A `qh` byte stores four trits the same way with a
/// fifth, zero, least significant digit.
///
/// Element order: weight `32 * n + m` is trit `n` of `qs[m]` (`m` < 32, `n` < 5); weight
/// `160 + 16 * n + m` is trit `n` of `qs[32 + m]` (`m` < 16); weight `240 + 4 * n + j` is trit
/// `n` of `qh[j]` (`n`, `j` < 4).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct BlockTQ1_0 {
    /// 240 trits, five per byte.
    pub qs: [u8; 48],
    /// 16 trits, four per byte.
    pub qh: [u8; 4],
    /// Scale, f16 little-endian.
    pub d: [u8; 2],
}
const _: () = assert!(std::mem::size_of::<BlockTQ1_0>() == 54);

/// Trit `n` (0 = most significant) of a TQ1_0 byte, as a digit 0..3 (ggml's `xi`).
#[inline]
pub fn tq1_digit(byte: u8, n: usize) -> i16 {
    const POW3: [u8; 6] = [1, 3, 9, 27, 81, 243];
    let q = byte.wrapping_mul(POW3[n % 6]);
    ((q as u16 * 3) >> 8) as i16
}

impl Block for BlockTQ1_0 {
    const DTYPE: DType = DType::TQ1_0;
    type Values = [f32; 256];

    #[inline(always)]
    fn dequantize(&self, out: &mut [f32; 256]) {
        let d = f16_le_to_f32(self.d);
        for n in 0..5 {
            for m in 0..32 {
                out[32 * n + m] = (tq1_digit(self.qs[m], n) - 1) as f32 * d;
            }
        }
        for n in 0..5 {
            for m in 0..16 {
                out[160 + 16 * n + m] = (tq1_digit(self.qs[32 + m], n) - 1) as f32 * d;
            }
        }
        for n in 0..4 {
            for j in 0..4 {
                out[240 + 4 * n + j] = (tq1_digit(self.qh[j], n) - 1) as f32 * d;
            }
        }
    }
}

/// ggml `block_tq2_0` (66 bytes): 256 2-bit codes `t + 1` (code 3 decodes to 2, which
/// ggml's quantizer never writes).
///
/// Element order: weight `128 * g + 32 * l + m` (`g` < 2, `l` < 4, `m` < 32) is bits
/// `2l..2l+2` of `qs[32 * g + m]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct BlockTQ2_0 {
    /// Codes, four per byte.
    pub qs: [u8; 64],
    /// Scale, f16 little-endian.
    pub d: [u8; 2],
}
const _: () = assert!(std::mem::size_of::<BlockTQ2_0>() == 66);

impl Block for BlockTQ2_0 {
    const DTYPE: DType = DType::TQ2_0;
    type Values = [f32; 256];

    #[inline(always)]
    fn dequantize(&self, out: &mut [f32; 256]) {
        let d = f16_le_to_f32(self.d);
        for g in 0..2 {
            for l in 0..4 {
                for m in 0..32 {
                    let q = ((self.qs[32 * g + m] >> (2 * l)) & 3) as i8;
                    out[128 * g + 32 * l + m] = (q - 1) as f32 * d;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: [u8; 2] = [0x00, 0x3c]; // f16 1.0
    const MINUS_HALF: [u8; 2] = [0x00, 0xb8]; // f16 -0.5

    fn decode<B: Block<Values = [f32; 256]>>(b: &B) -> [f32; 256] {
        let mut out = [f32::NAN; 256];
        b.dequantize(&mut out);
        out
    }

    /// ggml's packing of five base-3 digits, most significant first.
    fn pack5(digits: [u16; 5]) -> u8 {
        let v = digits.iter().fold(0u16, |acc, &t| acc * 3 + t);
        (v * 256).div_ceil(243) as u8
    }

    #[test]
    fn tq1_digits_round_trip_for_every_byte_value() {
        for v in 0..243u16 {
            let digits = [v / 81, v / 27 % 3, v / 9 % 3, v / 3 % 3, v % 3];
            let byte = pack5(digits);
            for (n, &want) in digits.iter().enumerate() {
                assert_eq!(tq1_digit(byte, n), want as i16, "v={v} byte={byte} trit {n}");
            }
        }
    }

    #[test]
    fn tq1_golden_bytes_pin_the_element_order() {
        let mut b = BlockTQ1_0::zeroed();
        b.d = ONE;
        b.qs = [pack5([1, 1, 1, 1, 1]); 48]; // all zero trits
        b.qh = [pack5([1, 1, 1, 1, 0]); 4];
        // qs[0]: weights 0, 32, 64, 96, 128 <- +1, -1, 0, +1, -1 (digits 2 0 1 2 0 = 177)
        b.qs[0] = 187;
        assert_eq!(pack5([2, 0, 1, 2, 0]), 187);
        // qs[33]: weights 160 + 1, 176 + 1, 192 + 1, 208 + 1, 224 + 1 <- -1 0 0 0 +1
        b.qs[33] = pack5([0, 1, 1, 1, 2]);
        // qh[2]: weights 242, 246, 250, 254 <- 0, +1, -1, +1 (digits 1 2 0 2, then a 0 digit)
        b.qh[2] = 149;
        assert_eq!(pack5([1, 2, 0, 2, 0]), 149);
        let out = decode(&b);
        let nonzero: Vec<(usize, f32)> =
            out.iter().enumerate().filter(|(_, v)| **v != 0.0).map(|(i, v)| (i, *v)).collect();
        assert_eq!(
            nonzero,
            vec![
                (0, 1.0),
                (32, -1.0),
                (96, 1.0),
                (128, -1.0),
                (161, -1.0),
                (225, 1.0),
                (246, 1.0),
                (250, -1.0),
                (254, 1.0)
            ]
        );
    }

    #[test]
    fn tq2_golden_bytes_pin_the_element_order() {
        let mut b = BlockTQ2_0::zeroed();
        b.d = MINUS_HALF;
        b.qs = [0b01_01_01_01; 64]; // all zero trits
        b.qs[0] = 0b10_01_00_11; // weights 0, 32, 64, 96 <- codes 3, 0, 1, 2
        b.qs[32 + 5] = 0b01_01_10_01; // weight 128 + 32 + 5 = 165 <- code 2
        let out = decode(&b);
        assert_eq!(out[0], -1.0, "code 3 is +2, times -0.5");
        assert_eq!(out[32], 0.5);
        assert_eq!(out[64].to_bits(), (-0.0f32).to_bits(), "zero trit times a negative scale");
        assert_eq!(out[96], -0.5);
        assert_eq!(out[165], -0.5);
        assert_eq!(out.iter().filter(|v| **v != 0.0).count(), 4);
    }

    #[test]
    fn all_zero_blocks_decode_to_negative_zero() {
        // digit 0 is trit -1, times d = +0.0: ggml writes -0.0 everywhere
        assert!(decode(&BlockTQ1_0::zeroed()).iter().all(|v| v.to_bits() == 0x8000_0000));
        assert!(decode(&BlockTQ2_0::zeroed()).iter().all(|v| v.to_bits() == 0x8000_0000));
    }
}
