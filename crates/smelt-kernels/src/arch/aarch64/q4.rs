//! 4-bit GEMV over the packed tile layout (`packed4.rs`) with NEON.
//!
//! Per row-block the 16 weights `TABLE · scale` are built once (64 bytes, four registers) and
//! looked up with `tbl` on byte indices: a group's u64 word gives its 16 nibbles (low nibbles
//! of its bytes, then high ones: elements `0 4 8 12 1 5 9 13 2 6 10 14 3 7 11 15`), times 4;
//! per 4 elements a `tbl` spreads each nibble over its lane's four bytes and an `orr` adds the
//! byte offsets 0..4, and a 4-register `tbl` reads the floats. FMA in 4-lane partial sums,
//! two accumulators per row: `|y - y_ref| ≤ 2·k·ε·Σ|a||w|`.

use std::arch::aarch64::*;

use crate::dispatch::Isa;
use crate::packed4::{Tiles4, GROUP, TILE_ROWS};

/// For the 4 lanes of float group `f`, the position in the nibble vector of elements
/// `4f .. 4f + 4`, each repeated for the lane's four bytes (the element order above is its
/// own inverse).
const SELECT: [[u8; 16]; 4] = {
    const POS: [u8; 16] = [0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15];
    let mut s = [[0u8; 16]; 4];
    let mut f = 0;
    while f < 4 {
        let mut b = 0;
        while b < 16 {
            s[f][b] = POS[4 * f + b / 4];
            b += 1;
        }
        f += 1;
    }
    s
};

/// Byte offsets within each float.
const BYTE_OFFSETS: [u8; 16] = [0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3];

/// See `arch::q4_gemv_tiles`.
pub(crate) fn gemv_tiles(
    isa: Isa,
    t: &Tiles4<'_>,
    m: usize,
    a: &[f32],
    width: usize,
    out: &mut [f32],
    ld: usize,
) -> bool {
    if !matches!(isa, Isa::Neon | Isa::NeonDot) {
        return false;
    }
    let bs = t.block_size;
    assert!(bs >= GROUP && bs.is_multiple_of(GROUP));
    let (blocks, groups) = (t.blocks, bs / GROUP);
    let kp = blocks * bs;
    assert_eq!(t.codes.len(), t.tiles * blocks * groups * TILE_ROWS);
    assert_eq!(t.scales.len(), t.tiles * blocks * TILE_ROWS);
    assert!(t.zero_points.is_none_or(|z| z.len() == t.tiles * blocks));
    assert!(m <= 4 && a.len() >= m * kp && width <= t.tiles * TILE_ROWS);
    assert!(m == 0 || (out.len() >= (m - 1) * ld + width && ld >= width));
    // SAFETY: NEON is available (`Isa::Neon` passed `or_scalar`); the assertions above bound
    // every load: codes, scales and zero points per tile and block, `a` by `m·kp`, `out` by
    // `(m-1)·ld + width`.
    unsafe {
        match m {
            0 => {}
            1 => tiles_neon::<1>(t, a, kp, width, out, ld),
            2 => tiles_neon::<2>(t, a, kp, width, out, ld),
            3 => tiles_neon::<3>(t, a, kp, width, out, ld),
            _ => tiles_neon::<4>(t, a, kp, width, out, ld),
        }
    }
    true
}

/// # Safety
/// NEON available; `t` holds whole tiles (lengths as asserted by [`gemv_tiles`]), `a` holds
/// `M` rows of `kp` floats, `out` holds `M` rows of stride `ld` ≥ `width`.
#[target_feature(enable = "neon")]
unsafe fn tiles_neon<const M: usize>(
    t: &Tiles4<'_>,
    a: &[f32],
    kp: usize,
    width: usize,
    out: &mut [f32],
    ld: usize,
) {
    let (bs, blocks) = (t.block_size, t.blocks);
    let groups = bs / GROUP;
    // SAFETY: the constant tables hold 16 bytes each.
    let (sel, offsets) = unsafe {
        (
            [
                vld1q_u8(SELECT[0].as_ptr()),
                vld1q_u8(SELECT[1].as_ptr()),
                vld1q_u8(SELECT[2].as_ptr()),
                vld1q_u8(SELECT[3].as_ptr()),
            ],
            vld1q_u8(BYTE_OFFSETS.as_ptr()),
        )
    };
    for jj in 0..width {
        let (tile, r) = (jj / TILE_ROWS, jj % TILE_ROWS);
        let mut acc = [[vdupq_n_f32(0.0); 2]; M];
        for blk in 0..blocks {
            let table = t.table(tile, blk, r);
            let scale = t.scales[(tile * blocks + blk) * TILE_ROWS + r];
            // SAFETY: the table holds 16 floats.
            let lut = unsafe {
                let p = table.as_ptr();
                uint8x16x4_t(
                    vreinterpretq_u8_f32(vmulq_n_f32(vld1q_f32(p), scale)),
                    vreinterpretq_u8_f32(vmulq_n_f32(vld1q_f32(p.add(4)), scale)),
                    vreinterpretq_u8_f32(vmulq_n_f32(vld1q_f32(p.add(8)), scale)),
                    vreinterpretq_u8_f32(vmulq_n_f32(vld1q_f32(p.add(12)), scale)),
                )
            };
            for g in 0..groups {
                let word = t.codes[((tile * blocks + blk) * groups + g) * TILE_ROWS + r];
                let v = vcreate_u8(word);
                let nib4 = vshlq_n_u8::<2>(vcombine_u8(vand_u8(v, vdup_n_u8(0xF)), vshr_n_u8::<4>(v)));
                let kk = blk * bs + g * GROUP;
                for (f, s) in sel.iter().enumerate() {
                    let idx = vorrq_u8(vqtbl1q_u8(nib4, *s), offsets);
                    let w = vreinterpretq_f32_u8(vqtbl4q_u8(lut, idx));
                    for (i, acc_i) in acc.iter_mut().enumerate() {
                        // SAFETY: kk + 16 ≤ kp, row i < M.
                        let av = unsafe { vld1q_f32(a.as_ptr().add(i * kp + kk + 4 * f)) };
                        acc_i[f % 2] = vfmaq_f32(acc_i[f % 2], av, w);
                    }
                }
            }
        }
        for (i, acc_i) in acc.iter().enumerate() {
            out[i * ld + jj] = vaddvq_f32(vaddq_f32(acc_i[0], acc_i[1]));
        }
    }
}
