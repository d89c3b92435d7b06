//! Ternary GEMV over the packed tile layout (`ternary.rs`): 16 weight rows per register.
//!
//! A tile's word for 16 elements is one 32-bit lane per row, so one 64-byte load brings 16
//! rows × 16 elements. Nibble `p` of every lane indexes the same 16-entry table (the pair
//! `2p, 2p + 1` of activations times every code pair), so a shift and one `vpermps` give 16
//! rows' `a[2p]·q₀ + a[2p+1]·q₁` at once, added to the rows' lane sums. Eight tiles run
//! together (four on AVX2) so each table load serves all of them.

use std::arch::x86_64::*;

use crate::dispatch::Isa;
use crate::ternary::{TernaryTiles, TERNARY_TILE_ROWS};

/// Most tiles per pass (AVX-512).
const NT512: usize = 8;
/// Most tiles per pass (AVX2: 16 registers).
const NT256: usize = 2;

/// See `arch::ternary_gemv_tiles`.
pub(crate) fn gemv_tiles(
    isa: Isa,
    t: &TernaryTiles<'_>,
    tables: &[f32],
    scale: f32,
    out: &mut [f32],
) -> bool {
    assert_eq!(t.words.len(), t.tiles * t.groups * TERNARY_TILE_ROWS);
    assert!(tables.len() >= t.groups * 8 * 16 && out.len() <= t.tiles * TERNARY_TILE_ROWS);
    let width = out.len();
    let mut tile = 0;
    while tile < t.tiles {
        let (nt, wide) = match isa {
            Isa::Avx512 | Isa::Avx512Vnni => (NT512, true),
            Isa::Avx2 | Isa::AvxVnni => (NT256, false),
            Isa::Scalar | Isa::Neon | Isa::NeonDot => return false,
        };
        // Fewer tiles left than a pass holds: the largest power of two that fits (each tile's
        // sums are the same instruction sequence whatever the pass width).
        let nt = (t.tiles - tile).min(nt);
        let nt = 1 << nt.ilog2();
        let mut y = [0.0f32; NT512 * TERNARY_TILE_ROWS];
        let words = &t.words[tile * t.groups * TERNARY_TILE_ROWS..(tile + nt) * t.groups * TERNARY_TILE_ROWS];
        // SAFETY: `isa` is available (arch/mod.rs contract); `words` holds `nt` tiles of
        // `groups · 16` words and `tables` `groups · 8` tables of 16 floats (asserted above),
        // `y` room for `nt ≤ 8` tiles of 16 outputs.
        unsafe {
            match (wide, nt) {
                (true, 8) => tiles_avx512::<8>(words, t.groups, tables, scale, &mut y),
                (true, 4) => tiles_avx512::<4>(words, t.groups, tables, scale, &mut y),
                (true, 2) => tiles_avx512::<2>(words, t.groups, tables, scale, &mut y),
                (true, _) => tiles_avx512::<1>(words, t.groups, tables, scale, &mut y),
                (false, 2) => tiles_avx2::<2>(words, t.groups, tables, scale, &mut y),
                (false, _) => tiles_avx2::<1>(words, t.groups, tables, scale, &mut y),
            }
        }
        let j0 = tile * TERNARY_TILE_ROWS;
        let j1 = ((tile + nt) * TERNARY_TILE_ROWS).min(width);
        if j0 < j1 {
            out[j0..j1].copy_from_slice(&y[..j1 - j0]);
        }
        tile += nt;
    }
    true
}

/// # Safety
/// AVX-512 F/BW/VL available; `words` holds `NT` tiles of `groups · 16` words, `tables`
/// `groups · 8 · 16` floats, `y` `NT · 16` floats.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn tiles_avx512<const NT: usize>(
    words: &[u32],
    groups: usize,
    tables: &[f32],
    scale: f32,
    y: &mut [f32],
) {
    let mut acc = [_mm512_setzero_ps(); NT];
    for g in 0..groups {
        let mut x = [_mm512_setzero_si512(); NT];
        for (t, xt) in x.iter_mut().enumerate() {
            // SAFETY: word (t·groups + g)·16 .. +16 is inside tile t.
            *xt = unsafe {
                _mm512_loadu_si512(words.as_ptr().add((t * groups + g) * TERNARY_TILE_ROWS).cast())
            };
        }
        let tab = tables.as_ptr().wrapping_add(g * 8 * 16);
        macro_rules! pair {
            ($p:literal) => {
                // SAFETY: table g·8 + p of groups·8.
                let tp = unsafe { _mm512_loadu_ps(tab.add($p * 16)) };
                for t in 0..NT {
                    let idx = _mm512_srli_epi32::<{ 4 * $p }>(x[t]);
                    acc[t] = _mm512_add_ps(acc[t], _mm512_permutexvar_ps(idx, tp));
                }
            };
        }
        pair!(0);
        pair!(1);
        pair!(2);
        pair!(3);
        pair!(4);
        pair!(5);
        pair!(6);
        pair!(7);
    }
    let s = _mm512_set1_ps(scale);
    for (t, a) in acc.iter().enumerate() {
        // SAFETY: y holds NT·16 floats.
        unsafe { _mm512_storeu_ps(y.as_mut_ptr().add(t * 16), _mm512_mul_ps(*a, s)) };
    }
}

/// # Safety
/// AVX2 + FMA available; otherwise as [`tiles_avx512`].
#[target_feature(enable = "avx2,fma")]
unsafe fn tiles_avx2<const NT: usize>(
    words: &[u32],
    groups: usize,
    tables: &[f32],
    scale: f32,
    y: &mut [f32],
) {
    // Rows 0..8 and 8..16 of each tile in two registers.
    let mut acc = [[_mm256_setzero_ps(); 2]; NT];
    for g in 0..groups {
        let mut x = [[_mm256_setzero_si256(); 2]; NT];
        for (t, xt) in x.iter_mut().enumerate() {
            // SAFETY: word (t·groups + g)·16 .. +16 is inside tile t.
            unsafe {
                let p = words.as_ptr().add((t * groups + g) * TERNARY_TILE_ROWS);
                *xt = [_mm256_loadu_si256(p.cast()), _mm256_loadu_si256(p.add(8).cast())];
            }
        }
        let tab = tables.as_ptr().wrapping_add(g * 8 * 16);
        macro_rules! pair {
            ($p:literal) => {
                // SAFETY: table g·8 + p of groups·8.
                let (lo, hi) =
                    unsafe { (_mm256_loadu_ps(tab.add($p * 16)), _mm256_loadu_ps(tab.add($p * 16 + 8))) };
                for t in 0..NT {
                    for h in 0..2 {
                        let idx = _mm256_srli_epi32::<{ 4 * $p }>(x[t][h]);
                        let from_lo = _mm256_permutevar8x32_ps(lo, idx);
                        let from_hi = _mm256_permutevar8x32_ps(hi, idx);
                        let v = _mm256_blendv_ps(
                            from_lo,
                            from_hi,
                            _mm256_castsi256_ps(_mm256_slli_epi32::<28>(idx)),
                        );
                        acc[t][h] = _mm256_add_ps(acc[t][h], v);
                    }
                }
            };
        }
        pair!(0);
        pair!(1);
        pair!(2);
        pair!(3);
        pair!(4);
        pair!(5);
        pair!(6);
        pair!(7);
    }
    let s = _mm256_set1_ps(scale);
    for (t, a) in acc.iter().enumerate() {
        // SAFETY: y holds NT·16 floats.
        unsafe {
            _mm256_storeu_ps(y.as_mut_ptr().add(t * 16), _mm256_mul_ps(a[0], s));
            _mm256_storeu_ps(y.as_mut_ptr().add(t * 16 + 8), _mm256_mul_ps(a[1], s));
        }
    }
}

/// See `arch::ternary_pair_tables`.
pub(crate) fn pair_tables(isa: Isa, a: &[f32], t: &mut [f32]) -> bool {
    assert!(a.len().is_multiple_of(2) && t.len() == a.len() * 8);
    match isa {
        // SAFETY: AVX-512 available (arch/mod.rs contract); lengths asserted.
        Isa::Avx512 | Isa::Avx512Vnni => unsafe { pair_tables_avx512(a, t) },
        _ => return false,
    }
    true
}

/// # Safety
/// AVX-512 F available; `t` holds `8·a.len()` floats.
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn pair_tables_avx512(a: &[f32], t: &mut [f32]) {
    // Q[idx & 3] and Q[idx >> 2] for idx = 0..16, Q = [-1, 0, 1, 1].
    let q0 = _mm512_setr_ps(-1., 0., 1., 1., -1., 0., 1., 1., -1., 0., 1., 1., -1., 0., 1., 1.);
    let q1 = _mm512_setr_ps(-1., -1., -1., -1., 0., 0., 0., 0., 1., 1., 1., 1., 1., 1., 1., 1.);
    for (p, pair) in a.chunks_exact(2).enumerate() {
        // a0·q0 is exact, so the FMA rounds once, as the scalar sum of two exact products.
        let v = _mm512_fmadd_ps(_mm512_set1_ps(pair[1]), q1, _mm512_mul_ps(_mm512_set1_ps(pair[0]), q0));
        // SAFETY: t holds 16·(p + 1) floats.
        unsafe { _mm512_storeu_ps(t.as_mut_ptr().add(p * 16), v) };
    }
}
