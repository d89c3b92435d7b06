//! int8 dot products for `MatMulInteger` with NEON, exact.
//!
//! With the dot-product extension ([`Isa::NeonDot`]) `sdot` adds four signed byte products
//! into each i32 lane, 16 per instruction. It multiplies signed bytes, so an unsigned operand
//! is read shifted by 128 (its top bit flipped, `x' = x - 128`) and the sums are corrected with
//! the operands' exact row and column sums: `a·b = a'·b' + 128·a + 128·b - 128²` when both
//! are shifted (one term less when one is). Products and corrections are exact in wrapping
//! i32, as the definition's are, so the bits are the same as the widening kernel's.
//!
//! Without it, both operands are widened to i16 in their true values (`u8` zero-extended, `i8`
//! sign-extended; every value fits), and `smlal`/`smlal2` multiply lanes into i32
//! accumulators: a product is at most 255·255 in magnitude, so nothing saturates, and i32
//! additions wrap exactly as the definition's do, so every order gives the same bits. Two rows
//! of `A` share each widened vector of `B` (four columns at a time). The last `k % 16`
//! elements are summed in scalar i32. `Σb` per column, when asked for, is a separate exact
//! sum.

use std::arch::aarch64::*;
use std::arch::asm;

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
    if !matches!(isa, Isa::Neon | Isa::NeonDot) {
        return false;
    }
    let w = j1 - j0;
    assert!(a.len() >= m * k && j1 * k <= b.len() && a_sums.len() >= m && b_sums.len() >= w);
    assert!(m == 0 || (out.len() >= (m - 1) * ld + w && ld >= w));
    let dot = isa == Isa::NeonDot;
    let val = |signed: bool, x: u8| if signed { x as i8 as i32 } else { x as i32 };
    // With `sdot`, which operands are read shifted by 128 (unsigned ones), and the byte that
    // shifts them; an operand's value as the kernel reads it.
    let (fa, fb) = (dot && !plan.a_signed, dot && !plan.b_signed);
    let (xa, xb) = (if fa { 0x80u8 } else { 0 }, if fb { 0x80u8 } else { 0 });
    let read =
        |signed: bool, flip: u8, x: u8| if flip != 0 { (x ^ flip) as i8 as i32 } else { val(signed, x) };
    // Σb in true values: asked for, or part of the correction of a shifted A.
    if plan.need_b_sums || fa {
        for (j, s) in (j0..j1).zip(b_sums.iter_mut()) {
            *s = b[j * k..(j + 1) * k].iter().fold(0i32, |acc, &x| acc.wrapping_add(val(plan.b_signed, x)));
        }
    }
    let k_main = k - k % 16;
    let (sa, sb) = (plan.a_signed, plan.b_signed);
    let mut i = 0;
    while i < m {
        let rows = 2.min(m - i);
        let mut j = j0;
        while j < j1 {
            let cols = if j1 - j >= 4 { 4 } else { 1 };
            // SAFETY (all): NEON, and with `dot` the dot-product extension, are available (the
            // tier passed `or_scalar`); rows i..i+rows < m of `a` and rows j..j+cols ≤ j1 of `b`
            // are k bytes each (asserted), read below k_main ≤ k.
            let sums = unsafe {
                match (rows, cols, dot) {
                    (2, 4, true) => tile_sdot::<2, 4>(a, b, k, k_main, i, j, xa, xb),
                    (1, 4, true) => tile_sdot::<1, 4>(a, b, k, k_main, i, j, xa, xb),
                    (2, _, true) => tile_sdot::<2, 1>(a, b, k, k_main, i, j, xa, xb),
                    (_, _, true) => tile_sdot::<1, 1>(a, b, k, k_main, i, j, xa, xb),
                    (2, 4, false) => tile::<2, 4>(a, b, k, k_main, i, j, sa, sb),
                    (1, 4, false) => tile::<1, 4>(a, b, k, k_main, i, j, sa, sb),
                    (2, _, false) => tile::<2, 1>(a, b, k, k_main, i, j, sa, sb),
                    (_, _, false) => tile::<1, 1>(a, b, k, k_main, i, j, sa, sb),
                }
            };
            for r in 0..rows {
                for c in 0..cols {
                    let (ar, br) = (&a[(i + r) * k..(i + r + 1) * k], &b[(j + c) * k..(j + c + 1) * k]);
                    let tail = ar[k_main..].iter().zip(&br[k_main..]).fold(0i32, |s, (&x, &y)| {
                        s.wrapping_add(read(sa, xa, x).wrapping_mul(read(sb, xb, y)))
                    });
                    // Back to true values: a·b = a'·b' + 128·a + 128·b - 128² (terms of the
                    // shifted operands only).
                    let mut v = sums[r][c].wrapping_add(tail);
                    if fa {
                        v = v.wrapping_add(b_sums[j + c - j0].wrapping_mul(128));
                    }
                    if fb {
                        v = v.wrapping_add(a_sums[i + r].wrapping_mul(128));
                    }
                    if fa && fb {
                        v = v.wrapping_sub((k as i32).wrapping_mul(128 * 128));
                    }
                    out[(i + r) * ld + (j + c - j0)] = v;
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

/// `acc + Σ` of the four byte products in each lane (`sdot`).
///
/// # Safety
/// The dot-product extension available.
#[inline]
#[target_feature(enable = "neon,dotprod")]
unsafe fn sdot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    let mut acc = acc;
    // SAFETY: a register-only instruction of an extension the caller guarantees.
    unsafe {
        asm!(
            "sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
            acc = inout(vreg) acc,
            a = in(vreg) a,
            b = in(vreg) b,
            options(pure, nomem, nostack, preserves_flags)
        )
    };
    acc
}

/// `Σ_{kk < k_main} a'·b'` (wrapping i32; `x' = x ^ flip` read as i8) for rows `i..i + R` of
/// `a` against rows `j..j + C` of `b`, at `[r][c]` (`R ≤ 2`, `C ≤ 4`).
///
/// # Safety
/// The dot-product extension available; those rows exist; `k_main ≤ k` is a multiple of 16.
#[allow(clippy::too_many_arguments)]
#[inline]
#[target_feature(enable = "neon,dotprod")]
unsafe fn tile_sdot<const R: usize, const C: usize>(
    a: &[u8],
    b: &[u8],
    k: usize,
    k_main: usize,
    i: usize,
    j: usize,
    flip_a: u8,
    flip_b: u8,
) -> [[i32; 4]; 2] {
    let (fa, fb) = (vdupq_n_u8(flip_a), vdupq_n_u8(flip_b));
    let mut acc = [[vdupq_n_s32(0); C]; R];
    let mut kk = 0;
    while kk < k_main {
        let mut bv = [vdupq_n_s8(0); C];
        for (c, v) in bv.iter_mut().enumerate() {
            // SAFETY: bytes kk..kk+16 ≤ k_main of row j+c.
            *v = vreinterpretq_s8_u8(veorq_u8(unsafe { vld1q_u8(b.as_ptr().add((j + c) * k + kk)) }, fb));
        }
        for (r, acc_r) in acc.iter_mut().enumerate() {
            // SAFETY: bytes kk..kk+16 ≤ k_main of row i+r.
            let av = vreinterpretq_s8_u8(veorq_u8(unsafe { vld1q_u8(a.as_ptr().add((i + r) * k + kk)) }, fa));
            for (c, s) in acc_r.iter_mut().enumerate() {
                // SAFETY: the caller's contract.
                *s = unsafe { sdot(*s, av, bv[c]) };
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
