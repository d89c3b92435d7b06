//! Running a smelt blob: a blob made from an ONNX model carries its graph in the metadata
//! ([`smelt_formats::blob::Blob::onnx_graph`]), and its initializers are the blob's tensors.
//! This turns them back into the tensors the graph expects: a tensor stored as it was is used
//! as is (no copy), a cast one (f16, bf16) is converted back, and a quantized one (int8, int4,
//! nf4, ternary, ggml block types) is dequantized with smelt-quant's dequantizers, by the
//! formulas of docs/blob-format.md, then rounded to the graph's dtype.

use std::path::Path;

use bytes::Bytes;
use smelt_formats::blob::{Blob, Entry, Scheme};
use smelt_formats::{Location, Model, Tensor};
use smelt_quant::int4::{Int4Mode, Int4Tensor};
use smelt_quant::int8::{Int8Mode, Int8Tensor};
use smelt_quant::nf4::{Nf4Absmax, Nf4Tensor};
use smelt_tensor::DType;

use crate::error::RuntimeError;

/// The first bytes of every smelt blob.
pub const BLOB_MAGIC: &[u8; 8] = b"SMELTBLB";

/// Reads a smelt blob (every CRC checked) and rebuilds the ONNX model it carries: the graph,
/// and every initializer in the dtype and shape the graph expects.
///
/// Errors: the blob is malformed (naming the field and byte offset), carries no graph
/// ([`RuntimeError::BlobWithoutGraph`]), or a tensor cannot become its initializer.
pub fn load_blob_model(path: &Path) -> Result<Model, RuntimeError> {
    let blob = smelt_formats::blob::read(path)?;
    let Some(graph) = blob.onnx_graph()? else {
        let source_format = blob.metadata()?.map(|m| m.source_format).unwrap_or_default();
        return Err(RuntimeError::BlobWithoutGraph {
            path: path.display().to_string(),
            source_format: if source_format.is_empty() { "unknown".into() } else { source_format },
        });
    };
    let mut tensors = graph.model.tensors;
    for init in &graph.initializers {
        let entry = &blob.entries()[init.entry];
        tensors.push(initializer(&blob, entry, &init.name, init.dtype, &init.dims)?);
    }
    let mut model = Model::new(graph.model.format, graph.model.version, vec![path.to_path_buf()], tensors);
    model.graph = graph.model.graph;
    model.metadata = graph.model.metadata;
    Ok(model)
}

/// True when the file at `path` starts with the blob magic.
pub fn is_blob(path: &Path) -> bool {
    use std::io::Read as _;
    let mut magic = [0u8; 8];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && &magic == BLOB_MAGIC
}

fn bad(name: &str, entry: &Entry, reason: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::BadTensor {
        name: name.to_string(),
        reason: format!("blob tensor '{}': {reason}", entry.name),
    }
}

/// The initializer `name` of dtype `want` from blob entry `entry`.
fn initializer(
    blob: &Blob,
    entry: &Entry,
    name: &str,
    want: DType,
    dims: &[u64],
) -> Result<Tensor, RuntimeError> {
    let data = entry.decompressed_data().map_err(|e| RuntimeError::Format(blob.error(e)))?;
    let location = Location { file: 0, offset: entry.data.offset };
    let tensor =
        |data: Bytes| Tensor { name: name.to_string(), dtype: want, shape: dims.to_vec(), data, location };
    let numel = usize::try_from(entry.numel()).map_err(|_| bad(name, entry, "too many elements"))?;
    if entry.scheme == Scheme::Raw && entry.dtype == want {
        return Ok(tensor(data));
    }
    let values = match entry.scheme {
        Scheme::Raw => smelt_tensor::convert::to_f32_vec(entry.dtype, &data, numel)
            .filter(|_| entry.dtype.is_float())
            .ok_or_else(|| bad(name, entry, format!("{} data cannot become {want}", entry.dtype)))?,
        _ => dequantize(entry, &data, numel).map_err(|r| bad(name, entry, r))?,
    };
    if values.len() != numel {
        return Err(bad(name, entry, format!("{} values for {numel} elements", values.len())));
    }
    Ok(tensor(Bytes::from(
        f32_to(&values, want)
            .ok_or_else(|| bad(name, entry, format!("values cannot be stored as {want}")))?,
    )))
}

/// `values` as little-endian `dtype` bytes (F32, F16 and BF16 rounded to nearest even, F64).
fn f32_to(values: &[f32], dtype: DType) -> Option<Vec<u8>> {
    if dtype == DType::F64 {
        return Some(values.iter().flat_map(|&v| f64::from(v).to_le_bytes()).collect());
    }
    let width = match dtype {
        DType::F32 => 4,
        DType::F16 | DType::BF16 => 2,
        _ => return None,
    };
    let mut out = vec![0u8; values.len() * width];
    smelt_tensor::convert::f32_to_float_into(dtype, values, &mut out).then_some(out)
}

fn f32s(s: Option<&smelt_formats::blob::Section>) -> Vec<f32> {
    s.map(|s| s.bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
        .unwrap_or_default()
}

fn section_bytes(s: Option<&smelt_formats::blob::Section>) -> Vec<u8> {
    s.map(|s| s.bytes.to_vec()).unwrap_or_default()
}

/// The values of a quantized entry, row-major. The reader checked every section's length
/// against the scheme's rules (docs/blob-format.md, "Exact rules per scheme").
fn dequantize(e: &Entry, data: &[u8], numel: usize) -> Result<Vec<f32>, String> {
    let shape: Vec<usize> = e.dims.iter().map(|&d| d as usize).collect();
    match e.scheme {
        Scheme::Raw => Err("not quantized".into()),
        Scheme::Int8 => {
            let axis = e.axis.map(|a| a as usize);
            let channels = axis.map_or(1, |a| shape[a]);
            // The codes' dtype says how to read them (and the zero points); without a zeros
            // section the zero point is 0.
            let mode = if e.dtype == DType::I8 { Int8Mode::Symmetric } else { Int8Mode::Asymmetric };
            let zero_points = match &e.zeros {
                Some(z) => z.bytes.to_vec(),
                None => vec![0; channels],
            };
            let t = Int8Tensor {
                mode,
                shape,
                axis,
                codes: data.to_vec(),
                scales: f32s(e.scales.as_ref()),
                zero_points,
            };
            Ok(t.dequantize())
        }
        Scheme::Nf4 => {
            let block_size = e.block_size as usize;
            let absmax = if e.flags.double_quant() {
                // absmax[b] = nested_code[code_b] × nested_absmax[b / 256] + offset, with the
                // file's own 256-entry code table.
                let codes = section_bytes(e.scales.as_ref());
                let aux = f32s(e.aux.as_ref());
                let nested = codes.len().div_ceil(256);
                let (offset, rest) = aux.split_first().ok_or("empty double-quantization statistics")?;
                let (nested_absmax, table) = rest.split_at(nested.min(rest.len()));
                codes
                    .iter()
                    .enumerate()
                    .map(|(b, &q)| {
                        let code = table.get(q as usize).copied().unwrap_or(f32::NAN);
                        code * nested_absmax.get(b / 256).copied().unwrap_or(f32::NAN) + offset
                    })
                    .collect()
            } else {
                f32s(e.scales.as_ref())
            };
            let t = Nf4Tensor { shape, block_size, packed: data.to_vec(), absmax: Nf4Absmax::Plain(absmax) };
            Ok(t.dequantize())
        }
        Scheme::Int4 => {
            let cols = *shape.last().ok_or("int4 of rank 0")?;
            let rows = numel.checked_div(cols).unwrap_or(0);
            let row_bytes = cols.div_ceil(2);
            let mut codes = Vec::with_capacity(numel);
            for row in data.chunks(row_bytes.max(1)).take(rows) {
                codes.extend((0..cols).map(|c| (row[c / 2] >> (4 * (c % 2))) & 0x0f));
            }
            let group_size = e.block_size as usize;
            let groups = cols.div_ceil(group_size.max(1));
            let symmetric = e.flags.symmetric();
            let zeros = match &e.zeros {
                Some(z) => z.bytes.to_vec(),
                None => vec![8; rows * groups],
            };
            let scales = f32s(e.scales.as_ref());
            let Some(aux) = &e.aux else {
                let mode = if symmetric { Int4Mode::Symmetric } else { Int4Mode::Asymmetric };
                return Ok(Int4Tensor { rows, cols, group_size, mode, codes, scales, zeros }.dequantize());
            };
            // Act-order: column c's group is g_idx[c] (the reader checked each is < groups).
            let g_idx: Vec<usize> = aux
                .bytes
                .chunks_exact(4)
                .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
                .collect();
            Ok(codes
                .iter()
                .enumerate()
                .map(|(i, &q)| {
                    let k = (i / cols) * groups + g_idx[i % cols];
                    scales[k] * (q as f32 - zeros[k] as f32)
                })
                .collect())
        }
        Scheme::Ternary2 | Scheme::Ternary3 => {
            let codes = if e.scheme == Scheme::Ternary2 {
                smelt_quant::ternary::unpack_2bit(data, numel)
            } else {
                smelt_quant::ternary::unpack_base3(data, numel)
            }
            .map_err(|e| e.to_string())?;
            let scale = *f32s(e.scales.as_ref()).first().ok_or("no scale")?;
            Ok(codes.iter().map(|&q| q as f32 * scale).collect())
        }
        Scheme::Ggml => smelt_quant::ggml::dequantize_to_vec(e.dtype, data).map_err(|e| e.to_string()),
    }
}
