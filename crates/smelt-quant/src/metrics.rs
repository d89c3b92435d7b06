//! Error between a tensor and its quantized-then-dequantized version: the per-tensor figures a
//! conversion report shows and validation thresholds test (SQNR, cosine similarity, max and
//! mean absolute error).
//!
//! Every sum ends in f64 lanes: blocks of 1024 elements are summed in sixteen f32 lanes and
//! then added into eight f64 lanes (`smelt_kernels::error_lanes`; a block whose f32 sums could
//! have overflowed or underflowed, or that holds a NaN or an infinity, is summed in f64 over
//! the values converted exactly, as are the last few elements), and the lanes are added in
//! lane order at the end of the slice; a tensor encoded in chunks takes those sums per chunk
//! and adds them in chunk order ([`ErrorSums`]). The order is fixed by the code, never by the
//! CPU or the thread count, so the figures are reproducible to the bit. Each sum is within
//! about 4e-6 (relative, worst case: 64 f32 additions per lane and block) of the exact sum; in
//! practice the figures move by a few 1e-7 at most (docs/kernels.md). The largest difference
//! is that of the f32 subtraction `r − c`. The figures do not depend on the scheme's own rounding.
//!
//! Definitions, with `r` the reference and `c` the candidate:
//! - SQNR (dB) = `10 · log10(Σ r² / Σ (r - c)²)`: `+∞` when the noise is zero (identical
//!   inputs, including two all-zero or two empty inputs), `-∞` when the reference is all zero
//!   but the candidate is not;
//! - cosine similarity = `Σ r·c / sqrt(Σ r² · Σ c²)`, clamped to [-1, 1]: `1` when both are all
//!   zero (or empty), `0` when exactly one is;
//! - max abs error = `max |r - c|`, mean abs error = `Σ |r - c| / n`: both `0` for empty inputs.
//!
//! A NaN in either input makes every figure NaN (a report must not hide it); infinities follow
//! IEEE arithmetic.

use smelt_kernels::{Isa, ERROR_LANES};

use crate::scheme_error::SchemeError;

/// The four error figures of one tensor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ErrorMetrics {
    /// Signal-to-quantization-noise ratio in dB.
    pub sqnr_db: f64,
    /// Cosine similarity in [-1, 1].
    pub cosine: f64,
    /// Largest absolute difference.
    pub max_abs: f64,
    /// Mean absolute difference.
    pub mean_abs: f64,
}

/// All four figures in one pass.
///
/// Errors: the slices differ in length.
pub fn error_metrics(reference: &[f32], candidate: &[f32]) -> Result<ErrorMetrics, SchemeError> {
    if reference.len() != candidate.len() {
        return Err(SchemeError::LengthMismatch { reference: reference.len(), candidate: candidate.len() });
    }
    Ok(ErrorSums::of(reference, candidate).metrics())
}

/// The sums behind [`ErrorMetrics`], for figures computed a chunk at a time: take
/// [`ErrorSums::of`] each chunk, [`ErrorSums::merge`] them in chunk order, then
/// [`ErrorSums::metrics`]. With fixed chunk boundaries the figures do not depend on how many
/// threads computed the chunks.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ErrorSums {
    n: u64,
    rr: f64,
    cc: f64,
    rc: f64,
    noise: f64,
    abs_sum: f64,
    max_abs: f64,
    nan: bool,
}

impl ErrorSums {
    /// The sums over one chunk (see the module documentation). The slices are zipped: extra
    /// elements of the longer one are ignored (check lengths first).
    pub fn of(reference: &[f32], candidate: &[f32]) -> ErrorSums {
        Self::of_with(smelt_kernels::selected().float, reference, candidate)
    }

    /// [`ErrorSums::of`] with the lanes summed at a given instruction set (the same bits at
    /// every one: see `smelt_kernels::error_lanes`; for differential tests).
    pub fn of_with(isa: Isa, reference: &[f32], candidate: &[f32]) -> ErrorSums {
        sums(isa, reference, candidate)
    }

    /// Element by element in f64, left to right: the reference [`ErrorSums::of`] is tested
    /// against.
    #[cfg(test)]
    fn add_exact(&mut self, reference: &[f32], candidate: &[f32]) {
        for (&r, &c) in reference.iter().zip(candidate) {
            let (r, c) = (r as f64, c as f64);
            let d = r - c;
            self.nan |= d.is_nan();
            self.rr += r * r;
            self.cc += c * c;
            self.rc += r * c;
            self.noise += d * d;
            self.abs_sum += d.abs();
            self.max_abs = self.max_abs.max(d.abs());
        }
    }

    /// `self` followed by `next`.
    pub fn merge(&self, next: &ErrorSums) -> ErrorSums {
        ErrorSums {
            n: self.n + next.n,
            rr: self.rr + next.rr,
            cc: self.cc + next.cc,
            rc: self.rc + next.rc,
            noise: self.noise + next.noise,
            abs_sum: self.abs_sum + next.abs_sum,
            max_abs: self.max_abs.max(next.max_abs),
            nan: self.nan || next.nan,
        }
    }

    /// The four figures (see the module documentation).
    pub fn metrics(&self) -> ErrorMetrics {
        if self.nan {
            return ErrorMetrics {
                sqnr_db: f64::NAN,
                cosine: f64::NAN,
                max_abs: f64::NAN,
                mean_abs: f64::NAN,
            };
        }
        let sqnr_db = if self.noise == 0.0 {
            f64::INFINITY
        } else if self.rr == 0.0 {
            f64::NEG_INFINITY
        } else {
            10.0 * (self.rr / self.noise).log10()
        };
        let cosine = match (self.rr == 0.0, self.cc == 0.0) {
            (true, true) => 1.0,
            (true, false) | (false, true) => 0.0,
            (false, false) => (self.rc / (self.rr * self.cc).sqrt()).clamp(-1.0, 1.0),
        };
        let mean_abs = if self.n == 0 { 0.0 } else { self.abs_sum / self.n as f64 };
        ErrorMetrics { sqnr_db, cosine, max_abs: self.max_abs, mean_abs }
    }
}

fn sums(isa: Isa, reference: &[f32], candidate: &[f32]) -> ErrorSums {
    let n = reference.len().min(candidate.len());
    let lanes = smelt_kernels::explicit::error_lanes_with(isa, &reference[..n], &candidate[..n]);
    let total = |v: [f64; ERROR_LANES]| v.iter().fold(0f64, |a, &b| a + b);
    let noise = total(lanes.nn);
    ErrorSums {
        n: n as u64,
        rr: total(lanes.rr),
        cc: total(lanes.cc),
        rc: total(lanes.rc),
        // Σd² is NaN exactly when some difference is (its terms are never negative).
        nan: noise.is_nan(),
        noise,
        abs_sum: total(lanes.ab),
        max_abs: lanes.mx.iter().fold(0f64, |a, &b| a.max(b)),
    }
}

/// SQNR in dB (see the module documentation).
pub fn sqnr_db(reference: &[f32], candidate: &[f32]) -> Result<f64, SchemeError> {
    error_metrics(reference, candidate).map(|m| m.sqnr_db)
}

/// Cosine similarity (see the module documentation).
pub fn cosine_similarity(reference: &[f32], candidate: &[f32]) -> Result<f64, SchemeError> {
    error_metrics(reference, candidate).map(|m| m.cosine)
}

/// Largest absolute difference (see the module documentation).
pub fn max_abs_error(reference: &[f32], candidate: &[f32]) -> Result<f64, SchemeError> {
    error_metrics(reference, candidate).map(|m| m.max_abs)
}

/// Mean absolute difference (see the module documentation).
pub fn mean_abs_error(reference: &[f32], candidate: &[f32]) -> Result<f64, SchemeError> {
    error_metrics(reference, candidate).map(|m| m.mean_abs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        let m = error_metrics(&[1.0, 2.0, 3.0, 4.0], &[1.0, 2.0, 3.0, 3.0]).unwrap();
        assert_eq!(m.sqnr_db, 10.0 * 30f64.log10());
        assert_eq!(m.max_abs, 1.0);
        assert_eq!(m.mean_abs, 0.25);
        assert_eq!(m.cosine, 26.0 / (30f64 * 23.0).sqrt());
    }

    #[test]
    fn chunk_sums_merge_to_the_whole() {
        let r: Vec<f32> = (0..5000).map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0).collect();
        let c: Vec<f32> = r.iter().map(|x| (x * 8.0).round() / 8.0).collect();
        let whole = error_metrics(&r, &c).unwrap();
        // Chunks of 64 are summed in other f32 blocks than the whole slice: the figures
        // agree within the f32 bound, the largest difference exactly.
        let parts = r.chunks(64).zip(c.chunks(64)).map(|(a, b)| ErrorSums::of(a, b));
        let merged = parts.fold(ErrorSums::default(), |a, b| a.merge(&b)).metrics();
        assert_eq!(merged.max_abs, whole.max_abs);
        for (a, b) in [
            (merged.sqnr_db, whole.sqnr_db),
            (merged.cosine, whole.cosine),
            (merged.mean_abs, whole.mean_abs),
        ] {
            assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{a} vs {b}");
        }
        // Chunks of whole blocks merge to the same sums up to f64 rounding.
        let parts = r.chunks(1024).zip(c.chunks(1024)).map(|(a, b)| ErrorSums::of(a, b));
        let merged = parts.fold(ErrorSums::default(), |a, b| a.merge(&b)).metrics();
        for (a, b) in [(merged.sqnr_db, whole.sqnr_db), (merged.cosine, whole.cosine)] {
            assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "{a} vs {b}");
        }
    }

    /// The sums stay within the documented bound (4e-6 relative) of sums taken in f64 element
    /// by element, at any magnitude (values whose squares underflow or overflow f32 take the f64 path: 1e-13
    /// there), and
    /// the largest difference is within one f32 rounding of the exact one.
    #[test]
    fn lane_sums_are_close_to_exact_sums() {
        let mut x = 0x1234_5678u32;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        for scale in [1.0f32, 1e-3, 1e-18, 1e18, 3e25] {
            let r: Vec<f32> = (0..10_007).map(|_| next() * scale).collect();
            let c: Vec<f32> = r.iter().map(|v| v + next() * scale * 1e-2).collect();
            let mut exact = ErrorSums::default();
            exact.add_exact(&r, &c);
            exact.n = r.len() as u64;
            let (got, want) = (ErrorSums::of(&r, &c), exact);
            let tol = if scale == 1e-18 || scale == 3e25 { 1e-13 } else { 4e-6 };
            for (a, b) in [
                (got.rr, want.rr),
                (got.cc, want.cc),
                (got.rc, want.rc),
                (got.noise, want.noise),
                (got.abs_sum, want.abs_sum),
            ] {
                assert!(a.is_finite() && (a - b).abs() <= tol * b.abs(), "scale {scale}: {a} vs {b}");
            }
            let f32_ulp = f32::EPSILON as f64 / 2.0;
            assert!((got.max_abs - want.max_abs).abs() <= f32_ulp * want.max_abs, "scale {scale}");
        }
    }

    #[test]
    fn every_simd_level_gives_the_same_bits() {
        let r: Vec<f32> = (0..10_007).map(|i| ((i * 7919 % 1013) as f32 - 500.0) * 1.37e-3).collect();
        let mut c: Vec<f32> = r.iter().map(|x| (x * 64.0).round() / 64.0).collect();
        c[17] = f32::MIN_POSITIVE / 3.0;
        for len in [0, 1, 7, 8, 9, 10_007] {
            let want = ErrorSums::of_with(Isa::Scalar, &r[..len], &c[..len]);
            for isa in Isa::ALL {
                assert_eq!(ErrorSums::of_with(isa, &r[..len], &c[..len]), want, "{isa} len {len}");
            }
        }
    }

    #[test]
    fn zero_and_empty_signals() {
        let same = error_metrics(&[0.0; 3], &[0.0; 3]).unwrap();
        assert_eq!(same, ErrorMetrics { sqnr_db: f64::INFINITY, cosine: 1.0, max_abs: 0.0, mean_abs: 0.0 });
        assert_eq!(error_metrics(&[], &[]).unwrap(), same);
        let m = error_metrics(&[0.0, 0.0], &[0.5, 0.0]).unwrap();
        assert_eq!((m.sqnr_db, m.cosine), (f64::NEG_INFINITY, 0.0));
        assert_eq!(error_metrics(&[0.5, 0.0], &[0.0, 0.0]).unwrap().cosine, 0.0);
        assert_eq!(error_metrics(&[1.0, -2.0], &[1.0, -2.0]).unwrap().sqnr_db, f64::INFINITY);
        assert_eq!(cosine_similarity(&[1.0, 2.0], &[-1.0, -2.0]).unwrap(), -1.0);
    }

    #[test]
    fn nan_poisons_every_figure_and_lengths_must_match() {
        let m = error_metrics(&[1.0, f32::NAN], &[1.0, 2.0]).unwrap();
        assert!(m.sqnr_db.is_nan() && m.cosine.is_nan() && m.max_abs.is_nan() && m.mean_abs.is_nan());
        assert!(matches!(
            sqnr_db(&[1.0], &[1.0, 2.0]),
            Err(SchemeError::LengthMismatch { reference: 1, candidate: 2 })
        ));
        assert!(max_abs_error(&[1.0], &[]).is_err());
        assert_eq!(mean_abs_error(&[1.0], &[3.0]).unwrap(), 2.0);
    }
}
