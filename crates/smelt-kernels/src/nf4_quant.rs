//! bitsandbytes' NF4 quantizer (`quantize_4bit`, CPU path) with explicit AVX-512 and AVX2, and
//! the decoded values in the same pass, for `smelt convert`.
//!
//! Per block: `m = max |x|` (on the bits as integers, as smelt-quant's `torch_absmax`),
//! `r = 1 / max(m, floor)`, each code the number of the fifteen midpoints between NF4 values
//! that lie strictly below `clamp(x · r, -1, 1)` (`torch.bucketize`), two codes per byte with
//! the first in the high nibble, and the decoded value `NF4_CODE[code] · m`. The same f32
//! operations as the scalar reference (smelt-quant's `quantize_nf4`, which matches
//! bitsandbytes byte for byte): one rounded multiply, a correctly rounded division for `r`, and
//! a search whose comparisons are exact; the count of midpoints below a value is found by a
//! four-step binary search over the sorted midpoints held in one register (`vpermps`), which
//! gives the same count as fifteen comparisons because the midpoints ascend. AVX2 (whose
//! `vpermps` holds eight entries) counts the seven odd-numbered bounds below the value, `c`,
//! then compares the one even-numbered bound between them, bound `2c`, fetched by `vpermps`:
//! the count is `2c` plus that comparison. (A four-step search measured slower on AVX2: each
//! step would need its own table, and its steps depend on each other.)
//!
//! Blocks holding a NaN or an infinity are left to the caller's reference.

use crate::dispatch::Isa;

/// Quantizes `src` (whole blocks of `block` values, `block` a multiple of 16) into `packed`
/// (`src.len() / 2` bytes), `absmax` (one per block) and `decoded` (`src.len()` values), at
/// instruction set `isa`. `floor` is the smallest absmax the scale divides by and `midpoints`
/// the fifteen ascending bounds between the sixteen values of `code`.
///
/// Returns `None` when there is no kernel for `isa` (nothing written), else the blocks left to
/// the caller (their outputs unspecified), in increasing order.
///
/// Panics when the lengths do not agree.
#[allow(clippy::too_many_arguments)]
pub fn quantize_nf4_with(
    isa: Isa,
    src: &[f32],
    block: usize,
    code: &[f32; 16],
    midpoints: &[f32; 15],
    floor: f32,
    packed: &mut [u8],
    absmax: &mut [f32],
    decoded: &mut [f32],
) -> Option<Vec<usize>> {
    assert!(
        block > 0 && block.is_multiple_of(16) && src.len().is_multiple_of(block),
        "whole blocks of a multiple of 16"
    );
    assert_eq!(packed.len(), src.len() / 2, "packed length");
    assert_eq!(absmax.len(), src.len() / block, "absmax length");
    assert_eq!(decoded.len(), src.len(), "decoded length");
    #[cfg(target_arch = "x86_64")]
    {
        let mut slow = Vec::new();
        match isa.or_scalar() {
            Isa::Avx512 | Isa::Avx512Vnni => {
                // SAFETY: `or_scalar` confirmed the CPU features.
                unsafe {
                    x86::nf4_avx512(src, block, code, midpoints, floor, packed, absmax, decoded, &mut slow)
                }
            }
            Isa::Avx2 | Isa::AvxVnni => {
                // SAFETY: as above.
                unsafe {
                    x86::nf4_avx2(src, block, code, midpoints, floor, packed, absmax, decoded, &mut slow)
                }
            }
            _ => return None,
        }
        Some(slow)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (isa, code, midpoints, floor);
        None
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// # Safety
    /// AVX-512 F/BW/VL/DQ; lengths as [`super::quantize_nf4_with`] checked.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
    pub(super) unsafe fn nf4_avx512(
        src: &[f32],
        block: usize,
        code: &[f32; 16],
        midpoints: &[f32; 15],
        floor: f32,
        packed: &mut [u8],
        absmax: &mut [f32],
        decoded: &mut [f32],
        slow: &mut Vec<usize>,
    ) {
        let abs = _mm512_set1_epi32(0x7fff_ffff);
        let mut bounds = [f32::INFINITY; 16];
        bounds[..15].copy_from_slice(midpoints);
        // SAFETY: sixteen f32 each.
        let (bounds, table) = unsafe { (_mm512_loadu_ps(bounds.as_ptr()), _mm512_loadu_ps(code.as_ptr())) };
        let (lo, hi) = (_mm512_set1_ps(-1.0), _mm512_set1_ps(1.0));
        let steps = [8, 4, 2, 1].map(|s| _mm512_set1_epi32(s));
        let low_byte = _mm_set1_epi16(0x00ff);
        for (b, x) in src.chunks_exact(block).enumerate() {
            let mut m = _mm512_setzero_si512();
            for v in x.chunks_exact(16) {
                // SAFETY: sixteen f32.
                let v = unsafe { _mm512_loadu_si512(v.as_ptr().cast()) };
                m = _mm512_max_epu32(m, _mm512_and_si512(v, abs));
            }
            let m = _mm512_reduce_max_epu32(m);
            if m >= 0x7f80_0000 {
                slow.push(b);
                continue;
            }
            let m = f32::from_bits(m);
            absmax[b] = m;
            let r = _mm512_set1_ps(1.0 / m.max(floor));
            let a = _mm512_set1_ps(m);
            for (k, v) in x.chunks_exact(16).enumerate() {
                // SAFETY: sixteen f32.
                let v = unsafe { _mm512_loadu_ps(v.as_ptr()) };
                let v = _mm512_max_ps(_mm512_min_ps(_mm512_mul_ps(v, r), hi), lo);
                // Binary search for the count of bounds below v: probe bound idx + step - 1.
                let mut idx = _mm512_setzero_si512();
                for step in steps {
                    let probe = _mm512_sub_epi32(_mm512_add_epi32(idx, step), _mm512_set1_epi32(1));
                    let bound = _mm512_permutexvar_ps(probe, bounds);
                    let below = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(bound, v);
                    idx = _mm512_mask_add_epi32(idx, below, idx, step);
                }
                let at = b * block + 16 * k;
                // SAFETY: sixteen decoded values and eight packed bytes at `at` (`at` is even).
                unsafe {
                    _mm512_storeu_ps(
                        decoded.as_mut_ptr().add(at),
                        _mm512_mul_ps(_mm512_permutexvar_ps(idx, table), a),
                    );
                    // Bytes c0..c15; as u16 lanes (c[2i] low, c[2i+1] high): (c[2i] << 4) | c[2i+1].
                    let c = _mm512_cvtepi32_epi8(idx);
                    let pairs =
                        _mm_and_si128(_mm_or_si128(_mm_slli_epi16::<4>(c), _mm_srli_epi16::<8>(c)), low_byte);
                    _mm_storel_epi64(packed.as_mut_ptr().add(at / 2).cast(), _mm_packus_epi16(pairs, pairs));
                }
            }
        }
    }

    /// As [`nf4_avx512`], sixteen values (two registers) at a time.
    ///
    /// # Safety
    /// AVX2; lengths as [`super::quantize_nf4_with`] checked.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn nf4_avx2(
        src: &[f32],
        block: usize,
        code: &[f32; 16],
        midpoints: &[f32; 15],
        floor: f32,
        packed: &mut [u8],
        absmax: &mut [f32],
        decoded: &mut [f32],
        slow: &mut Vec<usize>,
    ) {
        let abs = _mm256_set1_epi32(0x7fff_ffff);
        let b = midpoints;
        let evens = _mm256_setr_ps(b[0], b[2], b[4], b[6], b[8], b[10], b[12], b[14]);
        // SAFETY: sixteen f32.
        let (code_lo, code_hi) =
            unsafe { (_mm256_loadu_ps(code.as_ptr()), _mm256_loadu_ps(code.as_ptr().add(8))) };
        let (lo, hi) = (_mm256_set1_ps(-1.0), _mm256_set1_ps(1.0));
        let low_byte = _mm_set1_epi16(0x00ff);
        for (bk, x) in src.chunks_exact(block).enumerate() {
            let mut m = _mm256_setzero_si256();
            for v in x.chunks_exact(8) {
                // SAFETY: eight f32.
                let v = unsafe { _mm256_loadu_si256(v.as_ptr().cast()) };
                m = _mm256_max_epu32(m, _mm256_and_si256(v, abs));
            }
            let m = _mm_max_epu32(_mm256_castsi256_si128(m), _mm256_extracti128_si256::<1>(m));
            let m = _mm_max_epu32(m, _mm_shuffle_epi32::<0b01_00_11_10>(m));
            let m = _mm_max_epu32(m, _mm_shuffle_epi32::<0b10_11_00_01>(m));
            let m = _mm_cvtsi128_si32(m) as u32;
            if m >= 0x7f80_0000 {
                slow.push(bk);
                continue;
            }
            let m = f32::from_bits(m);
            absmax[bk] = m;
            let r = _mm256_set1_ps(1.0 / m.max(floor));
            let a = _mm256_set1_ps(m);
            // The count of bounds strictly below each value, and the decoded value.
            let search = |v: __m256| {
                let v = _mm256_max_ps(_mm256_min_ps(_mm256_mul_ps(v, r), hi), lo);
                // Each comparison's mask is -1 where the bound is below: minus the masks counts.
                // The odd bounds below first (c), then the one even bound between them.
                let below = |bound: __m256| _mm256_castps_si256(_mm256_cmp_ps::<_CMP_LT_OQ>(bound, v));
                let (mut c0, mut c1) = (_mm256_setzero_si256(), _mm256_setzero_si256());
                for i in [1, 5, 9] {
                    c0 = _mm256_sub_epi32(c0, below(_mm256_set1_ps(b[i])));
                    c1 = _mm256_sub_epi32(c1, below(_mm256_set1_ps(b[i + 2])));
                }
                let c = _mm256_sub_epi32(_mm256_add_epi32(c0, c1), below(_mm256_set1_ps(b[13])));
                let even = _mm256_permutevar8x32_ps(evens, c);
                let idx = _mm256_sub_epi32(_mm256_add_epi32(c, c), below(even));
                let value = _mm256_blendv_ps(
                    _mm256_permutevar8x32_ps(code_lo, idx),
                    _mm256_permutevar8x32_ps(code_hi, idx),
                    _mm256_castsi256_ps(_mm256_slli_epi32::<28>(idx)),
                );
                (idx, _mm256_mul_ps(value, a))
            };
            for (k, v) in x.chunks_exact(16).enumerate() {
                // SAFETY: sixteen f32.
                let (v0, v1) = unsafe { (_mm256_loadu_ps(v.as_ptr()), _mm256_loadu_ps(v.as_ptr().add(8))) };
                let ((i0, y0), (i1, y1)) = (search(v0), search(v1));
                let at = bk * block + 16 * k;
                // SAFETY: sixteen decoded values and eight packed bytes at `at` (`at` is even).
                unsafe {
                    _mm256_storeu_ps(decoded.as_mut_ptr().add(at), y0);
                    _mm256_storeu_ps(decoded.as_mut_ptr().add(at + 8), y1);
                    // Codes as u16 in order (the pack interleaves 128-bit halves), then bytes.
                    let w = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packus_epi32(i0, i1));
                    let c = _mm_packus_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256::<1>(w));
                    // As u16 lanes (c[2i] low, c[2i+1] high): (c[2i] << 4) | c[2i+1].
                    let pairs =
                        _mm_and_si128(_mm_or_si128(_mm_slli_epi16::<4>(c), _mm_srli_epi16::<8>(c)), low_byte);
                    _mm_storel_epi64(packed.as_mut_ptr().add(at / 2).cast(), _mm_packus_epi16(pairs, pairs));
                }
            }
        }
    }
}
