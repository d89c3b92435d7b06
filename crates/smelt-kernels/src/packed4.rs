//! 4-bit weights repacked once for the GEMV kernels: `MatMulNBits` int4 (`w = (q - zp)·scale`)
//! and `MatMulBnb4` NF4 (`w = NF4[q]·absmax`) in one tiled layout, [`Packed4Bit`].
//!
//! Why: in the ONNX layouts a kernel spends several shuffles per 16 weights (widen, split
//! the nibbles, permute the activations to match) plus a table lookup through a zero-point
//! nibble per block, which made these GEMVs compute-bound. Packed, the 16 codes of a group
//! are one 8-byte word that a broadcast and one per-lane shift spread over 16 lanes in
//! element order, the four rows of a tile are adjacent, and a block's parameters sit in one
//! place. A runtime packs a constant weight when it loads the model; the ONNX-layout entry
//! points ([`crate::matmul_nbits_q4_f32`], [`crate::matmul_bnb4_nf4_f32`]) pack each chunk of
//! rows on the fly and run the same kernels.
//!
//! Layout: rows in tiles of [`TILE_ROWS`] (the last tile padded with rows of scale 0), each
//! row in blocks of `block_size` elements (`k` padded to whole blocks), each block in groups of
//! 16 elements:
//! - codes, `[tile][block][group][row]`, one little-endian u64 per row and group: element `e`
//!   (0..16) of the group is nibble `e / 2` when `e` is even and nibble `8 + e / 2` when it is
//!   odd (nibble `i` is bits `4i .. 4i + 4`), so the low 32 bits hold the even elements;
//! - scales (NF4: absmax), `[tile][block][row]` f32;
//! - zero points (int4 with zero points only), `[tile][block]` u16, row `r`'s in bits
//!   `4r .. 4r + 4`; without them every block's is 8.
//!
//! Padded elements hold the block's zero point, so they dequantize to `0·scale`, and the
//! kernels pair them with zero activations.
//!
//! Value: `w = TABLE[q]·scale` with `TABLE` = `q - zp` (int4) or bitsandbytes' NF4 code: the
//! same f32 as the ONNX layouts' scalar references, which the scalar path here reproduces bit
//! for bit (dequantize, then `Σ a·w` in `kk` order). The SIMD kernels build each row-block's
//! 16 values `TABLE · scale` (the same products, so the same `w`), look codes up in them
//! (`vpermps`) and accumulate `a·w` with FMA in 16 (AVX-512) or 8 (AVX2) lane partial sums:
//! `|y - y_ref| ≤ 2·k·ε·Σ|a||w|`. AVX2 int4 instead sums `a·(q - zp)` (exact integers, so the
//! products are exact multiples of the reference's) over a block and multiplies each block's
//! sum by its scale: one more rounding per block than per weight, within the same bound.

use rayon::prelude::*;

use crate::arch;
use crate::blocked;
use crate::bnb4::{Bnb4Nf4, NF4_CODE};
use crate::dispatch::{selected, Isa};
use crate::f32_gemm;
use crate::nbits::NBitsQ4;
use crate::parallel::{for_column_ranges, Out};

/// Weight rows per tile.
pub const TILE_ROWS: usize = 4;
/// Elements per code word (one u64 per row).
pub(crate) const GROUP: usize = 16;
/// Column chunk handed to one task: a multiple of [`TILE_ROWS`].
pub(crate) const COL_CHUNK: usize = 64;
/// Calls with more activation rows than this dequantize a chunk of rows and run the f32 GEMM.
pub(crate) const GEMV_MAX_ROWS: usize = 4;

/// `ZP_TABLES[z][q] = q - z` as f32: the int4 code tables, one per zero point.
pub(crate) static ZP_TABLES: [[f32; 16]; 16] = {
    let mut t = [[0.0f32; 16]; 16];
    let mut z = 0;
    while z < 16 {
        let mut q = 0;
        while q < 16 {
            t[z][q] = (q as i32 - z as i32) as f32;
            q += 1;
        }
        z += 1;
    }
    t
};

/// Which code table a weight's nibbles index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code4 {
    /// `MatMulNBits` int4: `q - zp`.
    Int4,
    /// bitsandbytes' NF4 ([`NF4_CODE`]).
    Nf4,
}

/// A 4-bit weight (`n` outputs × `k` inputs) in the packed tile layout (module docs).
#[derive(Clone, Debug)]
pub struct Packed4Bit {
    n: usize,
    k: usize,
    block_size: usize,
    code: Code4,
    codes: Vec<u64>,
    scales: Vec<f32>,
    zero_points: Option<Vec<u16>>,
}

/// A run of whole tiles of a [`Packed4Bit`] (or of a chunk packed on the fly), what the
/// arch kernels read.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tiles4<'a> {
    pub(crate) tiles: usize,
    /// Blocks per row.
    pub(crate) blocks: usize,
    pub(crate) block_size: usize,
    pub(crate) code: Code4,
    /// `tiles · blocks · block_size/16 · TILE_ROWS` words.
    pub(crate) codes: &'a [u64],
    /// `tiles · blocks · TILE_ROWS` scales.
    pub(crate) scales: &'a [f32],
    /// `tiles · blocks` zero-point words, or `None` (int4: all 8).
    pub(crate) zero_points: Option<&'a [u16]>,
}

impl Tiles4<'_> {
    /// The f32 table row `r` of tile `t` indexes in block `blk` (before the scale).
    #[inline]
    pub(crate) fn table(&self, t: usize, blk: usize, r: usize) -> &'static [f32; 16] {
        match (self.code, self.zero_points) {
            (Code4::Nf4, _) => &NF4_CODE,
            (Code4::Int4, None) => &ZP_TABLES[8],
            (Code4::Int4, Some(z)) => &ZP_TABLES[((z[t * self.blocks + blk] >> (4 * r)) & 0xF) as usize],
        }
    }

    /// Row `r` of tile `t` dequantized, its first `row.len()` (≤ padded k) elements.
    pub(crate) fn dequantize_row(&self, t: usize, r: usize, row: &mut [f32]) {
        let groups = self.block_size / GROUP;
        for (blk, block) in row.chunks_mut(self.block_size).enumerate() {
            let table = self.table(t, blk, r);
            let scale = self.scales[(t * self.blocks + blk) * TILE_ROWS + r];
            for (g, group) in block.chunks_mut(GROUP).enumerate() {
                let word = self.codes[((t * self.blocks + blk) * groups + g) * TILE_ROWS + r];
                for (e, v) in group.iter_mut().enumerate() {
                    let nibble = if e % 2 == 0 { e / 2 } else { 8 + e / 2 };
                    *v = table[((word >> (4 * nibble)) & 0xF) as usize] * scale;
                }
            }
        }
    }
}

/// The 8 low (`high == false`) or high nibbles of the 8 bytes of `x`, in byte order, as the
/// 8 nibbles of a u32.
#[inline]
fn gather_nibbles(x: u64, high: bool) -> u64 {
    let mut v = if high { x >> 4 } else { x } & 0x0F0F_0F0F_0F0F_0F0F;
    v = (v | v >> 4) & 0x00FF_00FF_00FF_00FF;
    v = (v | v >> 8) & 0x0000_FFFF_0000_FFFF;
    (v | v >> 16) & 0xFFFF_FFFF
}

/// A packed group word from 16 codes in element order.
#[inline]
fn group_word(codes: &[u8; GROUP]) -> u64 {
    let mut w = 0u64;
    for (e, &q) in codes.iter().enumerate() {
        let nibble = if e % 2 == 0 { e / 2 } else { 8 + e / 2 };
        w |= ((q & 0xF) as u64) << (4 * nibble);
    }
    w
}

/// Where a pack reads codes and block parameters from.
#[derive(Clone, Copy)]
enum Source<'a> {
    NBits(&'a NBitsQ4<'a>),
    Nf4(&'a Bnb4Nf4<'a>),
}

impl Source<'_> {
    fn n(&self) -> usize {
        match self {
            Source::NBits(w) => w.n,
            Source::Nf4(w) => w.n,
        }
    }

    fn k(&self) -> usize {
        match self {
            Source::NBits(w) => w.k,
            Source::Nf4(w) => w.k,
        }
    }

    fn block_size(&self) -> usize {
        match self {
            Source::NBits(w) => w.block_size,
            Source::Nf4(w) => w.block_size,
        }
    }

    /// The 8 source bytes of group `g` (16 elements from `16·g`) of row `j`, when the
    /// group lies inside the row (`16·g + 16 ≤ k`).
    #[inline]
    fn group_bytes(&self, j: usize, g: usize) -> u64 {
        let (bytes, at) = match self {
            Source::NBits(w) => (w.b, j * w.row_bytes() + g * 8),
            Source::Nf4(w) => (w.b, (j * w.k) / 2 + g * 8),
        };
        u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
    }

    /// The packed word of group `g` of row `j`; elements past `k` take code `pad`.
    fn word(&self, j: usize, g: usize, pad: u8) -> u64 {
        let k = self.k();
        if (g + 1) * GROUP <= k {
            let x = self.group_bytes(j, g);
            // MatMulNBits: even elements in the low nibbles; NF4: in the high ones.
            let even_high = matches!(self, Source::Nf4(_));
            return gather_nibbles(x, even_high) | gather_nibbles(x, !even_high) << 32;
        }
        let mut codes = [pad; GROUP];
        for (e, c) in codes.iter_mut().enumerate() {
            let kk = g * GROUP + e;
            if kk < k {
                *c = match self {
                    Source::NBits(w) => (w.b[j * w.row_bytes() + kk / 2] >> (4 * (kk % 2))) & 0xF,
                    Source::Nf4(w) => {
                        let idx = j * w.k + kk;
                        let byte = w.b[idx / 2];
                        if idx.is_multiple_of(2) {
                            byte >> 4
                        } else {
                            byte & 0xF
                        }
                    }
                };
            }
        }
        group_word(&codes)
    }

    fn scale(&self, j: usize, blk: usize) -> f32 {
        match self {
            Source::NBits(w) => w.scales[j * w.k_blocks() + blk],
            Source::Nf4(w) => w.absmax[(j * w.k) / w.block_size + blk],
        }
    }

    /// Zero point of block `blk` of row `j` (int4; NF4 has none).
    fn zero_point(&self, j: usize, blk: usize) -> u8 {
        match self {
            Source::NBits(w) => w.zero_point(j, blk),
            Source::Nf4(_) => 0,
        }
    }
}

impl Packed4Bit {
    /// Packs a `MatMulNBits` 4-bit weight.
    ///
    /// # Panics
    /// As [`crate::matmul_nbits_q4_f32`] on a weight whose slices do not match its shape.
    pub fn from_nbits(w: &NBitsQ4<'_>) -> Packed4Bit {
        w.check();
        Packed4Bit::pack(Source::NBits(w), 0, w.n, true)
    }

    /// Packs a `MatMulBnb4` NF4 weight; `None` when `block_size` does not divide `k` (a block
    /// then straddles two rows, which this layout cannot express).
    ///
    /// # Panics
    /// As [`crate::matmul_bnb4_nf4_f32`] on a weight whose slices do not match its shape.
    pub fn from_nf4(w: &Bnb4Nf4<'_>) -> Option<Packed4Bit> {
        w.check();
        w.k.is_multiple_of(w.block_size).then(|| Packed4Bit::pack(Source::Nf4(w), 0, w.n, true))
    }

    /// Rows `j0..j1` (`j0` a multiple of [`TILE_ROWS`]) of `src`, in parallel when `parallel`.
    fn pack(src: Source<'_>, j0: usize, j1: usize, parallel: bool) -> Packed4Bit {
        let (k, bs) = (src.k(), src.block_size());
        debug_assert!(j0.is_multiple_of(TILE_ROWS) && j1 <= src.n());
        let blocks = k.div_ceil(bs);
        let groups = bs / GROUP;
        let tiles = (j1 - j0).div_ceil(TILE_ROWS);
        let with_zp = matches!(src, Source::NBits(w) if w.zero_points.is_some());
        let code = if matches!(src, Source::Nf4(_)) { Code4::Nf4 } else { Code4::Int4 };
        let mut codes = vec![0u64; tiles * blocks * groups * TILE_ROWS];
        let mut scales = vec![0.0f32; tiles * blocks * TILE_ROWS];
        let mut zps = vec![0u16; tiles * blocks];
        type Job<'a> = (usize, ((&'a mut [u64], &'a mut [f32]), &'a mut [u16]));
        let fill = |(t, ((codes, scales), zps)): Job<'_>| {
            for r in 0..TILE_ROWS {
                let j = j0 + t * TILE_ROWS + r;
                if j >= j1 {
                    break; // padded rows: scale 0 (and zero point 0)
                }
                for blk in 0..blocks {
                    let zp = src.zero_point(j, blk);
                    // Padding takes the zero point (int4) or NF4's code of 0.0 (index 7).
                    let pad = if code == Code4::Nf4 {
                        7
                    } else if with_zp {
                        zp
                    } else {
                        8
                    };
                    for g in 0..groups {
                        codes[(blk * groups + g) * TILE_ROWS + r] = src.word(j, blk * groups + g, pad);
                    }
                    scales[blk * TILE_ROWS + r] = src.scale(j, blk);
                    zps[blk] |= (zp as u16) << (4 * r);
                }
            }
        };
        if tiles > 0 && blocks > 0 {
            let jobs: Vec<_> = codes
                .chunks_mut(blocks * groups * TILE_ROWS)
                .zip(scales.chunks_mut(blocks * TILE_ROWS))
                .zip(zps.chunks_mut(blocks))
                .enumerate()
                .collect();
            if parallel {
                jobs.into_par_iter().for_each(fill);
            } else {
                jobs.into_iter().for_each(fill);
            }
        }
        Packed4Bit { n: j1 - j0, k, block_size: bs, code, codes, scales, zero_points: with_zp.then_some(zps) }
    }

    /// Output features.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Input features.
    pub fn k(&self) -> usize {
        self.k
    }

    /// The code table the nibbles index.
    pub fn code(&self) -> Code4 {
        self.code
    }

    /// Bytes held (codes, scales, zero points).
    pub fn size_bytes(&self) -> usize {
        self.codes.len() * 8 + self.scales.len() * 4 + self.zero_points.as_ref().map_or(0, |z| z.len() * 2)
    }

    fn blocks(&self) -> usize {
        self.k.div_ceil(self.block_size)
    }

    /// Tiles `t0..t1`.
    fn tiles(&self, t0: usize, t1: usize) -> Tiles4<'_> {
        let (blocks, groups) = (self.blocks(), self.block_size / GROUP);
        Tiles4 {
            tiles: t1 - t0,
            blocks,
            block_size: self.block_size,
            code: self.code,
            codes: &self.codes[t0 * blocks * groups * TILE_ROWS..t1 * blocks * groups * TILE_ROWS],
            scales: &self.scales[t0 * blocks * TILE_ROWS..t1 * blocks * TILE_ROWS],
            zero_points: self.zero_points.as_ref().map(|z| &z[t0 * blocks..t1 * blocks]),
        }
    }

    /// The dequantized weight, `n×k` row-major f32 (the same values as the ONNX layout's).
    pub fn dequantize(&self) -> Vec<f32> {
        let all = self.tiles(0, self.n.div_ceil(TILE_ROWS));
        let mut out = vec![0.0f32; self.n * self.k];
        for (j, row) in out.chunks_mut(self.k.max(1)).enumerate().take(self.n) {
            all.dequantize_row(j / TILE_ROWS, j % TILE_ROWS, row);
        }
        out
    }

    /// `C (m×n) = A (m×k) · dequant(W)ᵀ`; `C` is overwritten.
    ///
    /// # Panics
    /// When `a` is not `m·k` long or `c` not `m·n`.
    pub fn matmul(&self, m: usize, a: &[f32], c: &mut [f32]) {
        matmul_packed4_f32_with(selected().float, m, a, self, c);
    }

    /// [`Packed4Bit::matmul`] into a new vector (`m·n` long), which on several threads is
    /// written once per element and never zero-filled first.
    ///
    /// # Panics
    /// When `a` is not `m·k` long.
    pub fn matmul_vec(&self, m: usize, a: &[f32]) -> Vec<f32> {
        let mut c = Vec::new();
        matmul_packed4_out(selected().float, m, a, self, Out::Fresh(&mut c));
        c
    }
}

/// [`Packed4Bit::matmul`] on a chosen instruction set (scalar when the CPU lacks it).
///
/// # Panics
/// As [`Packed4Bit::matmul`].
pub fn matmul_packed4_f32_with(isa: Isa, m: usize, a: &[f32], w: &Packed4Bit, c: &mut [f32]) {
    matmul_packed4_out(isa, m, a, w, c.into());
}

fn matmul_packed4_out(isa: Isa, m: usize, a: &[f32], w: &Packed4Bit, c: Out<'_, f32>) {
    let (n, k) = (w.n, w.k);
    assert_eq!(a.len(), m * k, "packed 4-bit matmul: A has {} elements, m·k = {}", a.len(), m * k);
    if let Some(len) = c.len() {
        assert_eq!(len, m * n, "packed 4-bit matmul: C has {len} elements, m·n = {}", m * n);
    }
    let isa = isa.or_scalar();
    let a_pad = padded_rows(m, k, w.blocks() * w.block_size, a, isa);
    for_column_ranges(m, n, COL_CHUNK, m * n * k / 4, c, |j0, j1, out, ld| {
        let tiles = w.tiles(j0 / TILE_ROWS, j1.div_ceil(TILE_ROWS));
        tiles_cols(isa, &tiles, m, k, a, &a_pad, j1 - j0, out, ld);
    });
}

/// `A` as the SIMD kernels read it: with more than [`GEMV_MAX_ROWS`] rows, packed for the
/// blocked GEMM (`blocked::pack_a`, empty when `isa` has no blocked kernels); otherwise rows
/// zero-padded to `kp` for the GEMV (empty when `kp == k`). Empty on the scalar path.
pub(crate) fn padded_rows(m: usize, k: usize, kp: usize, a: &[f32], isa: Isa) -> Vec<f32> {
    if isa == Isa::Scalar {
        return Vec::new();
    }
    if m > GEMV_MAX_ROWS {
        return blocked::packed_a(isa, m, k, a).unwrap_or_default();
    }
    if kp == k {
        return Vec::new();
    }
    let mut out = vec![0.0f32; m * kp];
    for i in 0..m {
        out[i * kp..i * kp + k].copy_from_slice(&a[i * k..(i + 1) * k]);
    }
    out
}

/// `width` output columns from whole tiles: the GEMV kernels (`m ≤ 4`), the blocked f32 GEMM
/// on panels dequantized `KC` elements at a time (`m > 4`; without blocked kernels, the f32
/// GEMM on dequantized rows), or the scalar reference. `a_pad` is [`padded_rows`]'s.
#[allow(clippy::too_many_arguments)]
pub(crate) fn tiles_cols(
    isa: Isa,
    t: &Tiles4<'_>,
    m: usize,
    k: usize,
    a: &[f32],
    a_pad: &[f32],
    width: usize,
    out: &mut [f32],
    ld: usize,
) {
    let kp = t.blocks * t.block_size;
    if isa == Isa::Scalar || k == 0 {
        let mut row = vec![0.0f32; k];
        for jj in 0..width {
            t.dequantize_row(jj / TILE_ROWS, jj % TILE_ROWS, &mut row);
            for i in 0..m {
                let mut s = 0.0f32;
                for (x, y) in a[i * k..(i + 1) * k].iter().zip(&row) {
                    s += x * y;
                }
                out[i * ld + jj] = s;
            }
        }
        return;
    }
    if m > GEMV_MAX_ROWS && !a_pad.is_empty() {
        let done = blocked::gemm_cols(isa, m, k, a_pad, blocked::Panels::Q4(t), width, out, ld);
        debug_assert!(done, "blocked kernels exist for {isa}");
        return;
    }
    if m > GEMV_MAX_ROWS {
        let mut deq = vec![0.0f32; width * k];
        for (jj, row) in deq.chunks_mut(k).enumerate() {
            t.dequantize_row(jj / TILE_ROWS, jj % TILE_ROWS, row);
        }
        f32_gemm::gemm_f32_bt_cols_isa(isa, m, k, a, &deq, 0, width, out, ld);
        return;
    }
    let ap = if kp == k { a } else { a_pad };
    if !arch::q4_gemv_tiles(isa, t, m, ap, width, out, ld) {
        // No kernel for this ISA: the scalar reference.
        tiles_cols(Isa::Scalar, t, m, k, a, a_pad, width, out, ld);
    }
}

/// The ONNX-layout entry points: rows `j0..j1` packed on the fly (`j0` a multiple of
/// [`TILE_ROWS`]), then [`tiles_cols`].
#[allow(clippy::too_many_arguments)]
fn cols_from_source(
    isa: Isa,
    src: Source<'_>,
    m: usize,
    a: &[f32],
    a_pad: &[f32],
    j0: usize,
    j1: usize,
    out: &mut [f32],
    ld: usize,
) {
    let p = Packed4Bit::pack(src, j0, j1, false);
    let tiles = p.tiles(0, p.n.div_ceil(TILE_ROWS));
    tiles_cols(isa, &tiles, m, src.k(), a, a_pad, j1 - j0, out, ld);
}

/// `MatMulNBits` on the SIMD tiers (`isa` not scalar), packing each chunk on the fly.
pub(crate) fn matmul_nbits_simd(isa: Isa, m: usize, a: &[f32], w: &NBitsQ4<'_>, c: &mut [f32]) {
    let (n, k) = (w.n, w.k);
    let a_pad = padded_rows(m, k, w.k_blocks() * w.block_size, a, isa);
    for_column_ranges(m, n, COL_CHUNK, m * n * k / 4, c, |j0, j1, out, ld| {
        cols_from_source(isa, Source::NBits(w), m, a, &a_pad, j0, j1, out, ld);
    });
}

/// `MatMulBnb4` NF4 with `block_size` dividing `k` on the SIMD tiers, packing each chunk
/// on the fly.
pub(crate) fn matmul_nf4_simd(isa: Isa, m: usize, a: &[f32], w: &Bnb4Nf4<'_>, c: &mut [f32]) {
    debug_assert!(w.k.is_multiple_of(w.block_size));
    let (n, k) = (w.n, w.k);
    // k is whole blocks: the GEMV needs no padding, the blocked GEMM its packed A.
    let a_pad = padded_rows(m, k, k, a, isa);
    for_column_ranges(m, n, COL_CHUNK, m * n * k / 4, c, |j0, j1, out, ld| {
        cols_from_source(isa, Source::Nf4(w), m, a, &a_pad, j0, j1, out, ld);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_nibbles_orders_bytes() {
        // Bytes 0x10, 0x32, 0x54, ... 0xFE: low nibbles 0, 2, 4, ... 14; high 1, 3, ... 15.
        let x = u64::from_le_bytes([0x10, 0x32, 0x54, 0x76, 0x98, 0xBA, 0xDC, 0xFE]);
        assert_eq!(gather_nibbles(x, false), 0xECA8_6420);
        assert_eq!(gather_nibbles(x, true), 0xFDB9_7531);
    }

    #[test]
    fn nbits_layout_golden() {
        // n = 5, k = 20, block 16: two blocks per row (the second padded from 20 to 32), two
        // tiles (rows 5..8 padding). Code of (j, kk) = (j + kk) % 16; bytes past k hold 0xF.
        let (n, k, bs) = (5usize, 20usize, 16usize);
        let mut b = vec![0u8; n * 16];
        for j in 0..n {
            for kk in 0..32 {
                let q = if kk < k { ((j + kk) % 16) as u8 } else { 0xF };
                b[j * 16 + kk / 2] |= q << (4 * (kk % 2));
            }
        }
        let zp = |j: usize, blk: usize| ((j + 2 * blk + 1) % 16) as u8;
        let zps: Vec<u8> = (0..n).map(|j| zp(j, 0) | zp(j, 1) << 4).collect();
        let scales: Vec<f32> = (0..n).flat_map(|j| [j as f32 * 10.0, j as f32 * 10.0 + 1.0]).collect();
        let w = NBitsQ4 { n, k, block_size: bs, b: &b, scales: &scales, zero_points: Some(&zps) };
        let p = Packed4Bit::from_nbits(&w);
        // [tile][block][group][row]: row 0 block 0 holds codes 0..16, even elements in the low
        // half; block 1 holds codes 0, 1, 2, 3 then the zero point 3 as padding.
        assert_eq!(p.codes.len(), 2 * 2 * TILE_ROWS);
        assert_eq!(p.codes[0], 0xFDB9_7531_ECA8_6420);
        assert_eq!(p.codes[1], 0x0ECA_8642_FDB9_7531); // row 1: codes 1..16, 0
        assert_eq!(p.codes[TILE_ROWS], 0x3333_3331_3333_3320);
        // Tile 1: row 4 then three padded rows, per block.
        assert_eq!(p.codes[2 * TILE_ROWS + 1..3 * TILE_ROWS], [0; 3]);
        assert_eq!(p.codes[3 * TILE_ROWS + 1..], [0; 3]);
        assert_eq!(p.scales, [0., 10., 20., 30., 1., 11., 21., 31., 40., 0., 0., 0., 41., 0., 0., 0.]);
        assert_eq!(p.zero_points.as_deref(), Some(&[0x4321, 0x6543, 0x0005, 0x0007][..]));
    }

    #[test]
    fn nf4_layout_golden() {
        // NF4 stores the first element of a byte in its high nibble; packed, element order is
        // the same as MatMulNBits'.
        let b: Vec<u8> = (0..8).map(|i| ((2 * i) << 4 | (2 * i + 1)) as u8).collect();
        let w = Bnb4Nf4 { n: 1, k: 16, block_size: 16, b: &b, absmax: &[0.5] };
        let p = Packed4Bit::from_nf4(&w).unwrap();
        assert_eq!(p.codes, [0xFDB9_7531_ECA8_6420, 0, 0, 0]);
        assert_eq!(p.scales, [0.5, 0., 0., 0.]);
        assert!(p.zero_points.is_none());
    }

    #[test]
    fn group_word_matches_the_fast_path() {
        let codes: [u8; 16] = std::array::from_fn(|e| e as u8);
        // Elements 0..16 with code e: even elements in nibbles 0..8, odd in 8..16.
        assert_eq!(group_word(&codes), 0xFDB9_7531_ECA8_6420);
    }
}
