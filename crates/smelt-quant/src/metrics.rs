//! Error between a tensor and its quantized-then-dequantized version: the per-tensor figures a
//! conversion report shows and validation thresholds test (SQNR, cosine similarity, max and
//! mean absolute error).
//!
//! Every sum is accumulated in f64 over the f32 values converted exactly to f64, left to right,
//! so the figures do not depend on the scheme's own rounding and are reproducible.
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
    let (mut rr, mut cc, mut rc, mut noise, mut abs_sum, mut max_abs) = (0f64, 0f64, 0f64, 0f64, 0f64, 0f64);
    let mut nan = false;
    for (&r, &c) in reference.iter().zip(candidate) {
        let (r, c) = (r as f64, c as f64);
        let d = r - c;
        nan |= d.is_nan();
        rr += r * r;
        cc += c * c;
        rc += r * c;
        noise += d * d;
        abs_sum += d.abs();
        max_abs = max_abs.max(d.abs());
    }
    if nan {
        return Ok(ErrorMetrics {
            sqnr_db: f64::NAN,
            cosine: f64::NAN,
            max_abs: f64::NAN,
            mean_abs: f64::NAN,
        });
    }
    let sqnr_db = if noise == 0.0 {
        f64::INFINITY
    } else if rr == 0.0 {
        f64::NEG_INFINITY
    } else {
        10.0 * (rr / noise).log10()
    };
    let cosine = match (rr == 0.0, cc == 0.0) {
        (true, true) => 1.0,
        (true, false) | (false, true) => 0.0,
        (false, false) => (rc / (rr * cc).sqrt()).clamp(-1.0, 1.0),
    };
    let mean_abs = if reference.is_empty() { 0.0 } else { abs_sum / reference.len() as f64 };
    Ok(ErrorMetrics { sqnr_db, cosine, max_abs, mean_abs })
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
