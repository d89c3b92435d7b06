//! The integer codes of one ggml legacy block (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1) and the grid they
//! index, read out of the block's bytes, and a block rebuilt from its header (scale `d`, offset
//! `m`) and new codes. `smelt convert --like` uses them to keep an old block's scale while
//! changing the codes of the weights that moved.
//!
//! Code order and bit layout are those of [`super::legacy`]; [`LegacyGrid::value`] is the
//! dequantizer's arithmetic to the bit (`(q - offset) as f32 * d`, plus `m` for the `_1`
//! types).

use smelt_tensor::DType;

use super::float::f16_le_to_f32;

/// Weights per legacy block.
pub const LEGACY_BLOCK: usize = 32;

/// The values the codes of one legacy block decode to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LegacyGrid {
    /// Scale.
    pub d: f32,
    /// Offset added after scaling (`_1` types), else 0 and unused.
    pub m: f32,
    /// Whether `m` is added.
    pub has_min: bool,
    /// Code of zero before scaling (8 for Q4_0, 16 for Q5_0, 0 otherwise).
    pub offset: i32,
    /// Smallest code the layout holds.
    pub min_code: i32,
    /// Largest code the layout holds.
    pub max_code: i32,
}

impl LegacyGrid {
    /// The weight code `q` decodes to, as ggml's dequantizer computes it.
    #[inline]
    pub fn value(&self, q: i32) -> f32 {
        let x = (q - self.offset) as f32 * self.d;
        if self.has_min {
            x + self.m
        } else {
            x
        }
    }

    /// The code whose value is closest to `x` (the lower one on a tie); the zero code for NaN.
    pub fn nearest(&self, x: f32) -> i32 {
        let approx = if self.d == 0.0 || !self.d.is_finite() {
            self.offset as f32
        } else {
            (x - if self.has_min { self.m } else { 0.0 }) / self.d + self.offset as f32
        };
        if approx.is_nan() {
            return self.offset.clamp(self.min_code, self.max_code);
        }
        let centre = approx.round().clamp(self.min_code as f32, self.max_code as f32) as i32;
        let mut best = centre;
        let mut best_err = (x - self.value(centre)).abs();
        for q in [centre - 1, centre + 1] {
            if q < self.min_code || q > self.max_code {
                continue;
            }
            let e = (x - self.value(q)).abs();
            if e < best_err || (e == best_err && q < best) {
                best = q;
                best_err = e;
            }
        }
        best
    }
}

/// Byte offsets of a legacy type's fields: (header bytes holding d and m, qh offset, qs offset).
fn layout(dtype: DType) -> Option<(bool, Option<usize>, usize)> {
    Some(match dtype {
        DType::Q8_0 => (false, None, 2),
        DType::Q4_0 => (false, None, 2),
        DType::Q4_1 => (true, None, 4),
        DType::Q5_0 => (false, Some(2), 6),
        DType::Q5_1 => (true, Some(4), 8),
        _ => return None,
    })
}

/// The grid of a legacy block and its 32 codes; `None` when `dtype` is not a legacy type or
/// `block` is not one block of it.
pub fn legacy_codes(dtype: DType, block: &[u8], codes: &mut [i32; LEGACY_BLOCK]) -> Option<LegacyGrid> {
    let (has_min, qh_at, qs_at) = layout(dtype)?;
    if block.len() as u64 != dtype.block_bytes() {
        return None;
    }
    let d = f16_le_to_f32([block[0], block[1]]);
    let m = if has_min { f16_le_to_f32([block[2], block[3]]) } else { 0.0 };
    let grid = |offset, min_code, max_code| LegacyGrid { d, m, has_min, offset, min_code, max_code };
    if dtype == DType::Q8_0 {
        for (c, &b) in codes.iter_mut().zip(&block[qs_at..qs_at + 32]) {
            *c = b as i8 as i32;
        }
        return Some(grid(0, -128, 127));
    }
    let qh =
        qh_at.map_or(0, |at| u32::from_le_bytes([block[at], block[at + 1], block[at + 2], block[at + 3]]));
    for j in 0..16 {
        let byte = block[qs_at + j];
        codes[j] = (byte & 0x0f) as i32 | (((qh >> j) & 1) << 4) as i32;
        codes[j + 16] = (byte >> 4) as i32 | (((qh >> (j + 16)) & 1) << 4) as i32;
    }
    let max_code = if qh_at.is_some() { 31 } else { 15 };
    let offset = if has_min { 0 } else { (max_code + 1) / 2 };
    Some(grid(offset, 0, max_code))
}

/// Writes `codes` into a legacy block, keeping its header (d, m). Codes must be in the range of
/// the block's grid ([`legacy_codes`]); `false` when `dtype` is not a legacy type or `block`
/// not one block.
pub fn set_legacy_codes(dtype: DType, block: &mut [u8], codes: &[i32; LEGACY_BLOCK]) -> bool {
    let Some((_, qh_at, qs_at)) = layout(dtype) else { return false };
    if block.len() as u64 != dtype.block_bytes() {
        return false;
    }
    if dtype == DType::Q8_0 {
        for (b, &c) in block[qs_at..qs_at + 32].iter_mut().zip(codes) {
            *b = c as i8 as u8;
        }
        return true;
    }
    let mut qh = 0u32;
    for j in 0..16 {
        let (lo, hi) = (codes[j] as u32, codes[j + 16] as u32);
        block[qs_at + j] = ((lo & 0x0f) | ((hi & 0x0f) << 4)) as u8;
        qh |= ((lo >> 4) & 1) << j | ((hi >> 4) & 1) << (j + 16);
    }
    if let Some(at) = qh_at {
        block[at..at + 4].copy_from_slice(&qh.to_le_bytes());
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Codes read out of blocks ggml's quantizer wrote decode, through the grid, to exactly what
    /// the dequantizer gives; writing the same codes back gives the same bytes.
    #[test]
    fn codes_and_grid_agree_with_the_dequantizer_and_round_trip() {
        let values: Vec<f32> = (0..32 * 8).map(|i| ((i * 7919 % 257) as f32 - 128.0) * 0.013).collect();
        for dtype in [DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1] {
            let bytes = crate::ggml::quantize_to_vec(dtype, &values).unwrap();
            let deq = crate::ggml::dequantize_to_vec(dtype, &bytes).unwrap();
            for (b, block) in bytes.chunks(dtype.block_bytes() as usize).enumerate() {
                let mut codes = [0i32; 32];
                let grid = legacy_codes(dtype, block, &mut codes).unwrap();
                for (i, &q) in codes.iter().enumerate() {
                    assert_eq!(
                        grid.value(q).to_bits(),
                        deq[b * 32 + i].to_bits(),
                        "{dtype} block {b} code {i}"
                    );
                    assert!((grid.min_code..=grid.max_code).contains(&q));
                }
                let mut copy = block.to_vec();
                copy[grid_header_len(dtype)..].fill(0);
                assert!(set_legacy_codes(dtype, &mut copy, &codes));
                assert_eq!(copy, block, "{dtype} block {b}");
            }
        }
    }

    fn grid_header_len(dtype: DType) -> usize {
        match dtype {
            DType::Q4_1 | DType::Q5_1 => 4,
            _ => 2,
        }
    }

    #[test]
    fn nearest_is_the_closest_code_and_clamps_to_the_range() {
        let g = LegacyGrid { d: 0.5, m: 0.0, has_min: false, offset: 8, min_code: 0, max_code: 15 };
        assert_eq!(g.nearest(0.0), 8);
        assert_eq!(g.nearest(0.74), 9);
        assert_eq!(g.nearest(-100.0), 0);
        assert_eq!(g.nearest(100.0), 15);
        assert_eq!(g.nearest(f32::NAN), 8);
        let g1 = LegacyGrid { d: 0.25, m: -1.0, has_min: true, offset: 0, min_code: 0, max_code: 31 };
        assert_eq!(g1.nearest(-1.0), 0);
        assert_eq!(g1.nearest(0.0), 4);
        for x in [-2.0f32, -0.61, 0.13, 3.0, 7.0] {
            let q = g1.nearest(x);
            let best = (0..=31).map(|c| (x - g1.value(c)).abs()).fold(f32::INFINITY, f32::min);
            assert_eq!((x - g1.value(q)).abs(), best, "{x}");
        }
    }

    #[test]
    fn other_types_are_not_legacy() {
        let mut codes = [0i32; 32];
        assert!(legacy_codes(DType::TQ2_0, &[0u8; 66], &mut codes).is_none());
        assert!(legacy_codes(DType::Q8_0, &[0u8; 33], &mut codes).is_none());
        assert!(!set_legacy_codes(DType::F16, &mut [0u8; 34], &codes));
    }
}
