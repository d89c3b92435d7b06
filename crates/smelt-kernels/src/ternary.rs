//! Ternary matmul over smelt's 2-bit ternary packing (`ternary2` in docs/blob-format.md):
//! `Y (m×n) = A (m×k) · Wᵀ`, `W = q · scale`, `q ∈ {-1, 0, 1}`.
//!
//! Layout (smelt-quant `ternary::pack_2bit`): the weight `[n, k]` is flattened; element
//! `e = j·k + kk` is in byte `e / 4`, bits `2·(e % 4) .. +2` (first element in the lowest
//! bits), code `q + 1` ∈ {0, 1, 2}. Code 3 is never written and readers reject it; here it
//! counts as +1 in every implementation. `scale` is the blob's stored scale, BitNet's absmean
//! `mean|W|` (the reciprocal of smelt-quant's `TernaryTensor::scale`).
//!
//! The scalar reference computes `w = q as f32 · scale` and sums `a·w` in `kk` order.
//!
//! The SIMD path runs on [`PackedTernary2`], a layout made for it (by a runtime once, when
//! it loads the weight; by [`matmul_ternary2_f32`] per chunk of rows on the fly): rows in
//! tiles of 16, one per lane of an AVX-512 register, so a weight's codes never need
//! spreading over lanes. Words `[tile][group][row]`, one u32 per row and 16 elements; nibble
//! `p` of a word (bits `4p .. 4p + 4`) holds the codes of elements `2p` (bits 0-1) and
//! `2p + 1` (bits 2-3), code 3 stored as 2 (both +1). That is the 2-bit packing's own bit
//! order, so a row of whole words is a copy. Padding (rows past `n`, elements past `k`) is
//! code 1 (q = 0).
//!
//! The kernels look each nibble up in a 16-entry table of `a[2p]·q₀ + a[2p+1]·q₁` built
//! once per call from the activations (one f32 rounding, as adding the two exact products
//! would do), `vpermps` indexing the 16 rows' nibbles at once, and add the result to the rows'
//! lane sums; `× scale` at the end: `|y - y_ref| ≤ 2·k·ε·Σ|a||w|`. With `m > 4`, chunks of
//! rows are dequantized for the f32 GEMM kernel.

use rayon::prelude::*;

use crate::arch;
use crate::dispatch::{selected, Isa};
use crate::f32_gemm;
use crate::parallel::for_column_ranges;

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
    pub(crate) fn check(&self) {
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
    let tables = pair_tables(isa, m, k, a);
    for_column_ranges(m, n, COL_CHUNK, m * n * k / 8, c, |j0, j1, out, ld| {
        let p = PackedTernary2::pack(w, j0, j1, false);
        p.tiles(0, p.n.div_ceil(TERNARY_TILE_ROWS)).cols(isa, m, k, a, &tables, w.scale, j1 - j0, out, ld);
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
        dot_rows(m, k, a, &row, out, ld, j - j0);
    }
}

/// `out[i·ld + col] = Σ_kk a[i, kk]·row[kk]` in `kk` order, for every row `i` of `A`.
fn dot_rows(m: usize, k: usize, a: &[f32], row: &[f32], out: &mut [f32], ld: usize, col: usize) {
    for i in 0..m {
        let mut s = 0.0f32;
        for (x, y) in a[i * k..(i + 1) * k].iter().zip(row) {
            s += x * y;
        }
        out[i * ld + col] = s;
    }
}

/// Weight rows per tile of [`PackedTernary2`]: one per lane of an AVX-512 register.
pub const TERNARY_TILE_ROWS: usize = 16;
/// Elements per word.
const WORD_ELEMS: usize = 16;
/// Column chunk handed to one task: eight tiles, which share each table load.
const COL_CHUNK: usize = 128;
/// Calls with more activation rows than this dequantize a chunk of rows and run the f32 GEMM.
const GEMV_MAX_ROWS: usize = 4;
/// A word of padding: 16 codes 1 (q = 0).
const PAD_WORD: u32 = 0x5555_5555;

/// A ternary weight in the tile layout of the module documentation.
#[derive(Clone, Debug)]
pub struct PackedTernary2 {
    n: usize,
    k: usize,
    words: Vec<u32>,
    scale: f32,
}

/// Tiles of a [`PackedTernary2`] (or of a chunk packed on the fly), what the kernels read.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TernaryTiles<'a> {
    pub(crate) tiles: usize,
    /// Words per row: `ceil(k / 16)`.
    pub(crate) groups: usize,
    /// `tiles · groups · 16` words.
    pub(crate) words: &'a [u32],
}

/// Code 3 → 2 in every 2-bit field of `x` (both mean +1; the kernels' tables are indexed by
/// codes 0..=2 per element, 3 never occurring after this).
#[inline]
fn normalize_codes(x: u32) -> u32 {
    x ^ (x & (x >> 1) & 0x5555_5555)
}

impl PackedTernary2 {
    /// Packs a 2-bit ternary weight.
    ///
    /// # Panics
    /// When `packed` is not `ceil(n·k/4)` bytes.
    pub fn new(w: &Ternary2<'_>) -> PackedTernary2 {
        w.check();
        PackedTernary2::pack(w, 0, w.n, true)
    }

    /// Rows `j0..j1` (`j0` a multiple of 16) of `w`, in parallel when `parallel`.
    fn pack(w: &Ternary2<'_>, j0: usize, j1: usize, parallel: bool) -> PackedTernary2 {
        let groups = w.k.div_ceil(WORD_ELEMS);
        let tiles = (j1 - j0).div_ceil(TERNARY_TILE_ROWS);
        let mut words = vec![PAD_WORD; tiles * groups * TERNARY_TILE_ROWS];
        let fill = |(t, tile): (usize, &mut [u32])| {
            for r in 0..TERNARY_TILE_ROWS {
                let j = j0 + t * TERNARY_TILE_ROWS + r;
                if j >= j1 {
                    break;
                }
                for g in 0..groups {
                    tile[g * TERNARY_TILE_ROWS + r] = normalize_codes(source_word(w, j, g));
                }
            }
        };
        if groups > 0 {
            let chunks = words.chunks_mut(groups * TERNARY_TILE_ROWS).enumerate();
            if parallel {
                chunks.collect::<Vec<_>>().into_par_iter().for_each(fill);
            } else {
                chunks.for_each(fill);
            }
        }
        PackedTernary2 { n: j1 - j0, k: w.k, words, scale: w.scale }
    }

    /// Output features.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Input features.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Bytes held.
    pub fn size_bytes(&self) -> usize {
        self.words.len() * 4
    }

    /// Tiles `t0..t1`.
    fn tiles(&self, t0: usize, t1: usize) -> TernaryTiles<'_> {
        let groups = self.k.div_ceil(WORD_ELEMS);
        let per = groups * TERNARY_TILE_ROWS;
        TernaryTiles { tiles: t1 - t0, groups, words: &self.words[t0 * per..t1 * per] }
    }

    /// The dequantized weight, `n×k` row-major f32.
    pub fn dequantize(&self) -> Vec<f32> {
        let all = self.tiles(0, self.n.div_ceil(TERNARY_TILE_ROWS));
        let mut out = vec![0.0f32; self.n * self.k];
        for (j, row) in out.chunks_mut(self.k.max(1)).enumerate().take(self.n) {
            all.dequantize_row(j, self.scale, row);
        }
        out
    }

    /// `C (m×n) = A (m×k) · Wᵀ`; `C` is overwritten.
    ///
    /// # Panics
    /// When `a` is not `m·k` long or `c` not `m·n`.
    pub fn matmul(&self, m: usize, a: &[f32], c: &mut [f32]) {
        matmul_packed_ternary2_f32_with(selected().float, m, a, self, c);
    }
}

/// The 2-bit codes of elements `16·g .. 16·g + 16` of row `j` as a word (element `e` in bits
/// `2e .. 2e + 2`), code 1 past `k`.
fn source_word(w: &Ternary2<'_>, j: usize, g: usize) -> u32 {
    let e0 = j * w.k + g * WORD_ELEMS;
    if e0.is_multiple_of(4) && (g + 1) * WORD_ELEMS <= w.k {
        return u32::from_le_bytes(w.packed[e0 / 4..e0 / 4 + 4].try_into().expect("4 bytes"));
    }
    let mut word = PAD_WORD;
    for e in 0..WORD_ELEMS.min(w.k - g * WORD_ELEMS) {
        let code = (w.packed[(e0 + e) / 4] >> (2 * ((e0 + e) % 4))) & 3;
        word = (word & !(3 << (2 * e))) | (code as u32) << (2 * e);
    }
    word
}

impl TernaryTiles<'_> {
    /// Row `jj` (counted from the first tile) dequantized: `q·scale` for its `row.len()`
    /// elements.
    fn dequantize_row(&self, jj: usize, scale: f32, row: &mut [f32]) {
        let (t, r) = (jj / TERNARY_TILE_ROWS, jj % TERNARY_TILE_ROWS);
        for (g, chunk) in row.chunks_mut(WORD_ELEMS).enumerate() {
            let word = self.words[(t * self.groups + g) * TERNARY_TILE_ROWS + r];
            for (e, v) in chunk.iter_mut().enumerate() {
                *v = ternary_q((word >> (2 * e)) as u8) as f32 * scale;
            }
        }
    }

    /// `width` output columns: the table GEMV (`m ≤ 4`, `tables` from [`pair_tables`]),
    /// the f32 GEMM on dequantized rows (`m > 4`), or the scalar reference.
    #[allow(clippy::too_many_arguments)]
    fn cols(
        &self,
        isa: Isa,
        m: usize,
        k: usize,
        a: &[f32],
        tables: &[f32],
        scale: f32,
        width: usize,
        out: &mut [f32],
        ld: usize,
    ) {
        if isa == Isa::Scalar || k == 0 {
            let mut row = vec![0.0f32; k];
            for jj in 0..width {
                self.dequantize_row(jj, scale, &mut row);
                dot_rows(m, k, a, &row, out, ld, jj);
            }
            return;
        }
        if m > GEMV_MAX_ROWS {
            let mut deq = vec![0.0f32; width * k];
            for (jj, r) in deq.chunks_mut(k).enumerate() {
                self.dequantize_row(jj, scale, r);
            }
            f32_gemm::gemm_f32_bt_cols_isa(isa, m, k, a, &deq, 0, width, out, ld);
            return;
        }
        let per_row = self.groups * WORD_ELEMS / 2 * 16;
        for i in 0..m {
            let o = &mut out[i * ld..i * ld + width];
            if !arch::ternary_gemv_tiles(isa, self, &tables[i * per_row..(i + 1) * per_row], scale, o) {
                self.cols(Isa::Scalar, 1, k, &a[i * k..(i + 1) * k], tables, scale, width, o, width);
            }
        }
    }
}

/// Per row of `A` (up to [`GEMV_MAX_ROWS`]; none for larger `m`), one 16-entry table per pair
/// of elements `2p, 2p + 1` (`k` padded to whole words with zeros): entry `c₀ | c₁ << 2` is
/// `a[2p]·Q[c₀] + a[2p+1]·Q[c₁]`, `Q = [-1, 0, 1, 1]`.
pub(crate) fn pair_tables(isa: Isa, m: usize, k: usize, a: &[f32]) -> Vec<f32> {
    if m > GEMV_MAX_ROWS {
        return Vec::new();
    }
    let pairs = k.div_ceil(WORD_ELEMS) * WORD_ELEMS / 2;
    let mut t = vec![0.0f32; m * pairs * 16];
    for i in 0..m {
        let mut pa = vec![0.0f32; 2 * pairs];
        pa[..k].copy_from_slice(&a[i * k..(i + 1) * k]);
        let ti = &mut t[i * pairs * 16..(i + 1) * pairs * 16];
        if !arch::ternary_pair_tables(isa, &pa, ti) {
            pair_tables_scalar(&pa, ti);
        }
    }
    t
}

/// See [`pair_tables`]: `a` holds `2·pairs` activations, `t` `16·pairs` entries.
pub(crate) fn pair_tables_scalar(a: &[f32], t: &mut [f32]) {
    const Q: [f32; 4] = [-1.0, 0.0, 1.0, 1.0];
    for (pair, tab) in a.chunks_exact(2).zip(t.chunks_exact_mut(16)) {
        for (idx, v) in tab.iter_mut().enumerate() {
            // Both products are exact (q ∈ {-1, 0, 1}): one rounding, in the sum.
            *v = pair[0] * Q[idx & 3] + pair[1] * Q[idx >> 2];
        }
    }
}

/// [`PackedTernary2::matmul`] on a chosen instruction set (scalar when the CPU lacks it).
///
/// # Panics
/// As [`PackedTernary2::matmul`].
pub fn matmul_packed_ternary2_f32_with(isa: Isa, m: usize, a: &[f32], w: &PackedTernary2, c: &mut [f32]) {
    let (n, k) = (w.n, w.k);
    assert_eq!(a.len(), m * k, "packed ternary: A has {} elements, m·k = {}", a.len(), m * k);
    assert_eq!(c.len(), m * n, "packed ternary: C has {} elements, m·n = {}", c.len(), m * n);
    let isa = isa.or_scalar();
    let tables = if isa == Isa::Scalar { Vec::new() } else { pair_tables(isa, m, k, a) };
    for_column_ranges(m, n, COL_CHUNK, m * n * k / 8, c, |j0, j1, out, ld| {
        let tiles = w.tiles(j0 / TERNARY_TILE_ROWS, j1.div_ceil(TERNARY_TILE_ROWS));
        tiles.cols(isa, m, k, a, &tables, w.scale, j1 - j0, out, ld);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_layout_golden() {
        // n = 17, k = 20: two tiles (rows 17..32 padding), two words per row (elements 20..32
        // padding, code 1). Code of (j, kk) = (j + kk) % 3, except element 5 of row 0: code 3.
        let (n, k) = (17usize, 20usize);
        let mut bytes = vec![0u8; (n * k).div_ceil(4)];
        for j in 0..n {
            for kk in 0..k {
                let code = if (j, kk) == (0, 5) { 3 } else { ((j + kk) % 3) as u8 };
                let e = j * k + kk;
                bytes[e / 4] |= code << (2 * (e % 4));
            }
        }
        let p = PackedTernary2::new(&Ternary2 { n, k, packed: &bytes, scale: 1.0 });
        assert_eq!(p.words.len(), 2 * 2 * TERNARY_TILE_ROWS);
        // [tile][group][row]: row 0, word 0 is the 2-bit codes in element order, code 3 as 2.
        assert_eq!(p.words[0], 0x2492_4924 | 2 << 10);
        // Row 16 (tile 1, lane 0), word 1: elements 16..20 then padding.
        assert_eq!(p.words[2 * 2 * TERNARY_TILE_ROWS - TERNARY_TILE_ROWS], 0x5555_5592);
        assert_eq!(p.words[2 * 2 * TERNARY_TILE_ROWS - 1], PAD_WORD);
        assert_eq!(normalize_codes(0xFFFF_FFFF), 0xAAAA_AAAA);
    }

    #[test]
    fn pair_tables_hold_every_code_pair() {
        let mut t = [0.0f32; 16];
        pair_tables_scalar(&[0.5, 3.0], &mut t);
        // entry c0 | c1 << 2 = 0.5·Q[c0] + 3·Q[c1], Q = [-1, 0, 1, 1]
        assert_eq!(t[0], -3.5);
        assert_eq!(t[1 | 2 << 2], 3.0);
        assert_eq!(t[2 | 1 << 2], 0.5);
        assert_eq!(t[2 | 2 << 2], 3.5);
    }
}
