//! Error statistics between a reference and a candidate slice (the figures of a conversion
//! report): per-lane f64 sums of `r²`, `c²`, `r·c`, `(r−c)²`, `|r−c|` and the largest
//! `|r−c|`.
//!
//! Lane `j` of [`ERROR_LANES`] takes elements `8k + j`, in order. Each element is converted
//! exactly to f64, and every lane applies the same operations in the same order at every
//! instruction-set level, so the lanes are bit-identical whatever the CPU. The caller adds the
//! lanes up. `r²`, `c²` and `r·c` of two f32 values are exact in f64 (48 significant bits at
//! most, no overflow or underflow), so the SIMD versions fuse them into their sums
//! (`vfmadd`): the one rounding left is the sum's, as in the reference's product-then-sum.
//! `(r−c)²` is not always exact and stays a rounded product, then a rounded sum.

use crate::dispatch::Isa;

/// How many lanes [`ErrorLanes`] keeps.
pub const ERROR_LANES: usize = 8;

/// The lanes of each sum, before they are added up.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ErrorLanes {
    /// Σ r².
    pub rr: [f64; ERROR_LANES],
    /// Σ c².
    pub cc: [f64; ERROR_LANES],
    /// Σ r·c.
    pub rc: [f64; ERROR_LANES],
    /// Σ (r − c)².
    pub nn: [f64; ERROR_LANES],
    /// Σ |r − c|.
    pub ab: [f64; ERROR_LANES],
    /// max |r − c|, a NaN difference left out (the caller detects NaN from `nn`).
    pub mx: [f64; ERROR_LANES],
}

impl ErrorLanes {
    /// One element into lane `j`: the reference arithmetic every SIMD version reproduces.
    #[inline(always)]
    fn add(&mut self, j: usize, x: f32, y: f32) {
        let (x, y) = (x as f64, y as f64);
        let d = x - y;
        self.rr[j] += x * x;
        self.cc[j] += y * y;
        self.rc[j] += x * y;
        self.nn[j] += d * d;
        self.ab[j] += d.abs();
        // `max(|d|, mx)` as x86's maxpd computes it: a NaN |d| leaves the lane as it was.
        self.mx[j] = if d.abs() > self.mx[j] { d.abs() } else { self.mx[j] };
    }
}

/// The lanes over `reference` and `candidate` zipped (extra elements of the longer one are
/// ignored), at the instruction set [`crate::selected`] chose for float kernels.
pub fn error_lanes(reference: &[f32], candidate: &[f32]) -> ErrorLanes {
    error_lanes_with(crate::selected().float, reference, candidate)
}

/// [`error_lanes`] at a given instruction set (scalar when the CPU lacks it).
pub fn error_lanes_with(isa: Isa, reference: &[f32], candidate: &[f32]) -> ErrorLanes {
    let n = reference.len().min(candidate.len());
    let (r, c) = (&reference[..n], &candidate[..n]);
    // Only the x86-64 arms read it (aarch64 runs the scalar lanes).
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
    let whole = n / ERROR_LANES * ERROR_LANES;
    let mut lanes = ErrorLanes::default();
    let start = match isa.or_scalar() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `or_scalar` checked the CPU has the features.
        Isa::Avx512 | Isa::Avx512Vnni => {
            unsafe { x86::lanes_avx512(&r[..whole], &c[..whole], &mut lanes) };
            whole
        }
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2 | Isa::AvxVnni => {
            unsafe { x86::lanes_avx2(&r[..whole], &c[..whole], &mut lanes) };
            whole
        }
        _ => 0,
    };
    for (k, (&x, &y)) in r[start..].iter().zip(&c[start..]).enumerate() {
        lanes.add(k % ERROR_LANES, x, y);
    }
    lanes
}

/// The lanes of [`ErrorLanes::add`] as SIMD registers: the same conversions, products and sums
/// in the same order per lane, so the same bits.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{ErrorLanes, ERROR_LANES};
    use std::arch::x86_64::*;

    /// # Safety
    /// AVX-512 F; `r` and `c` have the same length, a multiple of eight.
    #[target_feature(enable = "avx512f,fma")]
    pub(super) unsafe fn lanes_avx512(r: &[f32], c: &[f32], lanes: &mut ErrorLanes) {
        let abs_mask = _mm512_set1_epi64(0x7fff_ffff_ffff_ffff);
        let (mut rr, mut cc, mut rc) = (_mm512_setzero_pd(), _mm512_setzero_pd(), _mm512_setzero_pd());
        let (mut nn, mut ab, mut mx) = (_mm512_setzero_pd(), _mm512_setzero_pd(), _mm512_setzero_pd());
        for (x, y) in r.chunks_exact(ERROR_LANES).zip(c.chunks_exact(ERROR_LANES)) {
            // SAFETY: each chunk holds eight f32.
            let x = _mm512_cvtps_pd(unsafe { _mm256_loadu_ps(x.as_ptr()) });
            let y = _mm512_cvtps_pd(unsafe { _mm256_loadu_ps(y.as_ptr()) });
            let d = _mm512_sub_pd(x, y);
            rr = _mm512_fmadd_pd(x, x, rr);
            cc = _mm512_fmadd_pd(y, y, cc);
            rc = _mm512_fmadd_pd(x, y, rc);
            nn = _mm512_add_pd(nn, _mm512_mul_pd(d, d));
            let a = _mm512_castsi512_pd(_mm512_and_si512(_mm512_castpd_si512(d), abs_mask));
            ab = _mm512_add_pd(ab, a);
            // maxpd(a, mx) = a > mx ? a : mx, NaN included.
            mx = _mm512_max_pd(a, mx);
        }
        for (v, out) in [
            (rr, &mut lanes.rr),
            (cc, &mut lanes.cc),
            (rc, &mut lanes.rc),
            (nn, &mut lanes.nn),
            (ab, &mut lanes.ab),
            (mx, &mut lanes.mx),
        ] {
            // SAFETY: `out` holds eight f64.
            unsafe { _mm512_storeu_pd(out.as_mut_ptr(), v) }
        }
    }

    /// As [`lanes_avx512`], lanes 0–3 and 4–7 in two registers.
    ///
    /// # Safety
    /// AVX2; `r` and `c` have the same length, a multiple of eight.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn lanes_avx2(r: &[f32], c: &[f32], lanes: &mut ErrorLanes) {
        let abs_mask = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7fff_ffff_ffff_ffff));
        let z = _mm256_setzero_pd();
        let (mut rr, mut cc, mut rc, mut nn, mut ab, mut mx) =
            ([z; 2], [z; 2], [z; 2], [z; 2], [z; 2], [z; 2]);
        for (x8, y8) in r.chunks_exact(ERROR_LANES).zip(c.chunks_exact(ERROR_LANES)) {
            for h in 0..2 {
                // SAFETY: each chunk holds eight f32.
                let x = _mm256_cvtps_pd(unsafe { _mm_loadu_ps(x8.as_ptr().add(4 * h)) });
                let y = _mm256_cvtps_pd(unsafe { _mm_loadu_ps(y8.as_ptr().add(4 * h)) });
                let d = _mm256_sub_pd(x, y);
                rr[h] = _mm256_fmadd_pd(x, x, rr[h]);
                cc[h] = _mm256_fmadd_pd(y, y, cc[h]);
                rc[h] = _mm256_fmadd_pd(x, y, rc[h]);
                nn[h] = _mm256_add_pd(nn[h], _mm256_mul_pd(d, d));
                let a = _mm256_and_pd(d, abs_mask);
                ab[h] = _mm256_add_pd(ab[h], a);
                mx[h] = _mm256_max_pd(a, mx[h]);
            }
        }
        for (v, out) in [
            (rr, &mut lanes.rr),
            (cc, &mut lanes.cc),
            (rc, &mut lanes.rc),
            (nn, &mut lanes.nn),
            (ab, &mut lanes.ab),
            (mx, &mut lanes.mx),
        ] {
            // SAFETY: `out` holds eight f64.
            unsafe {
                _mm256_storeu_pd(out.as_mut_ptr(), v[0]);
                _mm256_storeu_pd(out.as_mut_ptr().add(4), v[1]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every level the CPU has gives the scalar lanes' bits, on lengths around the lane count,
    /// with subnormals, infinities and NaN among the values.
    #[test]
    fn every_level_gives_the_scalar_bits() {
        let r: Vec<f32> = (0..1027).map(|i| ((i * 7919 % 1013) as f32 - 500.0) * 1.37e-3).collect();
        let mut c: Vec<f32> = r.iter().map(|x| (x * 64.0).round() / 64.0).collect();
        c[17] = f32::MIN_POSITIVE / 3.0;
        c[40] = f32::INFINITY;
        let mut with_nan = c.clone();
        with_nan[101] = f32::NAN;
        for c in [&c, &with_nan] {
            for len in [0, 1, 7, 8, 9, 15, 16, 17, 1027] {
                let want = error_lanes_with(Isa::Scalar, &r[..len], &c[..len]);
                for isa in Isa::ALL {
                    let got = error_lanes_with(isa, &r[..len], &c[..len]);
                    let bits = |l: &ErrorLanes| {
                        [l.rr, l.cc, l.rc, l.nn, l.ab, l.mx]
                            .iter()
                            .flatten()
                            .map(|v| v.to_bits())
                            .collect::<Vec<_>>()
                    };
                    assert_eq!(bits(&got), bits(&want), "{isa} len {len}");
                }
            }
        }
        // The arithmetic itself, on one element: lane 0 holds it, the others stay zero.
        let l = error_lanes(&[3.0], &[1.0]);
        assert_eq!((l.rr[0], l.cc[0], l.rc[0], l.nn[0], l.ab[0], l.mx[0]), (9.0, 1.0, 3.0, 4.0, 2.0, 2.0));
        assert!(l.rr[1..].iter().all(|&v| v == 0.0));
    }
}
