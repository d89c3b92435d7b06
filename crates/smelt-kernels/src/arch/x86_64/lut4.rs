//! 4-bit dequantize-GEMV through a 16-entry table (`vpermps`).
//!
//! Per block, codes index a table of `q - zp` (MatMulNBits; one of 16 precomputed tables, by
//! zero point) or of `NF4[q]` (MatMulBnb4): `vpermps` reads the low 4 bits of each i32 lane,
//! AVX2 selects between two 8-entry halves on bit 3. Each block's products are summed in a
//! block accumulator, then `total += block · scale` (one FMA per block), so the bound is the
//! module's: `|y - y_ref| ≤ 2·k·ε·Σ|a||w|`. `A` arrives permuted
//! (`arch::permute_nibble_lanes`) so that low-nibble and high-nibble codes each meet their
//! activations in plain vector loads.

use std::arch::x86_64::*;

use super::hsum256;
use crate::arch::Lut4Weights;
use crate::bnb4::NF4_CODE;
use crate::dispatch::Isa;

/// `ZP_TABLES[z][q] = q - z` as f32.
static ZP_TABLES: [[f32; 16]; 16] = {
    let mut t = [[0.0f32; 16]; 16];
    let mut z = 0;
    while z < 16 {
        let mut q = 0;
        while q < 16 {
            t[z][q] = (q as i32 - z as i32) as f32;
            q += 1;
        }
        z += 1;
    }
    t
};

/// The table a block of row params uses: NF4's code, or `q - zp`.
#[inline]
fn table_for(nf4: bool, zps: Option<&[u8]>, blk: usize) -> &'static [f32; 16] {
    if nf4 {
        &NF4_CODE
    } else {
        let z = match zps {
            Some(z) => (z[blk / 2] >> (4 * (blk % 2))) & 0xF,
            None => 8,
        };
        &ZP_TABLES[z as usize]
    }
}

/// See `arch::lut4_gemv_cols`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemv_cols(
    isa: Isa,
    w: &Lut4Weights<'_>,
    m: usize,
    a_perm: &[f32],
    j0: usize,
    j1: usize,
    out: &mut [f32],
    ld: usize,
) -> bool {
    let bs = w.block_size();
    let nb = w.blocks_per_row();
    let kp = nb * bs;
    let width = j1 - j0;
    assert!(bs >= 16 && bs.is_power_of_two() && a_perm.len() >= m * kp);
    assert!(m == 0 || (out.len() >= (m - 1) * ld + width && ld >= width));
    let g32 = bs >= 32;
    for i in 0..m {
        let ap = &a_perm[i * kp..(i + 1) * kp];
        let o = &mut out[i * ld..i * ld + width];
        let mut j = j0;
        while j < j1 {
            let nc = if j1 - j >= 4 { 4 } else { 1 };
            let tile = Tile::new(w, j, nc);
            let dst = &mut o[j - j0..j - j0 + nc];
            // SAFETY: `isa` is available (arch/mod.rs contract); `Tile::new` checked that its
            // rows hold kp/2 bytes and nb scales, and `ap` holds kp floats (asserted above):
            // these bound every load in the tiles.
            unsafe {
                match (isa, nc, g32) {
                    (Isa::Avx512 | Isa::Avx512Vnni, 4, true) => tile_avx512::<4, true>(&tile, ap, bs, dst),
                    (Isa::Avx512 | Isa::Avx512Vnni, 4, false) => tile_avx512::<4, false>(&tile, ap, bs, dst),
                    (Isa::Avx512 | Isa::Avx512Vnni, _, true) => tile_avx512::<1, true>(&tile, ap, bs, dst),
                    (Isa::Avx512 | Isa::Avx512Vnni, _, false) => tile_avx512::<1, false>(&tile, ap, bs, dst),
                    (Isa::Avx2 | Isa::AvxVnni, 4, true) => tile_avx2::<4, true>(&tile, ap, bs, dst),
                    (Isa::Avx2 | Isa::AvxVnni, 4, false) => tile_avx2::<4, false>(&tile, ap, bs, dst),
                    (Isa::Avx2 | Isa::AvxVnni, _, true) => tile_avx2::<1, true>(&tile, ap, bs, dst),
                    (Isa::Avx2 | Isa::AvxVnni, _, false) => tile_avx2::<1, false>(&tile, ap, bs, dst),
                    (Isa::Scalar, _, _) => return false,
                }
            }
            j += nc;
        }
    }
    true
}

/// Up to four weight rows with their per-block parameters, bounds checked once.
struct Tile<'a> {
    nf4: bool,
    blocks: usize,
    rows: [&'a [u8]; 4],
    scales: [&'a [f32]; 4],
    zps: [Option<&'a [u8]>; 4],
}

impl<'a> Tile<'a> {
    fn new(w: &'a Lut4Weights<'a>, j: usize, nc: usize) -> Self {
        let (blocks, bs) = (w.blocks_per_row(), w.block_size());
        let mut t = Tile { nf4: w.is_nf4(), blocks, rows: [&[]; 4], scales: [&[]; 4], zps: [None; 4] };
        for c in 0..nc {
            t.rows[c] = w.row(j + c);
            (t.scales[c], t.zps[c]) = w.row_params(j + c);
            assert!(t.rows[c].len() == blocks * bs / 2 && t.scales[c].len() == blocks);
            assert!(t.zps[c].is_none_or(|z| z.len() == blocks.div_ceil(2)));
        }
        t
    }
}

/// # Safety
/// AVX-512 F/BW/VL available; the tile's `NC` rows hold `blocks·bs/2` bytes, `ap` holds
/// `blocks·bs` floats.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn tile_avx512<const NC: usize, const G32: bool>(
    t: &Tile<'_>,
    ap: &[f32],
    bs: usize,
    dst: &mut [f32],
) {
    let mut total = [_mm512_setzero_ps(); NC];
    for blk in 0..t.blocks {
        let mut lut = [_mm512_setzero_ps(); NC];
        for (c, l) in lut.iter_mut().enumerate() {
            // SAFETY: every table has 16 floats.
            *l = unsafe { _mm512_loadu_ps(table_for(t.nf4, t.zps[c], blk).as_ptr()) };
        }
        let mut acc = [_mm512_setzero_ps(); NC];
        let base = blk * bs;
        if G32 {
            let mut g = base;
            while g < base + bs {
                // SAFETY: g + 32 ≤ blocks·bs = ap.len() (bs is a multiple of 32 here).
                let (a_lo, a_hi) = unsafe {
                    (_mm512_loadu_ps(ap.as_ptr().add(g)), _mm512_loadu_ps(ap.as_ptr().add(g + 16)))
                };
                for c in 0..NC {
                    // SAFETY: bytes g/2 .. g/2 + 16 ≤ blocks·bs/2 = row length.
                    let bytes = unsafe { _mm_loadu_si128(t.rows[c].as_ptr().add(g / 2).cast()) };
                    let idx = _mm512_cvtepu8_epi32(bytes);
                    acc[c] = _mm512_fmadd_ps(a_lo, _mm512_permutexvar_ps(idx, lut[c]), acc[c]);
                    acc[c] = _mm512_fmadd_ps(
                        a_hi,
                        _mm512_permutexvar_ps(_mm512_srli_epi32::<4>(idx), lut[c]),
                        acc[c],
                    );
                }
                g += 32;
            }
        } else {
            // bs == 16: one group of 8 bytes.
            // SAFETY: base + 16 ≤ ap.len().
            let av = unsafe { _mm512_loadu_ps(ap.as_ptr().add(base)) };
            for c in 0..NC {
                // SAFETY: bytes base/2 .. base/2 + 8 ≤ row length.
                let v = unsafe { _mm_loadl_epi64(t.rows[c].as_ptr().add(base / 2).cast()) };
                let x = _mm_unpacklo_epi64(v, _mm_srli_epi16::<4>(v));
                acc[c] = _mm512_fmadd_ps(av, _mm512_permutexvar_ps(_mm512_cvtepu8_epi32(x), lut[c]), acc[c]);
            }
        }
        for c in 0..NC {
            total[c] = _mm512_fmadd_ps(acc[c], _mm512_set1_ps(t.scales[c][blk]), total[c]);
        }
    }
    for c in 0..NC {
        dst[c] = _mm512_reduce_add_ps(total[c]);
    }
}

/// Table lookup of 8 codes (low 4 bits of each lane) in a 16-entry table held as two halves.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn lookup16(idx: __m256i, lo: __m256, hi: __m256) -> __m256 {
    let from_lo = _mm256_permutevar8x32_ps(lo, idx);
    let from_hi = _mm256_permutevar8x32_ps(hi, idx);
    _mm256_blendv_ps(from_lo, from_hi, _mm256_castsi256_ps(_mm256_slli_epi32::<28>(idx)))
}

/// # Safety
/// AVX2 + FMA available; the tile's `NC` rows hold `blocks·bs/2` bytes, `ap` holds
/// `blocks·bs` floats.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_avx2<const NC: usize, const G32: bool>(t: &Tile<'_>, ap: &[f32], bs: usize, dst: &mut [f32]) {
    let mut total = [_mm256_setzero_ps(); NC];
    for blk in 0..t.blocks {
        let mut lut = [(_mm256_setzero_ps(), _mm256_setzero_ps()); NC];
        for (c, l) in lut.iter_mut().enumerate() {
            let p = table_for(t.nf4, t.zps[c], blk).as_ptr();
            // SAFETY: every table has 16 floats.
            *l = unsafe { (_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8))) };
        }
        let mut acc = [_mm256_setzero_ps(); NC];
        let base = blk * bs;
        let step = if G32 { 32 } else { 16 };
        let mut g = base;
        while g < base + bs {
            if G32 {
                // SAFETY: g + 32 ≤ ap.len().
                let a4 = unsafe {
                    let p = ap.as_ptr().add(g);
                    [
                        _mm256_loadu_ps(p),
                        _mm256_loadu_ps(p.add(8)),
                        _mm256_loadu_ps(p.add(16)),
                        _mm256_loadu_ps(p.add(24)),
                    ]
                };
                for c in 0..NC {
                    // SAFETY: bytes g/2 .. g/2 + 16 ≤ row length.
                    let bytes = unsafe { _mm_loadu_si128(t.rows[c].as_ptr().add(g / 2).cast()) };
                    let i0 = _mm256_cvtepu8_epi32(bytes);
                    let i1 = _mm256_cvtepu8_epi32(_mm_srli_si128::<8>(bytes));
                    let (lo, hi) = lut[c];
                    acc[c] = _mm256_fmadd_ps(a4[0], lookup16(i0, lo, hi), acc[c]);
                    acc[c] = _mm256_fmadd_ps(a4[1], lookup16(i1, lo, hi), acc[c]);
                    acc[c] = _mm256_fmadd_ps(a4[2], lookup16(_mm256_srli_epi32::<4>(i0), lo, hi), acc[c]);
                    acc[c] = _mm256_fmadd_ps(a4[3], lookup16(_mm256_srli_epi32::<4>(i1), lo, hi), acc[c]);
                }
            } else {
                // SAFETY: g + 16 ≤ ap.len().
                let (a0, a1) =
                    unsafe { (_mm256_loadu_ps(ap.as_ptr().add(g)), _mm256_loadu_ps(ap.as_ptr().add(g + 8))) };
                for c in 0..NC {
                    // SAFETY: bytes g/2 .. g/2 + 8 ≤ row length.
                    let v = unsafe { _mm_loadl_epi64(t.rows[c].as_ptr().add(g / 2).cast()) };
                    let i0 = _mm256_cvtepu8_epi32(v);
                    let (lo, hi) = lut[c];
                    acc[c] = _mm256_fmadd_ps(a0, lookup16(i0, lo, hi), acc[c]);
                    acc[c] = _mm256_fmadd_ps(a1, lookup16(_mm256_srli_epi32::<4>(i0), lo, hi), acc[c]);
                }
            }
            g += step;
        }
        for c in 0..NC {
            total[c] = _mm256_fmadd_ps(acc[c], _mm256_set1_ps(t.scales[c][blk]), total[c]);
        }
    }
    for c in 0..NC {
        dst[c] = hsum256(total[c]);
    }
}
