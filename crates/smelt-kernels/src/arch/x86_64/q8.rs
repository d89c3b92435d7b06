//! 8-bit `MatMulNBits` GEMV (`nbits8.rs`) over the ONNX layout as it is: up to 4 activation
//! rows against a few weight rows at a time, each row's codes one contiguous stream of bytes.
//!
//! Per 8 codes of a row: `vpmovzxbd` from memory, `vcvtdq2ps`, the subtraction of the block's
//! zero point (the reference's own `q - zp`: exact for a u8 zero point, the same rounding for
//! a float one) and one FMA per activation row. A block's sum is multiplied by its scale once,
//! onto the row's total, so the scale costs nothing per weight. Each row's chain is split in
//! two (alternate groups of 8) so that the FMAs of one row do not wait on each other; one
//! activation row takes 4 weight rows at a time (8 chains), two take 2, three or four take 1.
//! Every output is the same instruction sequence whatever the number of rows taken together
//! or of activation rows.
//!
//! Rows are short streams (4 KB at `k` = 4096), so prefetching each row a fixed distance
//! ahead leaves the start of every row to the hardware prefetcher, which falls behind: instead
//! the kernel fetches the next rows into L2 while it reads these, a block's share at a time.
//! In-process alternation on Zen 3 (2 threads, 1×4096×4096 and 1×11008×4096, bs 32, zero
//! points, from memory): 1.36–1.46× faster than prefetching each row 4 KB ahead; the gemv
//! bench then gave 12–15 GB/s of weight bytes, 83–104% of its plain read in the same run.

use std::arch::x86_64::*;

use super::{hsum256, transpose8};
use crate::blocked::NR;
use crate::dispatch::Isa;
use crate::nbits8::{NBitsQ8, NBITS8_DEFAULT_ZERO_POINT};

/// See `arch::q8_gemv_rows`.
pub(crate) fn gemv_rows(isa: Isa, w: &NBitsQ8<'_>, m: usize, a: &[f32], out: &mut [f32], ld: usize) -> bool {
    let kp = w.check_gemv(m, a, out, ld);
    if !matches!(isa, Isa::Avx2 | Isa::AvxVnni | Isa::Avx512 | Isa::Avx512Vnni) {
        return false;
    }
    q8_gemv_groups!(rows_avx2, w, m, a, kp, out, ld);
    true
}

/// Rows `j..j + R` of `w` against `M` rows of `a` (stride `kp`), into `out[i·ld + j + r]`.
///
/// # Safety
/// AVX2 + FMA available; `j + R ≤ w.n`; the slices as `NBitsQ8::check_gemv` asserts.
#[target_feature(enable = "avx2,fma")]
unsafe fn rows_avx2<const M: usize, const R: usize, const ZP: bool>(
    w: &NBitsQ8<'_>,
    a: &[f32],
    kp: usize,
    j: usize,
    out: &mut [f32],
    ld: usize,
) {
    let (bs, kb) = (w.block_size, w.k_blocks());
    // SAFETY (pointer arithmetic): rows j + r < n start inside `w.b`.
    let codes: [*const u8; R] = std::array::from_fn(|r| unsafe { w.b.as_ptr().add((j + r) * kp) });
    let zps = w.zero_points.map_or(std::ptr::null(), |z| z.as_ptr());
    let mut tot = [[_mm256_setzero_ps(); R]; M];
    for blk in 0..kb {
        let k0 = blk * bs;
        let z: [__m256; R] = std::array::from_fn(|r| {
            _mm256_set1_ps(if ZP {
                // SAFETY: with ZP, `zps` holds n·kb zero points.
                unsafe { *zps.add((j + r) * kb + blk) }
            } else {
                NBITS8_DEFAULT_ZERO_POINT
            })
        });
        // The next R rows (contiguous after these) are fetched into L2 while these are read:
        // per block the same share of them, R·bs bytes, and their scales and zero points a
        // line at a time. Hints: addresses are computed without dereferencing and may lie
        // past the weight.
        let next = codes[0].wrapping_add(R * kp + R * k0);
        let mut at = 0;
        while at < R * bs {
            _mm_prefetch::<_MM_HINT_T1>(next.wrapping_add(at).cast());
            at += 64;
        }
        if (R * blk).is_multiple_of(16) {
            _mm_prefetch::<_MM_HINT_T1>(w.scales.as_ptr().wrapping_add((j + R) * kb + R * blk).cast());
            if ZP {
                _mm_prefetch::<_MM_HINT_T1>(zps.wrapping_add((j + R) * kb + R * blk).cast());
            }
        }
        let mut p = [[[_mm256_setzero_ps(); 2]; R]; M];
        // Pairs of groups of 8 (bs is a multiple of 16): the first of a pair goes to chain 0,
        // the second to chain 1 (constant indices, so the chains stay in registers).
        for o in 0..bs / 16 {
            for (h, kk) in [k0 + 16 * o, k0 + 16 * o + 8].into_iter().enumerate() {
                // SAFETY: kk + 8 ≤ kp: rows of `a` hold kp floats.
                let av: [__m256; M] =
                    std::array::from_fn(|i| unsafe { _mm256_loadu_ps(a.as_ptr().add(i * kp + kk)) });
                for r in 0..R {
                    // SAFETY: kk + 8 ≤ kp bytes of row j + r.
                    let q = unsafe { _mm256_cvtepu8_epi32(_mm_loadl_epi64(codes[r].add(kk).cast())) };
                    let d = _mm256_sub_ps(_mm256_cvtepi32_ps(q), z[r]);
                    for i in 0..M {
                        p[i][r][h] = _mm256_fmadd_ps(av[i], d, p[i][r][h]);
                    }
                }
            }
        }
        for r in 0..R {
            // SAFETY: (j + r)·kb + blk < n·kb.
            let s = _mm256_set1_ps(unsafe { *w.scales.get_unchecked((j + r) * kb + blk) });
            for i in 0..M {
                tot[i][r] = _mm256_fmadd_ps(_mm256_add_ps(p[i][r][0], p[i][r][1]), s, tot[i][r]);
            }
        }
    }
    for (i, tot_i) in tot.iter().enumerate() {
        for (r, &t) in tot_i.iter().enumerate() {
            out[i * ld + j + r] = hsum256(t);
        }
    }
}

/// See `arch::q8_dequant_panels`.
pub(crate) fn dequant_panels(isa: Isa, w: &NBitsQ8<'_>, panels: &mut [f32]) -> usize {
    let (k, kb, bs) = (w.k, w.k_blocks(), w.block_size);
    assert!(bs >= 8 && bs.is_multiple_of(8));
    assert_eq!(w.b.len(), w.n * kb * bs);
    assert_eq!(w.scales.len(), w.n * kb);
    assert!(w.zero_points.is_none_or(|z| z.len() == w.n * kb));
    assert!(panels.len() >= w.n.div_ceil(NR) * NR * k);
    if !matches!(isa, Isa::Avx2 | Isa::AvxVnni | Isa::Avx512 | Isa::Avx512Vnni) {
        return 0;
    }
    let rows = w.n / 8 * 8;
    // SAFETY: AVX2 + FMA available (arch/mod.rs contract); the assertions above bound every
    // load (rows < n, `k8 ≤ k ≤ kb·bs` codes per row) and store (rows < n, within the panels).
    unsafe { dequant_panels_avx2(w, rows, panels) };
    rows
}

/// Rows `0..rows` (a multiple of 8) of `w`, elements `0..k` rounded down to a multiple of 8,
/// into the `k × 32` panels: eight rows' eight elements `(q - zp)·scale` as eight vectors,
/// transposed, stored as eight panel rows of eight columns.
///
/// # Safety
/// AVX2 + FMA available; the slices as `dequant_panels` asserts.
#[target_feature(enable = "avx2,fma")]
unsafe fn dequant_panels_avx2(w: &NBitsQ8<'_>, rows: usize, panels: &mut [f32]) {
    let (k, kb, bs) = (w.k, w.k_blocks(), w.block_size);
    let k8 = k / 8 * 8;
    for j0 in (0..rows).step_by(8) {
        let panel = &mut panels[(j0 / NR) * NR * k..][..NR * k];
        let c0 = j0 % NR;
        for kk in (0..k8).step_by(8) {
            let blk = kk / bs;
            let v: [__m256; 8] = std::array::from_fn(|r| {
                let j = j0 + r;
                let z = w.zero_points.map_or(NBITS8_DEFAULT_ZERO_POINT, |z| z[j * kb + blk]);
                // SAFETY: kk + 8 ≤ k ≤ kb·bs bytes of row j < n.
                let q = unsafe { _mm_loadl_epi64(w.b.as_ptr().add(j * kb * bs + kk).cast()) };
                let d = _mm256_sub_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(q)), _mm256_set1_ps(z));
                _mm256_mul_ps(d, _mm256_set1_ps(w.scales[j * kb + blk]))
            });
            for (i, t) in transpose8(v).into_iter().enumerate() {
                // SAFETY: (kk + i)·32 + c0 + 8 ≤ 32·k: inside the panel.
                unsafe { _mm256_storeu_ps(panel.as_mut_ptr().add((kk + i) * NR + c0), t) };
            }
        }
    }
}
