//! Per-row reductions whose order is fixed by the definition they reproduce: here the sums of
//! squares of RMSNorm (`crate::row_sums_of_squares_f64`). Eight rows run side by side, one
//! per lane: an 8×8 block of the rows is transposed in registers, so step `j` of every row's
//! sum is one vector operation, and each lane adds its row's terms in `j` order as the
//! scalar reference does (the squares rounded to f32, then added in f64).

use std::arch::x86_64::*;

use crate::dispatch::Isa;

/// Rows done (a multiple of 8, from the first); the caller finishes the rest.
pub(crate) fn sums_of_squares(isa: Isa, x: &[f32], len: usize, sums: &mut [f64]) -> usize {
    if !matches!(isa, Isa::Avx2 | Isa::AvxVnni | Isa::Avx512 | Isa::Avx512Vnni) || len == 0 {
        return 0;
    }
    let rows = sums.len().min(x.len() / len) / 8 * 8;
    // SAFETY: AVX2 and FMA are available on these tiers (arch/mod.rs contract); the kernel
    // reads rows `0..rows` of `len` elements (`rows·len ≤ x.len()`) and writes `sums[..rows]`.
    unsafe { sums_avx2(&x[..rows * len], len, &mut sums[..rows]) };
    rows
}

#[target_feature(enable = "avx2,fma")]
unsafe fn sums_avx2(x: &[f32], len: usize, sums: &mut [f64]) {
    for (block, out) in sums.chunks_exact_mut(8).enumerate() {
        let base = block * 8 * len;
        let (mut lo, mut hi) = (_mm256_setzero_pd(), _mm256_setzero_pd());
        let mut j = 0;
        while j + 8 <= len {
            // SAFETY: rows base/len .. +8, columns j..j + 8 < len: inside `x`.
            let r: [__m256; 8] =
                std::array::from_fn(|i| unsafe { _mm256_loadu_ps(x.as_ptr().add(base + i * len + j)) });
            for c in super::transpose8(r) {
                let sq = _mm256_mul_ps(c, c);
                lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(sq)));
                hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(sq)));
            }
            j += 8;
        }
        // SAFETY: `out` holds 8 sums.
        unsafe {
            _mm256_storeu_pd(out.as_mut_ptr(), lo);
            _mm256_storeu_pd(out.as_mut_ptr().add(4), hi);
        }
        for (i, s) in out.iter_mut().enumerate() {
            for &v in &x[base + i * len + j..base + (i + 1) * len] {
                *s += (v * v) as f64;
            }
        }
    }
}
