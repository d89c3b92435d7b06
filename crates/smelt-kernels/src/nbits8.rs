//! Block int8 dequantize-matmul over ONNX Runtime's `com.microsoft.MatMulNBits` layout with
//! `bits = 8`: `Y (m×n) = A (m×k) · dequant(B)ᵀ`.
//!
//! Layout (ONNX Runtime `docs/ContribOperators.md`, MatMulNBits):
//! - `B`: `[n, k_blocks, block_size]` u8, one code per byte: element `kk` of row `j` is byte
//!   `j·k_blocks·block_size + kk` (the row is padded to whole blocks);
//! - `scales`: `[n · k_blocks]` f32, block `(j, kk / block_size)`;
//! - zero points: one per block, `[n · k_blocks]`. The operator gives them as u8 (one byte per
//!   block at 8 bits) or as floats; [`NBitsQ8`] takes them as f32 either way (a u8 is exact),
//!   128 when absent.
//!
//! Unlike the 4-bit layout this one needs no repacking: a row's codes are already one
//! contiguous run of bytes in element order, which the GEMV kernels read directly.
//!
//! Value: `w[j, kk] = (q - zp) · scale` in f32. The scalar reference computes exactly that
//! and then `Σ_kk a·w` in `kk` order. With up to [`GEMV_MAX_ROWS`] activation rows the SIMD
//! kernels sum `a·(q - zp)` (the same `q - zp` as the reference's, so each product is the
//! reference's `a·w` divided by the scale) over a block and multiply each block's sum by its
//! scale: `|y - y_ref| ≤ 2·k·ε·Σ|a||w|`, as for the 4-bit kernels. With more rows the blocked
//! f32 GEMM dequantizes the weight itself (`blocked::Panels::Q8`; the reference's `w`, bit for
//! bit), one `KC × 32` panel (16 KiB, in L1) at a time just before every row of `A` runs over
//! it, once per call. Dequantizing each 64-row chunk whole beforehand (1 MB of panels at
//! k = 4096, out of L2 by the time the GEMM read them back) cost, in perf samples of both
//! versions alternating in one process on Zen 3 (2 threads, 4096×4096, bs 32, zero points,
//! weights from memory), 1.11–1.20× the CPU time at m = 128 and 1.29–1.49× at m = 16.

use crate::arch;
use crate::blocked;
use crate::dispatch::{selected, Isa};
use crate::f32_gemm;
use crate::packed4::{padded_rows, COL_CHUNK, GEMV_MAX_ROWS};
use crate::parallel::for_column_ranges;

/// The zero point of every block when none are given (`2^(bits - 1)`).
pub const NBITS8_DEFAULT_ZERO_POINT: f32 = 128.0;

/// A `MatMulNBits` (bits = 8) weight: `n` output features, `k` inputs.
#[derive(Clone, Copy, Debug)]
pub struct NBitsQ8<'a> {
    /// Output features (`N`).
    pub n: usize,
    /// Input features (`K`).
    pub k: usize,
    /// Elements per quantization block: a power of two ≥ 16.
    pub block_size: usize,
    /// Codes, `n · k_blocks · block_size` bytes.
    pub b: &'a [u8],
    /// One scale per block, `n · k_blocks`.
    pub scales: &'a [f32],
    /// One zero point per block as f32, `n · k_blocks`; `None` means 128.
    pub zero_points: Option<&'a [f32]>,
}

impl<'a> NBitsQ8<'a> {
    /// `ceil(k / block_size)`.
    pub fn k_blocks(&self) -> usize {
        self.k.div_ceil(self.block_size)
    }

    /// Bytes of codes per row of `B` (`k` padded to whole blocks).
    pub fn row_bytes(&self) -> usize {
        self.k_blocks() * self.block_size
    }

    pub(crate) fn check(&self) {
        assert!(
            self.block_size >= 16 && self.block_size.is_power_of_two(),
            "MatMulNBits: block_size {} is not a power of two ≥ 16",
            self.block_size
        );
        let kb = self.k_blocks();
        assert_eq!(
            self.b.len(),
            self.n * self.row_bytes(),
            "MatMulNBits: B has {} bytes, expected n·k_blocks·block_size",
            self.b.len()
        );
        assert_eq!(
            self.scales.len(),
            self.n * kb,
            "MatMulNBits: {} scales, expected n·k_blocks",
            self.scales.len()
        );
        if let Some(z) = self.zero_points {
            assert_eq!(z.len(), self.n * kb, "MatMulNBits: {} zero points, expected n·k_blocks", z.len());
        }
    }

    /// The bounds the arch GEMV kernels' raw loads rely on (`m` ≤ 4 rows of `a`, each the
    /// padded `k` long; `out` `m` rows of stride `ld` ≥ `n`); returns the padded `k`.
    pub(crate) fn check_gemv(&self, m: usize, a: &[f32], out: &[f32], ld: usize) -> usize {
        let (bs, kb) = (self.block_size, self.k_blocks());
        let kp = kb * bs;
        assert!(bs >= 16 && bs.is_multiple_of(16));
        assert_eq!(self.b.len(), self.n * kp);
        assert_eq!(self.scales.len(), self.n * kb);
        assert!(self.zero_points.is_none_or(|z| z.len() == self.n * kb));
        assert!(m <= 4 && a.len() >= m * kp);
        assert!(m == 0 || (out.len() >= (m - 1) * ld + self.n && ld >= self.n));
        kp
    }

    /// Rows `j0..j1`.
    pub(crate) fn rows(&self, j0: usize, j1: usize) -> NBitsQ8<'a> {
        let (kb, rb) = (self.k_blocks(), self.row_bytes());
        NBitsQ8 {
            n: j1 - j0,
            b: &self.b[j0 * rb..j1 * rb],
            scales: &self.scales[j0 * kb..j1 * kb],
            zero_points: self.zero_points.map(|z| &z[j0 * kb..j1 * kb]),
            ..*self
        }
    }

    /// Zero point of block `blk` of row `j`.
    #[inline]
    pub(crate) fn zero_point(&self, j: usize, blk: usize) -> f32 {
        self.zero_points.map_or(NBITS8_DEFAULT_ZERO_POINT, |z| z[j * self.k_blocks() + blk])
    }

    /// Row `j` dequantized, its first `row.len()` (≤ the padded `k`) elements.
    pub(crate) fn dequantize_row(&self, j: usize, row: &mut [f32]) {
        self.dequantize_part(j, 0, row);
    }

    /// Elements `k0..k0 + part.len()` (≤ the padded `k`) of row `j` dequantized:
    /// `(q - zp) · scale`, the value every kernel's dequantization must reproduce bit for bit.
    pub(crate) fn dequantize_part(&self, j: usize, k0: usize, part: &mut [f32]) {
        let (bs, kb, rb) = (self.block_size, self.k_blocks(), self.row_bytes());
        let codes = &self.b[j * rb + k0..j * rb + k0 + part.len()];
        let mut e = 0;
        while e < part.len() {
            let blk = (k0 + e) / bs;
            let end = ((blk + 1) * bs - k0).min(part.len());
            let (z, s) = (self.zero_point(j, blk), self.scales[j * kb + blk]);
            for (v, &q) in part[e..end].iter_mut().zip(&codes[e..end]) {
                *v = (q as f32 - z) * s;
            }
            e = end;
        }
    }
}

/// The dequantized weight, `n×k` row-major f32.
///
/// # Panics
/// As [`matmul_nbits_q8_f32`].
pub fn dequantize_nbits_q8(w: &NBitsQ8<'_>) -> Vec<f32> {
    w.check();
    let mut out = vec![0.0f32; w.n * w.k];
    for (j, row) in out.chunks_mut(w.k.max(1)).enumerate().take(w.n) {
        w.dequantize_row(j, row);
    }
    out
}

/// `C (m×n) = A (m×k) · dequant(W)ᵀ` for a `MatMulNBits` 8-bit weight; `C` is overwritten.
///
/// # Panics
/// When `block_size` is not a power of two ≥ 16, or a slice length does not match the shapes
/// (`a`: `m·k`, `c`: `m·n`, the weight's as documented on [`NBitsQ8`]).
pub fn matmul_nbits_q8_f32(m: usize, a: &[f32], w: &NBitsQ8<'_>, c: &mut [f32]) {
    matmul_nbits_q8_f32_with(selected().float, m, a, w, c);
}

/// [`matmul_nbits_q8_f32`] on a chosen instruction set (scalar when the CPU lacks it).
///
/// # Panics
/// As [`matmul_nbits_q8_f32`].
pub fn matmul_nbits_q8_f32_with(isa: Isa, m: usize, a: &[f32], w: &NBitsQ8<'_>, c: &mut [f32]) {
    w.check();
    let (n, k) = (w.n, w.k);
    assert_eq!(a.len(), m * k, "MatMulNBits: A has {} elements, m·k = {}", a.len(), m * k);
    assert_eq!(c.len(), m * n, "MatMulNBits: C has {} elements, m·n = {}", c.len(), m * n);
    let isa = isa.or_scalar();
    if isa == Isa::Scalar || k == 0 {
        for_column_ranges(m, n, COL_CHUNK, m * n * k, c, |j0, j1, out, ld| {
            cols_scalar(m, a, &w.rows(j0, j1), out, ld);
        });
        return;
    }
    let a_pad = padded_rows(m, k, w.row_bytes(), a, isa);
    for_column_ranges(m, n, COL_CHUNK, m * n * k / 4, c, |j0, j1, out, ld| {
        cols_simd(isa, m, a, &a_pad, &w.rows(j0, j1), out, ld);
    });
}

/// Weight rows the GEMV kernels take together for `m` activation rows: enough independent
/// accumulator chains without running out of registers. Each output is computed the same way
/// whatever the group (the kernels' contract), so this only sets speed.
pub(crate) fn gemv_group(m: usize) -> usize {
    match m {
        1 => 4,
        2 => 2,
        _ => 1,
    }
}

/// Scalar reference: each weight row dequantized (`(q - zp) · scale`), then `Σ a·w` in `kk`
/// order, into the `m × w.n` block `out` (row stride `ld`).
fn cols_scalar(m: usize, a: &[f32], w: &NBitsQ8<'_>, out: &mut [f32], ld: usize) {
    let k = w.k;
    let mut row = vec![0.0f32; k];
    for j in 0..w.n {
        w.dequantize_row(j, &mut row);
        for i in 0..m {
            let mut s = 0.0f32;
            for (x, y) in a[i * k..(i + 1) * k].iter().zip(&row) {
                s += x * y;
            }
            out[i * ld + j] = s;
        }
    }
}

/// The SIMD tiers for the rows of `w` (a chunk): the GEMV kernels up to [`GEMV_MAX_ROWS`]
/// rows of `A` (`a_pad`: `A` zero-padded to whole blocks, empty when `k` is whole blocks),
/// otherwise the blocked GEMM, which dequantizes the chunk panel by panel (`a_pad`: `A`
/// packed for it; empty where `isa` has no blocked kernels, which then run the f32 GEMM over
/// the dequantized rows).
fn cols_simd(isa: Isa, m: usize, a: &[f32], a_pad: &[f32], w: &NBitsQ8<'_>, out: &mut [f32], ld: usize) {
    let (k, width) = (w.k, w.n);
    if m > GEMV_MAX_ROWS {
        if a_pad.is_empty() {
            let mut deq = vec![0.0f32; width * k];
            for (j, row) in deq.chunks_mut(k).enumerate() {
                w.dequantize_row(j, row);
            }
            f32_gemm::gemm_f32_bt_cols_isa(isa, m, k, a, &deq, 0, width, out, ld);
            return;
        }
        let done = blocked::gemm_cols(isa, m, k, a_pad, blocked::Panels::Q8(w), width, out, ld);
        debug_assert!(done, "blocked kernels exist for {isa}");
        return;
    }
    let ap = if a_pad.is_empty() { a } else { a_pad };
    if !arch::q8_gemv_rows(isa, w, m, ap, out, ld) {
        cols_scalar(m, a, w, out, ld);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocked::NR;

    /// The blocked GEMM on 8-bit panels dequantized `KC` elements at a time gives, bit for
    /// bit, what it gives on whole `k × 32` f32 panels of the scalar dequantization (the
    /// chunk dequantized up front, as before the 8-bit panels): every tier this CPU has, `n`
    /// and `k` that fill no panel, block or `KC` block, zero points on and off.
    #[test]
    fn q8_panels_give_the_blocked_gemm_on_dequantized_panels_bit_for_bit() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let isas: Vec<Isa> = Isa::ALL
            .into_iter()
            .filter(|i| *i != Isa::Scalar && i.is_available() && arch::blocked_row_tile(*i).is_some())
            .collect();
        if isas.is_empty() {
            eprintln!("q8 blocked panels: no blocked kernels on this CPU, skipped");
        }
        for &isa in &isas {
            for (n, k, bs) in
                [(1usize, 1usize, 16usize), (33, 129, 16), (64, 300, 32), (40, 257, 256), (65, 390, 64)]
            {
                for zp in [false, true] {
                    let m = 13;
                    let kb = k.div_ceil(bs);
                    let b: Vec<u8> = (0..n * kb * bs).map(|_| next() as u8).collect();
                    let scales: Vec<f32> =
                        (0..n * kb).map(|_| (next() % 1000) as f32 * 1e-4 + 1e-3).collect();
                    let zps: Vec<f32> = (0..n * kb).map(|_| (next() % 256) as f32 + 0.25).collect();
                    let w = NBitsQ8 {
                        n,
                        k,
                        block_size: bs,
                        b: &b,
                        scales: &scales,
                        zero_points: zp.then_some(&zps[..]),
                    };
                    let a: Vec<f32> = (0..m * k).map(|_| (next() % 2001) as f32 * 1e-3 - 1.0).collect();
                    let pa = blocked::packed_a(isa, m, k, &a).expect("blocked kernels");
                    let mut panels = vec![0.0f32; n.div_ceil(NR) * NR * k];
                    let mut row = vec![0.0f32; k];
                    for j in 0..n {
                        w.dequantize_row(j, &mut row);
                        for (kk, &v) in row.iter().enumerate() {
                            panels[((j / NR) * k + kk) * NR + j % NR] = v;
                        }
                    }
                    let ld = n + 3;
                    let (mut want, mut got) = (vec![f32::NAN; m * ld], vec![f32::NAN; m * ld]);
                    let run = |b, out: &mut [f32]| assert!(blocked::gemm_cols(isa, m, k, &pa, b, n, out, ld));
                    run(blocked::Panels::F32(&panels), &mut want);
                    run(blocked::Panels::Q8(&w), &mut got);
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&got), bits(&want), "{isa} n={n} k={k} bs={bs} zp={zp}");
                }
            }
        }
    }
}
