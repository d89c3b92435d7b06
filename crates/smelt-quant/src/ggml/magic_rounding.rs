//! Exact rounding of small floats to integers by the 2^23 "magic number" trick, for the
//! quantizers' per-weight loops.
//!
//! Adding 2^23 to a float in [0, 2^23) leaves its integer part, rounded to nearest even by the
//! adder itself, in the low mantissa bits of the sum. That needs only float additions,
//! compares and integer bit operations, which compile to SSE2 vector instructions on baseline
//! x86-64, where Rust's saturating `as` casts and `f32::round` (a libm call there) keep a loop
//! scalar; it makes Q8_0 about three times faster. The functions are exact, but only on the
//! range each states; [`super::x86_conversions`] covers every input, and the quantizers use
//! these only on blocks whose values are known to be in range (finite weights and a finite
//! `1/d`, which bound every scaled weight by a few units above the largest code).

/// 2^23: from here up every f32 is an integer.
const MAGIC: f32 = 8_388_608.0;
/// The bits of [`MAGIC`]; the sum's bits minus these are its integer part.
const MAGIC_BITS: i32 = 0x4B00_0000;

/// `roundf(v)` (half away from zero) as an integer, for |v| < 2^22.
#[inline(always)]
pub fn round_half_away_small(v: f32) -> i32 {
    let a = v.abs();
    let biased = a + MAGIC; // rounds a to the nearest integer, ties to even
    let nearest_even = biased - MAGIC;
    // A tie rounded down to even is the only case where half away from zero differs.
    let magnitude = (biased.to_bits() as i32 - MAGIC_BITS) + (a - nearest_even == 0.5) as i32;
    if v < 0.0 {
        -magnitude
    } else {
        magnitude
    }
}

/// `(int)v` (truncation), for 0 <= v < 2^22.
#[inline(always)]
pub fn trunc_small_nonnegative(v: f32) -> i32 {
    let biased = v + MAGIC;
    let nearest_even = biased - MAGIC;
    // Rounded up past v: the integer part is one less.
    (biased.to_bits() as i32 - MAGIC_BITS) - (nearest_even > v) as i32
}

#[cfg(test)]
mod tests {
    use super::super::x86_conversions::{roundf_i32, trunc_i32};
    use super::*;

    /// Every f32 in [0, 300) at a stride, every half-integer there and its neighbours.
    fn samples() -> Vec<f32> {
        let mut out = Vec::new();
        let mut v = 0.0f32;
        while v < 300.0 {
            out.push(v);
            v = f32::from_bits(v.to_bits() + 4099);
        }
        for k in 0..600 {
            let h = k as f32 * 0.5;
            out.extend([h, f32::from_bits(h.to_bits().saturating_sub(1)), f32::from_bits(h.to_bits() + 1)]);
        }
        out.extend([4_194_303.5, 4_194_303.0, 2_097_151.5, 1e-45, 0.49999997, 0.5, 0.50000006]);
        out
    }

    #[test]
    fn rounding_matches_the_general_conversion_on_its_range() {
        for v in samples() {
            assert_eq!(round_half_away_small(v), roundf_i32(v), "{v}");
            assert_eq!(round_half_away_small(-v), roundf_i32(-v), "-{v}");
            assert_eq!(trunc_small_nonnegative(v), trunc_i32(v), "{v}");
        }
    }
}
