//! The outer-product int8 kernel of AVX2 (no VNNI) over the pair panels of `int8_packed.rs`:
//! panels of 16 columns, and for every pair of consecutive `k` the 2 signed bytes of each
//! column side by side (32 bytes). `A` comes in tiles of 6 rows whose pairs `(a'[2p],
//! a'[2p+1])` are stored as two i16 (one 32-bit word per row and pair).
//!
//! Per pair: the panel's 32 bytes sign-extended to i16 (two vectors of 8 columns), each of the
//! tile's rows broadcast, and `vpmaddwd` gives every column `a'[2p]·b'[2p] + a'[2p+1]·b'[2p+1]`
//! exactly in i32 (|u8·i8| ≤ 32640), added into 12 accumulators (6 rows × 16 columns). No
//! horizontal sums, and each loaded vector of `B` serves six rows; the dot-product kernel of
//! `int8.rs` needs a widening and a horizontal sum per column instead. Integer sums: every
//! order, blocking and thread count gives the same bits.

use std::arch::x86_64::*;

use crate::dispatch::Isa;
use crate::int8_packed::{Finish, PAIR_PANEL};
use crate::parallel::ColBlock;

/// Rows per tile of `A`.
const TILE: usize = crate::arch::INT8_PAIRS_TILE;
/// Bytes ahead of the pairs being read that a lone tile prefetches.
const AHEAD: usize = 2048;
/// Pairs of `k` per block: a block of the panel (`KB · 32` bytes, 16 KiB) stays in L1 while
/// every tile runs over it.
const KB: usize = 512;

/// See `arch::int8_pairs_panel`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn panel(
    isa: Isa,
    m: usize,
    k2: usize,
    apt: &[u32],
    panel: &[u8],
    next: &[u8],
    w: usize,
    out: &mut [i32],
    ld: usize,
) -> bool {
    if isa != Isa::Avx2 {
        return false;
    }
    check(m, k2, apt, panel, w);
    assert!(m == 0 || (out.len() >= (m - 1) * ld + w && ld >= w));
    // SAFETY: the CPU has AVX2 (`isa` went through `or_scalar`, arch/mod.rs contract);
    // `check` bounds every load below, the assertion above every store.
    unsafe { tiles_avx2(m, k2, apt, panel, next, w, None, out.as_mut_ptr(), ld) };
    true
}

/// See `arch::int8_pairs_panel_scaled`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn panel_scaled(
    isa: Isa,
    m: usize,
    k2: usize,
    apt: &[u32],
    panel: &[u8],
    next: &[u8],
    w: usize,
    fin: &Finish<'_>,
    block: &mut ColBlock<'_, f32>,
    col: usize,
) -> bool {
    if isa != Isa::Avx2 {
        return false;
    }
    // Panics unless `m` rows of `w` columns from `col` lie in the block.
    let out = block.tile_ptr(m, col, w);
    check(m, k2, apt, panel, w);
    assert!(fin.row_c.len() >= m && fin.row_f.len() >= m && fin.col_sums.len() >= w);
    assert!(fin.scale.len() == 1 || fin.scale.len() >= w);
    // SAFETY: as `panel` for the loads; the stores stay in the block's `m × w` tile
    // (`tile_ptr`), writable and, once written, readable (`ColBlock`'s contract). Partial sums
    // are kept there as i32 bits until the last block overwrites them with the f32 results.
    unsafe { tiles_avx2(m, k2, apt, panel, next, w, Some(fin), out.cast(), block.ld()) };
    true
}

fn check(m: usize, k2: usize, apt: &[u32], panel: &[u8], w: usize) {
    assert!(apt.len() >= m.div_ceil(TILE) * TILE * k2);
    assert!(panel.len() >= k2 * PAIR_PANEL * 2 && w <= PAIR_PANEL);
}

/// The tile loop: `k` blocks of [`KB`] pairs, and in each, every tile of `A` over the block of
/// the panel. Without `fin` it stores the sums `D` (i32); with it, the last block stores
/// `f32(D - row_c[i] - row_f[i]·col_sums[j]) · scale[j]` (i32 wrapping, the conversion to
/// nearest, one f32 product: `Finish`'s definition).
///
/// # Safety
/// AVX2 available; `out + r·ld + j` (`r < m`, `j < w`, `ld ≥ w`) valid for writes, and for reads
/// once written; the other bounds as `check` asserts.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
unsafe fn tiles_avx2(
    m: usize,
    k2: usize,
    apt: &[u32],
    panel: &[u8],
    next: &[u8],
    w: usize,
    fin: Option<&Finish<'_>>,
    out: *mut i32,
    ld: usize,
) {
    let mut pf = 0;
    // At least one block, so that `k = 0` still stores its zero sums.
    for blk in 0..k2.div_ceil(KB).max(1) {
        let (p0, p1) = (blk * KB, ((blk + 1) * KB).min(k2));
        for t in 0..m.div_ceil(TILE) {
            let rows = (m - t * TILE).min(TILE);
            // SAFETY (all): the caller's bounds; tile t holds `TILE · k2` words.
            let ap = unsafe { apt.as_ptr().add(t * TILE * k2) };
            let op = unsafe { out.add(t * TILE * ld) };
            // One tile (a few rows: decode) streams the panel from memory itself, prefetching
            // ahead of what it reads; with more, the tiles after the first fetch the next
            // panel while this one is in L1.
            let ahead = m <= TILE;
            let step = Step { ap, bp: panel.as_ptr(), p0, p1, accumulate: p0 > 0, ahead, w, op, ld };
            // The tiles after the first fetch the next panel into L2, a line per pair step.
            let pf_lines = if t > 0 { next.len().saturating_sub(pf).div_ceil(64).min(p1 - p0) } else { 0 };
            let prefetch = Prefetch { at: next.as_ptr().wrapping_add(pf), lines: pf_lines };
            pf += pf_lines * 64;
            let last = p1 == k2;
            unsafe {
                match rows {
                    6 => step.run::<6>(prefetch, fin.filter(|_| last), t * TILE),
                    5 => step.run::<5>(prefetch, fin.filter(|_| last), t * TILE),
                    4 => step.run::<4>(prefetch, fin.filter(|_| last), t * TILE),
                    3 => step.run::<3>(prefetch, fin.filter(|_| last), t * TILE),
                    2 => step.run::<2>(prefetch, fin.filter(|_| last), t * TILE),
                    _ => step.run::<1>(prefetch, fin.filter(|_| last), t * TILE),
                }
            }
        }
    }
}

/// Lines of the next panel to prefetch during one tile's pass.
#[derive(Clone, Copy)]
struct Prefetch {
    at: *const u8,
    lines: usize,
}

/// One tile's pass over pairs `p0..p1`.
struct Step {
    /// The tile's `A` words (`TILE` per pair).
    ap: *const u32,
    /// The panel (32 bytes per pair).
    bp: *const u8,
    p0: usize,
    p1: usize,
    /// Add to the sums stored at `op` (a later block).
    accumulate: bool,
    /// Prefetch the panel [`AHEAD`] bytes ahead of the pairs read.
    ahead: bool,
    w: usize,
    /// The tile's first output row.
    op: *mut i32,
    ld: usize,
}

impl Step {
    /// One pair `p` of the tile's `R` rows into `acc`.
    ///
    /// # Safety
    /// AVX2 available; `p < k2`; `R ≤ TILE`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn pair<const R: usize>(&self, acc: &mut [[__m256i; 2]; R], p: usize) {
        // SAFETY: pair p < k2: 32 bytes of the panel, TILE words of the tile.
        let bp = unsafe { self.bp.add(p * 2 * PAIR_PANEL) };
        let b0 = _mm256_cvtepi8_epi16(unsafe { _mm_loadu_si128(bp.cast()) });
        let b1 = _mm256_cvtepi8_epi16(unsafe { _mm_loadu_si128(bp.add(16).cast()) });
        for (r, acc_r) in acc.iter_mut().enumerate() {
            let av = _mm256_set1_epi32(unsafe { *self.ap.add(p * TILE + r) } as i32);
            acc_r[0] = _mm256_add_epi32(acc_r[0], _mm256_madd_epi16(av, b0));
            acc_r[1] = _mm256_add_epi32(acc_r[1], _mm256_madd_epi16(av, b1));
        }
    }

    /// # Safety
    /// AVX2 available; `R` ≤ the tile's valid rows; the bounds of `tiles_avx2`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run<const R: usize>(&self, prefetch: Prefetch, fin: Option<&Finish<'_>>, row0: usize) {
        let full = self.w == PAIR_PANEL;
        let masks = [super::tail_mask256(self.w.min(8)), super::tail_mask256(self.w.saturating_sub(8))];
        let mut acc = [[_mm256_setzero_si256(); 2]; R];
        if self.accumulate {
            for (r, acc_r) in acc.iter_mut().enumerate() {
                // SAFETY: row r < R of the tile, written by the previous block.
                let o = unsafe { self.op.add(r * self.ld) };
                *acc_r = unsafe {
                    if full {
                        [_mm256_loadu_si256(o.cast()), _mm256_loadu_si256(o.add(8).cast())]
                    } else {
                        [_mm256_maskload_epi32(o, masks[0]), _mm256_maskload_epi32(o.add(8), masks[1])]
                    }
                };
            }
        }
        let pf_end = self.p0 + prefetch.lines;
        for p in self.p0..pf_end {
            // A hint only: never faults, whatever the address.
            _mm_prefetch::<_MM_HINT_T1>(prefetch.at.wrapping_add((p - self.p0) * 64).cast());
            // SAFETY: p < p1 ≤ k2.
            unsafe { self.pair(&mut acc, p) };
        }
        if self.ahead {
            // Two pairs per turn into two sets of sums (added at the end: i32 wrapping, any
            // order is exact), so that a few rows have twice the independent chains.
            let mut acc2 = [[_mm256_setzero_si256(); 2]; R];
            let mut p = pf_end;
            while p + 2 <= self.p1 {
                // A hint only (past the panel it touches nothing): a line per two pairs.
                _mm_prefetch::<_MM_HINT_T0>(self.bp.wrapping_add(p * 2 * PAIR_PANEL + AHEAD).cast());
                // SAFETY: p + 1 < p1 ≤ k2.
                unsafe {
                    self.pair(&mut acc, p);
                    self.pair(&mut acc2, p + 1);
                }
                p += 2;
            }
            if p < self.p1 {
                // SAFETY: p < p1 ≤ k2.
                unsafe { self.pair(&mut acc, p) };
            }
            for (a, b) in acc.iter_mut().zip(&acc2) {
                a[0] = _mm256_add_epi32(a[0], b[0]);
                a[1] = _mm256_add_epi32(a[1], b[1]);
            }
        } else {
            for p in pf_end..self.p1 {
                // SAFETY: p < p1 ≤ k2.
                unsafe { self.pair(&mut acc, p) };
            }
        }
        // The epilogue's per-column vectors (lanes past `w` zero and never stored).
        let cols = fin.map(|f| {
            let mut sb = [0i32; PAIR_PANEL];
            sb[..self.w].copy_from_slice(&f.col_sums[..self.w]);
            let mut sc = [0f32; PAIR_PANEL];
            if f.scale.len() == 1 {
                sc = [f.scale[0]; PAIR_PANEL];
            } else {
                sc[..self.w].copy_from_slice(&f.scale[..self.w]);
            }
            // SAFETY: 16-element arrays.
            unsafe {
                (
                    [_mm256_loadu_si256(sb.as_ptr().cast()), _mm256_loadu_si256(sb.as_ptr().add(8).cast())],
                    [_mm256_loadu_ps(sc.as_ptr()), _mm256_loadu_ps(sc.as_ptr().add(8))],
                )
            }
        });
        for (r, acc_r) in acc.iter().enumerate() {
            // SAFETY: row r < R of the tile, `w` columns.
            let o = unsafe { self.op.add(r * self.ld) };
            let v = match (fin, cols) {
                (Some(f), Some((sb, sc))) => {
                    let i = row0 + r;
                    let (rc, rf) = (_mm256_set1_epi32(f.row_c[i]), _mm256_set1_epi32(f.row_f[i]));
                    std::array::from_fn(|h| {
                        let d =
                            _mm256_sub_epi32(_mm256_sub_epi32(acc_r[h], rc), _mm256_mullo_epi32(rf, sb[h]));
                        _mm256_castps_si256(_mm256_mul_ps(_mm256_cvtepi32_ps(d), sc[h]))
                    })
                }
                _ => *acc_r,
            };
            unsafe {
                if full {
                    _mm256_storeu_si256(o.cast(), v[0]);
                    _mm256_storeu_si256(o.add(8).cast(), v[1]);
                } else {
                    _mm256_maskstore_epi32(o, masks[0], v[0]);
                    _mm256_maskstore_epi32(o.add(8), masks[1], v[1]);
                }
            }
        }
    }
}
