//! The per-block maxima ggml's quantizers start from, computed so they vectorize yet give
//! the very value, sign of zero included, of ggml's sequential C loops.
//!
//! ggml scans a block one weight at a time (`amax = MAX(amax, fabsf(v))`, `if (v < min)
//! min = v`). Such a chain of dependent compares runs at one weight per compare latency; here
//! four independent lanes scan the block and are combined at the end. For finite values the
//! maximum does not depend on the order of comparisons, except for which of several equal
//! values wins, which matters when they are +0.0 and -0.0, whose sign ends up in the stored
//! scale or offset: ggml keeps the first one in block order, and so do these functions.
//!
//! A block holding a NaN or an infinity is scanned again with ggml's loop transcribed as is,
//! because there the order does matter (`MAX(a, b)` is `a > b ? a : b`, so a NaN replaces the
//! running maximum and the next weight replaces the NaN) and the lanes' `f32::max` (which
//! ignores NaNs) would not reproduce it. Each function also says whether every weight of the
//! block is finite, which the quantizers need to know to take their fast path.
//!
//! The largest magnitude is taken on the bits of `|x|` as integers, in sixteen lanes (an
//! integer maximum vectorizes with no NaN handling). The signed minimum and maximum use
//! `f32::max` / `f32::min` rather than compare-and-select: LLVM turns those into `maxps` /
//! `minps` once a 32-weight scan is unrolled, where a select ends up as scalar code.

/// Independent running minima and maxima of [`min_max`]: one SSE register of f32.
const LANES: usize = 4;

/// Bits of +infinity: an absolute value's bits at or above these are infinite or NaN.
const INFINITY_BITS: u32 = 0x7f80_0000;

/// ggml's `MAX(a, b)` macro on floats: `a > b ? a : b`.
#[inline(always)]
fn c_max(a: f32, b: f32) -> f32 {
    if a > b {
        a
    } else {
        b
    }
}

/// Independent running maxima of [`abs_max_lanes`]: one AVX-512 register of u32.
const ABS_LANES: usize = 16;

/// The largest `|x|` and whether every weight is finite. The maximum is taken on the bits
/// of `|x|` as integers, which order non-negative floats as floats do (and put NaNs above the
/// infinities), in sixteen independent lanes: an integer maximum vectorizes without the NaN
/// handling of `f32::max`, whose compare-and-blend chain made this loop most of TQ1_0's time.
/// For finite weights the largest magnitude is one value whichever lane finds it (`|-0.0|`
/// is `+0.0`), so the result is the sequential loop's.
#[inline(always)]
fn abs_max_lanes<const N: usize>(x: &[f32; N]) -> (f32, bool) {
    let mut lanes = [0u32; ABS_LANES];
    let chunks = x.chunks_exact(ABS_LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..ABS_LANES {
            lanes[i] = lanes[i].max(c[i].to_bits() & 0x7fff_ffff);
        }
    }
    for (i, v) in rest.iter().enumerate() {
        lanes[i] = lanes[i].max(v.to_bits() & 0x7fff_ffff);
    }
    let amax = lanes.iter().fold(0u32, |m, &l| m.max(l));
    (f32::from_bits(amax), amax < INFINITY_BITS)
}

/// ggml's `amax` loop of Q8_0, TQ1_0 and TQ2_0: `amax = MAX(amax, fabsf(v))` over the block
/// from `amax = 0.0`; and whether every weight is finite.
#[inline(always)]
pub fn abs_max<const N: usize>(x: &[f32; N]) -> (f32, bool) {
    let (amax, finite) = abs_max_lanes(x);
    if finite {
        return (amax, true);
    }
    (x.iter().fold(0.0, |amax, v| c_max(amax, v.abs())), false)
}

/// ggml's `max` of Q4_0 and Q5_0: from `amax = max = 0.0`, `if (amax < fabsf(v)) { amax =
/// fabsf(v); max = v; }`. That is the first weight of largest magnitude, with its sign, or
/// +0.0 when every weight is zero or NaN. And whether every weight is finite.
#[inline(always)]
pub fn signed_abs_max(x: &[f32; 32]) -> (f32, bool) {
    let (amax, finite) = abs_max_lanes(x);
    if !finite {
        let (mut amax, mut max) = (0.0f32, 0.0f32);
        for &v in x {
            if amax < v.abs() {
                amax = v.abs();
                max = v;
            }
        }
        return (max, false);
    }
    if amax == 0.0 {
        return (0.0, true);
    }
    // The first weight reaching amax is the one whose update set it (later equal ones fail
    // the strict `<`).
    let mut at_amax = 0u32;
    for (j, v) in x.iter().enumerate() {
        at_amax |= ((v.abs() == amax) as u32) << j;
    }
    (x.get(at_amax.trailing_zeros() as usize).copied().unwrap_or(0.0), true)
}

/// ggml's `min` and `max` of Q4_1 and Q5_1: from `min = FLT_MAX, max = -FLT_MAX`, `if (v <
/// min) min = v; if (v > max) max = v;`. NaNs are skipped; of equal values the first in block
/// order is kept, which decides the sign of a zero minimum or maximum. And whether every
/// weight is finite.
#[inline(always)]
pub fn min_max(x: &[f32; 32]) -> (f32, f32, bool) {
    let mut lows = [f32::MAX; LANES];
    let mut highs = [-f32::MAX; LANES];
    let mut nonfinite = [0u32; LANES];
    for k in 0..32 / LANES {
        for i in 0..LANES {
            let v = x[k * LANES + i];
            lows[i] = lows[i].min(v);
            highs[i] = highs[i].max(v);
            nonfinite[i] |= (v.abs().to_bits() >= INFINITY_BITS) as u32;
        }
    }
    if nonfinite.iter().fold(0, |any, &n| any | n) != 0 {
        let (mut min, mut max) = (f32::MAX, -f32::MAX);
        for &v in x {
            if v < min {
                min = v;
            }
            if v > max {
                max = v;
            }
        }
        return (min, max, false);
    }
    let min = lows.iter().fold(f32::MAX, |min, &v| min.min(v));
    let max = highs.iter().fold(-f32::MAX, |max, &v| max.max(v));
    (first_equal_zero(x, min), first_equal_zero(x, max), true)
}

/// `value` itself, unless it is a zero: then the first zero of the block, whose sign ggml's
/// sequential scan would have kept.
#[inline(always)]
fn first_equal_zero(x: &[f32; 32], value: f32) -> f32 {
    if value != 0.0 {
        return value;
    }
    x.iter().copied().find(|&v| v == 0.0).unwrap_or(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ggml's loops, transcribed one weight at a time.
    fn abs_max_sequential(x: &[f32]) -> f32 {
        let mut amax = 0.0f32;
        for &v in x {
            amax = if amax > v.abs() { amax } else { v.abs() };
        }
        amax
    }

    fn signed_abs_max_sequential(x: &[f32]) -> f32 {
        let (mut amax, mut max) = (0.0f32, 0.0f32);
        for &v in x {
            if amax < v.abs() {
                amax = v.abs();
                max = v;
            }
        }
        max
    }

    fn min_max_sequential(x: &[f32]) -> (f32, f32) {
        let (mut min, mut max) = (f32::MAX, -f32::MAX);
        for &v in x {
            if v < min {
                min = v;
            }
            if v > max {
                max = v;
            }
        }
        (min, max)
    }

    /// Blocks that stress order: signed zeros, ties of opposite sign, NaNs at either end.
    fn awkward_blocks() -> Vec<[f32; 32]> {
        let mut blocks = Vec::new();
        let mut b = [0.0f32; 32];
        blocks.push(b);
        b[0] = -0.0;
        blocks.push(b);
        b[0] = 0.0;
        b[17] = -0.0;
        blocks.push(b);
        let mut b = [0.0f32; 32];
        for (j, v) in b.iter_mut().enumerate() {
            *v = ((j * 7) % 11) as f32 - 5.0;
        }
        blocks.push(b);
        b[9] = 5.0;
        b[3] = -5.0;
        blocks.push(b);
        let mut with_nan = b;
        with_nan[4] = f32::NAN;
        blocks.push(with_nan);
        with_nan[31] = f32::NAN;
        blocks.push(with_nan);
        let mut all_nan = [f32::NAN; 32];
        blocks.push(all_nan);
        all_nan[30] = -0.0;
        blocks.push(all_nan);
        let mut negative = [-1.0f32; 32];
        negative[12] = -0.0;
        negative[20] = 0.0;
        blocks.push(negative);
        let mut positive = [1.0f32; 32];
        positive[2] = 0.0;
        positive[8] = -0.0;
        blocks.push(positive);
        let mut infinite = [1.0f32; 32];
        infinite[5] = f32::NEG_INFINITY;
        infinite[6] = f32::INFINITY;
        blocks.push(infinite);
        blocks
    }

    #[test]
    fn lanes_agree_with_the_sequential_loops_bit_for_bit() {
        for (i, b) in awkward_blocks().iter().enumerate() {
            let finite = b.iter().all(|v| v.is_finite());
            let (amax, amax_finite) = abs_max(b);
            assert_eq!(
                (amax.to_bits(), amax_finite),
                (abs_max_sequential(b).to_bits(), finite),
                "abs_max {i}"
            );
            let (max, max_finite) = signed_abs_max(b);
            assert_eq!(
                (max.to_bits(), max_finite),
                (signed_abs_max_sequential(b).to_bits(), finite),
                "signed {i}"
            );
            let (min, max, min_max_finite) = min_max(b);
            let (want_min, want_max) = min_max_sequential(b);
            assert_eq!(
                (min.to_bits(), max.to_bits(), min_max_finite),
                (want_min.to_bits(), want_max.to_bits(), finite),
                "min_max {i}"
            );
        }
    }

    #[test]
    fn a_nan_followed_by_smaller_weights_is_forgotten_as_in_ggml() {
        let mut b = [0.0f32; 32];
        b[0] = 100.0;
        b[1] = f32::NAN;
        b[2] = 3.0;
        assert_eq!(abs_max(&b), (3.0, false), "MAX(NaN, 3) is 3, the 100 before the NaN is lost");
        b[31] = f32::NAN;
        assert!(abs_max(&b).0.is_nan(), "a NaN last stays");
    }
}
