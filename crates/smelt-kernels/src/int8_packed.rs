//! `MatMulInteger` with a constant `B` packed once ([`PackedInt8`]), exact like
//! [`matmul_integer`](crate::matmul_integer).
//!
//! With AVX512-VNNI, `B` is stored for an outer-product kernel: panels of 32 columns, and
//! within a panel, for every group of 4 consecutive `k`, the 4 bytes of each column side by
//! side (128 bytes: two vectors of 16 columns × 4 bytes), converted to signed
//! (`b' = b + β`, β = -128 for u8, 0 for i8) and zero-padded to a multiple of 4 in `k` and
//! of 32 in `n`. A row of `A` is made unsigned (`a' = a + α`, α = 128 for i8) and padded
//! likewise; `vpdpbusd` of the broadcast 4 bytes of `a'` against the panel adds
//! `Σ a'·b'` into 16 columns at once, with no horizontal sums. Column sums of `B` are kept
//! from packing, so the result is
//! `Σ(a - za)(b - zb) = D - (β + zb)·Σa - (α + za)·Σb - k·α·β + k·za·zb` (wrapping i32).
//! Other instruction sets keep `Bᵀ` and run [`matmul_integer_bt`](crate::matmul_integer_bt).

use crate::arch;
use crate::dispatch::{selected, Isa};
use crate::int8::{matmul_integer_bt_with, Int8Matrix, ZeroPoints};
use crate::parallel::for_column_ranges;
use crate::transpose::transpose;

/// Columns per panel of the VNNI layout.
pub(crate) const PANEL: usize = 32;

/// Column chunk handed to one task (two panels).
const COL_CHUNK: usize = 64;

#[derive(Clone, Debug, PartialEq)]
enum Layout {
    /// The VNNI panels (see the module doc) and Σb per column (true values).
    Vnni { panels: Vec<u8>, col_sums: Vec<i32> },
    /// `Bᵀ`, `n×k` bytes, for [`matmul_integer_bt`](crate::matmul_integer_bt).
    Bt(Vec<u8>),
}

/// A constant `MatMulInteger` `B` (`k×n`, int8 or uint8) in the layout the chosen kernel
/// reads.
#[derive(Clone, Debug, PartialEq)]
pub struct PackedInt8 {
    k: usize,
    n: usize,
    signed: bool,
    layout: Layout,
}

impl PackedInt8 {
    /// Packs `b` (`k×n`, row-major) for the kernel [`selected`] picks.
    ///
    /// # Panics
    /// When `b.len() != k·n`.
    pub fn new(k: usize, n: usize, b: Int8Matrix<'_>) -> PackedInt8 {
        PackedInt8::new_for(selected().int8, k, n, b)
    }

    /// Packs `b` for `isa` (the VNNI panels for AVX512-VNNI on a CPU that has it, `Bᵀ`
    /// otherwise).
    ///
    /// # Panics
    /// When `b.len() != k·n`.
    pub fn new_for(isa: Isa, k: usize, n: usize, b: Int8Matrix<'_>) -> PackedInt8 {
        assert_eq!(b.len(), k * n, "PackedInt8: B has {} elements, k·n = {}", b.len(), k * n);
        let signed = b.is_signed();
        let layout = if isa.or_scalar() == Isa::Avx512Vnni {
            let flip = if signed { 0 } else { 0x80 };
            let (k4, np) = (k.div_ceil(4), n.div_ceil(PANEL));
            let bytes = b.bytes();
            let mut panels = vec![0u8; np * k4 * PANEL * 4];
            for (p, panel) in panels.chunks_mut((k4 * PANEL * 4).max(1)).enumerate() {
                for kk in 0..k {
                    for c in 0..PANEL.min(n - p * PANEL) {
                        panel[(kk / 4) * PANEL * 4 + c * 4 + kk % 4] = bytes[kk * n + p * PANEL + c] ^ flip;
                    }
                }
            }
            let mut col_sums = vec![0i32; n];
            for kk in 0..k {
                for (j, s) in col_sums.iter_mut().enumerate() {
                    *s = s.wrapping_add(b.get(kk * n + j));
                }
            }
            Layout::Vnni { panels, col_sums }
        } else {
            Layout::Bt(transpose(k, n, b.bytes()))
        };
        PackedInt8 { k, n, signed, layout }
    }

    /// `B`'s shape, `[k, n]`.
    pub fn shape(&self) -> [usize; 2] {
        [self.k, self.n]
    }
}

/// `C (m×n, i32) = (A (m×k) - za) · (B - zb)`, ONNX `MatMulInteger` with `B` packed by
/// [`PackedInt8::new`]; exact (i32 wrapping), the same bits as
/// [`matmul_integer`](crate::matmul_integer).
///
/// # Panics
/// When `a.len() != m·k`, `c.len() != m·n`, or a per-index zero-point slice is not `m` (for
/// `A`) or `n` (for `B`) long.
pub fn matmul_integer_packed(
    m: usize,
    a: Int8Matrix<'_>,
    a_zero: ZeroPoints<'_>,
    b: &PackedInt8,
    b_zero: ZeroPoints<'_>,
    c: &mut [i32],
) {
    matmul_integer_packed_with(selected().int8, m, a, a_zero, b, b_zero, c);
}

/// [`matmul_integer_packed`] on a chosen instruction set (a layout packed for another one,
/// or an instruction set the CPU lacks, runs the scalar definition).
///
/// # Panics
/// As [`matmul_integer_packed`].
pub fn matmul_integer_packed_with(
    isa: Isa,
    m: usize,
    a: Int8Matrix<'_>,
    a_zero: ZeroPoints<'_>,
    b: &PackedInt8,
    b_zero: ZeroPoints<'_>,
    c: &mut [i32],
) {
    let (k, n) = (b.k, b.n);
    let (panels, col_sums) = match &b.layout {
        Layout::Bt(v) => {
            let bt = if b.signed { Int8Matrix::I8(bytemuck::cast_slice(v)) } else { Int8Matrix::U8(v) };
            return matmul_integer_bt_with(isa, m, n, k, a, a_zero, bt, b_zero, c);
        }
        Layout::Vnni { panels, col_sums } => (panels, col_sums),
    };
    assert_eq!(a.len(), m * k, "matmul_integer: A has {} elements, m·k = {}", a.len(), m * k);
    assert_eq!(c.len(), m * n, "matmul_integer: C has {} elements, m·n = {}", c.len(), m * n);
    a_zero.check("A", m);
    b_zero.check("B", n);
    let k4 = k.div_ceil(4) * 4;
    // a' = a + α as unsigned bytes, rows padded with zeros to k4; Σa per row in true values.
    let alpha: i32 = if a.is_signed() { 128 } else { 0 };
    let mut ap = vec![0u8; m * k4];
    for (i, row) in ap.chunks_mut(k4.max(1)).take(m).enumerate() {
        for (dst, &src) in row.iter_mut().zip(&a.bytes()[i * k..(i + 1) * k]) {
            *dst = src ^ (alpha as u8);
        }
    }
    let a_sums: Vec<i32> = match a {
        Int8Matrix::U8(v) => v
            .chunks(k.max(1))
            .take(m)
            .map(|r| r.iter().fold(0i32, |s, &x| s.wrapping_add(x as i32)))
            .collect(),
        Int8Matrix::I8(v) => v
            .chunks(k.max(1))
            .take(m)
            .map(|r| r.iter().fold(0i32, |s, &x| s.wrapping_add(x as i32)))
            .collect(),
    };
    let a_sums = if k == 0 { vec![0; m] } else { a_sums };
    let beta: i32 = if b.signed { 0 } else { -128 };
    let ki = k as i32;
    let isa = isa.or_scalar();
    let panel_len = k4 / 4 * PANEL * 4;
    // Many rows: A in tiles of 8 rows for the k-blocked kernel.
    let apt = if m >= TILED_MIN_ROWS && isa == Isa::Avx512Vnni { tile_a(m, k4, &ap) } else { Vec::new() };
    for_column_ranges(m, n, COL_CHUNK, m * n * k, c, |j0, j1, out, ld| {
        for p0 in (j0..j1).step_by(PANEL) {
            let panel = &panels[p0 / PANEL * panel_len..(p0 / PANEL + 1) * panel_len];
            let w = PANEL.min(n - p0);
            let o = &mut out[p0 - j0..];
            let done = !apt.is_empty() && arch::int8_packed_panel_tiled(isa, m, k4, &apt, panel, w, o, ld);
            if !done && !arch::int8_packed_panel(isa, m, k4, &ap, panel, w, o, ld) {
                int8_packed_panel_scalar(m, k4, &ap, panel, w, o, ld);
            }
            let sums_b = &col_sums[p0..p0 + w];
            for (i, &sa) in a_sums.iter().enumerate() {
                let za = a_zero.get(i);
                let ca = beta.wrapping_mul(sa).wrapping_add(ki.wrapping_mul(alpha).wrapping_mul(beta));
                let fa = alpha.wrapping_add(za);
                let row = &mut o[i * ld..i * ld + w];
                match b_zero {
                    ZeroPoints::PerTensor(zb) => {
                        let c0 = ca
                            .wrapping_add(zb.wrapping_mul(sa))
                            .wrapping_sub(ki.wrapping_mul(za).wrapping_mul(zb));
                        for (v, &sb) in row.iter_mut().zip(sums_b) {
                            *v = v.wrapping_sub(c0).wrapping_sub(fa.wrapping_mul(sb));
                        }
                    }
                    ZeroPoints::PerIndex(zbs) => {
                        for ((v, &sb), &zb) in row.iter_mut().zip(sums_b).zip(&zbs[p0..p0 + w]) {
                            *v = v
                                .wrapping_sub(ca)
                                .wrapping_sub(zb.wrapping_mul(sa))
                                .wrapping_sub(fa.wrapping_mul(sb))
                                .wrapping_add(ki.wrapping_mul(za).wrapping_mul(zb));
                        }
                    }
                }
            }
        }
    });
}

/// From this many rows of `A` on, the VNNI path packs `A` in tiles ([`tile_a`]).
const TILED_MIN_ROWS: usize = 8;
/// Rows per tile of [`tile_a`].
const TILE_ROWS: usize = 8;

/// The padded rows `ap` (`m×k4`) in tiles of 8 rows: tile `t`, group `g` (4 `k`) holds the 4
/// bytes of rows `8t..8t + 8` side by side (32 bytes), rows past `m` zero.
fn tile_a(m: usize, k4: usize, ap: &[u8]) -> Vec<u8> {
    let tiles = m.div_ceil(TILE_ROWS);
    let mut out = vec![0u8; tiles * TILE_ROWS * k4];
    for i in 0..m {
        let (t, r) = (i / TILE_ROWS, i % TILE_ROWS);
        for g in 0..k4 / 4 {
            let at = t * TILE_ROWS * k4 + g * TILE_ROWS * 4 + r * 4;
            out[at..at + 4].copy_from_slice(&ap[i * k4 + 4 * g..i * k4 + 4 * g + 4]);
        }
    }
    out
}

/// `D = Σ a'·b'` of the `m` padded rows `ap` (`m×k4` unsigned bytes) against one VNNI panel,
/// the first `w` columns into `out` (row stride `ld`): the definition, in i32 wrapping.
#[allow(clippy::too_many_arguments)]
pub(crate) fn int8_packed_panel_scalar(
    m: usize,
    k4: usize,
    ap: &[u8],
    panel: &[u8],
    w: usize,
    out: &mut [i32],
    ld: usize,
) {
    for i in 0..m {
        for c in 0..w {
            let mut s = 0i32;
            for kk in 0..k4 {
                let x = ap[i * k4 + kk] as i32;
                let y = panel[(kk / 4) * PANEL * 4 + c * 4 + kk % 4] as i8 as i32;
                s = s.wrapping_add(x.wrapping_mul(y));
            }
            out[i * ld + c] = s;
        }
    }
}
