//! 8-bit `MatMulNBits` GEMV (`nbits8.rs`) with NEON, over the ONNX layout as it is, shaped as
//! the AVX2 kernel: per 16 codes of a row one 16-byte load, widened to four vectors of four
//! u32 (`uxtl`, `uxtl2`), converted (`ucvtf`), the block's zero point subtracted (the
//! reference's own `q - zp`) and one FMA per activation row and vector into two alternating
//! chains; each block's sum multiplied by its scale once. One activation row takes 4 weight
//! rows at a time, two take 2, three or four take 1; every output is the same instruction
//! sequence whatever the grouping.

use std::arch::aarch64::*;

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
