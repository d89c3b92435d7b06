//! BF16 weights decoded to f32 with the range of every run of them taken in the same pass.
//!
//! Per-channel INT8 and block int4 need each row's or group's `(min, max)` before they can
//! quantize it, and a converter must refuse NaN and infinities. Over weights read from a BF16
//! checkpoint those were two more passes over the decoded values, each about as long as the
//! decode itself; the decode waits on memory, so folding the comparisons into its loop makes
//! them almost free. The ranges are [`run_min_max`]'s, bit for bit (integer maxima and minima
//! on the bits, which no order changes), and so are the decoded values
//! (`smelt_tensor::convert::float_to_f32_into`'s). Every range finite means every value is.

use smelt_tensor::simd::Tier;

use crate::int8::{min_max_from_keys, min_max_key, run_min_max};

/// How many runs a block of `len` values in rows of `cols`, cut into runs of `run` from each
/// row's start (the last run of a row may be shorter), has.
pub fn run_count(len: usize, cols: usize, run: usize) -> usize {
    if cols == 0 || run == 0 {
        return 0;
    }
    len / cols * cols.div_ceil(run) + (len % cols).div_ceil(run)
}

/// Decodes little-endian BF16 `bytes` into `out` and writes [`run_min_max`] of every run into
/// `ranges`: `out` is taken as rows of `cols` values, each cut into runs of `run` from its
/// start (a per-channel row: `run == cols`; block int4 groups: `run` the group size; one
/// range over everything: `cols == run == out.len()`).
///
/// Panics when `bytes` does not hold `out.len()` values, `cols` or `run` is 0 while `out` is
/// not empty, or `ranges` is not [`run_count`] long.
pub fn bf16_to_f32_run_ranges(
    bytes: &[u8],
    cols: usize,
    run: usize,
    out: &mut [f32],
    ranges: &mut [(f32, f32)],
) {
    bf16_to_f32_run_ranges_with(smelt_tensor::simd::tier(), bytes, cols, run, out, ranges)
}

/// [`bf16_to_f32_run_ranges`] at a given [`Tier`]: the same bits at every one (for
/// differential tests).
pub fn bf16_to_f32_run_ranges_with(
    tier: Tier,
    bytes: &[u8],
    cols: usize,
    run: usize,
    out: &mut [f32],
    ranges: &mut [(f32, f32)],
) {
    assert_eq!(bytes.len(), out.len() * 2, "two bytes per value");
    if out.is_empty() {
        assert!(ranges.is_empty(), "no runs in no values");
        return;
    }
    assert!(cols > 0 && run > 0, "rows and runs of at least one value");
    assert_eq!(ranges.len(), run_count(out.len(), cols, run), "a range per run");
    let mut k = 0;
    for (b, o) in bytes.chunks(cols * 2).zip(out.chunks_mut(cols)) {
        let n = o.len().div_ceil(run);
        ranges_tiered(tier, b, run, o, &mut ranges[k..k + n]);
        k += n;
    }
}

smelt_tensor::tiered!(fn ranges_tiered(bytes: &[u8], run: usize, out: &mut [f32], ranges: &mut [(f32, f32)]) = ranges_body);

/// One row: the decode of `smelt_tensor::convert` (a shift; a NaN gets its quiet bit) with
/// `run_min_max`'s folds on the decoded bits in the same loop.
#[inline(always)]
fn ranges_body(bytes: &[u8], run: usize, out: &mut [f32], ranges: &mut [(f32, f32)]) {
    for ((b, o), r) in bytes.chunks(run * 2).zip(out.chunks_mut(run)).zip(ranges.iter_mut()) {
        let (mut lo, mut hi, mut abs) = (i32::MAX, i32::MIN, 0u32);
        for (o, c) in o.iter_mut().zip(b.chunks_exact(2)) {
            let h = u16::from_le_bytes([c[0], c[1]]);
            let h = if h & 0x7fff > 0x7f80 { h | 0x0040 } else { h };
            let bits = (h as u32) << 16;
            *o = f32::from_bits(bits);
            let k = min_max_key(bits as i32);
            lo = lo.min(k);
            hi = hi.max(k);
            abs = abs.max(bits & 0x7fff_ffff);
        }
        *r = min_max_from_keys(lo, hi, abs);
    }
}

/// [`run_min_max`] of every run of decoded values (as [`bf16_to_f32_run_ranges`] cuts them),
/// for inputs of other dtypes, decoded first.
///
/// Panics as [`bf16_to_f32_run_ranges`] does.
pub fn run_ranges(values: &[f32], cols: usize, run: usize, ranges: &mut [(f32, f32)]) {
    run_ranges_with(smelt_tensor::simd::tier(), values, cols, run, ranges)
}

/// [`run_ranges`] at a given [`Tier`] (the same ranges at every one).
pub fn run_ranges_with(tier: Tier, values: &[f32], cols: usize, run: usize, ranges: &mut [(f32, f32)]) {
    if values.is_empty() {
        assert!(ranges.is_empty(), "no runs in no values");
        return;
    }
    assert!(cols > 0 && run > 0, "rows and runs of at least one value");
    assert_eq!(ranges.len(), run_count(values.len(), cols, run), "a range per run");
    run_ranges_tiered(tier, values, cols, run, ranges)
}

smelt_tensor::tiered!(fn run_ranges_tiered(values: &[f32], cols: usize, run: usize, ranges: &mut [(f32, f32)]) = run_ranges_body);

#[inline(always)]
fn run_ranges_body(values: &[f32], cols: usize, run: usize, ranges: &mut [(f32, f32)]) {
    let runs = values.chunks(cols).flat_map(|row| row.chunks(run));
    for (r, v) in ranges.iter_mut().zip(runs) {
        *r = run_min_max(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// BF16 values of every kind: signed zeros, subnormals, the largest finite values,
    /// infinities, quiet and signalling NaNs of both signs, and ordinary weights.
    fn awkward() -> Vec<u16> {
        let mut v: Vec<u16> = vec![
            0x0000, 0x8000, 0x0001, 0x8001, 0x007f, 0x807f, 0x0080, 0x8080, 0x7f7f, 0xff7f, 0x7f80, 0xff80,
            0x7fc0, 0xffc0, 0x7f81, 0xff81, 0x7fff, 0x3f80, 0xbf80,
        ];
        let mut x = 0x2545_f491u32;
        for _ in 0..600 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            // Mostly finite weights of either sign around 1e-2.
            v.push(0x3c00 | (x as u16 & 0x83ff));
        }
        v
    }

    fn reference(h: &[u16], cols: usize, run: usize) -> (Vec<f32>, Vec<(f32, f32)>) {
        let bytes: Vec<u8> = h.iter().flat_map(|h| h.to_le_bytes()).collect();
        let mut out = vec![0f32; h.len()];
        assert!(smelt_tensor::convert::float_to_f32_with(
            Tier::Scalar,
            smelt_tensor::DType::BF16,
            &bytes,
            &mut out
        ));
        let mut ranges = vec![(0f32, 0f32); run_count(h.len(), cols, run)];
        run_ranges_with(Tier::Scalar, &out, cols, run, &mut ranges);
        (out, ranges)
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    fn range_bits(v: &[(f32, f32)]) -> Vec<(u32, u32)> {
        v.iter().map(|(a, b)| (a.to_bits(), b.to_bits())).collect()
    }

    /// Every tier decodes the values and finds the ranges of the reference (decode, then
    /// `run_min_max` per run), bit for bit, for lengths around the vector widths, rows that
    /// are not a multiple of the run, and windows over NaN, infinities and signed zeros.
    #[test]
    fn every_tier_matches_decode_then_run_min_max() {
        let all = awkward();
        for (cols, run) in [(1, 1), (7, 3), (16, 16), (64, 64), (65, 64), (128, 32), (200, 128), (33, 33)] {
            for len in [0usize, 1, 15, 16, 17, 63, 64, 65, 127, 128, 129, 400] {
                for start in (0..all.len().saturating_sub(len)).step_by(53) {
                    let h = &all[start..start + len];
                    let (want, want_ranges) = reference(h, cols, run);
                    let bytes: Vec<u8> = h.iter().flat_map(|h| h.to_le_bytes()).collect();
                    for tier in Tier::ALL {
                        let mut out = vec![7f32; len];
                        let mut ranges = vec![(9f32, 9f32); want_ranges.len()];
                        bf16_to_f32_run_ranges_with(tier, &bytes, cols, run, &mut out, &mut ranges);
                        let at = format!("{} cols {cols} run {run} len {len} start {start}", tier.name());
                        assert_eq!(bits(&out), bits(&want), "{at}: values");
                        assert_eq!(range_bits(&ranges), range_bits(&want_ranges), "{at}: ranges");
                    }
                }
            }
        }
    }

    /// A NaN anywhere in a run makes its range (NaN, NaN); an infinity shows as a bound; other
    /// runs keep theirs.
    #[test]
    fn nonfinite_values_show_in_their_run_only() {
        let h: Vec<u16> = vec![0x3f80, 0xbf80, 0x7fc0, 0x4000, 0x7f80, 0x0000, 0x8000, 0x3f00];
        let bytes: Vec<u8> = h.iter().flat_map(|h| h.to_le_bytes()).collect();
        for tier in Tier::ALL {
            let (mut out, mut ranges) = (vec![0f32; 8], vec![(0f32, 0f32); 4]);
            bf16_to_f32_run_ranges_with(tier, &bytes, 8, 2, &mut out, &mut ranges);
            assert_eq!(ranges[0], (-1.0, 1.0), "{}", tier.name());
            assert!(ranges[1].0.is_nan() && ranges[1].1.is_nan(), "{}", tier.name());
            assert_eq!(ranges[2], (0.0, f32::INFINITY), "{}", tier.name());
            assert_eq!(ranges[3].1, 0.5, "{}", tier.name());
            assert_eq!(ranges[3].0, 0.0, "{}", tier.name());
        }
    }

    #[test]
    fn runs_restart_at_every_row() {
        assert_eq!(run_count(0, 5, 2), 0);
        assert_eq!(run_count(10, 5, 2), 6);
        assert_eq!(run_count(12, 5, 2), 7);
        assert_eq!(run_count(4096, 2048, 128), 32);
        assert_eq!(run_count(4096, 4096, 4096), 1);
    }
}
