//! GGUF's tensor infos (name, dims, ggml type, data offset) and the checks that place every
//! tensor's bytes inside the file without overlap.
//!
//! The rules follow llama.cpp's `gguf.cpp`: at most `GGML_MAX_DIMS` (4) dims, each a
//! non-negative `int64_t`, an element count below `INT64_MAX`, a row length that is a whole
//! number of blocks, and a data offset that is a multiple of the alignment. llama.cpp further
//! requires tensors to be packed in file order; smelt, like gguf-py, accepts any order as long
//! as tensors lie inside the file and do not overlap.

use std::collections::HashMap;

use smelt_tensor::DType;

use crate::cursor::Cursor;
use crate::gguf::error::{truncated, GgufError};
use crate::gguf::metadata::{read_string, RESERVE_AHEAD};
use crate::limits;

/// ggml's `GGML_MAX_DIMS`.
pub const GGML_MAX_DIMS: u32 = 4;

/// Smallest encoding of one tensor info: name length (8), n_dims (4), no dims (a 0-d tensor,
/// which gguf-py writes for a 0-d array and llama.cpp accepts), type (4), offset (8).
pub const MIN_TENSOR_INFO_BYTES: u64 = 8 + 4 + 4 + 8;

/// One tensor info as stored in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GgufTensorInfo {
    /// Tensor name.
    pub name: String,
    /// ggml type id as stored.
    pub ggml_type: u32,
    /// smelt's dtype for `ggml_type`.
    pub dtype: DType,
    /// Dims in GGUF order: `ne[0]` (the innermost, contiguous dimension) first.
    pub dims: Vec<u64>,
    /// Data offset relative to the start of the data section (a multiple of the alignment).
    pub offset: u64,
    /// Size of the stored data in bytes.
    pub size: u64,
    /// Absolute offset of this tensor info in the file.
    pub info_offset: u64,
}

impl GgufTensorInfo {
    /// Row-major shape, outermost first: `dims` reversed.
    pub fn shape(&self) -> Vec<u64> {
        self.dims.iter().rev().copied().collect()
    }
}

/// Reads `count` tensor infos; `alignment` is the file's (already validated) alignment.
pub(crate) fn read_tensor_infos(
    cur: &mut Cursor<'_>,
    count: u64,
    alignment: u64,
) -> Result<Vec<GgufTensorInfo>, GgufError> {
    // The caller checked count * MIN_TENSOR_INFO_BYTES against the bytes left; reserve little
    // up front all the same (see read_kvs).
    let mut infos = Vec::with_capacity(usize::try_from(count.min(RESERVE_AHEAD)).unwrap_or(0));
    let mut seen: HashMap<String, u64> = HashMap::new();
    for index in 0..count {
        let info = read_tensor_info(cur, index, alignment)?;
        if let Some(&first_offset) = seen.get(&info.name) {
            return Err(GgufError::DuplicateTensor {
                name: info.name,
                offset: info.info_offset,
                first_offset,
            });
        }
        seen.insert(info.name.clone(), info.info_offset);
        infos.push(info);
    }
    Ok(infos)
}

fn read_tensor_info(cur: &mut Cursor<'_>, index: u64, alignment: u64) -> Result<GgufTensorInfo, GgufError> {
    let info_offset = cur.offset();
    let name = read_string(cur, limits::MAX_NAME_LEN, &|| format!("name of tensor {index}"))?;
    let n_dims_offset = cur.offset();
    let n_dims = cur.read_u32().map_err(|t| truncated(t, format!("n_dims of tensor '{name}'")))?;
    if n_dims > GGML_MAX_DIMS {
        return Err(GgufError::TooManyDims { name, offset: n_dims_offset, n_dims, max: GGML_MAX_DIMS });
    }
    let dims_offset = cur.offset();
    let mut dims = Vec::with_capacity(n_dims as usize);
    for j in 0..n_dims as usize {
        let at = cur.offset();
        let d = cur.read_u64().map_err(|t| truncated(t, format!("dims of tensor '{name}'")))?;
        if d > i64::MAX as u64 {
            return Err(GgufError::NegativeDim { name, offset: at, index: j, value: d });
        }
        dims.push(d);
    }
    // ggml keeps the element count in an int64_t; a zero dim makes any count representable.
    let numel = if dims.contains(&0) {
        Some(0)
    } else {
        dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d)).filter(|&n| n <= i64::MAX as u64)
    };
    let Some(numel) = numel else {
        return Err(GgufError::DimsOverflow { name, offset: dims_offset, dims });
    };
    let type_offset = cur.offset();
    let ggml_type = cur.read_u32().map_err(|t| truncated(t, format!("type of tensor '{name}'")))?;
    let Some(dtype) = DType::from_ggml_id(ggml_type) else {
        return Err(GgufError::UnknownTensorType { name, offset: type_offset, type_id: ggml_type });
    };
    let row = dims.first().copied().unwrap_or(1);
    let block = dtype.block_elems();
    if block == 0 || row % block != 0 {
        return Err(GgufError::RowNotBlockMultiple { name, offset: dims_offset, dtype, row, block });
    }
    let shape: Vec<u64> = dims.iter().rev().copied().collect();
    let size = if numel == 0 { Some(0) } else { dtype.storage_bytes(&shape) };
    let Some(size) = size else {
        return Err(GgufError::DimsOverflow { name, offset: dims_offset, dims });
    };
    let offset_offset = cur.offset();
    let offset = cur.read_u64().map_err(|t| truncated(t, format!("data offset of tensor '{name}'")))?;
    if offset % alignment != 0 {
        return Err(GgufError::MisalignedOffset {
            name,
            offset: offset_offset,
            data_offset: offset,
            alignment,
        });
    }
    Ok(GgufTensorInfo { name, ggml_type, dtype, dims, offset, size, info_offset })
}

/// Checks that every tensor's bytes, `data_offset + offset .. + size`, lie within a file of
/// `file_len` bytes and that no two tensors share a byte.
pub(crate) fn check_data_layout(
    infos: &[GgufTensorInfo],
    data_offset: u64,
    file_len: u64,
) -> Result<(), GgufError> {
    let mut ranges: Vec<(u64, u64, usize)> = Vec::with_capacity(infos.len());
    for (i, t) in infos.iter().enumerate() {
        let start = data_offset.checked_add(t.offset);
        let end = start.and_then(|s| s.checked_add(t.size));
        match (start, end) {
            (Some(start), Some(end)) if end <= file_len => {
                if end > start {
                    ranges.push((start, end, i));
                }
            }
            _ => {
                let start = start.unwrap_or(u64::MAX);
                return Err(GgufError::TensorPastEnd {
                    name: t.name.clone(),
                    offset: t.info_offset,
                    start,
                    end: start.saturating_add(t.size),
                    file_len,
                });
            }
        }
    }
    ranges.sort_unstable();
    for pair in ranges.windows(2) {
        let (a_start, a_end, a) = pair[0];
        let (b_start, b_end, b) = pair[1];
        if b_start < a_end {
            return Err(GgufError::TensorsOverlap {
                name: infos[b].name.clone(),
                offset: infos[b].info_offset,
                start: b_start,
                end: b_end,
                other: infos[a].name.clone(),
                other_start: a_start,
                other_end: a_end,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, dims: &[u64], ggml_type: u32, offset: u64) -> Vec<u8> {
        let mut v = (name.len() as u64).to_le_bytes().to_vec();
        v.extend_from_slice(name.as_bytes());
        v.extend_from_slice(&(dims.len() as u32).to_le_bytes());
        for d in dims {
            v.extend_from_slice(&d.to_le_bytes());
        }
        v.extend_from_slice(&ggml_type.to_le_bytes());
        v.extend_from_slice(&offset.to_le_bytes());
        v
    }

    fn read_one(bytes: &[u8]) -> Result<GgufTensorInfo, GgufError> {
        read_tensor_infos(&mut Cursor::new(bytes), 1, 32).map(|mut v| v.remove(0))
    }

    #[test]
    fn shape_is_reversed_and_size_computed() {
        // Q8_0, ne = [64, 3]: 3 rows of 2 blocks of 34 bytes.
        let t = read_one(&info("w", &[64, 3], 8, 96)).unwrap();
        assert_eq!(t.shape(), vec![3, 64]);
        assert_eq!(t.dtype, DType::Q8_0);
        assert_eq!(t.size, 3 * 2 * 34);
        assert_eq!(t.offset, 96);
    }

    #[test]
    fn zero_dims_is_a_scalar_and_zero_dim_is_empty() {
        let t = read_one(&info("s", &[], 0, 0)).unwrap();
        assert_eq!((t.shape(), t.size), (vec![], 4));
        // A zero dim makes the count 0 even when the other dims alone would overflow.
        let t = read_one(&info("e", &[i64::MAX as u64, i64::MAX as u64, 0], 0, 0)).unwrap();
        assert_eq!(t.size, 0);
    }

    #[test]
    fn element_count_must_fit_int64_and_byte_size_u64() {
        let err = read_one(&info("big", &[1 << 32, 1 << 32], 0, 0)).unwrap_err();
        assert!(matches!(err, GgufError::DimsOverflow { .. }));
        // 2^62 elements of F64 is representable as a count but not as bytes.
        let err = read_one(&info("f64", &[1 << 62], 28, 0)).unwrap_err();
        assert!(matches!(err, GgufError::DimsOverflow { .. }));
    }

    #[test]
    fn layout_rejects_overlap_but_accepts_touching_and_empty() {
        let mk = |name: &str, offset, size| GgufTensorInfo {
            name: name.into(),
            ggml_type: 0,
            dtype: DType::F32,
            dims: vec![size / 4],
            offset,
            size,
            info_offset: 0,
        };
        let ok = [mk("a", 0, 64), mk("b", 64, 32), mk("e", 32, 0)];
        assert!(check_data_layout(&ok, 100, 196).is_ok());
        assert!(matches!(check_data_layout(&ok, 100, 195), Err(GgufError::TensorPastEnd { .. })));
        let bad = [mk("a", 64, 64), mk("b", 0, 96)];
        let err = check_data_layout(&bad, 0, 1000).unwrap_err();
        assert!(
            matches!(err, GgufError::TensorsOverlap { ref name, ref other, .. } if name == "a" && other == "b")
        );
        let wrap = [mk("w", u64::MAX - 31, 64)];
        assert!(matches!(check_data_layout(&wrap, 32, 1000), Err(GgufError::TensorPastEnd { .. })));
    }
}
