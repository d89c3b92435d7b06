//! NumPy `.npy` arrays: how reference outputs from independent libraries are stored next to
//! the fixtures, and (later) how `smelt run` takes inputs.
//!
//! Format: <https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html>. Only
//! C-order arrays of fixed-size numeric types are accepted.

use std::path::Path;

use bytes::Bytes;
use smelt_tensor::DType;

use crate::cursor::Cursor;
use crate::{Error, ErrorKind};

/// A `.npy` file that cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NpyError {
    /// The file does not start with `\x93NUMPY`.
    #[error("not a .npy file (bad magic at byte 0)")]
    BadMagic,
    /// A major version other than 1, 2 or 3.
    #[error("unsupported .npy version {0} at byte 6")]
    Version(u8),
    /// The file ends inside the preamble or header.
    #[error("truncated at byte {offset}: needs {needed} bytes, {available} left")]
    Truncated {
        /// Where the read started.
        offset: u64,
        /// Bytes needed.
        needed: u64,
        /// Bytes left.
        available: u64,
    },
    /// The header dictionary could not be parsed.
    #[error("malformed header dictionary at byte {offset}: {reason}")]
    Header {
        /// Offset of the header.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A dtype smelt does not read from .npy.
    #[error("unsupported dtype descr {0:?}")]
    Descr(String),
    /// Data size does not match shape × dtype.
    #[error("data at byte {offset} is {found} bytes, shape needs {expected}")]
    Size {
        /// Offset of the data.
        offset: u64,
        /// Bytes needed by the shape.
        expected: u64,
        /// Bytes present.
        found: u64,
    },
}

/// An array read from `.npy`.
#[derive(Clone, Debug)]
pub struct NpyArray {
    /// Element type.
    pub dtype: DType,
    /// C-order shape.
    pub shape: Vec<u64>,
    /// Little-endian element bytes.
    pub data: Bytes,
}

impl NpyArray {
    /// The values as f32 (see [`smelt_tensor::convert::to_f32_vec`]).
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        let n = smelt_tensor::numel(&self.shape)? as usize;
        smelt_tensor::convert::to_f32_vec(self.dtype, &self.data, n)
    }
}

/// Reads a `.npy` file.
pub fn read(path: &Path) -> Result<NpyArray, Error> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let bytes = smelt_tensor::storage::map_file(&file).map_err(|e| Error::io(path, e))?;
    parse(bytes).map_err(|e| Error::new(path, ErrorKind::Npy(e)))
}

/// Parses `.npy` bytes.
pub fn parse(bytes: Bytes) -> Result<NpyArray, NpyError> {
    let trunc = |t: crate::cursor::Truncated| NpyError::Truncated {
        offset: t.offset,
        needed: t.needed,
        available: t.available,
    };
    let mut c = Cursor::new(&bytes);
    if c.take(6).map_err(trunc)? != b"\x93NUMPY" {
        return Err(NpyError::BadMagic);
    }
    let major = c.read_u8().map_err(trunc)?;
    let _minor = c.read_u8().map_err(trunc)?;
    let header_len = match major {
        1 => c.read_u16().map_err(trunc)? as u64,
        2 | 3 => c.read_u32().map_err(trunc)? as u64,
        v => return Err(NpyError::Version(v)),
    };
    let header_offset = c.offset();
    let header = c.take(header_len).map_err(trunc)?;
    let header = std::str::from_utf8(header)
        .map_err(|_| NpyError::Header { offset: header_offset, reason: "not UTF-8".into() })?;
    let bad = |reason: &str| NpyError::Header { offset: header_offset, reason: reason.into() };

    let descr = dict_value(header, "descr").ok_or_else(|| bad("no 'descr'"))?;
    let descr = descr.trim().trim_matches(|ch| ch == '\'' || ch == '"');
    let dtype = match descr {
        "<f8" => DType::F64,
        "<f4" => DType::F32,
        "<f2" => DType::F16,
        "<i8" => DType::I64,
        "<i4" => DType::I32,
        "<i2" => DType::I16,
        "|i1" => DType::I8,
        "<u8" => DType::U64,
        "<u4" => DType::U32,
        "<u2" => DType::U16,
        "|u1" => DType::U8,
        "|b1" => DType::Bool,
        other => return Err(NpyError::Descr(other.to_string())),
    };
    let fortran = dict_value(header, "fortran_order").ok_or_else(|| bad("no 'fortran_order'"))?;
    if fortran.trim() != "False" {
        return Err(bad("Fortran-order arrays are not supported"));
    }
    let shape_txt = dict_value(header, "shape").ok_or_else(|| bad("no 'shape'"))?;
    let inner = shape_txt
        .trim()
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| bad("shape is not a tuple"))?;
    let mut shape = Vec::new();
    for part in inner.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        shape.push(
            part.trim_end_matches('L').parse::<u64>().map_err(|_| bad("shape entry is not an integer"))?,
        );
        if shape.len() > crate::limits::MAX_RANK {
            return Err(bad("rank above the cap"));
        }
    }
    let expected = dtype.storage_bytes(&shape).ok_or_else(|| bad("shape overflows"))?;
    let data_offset = c.offset();
    let found = c.remaining();
    if found != expected {
        return Err(NpyError::Size { offset: data_offset, expected, found });
    }
    Ok(NpyArray { dtype, shape, data: bytes.slice(data_offset as usize..) })
}

/// Finds the text of the value of `'key'` in a Python dict literal whose values are strings,
/// `True`/`False`, or a tuple (all the `.npy` header holds).
fn dict_value<'h>(header: &'h str, key: &str) -> Option<&'h str> {
    let pat_single = format!("'{key}'");
    let start = header.find(&pat_single)? + pat_single.len();
    let rest = header[start..].trim_start().strip_prefix(':')?.trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')')? + 1
    } else {
        rest.find(',').or_else(|| rest.find('}'))?
    };
    Some(&rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(header: &str, data: &[u8]) -> Bytes {
        let mut h = header.to_string();
        while (10 + h.len() + 1) % 64 != 0 {
            h.push(' ');
        }
        h.push('\n');
        let mut v = b"\x93NUMPY\x01\x00".to_vec();
        v.extend_from_slice(&(h.len() as u16).to_le_bytes());
        v.extend_from_slice(h.as_bytes());
        v.extend_from_slice(data);
        Bytes::from(v)
    }

    #[test]
    fn parses_2d_f32_and_scalar() {
        let data: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0].iter().flat_map(|x| x.to_le_bytes()).collect();
        let a = parse(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", &data)).unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.to_f32().unwrap(), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let s = parse(npy("{'descr': '|u1', 'fortran_order': False, 'shape': (), }", &[7])).unwrap();
        assert!(s.shape.is_empty());
        let v = parse(npy("{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }", &5i64.to_le_bytes()))
            .unwrap();
        assert_eq!(v.shape, vec![1]);
    }

    #[test]
    fn refuses_bad_input() {
        assert_eq!(
            parse(Bytes::from_static(b"NUMPY")).unwrap_err(),
            NpyError::Truncated { offset: 0, needed: 6, available: 5 }
        );
        assert!(matches!(
            parse(npy("{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }", &[0; 4])),
            Err(NpyError::Descr(_))
        ));
        assert!(matches!(
            parse(npy("{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }", &[0; 4])),
            Err(NpyError::Header { .. })
        ));
        assert!(matches!(
            parse(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", &[0; 4])),
            Err(NpyError::Size { expected: 8, found: 4, .. })
        ));
    }
}
