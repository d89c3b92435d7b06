//! Block int4 dequantize-matmul over ONNX Runtime's `com.microsoft.MatMulNBits` layout
//! (`bits = 4`): `Y (m×n) = A (m×k) · dequant(B)ᵀ`.
//!
//! Layout (ONNX Runtime `docs/ContribOperators.md`, MatMulNBits):
//! - `B`: `[n, k_blocks, blob_size]` u8, `k_blocks = ceil(k / block_size)`, `blob_size =
//!   block_size / 2`; element `kk` of row `j` is byte `j·k_blocks·blob_size + kk / 2` (the
//!   row is padded to whole blocks), **low nibble first** (even `kk` in bits 0-3);
//! - `scales`: `[n · k_blocks]` f32, block `(j, kk / block_size)`;
//! - `zero_points` (optional): `[n · ceil(k_blocks / 2)]` u8, two 4-bit zero points per byte,
//!   low nibble first (block `b` of row `j` in byte `j·ceil(k_blocks/2) + b/2`); 8 when absent;
//! - `block_size`: a power of two ≥ 16.
//!
//! Value: `w[j, kk] = (q - zp) · scale` in f32. The scalar reference computes exactly that
//! and then `Σ_kk a·w` in `kk` order. The SIMD path packs 64 rows at a time into
//! [`crate::Packed4Bit`]'s layout and runs its kernels (`|y - y_ref| ≤ 2·k·ε·Σ|a||w|`); a
//! runtime that keeps the weight packs it once with [`crate::Packed4Bit::from_nbits`].

use crate::dispatch::{selected, Isa};
use crate::packed4::{self, COL_CHUNK};
use crate::parallel::for_column_ranges;

/// A `MatMulNBits` (bits = 4) weight: `n` output features, `k` inputs.
#[derive(Clone, Copy, Debug)]
pub struct NBitsQ4<'a> {
    /// Output features (`N`).
    pub n: usize,
    /// Input features (`K`).
    pub k: usize,
    /// Elements per quantization block: a power of two ≥ 16.
    pub block_size: usize,
    /// Packed codes, `n · k_blocks · block_size / 2` bytes.
    pub b: &'a [u8],
    /// One scale per block, `n · k_blocks`.
    pub scales: &'a [f32],
    /// Packed 4-bit zero points, `n · ceil(k_blocks / 2)` bytes; `None` means 8.
    pub zero_points: Option<&'a [u8]>,
}

impl NBitsQ4<'_> {
    /// `ceil(k / block_size)`.
    pub fn k_blocks(&self) -> usize {
        self.k.div_ceil(self.block_size)
    }

    /// Bytes of codes per row of `B`.
    pub fn row_bytes(&self) -> usize {
        self.k_blocks() * self.block_size / 2
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
            "MatMulNBits: B has {} bytes, expected n·k_blocks·blob_size",
            self.b.len()
        );
        assert_eq!(
            self.scales.len(),
            self.n * kb,
            "MatMulNBits: {} scales, expected n·k_blocks = {}",
            self.scales.len(),
            self.n * kb
        );
        if let Some(z) = self.zero_points {
            assert_eq!(
                z.len(),
                self.n * kb.div_ceil(2),
                "MatMulNBits: {} zero-point bytes, expected n·ceil(k_blocks/2)",
                z.len()
            );
        }
    }

    /// Zero point of block `blk` of row `j`.
    #[inline]
    pub(crate) fn zero_point(&self, j: usize, blk: usize) -> u8 {
        match self.zero_points {
            None => 8,
            Some(z) => (z[j * self.k_blocks().div_ceil(2) + blk / 2] >> (4 * (blk % 2))) & 0xF,
        }
    }

    /// Code of element `kk` of row `j`.
    #[inline]
    fn code(&self, j: usize, kk: usize) -> u8 {
        (self.b[j * self.row_bytes() + kk / 2] >> (4 * (kk % 2))) & 0xF
    }

    /// Row `j` dequantized with the blocks' own scales and zero points (`row.len() == k`).
    pub(crate) fn dequantize_row(&self, j: usize, row: &mut [f32]) {
        let (kb, rb) = (self.k_blocks(), self.row_bytes());
        let codes = &self.b[j * rb..(j + 1) * rb];
        for (blk, chunk) in row.chunks_mut(self.block_size).enumerate() {
            let zp = self.zero_point(j, blk) as i32;
            let scale = self.scales[j * kb + blk];
            for (t, v) in chunk.iter_mut().enumerate() {
                let kk = blk * self.block_size + t;
                let q = (codes[kk / 2] >> (4 * (kk % 2))) & 0xF;
                *v = (q as i32 - zp) as f32 * scale;
            }
        }
    }

    /// The dequantized value of element `kk` of row `j`, with block `blk`'s scale.
    #[inline]
    fn value(&self, j: usize, kk: usize, blk: usize) -> f32 {
        let kb = self.k_blocks();
        (self.code(j, kk) as i32 - self.zero_point(j, blk) as i32) as f32 * self.scales[j * kb + blk]
    }
}

/// `C (m×n) = A (m×k) · dequant(W)ᵀ` for a `MatMulNBits` 4-bit weight; `C` is overwritten.
///
/// # Panics
/// When `block_size` is not a power of two ≥ 16, or a slice length does not match the shapes
/// (`a`: `m·k`, `c`: `m·n`, the weight's as documented on [`NBitsQ4`]).
pub fn matmul_nbits_q4_f32(m: usize, a: &[f32], w: &NBitsQ4<'_>, c: &mut [f32]) {
    matmul_nbits_q4_f32_with(selected().float, m, a, w, c);
}

/// The dequantized weight, `n×k` row-major f32. With `g_idx` (act-order, length `k`),
/// element `kk` takes the scale and zero point of block `g_idx[kk]` instead of
/// `kk / block_size` (its code stays at position `kk`).
///
/// # Panics
/// As [`matmul_nbits_q4_f32`]; when `g_idx` is not `k` long or holds a value outside
/// `0 .. k_blocks` (callers validate it first).
pub fn dequantize_nbits_q4(w: &NBitsQ4<'_>, g_idx: Option<&[i32]>) -> Vec<f32> {
    w.check();
    if let Some(g) = g_idx {
        assert_eq!(g.len(), w.k, "MatMulNBits: g_idx has {} entries, k = {}", g.len(), w.k);
    }
    let kb = w.k_blocks();
    let mut out = vec![0.0f32; w.n * w.k];
    for j in 0..w.n {
        for kk in 0..w.k {
            let blk = match g_idx {
                None => kk / w.block_size,
                Some(g) => {
                    let b = g[kk];
                    assert!(b >= 0 && (b as usize) < kb, "MatMulNBits: g_idx[{kk}] = {b} outside 0..{kb}");
                    b as usize
                }
            };
            out[j * w.k + kk] = w.value(j, kk, blk);
        }
    }
    out
}

/// [`matmul_nbits_q4_f32`] on a chosen instruction set (scalar when the CPU lacks it).
///
/// # Panics
/// As [`matmul_nbits_q4_f32`].
pub fn matmul_nbits_q4_f32_with(isa: Isa, m: usize, a: &[f32], w: &NBitsQ4<'_>, c: &mut [f32]) {
    w.check();
    let (n, k) = (w.n, w.k);
    assert_eq!(a.len(), m * k, "MatMulNBits: A has {} elements, m·k = {}", a.len(), m * k);
    assert_eq!(c.len(), m * n, "MatMulNBits: C has {} elements, m·n = {}", c.len(), m * n);
    let isa = isa.or_scalar();
    if isa == Isa::Scalar || k == 0 {
        for_column_ranges(m, n, COL_CHUNK, m * n * k, c, |j0, j1, out, ld| {
            matmul_nbits_cols_scalar(m, a, w, j0, j1, out, ld);
        });
        return;
    }
    packed4::matmul_nbits_simd(isa, m, a, w, c);
}

/// Scalar reference of [`matmul_nbits_q4_f32`] for columns `j0..j1`: each weight row
/// dequantized (`(q - zp) · scale`), then `Σ a·w` in `kk` order.
pub(crate) fn matmul_nbits_cols_scalar(
    m: usize,
    a: &[f32],
    w: &NBitsQ4<'_>,
    j0: usize,
    j1: usize,
    out: &mut [f32],
    ld: usize,
) {
    let k = w.k;
    let mut row = vec![0.0f32; k];
    for j in j0..j1 {
        w.dequantize_row(j, &mut row);
        for i in 0..m {
            let mut s = 0.0f32;
            for (x, y) in a[i * k..(i + 1) * k].iter().zip(&row) {
                s += x * y;
            }
            out[i * ld + (j - j0)] = s;
        }
    }
}
