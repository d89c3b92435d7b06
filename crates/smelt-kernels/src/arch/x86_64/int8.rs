//! int8 dot products for `MatMulInteger`, exact.
//!
//! `A` is first rewritten as unsigned `a' = a + α` (α = 128 for i8, else 0) into scratch
//! rows, up to four at a time so that every vector of `B` loaded serves several rows; `B` is read in place and, when unsigned, flipped to signed in registers
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
        Isa::Scalar | Isa::Neon | Isa::NeonDot => return false,
        _ => 32,
    };
    let k_main = k - k % width;
    // Rows per pass: each loaded vector of `B` meets this many rows of `A` (integer sums are
    // exact, so the grouping does not change a bit). AVX2 has half the registers.
    let max_rows = if matches!(isa, Isa::Avx512Vnni | Isa::Avx512) { 4 } else { 2 };
    let mut arows = vec![0u8; max_rows * k];
    let mut d = vec![0i32; max_rows * w];
    let mut bs = vec![0i32; w];
    let mut i = 0;
    while i < m {
        let rows = if m - i >= 4 && max_rows >= 4 {
            4
        } else if m - i >= 2 {
            2
        } else {
            1
        };
        for r in 0..rows {
            for (dst, &src) in arows[r * k..(r + 1) * k].iter_mut().zip(&a[(i + r) * k..(i + r + 1) * k]) {
                *dst = src ^ (alpha as u8);
            }
        }
        let main =
            Main { k, k_main, a: &arows, rows, w, b, j0, j1, b_xor: beta != 0, bsum: need_bsum && i == 0 };
        // SAFETY: `isa` is available on this CPU (arch/mod.rs contract); `main` reads `arows`
        // (rows·k bytes) and rows j0..j1 of `b` (k bytes each, asserted above) below
        // k_main ≤ k, and writes rows·w sums into `d` and w into `bs`.
        unsafe {
            match isa {
                Isa::Avx512Vnni => main.run_avx512vnni(&mut d, &mut bs),
                Isa::AvxVnni => main.run_avxvnni(&mut d, &mut bs),
                Isa::Avx512 => main.run_avx512bw(&mut d, &mut bs),
                _ => main.run_avx2(&mut d, &mut bs),
            }
        }
        for r in 0..rows {
            finish_row(
                plan,
                k,
                k_main,
                a,
                b,
                a_sums,
                i + r,
                &d[r * w..(r + 1) * w],
                &bs,
                j0,
                out,
                ld,
                b_sums,
                need_bsum,
            );
        }
        i += rows;
    }
    true
}

/// Row `i`'s true sums from the vectorized `Σ a'·b'` (`d`, one per column `j0..`) and
/// `Σ b'` (`bs`, taken on the first row): the sign-flip corrections and the scalar tails.
#[allow(clippy::too_many_arguments)]
fn finish_row(
    plan: Int8Plan,
    k: usize,
    k_main: usize,
    a: &[u8],
    b: &[u8],
    a_sums: &[i32],
    i: usize,
    d: &[i32],
    bs: &[i32],
    j0: usize,
    out: &mut [i32],
    ld: usize,
    b_sums: &mut [i32],
    need_bsum: bool,
) {
    let alpha: i32 = if plan.a_signed { 128 } else { 0 };
    let beta: i32 = if plan.b_signed { 0 } else { -128 };
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
    let row = &mut out[i * ld..i * ld + d.len()];
    if k_main == k && !(i == 0 && need_bsum) {
        // No scalar tail and Σb already known: one vectorizable pass.
        let base = beta.wrapping_mul(sa_main).wrapping_add(km.wrapping_mul(alpha).wrapping_mul(beta));
        if need_bsum {
            for ((o, &dj), &sb) in row.iter_mut().zip(d).zip(b_sums.iter()) {
                *o = dj.wrapping_sub(base).wrapping_sub(alpha.wrapping_mul(sb));
            }
        } else {
            for (o, &dj) in row.iter_mut().zip(d) {
                *o = dj.wrapping_sub(base);
            }
        }
        return;
    }
    for (jj, &dj) in d.iter().enumerate() {
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
        let mut v = dj
            .wrapping_sub(beta.wrapping_mul(sa_main))
            .wrapping_sub(alpha.wrapping_mul(sb_main))
            .wrapping_sub(km.wrapping_mul(alpha).wrapping_mul(beta));
        for kk in k_main..k {
            v = v.wrapping_add(a_true(kk).wrapping_mul(b_true(kk)));
        }
        row[jj] = v;
    }
}

/// The vectorized part of `rows` rows of `A` (`a`, flipped to unsigned) against columns
/// `j0..j1`: row `r`'s sums go to `d[r·w ..]`.
struct Main<'a> {
    k: usize,
    k_main: usize,
    a: &'a [u8],
    rows: usize,
    w: usize,
    b: &'a [u8],
    j0: usize,
    j1: usize,
    b_xor: bool,
    bsum: bool,
}

macro_rules! run_tiles {
    ($self:ident, $d:ident, $bs:ident, $tile:ident, $r:literal) => {{
        let mut j = $self.j0;
        while j < $self.j1 {
            let nc = if $self.j1 - j >= 4 { 4 } else { 1 };
            let jj = j - $self.j0;
            // SAFETY: forwarded from the caller (the `run_*` contract); columns j..j+nc ≤ j1.
            unsafe {
                match (nc, $self.b_xor, $self.bsum) {
                    (4, false, false) => $self.$tile::<$r, 4, false, false>(j, &mut $d[jj..], &mut $bs[jj..]),
                    (4, false, true) => $self.$tile::<$r, 4, false, true>(j, &mut $d[jj..], &mut $bs[jj..]),
                    (4, true, false) => $self.$tile::<$r, 4, true, false>(j, &mut $d[jj..], &mut $bs[jj..]),
                    (4, true, true) => $self.$tile::<$r, 4, true, true>(j, &mut $d[jj..], &mut $bs[jj..]),
                    (_, false, false) => $self.$tile::<$r, 1, false, false>(j, &mut $d[jj..], &mut $bs[jj..]),
                    (_, false, true) => $self.$tile::<$r, 1, false, true>(j, &mut $d[jj..], &mut $bs[jj..]),
                    (_, true, false) => $self.$tile::<$r, 1, true, false>(j, &mut $d[jj..], &mut $bs[jj..]),
                    (_, true, true) => $self.$tile::<$r, 1, true, true>(j, &mut $d[jj..], &mut $bs[jj..]),
                }
            }
            j += nc;
        }
    }};
    ($self:ident, $d:ident, $bs:ident, $tile:ident) => {{
        match $self.rows {
            4 => run_tiles!($self, $d, $bs, $tile, 4),
            2 => run_tiles!($self, $d, $bs, $tile, 2),
            _ => run_tiles!($self, $d, $bs, $tile, 1),
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
    /// Row `r` of `A` at byte `kk`.
    #[inline(always)]
    fn a_at(&self, r: usize, kk: usize) -> *const u8 {
        self.a.as_ptr().wrapping_add(r * self.k + kk)
    }

    /// Row `j` of `B` at byte `kk`.
    #[inline(always)]
    fn b_at(&self, j: usize, kk: usize) -> *const u8 {
        self.b.as_ptr().wrapping_add(j * self.k + kk)
    }

    /// # Safety
    /// The CPU has AVX-512 F/BW/VL and AVX512-VNNI; `a` has `rows·k` bytes, `b` rows
    /// `j0..j1`; `d` holds `rows·w` sums.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
    unsafe fn run_avx512vnni(&self, d: &mut [i32], bs: &mut [i32]) {
        run_tiles!(self, d, bs, tile_avx512vnni)
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
    unsafe fn tile_avx512vnni<const R: usize, const NC: usize, const XOR: bool, const BSUM: bool>(
        &self,
        j: usize,
        d: &mut [i32],
        bs: &mut [i32],
    ) {
        let flip = _mm512_set1_epi8(if XOR { -128 } else { 0 });
        let ones = _mm512_set1_epi8(1);
        let mut acc = [[_mm512_setzero_si512(); NC]; R];
        let mut sacc = [_mm512_setzero_si512(); NC];
        let mut kk = 0;
        while kk < self.k_main {
            let mut u = [_mm512_setzero_si512(); R];
            for (r, u) in u.iter_mut().enumerate() {
                // SAFETY: row r < rows of `a` holds k bytes; kk + 64 ≤ k_main ≤ k.
                *u = unsafe { _mm512_loadu_si512(self.a_at(r, kk).cast()) };
            }
            for c in 0..NC {
                // SAFETY: row j+c < j1 of `b` holds k bytes; kk + 64 ≤ k.
                let s = unsafe { _mm512_loadu_si512(self.b_at(j + c, kk).cast()) };
                let s = if XOR { _mm512_xor_si512(s, flip) } else { s };
                for r in 0..R {
                    acc[r][c] = _mm512_dpbusd_epi32(acc[r][c], u[r], s);
                }
                if BSUM {
                    sacc[c] = _mm512_dpbusd_epi32(sacc[c], ones, s);
                }
            }
            kk += 64;
        }
        for c in 0..NC {
            for (r, acc_r) in acc.iter().enumerate() {
                d[r * self.w + c] = _mm512_reduce_add_epi32(acc_r[c]);
            }
            if BSUM {
                bs[c] = _mm512_reduce_add_epi32(sacc[c]);
            }
        }
    }

    /// # Safety
    /// The CPU has AVX2 and AVX-VNNI; `a` has `rows·k` bytes, `b` rows `j0..j1`; `d` holds
    /// `rows·w` sums.
    #[target_feature(enable = "avx2,fma,avxvnni")]
    unsafe fn run_avxvnni(&self, d: &mut [i32], bs: &mut [i32]) {
        run_tiles!(self, d, bs, tile_avxvnni)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,avxvnni")]
    unsafe fn tile_avxvnni<const R: usize, const NC: usize, const XOR: bool, const BSUM: bool>(
        &self,
        j: usize,
        d: &mut [i32],
        bs: &mut [i32],
    ) {
        let flip = _mm256_set1_epi8(if XOR { -128 } else { 0 });
        let ones = _mm256_set1_epi8(1);
        let mut acc = [[_mm256_setzero_si256(); NC]; R];
        let mut sacc = [_mm256_setzero_si256(); NC];
        let mut kk = 0;
        while kk < self.k_main {
            let mut u = [_mm256_setzero_si256(); R];
            for (r, u) in u.iter_mut().enumerate() {
                // SAFETY: row r < rows of `a` holds k bytes; kk + 32 ≤ k_main ≤ k.
                *u = unsafe { _mm256_loadu_si256(self.a_at(r, kk).cast()) };
            }
            for c in 0..NC {
                // SAFETY: row j+c < j1 of `b` holds k bytes; kk + 32 ≤ k.
                let s = unsafe { _mm256_loadu_si256(self.b_at(j + c, kk).cast()) };
                let s = if XOR { _mm256_xor_si256(s, flip) } else { s };
                for r in 0..R {
                    acc[r][c] = _mm256_dpbusd_avx_epi32(acc[r][c], u[r], s);
                }
                if BSUM {
                    sacc[c] = _mm256_dpbusd_avx_epi32(sacc[c], ones, s);
                }
            }
            kk += 32;
        }
        for c in 0..NC {
            for (r, acc_r) in acc.iter().enumerate() {
                d[r * self.w + c] = hsum_epi32_256(acc_r[c]);
            }
            if BSUM {
                bs[c] = hsum_epi32_256(sacc[c]);
            }
        }
    }

    /// # Safety
    /// The CPU has AVX-512 F/BW/VL; `a` has `rows·k` bytes, `b` rows `j0..j1`; `d` holds
    /// `rows·w` sums.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
    unsafe fn run_avx512bw(&self, d: &mut [i32], bs: &mut [i32]) {
        run_tiles!(self, d, bs, tile_avx512bw)
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
    unsafe fn tile_avx512bw<const R: usize, const NC: usize, const XOR: bool, const BSUM: bool>(
        &self,
        j: usize,
        d: &mut [i32],
        bs: &mut [i32],
    ) {
        let flip = _mm256_set1_epi8(if XOR { -128 } else { 0 });
        let ones = _mm512_set1_epi16(1);
        let mut acc = [[_mm512_setzero_si512(); NC]; R];
        let mut sacc = [_mm512_setzero_si512(); NC];
        let mut kk = 0;
        while kk < self.k_main {
            let mut u = [_mm512_setzero_si512(); R];
            for (r, u) in u.iter_mut().enumerate() {
                // SAFETY: row r < rows of `a` holds k bytes; kk + 32 ≤ k_main ≤ k.
                *u = _mm512_cvtepu8_epi16(unsafe { _mm256_loadu_si256(self.a_at(r, kk).cast()) });
            }
            for c in 0..NC {
                // SAFETY: row j+c < j1 of `b` holds k bytes; kk + 32 ≤ k.
                let s = unsafe { _mm256_loadu_si256(self.b_at(j + c, kk).cast()) };
                let s = _mm512_cvtepi8_epi16(if XOR { _mm256_xor_si256(s, flip) } else { s });
                for r in 0..R {
                    acc[r][c] = _mm512_add_epi32(acc[r][c], _mm512_madd_epi16(u[r], s));
                }
                if BSUM {
                    sacc[c] = _mm512_add_epi32(sacc[c], _mm512_madd_epi16(ones, s));
                }
            }
            kk += 32;
        }
        for c in 0..NC {
            for (r, acc_r) in acc.iter().enumerate() {
                d[r * self.w + c] = _mm512_reduce_add_epi32(acc_r[c]);
            }
            if BSUM {
                bs[c] = _mm512_reduce_add_epi32(sacc[c]);
            }
        }
    }

    /// # Safety
    /// The CPU has AVX2; `a` has `rows·k` bytes, `b` rows `j0..j1`; `d` holds `rows·w` sums.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run_avx2(&self, d: &mut [i32], bs: &mut [i32]) {
        run_tiles!(self, d, bs, tile_avx2)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn tile_avx2<const R: usize, const NC: usize, const XOR: bool, const BSUM: bool>(
        &self,
        j: usize,
        d: &mut [i32],
        bs: &mut [i32],
    ) {
        let flip = _mm_set1_epi8(if XOR { -128 } else { 0 });
        let ones = _mm256_set1_epi16(1);
        let mut acc = [[_mm256_setzero_si256(); NC]; R];
        let mut sacc = [_mm256_setzero_si256(); NC];
        let mut kk = 0;
        while kk < self.k_main {
            // The next tile's columns, a line per column every other step: a tile's columns
            // are short runs (k bytes each), which the hardware prefetchers pick up late.
            if kk % 64 == 0 {
                for c in 0..NC {
                    _mm_prefetch::<_MM_HINT_T0>(self.b_at(j + c + NC, kk).cast());
                }
            }
            for half in [0usize, 16] {
                let mut u = [_mm256_setzero_si256(); R];
                for (r, u) in u.iter_mut().enumerate() {
                    // SAFETY: row r < rows of `a` holds k bytes; kk + half + 16 ≤ k_main ≤ k.
                    *u = _mm256_cvtepu8_epi16(unsafe { _mm_loadu_si128(self.a_at(r, kk + half).cast()) });
                }
                for c in 0..NC {
                    // SAFETY: row j+c < j1 of `b` holds k bytes; kk + half + 16 ≤ k.
                    let s = unsafe { _mm_loadu_si128(self.b_at(j + c, kk + half).cast()) };
                    let s = _mm256_cvtepi8_epi16(if XOR { _mm_xor_si128(s, flip) } else { s });
                    for r in 0..R {
                        acc[r][c] = _mm256_add_epi32(acc[r][c], _mm256_madd_epi16(u[r], s));
                    }
                    if BSUM {
                        sacc[c] = _mm256_add_epi32(sacc[c], _mm256_madd_epi16(ones, s));
                    }
                }
            }
            kk += 32;
        }
        for c in 0..NC {
            for (r, acc_r) in acc.iter().enumerate() {
                d[r * self.w + c] = hsum_epi32_256(acc_r[c]);
            }
            if BSUM {
                bs[c] = hsum_epi32_256(sacc[c]);
            }
        }
    }
}
