//! int8 dot products for `MatMulInteger` with NEON, exact.
//!
//! Both operands are widened to i16 in their true values (`u8` zero-extended, `i8`
//! sign-extended; every value fits), and `smlal`/`smlal2` multiply lanes into i32
//! accumulators: a product is at most 255·255 in magnitude, so nothing saturates, and i32
//! additions wrap exactly as the definition's do, so every order gives the same bits. Two rows
//! of `A` share each widened vector of `B` (four columns at a time). The last `k % 16`
//! elements are summed in scalar i32. `Σb` per column, when asked for, is a separate exact
//! sum.

use std::arch::aarch64::*;

use crate::arch::Int8Plan;
use crate::dispatch::Isa;

/// See `arch::int8_dot_cols`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn dot_cols(
    isa: Isa,
    plan: Int8Plan,
    m: usize,
    k: usize,
    a: &[u8],
    b: &[u8],
    a_sums: &[i32],
    j0: usize,
    j1: usize,
    out: &mut [i32],
    ld: usize,
    b_sums: &mut [i32],
) -> bool {
    if isa != Isa::Neon {
        return false;
    }
    let w = j1 - j0;
    assert!(a.len() >= m * k && j1 * k <= b.len() && a_sums.len() >= m && b_sums.len() >= w);
    assert!(m == 0 || (out.len() >= (m - 1) * ld + w && ld >= w));
    let val = |signed: bool, x: u8| if signed { x as i8 as i32 } else { x as i32 };
    if plan.need_b_sums {
        for (j, s) in (j0..j1).zip(b_sums.iter_mut()) {
            *s = b[j * k..(j + 1) * k].iter().fold(0i32, |acc, &x| acc.wrapping_add(val(plan.b_signed, x)));
        }
    }
    let k_main = k - k % 16;
    let mut i = 0;
    while i < m {
        let rows = 2.min(m - i);
        let mut j = j0;
        while j < j1 {
            let cols = if j1 - j >= 4 { 4 } else { 1 };
            // SAFETY (all): NEON is available (`Isa::Neon` passed `or_scalar`); rows
            // i..i+rows < m of `a` and rows j..j+cols ≤ j1 of `b` are k bytes each (asserted),
            // read below k_main ≤ k.
            let sums = unsafe {
                match (rows, cols, plan.a_signed, plan.b_signed) {
                    (2, 4, sa, sb) => tile::<2, 4>(a, b, k, k_main, i, j, sa, sb),
                    (1, 4, sa, sb) => tile::<1, 4>(a, b, k, k_main, i, j, sa, sb),
                    (2, _, sa, sb) => tile::<2, 1>(a, b, k, k_main, i, j, sa, sb),
                    (_, _, sa, sb) => tile::<1, 1>(a, b, k, k_main, i, j, sa, sb),
                }
            };
            for r in 0..rows {
                for c in 0..cols {
                    let (ar, br) = (&a[(i + r) * k..(i + r + 1) * k], &b[(j + c) * k..(j + c + 1) * k]);
                    let tail = ar[k_main..].iter().zip(&br[k_main..]).fold(0i32, |s, (&x, &y)| {
                        s.wrapping_add(val(plan.a_signed, x).wrapping_mul(val(plan.b_signed, y)))
                    });
                    out[(i + r) * ld + (j + c - j0)] = sums[r][c].wrapping_add(tail);
                }
            }
            j += cols;
        }
        i += rows;
    }
    true
}

/// 16 bytes at `p` widened to two i16 vectors of their true values.
///
/// # Safety
/// NEON available; `p` valid for 16 reads.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn widen(p: *const u8, signed: bool) -> (int16x8_t, int16x8_t) {
    // SAFETY: the caller's contract.
    let v = unsafe { vld1q_u8(p) };
    if signed {
        let s = vreinterpretq_s8_u8(v);
        (vmovl_s8(vget_low_s8(s)), vmovl_high_s8(s))
    } else {
        (vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(v))), vreinterpretq_s16_u16(vmovl_high_u8(v)))
    }
}

/// `Σ_{kk < k_main} a·b` (wrapping i32) for rows `i..i + R` of `a` against rows `j..j + C`
/// of `b` (both `k` bytes per row), at `[r][c]` (`R ≤ 2`, `C ≤ 4`).
///
/// # Safety
/// NEON available; those rows exist; `k_main ≤ k` is a multiple of 16.
#[allow(clippy::too_many_arguments)]
#[inline]
#[target_feature(enable = "neon")]
unsafe fn tile<const R: usize, const C: usize>(
    a: &[u8],
    b: &[u8],
    k: usize,
    k_main: usize,
    i: usize,
    j: usize,
    a_signed: bool,
    b_signed: bool,
) -> [[i32; 4]; 2] {
    let mut acc = [[vdupq_n_s32(0); C]; R];
    let mut kk = 0;
    while kk < k_main {
        let mut bv = [(vdupq_n_s16(0), vdupq_n_s16(0)); C];
        for (c, v) in bv.iter_mut().enumerate() {
            // SAFETY: bytes kk..kk+16 ≤ k_main of row j+c.
            *v = unsafe { widen(b.as_ptr().add((j + c) * k + kk), b_signed) };
        }
        for (r, acc_r) in acc.iter_mut().enumerate() {
            // SAFETY: bytes kk..kk+16 ≤ k_main of row i+r.
            let (lo, hi) = unsafe { widen(a.as_ptr().add((i + r) * k + kk), a_signed) };
            for (c, s) in acc_r.iter_mut().enumerate() {
                *s = vmlal_s16(*s, vget_low_s16(lo), vget_low_s16(bv[c].0));
                *s = vmlal_high_s16(*s, lo, bv[c].0);
                *s = vmlal_s16(*s, vget_low_s16(hi), vget_low_s16(bv[c].1));
                *s = vmlal_high_s16(*s, hi, bv[c].1);
            }
        }
        kk += 16;
    }
    let mut out = [[0i32; 4]; 2];
    for (o, acc_r) in out.iter_mut().zip(&acc) {
        for (x, s) in o.iter_mut().zip(acc_r) {
            *x = vaddvq_s32(*s);
        }
    }
    out
}
