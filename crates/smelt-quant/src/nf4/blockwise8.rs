//! bitsandbytes' 8-bit blockwise quantization with its signed dynamic map, the second stage of
//! NF4 double quantization (`quantize_blockwise`, used by `quantize_4bit(...,
//! compress_statistics=True)` on the per-block absmax values).
//!
//! What is reproduced is the CPU kernel of the x86-64 bitsandbytes 0.50.2 wheel
//! (`quantize_cpu_impl` in csrc/cpu_ops.cpp, read from its disassembly, which the fixtures
//! confirm), which is *not* an exact nearest-code search but a lookup table:
//! - per block, `absmax = max(0, max |x|)` over the non-NaN values (C `std::max`, which skips
//!   NaN); a block whose absmax is 0 gets all codes 0;
//! - otherwise `t = clamp(x · (1 / absmax), -1, 1)` (a multiplication by the f32 reciprocal),
//!   then `index = (u16) trunc(fma((t + 1) · 0.5, 65535, 0.5))` (GCC contracts the last
//!   multiply-add into one FMA) and the code is `lut[index]`;
//! - the 65536-entry table maps `v_i = (2i) / 65535 - 1` to the first code whose upper
//!   midpoint `0.5 · (code[k] + code[k+1])` is not below `v_i`.
//!
//! A NaN input gets code 0 (the C cast of NaN gives index 0). Other builds of bitsandbytes
//! (aarch64 NEON path, older binary-search kernels, CUDA) may pick neighbouring codes for
//! values near a midpoint; the fixtures pin this one.

use std::sync::OnceLock;

/// bitsandbytes `create_dynamic_map(signed=True)` (the default `code` of `quantize_blockwise`),
/// 256 sorted f32 values as bit patterns, from bitsandbytes 0.50.2.
pub const DYNAMIC_MAP_SIGNED_BITS: [u32; 256] = [
    0xBF7E3333, 0xBF7A999A, 0xBF770000, 0xBF736666, 0xBF6FCCCD, 0xBF6C3333, 0xBF68999A, 0xBF650000,
    0xBF616666, 0xBF5DCCCD, 0xBF5A3333, 0xBF56999A, 0xBF530000, 0xBF4F6666, 0xBF4BCCCD, 0xBF483333,
    0xBF44999A, 0xBF410000, 0xBF3D6666, 0xBF39CCCD, 0xBF363334, 0xBF32999A, 0xBF2F0000, 0xBF2B6666,
    0xBF27CCCD, 0xBF243334, 0xBF20999A, 0xBF1D0000, 0xBF196666, 0xBF15CCCD, 0xBF123334, 0xBF0E999A,
    0xBF0B0000, 0xBF076666, 0xBF03CCCC, 0xBF003333, 0xBEF93332, 0xBEF20000, 0xBEEACCCC, 0xBEE3999A,
    0xBEDC6666, 0xBED53333, 0xBECE0000, 0xBEC6CCCC, 0xBEBF999A, 0xBEB86666, 0xBEB13333, 0xBEAA0000,
    0xBEA2CCCC, 0xBE9B999A, 0xBE946666, 0xBE8D3334, 0xBE860000, 0xBE7D9999, 0xBE6F3333, 0xBE60CCCD,
    0xBE526666, 0xBE440000, 0xBE35999A, 0xBE273333, 0xBE18CCCD, 0xBE0A6666, 0xBDF80000, 0xBDDB3334,
    0xBDC9EB85, 0xBDC428F7, 0xBDBE6667, 0xBDB8A3D7, 0xBDB2E148, 0xBDAD1EB8, 0xBDA75C2A, 0xBDA1999A,
    0xBD9BD70A, 0xBD96147B, 0xBD9051EB, 0xBD8A8F5D, 0xBD84CCCD, 0xBD7E147B, 0xBD728F5D, 0xBD670A3D,
    0xBD5B851F, 0xBD500000, 0xBD447AE1, 0xBD38F5C3, 0xBD2D70A3, 0xBD21EB85, 0xBD166667, 0xBD0AE148,
    0xBCFEB852, 0xBCE7AE15, 0xBCD0A3D7, 0xBCB9999A, 0xBCA28F5D, 0xBC8B851F, 0xBC68F5C3, 0xBC3AE148,
    0xBC1F3B64, 0xBC160418, 0xBC0CCCCD, 0xBC039581, 0xBBF4BC6A, 0xBBE24DD3, 0xBBCFDF3B, 0xBBBD70A4,
    0xBBAB020D, 0xBB989374, 0xBB8624DD, 0xBB676C8A, 0xBB428F5C, 0xBB1DB22D, 0xBAF1A9FC, 0xBAA7EF9D,
    0xBA7765FF, 0xBA59E83E, 0xBA3C6A80, 0xBA1EECC1, 0xBA016F01, 0xB9C7E283, 0xB98CE705, 0xB923D70B,
    0xB8BA1F4B, 0xB88AEFB3, 0xB8378034, 0xB7B24206, 0xB70205FF, 0xB65A1A94, 0xB513A3B7, 0x00000000,
    0x3513A3B7, 0x365A1A94, 0x370205FF, 0x37B24206, 0x38378034, 0x388AEFB3, 0x38BA1F4B, 0x3923D70B,
    0x398CE705, 0x39C7E283, 0x3A016F01, 0x3A1EECC1, 0x3A3C6A80, 0x3A59E83E, 0x3A7765FF, 0x3AA7EF9D,
    0x3AF1A9FC, 0x3B1DB22D, 0x3B428F5C, 0x3B676C8A, 0x3B8624DD, 0x3B989374, 0x3BAB020D, 0x3BBD70A4,
    0x3BCFDF3B, 0x3BE24DD3, 0x3BF4BC6A, 0x3C039581, 0x3C0CCCCD, 0x3C160418, 0x3C1F3B64, 0x3C3AE148,
    0x3C68F5C3, 0x3C8B851F, 0x3CA28F5D, 0x3CB9999A, 0x3CD0A3D7, 0x3CE7AE15, 0x3CFEB852, 0x3D0AE148,
    0x3D166667, 0x3D21EB85, 0x3D2D70A3, 0x3D38F5C3, 0x3D447AE1, 0x3D500000, 0x3D5B851F, 0x3D670A3D,
    0x3D728F5D, 0x3D7E147B, 0x3D84CCCD, 0x3D8A8F5D, 0x3D9051EB, 0x3D96147B, 0x3D9BD70A, 0x3DA1999A,
    0x3DA75C2A, 0x3DAD1EB8, 0x3DB2E148, 0x3DB8A3D7, 0x3DBE6667, 0x3DC428F7, 0x3DC9EB85, 0x3DDB3334,
    0x3DF80000, 0x3E0A6666, 0x3E18CCCD, 0x3E273333, 0x3E35999A, 0x3E440000, 0x3E526666, 0x3E60CCCD,
    0x3E6F3333, 0x3E7D9999, 0x3E860000, 0x3E8D3334, 0x3E946666, 0x3E9B999A, 0x3EA2CCCC, 0x3EAA0000,
    0x3EB13333, 0x3EB86666, 0x3EBF999A, 0x3EC6CCCC, 0x3ECE0000, 0x3ED53333, 0x3EDC6666, 0x3EE3999A,
    0x3EEACCCC, 0x3EF20000, 0x3EF93332, 0x3F003333, 0x3F03CCCC, 0x3F076666, 0x3F0B0000, 0x3F0E999A,
    0x3F123334, 0x3F15CCCD, 0x3F196666, 0x3F1D0000, 0x3F20999A, 0x3F243334, 0x3F27CCCD, 0x3F2B6666,
    0x3F2F0000, 0x3F32999A, 0x3F363334, 0x3F39CCCD, 0x3F3D6666, 0x3F410000, 0x3F44999A, 0x3F483333,
    0x3F4BCCCD, 0x3F4F6666, 0x3F530000, 0x3F56999A, 0x3F5A3333, 0x3F5DCCCD, 0x3F616666, 0x3F650000,
    0x3F68999A, 0x3F6C3333, 0x3F6FCCCD, 0x3F736666, 0x3F770000, 0x3F7A999A, 0x3F7E3333, 0x3F800000,
];

/// The signed dynamic map as f32 values.
pub fn dynamic_map_signed() -> [f32; 256] {
    DYNAMIC_MAP_SIGNED_BITS.map(f32::from_bits)
}

/// The kernel's 65536-entry lookup table for the signed dynamic map (built once).
fn lookup_table() -> &'static [u8] {
    static LUT: OnceLock<Vec<u8>> = OnceLock::new();
    LUT.get_or_init(|| {
        let code = dynamic_map_signed();
        let mid: Vec<f32> = code.windows(2).map(|w| 0.5 * (w[0] + w[1])).collect();
        let mut lut = Vec::with_capacity(65536);
        let mut k = 0usize;
        for i in 0..65536u32 {
            let v = (2.0 * i as f32) / 65535.0 - 1.0;
            while k < 255 && mid[k] < v {
                k += 1;
            }
            lut.push(k as u8);
        }
        lut
    })
}

/// Quantizes `values` in blocks of `block_size` (the last one may be shorter) to 8-bit codes of
/// the signed dynamic map, returning `(codes, absmax per block)`. A zero `block_size` is
/// treated as one block.
pub fn quantize_blockwise_dynamic(values: &[f32], block_size: usize) -> (Vec<u8>, Vec<f32>) {
    let lut = lookup_table();
    let block_size = if block_size == 0 { values.len().max(1) } else { block_size };
    let mut codes = Vec::with_capacity(values.len());
    let mut absmax = Vec::with_capacity(values.len().div_ceil(block_size));
    for block in values.chunks(block_size) {
        let mut m = f32::NEG_INFINITY;
        for &x in block {
            if x.abs() > m {
                m = x.abs();
            }
        }
        let m = if 0.0 > m { 0.0 } else { m };
        absmax.push(m);
        if m == 0.0 {
            codes.extend(std::iter::repeat_n(0u8, block.len()));
            continue;
        }
        let inv = 1.0 / m;
        codes.extend(block.iter().map(|&x| {
            let t = (x * inv).clamp(-1.0, 1.0);
            let t = (t + 1.0) * 0.5;
            let index = t.mul_add(65535.0, 0.5) as i32 as u16;
            lut[index as usize]
        }));
    }
    (codes, absmax)
}

/// bitsandbytes' `dequantize_blockwise`: `code[q] · absmax[block]` in f32.
pub fn dequantize_blockwise_dynamic(codes: &[u8], absmax: &[f32], block_size: usize) -> Vec<f32> {
    let map = dynamic_map_signed();
    let block_size = block_size.max(1);
    codes
        .iter()
        .enumerate()
        .map(|(i, &q)| map[q as usize] * absmax.get(i / block_size).copied().unwrap_or(f32::NAN))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_is_sorted_and_spans_minus_one_to_one() {
        let m = dynamic_map_signed();
        assert!(m.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(m[255], 1.0);
        assert!(m[0] > -1.0 && m[0] < -0.99);
        assert!(m.contains(&0.0));
    }

    #[test]
    fn extremes_zero_blocks_and_nan() {
        let (q, a) = quantize_blockwise_dynamic(&[1.0, -1.0, 0.0, f32::NAN], 256);
        assert_eq!(a, vec![1.0]);
        assert_eq!((q[0], q[1], q[3]), (255, 0, 0));
        // 0.0 lands on table index 32768, v = 1.5e-5, whose nearest code is 2.125e-5 (131),
        // not the exact 0.0 of the map: bitsandbytes 0.50.2 gives 131 too.
        assert_eq!(q[2], 131);
        let (q, a) = quantize_blockwise_dynamic(&[0.0, f32::NAN, -0.0], 2);
        assert_eq!((q, a), (vec![0, 0, 0], vec![0.0, 0.0]));
        let (q, a) = quantize_blockwise_dynamic(&[], 256);
        assert!(q.is_empty() && a.is_empty());
    }

    #[test]
    fn round_trip_error_is_small() {
        let v: Vec<f32> = (0..1000).map(|i| ((i * 37) % 200) as f32 / 100.0 - 1.0).collect();
        let (q, a) = quantize_blockwise_dynamic(&v, 256);
        let back = dequantize_blockwise_dynamic(&q, &a, 256);
        for (x, y) in v.iter().zip(&back) {
            assert!((x - y).abs() <= 0.02, "{x} -> {y}");
        }
    }
}
