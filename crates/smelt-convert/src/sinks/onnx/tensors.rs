//! Initializers as `TensorProto`s: inline `raw_data`, or (models over the 2 GiB limit) bytes
//! streamed into one external data file with `location`/`offset`/`length` entries, as
//! `onnx.save_model(save_as_external_data=True, all_tensors_to_one_file=True)` writes them.
//! Plus the byte layouts the ONNX sink needs: transposes and 4-bit packing.

use std::io::Write;
use std::path::PathBuf;

use bytes::Bytes;
use smelt_formats::onnx::proto::tensor_proto::DataLocation;
use smelt_formats::onnx::proto::TensorProto;
use smelt_tensor::DType;

use crate::atomic::AtomicFile;

/// Tensors below this many bytes stay inline even with external data (onnx's default
/// `size_threshold`).
const EXTERNAL_MIN_BYTES: usize = 1024;
/// Alignment of every tensor's offset in the external file.
const EXTERNAL_ALIGN: u64 = 64;

/// The external data file being written: the file, its path, its name relative to the model.
pub(crate) type External = (AtomicFile, PathBuf, String);

/// The output initializers, in order.
#[derive(Default)]
pub(crate) struct Initializers {
    protos: Vec<TensorProto>,
    external: Option<External>,
    offset: u64,
}

impl Initializers {
    pub(crate) fn new(external: Option<External>) -> Initializers {
        Initializers { protos: Vec::new(), external, offset: 0 }
    }

    /// Adds a tensor of a plain dtype whose bytes are `data` (4-bit types packed two per byte,
    /// low nibble first, as ONNX's `raw_data`).
    pub(crate) fn add(&mut self, name: &str, dtype: DType, dims: &[u64], data: Bytes) -> Result<(), String> {
        let data_type = smelt_formats::onnx::onnx_type_id(dtype)
            .ok_or_else(|| format!("tensor '{name}': ONNX has no type for {}", dtype.name()))?;
        let dims = dims
            .iter()
            .map(|&d| i64::try_from(d).map_err(|_| format!("tensor '{name}': dimension {d} too large")))
            .collect::<Result<Vec<_>, _>>()?;
        let mut t = TensorProto {
            name: Some(name.to_string()),
            data_type: Some(data_type),
            dims,
            ..Default::default()
        };
        match &mut self.external {
            Some((file, path, location)) if data.len() >= EXTERNAL_MIN_BYTES => {
                let pad = self.offset.next_multiple_of(EXTERNAL_ALIGN) - self.offset;
                let io = |e: std::io::Error| format!("{}: {e}", path.display());
                file.write_all(&vec![0u8; pad as usize]).map_err(io)?;
                file.write_all(&data).map_err(io)?;
                let offset = self.offset + pad;
                self.offset = offset + data.len() as u64;
                t.data_location = Some(DataLocation::External as i32);
                t.external_data = vec![
                    super::entry("location", location.clone()),
                    super::entry("offset", offset.to_string()),
                    super::entry("length", data.len().to_string()),
                ];
            }
            _ => t.raw_data = Some(data),
        }
        self.protos.push(t);
        Ok(())
    }

    /// Adds a STRING tensor (always inline).
    pub(crate) fn add_strings(&mut self, name: &str, dims: &[u64], values: Vec<Vec<u8>>) {
        self.protos.push(TensorProto {
            name: Some(name.to_string()),
            data_type: smelt_formats::onnx::onnx_type_id(DType::String),
            dims: dims.iter().map(|&d| d as i64).collect(),
            string_data: values,
            ..Default::default()
        });
    }

    /// The initializers, and the external file (not yet committed) with its path.
    pub(crate) fn finish(self) -> (Vec<TensorProto>, Option<(AtomicFile, PathBuf)>) {
        (self.protos, self.external.map(|(f, p, _)| (f, p)))
    }
}

/// f32 values as little-endian bytes.
pub(crate) fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The transpose of a row-major `[rows, cols]` matrix.
pub(crate) fn transpose<T: Copy + Default>(v: &[T], rows: usize, cols: usize) -> Vec<T> {
    let mut out = vec![T::default(); v.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = v[r * cols + c];
        }
    }
    out
}

/// 4-bit values (low nibble of each byte) packed two per byte, first in the low nibble, an odd
/// count padded with 0: ONNX's INT4/UINT4 `raw_data`.
pub(crate) fn pack_nibbles(v: &[u8]) -> Vec<u8> {
    v.chunks(2).map(|p| (p[0] & 0x0f) | (p.get(1).copied().unwrap_or(0) << 4)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nibbles_low_first_and_padded() {
        assert_eq!(pack_nibbles(&[0x1, 0xf, 0x7]), vec![0xf1, 0x07]);
    }

    #[test]
    fn transpose_2x3() {
        assert_eq!(transpose(&[1, 2, 3, 4, 5, 6], 2, 3), vec![1, 4, 2, 5, 3, 6]);
    }
}
