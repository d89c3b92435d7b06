//! INT8 weight quantization with ONNX QuantizeLinear semantics, so a QDQ or
//! `MatMulInteger` model smelt writes computes what ONNX Runtime's own quantization tool
//! (`onnxruntime.quantization`) would have written for the same weights.
//!
//! Parameters, as ORT's `quant_utils.compute_scale_zp` computes them for weights from the
//! range `[rmin, rmax]` of the tensor or channel:
//! - the range is first widened to include 0: `rmin = min(rmin, 0)`, `rmax = max(rmax, 0)`;
//! - **symmetric** (ORT's default for int8 weights): int8 codes in `[-127, 127]` (ORT's
//!   symmetric int8 range, so `-128` never occurs), `scale = 2·max(|rmin|, |rmax|) / 254`
//!   computed in f64 and rounded once to f32 (the same value as `max|x| / 127` in f32), zero
//!   point 0;
//! - **asymmetric**: uint8 codes in `[0, 255]`, `scale = (rmax - rmin) / 255` in f64,
//!   `zero_point = round_half_even(0 - rmin / scale)` in f64 (before the scale is rounded to
//!   f32, as ORT does), saturated to `[0, 255]`, then the scale rounded to f32;
//! - a degenerate range (all zeros, or a scale below the smallest normal f32, 2^-126): ORT
//!   sets `scale = 1.0` and `zero_point = 0`, and so does smelt, so an all-zero row or
//!   tensor never gets a zero or NaN scale and quantizes to all-zero codes.
//!
//! Codes, as ONNX `QuantizeLinear` (and ORT's MLAS kernel and python tool): `q =
//! saturate(round_half_even(x / scale) + zero_point)`, a true f32 division (not a
//! multiplication by a reciprocal), saturated to the code type's range. NaN inputs give the
//! zero point (ORT's own result for NaN depends on whether the element falls in a vector body
//! or a scalar tail of its kernel, so there is no single behaviour to match); ±∞ saturate.
//! Dequantization is ONNX `DequantizeLinear`: `(q - zero_point) as f32 * scale`.
//!
//! Per-channel quantization takes one `(scale, zero_point)` per index along `axis` (ORT's
//! default for a `[out, in]` MatMul/Gemm weight is the output-channel axis 0), computed from
//! that channel's elements alone, as ORT's `quantize_weight_per_channel` does.

use smelt_tensor::DType;

use crate::rounding::round_half_even;
use crate::scheme_error::{check_shape, SchemeError};

/// Symmetric (int8, zero point 0) or asymmetric (uint8, zero point from the range).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Int8Mode {
    /// int8 codes in `[-127, 127]`, zero point 0.
    Symmetric,
    /// uint8 codes in `[0, 255]`, zero point `round(-rmin / scale)`.
    Asymmetric,
}

impl Int8Mode {
    /// The smallest and largest code the parameters are computed for (ORT's
    /// `get_qmin_qmax_for_qType` with `symmetric` set for int8).
    pub fn param_range(self) -> (i32, i32) {
        match self {
            Int8Mode::Symmetric => (-127, 127),
            Int8Mode::Asymmetric => (0, 255),
        }
    }

    /// The range codes saturate to: the whole code type, as QuantizeLinear saturates.
    pub fn saturation_range(self) -> (i32, i32) {
        match self {
            Int8Mode::Symmetric => (-128, 127),
            Int8Mode::Asymmetric => (0, 255),
        }
    }

    /// The storage dtype of codes and zero points: I8 or U8.
    pub fn dtype(self) -> DType {
        match self {
            Int8Mode::Symmetric => DType::I8,
            Int8Mode::Asymmetric => DType::U8,
        }
    }
}

/// One tensor-wide pair of parameters, or one per index along an axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Int8Granularity {
    /// One scale and zero point for the whole tensor.
    PerTensor,
    /// One scale and zero point per index along `axis` (0 for a `[out, in]` weight's output
    /// channels).
    PerChannel {
        /// The channel axis.
        axis: usize,
    },
}

impl Default for Int8Granularity {
    /// Per output channel of a PyTorch/Hugging Face `[out, in]` weight: axis 0. (An ONNX
    /// `MatMul` weight is `[in, out]`, whose output channels are axis 1.)
    fn default() -> Self {
        Int8Granularity::PerChannel { axis: 0 }
    }
}

/// A scale and zero point.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Int8Params {
    /// Positive (or 1.0 for a degenerate range); NaN only if the range was NaN.
    pub scale: f32,
    /// In the code type's range.
    pub zero_point: i32,
}

/// The scale and zero point ONNX Runtime's quantization tool computes for values in
/// `[rmin, rmax]` (see the module documentation).
#[inline(always)]
pub fn int8_params(rmin: f32, rmax: f32, mode: Int8Mode) -> Int8Params {
    let (qmin, qmax) = mode.param_range();
    // numpy.minimum / numpy.maximum: NaN propagates.
    let mut rmin = if rmin.is_nan() { rmin } else { rmin.min(0.0) };
    let mut rmax = if rmax.is_nan() { rmax } else { rmax.max(0.0) };
    if mode == Int8Mode::Symmetric {
        let absmax = if rmin.is_nan() || rmax.is_nan() { f32::NAN } else { rmin.abs().max(rmax.abs()) };
        rmin = -absmax;
        rmax = absmax;
    }
    let scale = (rmax as f64 - rmin as f64) / (qmax as f64 - qmin as f64);
    if scale < f32::MIN_POSITIVE as f64 {
        return Int8Params { scale: 1.0, zero_point: 0 };
    }
    let zero_point = match mode {
        // round((qmin + qmax) / 2) = 0 for the symmetric int8 range.
        Int8Mode::Symmetric => 0,
        Int8Mode::Asymmetric => {
            let z = (qmin as f64 - rmin as f64 / scale).round_ties_even();
            if z.is_nan() {
                0
            } else {
                z.clamp(qmin as f64, qmax as f64) as i32
            }
        }
    };
    Int8Params { scale: scale as f32, zero_point }
}

/// ONNX QuantizeLinear of one value: `saturate(round_half_even(x / scale) + zero_point)`.
#[inline]
pub fn quantize_linear(x: f32, params: Int8Params, mode: Int8Mode) -> i32 {
    let (lo, hi) = mode.saturation_range();
    let q = round_half_even(x / params.scale) + params.zero_point as f32;
    if q.is_nan() {
        return params.zero_point;
    }
    q.clamp(lo as f32, hi as f32) as i32
}

/// ONNX DequantizeLinear of one code: `(q - zero_point) as f32 * scale`.
#[inline]
pub fn dequantize_linear(q: i32, params: Int8Params) -> f32 {
    (q - params.zero_point) as f32 * params.scale
}

/// An INT8-quantized tensor: codes in the input's row-major order plus its parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Int8Tensor {
    /// Symmetric (int8 storage) or asymmetric (uint8 storage).
    pub mode: Int8Mode,
    /// Shape of the original tensor, row-major.
    pub shape: Vec<usize>,
    /// The channel axis, or `None` for per-tensor parameters.
    pub axis: Option<usize>,
    /// One code per element, as stored: two's-complement int8 bytes for
    /// [`Int8Mode::Symmetric`], uint8 for [`Int8Mode::Asymmetric`].
    pub codes: Vec<u8>,
    /// One scale per channel (one in all for per-tensor).
    pub scales: Vec<f32>,
    /// One zero point per channel, stored like the codes.
    pub zero_points: Vec<u8>,
}

impl Int8Tensor {
    /// Storage dtype of [`Int8Tensor::codes`] and [`Int8Tensor::zero_points`].
    pub fn dtype(&self) -> DType {
        self.mode.dtype()
    }

    /// Code `i` as an integer (None past the end).
    pub fn code(&self, i: usize) -> Option<i32> {
        self.codes.get(i).map(|&b| stored_to_i32(b, self.mode))
    }

    /// The parameters of channel `c` (c = 0 for per-tensor).
    pub fn params(&self, c: usize) -> Option<Int8Params> {
        let scale = *self.scales.get(c)?;
        let zero_point = stored_to_i32(*self.zero_points.get(c)?, self.mode);
        Some(Int8Params { scale, zero_point })
    }

    /// The dequantized values (ONNX DequantizeLinear), row-major.
    pub fn dequantize(&self) -> Vec<f32> {
        int8tensor_dequantize_tiered(smelt_tensor::simd::tier(), self)
    }

    #[inline(always)]
    fn dequantize_impl(&self) -> Vec<f32> {
        let (run_len, channels) = runs(self.codes.len(), &self.shape, self.axis);
        let mut out = Vec::with_capacity(self.codes.len());
        for (k, run) in self.codes.chunks(run_len).enumerate() {
            let c = if channels == 0 { 0 } else { k % channels };
            let p = self.params(c).unwrap_or(Int8Params { scale: 1.0, zero_point: 0 });
            match self.mode {
                Int8Mode::Symmetric => {
                    out.extend(run.iter().map(|&b| (b as i8 as i32 - p.zero_point) as f32 * p.scale))
                }
                Int8Mode::Asymmetric => {
                    out.extend(run.iter().map(|&b| (b as i32 - p.zero_point) as f32 * p.scale))
                }
            }
        }
        out
    }
}

fn stored_to_i32(b: u8, mode: Int8Mode) -> i32 {
    match mode {
        Int8Mode::Symmetric => b as i8 as i32,
        Int8Mode::Asymmetric => b as i32,
    }
}

fn i32_to_stored(q: i32, mode: Int8Mode) -> u8 {
    match mode {
        Int8Mode::Symmetric => q as i8 as u8,
        Int8Mode::Asymmetric => q as u8,
    }
}

/// How `n` row-major elements split into runs of consecutive elements that share one channel:
/// (run length, channel count), run `k` being channel `k % channels`. Per-tensor is one run.
fn runs(n: usize, shape: &[usize], axis: Option<usize>) -> (usize, usize) {
    match axis {
        None => (n.max(1), 1),
        Some(_) => channel_layout(shape, axis),
    }
}

/// (elements per step along the axis, channel count); per-tensor is one channel.
fn channel_layout(shape: &[usize], axis: Option<usize>) -> (usize, usize) {
    match axis {
        None => (1, 1),
        Some(a) => {
            let inner = shape.get(a + 1..).map_or(1, |s| s.iter().product::<usize>()).max(1);
            (inner, shape.get(a).copied().unwrap_or(0))
        }
    }
}

/// Quantizes `values` (row-major, of `shape`) to INT8 as ONNX Runtime's quantization tool
/// quantizes a weight.
///
/// Per-channel parameters come one pair per index along the axis, `shape[axis]` of them, also
/// for a tensor with no elements.
///
/// Errors: `values.len()` is not the element count of `shape`; a per-channel axis past the
/// rank.
pub fn quantize_int8(
    values: &[f32],
    shape: &[usize],
    mode: Int8Mode,
    granularity: Int8Granularity,
) -> Result<Int8Tensor, SchemeError> {
    quantize_int8_tiered(smelt_tensor::simd::tier(), values, shape, mode, granularity)
}

smelt_tensor::tiered!(fn quantize_int8_tiered(values: &[f32], shape: &[usize], mode: Int8Mode, granularity: Int8Granularity) -> Result<Int8Tensor, SchemeError> = quantize_int8_body);

#[inline(always)]
fn quantize_int8_body(
    values: &[f32],
    shape: &[usize],
    mode: Int8Mode,
    granularity: Int8Granularity,
) -> Result<Int8Tensor, SchemeError> {
    check_shape(shape, values.len())?;
    let axis = match granularity {
        Int8Granularity::PerTensor => None,
        Int8Granularity::PerChannel { axis } if axis < shape.len() => Some(axis),
        Int8Granularity::PerChannel { axis } => return Err(SchemeError::Axis { axis, rank: shape.len() }),
    };
    let (run_len, channels) = runs(values.len(), shape, axis);

    // numpy min/max per channel, NaN propagating; empty channels use 0 as ORT does.
    let mut ranges: Vec<Option<(f32, f32)>> = vec![None; channels];
    for (k, run) in values.chunks(run_len).enumerate() {
        let (lo, hi) = run_min_max(run);
        let r = &mut ranges[k % channels];
        *r = Some(match *r {
            None => (lo, hi),
            Some((a, b)) => (nan_min(a, lo), nan_max(b, hi)),
        });
    }
    let params: Vec<Int8Params> = ranges
        .iter()
        .map(|r| {
            let (lo, hi) = r.unwrap_or((0.0, 0.0));
            int8_params(lo, hi, mode)
        })
        .collect();
    let mut codes = vec![0u8; values.len()];
    for (k, (run, out)) in values.chunks(run_len).zip(codes.chunks_mut(run_len)).enumerate() {
        quantize_run(run, params[k % channels], mode, out);
    }
    Ok(Int8Tensor {
        mode,
        shape: shape.to_vec(),
        axis,
        codes,
        scales: params.iter().map(|p| p.scale).collect(),
        zero_points: params.iter().map(|p| i32_to_stored(p.zero_point, mode)).collect(),
    })
}

/// [`quantize_linear`] over a run of values sharing `p`, as stored bytes (see
/// [`Int8Tensor::codes`]), for callers that computed `p` themselves (a tensor streamed in
/// chunks with per-tensor parameters). Written so that it vectorizes: the same float
/// operations, then the (integral, in-range) result turned into its stored byte by the
/// 1.5 · 2^23 bit trick instead of a saturating cast.
pub fn quantize_run(run: &[f32], p: Int8Params, mode: Int8Mode, out: &mut [u8]) {
    quantize_run_tiered(smelt_tensor::simd::tier(), run, p, mode, out)
}

smelt_tensor::tiered!(fn quantize_run_tiered(run: &[f32], p: Int8Params, mode: Int8Mode, out: &mut [u8]) = quantize_run_body);

#[inline(always)]
fn quantize_run_body(run: &[f32], p: Int8Params, mode: Int8Mode, out: &mut [u8]) {
    let (lo, hi) = mode.saturation_range();
    let (lo, hi, zp) = (lo as f32, hi as f32, p.zero_point as f32);
    for (o, &x) in out.iter_mut().zip(run) {
        let q = round_half_even(x / p.scale) + zp;
        let q = if q.is_nan() { zp } else { q.clamp(lo, hi) };
        *o = small_int_bits(q) as u8;
    }
}

/// Per-row (axis 0) INT8 of a row-major `[rows, cols]` block of values, as
/// [`quantize_int8`] with `PerChannel { axis: 0 }` computes it (the same bytes), written into
/// the caller's buffers: `codes` (`values.len()`), `scales` and `zero_points` (one per row,
/// stored as [`Int8Tensor::zero_points`]), and the decoded values
/// ([`Int8Tensor::dequantize`]) into `decoded` (`values.len()`). For converters that stream
/// a tensor a few rows at a time into buffers they reuse.
///
/// Panics when a buffer's length disagrees or `cols` is 0.
pub fn quantize_rows_into(
    values: &[f32],
    cols: usize,
    mode: Int8Mode,
    codes: &mut [u8],
    scales: &mut [f32],
    zero_points: &mut [u8],
    decoded: &mut [f32],
) {
    quantize_rows_into_with(
        smelt_tensor::simd::tier(),
        values,
        cols,
        mode,
        codes,
        scales,
        zero_points,
        decoded,
    )
}

/// [`quantize_rows_into`] at a given [`smelt_tensor::simd::Tier`]: the same bytes and bits at
/// every one (for differential tests).
#[allow(clippy::too_many_arguments)]
pub fn quantize_rows_into_with(
    tier: smelt_tensor::simd::Tier,
    values: &[f32],
    cols: usize,
    mode: Int8Mode,
    codes: &mut [u8],
    scales: &mut [f32],
    zero_points: &mut [u8],
    decoded: &mut [f32],
) {
    // The buffers' lengths are checked by the ranged form.
    assert!(cols > 0 && values.len() % cols == 0, "whole rows");
    let rows = values.len() / cols;
    let mut ranges = vec![(0f32, 0f32); rows];
    crate::run_ranges::run_ranges_with(tier, values, cols, cols, &mut ranges);
    quantize_rows_ranged_into_with(tier, values, cols, &ranges, mode, codes, scales, zero_points, decoded)
}

/// [`quantize_rows_into`] with each row's [`run_min_max`] already known (`ranges`, one per
/// row: taken while the values were decoded, see [`crate::run_ranges`]): the same bytes and
/// bits.
///
/// Panics as [`quantize_rows_into`] does, or when `ranges` is not one per row.
#[allow(clippy::too_many_arguments)]
pub fn quantize_rows_ranged_into(
    values: &[f32],
    cols: usize,
    ranges: &[(f32, f32)],
    mode: Int8Mode,
    codes: &mut [u8],
    scales: &mut [f32],
    zero_points: &mut [u8],
    decoded: &mut [f32],
) {
    let tier = smelt_tensor::simd::tier();
    quantize_rows_ranged_into_with(tier, values, cols, ranges, mode, codes, scales, zero_points, decoded)
}

/// [`quantize_rows_ranged_into`] at a given [`smelt_tensor::simd::Tier`].
#[allow(clippy::too_many_arguments)]
pub fn quantize_rows_ranged_into_with(
    tier: smelt_tensor::simd::Tier,
    values: &[f32],
    cols: usize,
    ranges: &[(f32, f32)],
    mode: Int8Mode,
    codes: &mut [u8],
    scales: &mut [f32],
    zero_points: &mut [u8],
    decoded: &mut [f32],
) {
    assert!(cols > 0 && values.len() % cols == 0, "whole rows");
    let rows = values.len() / cols;
    assert!(codes.len() == values.len() && decoded.len() == values.len(), "codes and decoded lengths");
    assert!(scales.len() == rows && zero_points.len() == rows, "one scale and zero point per row");
    assert_eq!(ranges.len(), rows, "one range per row");
    let isa = crate::kernel_isa(tier);
    quantize_rows_tiered(tier, values, cols, ranges, mode, isa, codes, scales, zero_points, decoded)
}

smelt_tensor::tiered!(fn quantize_rows_tiered(values: &[f32], cols: usize, ranges: &[(f32, f32)], mode: Int8Mode, isa: smelt_kernels::Isa, codes: &mut [u8], scales: &mut [f32], zero_points: &mut [u8], decoded: &mut [f32]) = quantize_rows_body);

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn quantize_rows_body(
    values: &[f32],
    cols: usize,
    ranges: &[(f32, f32)],
    mode: Int8Mode,
    isa: smelt_kernels::Isa,
    codes: &mut [u8],
    scales: &mut [f32],
    zero_points: &mut [u8],
    decoded: &mut [f32],
) {
    // Every row's parameters first, then the codes and decoded values: by the explicit kernel
    // (the same bytes and bits, no division per weight) in one call over the rows, or where
    // the CPU has none by the loops below.
    let (sat_lo, sat_hi) = mode.saturation_range();
    let mut params = Vec::with_capacity(scales.len());
    for ((&(lo, hi), scale), zp) in ranges.iter().zip(scales.iter_mut()).zip(zero_points.iter_mut()) {
        let p = int8_params(lo, hi, mode);
        *scale = p.scale;
        *zp = i32_to_stored(p.zero_point, mode);
        params.push(p);
    }
    let affine: Vec<smelt_kernels::AffineParams> = params
        .iter()
        .map(|p| smelt_kernels::AffineParams {
            scale: p.scale,
            zero: p.zero_point as f32,
            zero_code: p.zero_point,
            lo: sat_lo as f32,
            hi: sat_hi as f32,
        })
        .collect();
    if smelt_kernels::explicit::quantize_affine_groups_with(isa, values, cols, &affine, codes, decoded) {
        return;
    }
    let rows =
        values.chunks_exact(cols).zip(codes.chunks_exact_mut(cols)).zip(decoded.chunks_exact_mut(cols));
    for (((run, out), dec), &p) in rows.zip(&params) {
        quantize_run_body(run, p, mode, out);
        // As `dequantize_impl`: (code - zero point) as f32 times the scale.
        match mode {
            Int8Mode::Symmetric => {
                for (y, &b) in dec.iter_mut().zip(out.iter()) {
                    *y = (b as i8 as i32 - p.zero_point) as f32 * p.scale;
                }
            }
            Int8Mode::Asymmetric => {
                for (y, &b) in dec.iter_mut().zip(out.iter()) {
                    *y = (b as i32 - p.zero_point) as f32 * p.scale;
                }
            }
        }
    }
}

/// An integral f32 of magnitude below 2^22 as an i32, without a (saturating, scalar) cast.
#[inline(always)]
pub(crate) fn small_int_bits(q: f32) -> i32 {
    const SHIFT: f32 = 12_582_912.0; // 1.5 · 2^23: sums with |q| < 2^22 share its exponent
    (q + SHIFT).to_bits() as i32 - SHIFT.to_bits() as i32
}

/// NaN-propagating (min, max) of a run, computed on the bits (see [`min_max_key`]); (NaN, NaN) if any
/// element is NaN, (0, 0) for an empty run. Signed zeros may come out either way, which no
/// caller distinguishes (ranges are widened to include 0 first).
#[inline(always)]
pub fn run_min_max(run: &[f32]) -> (f32, f32) {
    if run.is_empty() {
        return (0.0, 0.0);
    }
    let (mut lo, mut hi, mut abs) = (i32::MAX, i32::MIN, 0u32);
    for &x in run {
        let k = min_max_key(x.to_bits() as i32);
        lo = lo.min(k);
        hi = hi.max(k);
        abs = abs.max(x.to_bits() & 0x7fff_ffff);
    }
    min_max_from_keys(lo, hi, abs)
}

/// [`run_min_max`] works on the bits, so that it vectorizes with no branch: flipping the
/// magnitude bits of the negative floats makes the i32 order the float order (-0 just below
/// +0). The key of a float's bits; its own inverse.
#[inline(always)]
pub(crate) fn min_max_key(i: i32) -> i32 {
    i ^ (((i >> 31) as u32) >> 1) as i32
}

/// [`run_min_max`]'s result from the smallest and largest keys and the largest `|x|` bits of
/// a run that is not empty: |x| bits above infinity's mean a NaN.
#[inline(always)]
pub(crate) fn min_max_from_keys(lo: i32, hi: i32, abs: u32) -> (f32, f32) {
    if abs > 0x7f80_0000 {
        return (f32::NAN, f32::NAN);
    }
    (f32::from_bits(min_max_key(lo) as u32), f32::from_bits(min_max_key(hi) as u32))
}

/// `numpy.minimum`: NaN propagates.
#[inline(always)]
pub fn nan_min(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else {
        a.min(b)
    }
}

/// `numpy.maximum`: NaN propagates.
#[inline(always)]
pub fn nan_max(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else {
        a.max(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_scale_is_absmax_over_127() {
        let p = int8_params(-0.5, 1.27, Int8Mode::Symmetric);
        assert_eq!(p, Int8Params { scale: 1.27f32 / 127.0, zero_point: 0 });
        assert_eq!(quantize_linear(1.27, p, Int8Mode::Symmetric), 127);
        assert_eq!(quantize_linear(-1.27, p, Int8Mode::Symmetric), -127);
    }

    #[test]
    fn asymmetric_range_includes_zero() {
        // All positive: rmin widened to 0, so the zero point is 0.
        let p = int8_params(0.5, 2.55, Int8Mode::Asymmetric);
        assert_eq!(p.zero_point, 0);
        assert_eq!(p.scale, (2.55f32 as f64 / 255.0) as f32);
        // All negative: rmax widened to 0, zero point 255.
        assert_eq!(int8_params(-2.0, -1.0, Int8Mode::Asymmetric).zero_point, 255);
    }

    #[test]
    fn degenerate_range_gets_scale_one() {
        for mode in [Int8Mode::Symmetric, Int8Mode::Asymmetric] {
            assert_eq!(int8_params(0.0, 0.0, mode), Int8Params { scale: 1.0, zero_point: 0 });
            // Nonzero but tiny: below the smallest normal f32 too.
            assert_eq!(int8_params(-1e-40, 1e-40, mode), Int8Params { scale: 1.0, zero_point: 0 });
        }
        let t =
            quantize_int8(&[0.0; 6], &[2, 3], Int8Mode::Symmetric, Int8Granularity::PerChannel { axis: 0 })
                .unwrap();
        assert_eq!(t.scales, vec![1.0, 1.0]);
        assert_eq!(t.codes, vec![0; 6]);
        assert_eq!(t.dequantize(), vec![0.0; 6]);
    }

    /// Every tier writes the baseline copy's codes, scales, zero
    /// points and decoded bits, over rows of every tail length, in both modes: exact ties of
    /// `x / scale`, weights a few ulps either side of a tie (where `x · (1/scale)` and the
    /// division can round differently), zeros of both signs, subnormals, huge values, NaN and
    /// infinities, and all-zero rows.
    #[test]
    fn every_tier_quantizes_rows_like_the_reference() {
        use smelt_tensor::simd::Tier;
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for cols in (1..=40).chain([63, 64, 65, 100, 257]) {
            for round in 0..6 {
                let rows = 7;
                let mut v = Vec::with_capacity(rows * cols);
                for r in 0..rows {
                    let kind = (next() % 8) as u32;
                    let e = (next() % 60) as i32 - 30;
                    let unit = 2f32.powi(e);
                    // A scale that is not a power of two, and the row's extreme that gives it.
                    let odd = 1.0 + (next() >> 41) as f32 / (1u64 << 23) as f32;
                    for j in 0..cols {
                        let k = (next() % 256) as f32 - 128.0;
                        let ulps = (next() % 7) as i32 - 3;
                        let nudge = |f: f32| f32::from_bits((f.to_bits() as i32 + ulps) as u32);
                        v.push(match kind {
                            // extreme 127·unit: scale = unit, (k + 0.5)·unit ties exactly.
                            0 if j == 0 => 127.0 * unit,
                            0 => (k + 0.5) * unit,
                            // near ties for an odd scale
                            1 if j == 0 => -127.0 * odd * unit,
                            1 => nudge((k.clamp(-127.0, 126.0) + 0.5) * odd * unit),
                            2 => {
                                if (j + r) % 2 == 0 {
                                    0.0
                                } else {
                                    -0.0
                                }
                            }
                            3 => {
                                f32::from_bits((next() % 0x80_0000) as u32)
                                    * if j % 3 == 0 { -1.0 } else { 1.0 }
                            }
                            4 if j == (r * 3 + round) % cols => f32::NAN,
                            5 if j == (r * 5 + round) % cols => {
                                if round % 2 == 0 {
                                    f32::INFINITY
                                } else {
                                    f32::NEG_INFINITY
                                }
                            }
                            6 => 3.0e38 * ((next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5),
                            _ => ((next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * unit,
                        });
                    }
                }
                for mode in [Int8Mode::Symmetric, Int8Mode::Asymmetric] {
                    let n = rows * cols;
                    let run = |tier| {
                        let (mut c, mut s, mut z, mut d) =
                            (vec![0u8; n], vec![0f32; rows], vec![0u8; rows], vec![0f32; n]);
                        quantize_rows_into_with(tier, &v, cols, mode, &mut c, &mut s, &mut z, &mut d);
                        (
                            c,
                            s.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                            z,
                            d.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                        )
                    };
                    let want = run(Tier::Scalar);
                    for tier in Tier::ALL {
                        let got = run(tier);
                        for (i, (g, w)) in got.0.iter().zip(&want.0).enumerate() {
                            assert_eq!(
                                g,
                                w,
                                "{mode:?} cols {cols} round {round} {}: code {i} of {:?}",
                                tier.name(),
                                v[i]
                            );
                        }
                        assert!(got == want, "{mode:?} cols {cols} round {round} {}: scales, zero points or decoded bits differ", tier.name());
                    }
                }
            }
        }
    }

    #[test]
    fn ties_round_to_even_and_saturate() {
        let p = Int8Params { scale: 1.0, zero_point: 0 };
        assert_eq!(quantize_linear(2.5, p, Int8Mode::Symmetric), 2);
        assert_eq!(quantize_linear(-3.5, p, Int8Mode::Symmetric), -4);
        assert_eq!(quantize_linear(1000.0, p, Int8Mode::Symmetric), 127);
        assert_eq!(quantize_linear(f32::NEG_INFINITY, p, Int8Mode::Symmetric), -128);
        assert_eq!(quantize_linear(f32::NAN, p, Int8Mode::Symmetric), 0);
        let pa = Int8Params { scale: 1.0, zero_point: 10 };
        assert_eq!(quantize_linear(-20.0, pa, Int8Mode::Asymmetric), 0);
        assert_eq!(quantize_linear(f32::NAN, pa, Int8Mode::Asymmetric), 10);
    }

    #[test]
    fn per_channel_along_each_axis() {
        assert_eq!(Int8Granularity::default(), Int8Granularity::PerChannel { axis: 0 });
        let v = [1.0, -2.0, 4.0, 0.5, 0.25, -0.125];
        let rows =
            quantize_int8(&v, &[2, 3], Int8Mode::Symmetric, Int8Granularity::PerChannel { axis: 0 }).unwrap();
        assert_eq!(rows.scales, vec![4.0 / 127.0, 0.5 / 127.0]);
        let cols =
            quantize_int8(&v, &[2, 3], Int8Mode::Symmetric, Int8Granularity::PerChannel { axis: 1 }).unwrap();
        assert_eq!(cols.scales, vec![1.0 / 127.0, 2.0 / 127.0, 4.0 / 127.0]);
        assert_eq!(cols.code(2), Some(127));
        assert_eq!(cols.code(5), Some(-4));
    }

    #[test]
    fn odd_shapes_do_not_panic() {
        for n in [0usize, 1, 63, 64, 65] {
            let v: Vec<f32> = (0..n).map(|i| i as f32 - 30.0).collect();
            for mode in [Int8Mode::Symmetric, Int8Mode::Asymmetric] {
                let t = quantize_int8(&v, &[n], mode, Int8Granularity::PerTensor).unwrap();
                assert_eq!(t.dequantize().len(), n);
                let c = quantize_int8(&v, &[n, 1], mode, Int8Granularity::PerChannel { axis: 0 }).unwrap();
                assert_eq!(c.scales.len(), n);
            }
        }
        let empty =
            quantize_int8(&[], &[0, 5], Int8Mode::Asymmetric, Int8Granularity::PerChannel { axis: 1 })
                .unwrap();
        assert_eq!(empty.scales, vec![1.0; 5]);
    }

    #[test]
    fn bad_arguments_are_errors() {
        assert!(matches!(
            quantize_int8(&[1.0; 5], &[2, 3], Int8Mode::Symmetric, Int8Granularity::PerTensor),
            Err(SchemeError::Shape { expected: Some(6), found: 5, .. })
        ));
        assert!(matches!(
            quantize_int8(&[1.0; 6], &[2, 3], Int8Mode::Symmetric, Int8Granularity::PerChannel { axis: 2 }),
            Err(SchemeError::Axis { axis: 2, rank: 2 })
        ));
        assert!(matches!(
            quantize_int8(&[], &[usize::MAX, 2], Int8Mode::Symmetric, Int8Granularity::PerTensor),
            Err(SchemeError::Shape { expected: None, .. })
        ));
    }
}

#[inline(always)]
fn int8tensor_dequantize_body(t: &Int8Tensor) -> Vec<f32> {
    t.dequantize_impl()
}
smelt_tensor::tiered!(fn int8tensor_dequantize_tiered(t: &Int8Tensor) -> Vec<f32> = int8tensor_dequantize_body);
