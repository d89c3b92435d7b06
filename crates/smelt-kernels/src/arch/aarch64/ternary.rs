//! Ternary GEMV over the packed tile layout (`ternary.rs`) with NEON: a tile's 16 rows are
//! four 4-lane registers; per pair of elements each lane's nibble becomes the byte indices of
//! its float in the pair's 16-entry table (`nibble · 4` in every byte plus 0, 1, 2, 3) and a
//! 4-register `tbl` reads it, added to the rows' sums.

use std::arch::aarch64::*;

use crate::dispatch::Isa;
use crate::ternary::{TernaryTiles, TERNARY_TILE_ROWS};

/// See `arch::ternary_gemv_tiles`.
pub(crate) fn gemv_tiles(
    isa: Isa,
    t: &TernaryTiles<'_>,
    tables: &[f32],
    scale: f32,
    out: &mut [f32],
) -> bool {
    if !matches!(isa, Isa::Neon | Isa::NeonDot) {
        return false;
    }
    assert_eq!(t.words.len(), t.tiles * t.groups * TERNARY_TILE_ROWS);
    assert!(tables.len() >= t.groups * 8 * 16 && out.len() <= t.tiles * TERNARY_TILE_ROWS);
    let width = out.len();
    for tile in 0..t.tiles {
        let mut y = [0.0f32; TERNARY_TILE_ROWS];
        let words = &t.words[tile * t.groups * TERNARY_TILE_ROWS..(tile + 1) * t.groups * TERNARY_TILE_ROWS];
        // SAFETY: NEON is available (`Isa::Neon` passed `or_scalar`); `words` holds one tile
        // of `groups · 16` words and `tables` `groups · 8` tables of 16 floats (asserted above).
        unsafe { tile_neon(words, t.groups, tables, scale, &mut y) };
        let j0 = tile * TERNARY_TILE_ROWS;
        let j1 = (j0 + TERNARY_TILE_ROWS).min(width);
        if j0 < j1 {
            out[j0..j1].copy_from_slice(&y[..j1 - j0]);
        }
    }
    true
}

/// # Safety
/// NEON available; `words` holds `groups · 16` words, `tables` `groups · 8 · 16` floats.
#[target_feature(enable = "neon")]
unsafe fn tile_neon(
    words: &[u32],
    groups: usize,
    tables: &[f32],
    scale: f32,
    y: &mut [f32; TERNARY_TILE_ROWS],
) {
    let offsets = vdupq_n_u32(0x0302_0100);
    let mut acc = [vdupq_n_f32(0.0); 4];
    for g in 0..groups {
        let mut x = [vdupq_n_u32(0); 4];
        for (h, xh) in x.iter_mut().enumerate() {
            // SAFETY: words g·16 + 4h .. +4 are inside the tile.
            *xh = unsafe { vld1q_u32(words.as_ptr().add(g * TERNARY_TILE_ROWS + 4 * h)) };
        }
        macro_rules! pair {
            ($p:literal) => {
                // SAFETY: table g·8 + p of groups·8, 64 bytes.
                let tab = unsafe { vld1q_u8_x4(tables.as_ptr().add((g * 8 + $p) * 16).cast()) };
                for h in 0..4 {
                    let nib = vandq_u32(vshrq_n_u32::<{ 4 * $p }>(x[h]), vdupq_n_u32(0xF));
                    let idx = vmlaq_u32(offsets, nib, vdupq_n_u32(0x0404_0404));
                    acc[h] =
                        vaddq_f32(acc[h], vreinterpretq_f32_u8(vqtbl4q_u8(tab, vreinterpretq_u8_u32(idx))));
                }
            };
        }
        // A shift by 0 is not an immediate NEON takes: pair 0 masks the word directly.
        {
            // SAFETY: table g·8 of groups·8, 64 bytes.
            let tab = unsafe { vld1q_u8_x4(tables.as_ptr().add(g * 8 * 16).cast()) };
            for h in 0..4 {
                let idx = vmlaq_u32(offsets, vandq_u32(x[h], vdupq_n_u32(0xF)), vdupq_n_u32(0x0404_0404));
                acc[h] = vaddq_f32(acc[h], vreinterpretq_f32_u8(vqtbl4q_u8(tab, vreinterpretq_u8_u32(idx))));
            }
        }
        pair!(1);
        pair!(2);
        pair!(3);
        pair!(4);
        pair!(5);
        pair!(6);
        pair!(7);
    }
    for (h, a) in acc.iter().enumerate() {
        // SAFETY: y holds 16 floats.
        unsafe { vst1q_f32(y.as_mut_ptr().add(4 * h), vmulq_n_f32(*a, scale)) };
    }
}
