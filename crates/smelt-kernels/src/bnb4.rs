//! NF4 dequantize-matmul over `com.microsoft.MatMulBnb4`'s layout (`quant_type = 1`):
//! `Y (m×n) = A (m×k) · dequant(B)ᵀ`.
//!
//! Layout (ONNX Runtime `contrib_ops/cpu/quantization/blockwise_quant_block_bnb4.h`, the
//! same as bitsandbytes' `quantize_4bit`): the weight `[n, k]` is flattened; element
//! `e = j·k + kk` is in byte `e / 2`, the **first element in the high nibble**
//! (`byte = q[2i] << 4 | q[2i+1]`); `absmax` holds one f32 per `block_size` consecutive
//! flattened elements (`ceil(n·k / block_size)` of them), so a block may straddle two rows
//! when `k` is not a multiple of `block_size`.
//!
//! Value: `w = NF4[q] · absmax[e / block_size]` in f32, NF4 being bitsandbytes' code
//! ([`NF4_CODE`], the same bits as smelt-quant's and ONNX Runtime's `nf4_qaunt_map`). The
//! scalar reference computes that and sums `a·w` in `kk` order. The SIMD path (when
//! `block_size` divides `k`) packs 64 rows at a time into [`crate::Packed4Bit`]'s layout and
//! runs its kernels (`|y - y_ref| ≤ 2·k·ε·Σ|a||w|`; a runtime that keeps the weight packs it
//! once with [`crate::Packed4Bit::from_nf4`]). Other shapes dequantize 64 rows at a time and
//! run the f32 GEMM kernel.

use crate::dispatch::{selected, Isa};
use crate::f32_gemm;
use crate::packed4::{self, COL_CHUNK};
use crate::parallel::for_column_ranges;

/// bitsandbytes' NF4 code, index order (`NF4_CODE[7] == 0.0`), as f32 bit patterns.
pub const NF4_CODE_BITS: [u32; 16] = [
    0xBF80_0000,
    0xBF32_39B1,
    0xBF06_6B30,
    0xBECA_32A0,
    0xBE91_A24D,
    0xBE3D_353F,
    0xBDBA_7871,
    0x0000_0000,
    0x3DA2_FAFF,
    0x3E24_CAE3,
    0x3E7C_04DD,
    0x3EAD_033A,
    0x3EE1_A4B8,
    0x3F10_07AB,
    0x3F39_13B3,
    0x3F80_0000,
];

/// bitsandbytes' NF4 code as f32 values (-1.0 ... 1.0).
pub const NF4_CODE: [f32; 16] = {
    let mut v = [0.0f32; 16];
    let mut i = 0;
    while i < 16 {
        v[i] = f32::from_bits(NF4_CODE_BITS[i]);
        i += 1;
    }
    v
};

/// A `MatMulBnb4` NF4 weight: `[n, k]` flattened, two codes per byte, high nibble first.
#[derive(Clone, Copy, Debug)]
pub struct Bnb4Nf4<'a> {
    /// Output features (`N`).
    pub n: usize,
    /// Input features (`K`).
    pub k: usize,
    /// Elements per absmax block: a power of two ≥ 16.
    pub block_size: usize,
    /// Packed codes, `ceil(n·k / 2)` bytes.
    pub b: &'a [u8],
    /// One absmax per block, `ceil(n·k / block_size)`.
    pub absmax: &'a [f32],
}

impl Bnb4Nf4<'_> {
    pub(crate) fn check(&self) {
        assert!(
            self.block_size >= 16 && self.block_size.is_power_of_two(),
            "MatMulBnb4: block_size {} is not a power of two ≥ 16",
            self.block_size
        );
        let numel = self.n * self.k;
        assert_eq!(
            self.b.len(),
            numel.div_ceil(2),
            "MatMulBnb4: B has {} bytes, expected ceil(n·k/2)",
            self.b.len()
        );
        assert_eq!(
            self.absmax.len(),
            numel.div_ceil(self.block_size),
            "MatMulBnb4: {} absmax values, expected ceil(n·k/block_size)",
            self.absmax.len()
        );
    }

    /// The dequantized value of element `kk` of row `j`.
    #[inline]
    pub(crate) fn value(&self, j: usize, kk: usize) -> f32 {
        let e = j * self.k + kk;
        let byte = self.b[e / 2];
        let q = if e.is_multiple_of(2) { byte >> 4 } else { byte & 0xF };
        NF4_CODE[q as usize] * self.absmax[e / self.block_size]
    }
}

/// `C (m×n) = A (m×k) · dequant(W)ᵀ` for a `MatMulBnb4` NF4 weight; `C` is overwritten.
///
/// # Panics
/// When `block_size` is not a power of two ≥ 16, or a slice length does not match the shapes
/// (`a`: `m·k`, `c`: `m·n`, the weight's as documented on [`Bnb4Nf4`]).
pub fn matmul_bnb4_nf4_f32(m: usize, a: &[f32], w: &Bnb4Nf4<'_>, c: &mut [f32]) {
    matmul_bnb4_nf4_f32_with(selected().float, m, a, w, c);
}

/// The dequantized weight, `n×k` row-major f32.
///
/// # Panics
/// As [`matmul_bnb4_nf4_f32`].
pub fn dequantize_bnb4_nf4(w: &Bnb4Nf4<'_>) -> Vec<f32> {
    w.check();
    (0..w.n).flat_map(|j| (0..w.k).map(move |kk| w.value(j, kk))).collect()
}

/// [`matmul_bnb4_nf4_f32`] on a chosen instruction set (scalar when the CPU lacks it).
///
/// # Panics
/// As [`matmul_bnb4_nf4_f32`].
pub fn matmul_bnb4_nf4_f32_with(isa: Isa, m: usize, a: &[f32], w: &Bnb4Nf4<'_>, c: &mut [f32]) {
    w.check();
    let (n, k) = (w.n, w.k);
    assert_eq!(a.len(), m * k, "MatMulBnb4: A has {} elements, m·k = {}", a.len(), m * k);
    assert_eq!(c.len(), m * n, "MatMulBnb4: C has {} elements, m·n = {}", c.len(), m * n);
    let isa = isa.or_scalar();
    if isa == Isa::Scalar || k == 0 {
        for_column_ranges(m, n, COL_CHUNK, m * n * k, c, |j0, j1, out, ld| {
            matmul_bnb4_cols_scalar(m, a, w, j0, j1, out, ld);
        });
        return;
    }
    if k.is_multiple_of(w.block_size) {
        packed4::matmul_nf4_simd(isa, m, a, w, c);
        return;
    }
    // Blocks straddle rows: dequantize a chunk of rows, then the f32 GEMM.
    for_column_ranges(m, n, COL_CHUNK, m * n * k, c, |j0, j1, out, ld| {
        let mut deq = vec![0.0f32; (j1 - j0) * k];
        for j in j0..j1 {
            for kk in 0..k {
                deq[(j - j0) * k + kk] = w.value(j, kk);
            }
        }
        f32_gemm::gemm_f32_bt_cols_isa(isa, m, k, a, &deq, 0, j1 - j0, out, ld);
    });
}

/// Scalar reference of [`matmul_bnb4_nf4_f32`] for columns `j0..j1`.
pub(crate) fn matmul_bnb4_cols_scalar(
    m: usize,
    a: &[f32],
    w: &Bnb4Nf4<'_>,
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
