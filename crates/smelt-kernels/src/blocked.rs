//! Cache-blocked f32 GEMM over 32-column `B` panels, for matmuls with several rows of `A`
//! (prefill): [`crate::gemm_f32_packed`] from [`MIN_ROWS`] rows on, and the 4-bit weights
//! ([`crate::Packed4Bit`]) and 8-bit `MatMulNBits` weights ([`crate::NBitsQ8`]) with more
//! than `GEMV_MAX_ROWS` rows, whose panels are dequantized here, `KC` elements at a time, into
//! a buffer that stays in L1 while every row of `A` runs over it (the dequantization is paid
//! once per call, not once per row).
//!
//! Loop nest (per column chunk of a task, as in BLIS): `kc` blocks of [`KC`] along `k`, then
//! 32-column panels (a `KC × 32` panel is 16 KiB: it stays in L1 beside a row tile of `A`), then row tiles of `A` (packed once per call
//! by [`pack_a`] so that a tile's `kk` step is one contiguous run of floats). The micro-kernels
//! (arch) carry each output's FMA chain across `kc` blocks through `C`, so an element is the
//! same chain of in-order FMAs as the unblocked kernel's: blocking changes no bit.

use crate::arch;
use crate::dispatch::Isa;
use crate::nbits8::NBitsQ8;
use crate::packed4::{Tiles4, GROUP, TILE_ROWS};

/// Elements of `k` per block: a multiple of 16 (the 4-bit groups). 128 rather than 256: the
/// 32 KiB panel of 256 missed L1 beside the `A` tile (single-thread `gemm_f32_packed`
/// 512×1024×1024 went from 65 to 113-123 GFLOP/s, `--gemm-only` of the gemv bench).
pub(crate) const KC: usize = 128;
/// Columns per panel.
pub(crate) const NR: usize = 32;
/// From this many rows of `A` on, [`crate::gemm_f32_packed`] runs the blocked kernels.
pub(crate) const MIN_ROWS: usize = 8;

/// From this many rows on, [`crate::gemm_f32`], [`crate::gemm_f32_bt`] and
/// [`crate::gemm_f32_packed`] may compute a row with other arithmetic than with fewer rows
/// (the blocked kernels' in-order FMA chain instead of the dot-product kernels' lanes). On
/// either side of it a row's bits do not depend on the number of rows: stacking the rows of
/// several products against the same `B` into one call keeps every bit as long as each
/// product and the stack are on the same side.
pub const GEMM_ROWS_REGIME: usize = MIN_ROWS;

/// `A` (`m×k`) packed in tiles of `mr` rows for the micro-kernels: tile `t` holds
/// `[kk][r]` = `A[t·mr + r, kk]`, rows past `m` zero. Whole tiles go through `isa`'s
/// transposing copy where it has one (`arch::pack_a_tile`, a leading run of `kk`); the rest
/// element by element.
pub(crate) fn pack_a(isa: Isa, m: usize, k: usize, a: &[f32], mr: usize) -> Vec<f32> {
    let tiles = m.div_ceil(mr);
    let mut out = vec![0.0f32; tiles * mr * k];
    for (t, tile) in out.chunks_mut((mr * k).max(1)).enumerate().take(tiles) {
        let rows = mr.min(m - t * mr);
        let src = &a[t * mr * k..(t * mr + rows) * k];
        let done = if rows == mr { arch::pack_a_tile(isa, mr, k, src, tile) } else { 0 };
        for r in 0..rows {
            for (kk, &v) in src[r * k..(r + 1) * k].iter().enumerate().skip(done) {
                tile[kk * mr + r] = v;
            }
        }
    }
    out
}

/// `A` packed for the blocked kernels of `isa`, or `None` when `isa` has none.
pub(crate) fn packed_a(isa: Isa, m: usize, k: usize, a: &[f32]) -> Option<Vec<f32>> {
    arch::blocked_row_tile(isa).map(|mr| pack_a(isa, m, k, a, mr))
}

/// Where the panels of `B` come from.
#[derive(Clone, Copy)]
pub(crate) enum Panels<'a> {
    /// `k × 32` panels, contiguous (a [`crate::PackedF32`]'s, from the chunk's first column).
    F32(&'a [f32]),
    /// Whole 4-bit tiles from the chunk's first column, dequantized panel by panel.
    Q4(&'a Tiles4<'a>),
    /// An 8-bit `MatMulNBits` weight whose rows are the chunk's columns, dequantized panel by
    /// panel.
    Q8(&'a NBitsQ8<'a>),
}

/// `width` columns of `C = A·B` into `out` (row stride `ld`) with `A` packed by [`packed_a`]
/// for `isa` (which has blocked kernels; 4-bit panels are dequantized portably where `isa` has
/// no SIMD dequantization). Returns `false` if a kernel is missing.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_cols(
    isa: Isa,
    m: usize,
    k: usize,
    pa: &[f32],
    b: Panels<'_>,
    width: usize,
    out: &mut [f32],
    ld: usize,
) -> bool {
    let panels = width.div_ceil(NR);
    let mut buf = match b {
        Panels::Q4(_) | Panels::Q8(_) => vec![0.0f32; KC * NR],
        Panels::F32(_) => Vec::new(),
    };
    for kc0 in (0..k).step_by(KC) {
        let kc = KC.min(k - kc0);
        for p in 0..panels {
            let w = NR.min(width - p * NR);
            let panel: &[f32] = match b {
                Panels::F32(all) => &all[(p * k + kc0) * NR..(p * k + kc0 + kc) * NR],
                Panels::Q4(t) => {
                    let tile0 = p * NR / TILE_ROWS;
                    if !arch::q4_dequant_panel(isa, t, tile0, kc0, kc, &mut buf) {
                        q4_dequant_panel_portable(t, tile0, kc0, kc, &mut buf);
                    }
                    &buf[..kc * NR]
                }
                Panels::Q8(w) => {
                    if !arch::q8_dequant_panel(isa, w, p * NR, kc0, kc, &mut buf) {
                        q8_dequant_panel_portable(w, p * NR, kc0, kc, &mut buf);
                    }
                    &buf[..kc * NR]
                }
            };
            // The panel after this one, for the kernel to prefetch: the next 32 columns of
            // this `k` block, or the first of the next block.
            let next: &[f32] = match b {
                Panels::F32(all) if p + 1 < panels => {
                    &all[((p + 1) * k + kc0) * NR..((p + 1) * k + kc0 + kc) * NR]
                }
                Panels::F32(all) if kc0 + KC < k => {
                    &all[(kc0 + KC) * NR..(kc0 + KC + KC.min(k - kc0 - KC)) * NR]
                }
                Panels::Q4(t) => {
                    // The 4-bit words and scales the next panel's dequantization reads come
                    // from memory (a model's weights do not stay cached between runs): they
                    // are fetched while this panel's kernel runs.
                    if p + 1 < panels {
                        prefetch_q4(t, (p + 1) * NR / TILE_ROWS, kc0, kc);
                    } else if kc0 + KC < k {
                        prefetch_q4(t, 0, kc0 + KC, KC.min(k - kc0 - KC));
                    }
                    &[]
                }
                Panels::Q8(w) => {
                    // As the 4-bit codes: the next panel's codes are 32 runs of `kc` bytes a
                    // row (4 KB) apart, which the hardware prefetchers do not follow. Without
                    // this the panel dequantization took 1.33–1.40× the time (perf samples,
                    // 16×4096×4096, one thread, weights from memory).
                    if p + 1 < panels {
                        prefetch_q8(w, (p + 1) * NR, kc0, kc);
                    } else if kc0 + KC < k {
                        prefetch_q8(w, 0, kc0 + KC, KC.min(k - kc0 - KC));
                    }
                    &[]
                }
                _ => &[],
            };
            if !arch::blocked_panel(isa, m, k, kc0, kc, pa, panel, next, w, &mut out[p * NR..], ld) {
                return false;
            }
        }
    }
    true
}

/// Prefetches (into L2) the code words, scales and zero points that dequantizing the panel
/// of tiles `tile0..tile0 + 8`, elements `kc0..kc0 + kc`, reads.
fn prefetch_q4(t: &Tiles4<'_>, tile0: usize, kc0: usize, kc: usize) {
    let groups = t.block_size / GROUP;
    let (g0, g1) = (kc0 / GROUP, (kc0 + kc).div_ceil(GROUP));
    let (b0, b1) = (g0 / groups, (g1 - 1) / groups + 1);
    for tile in tile0..(tile0 + NR / TILE_ROWS).min(t.tiles) {
        let words = tile * t.blocks * groups;
        arch::prefetch_l2(&t.codes[(words + g0) * TILE_ROWS..(words + g1) * TILE_ROWS]);
        arch::prefetch_l2(&t.scales[(tile * t.blocks + b0) * TILE_ROWS..(tile * t.blocks + b1) * TILE_ROWS]);
        if let Some(z) = t.zero_points {
            arch::prefetch_l2(&z[tile * t.blocks + b0..tile * t.blocks + b1]);
        }
    }
}

/// Prefetches (into L2) the codes, scales and zero points that dequantizing rows
/// `j0..j0 + 32` of `w`, elements `kc0..kc0 + kc`, reads.
fn prefetch_q8(w: &NBitsQ8<'_>, j0: usize, kc0: usize, kc: usize) {
    let (bs, kb, rb) = (w.block_size, w.k_blocks(), w.row_bytes());
    let (b0, b1) = (kc0 / bs, (kc0 + kc).div_ceil(bs));
    for j in j0..(j0 + NR).min(w.n) {
        arch::prefetch_l2(&w.b[j * rb + kc0..j * rb + kc0 + kc]);
        arch::prefetch_l2(&w.scales[j * kb + b0..j * kb + b1]);
        if let Some(z) = w.zero_points {
            arch::prefetch_l2(&z[j * kb + b0..j * kb + b1]);
        }
    }
}

/// [`arch::q8_dequant_panel`] for an `isa` without a SIMD one: each row's elements
/// `kc0..kc0 + kc` by `NBitsQ8::dequantize_part` (zeros for rows past `w.n`), then scattered
/// into the panel's column.
fn q8_dequant_panel_portable(w: &NBitsQ8<'_>, j0: usize, kc0: usize, kc: usize, buf: &mut [f32]) {
    let mut part = [0.0f32; KC];
    for c in 0..NR {
        let part = &mut part[..kc];
        if j0 + c < w.n {
            w.dequantize_part(j0 + c, kc0, part);
        } else {
            part.fill(0.0);
        }
        for (v, &x) in buf[c..].iter_mut().step_by(NR).zip(part.iter()) {
            *v = x;
        }
    }
}

/// [`arch::q4_dequant_panel`] for an `isa` without a SIMD one (aarch64): the same values,
/// `TABLE[q]·scale` (zeros for rows past the last tile), element by element.
fn q4_dequant_panel_portable(t: &Tiles4<'_>, tile0: usize, kc0: usize, kc: usize, buf: &mut [f32]) {
    let groups = t.block_size / GROUP;
    let g1 = (kc0 + kc).div_ceil(GROUP);
    for c in 0..NR {
        let (tile, r) = (tile0 + c / TILE_ROWS, c % TILE_ROWS);
        for g in kc0 / GROUP..g1 {
            let row0 = g * GROUP - kc0;
            let cells = buf[row0 * NR + c..].iter_mut().step_by(NR).take(GROUP);
            if tile >= t.tiles {
                cells.for_each(|v| *v = 0.0);
                continue;
            }
            let (blk, gi) = (g / groups, g % groups);
            let table = t.table(tile, blk, r);
            let scale = t.scales[(tile * t.blocks + blk) * TILE_ROWS + r];
            let word = t.codes[((tile * t.blocks + blk) * groups + gi) * TILE_ROWS + r];
            for (e, v) in cells.enumerate() {
                let nibble = if e % 2 == 0 { e / 2 } else { 8 + e / 2 };
                *v = table[((word >> (4 * nibble)) & 0xF) as usize] * scale;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each 8-bit panel (the arch kernel on every tier this CPU has, and the portable one) is
    /// `NBitsQ8::dequantize_part`'s values bit for bit, zeros past the last row: every panel
    /// and `k` block of weights whose `n` is no multiple of 8 or 32, whose `k` is no multiple
    /// of 8, of the block or of `KC` (blocks straddling `KC` boundaries, a partial last
    /// block), with and without zero points.
    #[test]
    fn q8_panels_are_the_scalar_dequantization_bit_for_bit() {
        let mut state = 0x1234_5678_9abc_def1u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let isas: Vec<Isa> = Isa::ALL.into_iter().filter(|i| *i != Isa::Scalar && i.is_available()).collect();
        let mut arch_ran = false;
        for bs in [16usize, 32, 64, 128, 256] {
            for k in [1usize, 7, 8, 9, 15, 16, 17, 100, 127, 128, 129, 255, 256, 257, 300, 390] {
                for n in [1usize, 5, 8, 9, 31, 32, 33, 40, 64, 70] {
                    for zp in [false, true] {
                        let kb = k.div_ceil(bs);
                        let b: Vec<u8> = (0..n * kb * bs).map(|_| next() as u8).collect();
                        let scales: Vec<f32> =
                            (0..n * kb).map(|_| (next() % 1000) as f32 * 1e-4 + 1e-3).collect();
                        let zps: Vec<f32> = (0..n * kb).map(|_| (next() % 256) as f32 + 0.25).collect();
                        let w = NBitsQ8 {
                            n,
                            k,
                            block_size: bs,
                            b: &b,
                            scales: &scales,
                            zero_points: zp.then_some(&zps[..]),
                        };
                        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                        let mut row = vec![0.0f32; k];
                        for j0 in (0..n).step_by(NR) {
                            for kc0 in (0..k).step_by(KC) {
                                let kc = KC.min(k - kc0);
                                let mut want = vec![0.0f32; kc * NR];
                                for c in 0..NR.min(n - j0) {
                                    w.dequantize_row(j0 + c, &mut row);
                                    for e in 0..kc {
                                        want[e * NR + c] = row[kc0 + e];
                                    }
                                }
                                let what = format!("n={n} k={k} bs={bs} zp={zp} j0={j0} kc0={kc0}");
                                let mut got = vec![f32::NAN; KC * NR];
                                q8_dequant_panel_portable(&w, j0, kc0, kc, &mut got);
                                assert_eq!(bits(&got[..kc * NR]), bits(&want), "portable {what}");
                                for &isa in &isas {
                                    // Only as many rows as the kernels' contract allows them
                                    // to write (`kc` rounded up to 8).
                                    let mut got = vec![f32::NAN; kc.next_multiple_of(8) * NR];
                                    if arch::q8_dequant_panel(isa, &w, j0, kc0, kc, &mut got) {
                                        arch_ran = true;
                                        assert_eq!(bits(&got[..kc * NR]), bits(&want), "{isa} {what}");
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        if !arch_ran {
            eprintln!("q8_panels: no SIMD panel kernel on this CPU ({isas:?}); portable only");
        }
    }

    #[test]
    fn pack_a_equals_its_definition_on_every_tier() {
        // Whole and partial tiles, `k` below, at and around the 8-column copies.
        let mut isas = vec![Isa::Scalar, crate::dispatch::selected().float];
        isas.dedup();
        for isa in isas {
            for m in [1usize, 7, 8, 9, 16, 17, 40] {
                for k in [1usize, 7, 8, 9, 64, 100, 130] {
                    for mr in [6usize, 8] {
                        let a: Vec<f32> = (0..m * k).map(|i| i as f32 * 0.5 - 3.0).collect();
                        let mut want = vec![0.0f32; m.div_ceil(mr) * mr * k];
                        for i in 0..m {
                            for kk in 0..k {
                                want[(i / mr) * mr * k + kk * mr + i % mr] = a[i * k + kk];
                            }
                        }
                        assert_eq!(pack_a(isa, m, k, &a, mr), want, "{isa} m={m} k={k} mr={mr}");
                    }
                }
            }
        }
    }
}
