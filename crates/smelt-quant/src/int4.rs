//! Block int4 round-to-nearest, exactly as GPTQ's `Quantizer` computes it with `bits=4`, and
//! the GPTQ checkpoint layout (`qweight`, `qzeros`, `scales`, `g_idx`) that AutoGPTQ,
//! GPTQModel, transformers and ONNX Runtime's MatMulNBits importers load.
//!
//! Parameters per (row, group) of a `[out, in]` weight, groups of `g` consecutive input
//! columns, as `Quantizer.find_params` in IST-DASLab/gptq `quant.py` computes them in f32:
//! - `xmin = min(min(x), 0)`, `xmax = max(max(x), 0)`;
//! - symmetric: `xmax = max(|xmin|, xmax)`, and `xmin = -xmax` **only if `xmin < 0`**: a
//!   group with no negative value keeps `xmin = 0`, so its scale is `xmax / 15` while its zero
//!   is still 8 and positive values above `7 · scale` saturate at code 15 (GPTQ's behaviour,
//!   kept for bit-exactness);
//! - an all-zero group gets `xmin = -1`, `xmax = 1` (scale 2/15, never 0);
//! - `scale = (xmax - xmin) / 15`; zero = `(maxq + 1) / 2 = 8` if symmetric, else
//!   `round_half_even(-xmin / scale)`.
//!
//! Codes: `q = clamp(round_half_even(x / scale) + zero, 0, 15)` (a true f32 division, as
//! GPTQ's `quantize`); dequantized weight `scale * (q - zero)`. Zeros are kept as integers:
//! GPTQ's f32 zero of a group with no negative value is `round(-0.0 / scale) = -0.0`, the same
//! integer 0, and the dequantized weights come out bit-identical. Non-finite inputs never
//! panic: a NaN code becomes the zero point, a NaN zero becomes 0.
//!
//! Input dimensions that are not a multiple of `g`: GPTQ's `fasterquant` takes
//! `W[:, i:i+g]` for each group start `i`, so the last group is simply shorter and its
//! parameters come from its own columns; smelt does the same, and the checkpoint layout counts
//! `ceil(in / g)` groups (AutoGPTQ's `QuantLinear` buffers). Packing needs `in` and `out` to be
//! multiples of 8 (eight codes per int32, GPTQModel's `in // pack_factor` buffers) and says so
//! with [`SchemeError::NotMultiple`]. AutoGPTQ's `QuantLinear` allocates `in // 32 * 4` rows and
//! `out // 32 * 4` zero columns, so checkpoints meant for AutoGPTQ itself need multiples of 32;
//! that is the writer's check to make, the layout is the same.
//!
//! Checkpoint layout ([`pack_gptq`]), pinned by golden-byte tests:
//! - `qweight` int32 `[in / 8, out]`: word `[r, o]` holds the codes of row `o`, input columns
//!   `8r .. 8r + 8`, column `8r + j` in bits `4j .. 4j + 4` (lowest bits first);
//! - `qzeros` int32 `[groups, out / 8]`: word `[g, c]` holds the zeros of rows `8c .. 8c + 8`
//!   of group `g`, row `8c + j` in bits `4j ..`; in the v1 format (AutoGPTQ, the `gptq`
//!   `checkpoint_format`) the stored word is that packed word minus `0x11111111` in wrapping
//!   32-bit arithmetic, which is GPTQModel's `convert_gptq_v2_to_v1_format` and equals
//!   AutoGPTQ's per-nibble `zeros - 1` whenever no zero is 0 (always, for symmetric: every
//!   nibble is 7). A zero of 0 (asymmetric only) borrows from the next nibble: GPTQModel's
//!   reader undoes it exactly (it adds `0x11111111` back), AutoGPTQ's per-nibble `+ 1` reads
//!   16 there; v1 cannot represent it for that reader, use v2 (GPTQModel's `gptq_v2`, zeros
//!   stored as they are);
//! - `scales` f16 `[groups, out]` (round to nearest even from the f32 scale);
//! - `g_idx` int32 `[in]`: `i / g` (no act-order reordering in round-to-nearest).
//!
//! AutoGPTQ's own `pack` re-derives each code from the fake-quantized weight and the f16
//! scale, `round((W_q + zero · scale) / f16(scale))`; smelt packs the codes it computed. The
//! reference fixtures check the two agree on their data.

use half::f16;

use crate::named_tensor::NamedTensor;
use crate::rounding::round_half_even;
use crate::scheme_error::{check_shape, SchemeError};

/// Largest int4 code (GPTQ's `maxq = 2^bits - 1`).
pub const INT4_MAXQ: u8 = 15;

/// Symmetric (zero fixed at 8) or asymmetric (zero from the group's range).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Int4Mode {
    /// GPTQ `sym=True`.
    Symmetric,
    /// GPTQ `sym=False`.
    Asymmetric,
}

/// A `[rows, cols]` weight quantized to int4 codes with per-(row, group) scale and zero.
#[derive(Clone, Debug, PartialEq)]
pub struct Int4Tensor {
    /// Output features (rows).
    pub rows: usize,
    /// Input features (columns).
    pub cols: usize,
    /// Columns per group (the last group may be shorter).
    pub group_size: usize,
    /// Symmetric or asymmetric.
    pub mode: Int4Mode,
    /// One code in 0..=15 per weight, row-major `[rows, cols]`.
    pub codes: Vec<u8>,
    /// `[rows, groups]` scales.
    pub scales: Vec<f32>,
    /// `[rows, groups]` zero points in 0..=15.
    pub zeros: Vec<u8>,
}

/// GPTQ's `find_params` for one group: `(scale, zero)` with the zero as f32, as GPTQ keeps it.
#[inline(always)]
pub fn gptq_params(group: &[f32], mode: Int4Mode) -> (f32, f32) {
    let (glo, ghi) = crate::int8::run_min_max(group);
    gptq_params_from_range(glo, ghi, mode)
}

/// [`gptq_params`] from the group's [`crate::int8::run_min_max`].
#[inline(always)]
pub fn gptq_params_from_range(glo: f32, ghi: f32, mode: Int4Mode) -> (f32, f32) {
    // min(0, min(group)) and max(0, max(group)), NaN propagating (the sign of a zero bound
    // changes no code).
    let (mut lo, mut hi) = (torch_minimum(0.0, glo), torch_maximum(0.0, ghi));
    if mode == Int4Mode::Symmetric {
        hi = torch_maximum(lo.abs(), hi);
        if lo < 0.0 {
            lo = -hi;
        }
    }
    if lo == 0.0 && hi == 0.0 {
        lo = -1.0;
        hi = 1.0;
    }
    let scale = (hi - lo) / INT4_MAXQ as f32;
    let zero = match mode {
        Int4Mode::Symmetric => (INT4_MAXQ as f32 + 1.0) / 2.0,
        Int4Mode::Asymmetric => round_half_even(-lo / scale),
    };
    (scale, zero)
}

/// GPTQ's `quantize` to a code: `clamp(round_half_even(x / scale) + zero, 0, 15)`; NaN gives
/// the zero.
#[inline]
pub fn quantize_int4_value(x: f32, scale: f32, zero: f32) -> u8 {
    let q = round_half_even(x / scale) + zero;
    if q.is_nan() {
        return zero_code(zero);
    }
    q.clamp(0.0, INT4_MAXQ as f32) as u8
}

#[inline(always)]
fn zero_code(zero: f32) -> u8 {
    if zero.is_nan() {
        0
    } else {
        zero.clamp(0.0, INT4_MAXQ as f32) as u8
    }
}

/// torch.minimum / torch.min: NaN propagates.
#[inline(always)]
fn torch_minimum(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else {
        a.min(b)
    }
}

#[inline(always)]
fn torch_maximum(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else {
        a.max(b)
    }
}

/// Quantizes a row-major `[rows, cols]` weight to int4 with groups of `group_size` input
/// columns, round-to-nearest as GPTQ's `Quantizer`.
///
/// Errors: `values.len() != rows * cols`; `group_size == 0`.
pub fn quantize_int4_rtn(
    values: &[f32],
    rows: usize,
    cols: usize,
    group_size: usize,
    mode: Int4Mode,
) -> Result<Int4Tensor, SchemeError> {
    quantize_int4_rtn_tiered(smelt_tensor::simd::tier(), values, rows, cols, group_size, mode)
}

smelt_tensor::tiered!(fn quantize_int4_rtn_tiered(values: &[f32], rows: usize, cols: usize, group_size: usize, mode: Int4Mode) -> Result<Int4Tensor, SchemeError> = quantize_int4_rtn_body);

#[inline(always)]
fn quantize_int4_rtn_body(
    values: &[f32],
    rows: usize,
    cols: usize,
    group_size: usize,
    mode: Int4Mode,
) -> Result<Int4Tensor, SchemeError> {
    check_shape(&[rows, cols], values.len())?;
    if group_size == 0 {
        return Err(SchemeError::GroupSize { found: group_size });
    }
    let groups = cols.div_ceil(group_size);
    let mut codes = Vec::with_capacity(values.len());
    let mut scales = Vec::with_capacity(rows * groups);
    let mut zeros = Vec::with_capacity(rows * groups);
    if cols > 0 {
        for row in values.chunks_exact(cols) {
            for group in row.chunks(group_size) {
                let (scale, zero) = gptq_params(group, mode);
                scales.push(scale);
                zeros.push(zero_code(zero));
                let zc = zero_code(zero);
                codes.extend(group.iter().map(|&x| {
                    // quantize_int4_value, in a form that vectorizes (the clamped value is
                    // integral and small, so its bits give the code without a cast).
                    let q = round_half_even(x / scale) + zero;
                    if q.is_nan() {
                        zc
                    } else {
                        crate::int8::small_int_bits(q.clamp(0.0, INT4_MAXQ as f32)) as u8
                    }
                }));
            }
        }
    }
    Ok(Int4Tensor { rows, cols, group_size, mode, codes, scales, zeros })
}

/// [`quantize_int4_rtn`] of whole rows into the caller's buffers (the same codes, scales and
/// zeros), and the decoded values ([`Int4Tensor::dequantize`]) into `decoded`: for
/// converters that stream a tensor a few rows at a time into buffers they reuse.
///
/// Errors: a group size of 0, `values` not whole rows of `cols`, or buffers whose lengths
/// disagree (`values.len()` codes and decoded values, one scale and zero per group).
#[allow(clippy::too_many_arguments)]
pub fn quantize_int4_rows_into(
    values: &[f32],
    cols: usize,
    group_size: usize,
    mode: Int4Mode,
    codes: &mut [u8],
    scales: &mut [f32],
    zeros: &mut [u8],
    decoded: &mut [f32],
) -> Result<(), SchemeError> {
    quantize_int4_rows_into_with(
        smelt_tensor::simd::tier(),
        values,
        cols,
        group_size,
        mode,
        codes,
        scales,
        zeros,
        decoded,
    )
}

/// [`quantize_int4_rows_into`] at a given [`smelt_tensor::simd::Tier`]: the same bytes and
/// bits at every one (for differential tests).
#[allow(clippy::too_many_arguments)]
pub fn quantize_int4_rows_into_with(
    tier: smelt_tensor::simd::Tier,
    values: &[f32],
    cols: usize,
    group_size: usize,
    mode: Int4Mode,
    codes: &mut [u8],
    scales: &mut [f32],
    zeros: &mut [u8],
    decoded: &mut [f32],
) -> Result<(), SchemeError> {
    let groups = check_rows_buffers(values, cols, group_size, codes, scales, zeros, decoded)?;
    let mut ranges = vec![(0f32, 0f32); groups];
    crate::run_ranges::run_ranges_with(tier, values, cols, group_size, &mut ranges);
    quantize_int4_rows_ranged_into_with(
        tier, values, cols, group_size, &ranges, mode, codes, scales, zeros, decoded,
    )
}

/// [`quantize_int4_rows_into`] with each group's [`crate::int8::run_min_max`] already known
/// (`ranges`, one per group in row order: taken while the values were decoded, see
/// [`crate::run_ranges`]): the same codes, scales, zeros and decoded bits.
///
/// Errors: as [`quantize_int4_rows_into`], or `ranges` not one per group.
#[allow(clippy::too_many_arguments)]
pub fn quantize_int4_rows_ranged_into(
    values: &[f32],
    cols: usize,
    group_size: usize,
    ranges: &[(f32, f32)],
    mode: Int4Mode,
    codes: &mut [u8],
    scales: &mut [f32],
    zeros: &mut [u8],
    decoded: &mut [f32],
) -> Result<(), SchemeError> {
    let tier = smelt_tensor::simd::tier();
    quantize_int4_rows_ranged_into_with(
        tier, values, cols, group_size, ranges, mode, codes, scales, zeros, decoded,
    )
}

/// [`quantize_int4_rows_ranged_into`] at a given [`smelt_tensor::simd::Tier`].
#[allow(clippy::too_many_arguments)]
pub fn quantize_int4_rows_ranged_into_with(
    tier: smelt_tensor::simd::Tier,
    values: &[f32],
    cols: usize,
    group_size: usize,
    ranges: &[(f32, f32)],
    mode: Int4Mode,
    codes: &mut [u8],
    scales: &mut [f32],
    zeros: &mut [u8],
    decoded: &mut [f32],
) -> Result<(), SchemeError> {
    check_rows_buffers(values, cols, group_size, codes, scales, zeros, decoded)?;
    if ranges.len() != scales.len() {
        return Err(SchemeError::PackedLength {
            count: scales.len(),
            expected: scales.len(),
            found: ranges.len(),
        });
    }
    int4_rows_tiered(
        tier,
        values,
        cols,
        group_size,
        ranges,
        mode,
        crate::kernel_isa(tier),
        codes,
        scales,
        zeros,
        decoded,
    );
    Ok(())
}

/// The checks of [`quantize_int4_rows_into`]; the number of groups.
fn check_rows_buffers(
    values: &[f32],
    cols: usize,
    group_size: usize,
    codes: &[u8],
    scales: &[f32],
    zeros: &[u8],
    decoded: &[f32],
) -> Result<usize, SchemeError> {
    if group_size == 0 {
        return Err(SchemeError::GroupSize { found: group_size });
    }
    if cols == 0 || values.len() % cols != 0 {
        return Err(SchemeError::NotMultiple { what: "values", found: values.len(), multiple: cols });
    }
    let groups = (values.len() / cols) * cols.div_ceil(group_size);
    if codes.len() != values.len()
        || decoded.len() != values.len()
        || scales.len() != groups
        || zeros.len() != groups
    {
        return Err(SchemeError::PackedLength {
            count: values.len(),
            expected: values.len(),
            found: codes.len(),
        });
    }
    Ok(groups)
}

smelt_tensor::tiered!(fn int4_rows_tiered(values: &[f32], cols: usize, group_size: usize, ranges: &[(f32, f32)], mode: Int4Mode, isa: smelt_kernels::Isa, codes: &mut [u8], scales: &mut [f32], zeros: &mut [u8], decoded: &mut [f32]) = int4_rows_body);

/// [`quantize_int4_rtn_body`]'s loop and [`Int4Tensor::dequantize`]'s, group by group.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn int4_rows_body(
    values: &[f32],
    cols: usize,
    group_size: usize,
    ranges: &[(f32, f32)],
    mode: Int4Mode,
    isa: smelt_kernels::Isa,
    codes: &mut [u8],
    scales: &mut [f32],
    zeros: &mut [u8],
    decoded: &mut [f32],
) {
    // Every group's parameters first, then the codes and decoded values: by the explicit
    // kernel (the same bytes and bits, no division per weight) in one call over the groups,
    // or where the CPU has none by the loop below.
    let mut params = Vec::with_capacity(scales.len());
    for ((&(glo, ghi), scale), zc) in ranges.iter().zip(scales.iter_mut()).zip(zeros.iter_mut()) {
        let (s, zero) = gptq_params_from_range(glo, ghi, mode);
        (*scale, *zc) = (s, zero_code(zero));
        let hi = INT4_MAXQ as f32;
        params.push(smelt_kernels::AffineParams { scale: s, zero, zero_code: *zc as i32, lo: 0.0, hi });
    }
    use smelt_kernels::explicit::quantize_affine_groups_with as kernel;
    let done = if cols % group_size == 0 {
        kernel(isa, values, group_size, &params, codes, decoded)
    } else {
        // Groups restart at every row: one call per row.
        let gpr = cols.div_ceil(group_size);
        let rows =
            values.chunks_exact(cols).zip(codes.chunks_exact_mut(cols)).zip(decoded.chunks_exact_mut(cols));
        // `all` stops at the first `false`, which comes (if at all) from the first row,
        // before anything was written.
        rows.zip(params.chunks(gpr)).all(|(((row, out), dec), p)| kernel(isa, row, group_size, p, out, dec))
    };
    if done {
        return;
    }
    let rows =
        values.chunks_exact(cols).zip(codes.chunks_exact_mut(cols)).zip(decoded.chunks_exact_mut(cols));
    let groups = rows.flat_map(|((row, out), dec)| {
        row.chunks(group_size).zip(out.chunks_mut(group_size)).zip(dec.chunks_mut(group_size))
    });
    for (((group, out), dec), p) in groups.zip(&params) {
        let (scale, zero, zc) = (p.scale, p.zero, p.zero_code as u8);
        for ((o, y), &x) in out.iter_mut().zip(dec.iter_mut()).zip(group) {
            let q = round_half_even(x / scale) + zero;
            let c = if q.is_nan() {
                zc
            } else {
                crate::int8::small_int_bits(q.clamp(0.0, INT4_MAXQ as f32)) as u8
            };
            *o = c;
            *y = scale * (c as f32 - zc as f32);
        }
    }
}

impl Int4Tensor {
    /// Groups per row: `ceil(cols / group_size)`.
    pub fn groups(&self) -> usize {
        self.cols.div_ceil(self.group_size.max(1))
    }

    /// The dequantized weight `scale * (q - zero)`, row-major `[rows, cols]`, as GPTQ
    /// computes it in f32.
    pub fn dequantize(&self) -> Vec<f32> {
        int4tensor_dequantize_tiered(smelt_tensor::simd::tier(), self)
    }

    #[inline(always)]
    fn dequantize_impl(&self) -> Vec<f32> {
        let groups = self.groups();
        let (cols, group_size) = (self.cols.max(1), self.group_size.max(1));
        let mut out = Vec::with_capacity(self.codes.len());
        for (r, row) in self.codes.chunks(cols).enumerate() {
            for (g, group) in row.chunks(group_size).enumerate() {
                let k = r * groups + g;
                match (self.scales.get(k), self.zeros.get(k)) {
                    (Some(&s), Some(&z)) => out.extend(group.iter().map(|&q| s * (q as f32 - z as f32))),
                    _ => out.extend(group.iter().map(|_| f32::NAN)),
                }
            }
        }
        out
    }

    /// Checks that the vectors have the lengths the dimensions say (a hand-built tensor may
    /// not).
    fn check_lengths(&self) -> Result<(), SchemeError> {
        check_shape(&[self.rows, self.cols], self.codes.len())?;
        let groups = self.groups();
        check_shape(&[self.rows, groups], self.scales.len())?;
        check_shape(&[self.rows, groups], self.zeros.len())?;
        if self.group_size == 0 {
            return Err(SchemeError::GroupSize { found: 0 });
        }
        Ok(())
    }
}

/// How `qzeros` stores the zero points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QzerosFormat {
    /// AutoGPTQ / `checkpoint_format: gptq`: packed zeros minus `0x11111111` (wrapping).
    V1,
    /// GPTQModel's `gptq_v2`: zeros as they are.
    V2,
}

/// The four tensors of a GPTQ checkpoint layer, shapes as the checkpoint records them.
#[derive(Clone, Debug, PartialEq)]
pub struct GptqPacked {
    /// `[in / 8, out]`.
    pub qweight: Vec<i32>,
    /// `[groups, out / 8]`.
    pub qzeros: Vec<i32>,
    /// `[groups, out]`.
    pub scales: Vec<f16>,
    /// `[in]`.
    pub g_idx: Vec<i32>,
    /// Input features.
    pub in_features: usize,
    /// Output features.
    pub out_features: usize,
    /// Groups (`ceil(in / group_size)`).
    pub groups: usize,
    /// How `qzeros` was written.
    pub format: QzerosFormat,
}

/// Codes (one per byte, `rows × cols` row-major, only their low nibbles read) two per byte,
/// the first in the low nibble, each row padded to a whole byte with a zero nibble: the smelt
/// blob's int4 data section (docs/blob-format.md).
pub fn pack_nibble_rows(codes: &[u8], cols: usize) -> Vec<u8> {
    pack_nibble_rows_with(smelt_tensor::simd::tier(), codes, cols)
}

/// [`pack_nibble_rows`] with its loop compiled for a given [`smelt_tensor::simd::Tier`] (the
/// same bytes at every one; for differential tests).
pub fn pack_nibble_rows_with(tier: smelt_tensor::simd::Tier, codes: &[u8], cols: usize) -> Vec<u8> {
    if cols == 0 {
        return Vec::new();
    }
    let mut out = vec![0u8; codes.len() / cols * cols.div_ceil(2)];
    pack_nibble_rows_into_with(tier, codes, cols, &mut out);
    out
}

/// [`pack_nibble_rows`] into the caller's buffer (every byte of it written), for a writer
/// that reuses one buffer from tensor to tensor.
///
/// Panics when `out` is not `codes.len() / cols * ceil(cols / 2)` bytes long.
pub fn pack_nibble_rows_into(codes: &[u8], cols: usize, out: &mut [u8]) {
    pack_nibble_rows_into_with(smelt_tensor::simd::tier(), codes, cols, out)
}

/// [`pack_nibble_rows_into`] at a given [`smelt_tensor::simd::Tier`].
pub fn pack_nibble_rows_into_with(tier: smelt_tensor::simd::Tier, codes: &[u8], cols: usize, out: &mut [u8]) {
    if cols == 0 {
        assert!(out.is_empty(), "no rows, no bytes");
        return;
    }
    let (rows, row_bytes) = (codes.len() / cols, cols.div_ceil(2));
    assert_eq!(out.len(), rows * row_bytes, "packed length");
    if cols % 2 == 0 {
        // Rows of whole bytes follow each other: one run over the whole tensor.
        pack_pairs(tier, &codes[..rows * cols], out);
    } else {
        for (row, o) in codes.chunks_exact(cols).zip(out.chunks_exact_mut(row_bytes)) {
            pack_pairs(tier, &row[..cols - 1], &mut o[..row_bytes - 1]);
            o[row_bytes - 1] = row[cols - 1] & 0x0f;
        }
    }
}

smelt_tensor::tiered!(fn pack_pairs(codes: &[u8], out: &mut [u8]) = pack_pairs_body);

/// Two codes as one little-endian u16, the first's low nibble joined with the second's: a
/// loop over u16 lanes narrowed to bytes, which vectorizes (AVX-512 BW narrows sixteen-bit
/// lanes in one instruction; a byte loop over pairs compiles to byte loads and shuffles).
#[inline(always)]
fn pack_pairs_body(codes: &[u8], out: &mut [u8]) {
    for (o, p) in out.iter_mut().zip(codes.chunks_exact(2)) {
        let w = u16::from_le_bytes([p[0], p[1]]);
        *o = ((w & 0x000f) | ((w >> 4) & 0x00f0)) as u8;
    }
}

/// The `0x11111111` the v1 format subtracts from every packed zero word.
const V1_ZERO_OFFSET: u32 = 0x1111_1111;

/// Packs an int4 tensor into the GPTQ checkpoint layout (see the module documentation).
///
/// Errors: input or output features not a multiple of 8; a hand-built tensor whose codes,
/// scales or zeros do not have the lengths its dimensions say.
pub fn pack_gptq(t: &Int4Tensor, format: QzerosFormat) -> Result<GptqPacked, SchemeError> {
    t.check_lengths()?;
    let (out, inp) = (t.rows, t.cols);
    if inp % 8 != 0 {
        return Err(SchemeError::NotMultiple { what: "input features", found: inp, multiple: 8 });
    }
    if out % 8 != 0 {
        return Err(SchemeError::NotMultiple { what: "output features", found: out, multiple: 8 });
    }
    let groups = t.groups();
    let mut qweight = vec![0i32; inp / 8 * out];
    for o in 0..out {
        for r in 0..inp / 8 {
            let mut word = 0u32;
            for j in 0..8 {
                word |= ((t.codes[o * inp + 8 * r + j] & 0xF) as u32) << (4 * j);
            }
            qweight[r * out + o] = word as i32;
        }
    }
    let mut qzeros = vec![0i32; groups * (out / 8)];
    let mut scales = vec![f16::ZERO; groups * out];
    for g in 0..groups {
        for c in 0..out / 8 {
            let mut word = 0u32;
            for j in 0..8 {
                word |= ((t.zeros[(8 * c + j) * groups + g] & 0xF) as u32) << (4 * j);
            }
            if format == QzerosFormat::V1 {
                word = word.wrapping_sub(V1_ZERO_OFFSET);
            }
            qzeros[g * (out / 8) + c] = word as i32;
        }
        for o in 0..out {
            scales[g * out + o] = f16::from_f32(t.scales[o * groups + g]);
        }
    }
    let g_idx = (0..inp).map(|i| (i / t.group_size) as i32).collect();
    Ok(GptqPacked { qweight, qzeros, scales, g_idx, in_features: inp, out_features: out, groups, format })
}

impl GptqPacked {
    /// The codes back as a row-major `[out, in]` array.
    ///
    /// Only the words the dimensions call for are read (missing ones decode as code 0), so a
    /// hand-built value with inconsistent fields cannot make this panic.
    pub fn unpack_codes(&self) -> Vec<u8> {
        let (out, inp) = (self.out_features, self.in_features - self.in_features % 8);
        let mut codes = vec![0u8; out.saturating_mul(inp)];
        for (k, &w) in self.qweight.iter().take(inp / 8 * out).enumerate() {
            let (r, o) = (k / out, k % out);
            for j in 0..8 {
                codes[o * inp + 8 * r + j] = ((w as u32 >> (4 * j)) & 0xF) as u8;
            }
        }
        codes
    }

    /// The zero points back as a row-major `[out, groups]` array (v1 words get `0x11111111`
    /// added back first, as GPTQModel's reader does).
    ///
    /// Only the words the dimensions call for are read, as in [`GptqPacked::unpack_codes`].
    pub fn unpack_zeros(&self) -> Vec<u8> {
        let (out, groups) = (self.out_features - self.out_features % 8, self.groups);
        let mut zeros = vec![0u8; out.saturating_mul(groups)];
        for (k, &w) in self.qzeros.iter().take(groups * (out / 8)).enumerate() {
            let (g, c) = (k / (out / 8), k % (out / 8));
            let mut word = w as u32;
            if self.format == QzerosFormat::V1 {
                word = word.wrapping_add(V1_ZERO_OFFSET);
            }
            for j in 0..8 {
                zeros[(8 * c + j) * groups + g] = ((word >> (4 * j)) & 0xF) as u8;
            }
        }
        zeros
    }

    /// The checkpoint tensors under `prefix` (a module path such as
    /// `model.layers.0.mlp.down_proj`): `qweight` I32, `qzeros` I32, `scales` F16, `g_idx`
    /// I32.
    pub fn tensors(&self, prefix: &str) -> Vec<NamedTensor> {
        let (inp, out, groups) = (self.in_features, self.out_features, self.groups);
        let scale_bytes = self.scales.iter().flat_map(|s| s.to_le_bytes()).collect();
        vec![
            NamedTensor::i32(format!("{prefix}.qweight"), vec![inp / 8, out], &self.qweight),
            NamedTensor::i32(format!("{prefix}.qzeros"), vec![groups, out / 8], &self.qzeros),
            NamedTensor {
                name: format!("{prefix}.scales"),
                dtype: smelt_tensor::DType::F16,
                shape: vec![groups, out],
                bytes: scale_bytes,
            },
            NamedTensor::i32(format!("{prefix}.g_idx"), vec![inp], &self.g_idx),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The in-place row quantizer gives `quantize_int4_rtn`'s codes, scales and zeros and
    /// `dequantize`'s bits, for both modes, groups that do and do not divide the row, zero
    /// groups, NaN weights, quotient ties, subnormal and huge weights, at every tier (the
    /// explicit kernels at AVX2 and AVX-512).
    #[test]
    fn rows_into_matches_quantize_int4_rtn() {
        use smelt_tensor::simd::Tier;
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for (rows, cols, group) in
            [(5usize, 96usize, 32usize), (3, 100, 32), (4, 256, 128), (2, 7, 64), (4, 131, 32)]
        {
            let mut v: Vec<f32> =
                (0..rows * cols).map(|_| ((next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.3).collect();
            v[..group.min(cols)].iter_mut().for_each(|x| *x = 0.0);
            v[cols + 3] = f32::NAN;
            // A row of quotient ties and their neighbours (multiples of 1/32 against scales of
            // a fifteenth of a range that is a multiple of 1/16), where a product by 1/scale
            // and the true division round differently; then subnormals and huge weights.
            if rows >= 4 {
                for (j, x) in v[2 * cols..3 * cols].iter_mut().enumerate() {
                    let t = (j % 31) as f32 / 32.0 - 0.5;
                    *x = f32::from_bits((t.to_bits() as i32 + (j / 31 % 3) as i32 - 1) as u32);
                }
                v[3 * cols] = 1e-40;
                v[3 * cols + 1] = -3e38;
            }
            for mode in [Int4Mode::Symmetric, Int4Mode::Asymmetric] {
                let want = quantize_int4_rtn(&v, rows, cols, group, mode).unwrap();
                let want_dec = want.dequantize();
                let g = rows * cols.div_ceil(group);
                for tier in Tier::ALL {
                    let (mut codes, mut scales, mut zeros, mut dec) =
                        (vec![0u8; v.len()], vec![0f32; g], vec![0u8; g], vec![0f32; v.len()]);
                    let out = (&mut codes[..], &mut scales[..], &mut zeros[..], &mut dec[..]);
                    quantize_int4_rows_into_with(tier, &v, cols, group, mode, out.0, out.1, out.2, out.3)
                        .unwrap();
                    let at = format!("{rows}x{cols} g{group} {mode:?} {}", tier.name());
                    assert_eq!(codes, want.codes, "{at}");
                    assert_eq!(zeros, want.zeros, "{at}");
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&scales), bits(&want.scales), "{at}");
                    assert_eq!(bits(&dec), bits(&want_dec), "{at}");
                }
            }
        }
    }

    #[test]
    fn all_zero_group_gets_scale_two_fifteenths() {
        let (s, z) = gptq_params(&[0.0; 32], Int4Mode::Symmetric);
        assert_eq!((s, z), (2.0 / 15.0, 8.0));
        let (s, z) = gptq_params(&[0.0; 32], Int4Mode::Asymmetric);
        // -(-1) / f32(2/15) = 7.4999995..., rounds to 7.
        assert_eq!((s, z), (2.0 / 15.0, 7.0));
        assert_eq!(quantize_int4_value(0.0, s, z), 7);
    }

    #[test]
    fn symmetric_nonnegative_group_keeps_xmin_zero() {
        let (s, z) = gptq_params(&[0.0, 1.5, 0.75], Int4Mode::Symmetric);
        assert_eq!((s, z), (1.5 / 15.0, 8.0));
        // 1.5 / s = 15, + 8 saturates at 15.
        assert_eq!(quantize_int4_value(1.5, s, z), 15);
        let (s, _) = gptq_params(&[-0.5, 1.5], Int4Mode::Symmetric);
        assert_eq!(s, 3.0 / 15.0);
    }

    #[test]
    fn short_last_group_uses_its_own_columns() {
        let mut v = vec![0.1f32; 40];
        v[39] = 3.0;
        let t = quantize_int4_rtn(&v, 1, 40, 32, Int4Mode::Asymmetric).unwrap();
        assert_eq!(t.groups(), 2);
        assert_eq!(t.scales[0], (0.1f32 - 0.0) / 15.0);
        assert_eq!(t.scales[1], 3.0 / 15.0);
    }

    /// The blob's nibble rows at every tier equal a pair-by-pair reference, for even and odd
    /// row lengths around the eight-code words (high bits of the codes ignored), and pin the
    /// order: first code in the low nibble, odd rows padded with a zero nibble.
    #[test]
    fn nibble_rows_match_the_pairwise_reference_at_every_tier() {
        fn reference(codes: &[u8], cols: usize) -> Vec<u8> {
            let row_bytes = cols.div_ceil(2);
            let mut out = Vec::new();
            for row in codes.chunks_exact(cols) {
                let mut bytes = vec![0u8; row_bytes];
                for (i, &c) in row.iter().enumerate() {
                    bytes[i / 2] |= (c & 0x0f) << (4 * (i % 2));
                }
                out.extend(bytes);
            }
            out
        }
        let codes: Vec<u8> = (0..3 * 71u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 20) as u8).collect();
        for cols in [1, 2, 3, 7, 8, 9, 15, 16, 17, 63, 64, 65, 71] {
            let codes = &codes[..codes.len() / cols * cols];
            let want = reference(codes, cols);
            for tier in smelt_tensor::simd::Tier::ALL {
                assert_eq!(pack_nibble_rows_with(tier, codes, cols), want, "{} cols {cols}", tier.name());
            }
        }
        assert_eq!(pack_nibble_rows(&[0x1, 0x2, 0x3, 0xf4, 0x5, 0x6], 3), [0x21, 0x03, 0x54, 0x06]);
        assert!(pack_nibble_rows(&[], 0).is_empty() && pack_nibble_rows(&[], 5).is_empty());
    }

    #[test]
    fn golden_bytes_pin_nibble_order() {
        // 8 rows x 8 columns, one group; row o has codes o, o+1, ... (mod 16).
        let codes: Vec<u8> = (0..64).map(|i| ((i / 8 + i % 8) % 16) as u8).collect();
        let t = Int4Tensor {
            rows: 8,
            cols: 8,
            group_size: 8,
            mode: Int4Mode::Asymmetric,
            codes,
            scales: vec![0.5; 8],
            zeros: vec![0, 1, 2, 3, 4, 5, 6, 15],
        };
        let p = pack_gptq(&t, QzerosFormat::V2).unwrap();
        // Row 0: codes 0..7, column j in bits 4j.
        assert_eq!(p.qweight[0] as u32, 0x7654_3210);
        assert_eq!(p.qweight[1] as u32, 0x8765_4321);
        assert_eq!(p.qzeros, vec![0xF654_3210u32 as i32]);
        let v1 = pack_gptq(&t, QzerosFormat::V1).unwrap();
        // Zero 0 in the lowest nibble borrows from the next one.
        assert_eq!(v1.qzeros, vec![0xE543_20FFu32 as i32]);
        assert_eq!(v1.unpack_zeros(), t.zeros);
        assert_eq!(p.unpack_codes(), t.codes);
        assert_eq!(p.g_idx, vec![0; 8]);
        assert_eq!(p.scales, vec![f16::from_f32(0.5); 8]);
        let sym = Int4Tensor { zeros: vec![8; 8], ..t };
        assert_eq!(pack_gptq(&sym, QzerosFormat::V1).unwrap().qzeros, vec![0x7777_7777]);
    }

    #[test]
    fn packing_needs_multiples_of_eight() {
        let t = quantize_int4_rtn(&[0.5; 3 * 100], 3, 100, 32, Int4Mode::Symmetric).unwrap();
        assert!(matches!(
            pack_gptq(&t, QzerosFormat::V1),
            Err(SchemeError::NotMultiple { what: "input features", found: 100, multiple: 8 })
        ));
        let t = quantize_int4_rtn(&[0.5; 3 * 8], 3, 8, 32, Int4Mode::Symmetric).unwrap();
        assert!(matches!(pack_gptq(&t, QzerosFormat::V2), Err(SchemeError::NotMultiple { found: 3, .. })));
    }

    #[test]
    fn odd_shapes_and_bad_arguments() {
        for cols in [0usize, 1, 63, 64, 65] {
            let v: Vec<f32> = (0..2 * cols).map(|i| (i as f32).sin()).collect();
            let t = quantize_int4_rtn(&v, 2, cols, 32, Int4Mode::Asymmetric).unwrap();
            assert_eq!(t.dequantize().len(), 2 * cols);
            assert_eq!(t.scales.len(), 2 * cols.div_ceil(32));
        }
        assert!(matches!(
            quantize_int4_rtn(&[1.0; 4], 2, 2, 0, Int4Mode::Symmetric),
            Err(SchemeError::GroupSize { found: 0 })
        ));
        assert!(matches!(
            quantize_int4_rtn(&[1.0; 3], 2, 2, 32, Int4Mode::Symmetric),
            Err(SchemeError::Shape { .. })
        ));
        let t =
            quantize_int4_rtn(&[f32::NAN, 1.0, f32::INFINITY, -1.0], 1, 4, 2, Int4Mode::Asymmetric).unwrap();
        assert_eq!(t.codes.len(), 4);
    }
}

#[inline(always)]
fn int4tensor_dequantize_body(t: &Int4Tensor) -> Vec<f32> {
    t.dequantize_impl()
}
smelt_tensor::tiered!(fn int4tensor_dequantize_tiered(t: &Int4Tensor) -> Vec<f32> = int4tensor_dequantize_body);
