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
//!
//! With more activation rows the blocked GEMM (`blocked.rs`) asks for its `B` panels here,
//! 32 weight rows × up to `KC` elements at a time (`dequant_panel`): eight rows' codes
//! transposed as bytes, then each panel row `(q - zp)·scale` with the rows' zero points and
//! scales as vectors, the scalar reference's values bit for bit.

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

/// See `arch::q8_dequant_panel`.
pub(crate) fn dequant_panel(
    isa: Isa,
    w: &NBitsQ8<'_>,
    j0: usize,
    kc0: usize,
    kc: usize,
    buf: &mut [f32],
) -> bool {
    let (kb, bs) = (w.k_blocks(), w.block_size);
    let end = (kc0 + kc).next_multiple_of(8);
    assert!(bs >= 8 && bs.is_multiple_of(8) && kc0.is_multiple_of(8) && kc > 0);
    assert!(end <= kb * bs && buf.len() >= (end - kc0) * NR);
    assert_eq!(w.b.len(), w.n * kb * bs);
    assert_eq!(w.scales.len(), w.n * kb);
    assert!(w.zero_points.is_none_or(|z| z.len() == w.n * kb));
    // The kernel reads the zero points and scales of up to 8 blocks at once.
    if !matches!(isa, Isa::Avx2 | Isa::AvxVnni | Isa::Avx512 | Isa::Avx512Vnni)
        || (end - 1) / bs - kc0 / bs >= 8
    {
        return false;
    }
    // SAFETY: AVX2 + FMA available (arch/mod.rs contract); the assertions bound every load
    // (rows < n, codes `< end ≤ kb·bs` of a row, blocks `< kb`) and store (`buf` rows
    // `< end - kc0`); `kc0..end` touches at most 8 blocks.
    unsafe { dequant_panel_avx2(w, j0, kc0, end, buf.as_mut_ptr()) };
    true
}

/// Rows `j0..j0 + 32` of `w`, elements `kc0..end` (multiples of 8), into the `[kk][32]`
/// panel at `dst`, eight rows (columns) at a time. Per 8 elements the eight rows' 8 code bytes
/// are transposed as bytes (three rounds of `punpckl/h` on 128-bit registers: the codes of
/// element `e` of the eight rows end up side by side), then each panel row is those 8 bytes
/// widened and converted (`vpmovzxbd`, `vcvtdq2ps`) and `(q - zp)·scale` with the eight rows'
/// zero points and scales as vectors (one lane per row: the scalar reference's two
/// roundings). An 8-element step never straddles a block (`bs` and `kc0` are multiples of 8).
/// The zero points and scales of the (at most 8) blocks are read up front, a row's run of
/// them per load, and transposed into one vector per block. Against the whole-chunk kernel's
/// way (the converted codes transposed as floats, each block's zero points and scales loaded
/// one by one) restricted to the panel: 0.88–0.95× its time in perf samples with the weight
/// in cache (16×1024×1024, one thread), the same within noise from memory.
///
/// # Safety
/// AVX2 + FMA available; the bounds `dequant_panel` asserts; `kc0..end` touches at most 8
/// blocks.
#[target_feature(enable = "avx2,fma")]
unsafe fn dequant_panel_avx2(w: &NBitsQ8<'_>, j0: usize, kc0: usize, end: usize, dst: *mut f32) {
    for c0 in (0..NR).step_by(8) {
        let rows = w.n.saturating_sub(j0 + c0).min(8);
        // SAFETY: the caller's bounds; rows past `n` are not read.
        unsafe {
            if rows == 8 {
                dequant8_avx2::<true>(w, j0 + c0, 8, kc0, end, dst.add(c0));
            } else {
                dequant8_avx2::<false>(w, j0 + c0, rows, kc0, end, dst.add(c0));
            }
        }
    }
}

/// Rows `j..j + rows` (`rows` ≤ 8; all 8 with `FULL`) of `w`, elements `kc0..end`, into 8
/// columns of the panel at `dst` (row stride 32); the columns of rows past `rows` get zeros
/// (zero codes, zero point and scale).
///
/// # Safety
/// AVX2 + FMA available; rows `j..j + rows` exist; `kc0..end` as `dequant_panel_avx2`
/// requires; `dst` holds `end - kc0` rows of the panel.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn dequant8_avx2<const FULL: bool>(
    w: &NBitsQ8<'_>,
    j: usize,
    rows: usize,
    kc0: usize,
    end: usize,
    dst: *mut f32,
) {
    let (bs, kb, rb) = (w.block_size, w.k_blocks(), w.row_bytes());
    let b0 = kc0 / bs;
    let lanes = super::tail_mask256((end - 1) / bs - b0 + 1);
    // Blocks `b0..` of each row's `per_block` values (lanes past the blocks, and rows past
    // `rows`, zero), transposed: `out[b]` holds block `b0 + b` of the eight rows.
    let by_block = |per_block: &[f32]| {
        transpose8(std::array::from_fn(|r| {
            if FULL || r < rows {
                // SAFETY: blocks b0.. of the lanes read are < kb, of row j + r < n.
                unsafe { _mm256_maskload_ps(per_block.as_ptr().add((j + r) * kb + b0), lanes) }
            } else {
                _mm256_setzero_ps()
            }
        }))
    };
    let scales = by_block(w.scales);
    let zps = match w.zero_points {
        Some(z) => by_block(z),
        None => {
            let valid = super::tail_mask256(rows);
            [_mm256_and_ps(_mm256_set1_ps(NBITS8_DEFAULT_ZERO_POINT), _mm256_castsi256_ps(valid)); 8]
        }
    };
    let codes = w.b.as_ptr().wrapping_add(j * rb);
    for kk in (kc0..end).step_by(8) {
        let (z, s) = (zps[kk / bs - b0], scales[kk / bs - b0]);
        let q: [__m128i; 8] = std::array::from_fn(|r| {
            if FULL || r < rows {
                // SAFETY: kk + 8 ≤ end ≤ kb·bs bytes of row j + r < n.
                unsafe { _mm_loadl_epi64(codes.add(r * rb + kk).cast()) }
            } else {
                _mm_setzero_si128()
            }
        });
        // The bytes of pairs of rows interleaved (`p`), then of pairs of those (`h`: one
        // element of four rows per 4 bytes), then of the two quads: `e[i]` holds elements
        // 2i and 2i + 1 of the eight rows, 8 bytes each.
        let p = [
            _mm_unpacklo_epi8(q[0], q[1]),
            _mm_unpacklo_epi8(q[2], q[3]),
            _mm_unpacklo_epi8(q[4], q[5]),
            _mm_unpacklo_epi8(q[6], q[7]),
        ];
        let h = [
            _mm_unpacklo_epi16(p[0], p[1]),
            _mm_unpackhi_epi16(p[0], p[1]),
            _mm_unpacklo_epi16(p[2], p[3]),
            _mm_unpackhi_epi16(p[2], p[3]),
        ];
        let e = [
            _mm_unpacklo_epi32(h[0], h[2]),
            _mm_unpackhi_epi32(h[0], h[2]),
            _mm_unpacklo_epi32(h[1], h[3]),
            _mm_unpackhi_epi32(h[1], h[3]),
        ];
        for (i, &pair) in e.iter().enumerate() {
            for (o, b) in [pair, _mm_unpackhi_epi64(pair, pair)].into_iter().enumerate() {
                let v = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(b));
                let v = _mm256_mul_ps(_mm256_sub_ps(v, z), s);
                // SAFETY: row kk - kc0 + 2i + o < end - kc0 of the panel, 8 columns.
                unsafe { _mm256_storeu_ps(dst.add((kk - kc0 + 2 * i + o) * NR), v) };
            }
        }
    }
}
