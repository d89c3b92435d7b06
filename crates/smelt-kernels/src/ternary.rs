//! Ternary matmul over smelt's 2-bit ternary packing (`ternary2` in docs/blob-format.md):
//! `Y (m×n) = A (m×k) · Wᵀ`, `W = q · scale`, `q ∈ {-1, 0, 1}`.
//!
//! Layout (smelt-quant `ternary::pack_2bit`): the weight `[n, k]` is flattened; element
//! `e = j·k + kk` is in byte `e / 4`, bits `2·(e % 4) .. +2` (first element in the lowest
//! bits), code `q + 1` ∈ {0, 1, 2}. Code 3 is never written and readers reject it; here it
//! counts as +1 in every implementation. `scale` is the blob's stored scale, BitNet's absmean
//! `mean|W|` (the reciprocal of smelt-quant's `TernaryTensor::scale`).
//!
//! The scalar reference computes `w = q as f32 · scale` and sums `a·w` in `kk` order. The SIMD
//! version sums `a` where `q = 1` minus `a` where `q = -1` in lane partial sums (exactly the
//! lane sums of `a·q`, since `a·(±1)` is exact) and multiplies by `scale` once:
//! `|y - y_ref| ≤ 2·k·ε·Σ|a||w|`. It needs `k % 4 == 0` (rows start on a byte); other
//! shapes, and `m > 4`, dequantize 64 rows at a time and run the f32 GEMM kernel.

use crate::arch;
use crate::dispatch::{selected, Isa};
use crate::f32_gemm;
use crate::parallel::for_column_ranges;

const COL_CHUNK: usize = 64;

/// A ternary weight in smelt's 2-bit packing.
#[derive(Clone, Copy, Debug)]
pub struct Ternary2<'a> {
    /// Output features (rows of `W`).
    pub n: usize,
    /// Input features (columns of `W`).
    pub k: usize,
    /// Packed codes, `ceil(n·k / 4)` bytes.
    pub packed: &'a [u8],
    /// The multiplier of the codes (`mean|W|`).
    pub scale: f32,
}

/// `q` for a stored 2-bit code (3 counts as +1, see the module documentation).
#[inline]
pub(crate) fn ternary_q(code: u8) -> i8 {
    match code & 3 {
        0 => -1,
        1 => 0,
        _ => 1,
    }
}

impl Ternary2<'_> {
    fn check(&self) {
        assert_eq!(
            self.packed.len(),
            (self.n * self.k).div_ceil(4),
            "ternary: {} packed bytes, expected ceil(n·k/4)",
            self.packed.len()
        );
    }

    #[inline]
    pub(crate) fn q(&self, j: usize, kk: usize) -> i8 {
        let e = j * self.k + kk;
        ternary_q(self.packed[e / 4] >> (2 * (e % 4)))
    }

    #[inline]
    fn value(&self, j: usize, kk: usize) -> f32 {
        self.q(j, kk) as f32 * self.scale
    }
}

/// `C (m×n) = A (m×k) · Wᵀ` for a 2-bit ternary weight; `C` is overwritten.
///
/// # Panics
/// When a slice length does not match the shapes (`a`: `m·k`, `c`: `m·n`, `packed`:
/// `ceil(n·k/4)`).
pub fn matmul_ternary2_f32(m: usize, a: &[f32], w: &Ternary2<'_>, c: &mut [f32]) {
    matmul_ternary2_f32_with(selected().float, m, a, w, c);
}

/// The dequantized weight, `n×k` row-major f32.
///
/// # Panics
/// As [`matmul_ternary2_f32`].
pub fn dequantize_ternary2(w: &Ternary2<'_>) -> Vec<f32> {
    w.check();
    (0..w.n).flat_map(|j| (0..w.k).map(move |kk| w.value(j, kk))).collect()
}

/// [`matmul_ternary2_f32`] on a chosen instruction set (scalar when the CPU lacks it).
///
/// # Panics
/// As [`matmul_ternary2_f32`].
pub fn matmul_ternary2_f32_with(isa: Isa, m: usize, a: &[f32], w: &Ternary2<'_>, c: &mut [f32]) {
    w.check();
    let (n, k) = (w.n, w.k);
    assert_eq!(a.len(), m * k, "ternary: A has {} elements, m·k = {}", a.len(), m * k);
    assert_eq!(c.len(), m * n, "ternary: C has {} elements, m·n = {}", c.len(), m * n);
    let isa = isa.or_scalar();
    if isa == Isa::Scalar || k == 0 {
        for_column_ranges(m, n, COL_CHUNK, m * n * k, c, |j0, j1, out, ld| {
            matmul_ternary_cols_scalar(m, a, w, j0, j1, out, ld);
        });
        return;
    }
    if m > 4 || k % 4 != 0 {
        for_column_ranges(m, n, COL_CHUNK, m * n * k, c, |j0, j1, out, ld| {
            let mut deq = vec![0.0f32; (j1 - j0) * k];
            for j in j0..j1 {
                for kk in 0..k {
                    deq[(j - j0) * k + kk] = w.value(j, kk);
                }
            }
            f32_gemm::gemm_f32_bt_cols_isa(isa, m, k, a, &deq, 0, j1 - j0, out, ld);
        });
        return;
    }
    let scale = w.scale;
    for_column_ranges(m, n, COL_CHUNK, m * n * k / 8, c, |j0, j1, out, ld| {
        if !arch::ternary_gemv_cols(isa, m, k, a, w.packed, j0, j1, out, ld) {
            matmul_ternary_cols_scalar(m, a, w, j0, j1, out, ld);
            return;
        }
        for i in 0..m {
            for o in &mut out[i * ld..i * ld + (j1 - j0)] {
                *o *= scale;
            }
        }
    });
}

/// Scalar reference of [`matmul_ternary2_f32`] for columns `j0..j1`.
pub(crate) fn matmul_ternary_cols_scalar(
    m: usize,
    a: &[f32],
    w: &Ternary2<'_>,
    j0: usize,
    j1: usize,
    out: &mut [f32],
    ld: usize,
) {
    let k = w.k;
    let mut row = vec![0.0f32; k];
    for j in j0..j1 {
        for (kk, v) in row.iter_mut().enumerate() {
            *v = w.value(j, kk);
        }
        for i in 0..m {
            let mut s = 0.0f32;
            for (x, y) in a[i * k..(i + 1) * k].iter().zip(&row) {
                s += x * y;
            }
            out[i * ld + (j - j0)] = s;
        }
    }
}
