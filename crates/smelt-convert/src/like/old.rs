//! OLD, the earlier quantized version `--like` reuses: a smelt blob or a GGUF, mapped (never
//! read whole). Tensors are looked up by the name they have in the output; what the plan asks
//! for is checked against what OLD holds, and OLD's bytes are handed out in the input's row
//! order (GGUF from an HF checkpoint stores Q and K rows permuted).

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use smelt_formats::blob::{Blob, Entry, Scheme as BlobScheme, Section};
use smelt_formats::{Format, Model};
use smelt_tensor::DType;

use super::LikeError;
use crate::scheme::{Scheme, TernaryPacking};

/// An opened OLD file.
pub(crate) enum OldFile {
    Blob(Box<Blob>),
    Gguf(Box<Model>),
}

/// OLD's side of one tensor, in the input's row order.
pub(crate) enum OldTensor {
    /// ggml blocks (blob `ggml` scheme or GGUF).
    Ggml { data: Bytes },
    /// INT8 codes, one scale and zero per channel (zeros 0 when symmetric).
    Int8 { codes: Bytes, scales: Vec<f32>, zeros: Vec<u8> },
    /// Block int4 as the blob packs it; zeros 8 when symmetric.
    Int4 { packed: Bytes, scales: Vec<f32>, zeros: Vec<u8> },
    /// NF4 codes and plain absmax.
    Nf4 { packed: Bytes, absmax: Vec<f32> },
    /// Ternary codes and the multiplier the blob stores (`weight = code × multiplier`).
    Ternary { codes: Vec<i8>, multiplier: f32 },
}

impl OldTensor {
    /// Lets the pages of OLD's mapped bytes for this tensor leave the resident set.
    pub(crate) fn release(&self) {
        match self {
            OldTensor::Ggml { data }
            | OldTensor::Int8 { codes: data, .. }
            | OldTensor::Int4 { packed: data, .. }
            | OldTensor::Nf4 { packed: data, .. } => smelt_tensor::storage::release_pages(data),
            OldTensor::Ternary { .. } => {}
        }
    }
}

/// Opens OLD: a smelt blob or a GGUF; any other file is refused.
pub(crate) fn open(path: &Path) -> Result<OldFile, LikeError> {
    let mut magic = Vec::with_capacity(8);
    {
        use std::io::Read;
        let io = |e| LikeError::open(path, smelt_formats::Error::io(path, e));
        std::fs::File::open(path).map_err(io)?.take(8).read_to_end(&mut magic).map_err(io)?;
    }
    if magic == smelt_formats::blob::layout::MAGIC {
        // Tensor CRCs are checked one by one as tensors are used.
        return smelt_formats::blob::read_unverified(path)
            .map(|b| OldFile::Blob(Box::new(b)))
            .map_err(|e| LikeError::open(path, e));
    }
    if magic.starts_with(b"GGUF") {
        return smelt_formats::gguf::read(path)
            .map(|m| OldFile::Gguf(Box::new(m)))
            .map_err(|e| LikeError::open(path, e));
    }
    match smelt_formats::detect_file(path) {
        Ok(format @ (Format::Safetensors | Format::Onnx)) => {
            Err(LikeError::OldFormat { path: path.to_path_buf(), format: format.name() })
        }
        Ok(Format::Gguf) => smelt_formats::gguf::read(path)
            .map(|m| OldFile::Gguf(Box::new(m)))
            .map_err(|e| LikeError::open(path, e)),
        Err(e) => Err(LikeError::open(path, e)),
    }
}

fn shape_str(s: &[u64]) -> String {
    format!("{s:?}")
}

/// How the plan's scheme is described in OLD's terms, for "OLD has X, the plan Y".
fn blob_scheme_desc(e: &Entry) -> String {
    match e.scheme {
        BlobScheme::Ggml | BlobScheme::Raw => e.dtype.name().to_ascii_lowercase(),
        BlobScheme::Int8 => format!(
            "int8 ({}, {})",
            if e.flags.per_axis() { "per-channel" } else { "per-tensor" },
            if e.flags.symmetric() { "symmetric" } else { "asymmetric" }
        ),
        BlobScheme::Nf4 if e.flags.double_quant() => "nf4 (double quant)".into(),
        BlobScheme::Nf4 => format!("nf4 (block {})", e.block_size),
        BlobScheme::Int4 => format!(
            "int4 (g{}, {}{})",
            e.block_size,
            if e.flags.symmetric() { "symmetric" } else { "asymmetric" },
            if e.aux.is_some() { ", g_idx" } else { "" }
        ),
        BlobScheme::Ternary2 => "ternary (2-bit)".into(),
        BlobScheme::Ternary3 => "ternary (base-3)".into(),
    }
}

/// Whether OLD's blob entry holds `scheme` with the same parameters.
fn blob_matches(e: &Entry, scheme: Scheme) -> bool {
    match scheme {
        Scheme::Ggml(d) => e.scheme == BlobScheme::Ggml && e.dtype == d,
        Scheme::Int8 { per_channel, symmetric } => {
            let per_axis = per_channel && !e.dims.is_empty();
            e.scheme == BlobScheme::Int8
                && e.flags.symmetric() == symmetric
                && e.flags.per_axis() == per_axis
                && (!per_axis || e.axis == Some(0))
        }
        Scheme::Int4 { group, symmetric } => {
            e.scheme == BlobScheme::Int4
                && e.block_size == group
                && e.flags.symmetric() == symmetric
                && e.aux.is_none()
        }
        Scheme::Nf4 { double_quant: false } => {
            e.scheme == BlobScheme::Nf4
                && !e.flags.double_quant()
                && e.block_size as usize == smelt_quant::nf4::NF4_BLOCK_SIZE
        }
        Scheme::Ternary { packing: TernaryPacking::TwoBit } => e.scheme == BlobScheme::Ternary2,
        Scheme::Ternary { packing: TernaryPacking::Base3 } => e.scheme == BlobScheme::Ternary3,
        Scheme::Nf4 { double_quant: true } | Scheme::Keep | Scheme::Cast(_) => false,
    }
}

impl OldFile {
    /// Checks, from OLD's directory alone, whether its tensor `name` can be reused for `scheme`
    /// on `shape`: `Err` says why the tensor is quantized fresh.
    pub(crate) fn check(&self, name: &str, scheme: Scheme, shape: &[u64]) -> Result<(), String> {
        if let Scheme::Nf4 { double_quant: true } = scheme {
            return Err(
                "nf4 with double quantization: its absmax statistics are tensor-wide, quantized fresh".into(),
            );
        }
        let dims = match self {
            OldFile::Blob(b) => {
                let e = b.entry(name).ok_or("not in OLD")?;
                if !blob_matches(e, scheme) {
                    return Err(format!("OLD has {}, the plan {scheme}", blob_scheme_desc(e)));
                }
                &e.dims
            }
            OldFile::Gguf(m) => {
                let t = m.tensor(name).ok_or("not in OLD")?;
                match scheme {
                    Scheme::Ggml(d) if t.dtype == d => {}
                    _ => {
                        return Err(format!(
                            "OLD has {}, the plan {scheme}",
                            t.dtype.name().to_ascii_lowercase()
                        ))
                    }
                }
                &t.shape
            }
        };
        if dims.as_slice() != shape {
            return Err(format!("OLD's shape {} differs from {}", shape_str(dims), shape_str(shape)));
        }
        Ok(())
    }

    fn path(&self) -> PathBuf {
        match self {
            OldFile::Blob(b) => b.path().to_path_buf(),
            OldFile::Gguf(m) => m.files.first().cloned().unwrap_or_default(),
        }
    }

    /// OLD's tensor `name` (which [`OldFile::check`] accepted for `scheme`), rows back in the
    /// input's order when the output permutes them by `permute_heads`.
    pub(crate) fn load(
        &self,
        name: &str,
        scheme: Scheme,
        permute_heads: Option<u64>,
    ) -> Result<OldTensor, LikeError> {
        let bad = |why: String| LikeError::Tensor { path: self.path(), tensor: name.to_string(), why };
        let t = match self {
            OldFile::Gguf(m) => {
                let t = m.tensor(name).ok_or_else(|| bad("not in OLD".into()))?;
                OldTensor::Ggml { data: t.data.clone() }
            }
            OldFile::Blob(b) => {
                let e = b.entry(name).ok_or_else(|| bad("not in OLD".into()))?;
                e.verify_checksum().map_err(|err| LikeError::open(&self.path(), b.error(err)))?;
                let data =
                    e.decompressed_data().map_err(|err| LikeError::open(&self.path(), b.error(err)))?;
                let f32s = |s: &Option<Section>| -> Vec<f32> {
                    s.as_ref().map_or_else(Vec::new, |s| {
                        s.bytes
                            .chunks_exact(4)
                            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                            .collect()
                    })
                };
                let raw = |s: &Option<Section>| s.as_ref().map_or_else(Vec::new, |s| s.bytes.to_vec());
                match scheme {
                    Scheme::Ggml(_) => OldTensor::Ggml { data },
                    Scheme::Int8 { symmetric, .. } => {
                        let scales = f32s(&e.scales);
                        let zeros = if symmetric { vec![0u8; scales.len()] } else { raw(&e.zeros) };
                        OldTensor::Int8 { codes: data, scales, zeros }
                    }
                    Scheme::Int4 { symmetric, .. } => {
                        let scales = f32s(&e.scales);
                        let zeros = if symmetric { vec![8u8; scales.len()] } else { raw(&e.zeros) };
                        OldTensor::Int4 { packed: data, scales, zeros }
                    }
                    Scheme::Nf4 { .. } => OldTensor::Nf4 { packed: data, absmax: f32s(&e.scales) },
                    Scheme::Ternary { packing } => {
                        let n = usize::try_from(e.numel()).map_err(|_| bad("too large".into()))?;
                        let codes = match packing {
                            TernaryPacking::TwoBit => smelt_quant::ternary::unpack_2bit(&data, n),
                            TernaryPacking::Base3 => smelt_quant::ternary::unpack_base3(&data, n),
                        }
                        .map_err(|err| bad(err.to_string()))?;
                        let multiplier =
                            f32s(&e.scales).first().copied().ok_or_else(|| bad("no scale".into()))?;
                        OldTensor::Ternary { codes, multiplier }
                    }
                    Scheme::Keep | Scheme::Cast(_) => return Err(bad("not quantized".into())),
                }
            }
        };
        match (permute_heads, t) {
            (Some(heads), OldTensor::Ggml { data }) => {
                let shape = match self {
                    OldFile::Gguf(m) => m.tensor(name).map(|t| t.shape.clone()).unwrap_or_default(),
                    OldFile::Blob(b) => b.entry(name).map(|e| e.dims.clone()).unwrap_or_default(),
                };
                let data = unpermute_rows(&data, &shape, heads).map_err(bad)?;
                Ok(OldTensor::Ggml { data: Bytes::from(data.into_owned()) })
            }
            (Some(_), _) => Err(bad("only ggml types are stored with permuted rows".into())),
            (None, t) => Ok(t),
        }
    }
}

/// Undoes llama.cpp's Q/K row permutation (`permute_qk`) on stored bytes: the permutation is
/// found by permuting the row indices themselves, so there is one definition of it.
fn unpermute_rows<'a>(data: &'a [u8], shape: &[u64], heads: u64) -> Result<Cow<'a, [u8]>, String> {
    let rows = *shape.first().ok_or("no rows")? as usize;
    if rows == 0 {
        return Ok(Cow::Borrowed(data));
    }
    let index: Vec<u8> = (0..rows as u32).flat_map(|r| r.to_le_bytes()).collect();
    let moved = smelt_formats::gguf::permute_qk(&index, DType::I32, &[rows as u64, 1], heads)
        .map_err(|e| e.to_string())?;
    let row_bytes = data.len() / rows;
    let mut out = vec![0u8; data.len()];
    for (pos, src) in moved.chunks_exact(4).enumerate() {
        let r = u32::from_le_bytes([src[0], src[1], src[2], src[3]]) as usize;
        out[r * row_bytes..(r + 1) * row_bytes]
            .copy_from_slice(&data[pos * row_bytes..(pos + 1) * row_bytes]);
    }
    Ok(Cow::Owned(out))
}

/// The f32 `s` with `1 / s == multiplier` exactly (the blob stores the ternary multiplier as the
/// reciprocal of the quantizer's scale), searched among the neighbours of `1 / multiplier`.
pub(crate) fn scale_for_multiplier(multiplier: f32) -> Option<f32> {
    let guess = 1.0 / multiplier;
    if !guess.is_finite() || guess <= 0.0 {
        return None;
    }
    (0..=8u32)
        .flat_map(|k| [guess.to_bits().wrapping_add(k), guess.to_bits().wrapping_sub(k)])
        .map(f32::from_bits)
        .find(|s| 1.0 / *s == multiplier)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpermuting_undoes_the_gguf_permutation() {
        let rows = 16u64;
        let data: Vec<u8> = (0..rows as u8 * 3).collect();
        let shape = [rows, 3];
        let stored = smelt_formats::gguf::permute_qk(&data, DType::U8, &shape, 2).unwrap();
        assert_ne!(stored, data);
        assert_eq!(unpermute_rows(&stored, &shape, 2).unwrap().as_ref(), data.as_slice());
    }

    #[test]
    fn the_ternary_scale_is_found_from_its_stored_reciprocal() {
        for s in [1.0f32, 3.3, 17.25, 1234.5678, 0.001] {
            let m = 1.0 / s;
            let found = scale_for_multiplier(m).unwrap();
            assert_eq!(1.0 / found, m);
        }
        assert_eq!(scale_for_multiplier(0.0), None);
    }
}
