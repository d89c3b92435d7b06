//! Element-wise conversion of plain stored types to f32, the common currency of comparison
//! and quantization. Block-quantized types are dequantized by `smelt-quant`, not here.

use half::f16;

use crate::DType;

/// Decodes an OCP FP8 E4M3 (FN) byte: bias 7, no infinities, S.1111.111 is NaN.
pub fn f8_e4m3_to_f32(b: u8) -> f32 {
    fp8_to_f32(b, 4, 3, 7, Fp8Flavor::FiniteOnly)
}

/// Decodes an OCP FP8 E5M2 byte: bias 15, IEEE-style infinities and NaNs.
pub fn f8_e5m2_to_f32(b: u8) -> f32 {
    fp8_to_f32(b, 5, 2, 15, Fp8Flavor::Ieee)
}

/// Decodes an FP8 E4M3FNUZ byte: bias 8, no negative zero, 0x80 is the only NaN.
pub fn f8_e4m3fnuz_to_f32(b: u8) -> f32 {
    fp8_to_f32(b, 4, 3, 8, Fp8Flavor::Fnuz)
}

/// Decodes an FP8 E5M2FNUZ byte: bias 16, no negative zero, 0x80 is the only NaN.
pub fn f8_e5m2fnuz_to_f32(b: u8) -> f32 {
    fp8_to_f32(b, 5, 2, 16, Fp8Flavor::Fnuz)
}

/// Decodes an FP4 E2M1 nibble (low 4 bits of `n`): bias 1, no infinities or NaNs.
pub fn f4_e2m1_to_f32(n: u8) -> f32 {
    const LUT: [f32; 8] = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0];
    let v = LUT[(n & 7) as usize];
    if n & 8 != 0 {
        -v
    } else {
        v
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Fp8Flavor {
    Ieee,
    FiniteOnly,
    Fnuz,
}

fn fp8_to_f32(b: u8, ebits: u32, mbits: u32, bias: i32, flavor: Fp8Flavor) -> f32 {
    let sign = if b & 0x80 != 0 { -1.0f32 } else { 1.0 };
    let e = ((b >> mbits) as u32) & ((1 << ebits) - 1);
    let m = (b as u32) & ((1 << mbits) - 1);
    let emax = (1u32 << ebits) - 1;
    match flavor {
        Fp8Flavor::Fnuz if b == 0x80 => return f32::NAN,
        Fp8Flavor::FiniteOnly if e == emax && m == (1 << mbits) - 1 => return f32::NAN,
        Fp8Flavor::Ieee if e == emax => {
            return if m == 0 { sign * f32::INFINITY } else { f32::NAN };
        }
        _ => {}
    }
    let mant = m as f32 / (1u32 << mbits) as f32;
    if e == 0 {
        sign * mant * 2f32.powi(1 - bias)
    } else {
        sign * (1.0 + mant) * 2f32.powi(e as i32 - bias)
    }
}

/// Converts `bytes` of a plain element type to f32, one value per element (`numel` of them,
/// needed for packed 4-bit types whose last byte may hold a padding nibble). Integers convert
/// by value, booleans to 0/1. Returns `None` for types without an f32 reading (complex,
/// strings, ggml blocks) or when `bytes` is too short.
pub fn to_f32_vec(dtype: DType, bytes: &[u8], numel: usize) -> Option<Vec<f32>> {
    use DType::*;
    let need = dtype.storage_bytes(&[numel as u64])? as usize;
    if bytes.len() < need {
        return None;
    }
    let b = &bytes[..need];
    let v: Vec<f32> = match dtype {
        F64 => b.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32).collect(),
        F32 | F16 | BF16 => {
            let mut v = vec![0f32; numel];
            float_to_f32_into(dtype, b, &mut v);
            v
        }
        F8_E4M3 => b.iter().map(|&x| f8_e4m3_to_f32(x)).collect(),
        F8_E5M2 => b.iter().map(|&x| f8_e5m2_to_f32(x)).collect(),
        F8_E4M3_FNUZ => b.iter().map(|&x| f8_e4m3fnuz_to_f32(x)).collect(),
        F8_E5M2_FNUZ => b.iter().map(|&x| f8_e5m2fnuz_to_f32(x)).collect(),
        I64 => b.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f32).collect(),
        I32 => b.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap()) as f32).collect(),
        I16 => b.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]]) as f32).collect(),
        I8 => b.iter().map(|&x| x as i8 as f32).collect(),
        U64 => b.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap()) as f32).collect(),
        U32 => b.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap()) as f32).collect(),
        U16 => b.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]) as f32).collect(),
        U8 | Bool => b.iter().map(|&x| x as f32).collect(),
        I4 | U4 | F4_E2M1 => (0..numel)
            .map(|i| {
                let byte = b[i / 2];
                let n = if i % 2 == 0 { byte & 0x0f } else { byte >> 4 };
                match dtype {
                    I4 => ((n << 4) as i8 >> 4) as f32,
                    U4 => n as f32,
                    _ => f4_e2m1_to_f32(n),
                }
            })
            .collect(),
        _ => return None,
    };
    Some(v)
}

/// Decodes F32, F16 or BF16 `bytes` into `out`, one value per element, bit for bit as
/// [`to_f32_vec`] does, with no allocation and in SIMD where the CPU has it (see
/// [`crate::simd`]). Returns false, writing nothing, for another dtype or when `bytes` does
/// not hold exactly `out.len()` elements.
pub fn float_to_f32_into(dtype: DType, bytes: &[u8], out: &mut [f32]) -> bool {
    float_to_f32_with(crate::simd::tier(), dtype, bytes, out)
}

/// [`float_to_f32_into`] at a given [`crate::simd::Tier`] (differential tests).
pub fn float_to_f32_with(tier: crate::simd::Tier, dtype: DType, bytes: &[u8], out: &mut [f32]) -> bool {
    let width = match dtype {
        DType::F32 => 4,
        DType::F16 | DType::BF16 => 2,
        _ => return false,
    };
    if out.len().checked_mul(width) != Some(bytes.len()) {
        return false;
    }
    match dtype {
        DType::F32 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        // half converts slices with F16C where the CPU has it (exact either way).
        DType::F16 => {
            use half::slice::HalfFloatSliceExt;
            match bytemuck::try_cast_slice::<u8, f16>(bytes) {
                Ok(h) => h.convert_to_f32_slice(out),
                Err(_) => {
                    for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                        *o = f16::from_le_bytes([c[0], c[1]]).to_f32();
                    }
                }
            }
        }
        _ => bf16_to_f32(tier, bytes, out),
    }
    true
}

/// bf16 is the top half of an f32: a shift, which vectorizes. A NaN gets its quiet bit set, as
/// `bf16::to_f32` does, so the bits are the same for every input.
#[inline(always)]
fn bf16_to_f32_body(bytes: &[u8], out: &mut [f32]) {
    for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let h = u16::from_le_bytes([c[0], c[1]]);
        let h = if h & 0x7fff > 0x7f80 { h | 0x0040 } else { h };
        *o = f32::from_bits((h as u32) << 16);
    }
}
crate::tiered!(fn bf16_to_f32(bytes: &[u8], out: &mut [f32]) = bf16_to_f32_body);

/// Encodes f32 `values` as F32, F16 or BF16 little-endian bytes into `out`, rounding to
/// nearest even, bit for bit as `half`'s scalar `from_f32` does (a NaN stays a NaN with its
/// sign and top payload bits, quiet), in SIMD where the CPU has it. Returns false, writing
/// nothing, for another dtype or when `out` does not hold exactly `values.len()` elements.
pub fn f32_to_float_into(dtype: DType, values: &[f32], out: &mut [u8]) -> bool {
    f32_to_float_with(crate::simd::tier(), dtype, values, out)
}

/// [`f32_to_float_into`] at a given [`crate::simd::Tier`] (differential tests).
pub fn f32_to_float_with(tier: crate::simd::Tier, dtype: DType, values: &[f32], out: &mut [u8]) -> bool {
    let width = match dtype {
        DType::F32 => 4,
        DType::F16 | DType::BF16 => 2,
        _ => return false,
    };
    if values.len().checked_mul(width) != Some(out.len()) {
        return false;
    }
    match dtype {
        DType::F32 => {
            for (o, v) in out.chunks_exact_mut(4).zip(values) {
                o.copy_from_slice(&v.to_le_bytes());
            }
        }
        // half converts slices with F16C where the CPU has it (the same rounding).
        DType::F16 => {
            use half::slice::HalfFloatSliceExt;
            match bytemuck::try_cast_slice_mut::<u8, f16>(out) {
                Ok(h) => h.convert_from_f32_slice(values),
                Err(_) => {
                    for (o, v) in out.chunks_exact_mut(2).zip(values) {
                        o.copy_from_slice(&f16::from_f32(*v).to_le_bytes());
                    }
                }
            }
        }
        _ => f32_to_bf16(tier, values, out),
    }
    true
}

/// `half::bf16::from_f32`, in a form that vectorizes: round to nearest even on the bits; a NaN
/// keeps its top bits with the quiet bit set.
#[inline(always)]
fn f32_to_bf16_body(values: &[f32], out: &mut [u8]) {
    for (o, v) in out.chunks_exact_mut(2).zip(values) {
        let x = v.to_bits();
        let rounded = (x >> 16) + u32::from(x & 0x8000 != 0 && x & 0x17fff != 0);
        let h = if x & 0x7fff_ffff > 0x7f80_0000 { (x >> 16) | 0x0040 } else { rounded };
        o.copy_from_slice(&(h as u16).to_le_bytes());
    }
}
crate::tiered!(fn f32_to_bf16(values: &[f32], out: &mut [u8]) = f32_to_bf16_body);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fp8_known_values() {
        // Values from the OCP 8-bit floating point specification, table of limits.
        assert_eq!(f8_e4m3_to_f32(0x7e), 448.0);
        assert!(f8_e4m3_to_f32(0x7f).is_nan());
        assert_eq!(f8_e4m3_to_f32(0x01), 2f32.powi(-9));
        assert_eq!(f8_e4m3_to_f32(0x38), 1.0);
        assert_eq!(f8_e5m2_to_f32(0x7b), 57344.0);
        assert_eq!(f8_e5m2_to_f32(0x7c), f32::INFINITY);
        assert_eq!(f8_e5m2_to_f32(0xfc), f32::NEG_INFINITY);
        assert!(f8_e5m2_to_f32(0x7d).is_nan());
        assert_eq!(f8_e5m2_to_f32(0x3c), 1.0);
        assert!(f8_e4m3fnuz_to_f32(0x80).is_nan());
        assert_eq!(f8_e4m3fnuz_to_f32(0x40), 1.0);
        assert_eq!(f8_e5m2fnuz_to_f32(0x40), 1.0);
    }

    #[test]
    fn bf16_is_the_top_half_of_f32() {
        let bytes: Vec<u8> = (0..=u16::MAX).flat_map(|h| h.to_le_bytes()).collect();
        let got = to_f32_vec(DType::BF16, &bytes, 65536).unwrap();
        for (h, v) in (0..=u16::MAX).zip(got) {
            assert_eq!(v.to_bits(), half::bf16::from_bits(h).to_f32().to_bits(), "{h:#06x}");
        }
    }

    #[test]
    fn float_into_matches_half_at_every_level() {
        let mut bytes: Vec<u8> = (0..=u16::MAX).flat_map(|h| h.to_le_bytes()).collect();
        bytes.extend((0..4099u32).flat_map(|i| (i.wrapping_mul(2_654_435_761) as u16).to_le_bytes()));
        for dtype in [DType::BF16, DType::F16, DType::F32] {
            let n = bytes.len() / dtype.block_bytes() as usize;
            let bytes = &bytes[..n * dtype.block_bytes() as usize];
            // Independent references: half's scalar conversions, and the bytes themselves.
            let want: Vec<f32> = match dtype {
                DType::BF16 => {
                    bytes.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect()
                }
                DType::F16 => {
                    bytes.chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32()).collect()
                }
                _ => bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            };
            for tier in crate::simd::Tier::ALL {
                let mut got = vec![0f32; n];
                assert!(float_to_f32_with(tier, dtype, bytes, &mut got));
                assert!(
                    got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{dtype} {}",
                    tier.name()
                );
            }
            let mut short = vec![0f32; n - 1];
            assert!(!float_to_f32_into(dtype, bytes, &mut short), "length mismatch is refused");
        }
        assert!(!float_to_f32_into(DType::I8, &[1], &mut [0.0]));
    }

    #[test]
    fn float_from_f32_matches_half_at_every_level() {
        let mut x = 0x9e37_79b9u32;
        let mut v: Vec<f32> = (0..70_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                f32::from_bits(x)
            })
            .collect();
        // Ties (odd and even), overflow to infinity, signed NaNs, subnormals, zeros.
        v.extend([1.0 + 2f32.powi(-8), 1.0 + 3.0 * 2f32.powi(-8), 65520.0, 3.4e38, -0.0, 0.0, 1e-40]);
        v.extend([f32::NAN, -f32::NAN, f32::from_bits(0x7f80_0001), f32::INFINITY, f32::NEG_INFINITY]);
        for dtype in [DType::BF16, DType::F16, DType::F32] {
            let w = dtype.block_bytes() as usize;
            let want: Vec<u8> = v
                .iter()
                .flat_map(|&f| match dtype {
                    DType::BF16 => half::bf16::from_f32(f).to_le_bytes().to_vec(),
                    DType::F16 => f16::from_f32(f).to_le_bytes().to_vec(),
                    _ => f.to_le_bytes().to_vec(),
                })
                .collect();
            for tier in crate::simd::Tier::ALL {
                let mut got = vec![0u8; v.len() * w];
                assert!(f32_to_float_with(tier, dtype, &v, &mut got));
                assert!(got == want, "{dtype} at {}", tier.name());
            }
            assert!(!f32_to_float_into(dtype, &v, &mut vec![0u8; v.len() * w - 1]));
        }
    }

    #[test]
    fn packed_nibbles_low_first() {
        // 0x9f: low nibble 0xf (-1 as int4, 15 as uint4), high nibble 0x9 (-7 / 9).
        assert_eq!(to_f32_vec(DType::I4, &[0x9f, 0x07], 3).unwrap(), vec![-1.0, -7.0, 7.0]);
        assert_eq!(to_f32_vec(DType::U4, &[0x9f], 2).unwrap(), vec![15.0, 9.0]);
        assert_eq!(to_f32_vec(DType::F4_E2M1, &[0xf7], 2).unwrap(), vec![6.0, -6.0]);
        assert!(to_f32_vec(DType::I4, &[0x9f], 3).is_none());
    }
}
