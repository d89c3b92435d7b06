//! One tensor through its scheme: read as f32, refuse non-finite values, quantize or cast,
//! and measure what was lost by decoding the result and comparing.
//!
//! Work is one tensor at a time (memory stays bounded by the largest tensor, not the model).
//! Within a tensor, schemes whose blocks are independent split rows across threads in chunks
//! of a fixed size, so the bytes do not depend on the thread count.

use std::borrow::Cow;

use bytes::Bytes;
use rayon::prelude::*;
use smelt_formats::Tensor;
use smelt_quant::int4::{Int4Mode, Int4Tensor};
use smelt_quant::int8::{Int8Granularity, Int8Mode, Int8Tensor};
use smelt_quant::metrics::ErrorMetrics;
use smelt_quant::nf4::{Nf4Options, Nf4Tensor};
use smelt_quant::ternary::TernaryTensor;
use smelt_tensor::DType;

use crate::scheme::{Scheme, TernaryPacking};
use crate::ConvertError;

/// Elements per parallel work item. Fixed, so chunk boundaries (and therefore every byte) are
/// the same whatever the number of threads.
pub(crate) const CHUNK_ELEMS: usize = 1 << 18;

/// A tensor after its scheme.
#[derive(Clone, Debug)]
pub enum Encoded {
    /// Bytes of a plain or ggml dtype: kept, cast, or ggml-quantized.
    Plain {
        /// Stored dtype.
        dtype: DType,
        /// Stored bytes.
        data: Bytes,
    },
    /// INT8 codes, scales, zero points.
    Int8(Int8Tensor),
    /// NF4 packed codes and statistics.
    Nf4(Nf4Tensor),
    /// Block int4 codes, scales, zeros.
    Int4(Int4Tensor),
    /// Ternary codes and scale, with the packing to store.
    Ternary(TernaryTensor, TernaryPacking),
}

impl Encoded {
    /// Done with: its large buffers go back to be reused by the next tensor (a plain
    /// encoding's buffer returns by itself when its last reference is dropped).
    pub(crate) fn recycle(self) {
        match self {
            Encoded::Int8(t) => crate::buffers::give(t.codes),
            Encoded::Nf4(t) => crate::buffers::give(t.packed),
            Encoded::Int4(t) => crate::buffers::give(t.codes),
            Encoded::Ternary(t, _) => crate::buffers::give(bytemuck::allocation::cast_vec(t.codes)),
            Encoded::Plain { .. } => {}
        }
    }

    /// Bytes the encoding occupies (data plus statistics), before any container overhead.
    pub fn stored_bytes(&self) -> u64 {
        match self {
            Encoded::Plain { data, .. } => data.len() as u64,
            Encoded::Int8(t) => (t.codes.len() + t.scales.len() * 4 + t.zero_points.len()) as u64,
            Encoded::Nf4(t) => {
                let stats = match &t.absmax {
                    smelt_quant::nf4::Nf4Absmax::Plain(a) => a.len() * 4,
                    smelt_quant::nf4::Nf4Absmax::Double(d) => {
                        d.codes.len() + 4 + d.nested_absmax.len() * 4 + 256 * 4
                    }
                };
                (t.packed.len() + stats) as u64
            }
            Encoded::Int4(t) => (t.codes.len().div_ceil(2) + t.scales.len() * 4 + t.zeros.len()) as u64,
            Encoded::Ternary(t, TernaryPacking::TwoBit) => t.codes.len().div_ceil(4) as u64 + 4,
            Encoded::Ternary(t, TernaryPacking::Base3) => t.codes.len().div_ceil(5) as u64 + 4,
        }
    }
}

/// The result of encoding one tensor.
pub struct EncodedTensor {
    /// The encoding.
    pub encoded: Encoded,
    /// Error against the input values; `None` when the bytes were kept as they are.
    pub metrics: Option<ErrorMetrics>,
}

/// Reads a tensor's values as f32: plain floats converted, ggml blocks dequantized.
pub fn tensor_f32(t: &Tensor) -> Result<Cow<'_, [f32]>, ConvertError> {
    let n = usize::try_from(t.numel()).map_err(|_| ConvertError::TooLarge { tensor: t.name.clone() })?;
    match t.dtype {
        DType::F32 => smelt_tensor::storage::cast_or_copy::<f32>(&t.data)
            .ok_or_else(|| ConvertError::NotQuantizable { tensor: t.name.clone(), dtype: t.dtype }),
        d if d.is_ggml_block() => smelt_quant::ggml::dequantize_to_vec(d, &t.data)
            .map(Cow::Owned)
            .map_err(|source| ConvertError::Quant { tensor: t.name.clone(), source }),
        d => smelt_tensor::convert::to_f32_vec(d, &t.data, n)
            .map(Cow::Owned)
            .ok_or_else(|| ConvertError::NotQuantizable { tensor: t.name.clone(), dtype: d }),
    }
}

/// Refuses NaN and Inf, naming the tensor and the first bad element.
pub fn check_finite(name: &str, values: &[f32]) -> Result<(), ConvertError> {
    let bad = values
        .par_chunks(CHUNK_ELEMS)
        .enumerate()
        .filter_map(|(c, chunk)| crate::encode_chunked::first_nonfinite(chunk).map(|i| c * CHUNK_ELEMS + i))
        .min();
    match bad {
        Some(index) => Err(ConvertError::NonFinite { tensor: name.to_string(), index, value: values[index] }),
        None => Ok(()),
    }
}

/// Encodes `t` with `scheme`. `allow_nonfinite` skips the NaN/Inf check.
pub fn encode(t: &Tensor, scheme: Scheme, allow_nonfinite: bool) -> Result<EncodedTensor, ConvertError> {
    if scheme == Scheme::Keep {
        return Ok(EncodedTensor {
            encoded: Encoded::Plain { dtype: t.dtype, data: t.data.clone() },
            metrics: None,
        });
    }
    if let Some(streamed) = crate::encode_chunked::encode_chunked(t, scheme, allow_nonfinite) {
        return streamed;
    }
    let values = tensor_f32(t)?;
    if !allow_nonfinite {
        check_finite(&t.name, &values)?;
    }
    let shape: Vec<usize> = t.shape.iter().map(|&d| d as usize).collect();
    encode_values(&t.name, &values, &shape, scheme)
}

/// Encodes `values` (row-major, of `shape`, already checked for NaN/Inf when that matters)
/// with `scheme`, which must not be [`Scheme::Keep`]. Per-channel INT8 takes axis 0.
pub fn encode_values(
    name: &str,
    values: &[f32],
    shape: &[usize],
    scheme: Scheme,
) -> Result<EncodedTensor, ConvertError> {
    let scheme_err = |source| ConvertError::Scheme { tensor: name.to_string(), source };
    let encoded = match scheme {
        Scheme::Keep => {
            return Err(ConvertError::Shape { tensor: name.to_string(), why: "nothing to encode".into() })
        }
        Scheme::Cast(d) => Encoded::Plain { dtype: d, data: Bytes::from(cast_f32(values, d)) },
        Scheme::Ggml(d) => {
            let data = quantize_ggml_rows(name, d, values, *shape.last().unwrap_or(&1))?;
            Encoded::Plain { dtype: d, data: Bytes::from(data) }
        }
        Scheme::Int8 { per_channel, symmetric } => {
            let mode = if symmetric { Int8Mode::Symmetric } else { Int8Mode::Asymmetric };
            let granularity = if per_channel && !shape.is_empty() {
                Int8Granularity::PerChannel { axis: 0 }
            } else {
                Int8Granularity::PerTensor
            };
            Encoded::Int8(
                smelt_quant::int8::quantize_int8(values, shape, mode, granularity).map_err(scheme_err)?,
            )
        }
        Scheme::Nf4 { double_quant } => {
            let opts = Nf4Options { double_quant, ..Nf4Options::default() };
            Encoded::Nf4(smelt_quant::nf4::quantize_nf4(values, shape, opts).map_err(scheme_err)?)
        }
        Scheme::Int4 { group, symmetric } => {
            let (rows, cols) = match shape {
                [r, c] => (*r, *c),
                _ => {
                    return Err(ConvertError::Shape {
                        tensor: name.to_string(),
                        why: "block int4 needs a 2-D weight".into(),
                    })
                }
            };
            let mode = if symmetric { Int4Mode::Symmetric } else { Int4Mode::Asymmetric };
            Encoded::Int4(
                smelt_quant::int4::quantize_int4_rtn(values, rows, cols, group as usize, mode)
                    .map_err(scheme_err)?,
            )
        }
        Scheme::Ternary { packing } => {
            Encoded::Ternary(smelt_quant::ternary::quantize_ternary(values, Default::default()), packing)
        }
    };
    let decoded = decode(name, &encoded)?;
    let metrics = smelt_quant::metrics::error_metrics(values, &decoded).map_err(scheme_err)?;
    Ok(EncodedTensor { encoded, metrics: Some(metrics) })
}

/// Decodes an encoding back to f32 values.
pub fn decode(name: &str, e: &Encoded) -> Result<Vec<f32>, ConvertError> {
    Ok(match e {
        Encoded::Plain { dtype, data } if dtype.is_ggml_block() => {
            smelt_quant::ggml::dequantize_to_vec(*dtype, data)
                .map_err(|source| ConvertError::Quant { tensor: name.to_string(), source })?
        }
        Encoded::Plain { dtype, data } => {
            let n = data.len() as u64 * dtype.block_elems() / dtype.block_bytes().max(1);
            smelt_tensor::convert::to_f32_vec(*dtype, data, n as usize)
                .ok_or_else(|| ConvertError::NotQuantizable { tensor: name.to_string(), dtype: *dtype })?
        }
        Encoded::Int8(t) => t.dequantize(),
        Encoded::Nf4(t) => t.dequantize(),
        Encoded::Int4(t) => t.dequantize(),
        Encoded::Ternary(t, _) => t.dequantize(),
    })
}

/// f32 → F32/F16/BF16 bytes, round to nearest even (half's conversions are exact IEEE RNE).
fn cast_f32(values: &[f32], to: DType) -> Vec<u8> {
    let size = to.block_bytes() as usize;
    let mut out = vec![0u8; values.len() * size];
    out.par_chunks_mut(CHUNK_ELEMS * size)
        .zip(values.par_chunks(CHUNK_ELEMS))
        .for_each(|(o, v)| crate::encode_chunked::cast_into(v, to, o));
    out
}

/// ggml quantization, rows split across threads in fixed-size groups of whole rows.
fn quantize_ggml_rows(name: &str, d: DType, values: &[f32], row_len: usize) -> Result<Vec<u8>, ConvertError> {
    let be = d.block_elems() as usize;
    let bb = d.block_bytes() as usize;
    if row_len == 0 || row_len % be != 0 || values.len() % row_len != 0 {
        return Err(ConvertError::Shape {
            tensor: name.to_string(),
            why: format!("row length {row_len} is not a multiple of {d}'s block of {be}"),
        });
    }
    let rows_per_chunk = (CHUNK_ELEMS / row_len).max(1);
    let out_row = row_len / be * bb;
    let mut out = vec![0u8; values.len() / be * bb];
    out.par_chunks_mut(rows_per_chunk * out_row)
        .zip(values.par_chunks(rows_per_chunk * row_len))
        .try_for_each(|(o, v)| smelt_quant::ggml::quantize(d, v, o))
        .map_err(|source| ConvertError::Quant { tensor: name.to_string(), source })?;
    Ok(out)
}
