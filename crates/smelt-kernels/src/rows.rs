//! Per-row reductions in a fixed order, for the runtime's fused ops that must give the bits
//! of the ONNX chains they replace.

use crate::dispatch::{selected, Isa};

/// `sums[r] = Σⱼ f64(x[r·len + j]²)` for each row `r` of `x` (`sums.len()` rows of `len`):
/// every square rounded to f32, then added in f64 from the first element to the last, which
/// is RMSNorm's `Pow` then `ReduceMean` (before its division). SIMD tiers run eight rows side
/// by side with the same additions, so every tier gives the same bits.
///
/// # Panics
/// When `x.len() != sums.len() · len`.
pub fn row_sums_of_squares_f64(x: &[f32], len: usize, sums: &mut [f64]) {
    row_sums_of_squares_f64_with(selected().float, x, len, sums)
}

/// [`row_sums_of_squares_f64`] on a chosen instruction set (scalar when the CPU lacks it).
///
/// # Panics
/// As [`row_sums_of_squares_f64`].
pub fn row_sums_of_squares_f64_with(isa: Isa, x: &[f32], len: usize, sums: &mut [f64]) {
    assert_eq!(x.len(), sums.len() * len, "row sums: {} elements for {} rows of {len}", x.len(), sums.len());
    let done = crate::arch::row_sums_of_squares(isa.or_scalar(), x, len, sums);
    for (r, s) in sums.iter_mut().enumerate().skip(done) {
        *s = x[r * len..(r + 1) * len].iter().fold(0f64, |s, &v| s + (v * v) as f64);
    }
}
