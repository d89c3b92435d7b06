//! 8-bit integer matrix products with exact i32 results: ONNX `MatMulInteger`.
//!
//! `C[i, j] = Σ_k (A[i, k] - za_i) · (B[k, j] - zb_j)` where `A` and `B` are each `u8` or
//! `i8` ([`Int8Matrix`]) and the zero points are per tensor or per row of `A` / per column of
//! `B` ([`ZeroPoints`]). Arithmetic is i32 wrapping (two's complement), as ONNX says the
//! accumulation may overflow only in 32 bits; every implementation gives the same bits because
//! the SIMD ones only regroup sums, which is exact modulo 2³².
//!
//! SIMD versions compute `Σ A·B` with `vpdpbusd` (u8 × i8 → i32, AVX-VNNI / AVX512-VNNI) or
//! with zero-extension to i16 and `vpmaddwd` (AVX2 / AVX-512BW; products of a u8 and an i8
//! sum in pairs to at most 2·255·128, so nothing saturates, unlike `vpmaddubsw`), then apply
//! the zero points with row and column sums:
//! `Σ(a - za)(b - zb) = Σab - zb·Σa - za·Σb + k·za·zb`.

use crate::arch;
use crate::dispatch::{selected, Isa};
use crate::parallel::for_column_ranges;

/// Column chunk handed to one task.
const COL_CHUNK: usize = 64;

/// A row-major matrix of 8-bit integers, unsigned or signed (ONNX `MatMulInteger`'s T1/T2).
#[derive(Clone, Copy, Debug)]
pub enum Int8Matrix<'a> {
    /// `uint8` elements.
    U8(&'a [u8]),
    /// `int8` elements.
    I8(&'a [i8]),
}

impl Int8Matrix<'_> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Int8Matrix::U8(s) => s.len(),
            Int8Matrix::I8(s) => s.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` as i32.
    #[inline]
    pub(crate) fn get(&self, i: usize) -> i32 {
        match self {
            Int8Matrix::U8(s) => s[i] as i32,
            Int8Matrix::I8(s) => s[i] as i32,
        }
    }

    /// The raw bytes (an `i8` as its two's-complement byte).
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Int8Matrix::U8(s) => s,
            Int8Matrix::I8(s) => bytemuck::cast_slice(s),
        }
    }

    pub(crate) fn is_signed(&self) -> bool {
        matches!(self, Int8Matrix::I8(_))
    }
}

/// Zero points of `MatMulInteger`: one for the whole matrix, or one per row of `A` (length
/// `m`) / per column of `B` (length `n`).
#[derive(Clone, Copy, Debug)]
pub enum ZeroPoints<'a> {
    /// One zero point for every element (0 when the ONNX input is absent).
    PerTensor(i32),
    /// One zero point per row of `A` or per column of `B`.
    PerIndex(&'a [i32]),
}

impl ZeroPoints<'_> {
    #[inline]
    pub(crate) fn get(&self, i: usize) -> i32 {
        match self {
            ZeroPoints::PerTensor(z) => *z,
            ZeroPoints::PerIndex(z) => z[i],
        }
    }

    /// One value when every per-index zero point is the same (the exact product is the same
    /// integer either way: ONNX Runtime's tools write symmetric weights' zeros per column).
    pub(crate) fn collapsed(self) -> Self {
        match self {
            ZeroPoints::PerIndex(z) if !z.is_empty() && z.iter().all(|&v| v == z[0]) => {
                ZeroPoints::PerTensor(z[0])
            }
            other => other,
        }
    }

    pub(crate) fn check(&self, what: &str, expected: usize) {
        if let ZeroPoints::PerIndex(z) = self {
            assert_eq!(
                z.len(),
                expected,
                "matmul_integer: {what} has {} zero points, expected {expected}",
                z.len()
            );
        }
    }

    fn any_nonzero(&self) -> bool {
        match self {
            ZeroPoints::PerTensor(z) => *z != 0,
            ZeroPoints::PerIndex(z) => z.iter().any(|&v| v != 0),
        }
    }
}

/// `C (m×n, i32) = (A (m×k) - za) · (B (k×n) - zb)`, ONNX `MatMulInteger`, exact (i32
/// wrapping). `B` is transposed into a scratch buffer first: callers with a constant `B`
/// should transpose it once and call [`matmul_integer_bt`].
///
/// # Panics
/// When `a.len() != m·k`, `b.len() != k·n`, `c.len() != m·n`, or a per-index zero-point
/// slice is not `m` (for `A`) or `n` (for `B`) long.
#[allow(clippy::too_many_arguments)]
pub fn matmul_integer(
    m: usize,
    n: usize,
    k: usize,
    a: Int8Matrix<'_>,
    a_zero: ZeroPoints<'_>,
    b: Int8Matrix<'_>,
    b_zero: ZeroPoints<'_>,
    c: &mut [i32],
) {
    matmul_integer_with(selected().int8, m, n, k, a, a_zero, b, b_zero, c);
}

/// [`matmul_integer`] with `B` given transposed, `n×k` row-major (row `j` is column `j` of
/// `MatMulInteger`'s `B`); `b_zero` is still per column of the product (length `n`).
///
/// # Panics
/// As [`matmul_integer`], with `b.len() != n·k`.
#[allow(clippy::too_many_arguments)]
pub fn matmul_integer_bt(
    m: usize,
    n: usize,
    k: usize,
    a: Int8Matrix<'_>,
    a_zero: ZeroPoints<'_>,
    b: Int8Matrix<'_>,
    b_zero: ZeroPoints<'_>,
    c: &mut [i32],
) {
    matmul_integer_bt_with(selected().int8, m, n, k, a, a_zero, b, b_zero, c);
}

/// Transposes a row-major `rows×cols` byte matrix (e.g. `MatMulInteger`'s `B`, once, for
/// [`matmul_integer_bt`]).
///
/// # Panics
/// When `src.len() != rows·cols`.
pub fn transpose_bytes(rows: usize, cols: usize, src: &[u8]) -> Vec<u8> {
    crate::transpose::transpose(rows, cols, src)
}

/// [`matmul_integer`] on a chosen instruction set (scalar when the CPU lacks it).
///
/// # Panics
/// As [`matmul_integer`].
#[allow(clippy::too_many_arguments)]
pub fn matmul_integer_with(
    isa: Isa,
    m: usize,
    n: usize,
    k: usize,
    a: Int8Matrix<'_>,
    a_zero: ZeroPoints<'_>,
    b: Int8Matrix<'_>,
    b_zero: ZeroPoints<'_>,
    c: &mut [i32],
) {
    assert_eq!(b.len(), k * n, "matmul_integer: B has {} elements, k·n = {}", b.len(), k * n);
    let bt = transpose_bytes(k, n, b.bytes());
    let bt_view = match b {
        Int8Matrix::U8(_) => Int8Matrix::U8(&bt),
        Int8Matrix::I8(_) => Int8Matrix::I8(bytemuck::cast_slice(&bt)),
    };
    matmul_integer_bt_with(isa, m, n, k, a, a_zero, bt_view, b_zero, c);
}

/// [`matmul_integer_bt`] on a chosen instruction set (scalar when the CPU lacks it).
///
/// # Panics
/// As [`matmul_integer_bt`].
#[allow(clippy::too_many_arguments)]
pub fn matmul_integer_bt_with(
    isa: Isa,
    m: usize,
    n: usize,
    k: usize,
    a: Int8Matrix<'_>,
    a_zero: ZeroPoints<'_>,
    b: Int8Matrix<'_>,
    b_zero: ZeroPoints<'_>,
    c: &mut [i32],
) {
    matmul_integer_bt_sums(isa, m, n, k, a, a_zero, b, b_zero, None, c);
}

/// [`matmul_integer_bt_with`], given Σb per column (`col_sums`, true values, wrapping: what
/// the kernels would otherwise add up on every call that has `A`'s zero point; `PackedInt8`
/// keeps them from packing).
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul_integer_bt_sums(
    isa: Isa,
    m: usize,
    n: usize,
    k: usize,
    a: Int8Matrix<'_>,
    a_zero: ZeroPoints<'_>,
    b: Int8Matrix<'_>,
    b_zero: ZeroPoints<'_>,
    col_sums: Option<&[i32]>,
    c: &mut [i32],
) {
    assert_eq!(a.len(), m * k, "matmul_integer: A has {} elements, m·k = {}", a.len(), m * k);
    assert_eq!(b.len(), n * k, "matmul_integer: B has {} elements, n·k = {}", b.len(), n * k);
    assert_eq!(c.len(), m * n, "matmul_integer: C has {} elements, m·n = {}", c.len(), m * n);
    a_zero.check("A", m);
    b_zero.check("B", n);
    let isa = isa.or_scalar();
    if isa == Isa::Scalar {
        for_column_ranges(m, n, COL_CHUNK, m * n * k, c, |j0, j1, out, ld| {
            matmul_integer_bt_cols_scalar(m, k, a, a_zero, b, b_zero, j0, j1, out, ld);
        });
        return;
    }
    // Σa per row of A (exact, wrapping), needed for b's zero point and for the sign flips.
    let a_sums: Vec<i32> =
        (0..m).map(|i| (0..k).fold(0i32, |s, kk| s.wrapping_add(a.get(i * k + kk)))).collect();
    if let Some(sums) = col_sums {
        assert_eq!(sums.len(), n, "matmul_integer: {} column sums for {n} columns", sums.len());
    }
    // The kernels sum B's columns only when they are needed and not given.
    let need_b_sums = a_zero.any_nonzero() && col_sums.is_none();
    let plan = arch::Int8Plan { a_signed: a.is_signed(), b_signed: b.is_signed(), need_b_sums };
    let (ab, bb) = (a.bytes(), b.bytes());
    for_column_ranges(m, n, COL_CHUNK, m * n * k, c, |j0, j1, out, ld| {
        // Raw Σ a·b and Σ b for this column range, then the zero points.
        let w = j1 - j0;
        let mut b_sums = match col_sums {
            Some(sums) => sums[j0..j1].to_vec(),
            None => vec![0i32; w],
        };
        if !arch::int8_dot_cols(isa, plan, m, k, ab, bb, &a_sums, j0, j1, out, ld, &mut b_sums) {
            matmul_integer_bt_cols_scalar(m, k, a, a_zero, b, b_zero, j0, j1, out, ld);
            return;
        }
        if !a_zero.any_nonzero() && !b_zero.any_nonzero() {
            return;
        }
        let ki = k as i32;
        for i in 0..m {
            let (za, sa) = (a_zero.get(i), a_sums[i]);
            let row = &mut out[i * ld..i * ld + w];
            // The same wrapping terms as the per-element definition, hoisted per row.
            match b_zero {
                ZeroPoints::PerTensor(zb) => {
                    let c = zb.wrapping_mul(sa).wrapping_sub(ki.wrapping_mul(za).wrapping_mul(zb));
                    for (o, &sb) in row.iter_mut().zip(&b_sums) {
                        *o = o.wrapping_sub(c).wrapping_sub(za.wrapping_mul(sb));
                    }
                }
                ZeroPoints::PerIndex(zbs) => {
                    for ((o, &sb), &zb) in row.iter_mut().zip(&b_sums).zip(&zbs[j0..j1]) {
                        *o = o
                            .wrapping_sub(zb.wrapping_mul(sa))
                            .wrapping_sub(za.wrapping_mul(sb))
                            .wrapping_add(ki.wrapping_mul(za).wrapping_mul(zb));
                    }
                }
            }
        }
    });
}

/// Scalar reference of [`matmul_integer_bt`] for columns `j0..j1`: the definition, term by
/// term, in i32 wrapping arithmetic.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul_integer_bt_cols_scalar(
    m: usize,
    k: usize,
    a: Int8Matrix<'_>,
    a_zero: ZeroPoints<'_>,
    b: Int8Matrix<'_>,
    b_zero: ZeroPoints<'_>,
    j0: usize,
    j1: usize,
    out: &mut [i32],
    ld: usize,
) {
    for i in 0..m {
        let za = a_zero.get(i);
        for j in j0..j1 {
            let zb = b_zero.get(j);
            let mut s = 0i32;
            for kk in 0..k {
                let x = a.get(i * k + kk).wrapping_sub(za);
                let y = b.get(j * k + kk).wrapping_sub(zb);
                s = s.wrapping_add(x.wrapping_mul(y));
            }
            out[i * ld + (j - j0)] = s;
        }
    }
}
