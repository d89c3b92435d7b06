//! ggml's k-quants: super-blocks of 256 weights with quantized sub-block scales (Q2_K, Q3_K,
//! Q4_K, Q5_K, Q6_K).
//!
//! A super-block has one or two f16 super-scales (`d`, and `dmin` for the types with
//! offsets) and 8 or 16 sub-blocks whose own scales are small integers multiplied by them.
//! Bit layouts follow `block_q*_K` in ggml-common.h and element order follows
//! `dequantize_row_q*_K` in ggml-quants.c; each type's doc spells both out. Arithmetic is
//! ggml's, in f32 and in its order: a sub-block scale is `d * sc` (rounded), the weight is
//! `dl * q - ml` or `dl * q` (product rounded before the subtraction), Q6_K's is `(d * sc) * q`.

use bytemuck::{Pod, Zeroable};
use smelt_tensor::DType;

use super::float::f16_le_to_f32;
use super::Block;

/// ggml `block_q2_K` (84 bytes): 16 sub-blocks of 16 weights, weight =
/// `(d * s) * q - (dmin * m)` with a 2-bit code `q` and 4-bit sub-block scale `s` and min `m`.
///
/// Weight `128 * h + 32 * j + l` (half `h` < 2, `j` < 4, `l` < 32) has code bits
/// `2j..2j+2` of `qs[32 * h + l]` and sub-block `8 * h + 2 * j + l / 16`; sub-block `i` has
/// `s` = low nibble and `m` = high nibble of `scales[i]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct BlockQ2K {
    /// Sub-block scales (low nibble) and mins (high nibble).
    pub scales: [u8; 16],
    /// 2-bit codes, four per byte.
    pub qs: [u8; 64],
    /// Super-block scale of the sub-block scales, f16 little-endian.
    pub d: [u8; 2],
    /// Super-block scale of the sub-block mins, f16 little-endian.
    pub dmin: [u8; 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ2K>() == 84);

impl Block for BlockQ2K {
    const DTYPE: DType = DType::Q2_K;
    type Values = [f32; 256];

    fn dequantize(&self, out: &mut [f32; 256]) {
        let d = f16_le_to_f32(self.d);
        let min = f16_le_to_f32(self.dmin);
        for h in 0..2 {
            for j in 0..4 {
                let shift = 2 * j;
                for half in 0..2 {
                    let sc = self.scales[8 * h + 2 * j + half];
                    let dl = d * (sc & 0xF) as f32;
                    let ml = min * (sc >> 4) as f32;
                    for l in 0..16 {
                        let q = (self.qs[32 * h + 16 * half + l] >> shift) & 3;
                        out[128 * h + 32 * j + 16 * half + l] = dl * q as f32 - ml;
                    }
                }
            }
        }
    }
}

/// ggml `block_q3_K` (110 bytes): 16 sub-blocks of 16 weights, weight =
/// `(d * (s - 32)) * q` with a signed 3-bit code `q` in -4..=3 and a 6-bit scale `s`.
///
/// Weight `128 * h + 32 * j + l` (`h` < 2, `j` < 4, `l` < 32) has its low two code bits at
/// bits `2j..2j+2` of `qs[32 * h + l]` and its high bit at bit `4 * h + j` of `hmask[l]`;
/// `q` = low bits minus 4 when the high bit is *clear*. It uses sub-block
/// `8 * h + 2 * j + l / 16`. Sub-block `i`'s scale has its low 4 bits in `scales[i]` low
/// nibble (`i` < 8) or `scales[i - 8]` high nibble (`i` >= 8), and its high 2 bits at bits
/// `2 * (i / 4)` of `scales[8 + i % 4]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct BlockQ3K {
    /// High code bits: bit `b` of byte `l` belongs to weight `32 * b + l`.
    pub hmask: [u8; 32],
    /// Low 2 code bits, four per byte.
    pub qs: [u8; 64],
    /// 16 packed 6-bit sub-block scales (see the type's doc).
    pub scales: [u8; 12],
    /// Super-block scale, f16 little-endian.
    pub d: [u8; 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ3K>() == 110);

impl BlockQ3K {
    /// The 16 six-bit sub-block scales (0..64, before ggml subtracts 32), unpacked as ggml's
    /// `dequantize_row_q3_K` does with `kmask1` / `kmask2` on four little-endian u32 words.
    pub fn unpacked_scales(&self) -> [u8; 16] {
        const KMASK1: u32 = 0x0303_0303;
        const KMASK2: u32 = 0x0f0f_0f0f;
        let s = &self.scales;
        let a0 = u32::from_le_bytes([s[0], s[1], s[2], s[3]]);
        let a1 = u32::from_le_bytes([s[4], s[5], s[6], s[7]]);
        let tmp = u32::from_le_bytes([s[8], s[9], s[10], s[11]]);
        let words = [
            (a0 & KMASK2) | ((tmp & KMASK1) << 4),
            (a1 & KMASK2) | (((tmp >> 2) & KMASK1) << 4),
            ((a0 >> 4) & KMASK2) | (((tmp >> 4) & KMASK1) << 4),
            ((a1 >> 4) & KMASK2) | (((tmp >> 6) & KMASK1) << 4),
        ];
        let mut out = [0u8; 16];
        for (chunk, word) in out.chunks_exact_mut(4).zip(words) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        out
    }
}

impl Block for BlockQ3K {
    const DTYPE: DType = DType::Q3_K;
    type Values = [f32; 256];

    fn dequantize(&self, out: &mut [f32; 256]) {
        let d_all = f16_le_to_f32(self.d);
        let scales = self.unpacked_scales();
        for h in 0..2 {
            for j in 0..4 {
                let shift = 2 * j;
                let m = 1u8 << (4 * h + j);
                for half in 0..2 {
                    let dl = d_all * (scales[8 * h + 2 * j + half] as i32 - 32) as f32;
                    for l in 0..16 {
                        let k = 16 * half + l;
                        let low = ((self.qs[32 * h + k] >> shift) & 3) as i32;
                        let offset = if self.hmask[k] & m != 0 { 0 } else { 4 };
                        out[128 * h + 32 * j + k] = dl * (low - offset) as f32;
                    }
                }
            }
        }
    }
}

/// ggml `get_scale_min_k4`: the 6-bit scale and min of sub-block `j` (< 8) of a Q4_K or Q5_K
/// super-block.
///
/// Sub-blocks 0..4 keep scale and min in the low 6 bits of `q[j]` and `q[j + 4]`; sub-blocks
/// 4..8 keep their low 4 bits in the nibbles of `q[j + 4]` (scale low, min high) and their
/// high 2 bits in the top bits of `q[j - 4]` (scale) and `q[j]` (min).
pub fn scale_min_k4(j: usize, q: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        ((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    }
}

/// ggml `block_q4_K` (144 bytes): 8 sub-blocks of 32 weights, weight =
/// `(d * s) * q - (dmin * m)` with a 4-bit code `q` and 6-bit scale `s` and min `m`
/// ([`scale_min_k4`]).
///
/// Weight `64 * c + l` (`c` < 4, `l` < 32) is the low nibble of `qs[32 * c + l]` in sub-block
/// `2 * c`; weight `64 * c + 32 + l` is its high nibble, in sub-block `2 * c + 1`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct BlockQ4K {
    /// Super-block scale of the sub-block scales, f16 little-endian.
    pub d: [u8; 2],
    /// Super-block scale of the sub-block mins, f16 little-endian.
    pub dmin: [u8; 2],
    /// 8 packed 6-bit scales and 8 mins ([`scale_min_k4`]).
    pub scales: [u8; 12],
    /// 4-bit codes, two per byte.
    pub qs: [u8; 128],
}
const _: () = assert!(std::mem::size_of::<BlockQ4K>() == 144);

impl Block for BlockQ4K {
    const DTYPE: DType = DType::Q4_K;
    type Values = [f32; 256];

    fn dequantize(&self, out: &mut [f32; 256]) {
        let d = f16_le_to_f32(self.d);
        let min = f16_le_to_f32(self.dmin);
        for c in 0..4 {
            let (sc, m) = scale_min_k4(2 * c, &self.scales);
            let d1 = d * sc as f32;
            let m1 = min * m as f32;
            let (sc, m) = scale_min_k4(2 * c + 1, &self.scales);
            let d2 = d * sc as f32;
            let m2 = min * m as f32;
            for l in 0..32 {
                let q = self.qs[32 * c + l];
                out[64 * c + l] = d1 * (q & 0xF) as f32 - m1;
                out[64 * c + 32 + l] = d2 * (q >> 4) as f32 - m2;
            }
        }
    }
}

/// ggml `block_q5_K` (176 bytes): as [`BlockQ4K`] with a fifth code bit, `q` in 0..32.
///
/// Weight `64 * c + l` (`c` < 4, `l` < 32) has low 4 bits in the low nibble of
/// `qs[32 * c + l]` and its fifth bit at bit `2 * c` of `qh[l]`; weight `64 * c + 32 + l` has
/// the high nibble and bit `2 * c + 1`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct BlockQ5K {
    /// Super-block scale of the sub-block scales, f16 little-endian.
    pub d: [u8; 2],
    /// Super-block scale of the sub-block mins, f16 little-endian.
    pub dmin: [u8; 2],
    /// 8 packed 6-bit scales and 8 mins ([`scale_min_k4`]).
    pub scales: [u8; 12],
    /// Fifth code bits: bit `b` of byte `l` belongs to weight `32 * b + l`.
    pub qh: [u8; 32],
    /// Low 4 code bits, two per byte.
    pub qs: [u8; 128],
}
const _: () = assert!(std::mem::size_of::<BlockQ5K>() == 176);

impl Block for BlockQ5K {
    const DTYPE: DType = DType::Q5_K;
    type Values = [f32; 256];

    fn dequantize(&self, out: &mut [f32; 256]) {
        let d = f16_le_to_f32(self.d);
        let min = f16_le_to_f32(self.dmin);
        for c in 0..4 {
            let (sc, m) = scale_min_k4(2 * c, &self.scales);
            let d1 = d * sc as f32;
            let m1 = min * m as f32;
            let (sc, m) = scale_min_k4(2 * c + 1, &self.scales);
            let d2 = d * sc as f32;
            let m2 = min * m as f32;
            let u1 = 1u8 << (2 * c);
            let u2 = 2u8 << (2 * c);
            for l in 0..32 {
                let q = self.qs[32 * c + l];
                let h1 = if self.qh[l] & u1 != 0 { 16 } else { 0 };
                let h2 = if self.qh[l] & u2 != 0 { 16 } else { 0 };
                out[64 * c + l] = d1 * ((q & 0xF) as i32 + h1) as f32 - m1;
                out[64 * c + 32 + l] = d2 * ((q >> 4) as i32 + h2) as f32 - m2;
            }
        }
    }
}

/// ggml `block_q6_K` (210 bytes): 16 sub-blocks of 16 weights, weight =
/// `(d * s) * (q - 32)` with a 6-bit code `q` and a signed 8-bit sub-block scale `s`.
///
/// In half `h` (< 2; bytes `ql[64h..]`, `qh[32h..]`, `scales[8h..]`), for `l` < 32:
/// weight `128h + l` is the low nibble of `ql[64h + l]`, weight `128h + 32 + l` the low nibble
/// of `ql[64h + 32 + l]`, weight `128h + 64 + l` the high nibble of `ql[64h + l]`, weight
/// `128h + 96 + l` the high nibble of `ql[64h + 32 + l]`; their top two bits are bits 0-1,
/// 2-3, 4-5 and 6-7 of `qh[32h + l]`. Each run of 16 weights uses the next scale: weight
/// `128h + 32r + l` uses `scales[8h + 2r + l / 16]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct BlockQ6K {
    /// Low 4 code bits, two per byte.
    pub ql: [u8; 128],
    /// High 2 code bits, four per byte.
    pub qh: [u8; 64],
    /// Signed sub-block scales.
    pub scales: [i8; 16],
    /// Super-block scale, f16 little-endian.
    pub d: [u8; 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ6K>() == 210);

impl Block for BlockQ6K {
    const DTYPE: DType = DType::Q6_K;
    type Values = [f32; 256];

    fn dequantize(&self, out: &mut [f32; 256]) {
        let d = f16_le_to_f32(self.d);
        for h in 0..2 {
            let ql = &self.ql[64 * h..64 * h + 64];
            let qh = &self.qh[32 * h..32 * h + 32];
            let sc = &self.scales[8 * h..8 * h + 8];
            for l in 0..32 {
                let is = l / 16;
                let q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i32 - 32;
                let q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
                let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
                let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
                let y = &mut out[128 * h..128 * h + 128];
                y[l] = d * sc[is] as f32 * q1 as f32;
                y[l + 32] = d * sc[is + 2] as f32 * q2 as f32;
                y[l + 64] = d * sc[is + 4] as f32 * q3 as f32;
                y[l + 96] = d * sc[is + 6] as f32 * q4 as f32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: [u8; 2] = [0x00, 0x3c]; // f16 1.0
    const TWO: [u8; 2] = [0x00, 0x40]; // f16 2.0
    const HALF: [u8; 2] = [0x00, 0x38]; // f16 0.5

    fn decode<B: Block<Values = [f32; 256]>>(b: &B) -> [f32; 256] {
        let mut out = [f32::NAN; 256];
        b.dequantize(&mut out);
        out
    }

    #[test]
    fn q2_k_code_order_and_scale_min_nibbles() {
        let mut b = BlockQ2K::zeroed();
        b.d = ONE;
        b.dmin = HALF;
        b.scales[0] = 0x23; // sub-block 0: scale 3, min 2
        b.scales[3] = 0x01; // sub-block 3 (weights 48..64): scale 1, min 0
        b.scales[15] = 0xF2; // sub-block 15 (weights 240..256): scale 2, min 15
        b.qs[0] = 0b11_10_01_11; // weights 0, 32, 64, 96 <- codes 3, 1, 2, 3
        b.qs[17] = 0b10_00_00_00; // weight 96 + 17 = 113 <- code 2 (bits 6-7)
        b.qs[63] = 0b11_00_00_00; // weight 128 + 96 + 31 = 255 <- code 3
        b.qs[48] = 0b00_00_01_00; // weight 128 + 32 + 16 = 176 <- code 1 (bits 2-3)
        let out = decode(&b);
        assert_eq!(out[0], 3.0 * 3.0 - 1.0);
        assert_eq!(out[32], 0.0, "sub-block 2 has scale 0 and min 0");
        assert_eq!(out[1], -1.0, "code 0 leaves -dmin * m");
        assert_eq!(out[113], 0.0, "sub-block 7 is zero");
        assert_eq!(out[255], 2.0 * 3.0 - 7.5);
        assert_eq!(out[240], -7.5);
        assert_eq!(out[176], 0.0, "sub-block 11 is zero");
        b.scales[7] = 0x01;
        b.scales[11] = 0x01;
        let out = decode(&b);
        assert_eq!(out[113], 2.0);
        assert_eq!(out[176], 1.0);
        // weights 48..64 read bits 2-3 of qs[16..32] with sub-block 3's scale
        b.qs[16] = 0b0000_1100;
        assert_eq!(decode(&b)[48], 3.0);
    }

    #[test]
    fn q3_k_scale_unpacking_matches_the_documented_bit_positions() {
        let mut b = BlockQ3K::zeroed();
        for (i, s) in b.scales.iter_mut().enumerate() {
            *s = (i as u8).wrapping_mul(37).wrapping_add(11);
        }
        let got = b.unpacked_scales();
        for (i, &g) in got.iter().enumerate() {
            let low = if i < 8 { b.scales[i] & 0xF } else { b.scales[i - 8] >> 4 };
            let high = (b.scales[8 + i % 4] >> (2 * (i / 4))) & 3;
            assert_eq!(g, low | (high << 4), "scale {i}");
        }
    }

    #[test]
    fn q3_k_high_bit_clear_subtracts_four() {
        let mut b = BlockQ3K::zeroed();
        b.d = ONE;
        // every 6-bit scale 33 (so s - 32 = 1): low nibbles 1, high bits 0b10
        b.scales = [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0xAA, 0xAA, 0xAA, 0xAA];
        assert_eq!(b.unpacked_scales(), [33; 16]);
        b.hmask = [0xFF; 32];
        b.hmask[5] = !(1 << 6); // weight 128 + 64 + 5 = 197 has its high bit clear
        b.qs[32 + 5] = 0b00_11_00_00; // weight 197 <- low bits 3 (bits 4-5 of qs[37])
        b.qs[0] = 0b00_00_00_10; // weight 0 <- low bits 2
        let out = decode(&b);
        assert_eq!(out[0], 2.0);
        assert_eq!(out[197], -1.0, "3 - 4");
        assert_eq!(out[196], 0.0);
        b.scales[0] = 0x10; // scale 0 low nibble 0 -> 6-bit scale 32: weights 0..16 zero
        assert_eq!(decode(&b)[0], 0.0);
        b.scales[8] = 0xA8; // scale 0 high bits 0 -> 6-bit 0 -> s - 32 = -32
        assert_eq!(decode(&b)[0], -64.0);
    }

    #[test]
    fn q4_k_scale_min_packing_and_nibble_halves() {
        let mut b = BlockQ4K::zeroed();
        b.d = ONE;
        b.dmin = ONE;
        // sub-block 1: scale 5, min 2; sub-block 6: scale 0b11_0001 = 49, min 0b10_0011 = 35
        b.scales[1] = 5;
        b.scales[5] = 2;
        b.scales[10] = 0x31; // low nibble: scale 6 low bits 1; high nibble: min 6 low bits 3
        b.scales[2] = 0b11 << 6; // scale 6 high bits
        b.scales[6] = 0b10 << 6; // min 6 high bits
        assert_eq!(scale_min_k4(1, &b.scales), (5, 2));
        assert_eq!(scale_min_k4(6, &b.scales), (49, 35));
        assert_eq!(scale_min_k4(2, &b.scales), (0, 0), "top bits are not part of scale 2");
        b.qs[3] = 0xA0; // weight 3 <- 0 (sub-block 0), weight 35 <- 10 (sub-block 1)
        b.qs[96 + 7] = 0x0F; // weight 192 + 7 = 199 <- 15 (sub-block 6)
        let out = decode(&b);
        assert_eq!(out[35], 5.0 * 10.0 - 2.0);
        assert_eq!(out[3], 0.0);
        assert_eq!(out[199], 49.0 * 15.0 - 35.0);
        assert_eq!(out[231], 0.0, "high nibble of qs[103], sub-block 7 (scale 0, min 0)");
    }

    #[test]
    fn q5_k_fifth_bit_comes_from_qh_bit_pairs() {
        let mut b = BlockQ5K::zeroed();
        b.d = TWO;
        b.dmin = ONE;
        for s in &mut b.scales[0..4] {
            *s = 1; // sub-blocks 0..4: scale 1, min 0
        }
        b.scales[8..12].copy_from_slice(&[0x01; 4]); // sub-blocks 4..8: scale 1, min 0
        b.qh[9] = 0b0100_0001; // weight 9 (bit 0) and weight 192 + 9 = 201 (bit 6)
        b.qs[9] = 0x03;
        b.qs[96 + 9] = 0x02;
        let out = decode(&b);
        assert_eq!(out[9], 2.0 * 19.0);
        assert_eq!(out[41], 0.0, "high nibble, bit 1 clear");
        assert_eq!(out[201], 2.0 * 18.0);
        assert_eq!(out[233], 0.0);
    }

    #[test]
    fn q6_k_signed_offsets_and_quarter_order() {
        let mut b = BlockQ6K::zeroed();
        b.d = HALF;
        b.scales = [2; 16];
        b.scales[8 + 6 + 1] = -3; // half 1, weights 128 + 96 + 16..32
                                  // weight 128 + 96 + 17 = 241: high nibble of ql[64 + 32 + 17], bits 6-7 of qh[32 + 17]
        b.ql[64 + 32 + 17] = 0xF0;
        b.qh[32 + 17] = 0b11 << 6;
        // weight 0: low nibble of ql[0] and bits 0-1 of qh[0]; code 0 -> -32
        let out = decode(&b);
        assert_eq!(out[241], 0.5 * -3.0 * 31.0);
        assert_eq!(out[0], 0.5 * 2.0 * -32.0);
        b.ql[0] = 0x0F;
        b.qh[0] = 0b10;
        assert_eq!(decode(&b)[0], 0.5 * 2.0 * (0b10_1111 - 32) as f32);
    }

    #[test]
    fn zero_blocks_decode_to_signed_zeros_like_ggml() {
        assert!(decode(&BlockQ2K::zeroed()).iter().all(|v| *v == 0.0));
        assert!(decode(&BlockQ4K::zeroed()).iter().all(|v| *v == 0.0));
        assert!(decode(&BlockQ5K::zeroed()).iter().all(|v| *v == 0.0));
        // Signed codes times a zero scale give signed zeros; ggml computes the same products.
        let q3 = decode(&BlockQ3K::zeroed());
        assert!(q3.iter().all(|v| v.to_bits() == 0), "(+0 * -32) * -4 = +0");
        let q6 = decode(&BlockQ6K::zeroed());
        assert!(q6.iter().all(|v| v.to_bits() == 0x8000_0000), "(+0 * 0) * -32 = -0");
    }
}
