//! ggml's Q4_0, Q4_1, Q5_0 and Q5_1 quantizers (`quantize_row_q4_0_ref` ...
//! `quantize_row_q5_1_ref` in ggml-quants.c) with explicit AVX-512 and AVX2, and the decoded
//! values (`dequantize_row_q4_0` ...) in the same pass, for `smelt convert`.
//!
//! Per block of 32 weights, as the C:
//! - Q4_0 / Q5_0: `max` = the first weight of largest magnitude, with its sign (`+0.0` when all
//!   are zero); `d = max / -8` (`/ -16`), `id = d ? 1/d : 0`; code `min(15, trunc(x·id + 8.5))`
//!   (`min(31, trunc(x·id + 16.5))`); decoded `(code - 8)·f32(fp16(d))` (`- 16`).
//! - Q4_1 / Q5_1: `min`, `max` of the block; `d = (max - min) / 15` (`/ 31`), `id = d ? 1/d :
//!   0`; code `min(15, trunc((x - min)·id + 0.5))` (Q5_1: not clamped); decoded
//!   `code·f32(fp16(d)) + f32(fp16(min))`.
//!
//! Every step is the reference's own f32 operation (a multiply then an add, never fused; the
//! same correctly rounded divisions; IEEE round-to-nearest-even to f16 with F16C, ggml's
//! conversion on finite values; `trunc` by `vcvttps2dq`, exact for these small values).
//!
//! Sixteen blocks at a time (eight with AVX2): each block's minimum and maximum are taken on order-preserving
//! integer keys of the float bits (`bits ^ ((bits >> 31) & 0x7fff_ffff)`: signed integer order
//! is float order, `-0.0` below `+0.0`, NaNs beyond the infinities) and gathered into one
//! register by the reduction tree of [`crate::q8_0`], so the divisions and f16 conversions are
//! one instruction for the sixteen. The weight of largest magnitude is the minimum or the
//! maximum, whichever has the larger magnitude.
//!
//! Blocks whose bytes depend on what the keys cannot tell are left to the caller, which runs
//! the reference on them: a NaN or an infinity; Q4_0/Q5_0 blocks whose largest magnitude is
//! held by two weights of opposite signs (ggml keeps the first in block order); Q4_1/Q5_1
//! blocks whose minimum or maximum is a zero (ggml keeps the sign of the first zero it meets);
//! and blocks where `d` or `1/d` is not finite.
//!
//! The scalar reference is smelt-quant's `BlockQ4_0::quantize` ... `BlockQ5_1::quantize`,
//! transcribed from the C; smelt-quant's tests compare the two (bytes and decoded bits) on
//! ties, zeros of both signs, subnormals, huge values and non-finite weights.

use crate::dispatch::Isa;

/// Weights per block of the legacy ggml types.
pub const LEGACY_BLOCK: usize = 32;

/// The ggml types [`quantize_legacy_with`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LegacyType {
    /// `block_q4_0`: f16 `d`, 16 bytes of nibbles (18 bytes).
    Q4_0,
    /// `block_q4_1`: f16 `d`, f16 `m`, 16 bytes of nibbles (20 bytes).
    Q4_1,
    /// `block_q5_0`: f16 `d`, u32 `qh` of fifth bits, 16 bytes of nibbles (22 bytes).
    Q5_0,
    /// `block_q5_1`: f16 `d`, f16 `m`, u32 `qh`, 16 bytes of nibbles (24 bytes).
    Q5_1,
}

impl LegacyType {
    /// Bytes per block.
    pub const fn block_bytes(self) -> usize {
        match self {
            LegacyType::Q4_0 => 18,
            LegacyType::Q4_1 => 20,
            LegacyType::Q5_0 => 22,
            LegacyType::Q5_1 => 24,
        }
    }

    /// The divisor of `d`, the constant added before truncation, the largest code (Q5_1 has
    /// no clamp: its codes cannot exceed 31), and the offset subtracted when decoding.
    #[cfg(target_arch = "x86_64")]
    const fn params(self) -> (f32, f32, i32, i32) {
        match self {
            LegacyType::Q4_0 => (-8.0, 8.5, 15, 8),
            LegacyType::Q5_0 => (-16.0, 16.5, 31, 16),
            LegacyType::Q4_1 => (15.0, 0.5, 15, 0),
            LegacyType::Q5_1 => (31.0, 0.5, i32::MAX, 0),
        }
    }
}

/// Quantizes `src` (a whole number of blocks) into `dst` (`t.block_bytes()` per block) and
/// writes the decoded weights into `decoded` (same length as `src`), at instruction set `isa`.
///
/// Returns `None` when `isa` (or the CPU) has no such kernel (AVX2 and AVX-512 have one): nothing
/// was written, and the caller runs its reference. Otherwise returns the indices of the blocks
/// left for the caller (see the module documentation), in increasing order: their bytes in
/// `dst` and values in `decoded` are unspecified.
///
/// Panics when the lengths do not agree.
pub fn quantize_legacy_with(
    isa: Isa,
    t: LegacyType,
    src: &[f32],
    dst: &mut [u8],
    decoded: &mut [f32],
) -> Option<Vec<usize>> {
    assert_eq!(src.len() % LEGACY_BLOCK, 0, "a whole number of blocks");
    assert_eq!(dst.len(), src.len() / LEGACY_BLOCK * t.block_bytes(), "{t:?} output length");
    assert_eq!(decoded.len(), src.len(), "decoded length");
    #[cfg(target_arch = "x86_64")]
    {
        if !std::is_x86_feature_detected!("f16c") {
            return None;
        }
        let mut slow = Vec::new();
        match isa.or_scalar() {
            // SAFETY: `or_scalar` and the checks here confirmed the CPU features.
            Isa::Avx512 | Isa::Avx512Vnni if std::is_x86_feature_detected!("avx512dq") => unsafe {
                x86::legacy_avx512(t, src, dst, decoded, &mut slow)
            },
            // SAFETY: as above.
            Isa::Avx2 | Isa::AvxVnni | Isa::Avx512 | Isa::Avx512Vnni => unsafe {
                x86::legacy_avx2(t, src, dst, decoded, &mut slow)
            },
            _ => return None,
        }
        Some(slow)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (isa, t, decoded);
        None
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{LegacyType, LEGACY_BLOCK};
    use std::arch::x86_64::*;

    /// The key of `-inf` and of `+inf`: a finite weight's key lies strictly between.
    const KEY_NEG_INF: i32 = (0xff80_0000u32 ^ 0x7fff_ffff) as i32;
    const KEY_POS_INF: i32 = 0x7f80_0000;

    /// Order-preserving key of float bits (an involution: it also turns a key back into bits).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn key(v: __m512i) -> __m512i {
        _mm512_xor_si512(v, _mm512_and_si512(_mm512_srai_epi32::<31>(v), _mm512_set1_epi32(0x7fff_ffff)))
    }

    /// Lane `b` of the result is `op` over the sixteen lanes of `m[b]`: the reduction tree of
    /// the Q8_0 kernel (pairs of 128-bit quarters twice, pairs of 32-bit lanes twice, then one
    /// permute into block order).
    macro_rules! tree {
        ($m:expr, $op:ident) => {{
            let m: &[__m512i; 16] = $m;
            let q1: [__m512i; 8] = std::array::from_fn(|i| {
                let (a, b) = (m[2 * i], m[2 * i + 1]);
                $op(_mm512_shuffle_i32x4::<0b01_00_01_00>(a, b), _mm512_shuffle_i32x4::<0b11_10_11_10>(a, b))
            });
            let q2: [__m512i; 4] = std::array::from_fn(|i| {
                let (a, b) = (q1[2 * i], q1[2 * i + 1]);
                $op(_mm512_shuffle_i32x4::<0b10_00_10_00>(a, b), _mm512_shuffle_i32x4::<0b11_01_11_01>(a, b))
            });
            let l3: [__m512i; 2] = std::array::from_fn(|i| {
                let (a, b) = (q2[i], q2[i + 2]);
                $op(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b))
            });
            let l4 = $op(_mm512_unpacklo_epi32(l3[0], l3[1]), _mm512_unpackhi_epi32(l3[0], l3[1]));
            // Lane 4k + j of the last level holds block k + 4j.
            _mm512_permutexvar_epi32(
                _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15),
                l4,
            )
        }};
    }

    /// Sixteen blocks at a time (a shorter last group with the unused lanes zero): per-block
    /// keys' minima and maxima by the tree, scales for the sixteen at once, then each block's
    /// codes, bytes and decoded values with its own broadcast parameters.
    ///
    /// # Safety
    /// AVX-512 F/BW/VL/DQ and F16C; lengths as [`super::quantize_legacy_with`] checked.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,f16c")]
    pub(super) unsafe fn legacy_avx512(
        t: LegacyType,
        src: &[f32],
        dst: &mut [u8],
        decoded: &mut [f32],
        slow: &mut Vec<usize>,
    ) {
        const GROUP: usize = 16;
        let bb = t.block_bytes();
        let symmetric = matches!(t, LegacyType::Q4_0 | LegacyType::Q5_0);
        let five = matches!(t, LegacyType::Q5_0 | LegacyType::Q5_1);
        let abs = _mm512_set1_epi32(0x7fff_ffff);
        let zero = _mm512_setzero_ps();
        let one = _mm512_set1_ps(1.0);
        let (div, bias, top, center) = t.params();
        let (bias, top, center) = (_mm512_set1_ps(bias), _mm512_set1_epi32(top), _mm512_set1_epi32(center));
        let nibble_mask = _mm512_set1_epi32(if five { 0x1f } else { 0x0f });
        let blocks = src.len() / LEGACY_BLOCK;
        for g in (0..blocks).step_by(GROUP) {
            let n = GROUP.min(blocks - g);
            let x = &src[g * LEGACY_BLOCK..(g + n) * LEGACY_BLOCK];
            let (mut lo, mut hi) = ([_mm512_setzero_si512(); GROUP], [_mm512_setzero_si512(); GROUP]);
            for b in 0..n {
                // SAFETY: block b of the group holds 32 f32.
                let (x0, x1) = unsafe {
                    (
                        key(_mm512_loadu_si512(x.as_ptr().add(b * 32).cast())),
                        key(_mm512_loadu_si512(x.as_ptr().add(b * 32 + 16).cast())),
                    )
                };
                lo[b] = _mm512_min_epi32(x0, x1);
                hi[b] = _mm512_max_epi32(x0, x1);
            }
            let kmin = tree!(&lo, _mm512_min_epi32);
            let kmax = tree!(&hi, _mm512_max_epi32);
            let finite = _mm512_cmpgt_epi32_mask(kmin, _mm512_set1_epi32(KEY_NEG_INF))
                & _mm512_cmplt_epi32_mask(kmax, _mm512_set1_epi32(KEY_POS_INF));
            let (fmin, fmax) = (key(kmin), key(kmax));
            let (d, mut ok, m) = if symmetric {
                // The largest magnitude is the minimum's or the maximum's.
                let (amin, amax) = (_mm512_and_si512(fmin, abs), _mm512_and_si512(fmax, abs));
                let pos = _mm512_cmpgt_epu32_mask(amax, amin);
                let neg = _mm512_cmpgt_epu32_mask(amin, amax);
                let same = _mm512_cmpeq_epi32_mask(fmin, fmax);
                let all_zero = _mm512_cmpeq_epi32_mask(amax, _mm512_setzero_si512())
                    & _mm512_cmpeq_epi32_mask(amin, _mm512_setzero_si512());
                // Equal magnitudes: the same value (any copy is it), all zero (ggml's max stays
                // +0.0), or opposite signs (the first in block order: the reference's job).
                let tie = !(pos | neg | same | all_zero);
                let max = _mm512_mask_mov_epi32(_mm512_setzero_si512(), pos | (same & !all_zero), fmax);
                let max = _mm512_mask_mov_epi32(max, neg, fmin);
                let d = _mm512_div_ps(_mm512_castsi512_ps(max), _mm512_set1_ps(div));
                (d, finite & !tie, zero)
            } else {
                let (fmin, fmax) = (_mm512_castsi512_ps(fmin), _mm512_castsi512_ps(fmax));
                // A zero minimum or maximum: its sign is the first zero's (the reference's job).
                let nonzero = _mm512_cmp_ps_mask::<_CMP_NEQ_UQ>(fmin, zero)
                    & _mm512_cmp_ps_mask::<_CMP_NEQ_UQ>(fmax, zero);
                let d = _mm512_div_ps(_mm512_sub_ps(fmax, fmin), _mm512_set1_ps(div));
                let d_finite = _mm512_cmplt_epu32_mask(
                    _mm512_and_si512(_mm512_castps_si512(d), abs),
                    _mm512_set1_epi32(KEY_POS_INF),
                );
                (d, finite & nonzero & d_finite, fmin)
            };
            let nonzero = _mm512_cmp_ps_mask::<_CMP_NEQ_UQ>(d, zero);
            let id = _mm512_maskz_div_ps(nonzero, one, d);
            ok &= _mm512_cmplt_epu32_mask(
                _mm512_and_si512(_mm512_castps_si512(id), abs),
                _mm512_set1_epi32(KEY_POS_INF),
            );
            let (dh, mh) = (
                _mm512_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(d),
                _mm512_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(m),
            );
            let (df, mf) = (_mm512_cvtph_ps(dh), _mm512_cvtph_ps(mh));
            let (mut d_bits, mut m_bits) = ([0u16; GROUP], [0u16; GROUP]);
            let (mut id_l, mut df_l, mut mf_l, mut min_l) =
                ([0f32; GROUP], [0f32; GROUP], [0f32; GROUP], [0f32; GROUP]);
            // SAFETY: sixteen lanes into arrays of sixteen.
            unsafe {
                _mm256_storeu_si256(d_bits.as_mut_ptr().cast(), dh);
                _mm256_storeu_si256(m_bits.as_mut_ptr().cast(), mh);
                _mm512_storeu_ps(id_l.as_mut_ptr(), id);
                _mm512_storeu_ps(df_l.as_mut_ptr(), df);
                _mm512_storeu_ps(mf_l.as_mut_ptr(), mf);
                _mm512_storeu_ps(min_l.as_mut_ptr(), m);
            }
            for b in 0..n {
                if ok & (1 << b) == 0 {
                    slow.push(g + b);
                    continue;
                }
                let (id, min) = (_mm512_set1_ps(id_l[b]), _mm512_set1_ps(min_l[b]));
                // The C's `(x - min)·id + b` (Q4_0/Q5_0: min is 0 and not subtracted), each
                // operation rounded on its own; truncation, then the clamp.
                let code = |x: __m512| {
                    let x = if symmetric { x } else { _mm512_sub_ps(x, min) };
                    let v = _mm512_add_ps(_mm512_mul_ps(x, id), bias);
                    _mm512_min_epi32(_mm512_cvttps_epi32(v), top)
                };
                // SAFETY: block b of the group holds 32 f32.
                let (x0, x1) = unsafe {
                    (_mm512_loadu_ps(x.as_ptr().add(b * 32)), _mm512_loadu_ps(x.as_ptr().add(b * 32 + 16)))
                };
                let (q0, q1) = (code(x0), code(x1));
                let out = &mut dst[(g + b) * bb..(g + b + 1) * bb];
                out[..2].copy_from_slice(&d_bits[b].to_le_bytes());
                let mut at = 2;
                if !symmetric {
                    out[2..4].copy_from_slice(&m_bits[b].to_le_bytes());
                    at = 4;
                }
                if five {
                    // Bit 4 of code j is bit j of qh.
                    let qh = _mm512_test_epi32_mask(q0, _mm512_set1_epi32(0x10)) as u32
                        | (_mm512_test_epi32_mask(q1, _mm512_set1_epi32(0x10)) as u32) << 16;
                    out[at..at + 4].copy_from_slice(&qh.to_le_bytes());
                    at += 4;
                }
                // Byte j: code j in the low nibble, code j + 16 in the high one (the C's u8
                // arithmetic: the low byte of the i32 lanes).
                let (n0, n1) = if five {
                    (
                        _mm512_and_si512(q0, _mm512_set1_epi32(0x0f)),
                        _mm512_and_si512(q1, _mm512_set1_epi32(0x0f)),
                    )
                } else {
                    (q0, q1)
                };
                let qs = _mm512_cvtepi32_epi8(_mm512_or_si512(n0, _mm512_slli_epi32::<4>(n1)));
                // SAFETY: 16 code bytes end the block.
                unsafe { _mm_storeu_si128(out.as_mut_ptr().add(at).cast(), qs) };
                // Decoded from the stored code bits, as the reference's dequantizer reads them.
                let (df, mf) = (_mm512_set1_ps(df_l[b]), _mm512_set1_ps(mf_l[b]));
                let value = |q: __m512i| {
                    let c = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_and_si512(q, nibble_mask), center));
                    let y = _mm512_mul_ps(c, df);
                    if symmetric {
                        y
                    } else {
                        _mm512_add_ps(y, mf)
                    }
                };
                let y = &mut decoded[(g + b) * LEGACY_BLOCK..(g + b + 1) * LEGACY_BLOCK];
                // SAFETY: 32 f32 per block.
                unsafe {
                    _mm512_storeu_ps(y.as_mut_ptr(), value(q0));
                    _mm512_storeu_ps(y.as_mut_ptr().add(16), value(q1));
                }
            }
        }
    }

    /// [`key`] on eight lanes.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn key8(v: __m256i) -> __m256i {
        _mm256_xor_si256(v, _mm256_and_si256(_mm256_srai_epi32::<31>(v), _mm256_set1_epi32(0x7fff_ffff)))
    }

    /// As [`legacy_avx512`], eight blocks at a time with the AVX2 tree of [`crate::q8_0`] and
    /// lane masks in place of mask registers.
    ///
    /// # Safety
    /// AVX2 and F16C; lengths as [`super::quantize_legacy_with`] checked.
    #[target_feature(enable = "avx2,f16c")]
    pub(super) unsafe fn legacy_avx2(
        t: LegacyType,
        src: &[f32],
        dst: &mut [u8],
        decoded: &mut [f32],
        slow: &mut Vec<usize>,
    ) {
        use crate::q8_0::x86::tree8;
        const GROUP: usize = 8;
        let bb = t.block_bytes();
        let symmetric = matches!(t, LegacyType::Q4_0 | LegacyType::Q5_0);
        let five = matches!(t, LegacyType::Q5_0 | LegacyType::Q5_1);
        let abs = _mm256_set1_epi32(0x7fff_ffff);
        let pos_inf = _mm256_set1_epi32(KEY_POS_INF);
        let zero = _mm256_setzero_ps();
        let zero_i = _mm256_setzero_si256();
        let one = _mm256_set1_ps(1.0);
        let (div, bias, top, center) = t.params();
        let (bias, top, center) = (_mm256_set1_ps(bias), _mm256_set1_epi32(top), _mm256_set1_epi32(center));
        let nibble_mask = _mm256_set1_epi32(if five { 0x1f } else { 0x0f });
        let low = _mm256_set1_epi32(0x0f);
        let byte = _mm256_set1_epi32(0xff);
        let blocks = src.len() / LEGACY_BLOCK;
        for g in (0..blocks).step_by(GROUP) {
            let n = GROUP.min(blocks - g);
            let x = &src[g * LEGACY_BLOCK..(g + n) * LEGACY_BLOCK];
            let load = |b: usize| -> [__m256; 4] {
                // SAFETY: block b of the group holds 32 f32.
                std::array::from_fn(|i| unsafe { _mm256_loadu_ps(x.as_ptr().add(b * 32 + 8 * i)) })
            };
            let (mut lo, mut hi) = ([zero_i; GROUP], [zero_i; GROUP]);
            for b in 0..n {
                let k = load(b).map(|v| key8(_mm256_castps_si256(v)));
                lo[b] = _mm256_min_epi32(_mm256_min_epi32(k[0], k[1]), _mm256_min_epi32(k[2], k[3]));
                hi[b] = _mm256_max_epi32(_mm256_max_epi32(k[0], k[1]), _mm256_max_epi32(k[2], k[3]));
            }
            let kmin = tree8!(&lo, _mm256_min_epi32);
            let kmax = tree8!(&hi, _mm256_max_epi32);
            let finite = _mm256_and_si256(
                _mm256_cmpgt_epi32(kmin, _mm256_set1_epi32(KEY_NEG_INF)),
                _mm256_cmpgt_epi32(pos_inf, kmax),
            );
            let (fmin, fmax) = (key8(kmin), key8(kmax));
            // Float bits with the sign cleared are non-negative: signed comparisons order them.
            let finite_bits =
                |v: __m256| _mm256_cmpgt_epi32(pos_inf, _mm256_and_si256(_mm256_castps_si256(v), abs));
            let (d, ok, m) = if symmetric {
                // The largest magnitude is the minimum's or the maximum's.
                let (amin, amax) = (_mm256_and_si256(fmin, abs), _mm256_and_si256(fmax, abs));
                let pos = _mm256_cmpgt_epi32(amax, amin);
                let neg = _mm256_cmpgt_epi32(amin, amax);
                let same = _mm256_cmpeq_epi32(fmin, fmax);
                let all_zero =
                    _mm256_and_si256(_mm256_cmpeq_epi32(amax, zero_i), _mm256_cmpeq_epi32(amin, zero_i));
                // Equal magnitudes: the same value, all zero (ggml's max stays +0.0), or
                // opposite signs (the first in block order: the reference's job).
                let decided = _mm256_or_si256(_mm256_or_si256(pos, neg), _mm256_or_si256(same, all_zero));
                let take_max = _mm256_or_si256(pos, _mm256_andnot_si256(all_zero, same));
                let max = _mm256_and_si256(take_max, fmax);
                let max = _mm256_blendv_epi8(max, fmin, neg);
                let d = _mm256_div_ps(_mm256_castsi256_ps(max), _mm256_set1_ps(div));
                (d, _mm256_and_si256(finite, decided), zero)
            } else {
                let (fmin, fmax) = (_mm256_castsi256_ps(fmin), _mm256_castsi256_ps(fmax));
                // A zero minimum or maximum: its sign is the first zero's (the reference's job).
                let nonzero = _mm256_and_ps(
                    _mm256_cmp_ps::<_CMP_NEQ_UQ>(fmin, zero),
                    _mm256_cmp_ps::<_CMP_NEQ_UQ>(fmax, zero),
                );
                let d = _mm256_div_ps(_mm256_sub_ps(fmax, fmin), _mm256_set1_ps(div));
                let ok =
                    _mm256_and_si256(_mm256_and_si256(finite, _mm256_castps_si256(nonzero)), finite_bits(d));
                (d, ok, fmin)
            };
            let nonzero = _mm256_cmp_ps::<_CMP_NEQ_UQ>(d, zero);
            let id = _mm256_and_ps(nonzero, _mm256_div_ps(one, d));
            let ok = _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_and_si256(ok, finite_bits(id))));
            let (dh, mh) = (
                _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(d),
                _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(m),
            );
            let (df, mf) = (_mm256_cvtph_ps(dh), _mm256_cvtph_ps(mh));
            let (mut d_bits, mut m_bits) = ([0u16; GROUP], [0u16; GROUP]);
            let (mut id_l, mut df_l, mut mf_l, mut min_l) =
                ([0f32; GROUP], [0f32; GROUP], [0f32; GROUP], [0f32; GROUP]);
            // SAFETY: eight lanes into arrays of eight.
            unsafe {
                _mm_storeu_si128(d_bits.as_mut_ptr().cast(), dh);
                _mm_storeu_si128(m_bits.as_mut_ptr().cast(), mh);
                _mm256_storeu_ps(id_l.as_mut_ptr(), id);
                _mm256_storeu_ps(df_l.as_mut_ptr(), df);
                _mm256_storeu_ps(mf_l.as_mut_ptr(), mf);
                _mm256_storeu_ps(min_l.as_mut_ptr(), m);
            }
            for b in 0..n {
                if ok & (1 << b) == 0 {
                    slow.push(g + b);
                    continue;
                }
                let (id, min) = (_mm256_set1_ps(id_l[b]), _mm256_set1_ps(min_l[b]));
                // The C's `(x - min)·id + b` (Q4_0/Q5_0: min is 0 and not subtracted), each
                // operation rounded on its own; truncation, then the clamp.
                let code = |x: __m256| {
                    let x = if symmetric { x } else { _mm256_sub_ps(x, min) };
                    let v = _mm256_add_ps(_mm256_mul_ps(x, id), bias);
                    _mm256_min_epi32(_mm256_cvttps_epi32(v), top)
                };
                let q = load(b).map(code);
                let out = &mut dst[(g + b) * bb..(g + b + 1) * bb];
                out[..2].copy_from_slice(&d_bits[b].to_le_bytes());
                let mut at = 2;
                if !symmetric {
                    out[2..4].copy_from_slice(&m_bits[b].to_le_bytes());
                    at = 4;
                }
                if five {
                    // Bit 4 of code j is bit j of qh: shifted to the sign bit, eight at a time.
                    let qh = q.iter().enumerate().fold(0u32, |acc, (i, &q)| {
                        let signs = _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_slli_epi32::<27>(q)));
                        acc | (signs as u32) << (8 * i)
                    });
                    out[at..at + 4].copy_from_slice(&qh.to_le_bytes());
                    at += 4;
                }
                // Byte j: code j in the low nibble, code j + 16 in the high one (the C's u8
                // arithmetic: the low byte of the i32 lanes).
                let nib = |q: __m256i| if five { _mm256_and_si256(q, low) } else { q };
                let pair = |a: __m256i, b: __m256i| {
                    _mm256_and_si256(_mm256_or_si256(nib(a), _mm256_slli_epi32::<4>(nib(b))), byte)
                };
                // Bytes 0..8 and 8..16 as u16, interleaved by lane halves, then in order.
                let w = _mm256_packus_epi32(pair(q[0], q[2]), pair(q[1], q[3]));
                let w = _mm256_permute4x64_epi64::<0b11_01_10_00>(w);
                let qs = _mm_packus_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256::<1>(w));
                // SAFETY: 16 code bytes end the block.
                unsafe { _mm_storeu_si128(out.as_mut_ptr().add(at).cast(), qs) };
                // Decoded from the stored code bits, as the reference's dequantizer reads them.
                let (df, mf) = (_mm256_set1_ps(df_l[b]), _mm256_set1_ps(mf_l[b]));
                let value = |q: __m256i| {
                    let c = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_and_si256(q, nibble_mask), center));
                    let y = _mm256_mul_ps(c, df);
                    if symmetric {
                        y
                    } else {
                        _mm256_add_ps(y, mf)
                    }
                };
                let y = &mut decoded[(g + b) * LEGACY_BLOCK..(g + b + 1) * LEGACY_BLOCK];
                for (i, &q) in q.iter().enumerate() {
                    // SAFETY: 32 f32 per block.
                    unsafe { _mm256_storeu_ps(y.as_mut_ptr().add(8 * i), value(q)) };
                }
            }
        }
    }
}
