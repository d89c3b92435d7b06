//! ggml's float-to-integer conversions as its C code computes them on x86-64.
//!
//! ggml's reference quantizers convert floats to small integers with C casts
//! (`(int8_t)(x + 8.5f)`, `y.qs[j] = roundf(x)`) and `lroundf`. Where the value fits the
//! target type these are plain truncation and rounding half away from zero. Where it does not
//! (a NaN or an infinity, which a block of subnormal weights produces when `1/d` overflows),
//! C leaves the result undefined, and what ggml writes is whatever the compiled code gives:
//! on x86-64 a conversion to a 32-bit integer is `cvttss2si`, which answers the "integer
//! indefinite" value `i32::MIN` for anything out of range or NaN, and a cast to a byte keeps
//! the low 8 bits of that. glibc's `lroundf` answers `i64::MIN` the same way. These functions
//! reproduce that exactly, so smelt's bytes equal ggml's x86-64 build even on such blocks
//! (checked against ggml's C compiled with gcc 12, -O0, -O2 and -O3; see the tests in
//! crates/smelt-quant/tests/ggml_quantize.rs).
//!
//! Rust's own `as` casts saturate instead (`f32::INFINITY as i32` is `i32::MAX`), which
//! would give a different byte, so the quantizers use these and never a bare `as` on a value
//! that might be out of range. aarch64 builds of ggml saturate too, so on such degenerate
//! blocks ggml's own output differs between architectures; smelt follows x86-64.
//!
//! Everything here is branch-free selects so that the per-weight loops vectorize.

/// 2^31 as f32: values with magnitude at or above it do not fit an i32.
const TWO_POW_31: f32 = 2_147_483_648.0;
/// 2^63 as f32: values with magnitude at or above it do not fit an i64.
const TWO_POW_63: f32 = 9_223_372_036_854_775_808.0;

/// C's `(int32_t)v` on x86-64 (`cvttss2si`): truncation toward zero, `i32::MIN` when `v`
/// is NaN or out of range. A C cast to `int8_t` / `uint8_t` is this followed by `as i8` /
/// `as u8` (the low byte).
#[inline(always)]
pub fn trunc_i32(v: f32) -> i32 {
    // `v as i32` is exact truncation when in range; the select replaces Rust's saturation
    // with x86's indefinite value.
    if v.abs() < TWO_POW_31 {
        v as i32
    } else {
        i32::MIN
    }
}

/// C's `(int32_t)roundf(v)` on x86-64: rounding half away from zero, `i32::MIN` when `v` is
/// NaN or out of range. `y.qs[j] = roundf(x)` into an `int8_t` is this `as i8`.
///
/// Computed without `f32::round`, which is a libm call on baseline x86-64 and would keep the
/// loop from vectorizing: the integer part comes from a truncating conversion, the fraction
/// `v - trunc(v)` is exact in f32, and a fraction of at least one half rounds away from zero.
#[inline(always)]
pub fn roundf_i32(v: f32) -> i32 {
    let t = v as i32;
    let frac = v - t as f32;
    // Wrapping: out of range `t` is saturated and `frac` meaningless; the select discards it.
    let rounded = t.wrapping_add((frac >= 0.5) as i32).wrapping_sub((frac <= -0.5) as i32);
    if v.abs() < TWO_POW_31 {
        rounded
    } else {
        i32::MIN
    }
}

/// glibc's `lroundf(v)` on x86-64: rounding half away from zero, `i64::MIN` when `v` is NaN
/// or out of range (glibc ends in a plain `(long)v` cast there).
#[inline(always)]
pub fn lroundf_i64(v: f32) -> i64 {
    let t = v as i64;
    // Exact for |v| < 2^63; from 2^23 up `v` is an integer and the fraction is 0.
    let frac = v - t as f32;
    let rounded = t.wrapping_add((frac >= 0.5) as i64).wrapping_sub((frac <= -0.5) as i64);
    if v.abs() < TWO_POW_63 {
        rounded
    } else {
        i64::MIN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rounding half away from zero by f64 arithmetic, for comparison (exact for every f32).
    fn round_half_away(v: f32) -> f64 {
        let v = v as f64;
        let r = v.abs().floor() + if v.abs() - v.abs().floor() >= 0.5 { 1.0 } else { 0.0 };
        r.copysign(v)
    }

    #[test]
    fn in_range_values_truncate_and_round_like_c() {
        let cases: [f32; 16] = [
            0.0,
            -0.0,
            0.5,
            -0.5,
            1.5,
            -1.5,
            2.5,
            0.49999997,
            -0.49999997,
            126.5,
            -127.5,
            8.99999,
            16.5,
            8_388_607.5,
            8_388_609.0,
            2_147_483_520.0,
        ];
        for v in cases {
            assert_eq!(trunc_i32(v) as f64, (v as f64).trunc(), "trunc {v}");
            assert_eq!(roundf_i32(v) as f64, round_half_away(v), "roundf {v}");
            assert_eq!(lroundf_i64(v) as f64, round_half_away(v), "lroundf {v}");
        }
        let large = -9.0e18f32;
        assert_eq!(lroundf_i64(large), large as i64, "large but in i64 range");
    }

    #[test]
    fn out_of_range_and_nan_give_the_x86_indefinite_value() {
        for v in [f32::NAN, -f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 2_147_483_648.0, -3.0e9, 1e30] {
            assert_eq!(trunc_i32(v), i32::MIN, "{v}");
            assert_eq!(roundf_i32(v), i32::MIN, "{v}");
        }
        for v in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 9.3e18, -1e30] {
            assert_eq!(lroundf_i64(v), i64::MIN, "{v}");
        }
        // ggml's `(int8_t)` of such a value keeps the low byte of i32::MIN: 0.
        assert_eq!(trunc_i32(f32::INFINITY) as i8, 0);
    }

    #[test]
    fn every_half_integer_up_to_200_rounds_away_from_zero() {
        for k in 0..400 {
            let v = k as f32 * 0.5;
            assert_eq!(roundf_i32(v) as f64, round_half_away(v), "{v}");
            assert_eq!(roundf_i32(-v) as f64, round_half_away(-v), "-{v}");
            let below = f32::from_bits(v.to_bits().saturating_sub(1));
            assert_eq!(roundf_i32(below) as f64, round_half_away(below), "just below {v}");
        }
    }
}
