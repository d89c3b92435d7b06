//! ggml's original 32-weight block types: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0.
//!
//! Each block holds 32 consecutive weights of a row and one f16 scale `d` (plus an f16 offset
//! `m` in the `_1` types). The 4- and 5-bit types split the block in halves: byte `j` of `qs`
//! carries weight `j` in its low nibble and weight `j + 16` in its high nibble. Arithmetic
//! follows `dequantize_row_q4_0` ... `dequantize_row_q8_0` in ggml-quants.c: the integer code
//! is converted to f32, multiplied by `d`, then `m` is added (no fused multiply-add).

use bytemuck::{Pod, Zeroable};
use smelt_tensor::DType;

use super::float::f16_le_to_f32;
use super::Block;

/// ggml `block_q4_0` (18 bytes): weight = `(q - 8) * d`, `q` a 4-bit code.
///
/// Weight `j` (0..16) is the low nibble of `qs[j]`, weight `j + 16` its high nibble.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct BlockQ4_0 {
    /// Scale, f16 little-endian.
    pub d: [u8; 2],
    /// Codes, two per byte (see the type's doc for the order).
    pub qs: [u8; 16],
}
const _: () = assert!(std::mem::size_of::<BlockQ4_0>() == 18);

impl Block for BlockQ4_0 {
    const DTYPE: DType = DType::Q4_0;
    type Values = [f32; 32];

    #[inline(always)]
    fn dequantize(&self, out: &mut [f32; 32]) {
        let d = f16_le_to_f32(self.d);
        for j in 0..16 {
            let x0 = (self.qs[j] & 0x0F) as i32 - 8;
            let x1 = (self.qs[j] >> 4) as i32 - 8;
            out[j] = x0 as f32 * d;
            out[j + 16] = x1 as f32 * d;
        }
    }
}

/// ggml `block_q4_1` (20 bytes): weight = `q * d + m`, `q` a 4-bit code.
///
/// Weight `j` (0..16) is the low nibble of `qs[j]`, weight `j + 16` its high nibble.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct BlockQ4_1 {
    /// Scale, f16 little-endian.
    pub d: [u8; 2],
    /// Offset (the block minimum), f16 little-endian.
    pub m: [u8; 2],
    /// Codes, two per byte.
    pub qs: [u8; 16],
}
const _: () = assert!(std::mem::size_of::<BlockQ4_1>() == 20);

impl Block for BlockQ4_1 {
    const DTYPE: DType = DType::Q4_1;
    type Values = [f32; 32];

    #[inline(always)]
    fn dequantize(&self, out: &mut [f32; 32]) {
        let d = f16_le_to_f32(self.d);
        let m = f16_le_to_f32(self.m);
        for j in 0..16 {
            let x0 = (self.qs[j] & 0x0F) as i32;
            let x1 = (self.qs[j] >> 4) as i32;
            out[j] = x0 as f32 * d + m;
            out[j + 16] = x1 as f32 * d + m;
        }
    }
}

/// ggml `block_q5_0` (22 bytes): weight = `(q - 16) * d`, `q` a 5-bit code.
///
/// The low 4 bits of weight `j` (0..16) are the low nibble of `qs[j]`, of weight `j + 16` the
/// high nibble. The fifth bit of weight `i` (0..32) is bit `i` of `qh` read as a
/// little-endian u32.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct BlockQ5_0 {
    /// Scale, f16 little-endian.
    pub d: [u8; 2],
    /// Fifth bits, a little-endian u32 with bit `i` for weight `i`.
    pub qh: [u8; 4],
    /// Low 4 bits of the codes, two per byte.
    pub qs: [u8; 16],
}
const _: () = assert!(std::mem::size_of::<BlockQ5_0>() == 22);

impl Block for BlockQ5_0 {
    const DTYPE: DType = DType::Q5_0;
    type Values = [f32; 32];

    #[inline(always)]
    fn dequantize(&self, out: &mut [f32; 32]) {
        let d = f16_le_to_f32(self.d);
        let qh = u32::from_le_bytes(self.qh);
        for j in 0..16 {
            let (lo, hi) = five_bit_pair(self.qs[j], qh, j);
            out[j] = (lo - 16) as f32 * d;
            out[j + 16] = (hi - 16) as f32 * d;
        }
    }
}

/// ggml `block_q5_1` (24 bytes): weight = `q * d + m`, `q` a 5-bit code.
///
/// Same code layout as [`BlockQ5_0`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct BlockQ5_1 {
    /// Scale, f16 little-endian.
    pub d: [u8; 2],
    /// Offset (the block minimum), f16 little-endian.
    pub m: [u8; 2],
    /// Fifth bits, a little-endian u32 with bit `i` for weight `i`.
    pub qh: [u8; 4],
    /// Low 4 bits of the codes, two per byte.
    pub qs: [u8; 16],
}
const _: () = assert!(std::mem::size_of::<BlockQ5_1>() == 24);

impl Block for BlockQ5_1 {
    const DTYPE: DType = DType::Q5_1;
    type Values = [f32; 32];

    #[inline(always)]
    fn dequantize(&self, out: &mut [f32; 32]) {
        let d = f16_le_to_f32(self.d);
        let m = f16_le_to_f32(self.m);
        let qh = u32::from_le_bytes(self.qh);
        for j in 0..16 {
            let (lo, hi) = five_bit_pair(self.qs[j], qh, j);
            out[j] = lo as f32 * d + m;
            out[j + 16] = hi as f32 * d + m;
        }
    }
}

/// The 5-bit codes of weights `j` and `j + 16` (`j` < 16): nibbles of `qs_j` plus bits `j`
/// and `j + 16` of `qh`, as ggml's `xh_0` / `xh_1`.
#[inline]
fn five_bit_pair(qs_j: u8, qh: u32, j: usize) -> (i32, i32) {
    let xh_0 = ((qh >> j) << 4) & 0x10;
    let xh_1 = (qh >> (j + 12)) & 0x10;
    ((qs_j & 0x0F) as i32 | xh_0 as i32, (qs_j >> 4) as i32 | xh_1 as i32)
}

/// ggml `block_q8_0` (34 bytes): weight `j` = `qs[j] * d`, `qs` signed bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct BlockQ8_0 {
    /// Scale, f16 little-endian.
    pub d: [u8; 2],
    /// Codes, one signed byte per weight, in order.
    pub qs: [i8; 32],
}
const _: () = assert!(std::mem::size_of::<BlockQ8_0>() == 34);

impl Block for BlockQ8_0 {
    const DTYPE: DType = DType::Q8_0;
    type Values = [f32; 32];

    #[inline(always)]
    fn dequantize(&self, out: &mut [f32; 32]) {
        let d = f16_le_to_f32(self.d);
        for (o, &q) in out.iter_mut().zip(self.qs.iter()) {
            *o = q as f32 * d;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: [u8; 2] = [0x00, 0x3c]; // f16 1.0
    const HALF: [u8; 2] = [0x00, 0x38]; // f16 0.5
    const MINUS_TWO: [u8; 2] = [0x00, 0xc0]; // f16 -2.0

    fn decode<B: Block<Values = [f32; 32]>>(b: &B) -> [f32; 32] {
        let mut out = [f32::NAN; 32];
        b.dequantize(&mut out);
        out
    }

    #[test]
    fn q4_0_low_nibble_is_first_half_high_nibble_second_half() {
        let mut qs = [0x88u8; 16]; // code 8 everywhere: weight 0
        qs[0] = 0xF1; // weight 0 <- 1, weight 16 <- 15
        qs[15] = 0x0A; // weight 15 <- 10, weight 31 <- 0
        let out = decode(&BlockQ4_0 { d: MINUS_TWO, qs });
        assert_eq!(out[0], 14.0); // (1 - 8) * -2
        assert_eq!(out[16], -14.0); // (15 - 8) * -2
        assert_eq!(out[15], -4.0); // (10 - 8) * -2
        assert_eq!(out[31], 16.0); // (0 - 8) * -2
        assert_eq!(out[1].to_bits(), (-0.0f32).to_bits(), "0 * -2 is -0.0 in ggml too");
    }

    #[test]
    fn q4_1_adds_the_offset_after_scaling() {
        let mut qs = [0u8; 16];
        qs[3] = 0x5F; // weight 3 <- 15, weight 19 <- 5
        let out = decode(&BlockQ4_1 { d: HALF, m: MINUS_TWO, qs });
        assert_eq!(out[3], 5.5);
        assert_eq!(out[19], 0.5);
        assert_eq!(out[0], -2.0);
    }

    #[test]
    fn q5_fifth_bit_of_weight_i_is_bit_i_of_qh() {
        // qh bit 0 (weight 0), bit 16 (weight 16) and bit 31 (weight 31) set.
        let qh = (1u32 | 1 << 16 | 1 << 31).to_le_bytes();
        let mut qs = [0u8; 16];
        qs[0] = 0x21; // weight 0 low 4 bits 1, weight 16 low 4 bits 2
        qs[15] = 0x30; // weight 15 low 4 bits 0, weight 31 low 4 bits 3
        let out0 = decode(&BlockQ5_0 { d: ONE, qh, qs });
        assert_eq!(out0[0], (17 - 16) as f32);
        assert_eq!(out0[16], (18 - 16) as f32);
        assert_eq!(out0[15], (0 - 16) as f32);
        assert_eq!(out0[31], (19 - 16) as f32);
        assert_eq!(out0[1], -16.0);
        let out1 = decode(&BlockQ5_1 { d: ONE, m: HALF, qh, qs });
        assert_eq!(out1[0], 17.5);
        assert_eq!(out1[16], 18.5);
        assert_eq!(out1[15], 0.5);
        assert_eq!(out1[31], 19.5);
    }

    #[test]
    fn q8_0_codes_are_signed_bytes_in_order() {
        let mut qs = [0i8; 32];
        qs[0] = -128;
        qs[1] = 127;
        qs[31] = -1;
        let out = decode(&BlockQ8_0 { d: HALF, qs });
        assert_eq!((out[0], out[1], out[31], out[2]), (-64.0, 63.5, -0.5, 0.0));
    }

    #[test]
    fn all_zero_blocks_decode_to_zero() {
        assert!(decode(&BlockQ4_1::zeroed()).iter().all(|v| v.to_bits() == 0));
        assert!(decode(&BlockQ5_1::zeroed()).iter().all(|v| v.to_bits() == 0));
        assert!(decode(&BlockQ8_0::zeroed()).iter().all(|v| v.to_bits() == 0));
        // Offset codes times a +0.0 scale: (0 - 8) * +0.0 is -0.0, as in ggml.
        assert!(decode(&BlockQ4_0::zeroed()).iter().all(|v| v.to_bits() == 0x8000_0000));
        assert!(decode(&BlockQ5_0::zeroed()).iter().all(|v| v.to_bits() == 0x8000_0000));
    }
}
