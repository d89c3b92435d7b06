//! ggml's Q8_0 quantizer (`quantize_row_q8_0_ref` in ggml-quants.c) with explicit SIMD, and the
//! decoded values (`dequantize_row_q8_0`) in the same pass, for `smelt convert`.
//!
//! Per block of 32 weights: `amax = max |x|`, `d = amax / 127`, `id = d ? 1/d : 0`, the scale
//! stored as `fp16(d)`, and codes `roundf(x * id)` (half away from zero); the decoded weight is
//! `code * f32(fp16(d))`. Every step is the reference's own f32 operation: one multiply (no
//! fused multiply-add), the same division, IEEE round-to-nearest-even to f16 (F16C, which is
//! what ggml's own conversion computes for finite values), and `roundf` reproduced exactly as
//! `trunc(v)` plus one when `|v - trunc(v)| >= 0.5` (the subtraction is exact below 2^23). The
//! maximum of absolute values is taken on their bits as integers, which orders non-negative
//! floats as floats do and leaves no tie to break (`|-0.0|` is `+0.0`).
//!
//! The scalar reference is smelt-quant's `BlockQ8_0::quantize`, transcribed from the C; this
//! module only has the x86-64 versions, and leaves to the caller the blocks their fast path
//! does not take: a block holding a NaN or an infinity, or one so small that `1/d` overflows,
//! where ggml's casts of non-finite products decide the bytes. smelt-quant's tests compare the
//! two on ties, zeros, subnormals, huge values and non-finite weights at every level.

use crate::dispatch::Isa;

/// Weights per Q8_0 block.
pub const Q8_0_BLOCK: usize = 32;
/// Bytes per Q8_0 block: the f16 scale then 32 signed codes.
pub const Q8_0_BYTES: usize = 34;

/// Quantizes `src` (a whole number of blocks) into `dst` (34 bytes per block) and, when given,
/// writes the decoded weights into `decoded` (same length as `src`), at instruction set `isa`.
///
/// Returns `None` when `isa` (or the CPU) has no such kernel: nothing was written, and the
/// caller runs its reference. Otherwise returns the indices of the blocks left for the caller
/// (see the module documentation), in increasing order: their bytes in `dst` and values in
/// `decoded` are unspecified.
///
/// Panics when the lengths do not agree.
pub fn quantize_q8_0_with(
    isa: Isa,
    src: &[f32],
    dst: &mut [u8],
    decoded: Option<&mut [f32]>,
) -> Option<Vec<usize>> {
    assert_eq!(src.len() % Q8_0_BLOCK, 0, "a whole number of Q8_0 blocks");
    assert_eq!(dst.len(), src.len() / Q8_0_BLOCK * Q8_0_BYTES, "Q8_0 output length");
    if let Some(d) = &decoded {
        assert_eq!(d.len(), src.len(), "decoded length");
    }
    #[cfg(target_arch = "x86_64")]
    {
        if !std::is_x86_feature_detected!("f16c") {
            return None;
        }
        let mut slow = Vec::new();
        match isa.or_scalar() {
            // SAFETY: `or_scalar` and the check above confirmed the CPU features.
            Isa::Avx512 | Isa::Avx512Vnni => unsafe { x86::q8_0_avx512(src, dst, decoded, &mut slow) },
            // SAFETY: as above.
            Isa::Avx2 | Isa::AvxVnni => unsafe { x86::q8_0_avx2(src, dst, decoded, &mut slow) },
            _ => return None,
        }
        Some(slow)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (isa, decoded);
        None
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use super::{Q8_0_BLOCK, Q8_0_BYTES};
    use std::arch::x86_64::*;

    /// Bits of +infinity: absolute values at or above are infinite or NaN.
    const INF_BITS: i32 = 0x7f80_0000;

    /// Sixteen blocks at a time: their maxima are gathered into one register by a reduction
    /// tree, so the divisions and the f16 conversions of the scales are one instruction each
    /// for all sixteen instead of a chain of dependent scalar steps per block; then each block
    /// is rounded with its own broadcast `1/d`. A tail of fewer than sixteen blocks takes the
    /// same steps with the unused lanes zero.
    ///
    /// # Safety
    /// AVX-512 F/BW/VL/DQ and F16C; lengths as [`super::quantize_q8_0_with`] checked.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,f16c")]
    pub(super) unsafe fn q8_0_avx512(
        src: &[f32],
        dst: &mut [u8],
        mut decoded: Option<&mut [f32]>,
        slow: &mut Vec<usize>,
    ) {
        const GROUP: usize = 16;
        let abs = _mm512_set1_epi32(0x7fff_ffff);
        let half = _mm512_set1_ps(0.5);
        let one = _mm512_set1_ps(1.0);
        let sign = _mm512_set1_epi32(i32::MIN);
        // Lane 4k + j of the tree's last level holds block k + 4j: block b is lane 4(b mod 4) + b/4.
        let order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
        let blocks = src.len() / Q8_0_BLOCK;
        for g in (0..blocks).step_by(GROUP) {
            let n = GROUP.min(blocks - g);
            let x = &src[g * Q8_0_BLOCK..(g + n) * Q8_0_BLOCK];
            // Per block, the larger of |x| over its two registers, as integer bits.
            let mut m: [__m512i; GROUP] = [_mm512_setzero_si512(); GROUP];
            for (b, m) in m.iter_mut().enumerate().take(n) {
                // SAFETY: block b of the group holds 32 f32.
                let (x0, x1) = unsafe {
                    (
                        _mm512_loadu_si512(x.as_ptr().add(b * 32).cast()),
                        _mm512_loadu_si512(x.as_ptr().add(b * 32 + 16).cast()),
                    )
                };
                *m = _mm512_max_epu32(_mm512_and_si512(x0, abs), _mm512_and_si512(x1, abs));
            }
            // Reduction tree: pairs of 128-bit quarters, twice, then pairs of 32-bit lanes, twice.
            let q1: [__m512i; 8] = std::array::from_fn(|i| {
                let (a, b) = (m[2 * i], m[2 * i + 1]);
                _mm512_max_epu32(
                    _mm512_shuffle_i32x4::<0b01_00_01_00>(a, b),
                    _mm512_shuffle_i32x4::<0b11_10_11_10>(a, b),
                )
            });
            let q2: [__m512i; 4] = std::array::from_fn(|i| {
                let (a, b) = (q1[2 * i], q1[2 * i + 1]);
                _mm512_max_epu32(
                    _mm512_shuffle_i32x4::<0b10_00_10_00>(a, b),
                    _mm512_shuffle_i32x4::<0b11_01_11_01>(a, b),
                )
            });
            let l3: [__m512i; 2] = std::array::from_fn(|i| {
                let (a, b) = (q2[i], q2[i + 2]);
                _mm512_max_epu32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b))
            });
            let l4 =
                _mm512_max_epu32(_mm512_unpacklo_epi32(l3[0], l3[1]), _mm512_unpackhi_epi32(l3[0], l3[1]));
            let amax = _mm512_permutexvar_epi32(order, l4);
            // d = amax / 127, id = d ? 1/d : 0 (correctly rounded divisions, as the scalar C).
            let finite = _mm512_cmplt_epu32_mask(amax, _mm512_set1_epi32(INF_BITS));
            let d = _mm512_div_ps(_mm512_castsi512_ps(amax), _mm512_set1_ps(127.0));
            let nonzero = _mm512_cmp_ps_mask::<_CMP_NEQ_UQ>(d, _mm512_setzero_ps());
            let id = _mm512_maskz_div_ps(nonzero, one, d);
            let id_finite = _mm512_cmp_epu32_mask::<_MM_CMPINT_LT>(
                _mm512_and_si512(_mm512_castps_si512(id), abs),
                _mm512_set1_epi32(INF_BITS),
            );
            let fast = finite & id_finite;
            let h = _mm512_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(d);
            let df = _mm512_cvtph_ps(h);
            let (mut h_bits, mut id_l, mut df_l) = ([0u16; GROUP], [0f32; GROUP], [0f32; GROUP]);
            // SAFETY: sixteen lanes into arrays of sixteen.
            unsafe {
                _mm256_storeu_si256(h_bits.as_mut_ptr().cast(), h);
                _mm512_storeu_ps(id_l.as_mut_ptr(), id);
                _mm512_storeu_ps(df_l.as_mut_ptr(), df);
            }
            for b in 0..n {
                if fast & (1 << b) == 0 {
                    slow.push(g + b);
                    continue;
                }
                let id = _mm512_set1_ps(id_l[b]);
                let round = |x: __m512| {
                    let v = _mm512_mul_ps(x, id);
                    let t = _mm512_roundscale_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(v);
                    let frac = _mm512_abs_ps(_mm512_sub_ps(v, t));
                    let up = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(frac, half);
                    // ±1 with v's sign where the fraction is at least a half.
                    let step = _mm512_castsi512_ps(_mm512_or_si512(
                        _mm512_castps_si512(one),
                        _mm512_and_si512(_mm512_castps_si512(v), sign),
                    ));
                    _mm512_cvttps_epi32(_mm512_mask_add_ps(t, up, t, step))
                };
                // SAFETY: block b of the group holds 32 f32.
                let (x0, x1) = unsafe {
                    (_mm512_loadu_ps(x.as_ptr().add(b * 32)), _mm512_loadu_ps(x.as_ptr().add(b * 32 + 16)))
                };
                let (q0, q1) = (round(x0), round(x1));
                let out = &mut dst[(g + b) * Q8_0_BYTES..(g + b + 1) * Q8_0_BYTES];
                out[..2].copy_from_slice(&h_bits[b].to_le_bytes());
                // SAFETY: 32 code bytes follow the scale.
                unsafe {
                    _mm_storeu_si128(out.as_mut_ptr().add(2).cast(), _mm512_cvtepi32_epi8(q0));
                    _mm_storeu_si128(out.as_mut_ptr().add(18).cast(), _mm512_cvtepi32_epi8(q1));
                }
                if let Some(dec) = decoded.as_deref_mut() {
                    let df = _mm512_set1_ps(df_l[b]);
                    let y = &mut dec[(g + b) * Q8_0_BLOCK..(g + b + 1) * Q8_0_BLOCK];
                    // SAFETY: 32 f32 per block.
                    unsafe {
                        _mm512_storeu_ps(y.as_mut_ptr(), _mm512_mul_ps(_mm512_cvtepi32_ps(q0), df));
                        _mm512_storeu_ps(y.as_mut_ptr().add(16), _mm512_mul_ps(_mm512_cvtepi32_ps(q1), df));
                    }
                }
            }
        }
    }

    /// Lane `b` of the result is `op` over the eight lanes of `m[b]`: the AVX2 reduction tree
    /// (pairs of 128-bit halves, pairs of 64-bit halves, pairs of 32-bit lanes, then one
    /// permute into block order), shared with [`crate::legacy_quant`].
    macro_rules! tree8 {
        ($m:expr, $op:ident) => {{
            let m: &[__m256i; 8] = $m;
            // Lane half 0 of t[i] holds block 2i's partial results, half 1 block 2i + 1's.
            let t: [__m256i; 4] = std::array::from_fn(|i| {
                let (a, b) = (m[2 * i], m[2 * i + 1]);
                $op(_mm256_permute2x128_si256::<0x20>(a, b), _mm256_permute2x128_si256::<0x31>(a, b))
            });
            // Half 0 of u[j]: blocks 4j and 4j + 2, two lanes each; half 1: 4j + 1 and 4j + 3.
            let u: [__m256i; 2] = std::array::from_fn(|j| {
                let (a, b) = (t[2 * j], t[2 * j + 1]);
                $op(_mm256_unpacklo_epi64(a, b), _mm256_unpackhi_epi64(a, b))
            });
            let (a, b) = (_mm256_castsi256_ps(u[0]), _mm256_castsi256_ps(u[1]));
            // Shuffles move bits untouched: lanes hold blocks 0, 2, 4, 6, 1, 3, 5, 7.
            let v = $op(
                _mm256_castps_si256(_mm256_shuffle_ps::<0b10_00_10_00>(a, b)),
                _mm256_castps_si256(_mm256_shuffle_ps::<0b11_01_11_01>(a, b)),
            );
            _mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
        }};
    }
    pub(crate) use tree8;

    /// As [`q8_0_avx512`], eight blocks at a time (four registers of eight per block): the
    /// tree gathers their maxima into one register, so the divisions and f16 conversions are
    /// one instruction each for the eight.
    ///
    /// # Safety
    /// AVX2 and F16C; lengths as [`super::quantize_q8_0_with`] checked.
    #[target_feature(enable = "avx2,f16c")]
    pub(super) unsafe fn q8_0_avx2(
        src: &[f32],
        dst: &mut [u8],
        mut decoded: Option<&mut [f32]>,
        slow: &mut Vec<usize>,
    ) {
        const GROUP: usize = 8;
        let abs = _mm256_set1_epi32(0x7fff_ffff);
        let inf = _mm256_set1_epi32(INF_BITS);
        let half = _mm256_set1_ps(0.5);
        let one = _mm256_set1_ps(1.0);
        let sign = _mm256_set1_epi32(i32::MIN);
        let blocks = src.len() / Q8_0_BLOCK;
        for g in (0..blocks).step_by(GROUP) {
            let n = GROUP.min(blocks - g);
            let x = &src[g * Q8_0_BLOCK..(g + n) * Q8_0_BLOCK];
            let load = |b: usize| -> [__m256; 4] {
                // SAFETY: block b of the group holds 32 f32.
                std::array::from_fn(|i| unsafe { _mm256_loadu_ps(x.as_ptr().add(b * 32 + 8 * i)) })
            };
            let bits = |v: __m256| _mm256_and_si256(_mm256_castps_si256(v), abs);
            let mut m = [_mm256_setzero_si256(); GROUP];
            for (b, m) in m.iter_mut().enumerate().take(n) {
                let xs = load(b);
                *m = _mm256_max_epu32(
                    _mm256_max_epu32(bits(xs[0]), bits(xs[1])),
                    _mm256_max_epu32(bits(xs[2]), bits(xs[3])),
                );
            }
            let amax = tree8!(&m, _mm256_max_epu32);
            // d = amax / 127, id = d ? 1/d : 0 (correctly rounded divisions, as the scalar C);
            // the bits are non-negative, so signed comparisons order them.
            let finite = _mm256_cmpgt_epi32(inf, amax);
            let d = _mm256_div_ps(_mm256_castsi256_ps(amax), _mm256_set1_ps(127.0));
            let nonzero = _mm256_cmp_ps::<_CMP_NEQ_UQ>(d, _mm256_setzero_ps());
            let id = _mm256_and_ps(nonzero, _mm256_div_ps(one, d));
            let id_finite = _mm256_cmpgt_epi32(inf, bits(id));
            let fast = _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_and_si256(finite, id_finite)));
            let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(d);
            let df = _mm256_cvtph_ps(h);
            let (mut h_bits, mut id_l, mut df_l) = ([0u16; GROUP], [0f32; GROUP], [0f32; GROUP]);
            // SAFETY: eight lanes into arrays of eight.
            unsafe {
                _mm_storeu_si128(h_bits.as_mut_ptr().cast(), h);
                _mm256_storeu_ps(id_l.as_mut_ptr(), id);
                _mm256_storeu_ps(df_l.as_mut_ptr(), df);
            }
            for b in 0..n {
                if fast & (1 << b) == 0 {
                    slow.push(g + b);
                    continue;
                }
                let id = _mm256_set1_ps(id_l[b]);
                let round = |x: __m256| {
                    let v = _mm256_mul_ps(x, id);
                    let t = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(v);
                    let frac = _mm256_and_ps(_mm256_sub_ps(v, t), _mm256_castsi256_ps(abs));
                    let up = _mm256_cmp_ps::<_CMP_GE_OQ>(frac, half);
                    let step = _mm256_or_ps(one, _mm256_and_ps(v, _mm256_castsi256_ps(sign)));
                    _mm256_cvttps_epi32(_mm256_add_ps(t, _mm256_and_ps(up, step)))
                };
                let xs = load(b);
                let q: [__m256i; 4] = std::array::from_fn(|i| round(xs[i]));
                // i32 → i16 → i8 with saturation (codes are within ±127), then undo the lane
                // interleaving of the two packs.
                let w01 = _mm256_packs_epi32(q[0], q[1]);
                let w23 = _mm256_packs_epi32(q[2], q[3]);
                let bytes = _mm256_packs_epi16(w01, w23);
                let bytes = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
                let out = &mut dst[(g + b) * Q8_0_BYTES..(g + b + 1) * Q8_0_BYTES];
                out[..2].copy_from_slice(&h_bits[b].to_le_bytes());
                // SAFETY: 32 code bytes follow the scale.
                unsafe { _mm256_storeu_si256(out.as_mut_ptr().add(2).cast(), bytes) };
                if let Some(dec) = decoded.as_deref_mut() {
                    let df = _mm256_set1_ps(df_l[b]);
                    let y = &mut dec[(g + b) * Q8_0_BLOCK..(g + b + 1) * Q8_0_BLOCK];
                    for (i, q) in q.iter().enumerate() {
                        // SAFETY: 32 f32 per block.
                        unsafe {
                            _mm256_storeu_ps(
                                y.as_mut_ptr().add(8 * i),
                                _mm256_mul_ps(_mm256_cvtepi32_ps(*q), df),
                            )
                        };
                    }
                }
            }
        }
    }
}
