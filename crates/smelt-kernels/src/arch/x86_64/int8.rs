//! int8 dot products for `MatMulInteger`, exact.
//!
//! `A` is first rewritten as unsigned `a' = a + α` (α = 128 for i8, else 0) into a scratch
//! row; `B` is read in place and, when unsigned, flipped to signed in registers
//! (`b' = b + β`, β = -128 via `xor 0x80`). Then `D = Σ a'·b'` runs on `vpdpbusd` (VNNI) or on
//! zero/sign extension to i16 and `vpmaddwd` (no i16 saturation is possible: |u8·i8| ≤ 32640
//! and pairs sum to ≤ 65280 in i32), and
//! `Σ a·b = D - β·Σa - α·Σb - k·α·β` (wrapping), with `Σb' = Σb + k·β` from a second
//! `vpdpbusd` against a vector of ones when needed. Tails shorter than a vector are summed
//! in scalar i32. All integer: every order gives the same bits.

use std::arch::x86_64::*;

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
    let w = j1 - j0;
    assert!(a.len() >= m * k && j1 * k <= b.len() && a_sums.len() >= m && b_sums.len() >= w);
    assert!(m == 0 || (out.len() >= (m - 1) * ld + w && ld >= w));
    let alpha: i32 = if plan.a_signed { 128 } else { 0 };
    let beta: i32 = if plan.b_signed { 0 } else { -128 };
    let need_bsum = plan.need_b_sums || alpha != 0;
    let width = match isa {
        Isa::Avx512Vnni => 64,
        Isa::Scalar | Isa::Neon => return false,
        _ => 32,
    };
    let k_main = k - k % width;
    let ki = k as i32;
    let mut arow = vec![0u8; k];
    let mut d = vec![0i32; w];
    let mut bs = vec![0i32; w];
    for i in 0..m {
        for (dst, &src) in arow.iter_mut().zip(&a[i * k..(i + 1) * k]) {
            *dst = src ^ (alpha as u8);
        }
        let main = Main { k, k_main, a: &arow, b, j0, j1, b_xor: beta != 0, bsum: need_bsum && i == 0 };
        // SAFETY: `isa` is available on this CPU (arch/mod.rs contract); `main` reads `arow`
        // (k bytes) and rows j0..j1 of `b` (k bytes each, asserted above) below k_main ≤ k.
        unsafe {
            match isa {
                Isa::Avx512Vnni => main.run_avx512vnni(&mut d, &mut bs),
                Isa::AvxVnni => main.run_avxvnni(&mut d, &mut bs),
                Isa::Avx512 => main.run_avx512bw(&mut d, &mut bs),
                _ => main.run_avx2(&mut d, &mut bs),
            }
        }
        // Σa over the vectorized part, in true values.
        let a_true = |kk: usize| -> i32 {
            if plan.a_signed {
                a[i * k + kk] as i8 as i32
            } else {
                a[i * k + kk] as i32
            }
        };
        let mut sa_main = a_sums[i];
        for kk in k_main..k {
            sa_main = sa_main.wrapping_sub(a_true(kk));
        }
        let km = k_main as i32;
        for jj in 0..w {
            let j = j0 + jj;
            let b_true = |kk: usize| -> i32 {
                if plan.b_signed {
                    b[j * k + kk] as i8 as i32
                } else {
                    b[j * k + kk] as i32
                }
            };
            if i == 0 && need_bsum {
                // Σb over the vectorized part from Σb', plus the tail.
                let mut s = bs[jj].wrapping_sub(km.wrapping_mul(beta));
                for kk in k_main..k {
                    s = s.wrapping_add(b_true(kk));
                }
                b_sums[jj] = s;
            }
            let sb_main = if need_bsum {
                let mut s = b_sums[jj];
                for kk in k_main..k {
                    s = s.wrapping_sub(b_true(kk));
                }
                s
            } else {
                0
            };
            let mut v = d[jj]
                .wrapping_sub(beta.wrapping_mul(sa_main))
                .wrapping_sub(alpha.wrapping_mul(sb_main))
                .wrapping_sub(km.wrapping_mul(alpha).wrapping_mul(beta));
            for kk in k_main..k {
                v = v.wrapping_add(a_true(kk).wrapping_mul(b_true(kk)));
            }
            out[i * ld + jj] = v;
        }
    }
    let _ = ki;
    true
}

/// The vectorized part of one row of `A` against columns `j0..j1`.
struct Main<'a> {
    k: usize,
    k_main: usize,
    a: &'a [u8],
    b: &'a [u8],
    j0: usize,
    j1: usize,
    b_xor: bool,
    bsum: bool,
}

macro_rules! run_tiles {
    ($self:ident, $d:ident, $bs:ident, $tile:ident) => {{
        let mut j = $self.j0;
        while j < $self.j1 {
            let nc = if $self.j1 - j >= 4 { 4 } else { 1 };
            let jj = j - $self.j0;
            // SAFETY: forwarded from the caller (the `run_*` contract); columns j..j+nc ≤ j1.
            unsafe {
                match (nc, $self.b_xor, $self.bsum) {
                    (4, false, false) => $self.$tile::<4, false, false>(j, &mut $d[jj..], &mut $bs[jj..]),
                    (4, false, true) => $self.$tile::<4, false, true>(j, &mut $d[jj..], &mut $bs[jj..]),
                    (4, true, false) => $self.$tile::<4, true, false>(j, &mut $d[jj..], &mut $bs[jj..]),
                    (4, true, true) => $self.$tile::<4, true, true>(j, &mut $d[jj..], &mut $bs[jj..]),
                    (_, false, false) => $self.$tile::<1, false, false>(j, &mut $d[jj..], &mut $bs[jj..]),
                    (_, false, true) => $self.$tile::<1, false, true>(j, &mut $d[jj..], &mut $bs[jj..]),
                    (_, true, false) => $self.$tile::<1, true, false>(j, &mut $d[jj..], &mut $bs[jj..]),
                    (_, true, true) => $self.$tile::<1, true, true>(j, &mut $d[jj..], &mut $bs[jj..]),
                }
            }
            j += nc;
        }
    }};
}

#[inline]
#[target_feature(enable = "avx2")]
fn hsum_epi32_256(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
    _mm_cvtsi128_si32(s)
}

impl Main<'_> {
    /// # Safety
    /// The CPU has AVX-512 F/BW/VL and AVX512-VNNI; `a` has `k` bytes, `b` rows `j0..j1`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
    unsafe fn run_avx512vnni(&self, d: &mut [i32], bs: &mut [i32]) {
        run_tiles!(self, d, bs, tile_avx512vnni)
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
    unsafe fn tile_avx512vnni<const NC: usize, const XOR: bool, const BSUM: bool>(
        &self,
        j: usize,
        d: &mut [i32],
        bs: &mut [i32],
    ) {
        let flip = _mm512_set1_epi8(if XOR { -128 } else { 0 });
        let ones = _mm512_set1_epi8(1);
        let mut acc = [_mm512_setzero_si512(); NC];
        let mut sacc = [_mm512_setzero_si512(); NC];
        let mut kk = 0;
        while kk < self.k_main {
            // SAFETY: kk + 64 ≤ k_main ≤ k = a.len().
            let u = unsafe { _mm512_loadu_si512(self.a.as_ptr().add(kk).cast()) };
            for c in 0..NC {
                // SAFETY: row j+c < j1 of `b` holds k bytes; kk + 64 ≤ k.
                let s = unsafe { _mm512_loadu_si512(self.b.as_ptr().add((j + c) * self.k + kk).cast()) };
                let s = if XOR { _mm512_xor_si512(s, flip) } else { s };
                acc[c] = _mm512_dpbusd_epi32(acc[c], u, s);
                if BSUM {
                    sacc[c] = _mm512_dpbusd_epi32(sacc[c], ones, s);
                }
            }
            kk += 64;
        }
        for c in 0..NC {
            d[c] = _mm512_reduce_add_epi32(acc[c]);
            if BSUM {
                bs[c] = _mm512_reduce_add_epi32(sacc[c]);
            }
        }
    }

    /// # Safety
    /// The CPU has AVX2 and AVX-VNNI; `a` has `k` bytes, `b` rows `j0..j1`.
    #[target_feature(enable = "avx2,fma,avxvnni")]
    unsafe fn run_avxvnni(&self, d: &mut [i32], bs: &mut [i32]) {
        run_tiles!(self, d, bs, tile_avxvnni)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,avxvnni")]
    unsafe fn tile_avxvnni<const NC: usize, const XOR: bool, const BSUM: bool>(
        &self,
        j: usize,
        d: &mut [i32],
        bs: &mut [i32],
    ) {
        let flip = _mm256_set1_epi8(if XOR { -128 } else { 0 });
        let ones = _mm256_set1_epi8(1);
        let mut acc = [_mm256_setzero_si256(); NC];
        let mut sacc = [_mm256_setzero_si256(); NC];
        let mut kk = 0;
        while kk < self.k_main {
            // SAFETY: kk + 32 ≤ k_main ≤ k = a.len().
            let u = unsafe { _mm256_loadu_si256(self.a.as_ptr().add(kk).cast()) };
            for c in 0..NC {
                // SAFETY: row j+c < j1 of `b` holds k bytes; kk + 32 ≤ k.
                let s = unsafe { _mm256_loadu_si256(self.b.as_ptr().add((j + c) * self.k + kk).cast()) };
                let s = if XOR { _mm256_xor_si256(s, flip) } else { s };
                acc[c] = _mm256_dpbusd_avx_epi32(acc[c], u, s);
                if BSUM {
                    sacc[c] = _mm256_dpbusd_avx_epi32(sacc[c], ones, s);
                }
            }
            kk += 32;
        }
        for c in 0..NC {
            d[c] = hsum_epi32_256(acc[c]);
            if BSUM {
                bs[c] = hsum_epi32_256(sacc[c]);
            }
        }
    }

    /// # Safety
    /// The CPU has AVX-512 F/BW/VL; `a` has `k` bytes, `b` rows `j0..j1`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
    unsafe fn run_avx512bw(&self, d: &mut [i32], bs: &mut [i32]) {
        run_tiles!(self, d, bs, tile_avx512bw)
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
    unsafe fn tile_avx512bw<const NC: usize, const XOR: bool, const BSUM: bool>(
        &self,
        j: usize,
        d: &mut [i32],
        bs: &mut [i32],
    ) {
        let flip = _mm256_set1_epi8(if XOR { -128 } else { 0 });
        let ones = _mm512_set1_epi16(1);
        let mut acc = [_mm512_setzero_si512(); NC];
        let mut sacc = [_mm512_setzero_si512(); NC];
        let mut kk = 0;
        while kk < self.k_main {
            // SAFETY: kk + 32 ≤ k_main ≤ k = a.len().
            let u = _mm512_cvtepu8_epi16(unsafe { _mm256_loadu_si256(self.a.as_ptr().add(kk).cast()) });
            for c in 0..NC {
                // SAFETY: row j+c < j1 of `b` holds k bytes; kk + 32 ≤ k.
                let s = unsafe { _mm256_loadu_si256(self.b.as_ptr().add((j + c) * self.k + kk).cast()) };
                let s = _mm512_cvtepi8_epi16(if XOR { _mm256_xor_si256(s, flip) } else { s });
                acc[c] = _mm512_add_epi32(acc[c], _mm512_madd_epi16(u, s));
                if BSUM {
                    sacc[c] = _mm512_add_epi32(sacc[c], _mm512_madd_epi16(ones, s));
                }
            }
            kk += 32;
        }
        for c in 0..NC {
            d[c] = _mm512_reduce_add_epi32(acc[c]);
            if BSUM {
                bs[c] = _mm512_reduce_add_epi32(sacc[c]);
            }
        }
    }

    /// # Safety
    /// The CPU has AVX2; `a` has `k` bytes, `b` rows `j0..j1`.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run_avx2(&self, d: &mut [i32], bs: &mut [i32]) {
        run_tiles!(self, d, bs, tile_avx2)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn tile_avx2<const NC: usize, const XOR: bool, const BSUM: bool>(
        &self,
        j: usize,
        d: &mut [i32],
        bs: &mut [i32],
    ) {
        let flip = _mm_set1_epi8(if XOR { -128 } else { 0 });
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_si256(); NC];
        let mut sacc = [_mm256_setzero_si256(); NC];
        let mut kk = 0;
        while kk < self.k_main {
            for half in [0usize, 16] {
                // SAFETY: kk + half + 16 ≤ kk + 32 ≤ k_main ≤ k = a.len().
                let u =
                    _mm256_cvtepu8_epi16(unsafe { _mm_loadu_si128(self.a.as_ptr().add(kk + half).cast()) });
                for c in 0..NC {
                    // SAFETY: row j+c < j1 of `b` holds k bytes; kk + half + 16 ≤ k.
                    let s =
                        unsafe { _mm_loadu_si128(self.b.as_ptr().add((j + c) * self.k + kk + half).cast()) };
                    let s = _mm256_cvtepi8_epi16(if XOR { _mm_xor_si128(s, flip) } else { s });
                    acc[c] = _mm256_add_epi32(acc[c], _mm256_madd_epi16(u, s));
                    if BSUM {
                        sacc[c] = _mm256_add_epi32(sacc[c], _mm256_madd_epi16(ones, s));
                    }
                }
            }
            kk += 32;
        }
        for c in 0..NC {
            d[c] = hsum_epi32_256(acc[c]);
            if BSUM {
                bs[c] = hsum_epi32_256(sacc[c]);
            }
        }
    }
}
