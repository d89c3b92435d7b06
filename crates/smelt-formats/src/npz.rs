//! NumPy `.npz` archives: a zip of `.npy` members, one per named array. `smelt run` reads its
//! inputs from one and writes its outputs to one.
//!
//! Only what `numpy.savez` writes is read: members STORED (not compressed), no encryption, no
//! zip64 beyond what the local headers say; `numpy.savez_compressed` archives are refused with
//! that reason. Writing makes the same kind of archive, deterministic (fixed timestamps).
//! Zip format: PKWARE APPNOTE 6.3 sections 4.3.7 (local header), 4.3.12 (central directory),
//! 4.3.16 (end of central directory).

use std::path::Path;

use bytes::Bytes;
use smelt_tensor::DType;

use crate::cursor::Cursor;
use crate::npy::{NpyArray, NpyError};
use crate::{limits, Error, ErrorKind};

/// An `.npz` archive that cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NpzError {
    /// No end-of-central-directory record.
    #[error("not a zip archive (no end of central directory record)")]
    NotZip,
    /// A header ends past the end of the file or has a wrong signature.
    #[error("bad zip header at byte {offset}: {reason}")]
    Header {
        /// Offset of the header.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A compressed member (`numpy.savez_compressed`).
    #[error("member '{name}' at byte {offset} is compressed (method {method}); save with numpy.savez, not savez_compressed")]
    Compressed {
        /// Member name.
        name: String,
        /// Offset of its local header.
        offset: u64,
        /// Zip compression method.
        method: u16,
    },
    /// Two members with the same array name.
    #[error("array '{name}' appears twice (second at byte {offset})")]
    Duplicate {
        /// Array name.
        name: String,
        /// Offset of the second member.
        offset: u64,
    },
    /// A member that is not a valid `.npy`.
    #[error("member '{name}' at byte {offset}: {source}")]
    Member {
        /// Member name.
        name: String,
        /// Offset of its data.
        offset: u64,
        /// The `.npy` error.
        source: NpyError,
    },
}

/// Reads an `.npz` archive: the arrays in archive order, named without the `.npy` suffix.
pub fn read(path: &Path) -> Result<Vec<(String, NpyArray)>, Error> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let bytes = smelt_tensor::storage::map_file(&file).map_err(|e| Error::io(path, e))?;
    parse(bytes).map_err(|e| Error::new(path, ErrorKind::Npz(e)))
}

/// Parses `.npz` bytes.
pub fn parse(bytes: Bytes) -> Result<Vec<(String, NpyArray)>, NpzError> {
    let len = bytes.len();
    if len < 22 {
        return Err(NpzError::NotZip);
    }
    // The end record is the last 22 bytes plus a comment of at most 65535 bytes.
    let lowest = len.saturating_sub(22 + 65535);
    let eocd = (lowest..=len - 22)
        .rev()
        .find(|&i| bytes[i..i + 4] == [0x50, 0x4b, 0x05, 0x06])
        .ok_or(NpzError::NotZip)?;
    let hdr = |offset: usize, reason: &str| NpzError::Header { offset: offset as u64, reason: reason.into() };
    let mut c = Cursor::new(&bytes[eocd..]);
    let mut field = |n: u64| -> Result<u64, NpzError> {
        let b = c.take(n).map_err(|_| hdr(eocd, "truncated end record"))?;
        Ok(b.iter().rev().fold(0u64, |a, &x| (a << 8) | x as u64))
    };
    field(4)?;
    field(4)?;
    let _entries_here = field(2)?;
    let entries = field(2)?;
    let _cd_size = field(4)?;
    let cd_offset = field(4)? as usize;
    if entries > limits::MAX_TENSORS {
        return Err(hdr(eocd, "too many members"));
    }
    let mut out: Vec<(String, NpyArray)> = Vec::new();
    let mut pos = cd_offset;
    for _ in 0..entries {
        let rec = bytes
            .get(pos..pos.checked_add(46).ok_or_else(|| hdr(pos, "offset overflow"))?)
            .ok_or_else(|| hdr(pos, "truncated central directory entry"))?;
        if rec[..4] != [0x50, 0x4b, 0x01, 0x02] {
            return Err(hdr(pos, "bad central directory signature"));
        }
        let u16_at = |i: usize| u16::from_le_bytes([rec[i], rec[i + 1]]);
        let u32_at = |i: usize| u32::from_le_bytes([rec[i], rec[i + 1], rec[i + 2], rec[i + 3]]);
        let method = u16_at(10);
        let comp_size = u32_at(20) as usize;
        let name_len = u16_at(28) as usize;
        let extra_len = u16_at(30) as usize;
        let comment_len = u16_at(32) as usize;
        let local = u32_at(42) as usize;
        let name_bytes =
            bytes.get(pos + 46..pos + 46 + name_len).ok_or_else(|| hdr(pos, "truncated member name"))?;
        let name =
            String::from_utf8(name_bytes.to_vec()).map_err(|_| hdr(pos, "member name is not UTF-8"))?;
        pos += 46 + name_len + extra_len + comment_len;
        if method != 0 {
            return Err(NpzError::Compressed { name, offset: local as u64, method });
        }
        let lh = bytes
            .get(local..local.checked_add(30).ok_or_else(|| hdr(local, "offset overflow"))?)
            .ok_or_else(|| hdr(local, "truncated local header"))?;
        if lh[..4] != [0x50, 0x4b, 0x03, 0x04] {
            return Err(hdr(local, "bad local header signature"));
        }
        let l_name = u16::from_le_bytes([lh[26], lh[27]]) as usize;
        let l_extra = u16::from_le_bytes([lh[28], lh[29]]) as usize;
        let start = local + 30 + l_name + l_extra;
        let end = start
            .checked_add(comp_size)
            .filter(|&e| e <= len)
            .ok_or_else(|| hdr(local, "member data past the end of the file"))?;
        let array = crate::npy::parse(bytes.slice(start..end)).map_err(|source| NpzError::Member {
            name: name.clone(),
            offset: start as u64,
            source,
        })?;
        let key = name.strip_suffix(".npy").unwrap_or(&name).to_string();
        if out.iter().any(|(n, _)| *n == key) {
            return Err(NpzError::Duplicate { name: key, offset: local as u64 });
        }
        out.push((key, array));
    }
    Ok(out)
}

/// The `.npy` descr of a dtype, `None` for dtypes `.npy` cannot hold as such.
pub fn npy_descr(dtype: DType) -> Option<&'static str> {
    Some(match dtype {
        DType::F64 => "<f8",
        DType::F32 => "<f4",
        DType::F16 => "<f2",
        DType::I64 => "<i8",
        DType::I32 => "<i4",
        DType::I16 => "<i2",
        DType::I8 => "|i1",
        DType::U64 => "<u8",
        DType::U32 => "<u4",
        DType::U16 => "<u2",
        DType::U8 => "|u1",
        DType::Bool => "|b1",
        _ => return None,
    })
}

/// The bytes of a version 1.0 `.npy` file holding `data` (little-endian, C order).
pub fn npy_bytes(descr: &str, shape: &[u64], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
    let shape_txt = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_txt}, }}");
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut v = b"\x93NUMPY\x01\x00".to_vec();
    v.extend_from_slice(&(h.len() as u16).to_le_bytes());
    v.extend_from_slice(h.as_bytes());
    v.extend_from_slice(data);
    v
}

/// The bytes of an uncompressed `.npz` holding `members` (name without `.npy`, `.npy` bytes),
/// in the given order. Members and the archive must stay under 4 GiB (no zip64).
pub fn npz_bytes(members: &[(String, Vec<u8>)]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in members {
        let fname = format!("{name}.npy");
        let crc = crc32fast::hash(data);
        let offset = u32::try_from(out.len()).ok()?;
        let size = u32::try_from(data.len()).ok()?;
        let nlen = u16::try_from(fname.len()).ok()?;
        // Local header: version 20, no flags, STORED, DOS time/date 1980-01-01 00:00.
        out.extend_from_slice(&[0x50, 0x4b, 0x03, 0x04, 20, 0, 0, 0, 0, 0, 0, 0, 0x21, 0]);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&nlen.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(fname.as_bytes());
        out.extend_from_slice(data);
        central.extend_from_slice(&[0x50, 0x4b, 0x01, 0x02, 20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0x21, 0]);
        central.extend_from_slice(&crc.to_le_bytes());
        central.extend_from_slice(&size.to_le_bytes());
        central.extend_from_slice(&size.to_le_bytes());
        central.extend_from_slice(&nlen.to_le_bytes());
        central.extend_from_slice(&[0; 12]);
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(fname.as_bytes());
    }
    let cd_offset = u32::try_from(out.len()).ok()?;
    let cd_size = u32::try_from(central.len()).ok()?;
    let n = u16::try_from(members.len()).ok()?;
    out.extend_from_slice(&central);
    out.extend_from_slice(&[0x50, 0x4b, 0x05, 0x06, 0, 0, 0, 0]);
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&cd_size.to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_two_arrays() {
        let a: Vec<u8> = [1.0f32, 2.0, 3.0].iter().flat_map(|x| x.to_le_bytes()).collect();
        let b: Vec<u8> = 7i64.to_le_bytes().to_vec();
        let z =
            npz_bytes(&[("x".into(), npy_bytes("<f4", &[3], &a)), ("y".into(), npy_bytes("<i8", &[], &b))])
                .unwrap();
        let got = parse(Bytes::from(z)).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, "x");
        assert_eq!(got[0].1.to_f32().unwrap(), vec![1.0, 2.0, 3.0]);
        assert_eq!(got[1].1.shape, Vec::<u64>::new());
        assert_eq!(got[1].1.dtype, DType::I64);
    }

    #[test]
    fn refuses_garbage_and_truncation() {
        assert_eq!(parse(Bytes::from_static(b"not a zip file at all, no")).unwrap_err(), NpzError::NotZip);
        let z = npz_bytes(&[("x".into(), npy_bytes("|u1", &[2], &[1, 2]))]).unwrap();
        let cut = z.len() - 30;
        let mut bad = z.clone();
        bad.drain(10..cut);
        assert!(parse(Bytes::from(bad)).is_err());
    }

    #[test]
    fn every_truncation_and_byte_flip_is_an_error_or_a_valid_read_never_a_panic() {
        let a: Vec<u8> = (0..40u8).collect();
        let z = npz_bytes(&[
            ("w".into(), npy_bytes("|u1", &[5, 8], &a)),
            ("b".into(), npy_bytes("<f4", &[2], &[0; 8])),
        ])
        .unwrap();
        for cut in 0..z.len() {
            let _ = parse(Bytes::from(z[..cut].to_vec()));
        }
        for i in 0..z.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = z.clone();
                bad[i] ^= flip;
                if let Ok(arrays) = parse(Bytes::from(bad)) {
                    for (_, arr) in arrays {
                        assert_eq!(arr.data.len() as u64, arr.dtype.storage_bytes(&arr.shape).unwrap());
                    }
                }
            }
        }
    }
}
