//! 8-bit `MatMulNBits` GEMV (`nbits8.rs`) with NEON, over the ONNX layout as it is, shaped as
//! the AVX2 kernel: per 16 codes of a row one 16-byte load, widened to four vectors of four
//! u32 (`uxtl`, `uxtl2`), converted (`ucvtf`), the block's zero point subtracted (the
//! reference's own `q - zp`) and one FMA per activation row and vector into two alternating
//! chains; each block's sum multiplied by its scale once. One activation row takes 4 weight
//! rows at a time, two take 2, three or four take 1; every output is the same instruction
//! sequence whatever the grouping.
//!
//! The blocked GEMM's `B` panels (prefill) are dequantized as on x86-64, four rows at a time
//! through 4×4 transpositions (`dequant_panel`).

use std::arch::aarch64::*;

use crate::blocked::NR;
use crate::dispatch::Isa;
use crate::nbits8::{NBitsQ8, NBITS8_DEFAULT_ZERO_POINT};

/// See `arch::q8_gemv_rows`.
pub(crate) fn gemv_rows(isa: Isa, w: &NBitsQ8<'_>, m: usize, a: &[f32], out: &mut [f32], ld: usize) -> bool {
    let kp = w.check_gemv(m, a, out, ld);
    if !matches!(isa, Isa::Neon | Isa::NeonDot) {
        return false;
    }
    q8_gemv_groups!(rows_neon, w, m, a, kp, out, ld);
    true
}

/// Rows `j..j + R` of `w` against `M` rows of `a` (stride `kp`), into `out[i·ld + j + r]`.
///
/// # Safety
/// NEON available; `j + R ≤ w.n`; the slices as `NBitsQ8::check_gemv` asserts.
#[target_feature(enable = "neon")]
unsafe fn rows_neon<const M: usize, const R: usize, const ZP: bool>(
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
    let mut tot = [[vdupq_n_f32(0.0); R]; M];
    for blk in 0..kb {
        let k0 = blk * bs;
        let z: [float32x4_t; R] = std::array::from_fn(|r| {
            vdupq_n_f32(if ZP {
                // SAFETY: with ZP, `zps` holds n·kb zero points.
                unsafe { *zps.add((j + r) * kb + blk) }
            } else {
                NBITS8_DEFAULT_ZERO_POINT
            })
        });
        let mut p = [[[vdupq_n_f32(0.0); 2]; R]; M];
        for o in 0..bs / 16 {
            let kk = k0 + 16 * o;
            // SAFETY: kk + 16 ≤ kp: rows of `a` hold kp floats.
            let av: [[float32x4_t; 4]; M] = std::array::from_fn(|i| {
                std::array::from_fn(|v| unsafe { vld1q_f32(a.as_ptr().add(i * kp + kk + 4 * v)) })
            });
            for r in 0..R {
                // SAFETY: kk + 16 ≤ kp bytes of row j + r.
                let q = unsafe { vld1q_u8(codes[r].add(kk)) };
                let (lo, hi) = (vmovl_u8(vget_low_u8(q)), vmovl_high_u8(q));
                let wide = [
                    vmovl_u16(vget_low_u16(lo)),
                    vmovl_high_u16(lo),
                    vmovl_u16(vget_low_u16(hi)),
                    vmovl_high_u16(hi),
                ];
                for (v, &x) in wide.iter().enumerate() {
                    let d = vsubq_f32(vcvtq_f32_u32(x), z[r]);
                    for i in 0..M {
                        p[i][r][v % 2] = vfmaq_f32(p[i][r][v % 2], av[i][v], d);
                    }
                }
            }
        }
        for r in 0..R {
            let s = vdupq_n_f32(w.scales[(j + r) * kb + blk]);
            for i in 0..M {
                tot[i][r] = vfmaq_f32(tot[i][r], vaddq_f32(p[i][r][0], p[i][r][1]), s);
            }
        }
    }
    for (i, tot_i) in tot.iter().enumerate() {
        for (r, &t) in tot_i.iter().enumerate() {
            out[i * ld + j + r] = vaddvq_f32(t);
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
    assert!(bs >= 8 && bs.is_multiple_of(8) && kc0.is_multiple_of(8));
    assert!(end <= kb * bs && buf.len() >= (end - kc0) * NR);
    assert_eq!(w.b.len(), w.n * kb * bs);
    assert_eq!(w.scales.len(), w.n * kb);
    assert!(w.zero_points.is_none_or(|z| z.len() == w.n * kb));
    if !matches!(isa, Isa::Neon | Isa::NeonDot) {
        return false;
    }
    // SAFETY: NEON available (arch/mod.rs contract); the assertions bound every load (rows <
    // n, codes `< end ≤ kb·bs` of a row) and store (`buf` rows `< end - kc0`).
    unsafe { dequant_panel_neon(w, j0, kc0, end, buf.as_mut_ptr()) };
    true
}

/// The 4×4 transposition: `out[e]` holds element `e` of every row, rows in order.
#[inline]
#[target_feature(enable = "neon")]
fn transpose4(r: [float32x4_t; 4]) -> [float32x4_t; 4] {
    let t0 = vreinterpretq_f64_f32(vtrn1q_f32(r[0], r[1]));
    let t1 = vreinterpretq_f64_f32(vtrn2q_f32(r[0], r[1]));
    let t2 = vreinterpretq_f64_f32(vtrn1q_f32(r[2], r[3]));
    let t3 = vreinterpretq_f64_f32(vtrn2q_f32(r[2], r[3]));
    [
        vreinterpretq_f32_f64(vtrn1q_f64(t0, t2)),
        vreinterpretq_f32_f64(vtrn1q_f64(t1, t3)),
        vreinterpretq_f32_f64(vtrn2q_f64(t0, t2)),
        vreinterpretq_f32_f64(vtrn2q_f64(t1, t3)),
    ]
}

/// Rows `j0..j0 + 32` of `w`, elements `kc0..end` (multiples of 8), into the `[kk][32]`
/// panel at `dst`, four rows at a time: per 8 elements each row's codes widened and
/// converted to two vectors of four, the two 4×4 blocks transposed, then each panel row
/// `(q - zp)·scale` with the four rows' zero points and scales as vectors (one lane per row:
/// the scalar reference's two roundings). As on x86-64, an 8-element step never straddles a
/// block.
///
/// # Safety
/// NEON available; the bounds `dequant_panel` asserts.
#[target_feature(enable = "neon")]
unsafe fn dequant_panel_neon(w: &NBitsQ8<'_>, j0: usize, kc0: usize, end: usize, dst: *mut f32) {
    let (bs, kb, rb) = (w.block_size, w.k_blocks(), w.row_bytes());
    for c0 in (0..NR).step_by(4) {
        // Rows past `n` read nothing: zero codes, zero point and scale give zeros.
        let rows = w.n.saturating_sub(j0 + c0).min(4);
        let codes = w.b.as_ptr().wrapping_add((j0 + c0) * rb);
        let mut kk = kc0;
        while kk < end {
            let blk = kk / bs;
            let seg = ((blk + 1) * bs).min(end);
            let (mut z, mut s) = ([0f32; 4], [0f32; 4]);
            for r in 0..rows {
                let j = j0 + c0 + r;
                (z[r], s[r]) = (w.zero_point(j, blk), w.scales[j * kb + blk]);
            }
            // SAFETY: 4 floats each.
            let (zv, sv) = unsafe { (vld1q_f32(z.as_ptr()), vld1q_f32(s.as_ptr())) };
            while kk < seg {
                let v: [[float32x4_t; 2]; 4] = std::array::from_fn(|r| {
                    if r < rows {
                        // SAFETY: kk + 8 ≤ end ≤ kb·bs bytes of row j0 + c0 + r < n.
                        let q = vmovl_u8(unsafe { vld1_u8(codes.add(r * rb + kk)) });
                        [vcvtq_f32_u32(vmovl_u16(vget_low_u16(q))), vcvtq_f32_u32(vmovl_high_u16(q))]
                    } else {
                        [vdupq_n_f32(0.0); 2]
                    }
                });
                let [v0, v1, v2, v3] = v;
                for (h, half) in
                    [[v0[0], v1[0], v2[0], v3[0]], [v0[1], v1[1], v2[1], v3[1]]].into_iter().enumerate()
                {
                    for (i, x) in transpose4(half).into_iter().enumerate() {
                        // SAFETY: row kk - kc0 + 4h + i < end - kc0 of the panel, columns
                        // c0..c0 + 4.
                        unsafe {
                            vst1q_f32(
                                dst.add((kk - kc0 + 4 * h + i) * NR + c0),
                                vmulq_f32(vsubq_f32(x, zv), sv),
                            )
                        };
                    }
                }
                kk += 8;
            }
        }
    }
}
