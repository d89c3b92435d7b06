//! Error statistics between a reference and a candidate slice (the figures of a conversion
//! report): per-lane f64 sums of `r²`, `c²`, `r·c`, `(r−c)²`, `|r−c|` and the largest
//! `|r−c|`.
//!
//! The slice is cut into blocks of [`BLOCK_ELEMS`] elements, from its start. A block is summed
//! in sixteen f32 lanes (element `16k + j` into lane `j`; every product and every sum rounded
//! on its own, no fused multiply-add, so the scalar reference costs no `fma` call), and its
//! lane sums are then added into the eight f64 lanes (f32 lanes `j` and `j + 8`, in that
//! order, into f64 lane `j`). Sixteen f32 lanes per instruction instead of eight f64 ones,
//! with no conversions, make this about twice as fast as summing every element in f64.
//!
//! The price is f32 rounding inside a block: 64 terms per lane, so each block sum is within
//! about `67 · 2⁻²⁴ ≈ 4e-6` (relative) of its exact value at worst, and much closer in practice
//! (rounding errors of opposite signs cancel, and the f64 total of many blocks averages them).
//! The block is summed again element by element in f64 (products exact, the arithmetic of
//! [`ErrorLanes::add`]) whenever its f32 sums cannot be trusted to that bound: a sum that is not
//! finite (a NaN or infinity among the values, or an overflow) or, where squares of tiny values
//! could have underflowed, every lane of `Σr²` or of `Σc²` below 2⁻⁶⁰, or every lane of
//! `Σ(r−c)²` below 2⁻⁶⁰ while some difference is not zero. (Past 2⁻⁶⁰, the at most 1024
//! underflowed products, each off by less than 2⁻¹⁴⁹, change a sum by less than 2⁻⁷⁹ of it.) Past the last whole group of sixteen, the few elements left take the f64 path too.
//! The largest `|r−c|` is always that of the f32 difference `r − c` (one rounding), whatever
//! path an element takes, so it does not depend on where blocks start.
//!
//! Every instruction-set level runs the same operations in the same order per lane and shares
//! the driver, so the lanes are bit-identical whatever the CPU. The caller adds the lanes up.

use crate::dispatch::Isa;

/// How many lanes [`ErrorLanes`] keeps.
pub const ERROR_LANES: usize = 8;

/// Lanes of a block summed in f32.
const F32_LANES: usize = 16;

/// Elements per block summed in f32 lanes before the sums go into the f64 lanes.
const BLOCK_ELEMS: usize = 64 * F32_LANES;

/// A block whose largest lane of `Σr²`, `Σc²` (or `Σ(r−c)²`, unless no difference is
/// nonzero) is below this is recomputed in f64: squares may have underflowed.
const TINY: f64 = 1.0 / (1u64 << 60) as f64;

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
    /// One element into lane `j` in f64: the exact products of the former arithmetic, for
    /// blocks whose f32 sums cannot be trusted and for the last few elements.
    #[inline(always)]
    fn add(&mut self, j: usize, x: f32, y: f32) {
        let a = (x - y).abs() as f64;
        let (x, y) = (x as f64, y as f64);
        let d = x - y;
        self.rr[j] += x * x;
        self.cc[j] += y * y;
        self.rc[j] += x * y;
        self.nn[j] += d * d;
        self.ab[j] += d.abs();
        // `max(a, mx)` as x86's maxpd computes it: a NaN `a` leaves the lane as it was.
        self.mx[j] = if a > self.mx[j] { a } else { self.mx[j] };
    }

    /// A block's f32 lane sums into the f64 lanes, or `false` (nothing added) when they
    /// cannot be trusted (see the module documentation). Written so that it vectorizes (the
    /// lanes are independent; the checks are maxima and bitwise ands, not ordered sums): it
    /// runs once per block and must stay cheap beside the block itself.
    #[inline(always)]
    fn add_block(&mut self, b: &BlockSums) -> bool {
        let finite = |v: &[f32; F32_LANES]| v.iter().fold(true, |a, x| a & x.is_finite());
        // The largest of sums with no negative term (so +0.0 or more, when finite): the
        // largest bit pattern, an integer maximum that vectorizes (f32::max does not).
        let max =
            |v: &[f32; F32_LANES]| f32::from_bits(v.iter().fold(0u32, |a, x| a.max(x.to_bits()))) as f64;
        let all_finite =
            finite(&b.rr) & finite(&b.cc) & finite(&b.rc) & finite(&b.nn) & finite(&b.ab) & finite(&b.mx);
        // The sums of squares and of |r − c| have no negative terms: one lane at TINY or more
        // puts the block's sum there too.
        if !all_finite || max(&b.rr) < TINY || max(&b.cc) < TINY || (max(&b.nn) < TINY && max(&b.ab) != 0.0) {
            return false;
        }
        let fold = |lanes: &mut [f64; ERROR_LANES], v: &[f32; F32_LANES]| {
            for j in 0..ERROR_LANES {
                lanes[j] += v[j] as f64;
                lanes[j] += v[j + ERROR_LANES] as f64;
            }
        };
        fold(&mut self.rr, &b.rr);
        fold(&mut self.cc, &b.cc);
        fold(&mut self.rc, &b.rc);
        fold(&mut self.nn, &b.nn);
        fold(&mut self.ab, &b.ab);
        for j in 0..ERROR_LANES {
            for m in [b.mx[j] as f64, b.mx[j + ERROR_LANES] as f64] {
                self.mx[j] = if m > self.mx[j] { m } else { self.mx[j] };
            }
        }
        true
    }
}

/// One block's sums in sixteen f32 lanes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct BlockSums {
    rr: [f32; F32_LANES],
    cc: [f32; F32_LANES],
    rc: [f32; F32_LANES],
    nn: [f32; F32_LANES],
    ab: [f32; F32_LANES],
    mx: [f32; F32_LANES],
}

/// The reference arithmetic of a block every SIMD version reproduces. `r` and `c` have the
/// same length, a multiple of sixteen.
fn block_scalar(r: &[f32], c: &[f32]) -> BlockSums {
    let mut s = BlockSums::default();
    for (x16, y16) in r.chunks_exact(F32_LANES).zip(c.chunks_exact(F32_LANES)) {
        for j in 0..F32_LANES {
            let (x, y) = (x16[j], y16[j]);
            let d = x - y;
            s.rr[j] += x * x;
            s.cc[j] += y * y;
            s.rc[j] += x * y;
            s.nn[j] += d * d;
            s.ab[j] += d.abs();
            s.mx[j] = if d.abs() > s.mx[j] { d.abs() } else { s.mx[j] };
        }
    }
    s
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
    match isa.or_scalar() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `or_scalar` checked the CPU has the features.
        Isa::Avx512 | Isa::Avx512Vnni => unsafe { x86::lanes_avx512(r, c) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2 | Isa::AvxVnni => unsafe { x86::lanes_avx2(r, c) },
        _ => lanes_body(r, c, block_scalar),
    }
}

/// The driver every level shares (inlined into each, so that its per-block work is compiled
/// for the same instruction set): blocks through `block`, then into the f64 lanes or, when
/// their f32 sums cannot be trusted, element by element in f64; the last elements in f64.
#[inline(always)]
fn lanes_body(r: &[f32], c: &[f32], block: impl Fn(&[f32], &[f32]) -> BlockSums) -> ErrorLanes {
    let mut lanes = ErrorLanes::default();
    let whole = r.len() / F32_LANES * F32_LANES;
    for (r, c) in r[..whole].chunks(BLOCK_ELEMS).zip(c[..whole].chunks(BLOCK_ELEMS)) {
        if !lanes.add_block(&block(r, c)) {
            for (k, (&x, &y)) in r.iter().zip(c).enumerate() {
                lanes.add(k % ERROR_LANES, x, y);
            }
        }
    }
    for (k, (&x, &y)) in r[whole..].iter().zip(&c[whole..]).enumerate() {
        lanes.add(k % ERROR_LANES, x, y);
    }
    lanes
}

/// [`block_scalar`] as SIMD registers: the same operations in the same order per lane, so
/// the same bits.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{lanes_body, BlockSums, ErrorLanes, F32_LANES};
    use std::arch::x86_64::*;

    /// # Safety
    /// AVX-512 F; `r` and `c` have the same length.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn lanes_avx512(r: &[f32], c: &[f32]) -> ErrorLanes {
        // SAFETY: the caller checked AVX-512 F; the driver hands over whole groups of sixteen.
        lanes_body(r, c, |r, c| unsafe { block_avx512(r, c) })
    }

    /// # Safety
    /// AVX2; `r` and `c` have the same length.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn lanes_avx2(r: &[f32], c: &[f32]) -> ErrorLanes {
        // SAFETY: the caller checked AVX2; the driver hands over whole groups of sixteen.
        lanes_body(r, c, |r, c| unsafe { block_avx2(r, c) })
    }

    /// # Safety
    /// AVX-512 F; `r` and `c` have the same length, a multiple of sixteen.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn block_avx512(r: &[f32], c: &[f32]) -> BlockSums {
        let abs_mask = _mm512_set1_epi32(0x7fff_ffff);
        let z = _mm512_setzero_ps();
        let (mut rr, mut cc, mut rc, mut nn, mut ab, mut mx) = (z, z, z, z, z, z);
        for (x, y) in r.chunks_exact(F32_LANES).zip(c.chunks_exact(F32_LANES)) {
            // SAFETY: each chunk holds sixteen f32.
            let x = unsafe { _mm512_loadu_ps(x.as_ptr()) };
            let y = unsafe { _mm512_loadu_ps(y.as_ptr()) };
            let d = _mm512_sub_ps(x, y);
            rr = _mm512_add_ps(rr, _mm512_mul_ps(x, x));
            cc = _mm512_add_ps(cc, _mm512_mul_ps(y, y));
            rc = _mm512_add_ps(rc, _mm512_mul_ps(x, y));
            nn = _mm512_add_ps(nn, _mm512_mul_ps(d, d));
            let a = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(d), abs_mask));
            ab = _mm512_add_ps(ab, a);
            // maxps(a, mx) = a > mx ? a : mx, NaN included.
            mx = _mm512_max_ps(a, mx);
        }
        let mut s = BlockSums::default();
        for (v, out) in [
            (rr, &mut s.rr),
            (cc, &mut s.cc),
            (rc, &mut s.rc),
            (nn, &mut s.nn),
            (ab, &mut s.ab),
            (mx, &mut s.mx),
        ] {
            // SAFETY: `out` holds sixteen f32.
            unsafe { _mm512_storeu_ps(out.as_mut_ptr(), v) }
        }
        s
    }

    /// As [`block_avx512`], lanes 0–7 and 8–15 in two registers.
    ///
    /// # Safety
    /// AVX2; `r` and `c` have the same length, a multiple of sixteen.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn block_avx2(r: &[f32], c: &[f32]) -> BlockSums {
        let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
        let z = _mm256_setzero_ps();
        let (mut rr, mut cc, mut rc, mut nn, mut ab, mut mx) =
            ([z; 2], [z; 2], [z; 2], [z; 2], [z; 2], [z; 2]);
        for (x16, y16) in r.chunks_exact(F32_LANES).zip(c.chunks_exact(F32_LANES)) {
            for h in 0..2 {
                // SAFETY: each chunk holds sixteen f32.
                let x = unsafe { _mm256_loadu_ps(x16.as_ptr().add(8 * h)) };
                let y = unsafe { _mm256_loadu_ps(y16.as_ptr().add(8 * h)) };
                let d = _mm256_sub_ps(x, y);
                rr[h] = _mm256_add_ps(rr[h], _mm256_mul_ps(x, x));
                cc[h] = _mm256_add_ps(cc[h], _mm256_mul_ps(y, y));
                rc[h] = _mm256_add_ps(rc[h], _mm256_mul_ps(x, y));
                nn[h] = _mm256_add_ps(nn[h], _mm256_mul_ps(d, d));
                let a = _mm256_and_ps(d, abs_mask);
                ab[h] = _mm256_add_ps(ab[h], a);
                mx[h] = _mm256_max_ps(a, mx[h]);
            }
        }
        let mut s = BlockSums::default();
        for (v, out) in [
            (rr, &mut s.rr),
            (cc, &mut s.cc),
            (rc, &mut s.rc),
            (nn, &mut s.nn),
            (ab, &mut s.ab),
            (mx, &mut s.mx),
        ] {
            // SAFETY: `out` holds sixteen f32.
            unsafe {
                _mm256_storeu_ps(out.as_mut_ptr(), v[0]);
                _mm256_storeu_ps(out.as_mut_ptr().add(8), v[1]);
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(l: &ErrorLanes) -> Vec<u64> {
        [l.rr, l.cc, l.rc, l.nn, l.ab, l.mx].iter().flatten().map(|v| v.to_bits()).collect()
    }

    /// Every level the CPU has gives the scalar lanes' bits, on lengths around the lane count
    /// and the block, with subnormals, infinities and NaN among the values (blocks that take
    /// the f64 path), and at every alignment of the slices.
    #[test]
    fn every_level_gives_the_scalar_bits() {
        let r: Vec<f32> = (0..3100).map(|i| ((i * 7919 % 1013) as f32 - 500.0) * 1.37e-3).collect();
        let mut c: Vec<f32> = r.iter().map(|x| (x * 64.0).round() / 64.0).collect();
        c[17] = f32::MIN_POSITIVE / 3.0;
        let mut with_inf = c.clone();
        with_inf[40] = f32::INFINITY;
        let mut with_nan = c.clone();
        with_nan[2101] = f32::NAN;
        for c in [&c, &with_inf, &with_nan] {
            for len in [0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1023, 1024, 1025, 1040, 3050] {
                for off in [0, 1, 5] {
                    let (r, c) = (&r[off..off + len], &c[off..off + len]);
                    let want = error_lanes_with(Isa::Scalar, r, c);
                    for isa in Isa::ALL {
                        assert_eq!(
                            bits(&error_lanes_with(isa, r, c)),
                            bits(&want),
                            "{isa} len {len} off {off}"
                        );
                    }
                }
            }
        }
        // The arithmetic itself, on one element: lane 0 holds it, the others stay zero.
        let l = error_lanes(&[3.0], &[1.0]);
        assert_eq!((l.rr[0], l.cc[0], l.rc[0], l.nn[0], l.ab[0], l.mx[0]), (9.0, 1.0, 3.0, 4.0, 2.0, 2.0));
        assert!(l.rr[1..].iter().all(|&v| v == 0.0));
    }

    /// A block is summed in f32 when its sums are safe, and again in f64 when a value is not
    /// finite, when the values are tiny enough for squares to underflow, or when an overflow
    /// happens; either way the lanes agree with f64 element-by-element sums within the
    /// documented f32 bound.
    #[test]
    fn blocks_fall_back_to_f64_exactly_when_f32_sums_are_unsafe() {
        let r: Vec<f32> = (0..BLOCK_ELEMS).map(|i| ((i * 7919 % 1013) as f32 - 500.0) * 1e-3).collect();
        let c: Vec<f32> = r.iter().map(|x| (x * 64.0).round() / 64.0).collect();
        let block = block_scalar(&r, &c);
        assert!(ErrorLanes::default().add_block(&block), "ordinary weights stay in f32");
        for scale in [1e-25f32, 1e25] {
            let (rs, cs): (Vec<f32>, Vec<f32>) =
                r.iter().zip(&c).map(|(x, y)| (x * scale, y * scale)).unzip();
            assert!(!ErrorLanes::default().add_block(&block_scalar(&rs, &cs)), "scale {scale}");
        }
        let mut c_nan = c.clone();
        c_nan[3] = f32::NAN;
        assert!(!ErrorLanes::default().add_block(&block_scalar(&r, &c_nan)));
        // A block of ones with one value of 2^-60 that differs by 2^-83: that difference
        // squares to zero in f32 (but not in f64), so the block is summed again in f64.
        let mut r = vec![1.0f32; BLOCK_ELEMS];
        r[9] = 2f32.powi(-60);
        let mut c = r.clone();
        c[9] = 2f32.powi(-60) * (1.0 + f32::EPSILON);
        let b = block_scalar(&r, &c);
        assert!(b.nn.iter().all(|&v| v == 0.0) && b.ab.iter().any(|&v| v > 0.0));
        assert!(!ErrorLanes::default().add_block(&b), "an underflowed noise is recomputed");
        assert_eq!(error_lanes(&r, &c).nn.iter().sum::<f64>(), 2f64.powi(-166));
        // A difference of one ulp on ones squares to 2^-46: kept in f32.
        c[9] = 1.0;
        c[10] = 1.0 + f32::EPSILON;
        r[9] = 1.0;
        assert!(ErrorLanes::default().add_block(&block_scalar(&r, &c)));
        assert_eq!(error_lanes(&r, &c).nn.iter().sum::<f64>(), 2f64.powi(-46));
    }
}
