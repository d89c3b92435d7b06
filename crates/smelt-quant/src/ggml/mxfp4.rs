//! ggml's MXFP4: OCP microscaling FP4, 32 E2M1 weights sharing one E8M0 power-of-two scale.
//!
//! ggml decodes the 4-bit codes through a table of *doubled* E2M1 values (`kvalues_mxfp4`,
//! integers -12..=12) and halves the scale to match (`ggml_e8m0_to_fp32_half`, `2^(e - 128)`),
//! so a weight is `(k as f32) * 2^(e - 128)`. Exponent byte 255 is not NaN in ggml: it is
//! `2^127`, and codes ±12 then overflow to ±Inf, which is what this decoder returns too.

use bytemuck::{Pod, Zeroable};
use smelt_tensor::DType;

use super::Block;

/// ggml `kvalues_mxfp4`: E2M1 values times two, indexed by the 4-bit code (sign in bit 3).
pub const KVALUES_MXFP4: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

/// ggml `ggml_e8m0_to_fp32_half`: `2^(e - 128)` built from its bits (subnormal for `e` < 2).
pub fn e8m0_to_f32_half(e: u8) -> f32 {
    let bits = if e < 2 { 0x0020_0000u32 << e } else { (e as u32 - 1) << 23 };
    f32::from_bits(bits)
}

/// ggml `block_mxfp4` (17 bytes): weight = `KVALUES_MXFP4[code] * 2^(e - 128)`.
///
/// Weight `j` (0..16) is the low nibble of `qs[j]`, weight `j + 16` its high nibble.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct BlockMxfp4 {
    /// Shared E8M0 exponent.
    pub e: u8,
    /// E2M1 codes, two per byte.
    pub qs: [u8; 16],
}
const _: () = assert!(std::mem::size_of::<BlockMxfp4>() == 17);

impl Block for BlockMxfp4 {
    const DTYPE: DType = DType::MXFP4;
    type Values = [f32; 32];

    fn dequantize(&self, out: &mut [f32; 32]) {
        let d = e8m0_to_f32_half(self.e);
        for j in 0..16 {
            let x0 = KVALUES_MXFP4[(self.qs[j] & 0x0F) as usize];
            let x1 = KVALUES_MXFP4[(self.qs[j] >> 4) as usize];
            out[j] = x0 as f32 * d;
            out[j + 16] = x1 as f32 * d;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(b: &BlockMxfp4) -> [f32; 32] {
        let mut out = [f32::NAN; 32];
        b.dequantize(&mut out);
        out
    }

    #[test]
    fn e8m0_half_is_two_to_the_e_minus_128() {
        assert_eq!(e8m0_to_f32_half(128), 1.0);
        assert_eq!(e8m0_to_f32_half(127), 0.5);
        assert_eq!(e8m0_to_f32_half(2), 2f32.powi(-126));
        assert_eq!(e8m0_to_f32_half(1), f32::MIN_POSITIVE / 2.0, "2^-127, subnormal");
        assert_eq!(e8m0_to_f32_half(0), f32::MIN_POSITIVE / 4.0, "2^-128, subnormal");
        assert_eq!(e8m0_to_f32_half(255), 2f32.powi(127));
    }

    #[test]
    fn low_nibble_first_half_high_nibble_second_half() {
        let mut b = BlockMxfp4 { e: 128, qs: [0; 16] };
        b.qs[0] = 0xF7; // weight 0 <- code 7 (+6.0 doubled = 12), weight 16 <- code 15 (-12)
        b.qs[15] = 0x19; // weight 15 <- code 9 (-1), weight 31 <- code 1 (+1)
        let out = decode(&b);
        assert_eq!((out[0], out[16], out[15], out[31]), (12.0, -12.0, -1.0, 1.0));
        assert_eq!(out[1], 0.0);
    }

    #[test]
    fn exponent_255_overflows_to_infinity_as_in_ggml() {
        let out = decode(&BlockMxfp4 { e: 255, qs: [0x87; 16] });
        assert_eq!(out[0], f32::INFINITY);
        assert_eq!(out[16].to_bits(), 0, "code 8 is -0 in E2M1 but +0 in ggml's table");
        let out = decode(&BlockMxfp4 { e: 255, qs: [0xF1; 16] });
        assert_eq!(out[0], 2f32.powi(127));
        assert_eq!(out[16], f32::NEG_INFINITY);
    }
}
