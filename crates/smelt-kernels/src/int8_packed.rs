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
//! With AVX2 alone (no VNNI: `vpmaddwd` multiplies i16 pairs), `B` is stored in panels of 16
//! columns, and within a panel, for every pair of consecutive `k`, the 2 bytes of each column
//! side by side (32 bytes), converted to signed and zero-padded the same way; `A` goes into
//! tiles of 6 rows whose pairs are i16 words, and the kernel
//! (`arch/x86_64/int8_pairs.rs`) sign-extends a pair row of the panel and adds
//! `vpmaddwd(a'-pair, b'-pairs)` into 6×16 accumulators, with the same corrections.
//! Other instruction sets keep `Bᵀ` and run [`matmul_integer_bt`](crate::matmul_integer_bt);
//! every layout keeps `Σb` per column from packing.

use crate::arch;
use crate::dispatch::{selected, Isa};
use crate::int8::{matmul_integer_bt_sums, Int8Matrix, ZeroPoints};
use crate::parallel::{for_column_blocks, for_column_ranges, ColBlock, Out};
use crate::transpose::transpose;

/// Columns per panel of the VNNI layout.
pub(crate) const PANEL: usize = 32;

/// Columns per panel of the pair layout (AVX2).
pub(crate) const PAIR_PANEL: usize = 16;

/// Column chunk handed to one task (two panels).
const COL_CHUNK: usize = 64;

#[derive(Clone, Debug, PartialEq)]
enum Layout {
    /// The VNNI panels (see the module doc) and Σb per column (true values).
    Vnni { panels: Vec<u8>, col_sums: Vec<i32> },
    /// The pair panels of AVX2 (see the module doc) and Σb per column (true values).
    Pairs { panels: Vec<u8>, col_sums: Vec<i32> },
    /// `Bᵀ`, `n×k` bytes, for [`matmul_integer_bt`](crate::matmul_integer_bt), and Σb per
    /// column (true values), so that a call with `A`'s zero point does not sum `B` again.
    Bt { bt: Vec<u8>, col_sums: Vec<i32> },
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
            Layout::Vnni { panels, col_sums: column_sums(k, n, b) }
        } else if isa.or_scalar() == Isa::Avx2 {
            let flip = if signed { 0 } else { 0x80 };
            let (k2, np) = (k.div_ceil(2), n.div_ceil(PAIR_PANEL));
            let bytes = b.bytes();
            let mut panels = vec![0u8; np * k2 * PAIR_PANEL * 2];
            for (p, panel) in panels.chunks_mut((k2 * PAIR_PANEL * 2).max(1)).enumerate() {
                for kk in 0..k {
                    for c in 0..PAIR_PANEL.min(n - p * PAIR_PANEL) {
                        panel[(kk / 2) * PAIR_PANEL * 2 + c * 2 + kk % 2] =
                            bytes[kk * n + p * PAIR_PANEL + c] ^ flip;
                    }
                }
            }
            Layout::Pairs { panels, col_sums: column_sums(k, n, b) }
        } else {
            Layout::Bt { bt: transpose(k, n, b.bytes()), col_sums: column_sums(k, n, b) }
        };
        PackedInt8 { k, n, signed, layout }
    }

    /// `B`'s shape, `[k, n]`.
    pub fn shape(&self) -> [usize; 2] {
        [self.k, self.n]
    }
}

/// Σb per column of `b` (`k×n`), in true values, i32 wrapping.
fn column_sums(k: usize, n: usize, b: Int8Matrix<'_>) -> Vec<i32> {
    let mut col_sums = vec![0i32; n];
    for kk in 0..k {
        for (j, s) in col_sums.iter_mut().enumerate() {
            *s = s.wrapping_add(b.get(kk * n + j));
        }
    }
    col_sums
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
    if let Layout::Bt { bt: v, col_sums } = &b.layout {
        let bt = if b.signed { Int8Matrix::I8(bytemuck::cast_slice(v)) } else { Int8Matrix::U8(v) };
        return matmul_integer_bt_sums(isa, m, n, k, a, a_zero, bt, b_zero, Some(col_sums), c);
    }
    assert_eq!(c.len(), m * n, "matmul_integer: C has {} elements, m·n = {}", c.len(), m * n);
    let call = VnniCall::new(isa, m, a, a_zero, b, b_zero);
    for_column_ranges(m, n, COL_CHUNK, m * n * k, c, |j0, j1, out, ld| call.columns(j0, j1, out, ld));
}

/// `C (m×n, f32) = f32((A - za)·(B - zb)) · scale`: [`matmul_integer_packed`] followed by
/// ONNX's `Cast(to float)` and `Mul` by `scale` (one value, or one per column of `C`), with
/// the same two roundings (i32 → f32 to nearest, then the f32 product), so the same bits as
/// those three steps; the i32 sums of a few columns at a time never leave the cache.
///
/// # Panics
/// As [`matmul_integer_packed`] (with `c` of f32), or when `scale` is neither 1 nor `n` long.
pub fn matmul_integer_packed_scaled(
    m: usize,
    a: Int8Matrix<'_>,
    a_zero: ZeroPoints<'_>,
    b: &PackedInt8,
    b_zero: ZeroPoints<'_>,
    scale: &[f32],
    c: &mut [f32],
) {
    matmul_integer_packed_scaled_with(selected().int8, m, a, a_zero, b, b_zero, scale, c);
}

/// [`matmul_integer_packed_scaled`] on a chosen instruction set.
///
/// # Panics
/// As [`matmul_integer_packed_scaled`].
#[allow(clippy::too_many_arguments)]
pub fn matmul_integer_packed_scaled_with(
    isa: Isa,
    m: usize,
    a: Int8Matrix<'_>,
    a_zero: ZeroPoints<'_>,
    b: &PackedInt8,
    b_zero: ZeroPoints<'_>,
    scale: &[f32],
    c: &mut [f32],
) {
    matmul_integer_packed_scaled_out(isa, m, a, a_zero, b, b_zero, scale, c.into());
}

/// [`matmul_integer_packed_scaled`] into a new vector (`m·n` long), written once per element
/// and never zero-filled first.
///
/// # Panics
/// As [`matmul_integer_packed_scaled`].
pub fn matmul_integer_packed_scaled_vec(
    m: usize,
    a: Int8Matrix<'_>,
    a_zero: ZeroPoints<'_>,
    b: &PackedInt8,
    b_zero: ZeroPoints<'_>,
    scale: &[f32],
) -> Vec<f32> {
    let mut c = Vec::new();
    let isa = selected().int8;
    matmul_integer_packed_scaled_out(isa, m, a, a_zero, b, b_zero, scale, Out::Fresh(&mut c));
    c
}

#[allow(clippy::too_many_arguments)]
fn matmul_integer_packed_scaled_out(
    isa: Isa,
    m: usize,
    a: Int8Matrix<'_>,
    a_zero: ZeroPoints<'_>,
    b: &PackedInt8,
    b_zero: ZeroPoints<'_>,
    scale: &[f32],
    c: Out<'_, f32>,
) {
    let (k, n) = (b.k, b.n);
    assert!(
        scale.len() == 1 || scale.len() == n,
        "matmul_integer_packed_scaled: {} scales for {n} columns",
        scale.len()
    );
    if let Some(len) = c.len() {
        assert_eq!(len, m * n, "matmul_integer: C has {len} elements, m·n = {}", m * n);
    }
    let scale_of = |j: usize| if scale.len() == 1 { scale[0] } else { scale[j] };
    if let Layout::Bt { .. } = &b.layout {
        let c = c.into_slice(m * n);
        let mut acc = vec![0i32; m * n];
        matmul_integer_packed_with(isa, m, a, a_zero, b, b_zero, &mut acc);
        for (row_c, row_acc) in c.chunks_mut(n.max(1)).zip(acc.chunks(n.max(1))) {
            for (j, (o, &x)) in row_c.iter_mut().zip(row_acc).enumerate() {
                *o = x as f32 * scale_of(j);
            }
        }
        return;
    }
    let b_zero = b_zero.collapsed();
    let call = VnniCall::new(isa, m, a, a_zero, b, b_zero);
    // Many rows and one zero point for `B`: the tiled kernel finishes each tile into f32.
    let terms = match b_zero {
        ZeroPoints::PerTensor(zb) if call.tiled() => Some(call.row_terms(zb)),
        _ => None,
    };
    // Each task's block is written in place: the tiled kernel stores its finished tiles
    // there, the other kernels' sums are scaled row by row into it (no copy of the block).
    for_column_blocks(m, n, COL_CHUNK, m * n * k, c, |j0, j1, block| {
        if let Some((row_c, row_f)) = &terms {
            if call.columns_scaled(j0, j1, row_c, row_f, scale, block) {
                return;
            }
        }
        // The i32 sums of the block (m × 64: in L1/L2), each row scaled in place (an f32 in
        // the i32's slot) and copied into the block.
        let w = j1 - j0;
        let mut acc = vec![0i32; m * w];
        call.columns(j0, j1, &mut acc, w);
        for (i, row) in acc.chunks_exact_mut(w).enumerate() {
            if scale.len() == 1 {
                let q = scale[0];
                for v in row.iter_mut() {
                    *v = (*v as f32 * q).to_bits() as i32;
                }
            } else {
                for (v, &q) in row.iter_mut().zip(&scale[j0..j1]) {
                    *v = (*v as f32 * q).to_bits() as i32;
                }
            }
            block.write_row(i, 0, bytemuck::cast_slice(row));
        }
    });
}

/// How the tiled kernel finishes a panel's sums `D` into `f32` (row `i`, column `j` of the
/// panel): `f32(D - row_c[i] - row_f[i]·col_sums[j]) · scale[j]`, the subtractions and the
/// product in i32 wrapping, the conversion to nearest, then one f32 product (`scale` holds one
/// value or one per column). With the terms of [`VnniCall::row_terms`] that is the exact
/// `Σ(a - za)(b - zb)`, cast and scaled as `matmul_integer_packed_scaled` defines. (Only
/// x86_64 has such a kernel.)
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) struct Finish<'a> {
    pub(crate) row_c: &'a [i32],
    pub(crate) row_f: &'a [i32],
    pub(crate) col_sums: &'a [i32],
    pub(crate) scale: &'a [f32],
}

/// One call of the VNNI kernels: `A` made unsigned and packed, its row sums, and what the
/// zero-point corrections need.
struct VnniCall<'a> {
    isa: Isa,
    m: usize,
    k: usize,
    n: usize,
    /// `k` padded to the layout's group (4 for VNNI, 2 for pairs).
    k4: usize,
    /// The pair layout (else VNNI).
    pairs: bool,
    /// Columns per panel.
    pw: usize,
    /// `a' = a + α` as unsigned bytes, rows padded with zeros to `k4`.
    ap: Vec<u8>,
    /// `ap` in tiles of 8 rows (many rows only).
    apt: Vec<u8>,
    /// `ap` in tiles of 6 rows as i16 pairs (the pair layout, every `m`).
    apt2: Vec<u32>,
    /// Σa per row, in true values.
    a_sums: Vec<i32>,
    a_zero: ZeroPoints<'a>,
    b_zero: ZeroPoints<'a>,
    panels: &'a [u8],
    col_sums: &'a [i32],
    alpha: i32,
    beta: i32,
}

impl<'a> VnniCall<'a> {
    fn new(
        isa: Isa,
        m: usize,
        a: Int8Matrix<'_>,
        a_zero: ZeroPoints<'a>,
        b: &'a PackedInt8,
        b_zero: ZeroPoints<'a>,
    ) -> VnniCall<'a> {
        let (panels, col_sums, pairs) = match &b.layout {
            Layout::Vnni { panels, col_sums } => (panels, col_sums, false),
            Layout::Pairs { panels, col_sums } => (panels, col_sums, true),
            Layout::Bt { .. } => unreachable!("VnniCall of a Bt layout"),
        };
        let (group, pw) = if pairs { (2, PAIR_PANEL) } else { (4, PANEL) };
        let (k, n) = (b.k, b.n);
        assert_eq!(a.len(), m * k, "matmul_integer: A has {} elements, m·k = {}", a.len(), m * k);
        a_zero.check("A", m);
        b_zero.check("B", n);
        let k4 = k.div_ceil(group) * group;
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
        let isa = isa.or_scalar();
        // Many rows: A in tiles of 8 rows for the k-blocked kernel.
        let apt = if !pairs && m >= TILED_MIN_ROWS && isa == Isa::Avx512Vnni {
            tile_a(m, k4, &ap)
        } else {
            Vec::new()
        };
        let apt2 = if pairs && isa == Isa::Avx2 { tile_pairs(m, k4, &ap) } else { Vec::new() };
        let beta: i32 = if b.signed { 0 } else { -128 };
        VnniCall {
            isa,
            m,
            k,
            n,
            k4,
            pairs,
            pw,
            ap,
            apt,
            apt2,
            a_sums,
            a_zero,
            b_zero,
            panels,
            col_sums,
            alpha,
            beta,
        }
    }

    /// Whether a tiled kernel (which can finish its sums into f32) runs this call.
    fn tiled(&self) -> bool {
        !self.apt.is_empty() || !self.apt2.is_empty()
    }

    /// With one zero point `zb` for `B`, the exact product is `D - c[i] - f[i]·Σb_j` (i32
    /// wrapping): returns `(c, f)`, one per row of `A`.
    fn row_terms(&self, zb: i32) -> (Vec<i32>, Vec<i32>) {
        (0..self.m).map(|i| self.row_term(i, zb)).unzip()
    }

    /// Row `i`'s `(c, f)` of [`VnniCall::row_terms`].
    fn row_term(&self, i: usize, zb: i32) -> (i32, i32) {
        let (alpha, beta, ki, sa, za) =
            (self.alpha, self.beta, self.k as i32, self.a_sums[i], self.a_zero.get(i));
        let ca = beta.wrapping_mul(sa).wrapping_add(ki.wrapping_mul(alpha).wrapping_mul(beta));
        let c0 = ca.wrapping_add(zb.wrapping_mul(sa)).wrapping_sub(ki.wrapping_mul(za).wrapping_mul(zb));
        (c0, alpha.wrapping_add(za))
    }

    /// Columns `j0..j1` of `f32(product) · scale` into `block` (their columns) by the tiled
    /// kernel's [`Finish`]; `false` (nothing written) when the instruction set has none.
    #[allow(clippy::too_many_arguments)]
    fn columns_scaled(
        &self,
        j0: usize,
        j1: usize,
        row_c: &[i32],
        row_f: &[i32],
        scale: &[f32],
        block: &mut ColBlock<'_, f32>,
    ) -> bool {
        let pw = self.pw;
        let panel_len = self.k4 * pw;
        for p0 in (j0..j1).step_by(pw) {
            let panel = &self.panels[p0 / pw * panel_len..(p0 / pw + 1) * panel_len];
            let next = self.panels.get((p0 / pw + 1) * panel_len..(p0 / pw + 2) * panel_len).unwrap_or(&[]);
            let w = pw.min(self.n - p0);
            let fin = Finish {
                row_c,
                row_f,
                col_sums: &self.col_sums[p0..p0 + w],
                scale: if scale.len() == 1 { scale } else { &scale[p0..p0 + w] },
            };
            let done = if self.pairs {
                arch::int8_pairs_panel_scaled(
                    self.isa,
                    self.m,
                    self.k4 / 2,
                    &self.apt2,
                    panel,
                    next,
                    w,
                    &fin,
                    block,
                    p0 - j0,
                )
            } else {
                arch::int8_packed_panel_tiled_scaled(
                    self.isa,
                    self.m,
                    self.k4,
                    &self.apt,
                    panel,
                    next,
                    w,
                    &fin,
                    block,
                    p0 - j0,
                )
            };
            if !done {
                debug_assert_eq!(p0, j0, "the kernel exists for every panel or none");
                return false;
            }
        }
        true
    }

    /// Columns `j0..j1` (`j0` a multiple of the panel width) of the exact product into `out`
    /// (row stride `ld`).
    fn columns(&self, j0: usize, j1: usize, out: &mut [i32], ld: usize) {
        let (m, k4, n, isa) = (self.m, self.k4, self.n, self.isa);
        let (alpha, beta, ki) = (self.alpha, self.beta, self.k as i32);
        let pw = self.pw;
        let panel_len = k4 * pw;
        let panels = self.panels;
        for p0 in (j0..j1).step_by(pw) {
            let panel = &panels[p0 / pw * panel_len..(p0 / pw + 1) * panel_len];
            // The following panel (usually this thread's next, in this range or the next one).
            let next = panels.get((p0 / pw + 1) * panel_len..(p0 / pw + 2) * panel_len).unwrap_or(&[]);
            let w = pw.min(n - p0);
            let o = &mut out[p0 - j0..];
            if self.pairs {
                if !arch::int8_pairs_panel(isa, m, k4 / 2, &self.apt2, panel, next, w, o, ld) {
                    int8_packed_panel_scalar(m, k4, &self.ap, panel, (PAIR_PANEL, 2), w, o, ld);
                }
            } else {
                let done = !self.apt.is_empty()
                    && arch::int8_packed_panel_tiled(isa, m, k4, &self.apt, panel, next, w, o, ld);
                if !done && !arch::int8_packed_panel(isa, m, k4, &self.ap, panel, w, o, ld) {
                    int8_packed_panel_scalar(m, k4, &self.ap, panel, (PANEL, 4), w, o, ld);
                }
            }
            let sums_b = &self.col_sums[p0..p0 + w];
            for (i, &sa) in self.a_sums.iter().enumerate() {
                let za = self.a_zero.get(i);
                let ca = beta.wrapping_mul(sa).wrapping_add(ki.wrapping_mul(alpha).wrapping_mul(beta));
                let fa = alpha.wrapping_add(za);
                let row = &mut o[i * ld..i * ld + w];
                match self.b_zero {
                    ZeroPoints::PerTensor(zb) => {
                        let (c0, fa) = self.row_term(i, zb);
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
    }
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

/// The padded rows `ap` (`m×kp`, `kp` even) in tiles of 6 rows for the pair kernel: tile `t`,
/// pair `p` holds one word per row, `a'[2p]` in its low 16 bits and `a'[2p + 1]` in its high
/// 16 (both zero-extended), rows past `m` zero.
fn tile_pairs(m: usize, kp: usize, ap: &[u8]) -> Vec<u32> {
    const ROWS: usize = crate::arch::INT8_PAIRS_TILE;
    let pairs = kp / 2;
    let mut out = vec![0u32; m.div_ceil(ROWS) * ROWS * pairs];
    for i in 0..m {
        let (t, r) = (i / ROWS, i % ROWS);
        for p in 0..pairs {
            out[(t * pairs + p) * ROWS + r] =
                ap[i * kp + 2 * p] as u32 | (ap[i * kp + 2 * p + 1] as u32) << 16;
        }
    }
    out
}

/// `D = Σ a'·b'` of the `m` padded rows `ap` (`m×kp` unsigned bytes) against one panel of
/// `pw` columns whose groups of `g` consecutive `k` sit side by side per column (the VNNI
/// panels: 32 and 4; the pair panels: 16 and 2), the first `w` columns into `out` (row stride
/// `ld`): the definition, in i32 wrapping.
#[allow(clippy::too_many_arguments)]
pub(crate) fn int8_packed_panel_scalar(
    m: usize,
    kp: usize,
    ap: &[u8],
    panel: &[u8],
    (pw, g): (usize, usize),
    w: usize,
    out: &mut [i32],
    ld: usize,
) {
    for i in 0..m {
        for c in 0..w {
            let mut s = 0i32;
            for kk in 0..kp {
                let x = ap[i * kp + kk] as i32;
                let y = panel[(kk / g) * pw * g + c * g + kk % g] as i8 as i32;
                s = s.wrapping_add(x.wrapping_mul(y));
            }
            out[i * ld + c] = s;
        }
    }
}
